import { test } from "node:test";
import * as assert from "node:assert/strict";

import { Review, parseHunks } from "../review";

const TWO_HUNKS = [
  "--- a/calc/ops.py",
  "+++ b/calc/ops.py",
  "@@ -2,7 +2,7 @@",
  " ",
  " ",
  " def add(a, b):",
  '-    """Return a + b."""',
  '+    """Return the sum of a and b."""',
  "     return a + b",
  " ",
  " ",
  "@@ -20,4 +20,4 @@",
  "     if b == 0:",
  '         raise ValueError("cannot divide by zero")',
  "-    return a / b",
  "+    return a / b  # true division",
  "",
].join("\n");

const NEW_FILE = ["--- /dev/null", "+++ b/calc/extra.py", "@@ -0,0 +1,2 @@", "+def extra():", "+    pass", ""].join("\n");

function review(): Review {
  return new Review([
    { path: "calc/ops.py", status: "modified", additions: 2, deletions: 2, patch: TWO_HUNKS, binary: false },
    { path: "calc/extra.py", status: "added", additions: 2, deletions: 0, patch: NEW_FILE, binary: false },
  ]);
}

test("hunks are read from the patch, numbered as apply takes them, with their lines", () => {
  const hunks = parseHunks(TWO_HUNKS);
  assert.equal(hunks.length, 2);
  assert.deepEqual(
    hunks.map((hunk) => [hunk.index, hunk.oldStart, hunk.oldEnd, hunk.newStart, hunk.newEnd]),
    [
      [0, 1, 8, 1, 8],
      [1, 19, 23, 19, 23],
    ],
  );
  assert.equal(hunks[1].lines[3], "+    return a / b  # true division");
  // An added file: nothing in the base, two lines in the session's copy.
  const added = parseHunks(NEW_FILE)[0];
  assert.deepEqual([added.oldStart, added.oldEnd, added.newStart, added.newEnd], [0, 0, 0, 2]);
});

test("accept applies at once; rejections wait for the file's last decision, then are told together", () => {
  const r = review();
  assert.equal(r.progress(), "0 of 3 hunks reviewed");
  // Rejecting hunk 0 first: nothing to send yet.
  assert.equal(r.request("calc/ops.py", [0], "rejected"), undefined);
  assert.equal(r.progress(), "1 of 3 hunks reviewed");
  // Accepting hunk 1, the file's last: applied, and hunk 0's rejection told with it.
  const request = r.request("calc/ops.py", [1], "accepted");
  assert.deepEqual(request, { hunks: { "calc/ops.py": [1] }, reject: { "calc/ops.py": [0] } });
  r.record("calc/ops.py", [1], "accepted", { path: "calc/ops.py", applied: [1], conflicts: [], rejected: [0] }, true);
  assert.equal(r.progress(), "2 of 3 hunks reviewed");
  // Rejecting the whole new file: told at once, nothing applied.
  assert.deepEqual(r.request("calc/extra.py", [0], "rejected"), { hunks: { "calc/extra.py": [] }, reject: { "calc/extra.py": [0] } });
  r.record("calc/extra.py", [0], "rejected", { path: "calc/extra.py", applied: [], conflicts: [], rejected: [0] }, true);
  assert.ok(r.done());
  // Nothing left to decide: nothing to send.
  assert.equal(r.request("calc/ops.py", [0, 1], "accepted"), undefined);
});

test("a hunk on lines the user changed is a conflict: shown, left undecided", () => {
  const r = review();
  const request = r.request("calc/ops.py", [0], "accepted");
  assert.deepEqual(request, { hunks: { "calc/ops.py": [0] }, reject: {} });
  const said = r.record("calc/ops.py", [0], "accepted", { path: "calc/ops.py", applied: [], conflicts: [0], rejected: [] }, false);
  assert.match(said ?? "", /you changed the same lines/);
  const hunk = r.file("calc/ops.py")?.hunks[0];
  assert.equal(hunk?.decision, undefined);
  assert.equal(hunk?.conflict, true);
  assert.equal(r.progress(), "0 of 3 hunks reviewed");
});

test("the hunk under the cursor, on either side", () => {
  const r = review();
  assert.equal(r.hunkAt("calc/ops.py", 5, "session")?.index, 0);
  assert.equal(r.hunkAt("calc/ops.py", 21, "yours")?.index, 1);
  assert.equal(r.hunkAt("calc/ops.py", 12, "session"), undefined);
  assert.equal(r.hunkAt("calc/extra.py", 0, "yours")?.index, 0);
});
