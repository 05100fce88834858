import { test } from "node:test";
import * as assert from "node:assert/strict";

import { type EventRecord, Transcript } from "../transcript";

/** Numbers the events 1, 2, 3… as the server does. */
function records(...events: Array<EventRecord["event"]>): EventRecord[] {
  return events.map((event, index) => ({ seq: index + 1, at: 0, event }));
}

function fold(...events: Array<EventRecord["event"]>): Transcript {
  const transcript = new Transcript({ name: "fix" });
  for (const record of records(...events)) {
    transcript.apply(record);
  }
  return transcript;
}

test("streamed text grows an entry until its completed form replaces it", () => {
  const transcript = new Transcript({ name: "fix" });
  const [started, delta, thinking, thinkingDelta, completed] = records(
    { kind: "item", phase: "started", item: { id: "m1", type: "message", role: "agent", text: "" } },
    { kind: "delta", itemId: "m1", text: "Hel" },
    { kind: "item", phase: "started", item: { id: "t1", type: "message", role: "thinking", text: "" } },
    { kind: "delta", itemId: "t1", text: "hmm" },
    { kind: "item", phase: "completed", item: { id: "m1", type: "message", role: "agent", text: "Hello" } },
  );
  assert.deepEqual(transcript.apply(started), ["m1"]);
  assert.deepEqual(transcript.apply(delta), ["m1"]);
  assert.deepEqual(transcript.entry("m1"), {
    kind: "message",
    id: "m1",
    role: "agent",
    text: "Hel",
    streaming: true,
    interrupted: false,
  });
  transcript.apply(thinking);
  transcript.apply(thinkingDelta);
  assert.deepEqual(transcript.entry("t1"), { kind: "thinking", id: "t1", text: "hmm", streaming: true });
  transcript.apply(completed);
  const message = transcript.entry("m1");
  assert.equal(message?.kind === "message" && message.text, "Hello");
  assert.equal(message?.kind === "message" && message.streaming, false);
  assert.deepEqual(
    transcript.all().map((entry) => entry.id),
    ["m1", "t1"],
    "entries stay in the order they started",
  );
  assert.equal(transcript.apply(delta), undefined, "a replayed seq is ignored");
});

test("tool calls, file changes, usage and status make the header and entries", () => {
  const transcript = fold(
    { kind: "created", session: { name: "fix", mode: "develop", branch: "tether/fix", repo: "/r", worktree: "/w" } },
    { kind: "status", status: "running", activity: "working" },
    {
      kind: "item",
      phase: "started",
      item: { id: "c1", type: "toolCall", callId: "x", tool: "run_command", input: { command: "cargo test" }, status: "running" },
    },
    {
      kind: "item",
      phase: "completed",
      item: { id: "c1", type: "toolCall", tool: "run_command", input: { command: "cargo test" }, status: "failed", output: "boom", durationMs: 12 },
    },
    { kind: "item", phase: "completed", item: { id: "f1", type: "fileChange", path: "src/a.rs", additions: 3, deletions: 1 } },
    { kind: "usage", inputTokens: 100, outputTokens: 20, costUsd: 0.01 },
    { kind: "usage", inputTokens: 50, outputTokens: 5, costUsd: 0.002 },
    { kind: "turnEnded", reason: "end_turn" },
    { kind: "turnEnded", reason: "budget", message: "spent $1" },
    { kind: "pullRequest", url: "https://github.com/me/app/pull/7" },
    { kind: "item", phase: "completed", item: { id: "a1", type: "message", role: "agent", text: "done" } },
    { kind: "feedback", itemId: "a1", rating: "down", comment: "too long" },
  );
  const rated = transcript.entry("a1");
  assert.equal(rated?.kind === "message" && rated.rating, "down");
  assert.equal(rated?.kind === "message" && rated.comment, "too long");
  assert.equal(transcript.header.status, "running");
  assert.equal(transcript.header.pullRequest, "https://github.com/me/app/pull/7");
  assert.equal(transcript.header.worktree, "/w");
  assert.deepEqual(transcript.header.usage, { inputTokens: 150, outputTokens: 25, costUsd: 0.012 });
  assert.deepEqual(transcript.all(), [
    { kind: "tool", id: "c1", tool: "run_command", input: "cargo test", status: "failed", output: "boom", durationMs: 12 },
    { kind: "fileChange", id: "f1", path: "src/a.rs", additions: 3, deletions: 1 },
    { kind: "notice", id: "turn-9", text: "turn ended (budget): spent $1" },
    { kind: "message", id: "a1", role: "agent", text: "done", streaming: false, interrupted: false, rating: "down", comment: "too long" },
  ]);
});

test("questions, plans and permissions are open until resolved", () => {
  const questions = [
    { id: "q1", prompt: "Which way?", kind: "single", options: ["left", "right"] },
    { id: "q2", prompt: "Why?", kind: "text" },
  ];
  const transcript = fold(
    { kind: "item", phase: "started", item: { id: "a1", type: "question", questions } },
    { kind: "item", phase: "started", item: { id: "p1", type: "plan", phases: [{ title: "Fix", subtasks: ["edit"] }] } },
    {
      kind: "item",
      phase: "started",
      item: { id: "w1", type: "permission", tool: "run_command", input: { command: "rm -rf x" }, scope: "rm -rf x", decisions: ["allow_once", "reject_once"] },
    },
  );
  assert.equal(transcript.open("a1")?.kind, "question");
  assert.equal(transcript.open("p1")?.kind, "plan");
  assert.equal(transcript.open("w1")?.kind, "permission");

  transcript.apply({ seq: 4, at: 0, event: { kind: "item", phase: "completed", item: { id: "a1", type: "question", questions, answers: ["left", "because"] } } });
  transcript.apply({ seq: 5, at: 0, event: { kind: "resolved", itemId: "a1", outcome: "answered" } });
  transcript.apply({ seq: 6, at: 0, event: { kind: "resolved", itemId: "w1", outcome: "reject_once" } });
  assert.equal(transcript.open("a1"), undefined);
  assert.equal(transcript.open("w1"), undefined);
  const question = transcript.entry("a1");
  assert.deepEqual(question?.kind === "question" && question.answers, ["left", "because"]);
  const permission = transcript.entry("w1");
  assert.equal(permission?.kind === "permission" && permission.decision, "reject_once", "the outcome says what was decided");
  assert.equal(transcript.open("p1")?.kind, "plan", "the plan still waits");
});

