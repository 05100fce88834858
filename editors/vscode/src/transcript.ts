// One session's transcript as the session panel shows it: the session's events folded into
// entries (messages, thinking, tool calls, file changes, questions, plans, permissions,
// reviews…) keyed by item id, in the order they started. Pure, so it runs under node's test
// runner; the panel sends the entries that changed to its webview.

/** A record of `tether/session/get`'s `events`, or a live event's params. */
export interface EventRecord {
  seq: number;
  at: number;
  event: { kind: string; [field: string]: unknown };
}

export interface Question {
  id: string;
  prompt: string;
  kind: "text" | "single" | "multi";
  options?: string[];
}

export interface Finding {
  id: string;
  file?: string;
  startLine: number;
  endLine: number;
  severity: string;
  category: string;
  title: string;
  body?: string;
  /** Dismissed by the user (a `resolved` event): its diagnostic is gone. */
  dismissed?: boolean;
}

/** What the panel draws, one per item (or per notice). `open` is true while it waits on the user. */
export type Entry =
  | {
      kind: "message";
      id: string;
      role: string;
      text: string;
      streaming: boolean;
      interrupted: boolean;
      /** The user's rating of an agent reply. */
      rating?: string;
      comment?: string;
      /** A user message that waits for the agent's current work to end. */
      queued?: boolean;
      /** Taken back before it was delivered: drawn as nothing. */
      withdrawn?: boolean;
      /** Replaced by an edit: drawn folded away. */
      superseded?: boolean;
      /** What the model calls that wrote it cost, and their tokens. */
      cost?: { usd: number; tokensIn: number; tokensOut: number };
      /** Files the user attached to it. */
      attachments?: Attached[];
    }
  | { kind: "thinking"; id: string; text: string; streaming: boolean }
  | {
      kind: "tool";
      id: string;
      tool: string;
      input: string;
      status: string;
      output?: string;
      durationMs?: number;
    }
  | { kind: "fileChange"; id: string; path: string; additions: number; deletions: number }
  | { kind: "question"; id: string; questions: Question[]; answers?: Array<string | string[]>; open: boolean }
  | {
      kind: "plan";
      id: string;
      phases: Array<{ title: string; subtasks: string[] }>;
      decision?: { approved: boolean; feedback?: string };
      open: boolean;
    }
  | {
      kind: "permission";
      id: string;
      tool: string;
      input: string;
      scope: string;
      decisions: string[];
      decision?: string;
      open: boolean;
    }
  | { kind: "findings"; id: string; source: string; status: string; findings: Finding[]; error?: string }
  | { kind: "notice"; id: string; text: string };

/** A file attached to a user message, as the log names it. */
export interface Attached {
  name: string;
  mimeType: string;
  size: number;
  sha256: string;
}

/** The panel's header: who, where, how far, how much. */
export interface Header {
  name: string;
  title: string;
  mode: string;
  status: string;
  activity: string | null;
  branch: string;
  worktree: string;
  repo: string;
  model: string;
  usage: { inputTokens: number; outputTokens: number; costUsd: number };
  /** The pull request opened for the session's branch, if any. */
  pullRequest?: string;
  /** How full the model's context is (tether's own agent only). */
  context?: { usedTokens: number; windowTokens: number };
}

export class Transcript {
  readonly header: Header;
  private readonly entries = new Map<string, Entry>();
  private readonly order: string[] = [];
  /** The last `seq` folded in; a live event that skips one means a gap. */
  lastSeq = 0;

  constructor(session: Partial<Header> & { usage?: Header["usage"]; context?: Header["context"] }) {
    this.header = {
      name: session.name ?? "",
      title: session.title ?? "",
      mode: session.mode ?? "",
      status: session.status ?? "pending",
      activity: session.activity ?? null,
      branch: session.branch ?? "",
      worktree: session.worktree ?? "",
      repo: session.repo ?? "",
      model: session.model ?? "",
      usage: { inputTokens: 0, outputTokens: 0, costUsd: 0 },
      pullRequest: session.pullRequest,
      context: session.context ? { ...session.context } : undefined,
    };
  }

  /** Every entry, in order. */
  all(): Entry[] {
    return this.order.map((id) => this.entries.get(id)).filter((entry): entry is Entry => entry !== undefined);
  }

