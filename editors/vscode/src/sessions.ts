// The view model: sessions as the server describes them, kept current by folding its
// `tether/session/event` notifications. Nothing here imports vscode, so it runs under node's
// own test runner.

/** A session as `tether/session/list` gives it (SessionInfo in docs/protocol.md). */
export interface SessionInfo {
  id: string;
  name: string;
  title: string;
  mode: string;
  status: string;
  activity: string | null;
  branch: string;
  baseBranch: string;
  repo: string;
  worktree: string;
  usage: { inputTokens: number; outputTokens: number; costUsd: number };
  lastSeq: number;
}

/** The params of a `tether/session/event` notification. */
export interface EventParams {
  sessionId: string;
  seq: number;
  at: number;
  event: { kind: string; [field: string]: unknown };
}

/** The order groups are shown in. */
export const STATUS_ORDER = ["running", "pending", "creating", "waiting", "stopped", "failed", "completed"];

/** What a session is waiting on the user for, if anything. */
export interface PendingItem {
  id: string;
  type: "question" | "plan" | "permission";
  item: Record<string, unknown>;
}

export class SessionStore {
  private readonly sessions = new Map<string, SessionInfo>();
  private readonly pending = new Map<string, Map<string, PendingItem>>();
  /** Sessions whose events skipped a `seq`: read them again with `get {since}`. */
  readonly gaps = new Set<string>();

  /** Replaces everything with a fresh list. */
  reset(sessions: SessionInfo[]): void {
    this.sessions.clear();
    for (const session of sessions) {
      this.sessions.set(session.id, { ...session });
    }
  }

  get(id: string): SessionInfo | undefined {
    return this.sessions.get(id);
  }

  all(): SessionInfo[] {
    return [...this.sessions.values()];
  }

  /** Sessions by status, in STATUS_ORDER, each group newest first. */
  grouped(): Array<[string, SessionInfo[]]> {
    const groups = new Map<string, SessionInfo[]>();
    for (const session of this.sessions.values()) {
      const group = groups.get(session.status) ?? [];
      group.push(session);
      groups.set(session.status, group);
    }
    return [...groups.entries()]
      .sort(([a], [b]) => rank(a) - rank(b))
      .map(([status, group]) => [status, group.reverse()]);
  }

  /** How many sessions are working now (for the status bar). */
  workingCount(): number {
    return this.all().filter((session) => ["pending", "creating", "running"].includes(session.status)).length;
  }

  /** What a session waits on the user for. */
  pendingItems(id: string): PendingItem[] {
    return [...(this.pending.get(id)?.values() ?? [])];
  }

  /** Folds one event in; returns whether anything shown changed. */
  apply(params: EventParams): boolean {
    const { sessionId, seq, event } = params;
    let session = this.sessions.get(sessionId);
    if (event.kind === "created") {
      const spec = event.session as Record<string, string>;
      session = {
        id: sessionId,
        name: spec.name,
        title: spec.title ?? "",
        mode: spec.mode,
        status: "pending",
        activity: null,
        branch: spec.branch,
        baseBranch: spec.baseBranch,
        repo: spec.repo ?? "",
        worktree: spec.worktree ?? "",
        usage: { inputTokens: 0, outputTokens: 0, costUsd: 0 },
        lastSeq: seq,
      };
      this.sessions.set(sessionId, session);
      return true;
    }
    if (!session) {
      this.gaps.add(sessionId);
      return false;
    }
    if (seq !== session.lastSeq + 1) {
      this.gaps.add(sessionId);
    }
    session.lastSeq = Math.max(session.lastSeq, seq);
    switch (event.kind) {
      case "status":
        session.status = event.status as string;
        session.activity = (event.activity as string | null) ?? null;
        return true;
      case "usage":
        session.usage.inputTokens += (event.inputTokens as number) ?? 0;
        session.usage.outputTokens += (event.outputTokens as number) ?? 0;
        session.usage.costUsd += (event.costUsd as number) ?? 0;
        return true;
      case "item": {
        const item = event.item as Record<string, unknown>;
        const type = item.type as string;
        if (type !== "question" && type !== "plan" && type !== "permission") {
          return false;
        }
        const items = this.pending.get(sessionId) ?? new Map<string, PendingItem>();
        if (event.phase === "started") {
          items.set(item.id as string, { id: item.id as string, type, item });
        } else {
          items.delete(item.id as string);
        }
        this.pending.set(sessionId, items);
        return true;
      }
      case "resolved":
        this.pending.get(sessionId)?.delete(event.itemId as string);
        return true;
      default:
        return false;
    }
  }
}

function rank(status: string): number {
  const index = STATUS_ORDER.indexOf(status);
  return index === -1 ? STATUS_ORDER.length : index;
}

/** One line for a session in the tree: "fix-login · running (working) · $0.0123". */
export function describe(session: SessionInfo): string {
  const activity = session.activity ? ` (${session.activity})` : "";
  return `${session.mode} · ${session.status}${activity} · ${session.branch} · $${session.usage.costUsd.toFixed(4)}`;
}

/**
 * The answers to a question item from what a form collected: one per question, in order —
 * the chosen option, the "other" text, free text, or the chosen options of a multi-select.
 * Returns an error message when a question has no answer.
 */
export function answersFromForm(
  questions: Array<{ id: string; prompt: string; kind: string; options?: string[] }>,
  form: Record<string, { choice?: string; other?: string; text?: string; choices?: string[] }>,
): { answers: Array<string | string[]> } | { error: string } {
  const answers: Array<string | string[]> = [];
  for (const question of questions) {
    const field = form[question.id] ?? {};
    if (question.kind === "multi") {
      const choices = (field.choices ?? []).filter((choice) => question.options?.includes(choice));
      if (choices.length === 0) {
        return { error: `"${question.prompt}" needs at least one choice` };
      }
      answers.push(choices);
    } else if (question.kind === "single") {
      const other = field.other?.trim();
      const answer = other || field.choice;
      if (!answer) {
        return { error: `"${question.prompt}" needs an answer` };
      }
      answers.push(answer);
    } else {
      const text = field.text?.trim();
      if (!text) {
        return { error: `"${question.prompt}" needs an answer` };
      }
      answers.push(text);
    }
  }
  return { answers };
}
