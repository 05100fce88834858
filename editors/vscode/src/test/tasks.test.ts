import { test } from "node:test";
import * as assert from "node:assert/strict";

import { type TaskInfo, type TrialSummary, TaskStore, describeTask, duration, evidenceRows, promotable } from "../tasks";

function trial(index: number, more: Partial<TrialSummary> = {}): TrialSummary {
  return {
    index,
    sessionId: `s${index}`,
    name: `greet-${index}`,
    branch: `tether/greet-${index}`,
    provider: index === 1 ? "claude" : "local",
    model: "default",
    status: "waiting",
    filesChanged: 2,
    additions: 5,
    deletions: 1,
    findings: { critical: 0, high: 1, medium: 0, low: 2 },
    hooks: [],
    costUsd: 0.01234,
    inputTokens: 100,
    outputTokens: 20,
    durationMs: 65_000,
    ...more,
  };
}

function task(more: Partial<TaskInfo> = {}): TaskInfo {
  return {
    id: "t1",
    name: "greet",
    title: "Greet",
    prompt: "Greet",
    status: "done",
    repo: "/r",
    baseBranch: "main",
    baseCommit: "abc",
    createdAt: "2026-12-03T00:00:00.000Z",
    trials: [
      trial(1, { verification: "passed", hooksPassed: true, hooks: [{ name: "tests", status: "success" }] }),
      trial(2, {
        verification: "failed",
        hooksPassed: false,
        hooks: [
          { name: "tests", status: "failed", exitCode: 1 },
          { name: "lint", status: "skipped" },
        ],
      }),
    ],
    ...more,
  };
}

test("the side-by-side rows have one cell per trial, evidence written out", () => {
  const rows = new Map(evidenceRows(task()).map((row) => [row.label, row.cells]));
  assert.deepEqual(rows.get("agent"), ["claude/default", "local/default"]);
  assert.deepEqual(rows.get("+/−"), ["+5 −1", "+5 −1"]);
  assert.deepEqual(rows.get("findings C/H/M/L"), ["0/1/0/2", "0/1/0/2"]);
  assert.deepEqual(rows.get("verification"), ["passed", "failed"]);
  assert.deepEqual(rows.get("tests"), ["passed", "failed: tests"]);
  assert.deepEqual(rows.get("cost"), ["$0.0123", "$0.0123"]);
  assert.deepEqual(rows.get("time"), ["1m05s", "1m05s"]);
});

test("only settled trials of an unpromoted task can be promoted", () => {
  const done = task();
  assert.equal(promotable(done, done.trials[0]), true);
  assert.equal(promotable(done, trial(3, { status: "running" })), false);
  assert.equal(promotable(done, trial(3, { status: "failed" })), false);
  assert.equal(promotable(done, trial(3, { gone: true })), false);
  const promoted = task({ promoted: { sessionId: "s1", trial: 1, how: "merge" } });
  assert.equal(promotable(promoted, promoted.trials[1]), false);
  assert.equal(describeTask(promoted), "done · 2 trials · main · trial 1 promoted (merge)");
});

test("the store keeps the latest of each task, newest first, and finds a trial's task", () => {
  const store = new TaskStore();
  assert.equal(store.apply(task()), true);
  assert.equal(store.apply(task({ status: "promoted" })), false);
  store.apply(task({ id: "t2", createdAt: "2026-12-04T00:00:00.000Z", trials: [trial(9, { sessionId: "s9" })] }));
  assert.deepEqual(store.all().map((t) => t.id), ["t2", "t1"]);
  assert.equal(store.get("t1")?.status, "promoted");
  assert.equal(store.taskOf("s9")?.id, "t2");
  assert.equal(duration(5_400), "5s");
});
