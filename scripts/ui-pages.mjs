// Open the Baseten pages (the plugin's task-instance tabs and nav page) in headless Chromium, logged in
// with an Airflow JWT cookie, screenshot each, and print what each page shows as one JSON line.
//
//   node scripts/ui-pages.mjs BASE_URL TOKEN PAGES.json
//
// PAGES.json: [{"name", "path", "shot", "frame"?}]. With "frame", the page is Airflow's own UI and what is read
// is the Baseten page in its iframe (whose URL contains "frame"), once that has drawn its heading. For each page the output holds: status, loadMs (navigation to
// the load event, chart drawn), chart ({steps, loss} as uPlot holds them, or null), timeline (the status
// history's states), text (the page's visible text), scripts (how many <script> elements the DOM holds:
// a hostile name rendered as HTML would add one) and alerts (dialogs opened: a script that ran).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const modules = process.env.PLAYWRIGHT_CORE_DIR || join(process.cwd(), "build/ui-check/node_modules");
const { chromium } = require(join(modules, "playwright-core"));

const [base, token, pagesFile] = process.argv.slice(2);
const pages = JSON.parse(readFileSync(pagesFile, "utf8"));
const profile = mkdtempSync(join(tmpdir(), "baseten-ui-pages-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1100, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const out = [];
try {
  const url = new URL(base);
  await context.addCookies([{ name: "_token", value: token, domain: url.hostname, path: "/" }]);
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(60000);
  let alerts = 0;
  page.on("dialog", async (d) => { alerts += 1; await d.dismiss(); });
  // The static files, once, so each page's load time is the page's own (a browser caches them too).
  await page.goto(`${base}/baseten/static/uPlot.iife.min.js`);
  for (const p of pages) {
    const started = Date.now();
    const answer = await page.goto(`${base}${p.path}`, { waitUntil: "load" });
    let target = page;
    if (p.frame) {
      const iframe = page.locator(`iframe[src*="${p.frame}"]`);
      await iframe.waitFor();
      const handle = await iframe.elementHandle();
      target = await handle.contentFrame();
      await target.locator("h1").waitFor();
      await page.waitForTimeout(500); // Airflow's own panels finish rendering around the iframe
    }
    const loadMs = Date.now() - started;
    const shown = await target.evaluate(() => {
      const chart = window.basetenLossChart;
      return {
        chart: chart ? { steps: Array.from(chart.data[0]), loss: Array.from(chart.data[1]) } : null,
        timeline: Array.from(document.querySelectorAll("#timeline li")).map((li) => li.dataset.status),
        text: document.body.innerText,
        scripts: document.querySelectorAll("script").length,
      };
    });
    if (p.shot) await page.screenshot({ path: p.shot, fullPage: true });
    out.push({ name: p.name, status: answer.status(), loadMs, alerts, ...shown });
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
