// Draws the loss chart from the JSON the server put in the page (already down-sampled there).
// The data is read with JSON.parse from a <script type="application/json"> block: never evaluated as code.
(function () {
  "use strict";
  var holder = document.getElementById("loss-chart");
  var source = document.getElementById("loss-data");
  if (!holder || !source || typeof uPlot === "undefined") return;
  var series = JSON.parse(source.textContent);
  var width = Math.max(320, Math.min(900, holder.clientWidth || 900));
  window.basetenLossChart = new uPlot(
    {
      width: width,
      height: 280,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: "loss" }],
      series: [{ label: "step" }, { label: "loss", stroke: "#2563eb", width: 2, points: { show: series.steps.length <= 200 } }],
    },
    [series.steps, series.loss],
    holder
  );
})();
