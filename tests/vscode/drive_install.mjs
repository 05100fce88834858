// A set-up where the extension cannot start its server (TETHER_INSTALL_CASE: the binary is
// missing, or is another version): what the user is told, and the ways forward offered. Run
// by tests/e2e/vscode_review.rs.

import { drive, page, results, shot, step, text } from "./workbench.mjs";

async function main() {
  step("the extension says what is wrong");
  // The offer's own toast (a binary of another version is then started, and its failure has
  // toasts of its own).
  const toast = page.locator(".notification-toast", { hasText: "Install it with" }).first();
  await toast.waitFor();
  results.notice = await text(toast.locator(".notification-list-item-message"));
  results.buttons = await toast.locator(".monaco-button").allInnerTexts();
  await shot(`binary-${process.env.TETHER_INSTALL_CASE}`);
}

await drive(main, { server: false });
