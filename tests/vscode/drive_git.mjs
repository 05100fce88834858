// The Git panel in a real VS Code: a refused commit (nothing staged), stage one file, stage
// all, commit, push to the bare remote, a push the remote refuses (someone else pushed),
// merge into the base. Run by tests/e2e/vscode_review.rs.

import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { drive, frameWith, newSession, results, shot, step, text } from "./workbench.mjs";

async function main() {
  step("a session changes two files");
  const panel = await newSession("tidy the calculator", "tidied up");

  step("open the Git panel from the session panel");
  await panel.locator("#git").click();
  const git = await frameWith("#branch-line");
  await git.locator(".git-unstaged").first().waitFor();
  results.git_before = await text(git.locator("body"));
  await shot("git");

  step("commit with nothing staged is refused, saying why");
  await git.locator("#commit-message").fill("Tidy the calculator");
  await git.locator("#commit-button").click();
  await git.locator("#error:not([hidden])").waitFor();
  results.git_refusal = await text(git.locator("#error"));

  step("stage one file, then all");
  await git.locator(".git-unstaged[data-path='README.md'] .stage").click();
  await git.locator(".git-staged[data-path='README.md']").waitFor();
  results.git_one_staged = await text(git.locator("#files"));
  await git.locator(".stage-all").click();
  await git.locator(".git-staged[data-path='calc/extra.py']").waitFor();

  step("commit, push, merge into main");
  await git.locator("#commit-message").fill("Tidy the calculator");
  await git.locator("#commit-button").click();
  await git.locator("#done", { hasText: "commit: done" }).waitFor();
  results.git_committed = await text(git.locator("#branch-line"));
  await git.locator(".push").click();
  await git.locator("#branch-line", { hasText: "up to date" }).waitFor();
  results.git_pushed = await text(git.locator("#branch-line"));

  step("someone else pushes to the branch: the next push is refused, saying why");
  const other = join(mkdtempSync(join(tmpdir(), "tether-other-")), "clone");
  const gitIn = (dir, ...args) =>
    execFileSync("git", ["-C", dir, "-c", "user.name=Other", "-c", "user.email=other@example.invalid", ...args], {
      encoding: "utf8",
    });
  gitIn(tmpdir(), "clone", "-q", "--branch", "tether/tidy-the-calculator", process.env.TETHER_REMOTE, other);
  writeFileSync(join(other, "theirs.txt"), "theirs\n");
  gitIn(other, "add", "theirs.txt");
  gitIn(other, "commit", "-q", "-m", "theirs");
  gitIn(other, "push", "-q", "origin", "tether/tidy-the-calculator");
  await git.locator(".push").click();
  await git.locator("#error:not([hidden])", { hasText: "fast-forward" }).waitFor();
  results.git_push_refused = await text(git.locator("#error"));
  await shot("git-push-refused");
  await git.locator(".merge-to-base").click();
  await git.locator("#done", { hasText: "mergeToBase: done" }).waitFor();
  results.git_merged = await text(git.locator("#branch-line"));
  await shot("git-merged");
}

await drive(main);
