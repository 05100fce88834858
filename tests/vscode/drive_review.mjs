// Reviews a session's three-file diff hunk by hunk in a real VS Code: a hunk on lines the
// user changed since (a conflict: shown, not applied), the review panel's
// Accept file / Reject / Reject file buttons and the diff editor's Accept Hunk title action,
// then saves and sends a follow-up; then the panel's checkpoints timeline: rewind to the
// start and undo it. Run by tests/e2e/vscode_review.rs.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { drive, frameWith, newSession, page, palette, results, shot, step, text } from "./workbench.mjs";

async function progress(review, wanted) {
  await review.locator("#progress", { hasText: wanted }).waitFor();
  return text(review.locator("#progress"));
}

/** Waits (up to 30 s) until `locator`'s text passes `wanted`. */
async function untilText(locator, wanted) {
  for (let tries = 0; !wanted(await text(locator)); tries++) {
    if (tries > 300) {
      throw new Error(`the editor still shows: ${await text(locator)}`);
    }
    await page.waitForTimeout(100);
  }
}

async function main() {
  step("a session changes three files");
  const panel = await newSession("tidy the calculator", "tidied up");

  step("open the review from the panel");
  await panel.locator("#review-hunks").click();
  const review = await frameWith("#progress");
  results.progress_start = await progress(review, "0 of 4");
  await shot("review");

  step("a conflict: the user changed README.md's first line since; accepting it is refused");
  const readmePath = join(process.env.TETHER_REPO, "README.md");
  const original = readFileSync(readmePath, "utf8");
  writeFileSync(readmePath, original.replace("# calc\n", "# calc (mine)\n"));
  // The review opened README.md's diff: the server reads the user's copy from that buffer,
  // so accept once the editor has reloaded it.
  const yours = page.locator(".monaco-diff-editor .editor.original .view-lines").first();
  await untilText(yours, (shown) => shown.includes("(mine)"));
  await review.locator("section[data-path='README.md'] .accept-file").click();
  const readmeSection = review.locator("section[data-path='README.md']");
  await readmeSection.locator(".hunk-conflict .conflict").waitFor();
  results.conflict_section = await text(readmeSection);
  results.progress_conflict = await text(review.locator("#progress"));
  const warning = page.locator(".notification-toast", { hasText: "you changed the same lines" }).first();
  await warning.waitFor();
  results.conflict_notice = await text(warning.locator(".notification-list-item-message"));
  results.readme_after_conflict = readFileSync(readmePath, "utf8");
  await shot("review-conflict");
  await palette("Notifications: Clear All Notifications");
  await warning.waitFor({ state: "detached" });
  // The user takes their change back, then accepts once the editor has it.
  writeFileSync(readmePath, original);
  await untilText(yours, (shown) => !shown.includes("(mine)"));

  step("accept README.md whole");
  await review.locator("section[data-path='README.md'] .accept-file").click();
  results.progress_after_readme = await progress(review, "1 of 4");

  step("reject ops.py's first hunk");
  await review.locator(".hunk[data-path='calc/ops.py'][data-hunk='0'] .reject-hunk").click();
  results.progress_after_reject = await progress(review, "2 of 4");

  step("accept ops.py's second hunk from the diff editor's title bar");
  await review.locator("section[data-path='calc/ops.py'] .open-diff").click();
  const diff = page.locator(".monaco-diff-editor").first();
  const modified = diff.locator(".editor.modified .view-line", { hasText: "true division" }).first();
  await modified.waitFor();
  await modified.click();
  await shot("review-diff");
  await page.locator('.editor-actions a[aria-label^="Tether: Accept Hunk"]').first().click();
  results.progress_after_title_action = await progress(review, "3 of 4");

  step("reject the new file");
  await review.locator("section[data-path='calc/extra.py'] .reject-file").click();
  results.progress_end = await progress(review, "4 of 4");
  await shot("reviewed");

  step("the buffers: the accepted hunks, not the rejected ones");
  results.ops_buffer = await text(diff.locator(".editor.original .view-lines"));
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "README.md" }).first().click();
  const readme = page.locator(".editor-instance .monaco-editor .view-lines", { hasText: "A tiny arithmetic" }).first();
  await readme.waitFor();
  results.readme_buffer = await text(readme);

  step("save what was applied, then a follow-up");
  // Accepting answers at once; the edit itself reaches the editor just after.
  await diff.locator(".editor.original .view-line", { hasText: "true division" }).first().waitFor();
  await page.locator(".tab.dirty", { hasText: "README.md" }).first().waitFor();
  // Save All, once more if a buffer was still being edited when the first one ran.
  for (let attempt = 0; ; attempt++) {
    await palette("File: Save All Files");
    try {
      await page.locator(".tab.dirty").first().waitFor({ state: "detached", timeout: 10_000 });
      break;
    } catch (error) {
      results.dirty_tabs = await page.locator(".tab.dirty").allInnerTexts();
      if (attempt > 0) {
        throw error;
      }
    }
  }
  await panel.locator("#message").fill("thanks");
  await panel.locator("#message").press("Control+Enter");
  await panel.locator(".entry-message", { hasText: "understood" }).waitFor();

  step("the checkpoints timeline: rewind to the start, then undo it");
  // The session panel, in front of the review panel.
  await page.locator(".tab", { hasText: /^Tether: / }).first().click();
  await panel.locator("#checkpoints").click();
  const timeline = panel.locator("#timeline");
  await timeline.locator(".checkpoint[data-checkpoint='turn-1']").waitFor();
  results.timeline = await text(timeline);
  await shot("timeline");
  await timeline.locator(".checkpoint[data-checkpoint='start'] .rewind").click();
  const undo = timeline.locator(".checkpoint[data-checkpoint='before-rewind-1'] .undo-rewind");
  await undo.waitFor();
  results.timeline_rewound = await text(timeline);
  await undo.click();
  await timeline.locator(".checkpoint[data-checkpoint='before-rewind-2']").waitFor();
  results.timeline_undone = await text(timeline);
}

await drive(main);
