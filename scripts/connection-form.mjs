// Open Airflow's "Add Connection" form in headless Chromium, pick Baseten, take a screenshot, and print
// what the form shows as JSON. Driven by playwright-core against Debian's chromium (no browser download).
//
//   node scripts/connection-form.mjs BASE_URL SCREENSHOT.png
//
// Writes SCREENSHOT.png (the "Extra Fields" section open) and SCREENSHOT-standard.png ("Standard Fields" open),
// each cropped to the dialog, and prints on stdout
//   {"standard": [...], "standardInputs": [...], "extra": [...], "text": "..."}
// where "standard" and "extra" are the field labels that lie wholly inside the matching screenshot.
// Exits non-zero on any failure.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const modules = process.env.PLAYWRIGHT_CORE_DIR || join(process.cwd(), "build/ui-check/node_modules");
const { chromium } = require(join(modules, "playwright-core"));

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error("usage: node connection-form.mjs BASE_URL SCREENSHOT.png");
  process.exit(2);
}
const executable = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "baseten-ui-check-"));
// launchPersistentContext takes the user-data-dir itself: a new, empty one every run.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: executable,
  headless: true,
  // Tall enough that the whole dialog, every field of the larger section open, fits without scrolling:
  // the screenshot is cropped to the dialog, so the unused height costs nothing.
  viewport: { width: 1280, height: 2400 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(30000);
  await page.goto(`${base}/connections`);
  await page.getByRole("button", { name: "Add Connection" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("heading", { name: "Add Connection" }).waitFor();
  await dialog.locator("input[name=connection_id]").fill("baseten_default");
  // Connection Type is a react-select combobox: type to filter, then pick the option.
  const type = dialog.getByRole("combobox");
  await type.click();
  await type.fill("Baseten");
  await page.getByRole("option", { name: "Baseten", exact: true }).click();
  // The form groups fields in an accordion that opens one section at a time: "Standard Fields" (host
  // and the API key; open first) and "Extra Fields" (ours). Screenshot the dialog with each open, and
  // record which labels the screenshot holds: visible, and wholly inside the dialog and the viewport.
  const labelsInShot = async () => {
    const box = await dialog.boundingBox();
    const view = page.viewportSize();
    return dialog.locator("label:visible").evaluateAll(
      (els, [box, view]) =>
        els
          .filter((e) => {
            const r = e.getBoundingClientRect();
            const inside = (lo, hi, a, b) => a >= lo - 1 && b <= hi + 1;
            return (
              r.width > 0 &&
              inside(box.x, box.x + box.width, r.left, r.right) &&
              inside(box.y, box.y + box.height, r.top, r.bottom) &&
              inside(0, view.width, r.left, r.right) &&
              inside(0, view.height, r.top, r.bottom)
            );
          })
          .map((e) => e.innerText.replace(/\s*\*\s*$/, "").trim()),
      [box, view],
    );
  };
  const open = async (name) => {
    const trigger = dialog.getByRole("button", { name, exact: true });
    if ((await trigger.getAttribute("aria-expanded")) !== "true") await trigger.click();
    await dialog.locator(`[data-part=item-content][aria-labelledby="${await trigger.getAttribute("id")}"]`).first()
      .waitFor({ state: "visible" }).catch(() => {});
    await page.waitForTimeout(600); // let the open animation finish before the screenshot
  };
  await open("Standard Fields");
  await dialog.getByText("API Key", { exact: true }).waitFor();
  const standard = await labelsInShot();
  const standardInputs = await dialog.locator("input:visible").evaluateAll((els) =>
    els.map((e) => ({ name: e.getAttribute("name"), placeholder: e.getAttribute("placeholder") })),
  );
  await dialog.screenshot({ path: shot.replace(/\.png$/, "-standard.png") });
  await open("Extra Fields");
  await dialog.getByText("LowCodeAPI URL format", { exact: true }).waitFor();
  const extra = await labelsInShot();
  await dialog.screenshot({ path: shot });
  console.log(JSON.stringify({ standard, standardInputs, extra, text: await dialog.innerText() }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
