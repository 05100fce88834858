// What the drivers share: a headless Chromium on the code-server tests/e2e/vscode.rs started
// (TETHER_URL, the folder TETHER_REPO), the steps a driver reports, screenshots into
// TETHER_SCREENSHOTS, and the JSON of results printed as the last line (a failure too, with
// its screenshot).

import { chromium } from "playwright-core";

export const results = { steps: [] };
/** The workbench's page, once `drive` opened it. */
export let page;

export function step(name) {
  results.steps.push(name);
  process.stderr.write(`step: ${name}\n`);
}

export async function shot(name) {
  await page.screenshot({ path: `${process.env.TETHER_SCREENSHOTS}/vscode-${name}.png` });
}

/** Runs a command from the palette, as a user types it. */
export async function palette(command) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input").first();
  await input.waitFor();
  await input.fill(`>${command}`);
  // The row whose label is exactly the command: "File: Save All" must not run "File: Save All
  // in Group", which a recently used one may put first.
  const exact = new RegExp(`^${command.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
  const row = page
    .locator(".quick-input-list .monaco-list-row")
    .filter({ has: page.locator(".label-name", { hasText: exact }) })
    .first();
  await row.waitFor();
  await row.click();
}

/**
 * Starts a session from the palette with the default agent and `task`, and waits for its
 * panel to show `reply`; returns the panel's frame.
 */
export async function newSession(task, reply) {
  await palette("Tether: New Session");
  await page.locator(".quick-input-widget", { hasText: "Which agent runs the session?" }).waitFor();
  await page.keyboard.press("Enter");
  await page.locator(".quick-input-widget", { hasText: "What should the session do?" }).waitFor();
  const prompt = page.locator(".quick-input-widget input").first();
  await prompt.fill(task);
  await prompt.press("Enter");
  const panel = await frameWith(".entry-message");
  await panel.locator(".entry-message", { hasText: reply }).waitFor();
  return panel;
}

/** The frame of the webview that has `selector` (several webviews may be open at once). */
export async function frameWith(selector) {
  for (let tries = 0; tries < 300; tries++) {
    for (const frame of page.frames()) {
      if ((await frame.locator(selector).count().catch(() => 0)) > 0) {
        return frame;
      }
    }
    await page.waitForTimeout(200);
  }
  throw new Error(`no webview shows ${selector}`);
}

/** The text a locator shows, with the editor's non-breaking spaces made plain. */
export async function text(locator) {
  return (await locator.innerText()).replace(/\u00a0/g, " ");
}

/** Closes the diff editor whose tab shows `tabText`. */
export async function closeDiff(tabText) {
  const tab = page.locator(".tab", { hasText: tabText }).first();
  await tab.hover();
  await tab.locator('[aria-label^="Close"]').first().click();
  await page.locator(".monaco-diff-editor").first().waitFor({ state: "detached" });
}

/**
 * Opens the workbench on the repository, waits for the extension (unless `server` is false:
 * a test of a set-up where it cannot start), runs `main`, prints the results.
 */
export async function drive(main, { server = true } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.TETHER_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
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
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(60_000);
    step("open the workbench");
    await page.goto(`${process.env.TETHER_URL}/?folder=${encodeURIComponent(process.env.TETHER_REPO)}`);
    await page.locator(".monaco-workbench").waitFor();
    if (server) {
      step("the extension starts");
      await page.locator(".statusbar-item", { hasText: "tether:" }).first().waitFor();
    }
    await main();
    step("done");
    process.stdout.write(`${JSON.stringify(results)}\n`);
  } catch (error) {
    await page?.screenshot({ path: `${process.env.TETHER_SCREENSHOTS}/vscode-failure.png` }).catch(() => {});
    results.error = String(error?.stack ?? error);
    process.stdout.write(`${JSON.stringify(results)}\n`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