  entry(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  /** The open question, plan or permission with this id, if any. */
  open(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    return entry && "open" in entry && entry.open ? entry : undefined;
  }

  /**
   * Folds one record in. Returns the ids of the entries it changed ("header" when the header
   * changed), or `undefined` when its `seq` was already folded in (a replay).
   */
  apply(record: EventRecord): string[] | undefined {
    if (record.seq <= this.lastSeq) {
      return undefined;
    }
    this.lastSeq = record.seq;
    const event = record.event;
    switch (event.kind) {
      case "created": {
        const spec = (event.session ?? {}) as Record<string, string>;
        Object.assign(this.header, {
          name: spec.name ?? this.header.name,
          title: spec.title ?? this.header.title,
          mode: spec.mode ?? this.header.mode,
          branch: spec.branch ?? this.header.branch,
          worktree: spec.worktree ?? this.header.worktree,
          repo: spec.repo ?? this.header.repo,
          model: spec.model ?? this.header.model,
        });
        return ["header"];
      }
      case "status":
        this.header.status = String(event.status);
        this.header.activity = (event.activity as string | null) ?? null;
        return ["header"];
      case "pullRequest":
        this.header.pullRequest = String(event.url);
        return ["header"];
      case "feedback": {
        const entry = this.entries.get(String(event.itemId));
        if (entry?.kind !== "message") {
          return [];
        }
        entry.rating = String(event.rating);
        entry.comment = event.comment === undefined ? undefined : String(event.comment);
        return [entry.id];
      }
      case "usage": {
        this.header.usage.inputTokens += num(event.inputTokens);
        this.header.usage.outputTokens += num(event.outputTokens);
        this.header.usage.costUsd += num(event.costUsd);
        const tokensIn = num(event.inputTokens) + num(event.cacheReadTokens) + num(event.cacheWriteTokens);
        // A turn's response: the conversation is now what it was sent and what it said.
        if (typeof event.contextWindow === "number") {
          this.header.context = { usedTokens: tokensIn + num(event.outputTokens), windowTokens: event.contextWindow };
        }
        const changed = ["header"];
        const entry = this.entries.get(String(event.itemId));
        if (entry?.kind === "message") {
          const cost = entry.cost ?? { usd: 0, tokensIn: 0, tokensOut: 0 };
          entry.cost = {
            usd: cost.usd + num(event.costUsd),
            tokensIn: cost.tokensIn + tokensIn,
            tokensOut: cost.tokensOut + num(event.outputTokens),
          };
          changed.push(entry.id);
        }
        return changed;
      }
      case "item":
        return this.item(event.item as Record<string, unknown>, event.phase === "started");
      case "delta":
        return this.delta(String(event.itemId), String(event.text ?? ""));
      case "followUpQueued":
        return this.put({
          kind: "message",
          id: String(event.itemId),
          role: "user",
          text: String(event.text ?? ""),
          streaming: false,
          interrupted: false,
          queued: true,
          ...attachedOf(event.attachments),
        });
      case "followUpWithdrawn": {
        const entry = this.entries.get(String(event.itemId));
        if (entry?.kind !== "message") {
          return [];
        }
        entry.queued = false;
        entry.withdrawn = true;
        return [entry.id];
      }
      case "superseded":
        return this.supersede(String(event.itemId));
      case "resolved":
        return this.resolved(String(event.itemId), String(event.outcome ?? ""));
      case "turnEnded": {
        const reason = String(event.reason ?? "");
        if (reason === "end_turn") {
          return [];
        }
        const message = event.message ? `: ${String(event.message)}` : "";
        return this.put({ kind: "notice", id: `turn-${record.seq}`, text: `turn ended (${reason})${message}` });
      }
      case "contextReset":
        if (this.header.context) {
          this.header.context.usedTokens = estimate(String(event.summary ?? ""));
        }
        return this.put({ kind: "notice", id: `reset-${record.seq}`, text: "the model's context was reset" });
      case "rewound":
        return this.put({ kind: "notice", id: `rewound-${record.seq}`, text: `rewound to ${String(event.name)}` });
      default:
        return [];
    }
  }

  private put(entry: Entry): string[] {
    if (!this.entries.has(entry.id)) {
      this.order.push(entry.id);
    }
    this.entries.set(entry.id, entry);
    return [entry.id];
  }

  private item(item: Record<string, unknown>, started: boolean): string[] {
    const id = String(item.id);
    const type = String(item.type);
    switch (type) {
      case "message": {
        const role = String(item.role ?? "agent");
        const text = String(item.text ?? "");
        // A started item may be empty and fill from deltas; keep what streamed until the
        // completed form (authoritative) arrives.
        const previous = this.entries.get(id);
        const streamed = previous && "text" in previous ? previous.text : "";
        const shown = started && !text ? streamed : text;
        if (role === "thinking") {
          return this.put({ kind: "thinking", id, text: shown, streaming: started });
        }
        // A compaction: the conversation is now its summary.
        if (role === "summary" && !started && this.header.context) {
          this.header.context.usedTokens = estimate(text);
          this.put({ kind: "message", id, role, text, streaming: false, interrupted: false });
          return [id, "header"];
        }
        return this.put({
          kind: "message",
          id,
          role,
          text: shown,
          streaming: started,
          interrupted: item.interrupted === true,
          ...attachedOf(item.attachments),
        });
      }
      case "toolCall":
        return this.put({
          kind: "tool",
          id,
          tool: String(item.tool ?? ""),
          input: compact(item.input),
          status: String(item.status ?? (started ? "running" : "completed")),
          output: item.output === undefined || item.output === null ? undefined : String(item.output),
          durationMs: typeof item.durationMs === "number" ? item.durationMs : undefined,
        });
      case "fileChange":
        return this.put({
          kind: "fileChange",
          id,
          path: String(item.path ?? ""),
          additions: num(item.additions),
          deletions: num(item.deletions),
        });
      case "question":
        return this.put({
          kind: "question",
          id,
          questions: (item.questions as Question[]) ?? [],
          answers: item.answers as Array<string | string[]> | undefined,
          open: started,
        });
      case "plan":
        return this.put({
          kind: "plan",
          id,
          phases: (item.phases as Array<{ title: string; subtasks: string[] }>) ?? [],
          decision: item.decision as { approved: boolean; feedback?: string } | undefined,
          open: started,
        });
      case "permission":
        return this.put({
          kind: "permission",
          id,
          tool: String(item.tool ?? ""),
          input: compact(item.input),
          scope: String(item.scope ?? ""),
          decisions: (item.decisions as string[]) ?? [],
          decision: item.decision as string | undefined,
          open: started,
        });
      case "review":
      case "verification":
        return this.put({
          kind: "findings",
          id,
          source: type,
          status: String(item.status ?? ""),
          findings: (item.findings as Finding[]) ?? [],
          error: item.error as string | undefined,
        });
      case "hook":
        return this.put({
          kind: "notice",
          id,
          text: `hook ${String(item.name)} (${String(item.event)}): ${String(item.status)}`,
        });
      case "loopIteration":
        return this.put({
          kind: "notice",
          id,
          text: `loop iteration ${num(item.iteration)}/${num(item.maxIterations)}: ${String(item.outcome)}${
            item.stopReason ? ` (${String(item.stopReason)})` : ""
          }`,
        });
      default:
        return [];
    }
  }

  /** Marks the edited message and everything drawn after it as superseded. */
  private supersede(id: string): string[] {
    const first = this.order.indexOf(id);
    if (first < 0) {
      return [];
    }
    const changed: string[] = [];
    for (const later of this.order.slice(first)) {
      const entry = this.entries.get(later);
      // A message still queued (or taken back) was never part of what the edit replaced.
      // The rewind the edit made is the edit's own notice.
      if (!entry || (entry.kind === "message" && (entry.queued || entry.withdrawn)) || later.startsWith("rewound-")) {
        continue;
      }
      this.entries.set(later, { ...entry, superseded: true } as Entry);
      changed.push(later);
    }
    return changed;
  }

  private delta(id: string, text: string): string[] {
    const entry = this.entries.get(id);
    if (!entry) {
      // A delta before its item (should not happen): an agent message it starts.
      return this.put({ kind: "message", id, role: "agent", text, streaming: true, interrupted: false });
    }
    if (entry.kind === "message" || entry.kind === "thinking") {
      entry.text += text;
      return [id];
    }
    return [];
  }

  private resolved(id: string, outcome: string): string[] {
    const entry = this.entries.get(id);
    if (!entry) {
      // A finding's id: the review or verification that holds it shows it dismissed.
      for (const holder of this.entries.values()) {
        const finding = holder.kind === "findings" ? holder.findings.find((finding) => finding.id === id) : undefined;
        if (finding) {
          finding.dismissed = true;
          return [holder.id];
        }
      }
      return [];
    }
    if (!("open" in entry)) {
      return [];
    }
    entry.open = false;
    if (entry.kind === "permission" && !entry.decision) {
      entry.decision = outcome;
    }
    return [id];
  }
}

/** A message's attachments from the wire, as fields to spread (none when there are none). */
function attachedOf(value: unknown): { attachments?: Attached[] } {
  if (!Array.isArray(value) || value.length === 0) {
    return {};
  }
  return {
    attachments: value.map((file: Record<string, unknown>) => ({
      name: String(file.name ?? ""),
      mimeType: String(file.mimeType ?? ""),
      size: num(file.size),
      sha256: String(file.sha256 ?? ""),
    })),
  };
}

/** The tokens a text takes, roughly (four characters each), as the server estimates them. */
function estimate(text: string): number {
  return Math.ceil([...text].length / 4);
}

function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

/** A tool's input as one short line: its command or path when it has one, else JSON. */
function compact(input: unknown): string {
  if (input && typeof input === "object") {
    const fields = input as Record<string, unknown>;
    for (const key of ["command", "path", "pattern", "url"]) {
      if (typeof fields[key] === "string") {
        return fields[key] as string;
      }
    }
  }
  const json = JSON.stringify(input ?? null);
  return json.length > 120 ? `${json.slice(0, 119)}…` : json;
}
