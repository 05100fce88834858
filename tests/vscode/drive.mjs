// Drives a real VS Code (code-server) in headless Chromium the way a user would: the command
// palette, the session panel's form and buttons, the editor, the Problems view and the
// Sessions view. Run by tests/e2e/vscode.rs, which starts code-server and the fake model and
// checks the JSON this prints as its last line. Screenshots go to TETHER_SCREENSHOTS.

import { closeDiff as closeTab, drive, page, palette, results, shot, step, text } from "./workbench.mjs";

/**
 * The fixed line. A regular expression, because a string matches case-insensitively ("Return
 * a - b." in the docstring too); `\s`, because the editor draws spaces as U+00A0.
 */
const FIXED = /return\sa\s-\sb/;

/** Closes the open "yours ↔ session" diff editor. */
async function closeDiff() {
  await closeTab("yours ↔");
}

/**
 * Runs `pick` (a palette command and its quick picks) with focus put in the session panel
 * first, and waits until it is there. Focus that moves late (a closed diff handing it to the
 * panel, the message box) closes a quick pick opened meanwhile; the user would open it again,
 * and so does this, up to three times.
 */
async function inQuickPick(panel, pick) {
  for (let attempt = 1; ; attempt++) {
    try {
      await panel.locator("#header .title").click();
      await page.waitForFunction(() => document.activeElement?.matches("iframe.webview"));
      await pick();
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
      process.stderr.write(`the quick pick closed before a choice (attempt ${attempt}); opening it again\n`);
      await page.keyboard.press("Escape");
    }
  }
}

