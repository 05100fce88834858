import { test } from "node:test";
import * as assert from "node:assert/strict";

import { SessionStore, answersFromForm, describe as describeSession } from "../sessions";

function created(id: string, name: string, seq = 1) {
  return {
    sessionId: id,
    seq,
    at: 0,
    event: {
      kind: "created",
      session: { name, title: name, mode: "develop", branch: `tether/${name}`, baseBranch: "main" },
    },
  };
}

test("events fold into sessions grouped by status, working first", () => {
  const store = new SessionStore();
  store.apply(created("a", "alpha"));
  store.apply(created("b", "beta"));
  store.apply({ sessionId: "a", seq: 2, at: 0, event: { kind: "status", status: "running", activity: "working" } });
  store.apply({ sessionId: "b", seq: 2, at: 0, event: { kind: "status", status: "waiting", activity: null } });
  store.apply({ sessionId: "a", seq: 3, at: 0, event: { kind: "usage", inputTokens: 10, outputTokens: 5, costUsd: 0.0123 } });

  const groups = store.grouped().map(([status, sessions]) => [status, sessions.map((s) => s.name)]);
  assert.deepEqual(groups, [["running", ["alpha"]], ["waiting", ["beta"]]]);
  assert.equal(store.workingCount(), 1);
  const alpha = store.get("a");
  if (!alpha) {
    assert.fail("alpha is known");
  }
  assert.equal(describeSession(alpha), "develop · running (working) · tether/alpha · $0.0123");
  assert.equal(store.gaps.size, 0);
});

test("a skipped seq is noticed, so the client reads the session again", () => {
  const store = new SessionStore();
  store.apply(created("a", "alpha"));
  store.apply({ sessionId: "a", seq: 5, at: 0, event: { kind: "status", status: "running", activity: null } });
  assert.ok(store.gaps.has("a"));
  store.apply({ sessionId: "unknown", seq: 9, at: 0, event: { kind: "status", status: "running", activity: null } });
  assert.ok(store.gaps.has("unknown"));
});

test("questions, plans and permissions are pending until completed or resolved", () => {
  const store = new SessionStore();
  store.apply(created("a", "alpha"));
  store.apply({
    sessionId: "a",
    seq: 2,
    at: 0,
    event: { kind: "item", phase: "started", item: { id: "q1", type: "question", questions: [] } },
  });
  store.apply({
    sessionId: "a",
    seq: 3,
    at: 0,
    event: { kind: "item", phase: "started", item: { id: "p1", type: "plan", phases: [] } },
  });
  assert.deepEqual(store.pendingItems("a").map((item) => item.id), ["q1", "p1"]);
  store.apply({ sessionId: "a", seq: 4, at: 0, event: { kind: "resolved", itemId: "q1", outcome: "answered" } });
  store.apply({ sessionId: "a", seq: 5, at: 0, event: { kind: "item", phase: "completed", item: { id: "p1", type: "plan" } } });
  assert.deepEqual(store.pendingItems("a"), []);
});

test("a question form becomes one answer per question, or says what is missing", () => {
  const questions = [
    { id: "one", prompt: "Which?", kind: "single", options: ["left", "right"] },
    { id: "two", prompt: "Which ones?", kind: "multi", options: ["a", "b", "c"] },
    { id: "three", prompt: "Why?", kind: "text" },
  ];
  assert.deepEqual(
    answersFromForm(questions, {
      one: { choice: "left", other: "  neither  " },
      two: { choices: ["a", "c", "made-up"] },
      three: { text: " because " },
    }),
    { answers: ["neither", ["a", "c"], "because"] },
  );
  assert.deepEqual(answersFromForm(questions, { one: { choice: "right" }, two: { choices: [] } }), {
    error: '"Which ones?" needs at least one choice',
  });
});
