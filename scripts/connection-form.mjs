// Open Airflow's "Add Connection" form in headless Chromium, pick Baseten, take a screenshot, and print
// what the form shows as JSON. Driven by playwright-core against Debian's chromium (no browser download).
//
//   node scripts/connection-form.mjs BASE_URL SCREENSHOT.png
//
// Prints {"labels": [...], "text": "...", "inputs": [...]} on stdout; exits non-zero on any failure.
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
  viewport: { width: 1280, height: 1150 },
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
  // and the API key; open first) and "Extra Fields" (ours). Record what each shows; screenshot both.
  const visibleLabels = async () =>
    (await dialog.locator("label:visible").allInnerTexts()).map((l) => l.replace(/\s*\*\s*$/, "").trim());
  const open = async (name) => {
    const trigger = dialog.getByRole("button", { name, exact: true });
    if ((await trigger.getAttribute("aria-expanded")) !== "true") await trigger.click();
    await dialog.locator(`[data-part=item-content][aria-labelledby="${await trigger.getAttribute("id")}"]`).first()
      .waitFor({ state: "visible" }).catch(() => {});
    await page.waitForTimeout(600); // let the open animation finish before the screenshot
  };
  await open("Standard Fields");
  await dialog.getByText("API Key", { exact: true }).waitFor();
  const standard = await visibleLabels();
  const standardInputs = await dialog.locator("input:visible").evaluateAll((els) =>
    els.map((e) => ({ name: e.getAttribute("name"), placeholder: e.getAttribute("placeholder") })),
  );
  await page.screenshot({ path: shot.replace(/\.png$/, "-standard.png") });
  await open("Extra Fields");
  await dialog.getByText("LowCodeAPI URL format", { exact: true }).waitFor();
  const extra = await visibleLabels();
  await page.screenshot({ path: shot });
  console.log(JSON.stringify({ standard, standardInputs, extra, text: await dialog.innerText() }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