test("review findings and notices", () => {
  const transcript = fold(
    { kind: "item", phase: "started", item: { id: "r", type: "review", status: "running", findings: [] } },
    {
      kind: "item",
      phase: "completed",
      item: {
        id: "r",
        type: "review",
        status: "completed",
        findings: [{ id: "r1", file: "a.py", startLine: 2, endLine: 2, severity: "high", category: "bug", title: "wrong" }],
      },
    },
    { kind: "item", phase: "completed", item: { id: "h", type: "hook", event: "on_done", name: "fmt", status: "blocked" } },
    { kind: "contextReset" },
  );
  const review = transcript.entry("r");
  assert.equal(review?.kind === "findings" && review.findings[0].title, "wrong");
  assert.deepEqual(
    transcript.all().map((entry) => (entry.kind === "notice" ? entry.text : entry.kind)),
    ["findings", "hook fmt (on_done): blocked", "the model's context was reset"],
  );
});

test("an edit folds away what it replaced; a queued message is marked, then delivered or taken back", () => {
  const user = (id: string, text: string) => ({
    kind: "item",
    phase: "completed",
    item: { id, type: "message", role: "user", text },
  });
  const transcript = fold(
    user("u1", "first"),
    { kind: "item", phase: "completed", item: { id: "a1", type: "message", role: "agent", text: "one" } },
    user("u2", "second"),
    { kind: "item", phase: "completed", item: { id: "a2", type: "message", role: "agent", text: "two" } },
    { kind: "followUpQueued", itemId: "q1", text: "later" },
    { kind: "followUpQueued", itemId: "q2", text: "never" },
  );
  const queued = transcript.entry("q1");
  assert.equal(queued?.kind === "message" && queued.queued, true);
  const next = transcript.lastSeq + 1;
  assert.deepEqual(transcript.apply({ seq: next, at: 0, event: { kind: "followUpWithdrawn", itemId: "q2" } }), ["q2"]);
  const withdrawn = transcript.entry("q2");
  assert.equal(withdrawn?.kind === "message" && withdrawn.withdrawn, true);
  assert.deepEqual(
    transcript.apply({ seq: next + 1, at: 0, event: { kind: "superseded", itemId: "u2" } }),
    ["u2", "a2"],
    "the edited message and what followed it; not the messages still queued",
  );
  const first = transcript.entry("u1");
  assert.equal(first?.kind === "message" && first.superseded, undefined);
  const edited = transcript.entry("a2");
  assert.equal(edited?.kind === "message" && edited.superseded, true);
  transcript.apply({ seq: next + 2, at: 0, event: user("q1", "later") });
  const delivered = transcript.entry("q1");
  assert.equal(delivered?.kind === "message" && delivered.queued, undefined, "delivered: no longer queued");
});

test("a turn's usage fills the context meter and the reply's cost; a summary empties it", () => {
  const transcript = new Transcript({ name: "fix", context: { usedTokens: 5, windowTokens: 100 } });
  const events = records(
    { kind: "item", phase: "completed", item: { id: "a1", type: "message", role: "agent", text: "done" } },
    { kind: "usage", itemId: "a1", inputTokens: 30, cacheReadTokens: 10, outputTokens: 5, costUsd: 0.25, contextWindow: 200 },
    { kind: "usage", itemId: "r1", inputTokens: 500, outputTokens: 50, costUsd: 1 },
    { kind: "item", phase: "completed", item: { id: "s1", type: "message", role: "summary", text: "12345678" } },
  );
  assert.deepEqual(transcript.apply(events[0]), ["a1"]);
  assert.deepEqual(transcript.apply(events[1]), ["header", "a1"]);
  assert.deepEqual(transcript.header.context, { usedTokens: 45, windowTokens: 200 });
  const reply = transcript.entry("a1");
  assert.deepEqual(reply?.kind === "message" && reply.cost, { usd: 0.25, tokensIn: 40, tokensOut: 5 });
  transcript.apply(events[2]);
  assert.equal(transcript.header.context?.usedTokens, 45, "a review's call is not the conversation");
  assert.equal(transcript.header.usage.costUsd, 1.25);
  assert.deepEqual(transcript.apply(events[3]), ["s1", "header"]);
  assert.equal(transcript.header.context?.usedTokens, 2);
});

test("a dismissed finding shows dismissed in its review", () => {
  const finding = { id: "f1", file: "a.rs", startLine: 3, endLine: 3, severity: "high", category: "bug", title: "off by one" };
  const transcript = fold(
    { kind: "item", phase: "completed", item: { id: "r1", type: "review", status: "completed", findings: [finding] } },
    { kind: "resolved", itemId: "f1", outcome: "dismissed" },
  );
  const entry = transcript.entry("r1");
  assert.equal(entry?.kind, "findings");
  assert.equal(entry?.kind === "findings" && entry.findings[0].dismissed, true);
});