async function main() {
  step("new session from the palette");
  await palette("Tether: New Session");
  // The agent picker: the default first; the agents that are not installed say how to get them.
  await page.locator(".quick-input-widget", { hasText: "Which agent runs the session?" }).waitFor();
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "fake (default)" }).first().waitFor();
  await page
    .locator(".quick-input-list .monaco-list-row", { hasText: "claude" })
    .filter({ hasText: "not available" })
    .first()
    .waitFor();
  await shot("agent-picker");
  await page.keyboard.press("Enter");
  const prompt = page.locator(".quick-input-widget input").first();
  await page.locator(".quick-input-widget", { hasText: "What should the session do?" }).waitFor();
  await prompt.fill("fix subtract, asking me first");
  await prompt.press("Enter");

  step("the panel shows the question form");
  const panel = page.frameLocator("iframe.webview.ready").frameLocator("iframe#active-frame");
  const form = panel.locator(".question-form");
  await form.waitFor();
  // An answer of one's own: typing it chooses "Other".
  await form.locator("input.other").fill("neither: use minus");
  await form.locator(".tab", { hasText: "Which checks?" }).click();
  await form.locator("label", { hasText: "unit tests" }).click();
  await form.locator("label", { hasText: "types" }).click();
  await shot("question");
  await form.locator(".tab", { hasText: "Anything else?" }).click();
  await form.locator("textarea").fill("keep it small");
  await form.locator("button", { hasText: "Answer" }).click();

  step("reject the first plan with feedback");
  const firstPlan = panel.locator(".entry-plan").first();
  await firstPlan.locator("textarea.feedback").fill("smaller please");
  await firstPlan.locator("button", { hasText: "Reject" }).click();
  await firstPlan.getByText("Rejected: smaller please").waitFor();

  step("approve the second");
  const approve = panel.locator(".entry-plan").nth(1).locator("button", { hasText: "Approve" });
  await approve.waitFor();
  await shot("plan");
  await approve.click();

  step("allow the edit once");
  const allow = panel.locator(".entry-permission button", { hasText: "Allow once" });
  await allow.waitFor();
  await shot("permission");
  await allow.click();

  step("the turn and its review arrive");
  const reply = panel.locator(".entry-message", { hasText: "fixed subtract as you said" });
  await reply.waitFor();
  results.markdown_code = await reply.locator("code").first().innerText();
  await reply.getByText("<img src=x", { exact: false }).waitFor();
  results.injected_images = await reply.locator("img").count();
  const finding = panel.locator(".entry-findings button", { hasText: "calc/ops.py:11" });
  await finding.waitFor();
  await panel.locator("[data-status='waiting']").waitFor();
  results.panel_text = await text(panel.locator("#entries"));
  await shot("transcript");

  step("a changed file's link opens its diff beside the panel, before applying");
  await panel.locator(".entry-fileChange button", { hasText: "calc/ops.py" }).click();
  const diff = page.locator(".monaco-diff-editor").first();
  await diff.locator(".view-lines", { hasText: FIXED }).first().waitFor();
  results.diff_tab = await text(page.locator(".tab.active", { hasText: "ops.py" }).last());
  results.panel_visible_beside_diff = await page.locator("iframe.webview.ready").first().isVisible();
  await shot("diff");
  await closeDiff();

  step("Open Diff from the palette: pick the session, then one of its changed files");
  // Closing the diff gives the panel focus, late: see `inQuickPick`.
  await inQuickPick(panel, async () => {
    await palette("Tether: Open Diff");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "fix-subtract-asking-me-first" }).first().click({ timeout: 15000 });
    const fileRow = page.locator(".quick-input-list .monaco-list-row", { hasText: "calc/ops.py" }).first();
    await fileRow.waitFor({ timeout: 15000 });
    results.palette_diff_choices = await text(page.locator(".quick-input-list").first());
    await fileRow.click({ timeout: 15000 });
  });
  await diff.locator(".view-lines", { hasText: FIXED }).first().waitFor();
  results.palette_diff_tab = await text(page.locator(".tab.active", { hasText: "ops.py" }).last());
  await closeDiff();

  step("open the finding's file and apply the session's changes into it");
  await finding.click();
  const editor = page.locator(".editor-instance .monaco-editor", { hasText: "def subtract" }).first();
  await editor.waitFor();
  await panel.locator("#apply").click();
  await page
    .locator(".editor-instance .monaco-editor .view-lines", { hasText: FIXED })
    .first()
    .waitFor();
  results.editor_text = await text(editor.locator(".view-lines"));
  await editor.locator(".view-lines").click();
  await page.keyboard.press("Control+S");
  await page.locator(".tab.dirty", { hasText: "ops.py" }).waitFor({ state: "detached" });
  await shot("applied");

  step("the Sessions view lists the session");
  await page.locator('.activitybar a[aria-label^="Tether"]').first().click();
  const sessions = page.locator(".pane", { hasText: "Sessions" }).first();
  await sessions.locator(".monaco-list-row", { hasText: "waiting" }).first().waitFor();
  results.sessions_view = await text(sessions);
  await shot("sessions");

  step("the finding is a problem");
  await palette("Problems: Focus on Problems View");
  const problems = page.locator(".markers-panel").first();
  await problems.locator(".monaco-list-row", { hasText: "no test catches swapped operands" }).first().waitFor();
  results.problems = await text(problems);
  await shot("problems");

  step("a follow-up from the message box");
  await panel.locator("#message").fill("thanks, that's all");
  await panel.locator("#message").press("Control+Enter");
  await panel.locator(".entry-message", { hasText: "glad to help" }).waitFor();
  results.follow_up = await text(panel.locator(".entry-message").last());

  step("rate the reply");
  const thanks = panel.locator(".entry-message", { hasText: "glad to help" });
  await thanks.locator(".feedback button[data-rating='up']").click();
  await thanks.locator(".feedback button.rated[data-rating='up']").waitFor();
  results.rated = true;

  step("edit the follow-up and run again from it");
  const followUp = panel.locator(".entry-message.role-user", { hasText: "thanks, that's all" }).last();
  await followUp.locator("button.edit-message").click();
  await panel.locator("#send", { hasText: "Run edited" }).waitFor();
  await panel.locator("#message").fill("thanks, edited");
  await panel.locator("#message").press("Control+Enter");
  await panel.locator(".entry-message", { hasText: "edited reply" }).waitFor();
  await panel.locator(".entry.superseded", { hasText: "Superseded by an edit" }).first().waitFor();
  results.superseded = await panel.locator(".entry.superseded").count();
  await shot("edited");
  results.reply_cost = await text(panel.locator(".entry-message", { hasText: "edited reply" }).locator(".cost"));

  step("the context meter, and compacting the conversation");
  const meter = panel.locator(".context-meter");
  await meter.waitFor();
  results.meter = await text(meter);
  results.meter_level = await meter.getAttribute("data-level");
  await shot("context");
  await panel.locator("#compact").click();
  await panel.locator(".entry-message.role-summary", { hasText: "the summary" }).waitFor();

  step("paste an image into the message box and send it");
  // A 1×1 PNG, pasted as the clipboard would give it.
  const PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
  await panel.locator("#message").evaluate((box, pixel) => {
    const bytes = Uint8Array.from(atob(pixel), (c) => c.charCodeAt(0));
    const clipboard = new DataTransfer();
    clipboard.items.add(new File([bytes], "pixel.png", { type: "image/png" }));
    box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: clipboard, bubbles: true, cancelable: true }));
  }, PIXEL);
  await panel.locator("#attachments .pending-attachment", { hasText: "pixel.png" }).waitFor();
  await panel.locator("#message").fill("what is in this picture?");
  await panel.locator("#message").press("Control+Enter");
  await panel.locator(".entry-message", { hasText: "a single pixel" }).waitFor();
  const thumbnail = panel.locator(".entry-message.role-user .attached img.thumbnail").last();
  await page.waitForFunction(
    (image) => image.src.startsWith("data:image/png;base64,") && image.naturalWidth === 1,
    await thumbnail.elementHandle(),
  );
  results.thumbnail = await thumbnail.getAttribute("src");
  results.pending_after_send = await panel.locator("#attachments .pending-attachment").count();
  await shot("attachment");

  step("complete a file and a command in the message box");
  const box = panel.locator("#message");
  await box.fill("compare @opspy");
  await panel.locator("#completions li", { hasText: "@calc/ops.py" }).first().waitFor();
  await shot("completion");
  await box.press("Tab");
  results.completed_mention = await box.inputValue();
  await box.fill("/rev");
  await panel.locator("#completions li", { hasText: "/review" }).first().waitFor();
  results.command_items = await text(panel.locator("#completions"));
  await box.press("Enter");
  results.completed_command = await box.inputValue();
  await box.fill("");

  step("the findings list, Fix, then Dismiss");
  // The message box had focus: see `inQuickPick`.
  const list = page.locator(".quick-input-widget", { hasText: "Findings of" });
  await inQuickPick(panel, async () => {
    await palette("Tether: Findings");
    await page
      .locator(".quick-input-list .monaco-list-row", { hasText: "fix-subtract-asking-me-first" })
      .first()
      .click({ timeout: 15000 });
    await list.locator(".monaco-list-row", { hasText: "no test catches swapped operands" }).waitFor({ timeout: 15000 });
  });
  results.findings_list = await text(list.locator(".quick-input-list"));
  await shot("findings");
  await page.keyboard.press("Escape");
  const row = panel.locator(".finding", { hasText: "no test catches swapped operands" }).first();
  await row.locator(".fix-finding").click();
  await panel.locator(".entry-message", { hasText: "added the test" }).waitFor();
  await row.locator(".dismiss-finding").click();
  await row.locator(".dismissed").waitFor();
  results.finding_dismissed = true;
  await palette("Problems: Focus on Problems View");
  const problemsView = page.locator(".markers-panel").first();
  await problemsView
    .locator(".monaco-list-row", { hasText: "no test catches swapped operands" })
    .waitFor({ state: "detached" });
  results.problems_after_dismiss = await text(problemsView);
}

await drive(main);
