// Drives a real VS Code (code-server) in headless Chromium through a task, as a user would:
// "Tether: New Task…" races two agents, the task panel shows the trials side by side, a
// file's diff opens between the two trials and between the base and a trial, and one trial
// is promoted by merge. Run by tests/e2e/vscode.rs, which checks the JSON printed last.
// Screenshots go to TETHER_SCREENSHOTS.

import { closeDiff, drive, page, palette, results, shot, step, text } from "./workbench.mjs";

async function main() {
  step("new task from the palette: two agents, one prompt");
  await palette("Tether: New Task…");
  await page.locator(".quick-input-widget", { hasText: "Which agents race the task?" }).waitFor();
  for (const agent of ["alpha", "beta"]) {
    const row = page.locator(".quick-input-list .monaco-list-row", { hasText: agent }).first();
    await row.locator('input[type="checkbox"], .monaco-checkbox, .quick-input-list-checkbox').first().click();
  }
  await shot("task-agents");
  await page.locator(".quick-input-widget input").first().press("Enter");
  await page.locator(".quick-input-widget", { hasText: "What should the trials do?" }).waitFor();
  const prompt = page.locator(".quick-input-widget input").first();
  await prompt.fill("fix subtract");
  await prompt.press("Enter");

  step("the task panel shows the trials side by side once both are done");
  const panel = page.frameLocator("iframe.webview.ready").frameLocator("iframe#active-frame");
  await panel.locator("[data-task-status='done']").waitFor({ timeout: 90_000 });
  // The evidence arrives with the reviews, after the trials settle.
  await panel.locator("tr[data-row='review'] td", { hasText: "failed" }).first().waitFor();
  await panel.locator("tr[data-row='verification'] td", { hasText: "failed" }).first().waitFor();
  results.trials_text = await text(panel.locator("#trials"));
  results.files_text = await text(panel.locator("#files"));
  await shot("task");

  step("a file's diff between the two trials");
  await panel.locator("#compare-with select").nth(0).selectOption({ label: "trial 1 (alpha)" });
  await panel.locator("#compare-with select").nth(1).selectOption({ label: "trial 2 (beta)" });
  await panel.locator("tr[data-file='calc/ops.py'] button", { hasText: "calc/ops.py" }).click();
  const diff = page.locator(".monaco-diff-editor").first();
  await diff.locator(".view-lines", { hasText: /return\s-\(b\s-\sa\)/ }).first().waitFor();
  results.trials_diff_tab = await text(page.locator(".tab.active", { hasText: "ops.py" }).last());
  await shot("task-diff");
  await closeDiff("↔");

  step("and between the base and a trial");
  await panel.locator("tr[data-file='calc/ops.py'] button[data-trial='1']").click();
  await diff.locator(".view-lines", { hasText: /return\sa\s-\sb/ }).first().waitFor();
  results.base_diff_tab = await text(page.locator(".tab.active", { hasText: "ops.py" }).last());
  await closeDiff("↔");

  step("promote trial 2 by merge, with a reason");
  const column = 2; // th is column 1, trial 1 is 2, trial 2 is 3
  const promoteCell = panel.locator("tr[data-row='promote'] td").nth(column - 1);
  await promoteCell.locator("input.reason").fill("keeps the operands' order visible");
  await promoteCell.locator("button[data-how='merge']").click();
  await panel.locator("[data-task-status='promoted']").waitFor();
  results.header_text = await text(panel.locator("#header"));
  await shot("task-promoted");

  step("the Sessions view lists the task");
  await page.locator('.activitybar a[aria-label^="Tether"]').first().click();
  const sessions = page.locator(".pane", { hasText: "Sessions" }).first();
  await sessions.locator(".monaco-list-row", { hasText: "promoted" }).first().waitFor();
  results.sessions_view = await text(sessions);
  await shot("task-sessions");

  step("Tether: Doctor shows tether doctor's report");
  await palette("Tether: Doctor");
  const report = page.locator(".part.panel .monaco-editor .view-lines").first();
  await report.locator(".view-line", { hasText: "state folder" }).first().waitFor();
  // The whole report in view: the panel maximized, scrolled to its top.
  await palette("View: Toggle Maximized Panel");
  await report.click();
  await page.keyboard.press("Control+Home");
  await report.locator(".view-line", { hasText: "tether doctor (" }).first().waitFor();
  results.doctor = await text(report);
  await shot("doctor");
}

await drive(main);
