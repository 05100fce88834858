// The tasks' view model: tasks as the server describes them (`tether/task/list`), each
// replaced whole by its `tether/task/event`, and how a trial's evidence is shown. Nothing
// here imports vscode, so it runs under node's own test runner.

/** One trial of a task (TaskInfo's trials in docs/protocol.md). */
export interface TrialSummary {
  index: number;
  sessionId: string;
  name: string;
  branch: string;
  provider: string;
  model: string;
  status: string;
  activity?: string | null;
  statusReason?: string;
  filesChanged: number;
  additions: number;
  deletions: number;
  findings: { critical: number; high: number; medium: number; low: number };
  verification?: string;
  review?: string;
  hooks: Array<{ name: string; status: string; exitCode?: number }>;
  hooksPassed?: boolean;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
  durationMs: number;
  pullRequest?: string;
  gone?: boolean;
}

/** A task (TaskInfo in docs/protocol.md). */
export interface TaskInfo {
  id: string;
  name: string;
  title: string;
  prompt: string;
  status: string;
  repo: string;
  baseBranch: string;
  baseCommit: string;
  createdAt: string;
  trials: TrialSummary[];
  promoted?: {
    sessionId: string;
    trial: number;
    how: string;
    reason?: string;
    commit?: string;
    pullRequest?: string;
  };
}

/** One file of `tether/task/compare`. */
export interface ComparedFile {
  path: string;
  agreement: "single" | "same" | "different";
  trials: Array<{ trial: number; sessionId: string; status: string; additions: number; deletions: number }>;
}

export class TaskStore {
  private readonly tasks = new Map<string, TaskInfo>();

  reset(tasks: TaskInfo[]): void {
    this.tasks.clear();
    for (const task of tasks) {
      this.tasks.set(task.id, task);
    }
  }

  /** A task as its latest event says; returns whether it was new. */
  apply(task: TaskInfo): boolean {
    const known = this.tasks.has(task.id);
    this.tasks.set(task.id, task);
    return !known;
  }

  remove(id: string): void {
    this.tasks.delete(id);
  }

  get(id: string): TaskInfo | undefined {
    return this.tasks.get(id);
  }

  /** Newest first. */
  all(): TaskInfo[] {
    return [...this.tasks.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** The task a session is a trial of. */
  taskOf(sessionId: string): TaskInfo | undefined {
    return this.all().find((task) => task.trials.some((trial) => trial.sessionId === sessionId));
  }
}

/** One line for a task in the tree: "done · 3 trials · main · trial 2 promoted". */
export function describeTask(task: TaskInfo): string {
  const promoted = task.promoted ? ` · trial ${task.promoted.trial} promoted (${task.promoted.how})` : "";
  return `${task.status} · ${task.trials.length} trials · ${task.baseBranch}${promoted}`;
}

/** "12s", "3m05s". */
export function duration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  return seconds < 60 ? `${seconds}s` : `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
}

/** Whether a trial can be promoted now. */
export function promotable(task: TaskInfo, trial: TrialSummary): boolean {
  return !task.promoted && !trial.gone && ["waiting", "stopped", "completed"].includes(trial.status);
}

/** The rows of the side-by-side table: a label and one cell per trial, in the trials' order. */
export function evidenceRows(task: TaskInfo): Array<{ label: string; cells: string[] }> {
  const row = (label: string, cell: (trial: TrialSummary) => string) => ({ label, cells: task.trials.map(cell) });
  return [
    row("agent", (trial) => `${trial.provider}/${trial.model}`),
    row("status", (trial) => (trial.gone ? "deleted" : trial.activity ? `${trial.status} (${trial.activity})` : trial.status)),
    row("files", (trial) => String(trial.filesChanged)),
    row("+/−", (trial) => `+${trial.additions} −${trial.deletions}`),
    row("findings C/H/M/L", (trial) => {
      const f = trial.findings;
      return `${f.critical}/${f.high}/${f.medium}/${f.low}`;
    }),
    row("verification", (trial) => trial.verification ?? "—"),
    row("review", (trial) => trial.review ?? "—"),
    row("tests", (trial) => {
      if (trial.hooksPassed === undefined) {
        return "—";
      }
      if (trial.hooksPassed) {
        return "passed";
      }
      const failed = trial.hooks.filter((hook) => !["success", "skipped", "disabled"].includes(hook.status));
      return `failed: ${failed.map((hook) => hook.name).join(", ")}`;
    }),
    row("cost", (trial) => `$${trial.costUsd.toFixed(4)}`),
    row("tokens in/out", (trial) => `${trial.inputTokens}/${trial.outputTokens}`),
    row("time", (trial) => duration(trial.durationMs)),
  ];
}
