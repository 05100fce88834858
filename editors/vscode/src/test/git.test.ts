import { test } from "node:test";
import * as assert from "node:assert/strict";

import { branchLine, letter, splitFiles } from "../git";

test("files split into staged and unstaged, untracked with the unstaged", () => {
  const files = [
    { path: "a.py", index: "M", worktree: " " },
    { path: "b.py", index: "M", worktree: "M" },
    { path: "c.py", index: " ", worktree: "D" },
    { path: "new.py", index: "?", worktree: "?" },
  ];
  const { staged, unstaged } = splitFiles(files);
  assert.deepEqual(staged.map((file) => file.path), ["a.py", "b.py"]);
  assert.deepEqual(unstaged.map((file) => file.path), ["b.py", "c.py", "new.py"]);
  assert.equal(letter(files[3], "unstaged"), "U");
  assert.equal(letter(files[2], "unstaged"), "D");
});

test("the branch line says ahead, behind and the upstream", () => {
  const status = { branch: "tether/fix", baseBranch: "main", aheadOfBase: 1, behindBase: 0, files: [] };
  assert.equal(branchLine(status), "tether/fix → main: 1 ahead, 0 behind · not pushed yet");
  assert.equal(
    branchLine({ ...status, upstream: { name: "origin/tether/fix", ahead: 0, behind: 0 } }),
    "tether/fix → main: 1 ahead, 0 behind · origin/tether/fix: up to date",
  );
  assert.equal(
    branchLine({ ...status, upstream: { name: "origin/tether/fix", ahead: 2, behind: 1 } }),
    "tether/fix → main: 1 ahead, 0 behind · origin/tether/fix: 2 to push, 1 to pull",
  );
});
