// The task panel: a webview per task with its trials side by side (status, +/−, findings,
// verification, tests, cost, time), the files they changed with a diff between any two trials
// or against the base, and Promote buttons. Loaded from `tether/task/compare`, read again when
// the task's `tether/task/event` says it changed. The page itself is src/webview/task.ts.

import { execFile } from "node:child_process";
import * as vscode from "vscode";

import type { Requester } from "./panel";
import { EMPTY_SCHEME } from "./panel";
import { type ComparedFile, type TaskInfo, evidenceRows, promotable } from "./tasks";
import { TetherPanel, pageHtml } from "./webviewPage";

/** The scheme of a file as the task's base commit has it: `tether-base:/<path>?<repo>#<commit>`. */
export const BASE_SCHEME = "tether-base";

/** Serves a file of the base commit (`git show <commit>:<path>` in the repository). */
export const baseDocuments: vscode.TextDocumentContentProvider = {
  provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const path = uri.path.replace(/^\//, "");
    return new Promise((resolve) => {
      execFile(
        "git",
        ["-c", "core.fsmonitor=false", "show", `${uri.fragment}:${path}`],
        { cwd: uri.query, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout) => resolve(error ? "" : stdout),
      );
    });
  },
};

/** How long task events gather before the panel reads the comparison again. */
const RELOAD_MS = 300;

export class TaskPanels {
  private readonly panels = new Map<string, TaskPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly request: Requester,
    private readonly openSession: (sessionId: string) => Promise<void>,
    private readonly promoted: () => void,
  ) {}

  async open(task: TaskInfo): Promise<void> {
    const existing = this.panels.get(task.id);
    if (existing) {
      existing.reveal();
      return;
    }
    const panel = new TaskPanel(task, this.extensionUri, this.request, this.openSession, this.promoted, () =>
      this.panels.delete(task.id),
    );
    this.panels.set(task.id, panel);
    await panel.load();
  }

  /** A task changed: its panel reads the comparison again. */
  changed(task: TaskInfo): void {
    this.panels.get(task.id)?.changed();
  }

  close(id: string): void {
    this.panels.get(id)?.dispose();
  }

  dispose(): void {
    for (const panel of [...this.panels.values()]) {
      panel.dispose();
    }
  }
}

class TaskPanel extends TetherPanel {
  private ready = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private last: { task: TaskInfo; view: View; files: ComparedFile[] } | undefined;

  constructor(
    private task: TaskInfo,
    extensionUri: vscode.Uri,
    private readonly request: Requester,
    private readonly openSession: (sessionId: string) => Promise<void>,
    private readonly promoted: () => void,
    onDispose: () => void,
  ) {
    super({
      viewType: "tether.task",
      title: `Tether task: ${task.name}`,
      column: vscode.ViewColumn.Active,
      extensionUri,
      page,
      onDispose,
    });
  }

  protected closed(): void {
    clearTimeout(this.timer);
  }

  async load(): Promise<void> {
    const compared = await this.request<{ task: TaskInfo; files: ComparedFile[] }>("tether/task/compare", {
      id: this.task.id,
    });
    if (compared) {
      this.task = compared.task;
      this.last = { task: compared.task, view: viewOf(compared.task), files: compared.files };
      this.post({ type: "reset", ...this.last });
    }
  }

  changed(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.load();
    }, RELOAD_MS);
  }

  private post(message: unknown): void {
    if (this.ready) {
      void this.panel.webview.postMessage(message);
    }
  }

  protected async received(message: Record<string, unknown>): Promise<void> {
    switch (message.type) {
      case "ready":
        this.ready = true;
        if (this.last) {
          this.post({ type: "reset", ...this.last });
        }
        return;
      case "promote": {
        const how = String(message.how);
        const sessionId = String(message.sessionId);
        const reason = String(message.reason ?? "").trim();
        const result = await this.request<{ task: TaskInfo; pullRequest?: string; apply?: { summary: string } }>(
          "tether/task/promote",
          { id: this.task.id, sessionId, how, reason: reason || undefined },
        );
        if (result) {
          const said = result.pullRequest ?? result.apply?.summary ?? "";
          void vscode.window.showInformationMessage(`Tether: promoted trial by ${how}. ${said}`.trim());
          this.promoted();
          await this.load();
        }
        return;
      }
      case "diff":
        await this.diff(String(message.path), String(message.left), String(message.right));
        return;
      case "session":
        await this.openSession(String(message.sessionId));
        return;
    }
  }

  /** `left` and `right` are trials' session ids, or "base". */
  private async diff(path: string, left: string, right: string): Promise<void> {
    const side = async (which: string) => {
      if (which === "base") {
        return vscode.Uri.from({ scheme: BASE_SCHEME, path: `/${path}`, query: this.task.repo, fragment: this.task.baseCommit });
      }
      const trial = this.task.trials.find((trial) => trial.sessionId === which);
      const listed = await this.request<{ sessions: Array<{ id: string; worktree: string }> }>("list", {});
      const worktree = listed?.sessions.find((session) => session.id === trial?.sessionId)?.worktree;
      const uri = worktree ? vscode.Uri.file(`${worktree}/${path}`) : undefined;
      const exists = uri && (await vscode.workspace.fs.stat(uri).then(() => true, () => false));
      return exists && uri ? uri : vscode.Uri.from({ scheme: EMPTY_SCHEME, path: `/${path}` });
    };
    const label = (which: string) =>
      which === "base" ? "base" : `trial ${this.task.trials.find((trial) => trial.sessionId === which)?.index ?? "?"}`;
    await vscode.commands.executeCommand(
      "vscode.diff",
      await side(left),
      await side(right),
      `${path} (${label(left)} ↔ ${label(right)})`,
      { viewColumn: vscode.ViewColumn.Beside },
    );
  }
}

/** What the page draws the trials from. */
type View = { rows: ReturnType<typeof evidenceRows>; promotable: boolean[] };

function viewOf(task: TaskInfo): View {
  return { rows: evidenceRows(task), promotable: task.trials.map((trial) => promotable(task, trial)) };
}

function page(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  return pageHtml(webview, extensionUri, {
    scripts: ["task.js"],
    bodyClass: "task-page",
    body: `<div id="header"></div>
<div id="error" role="alert" hidden></div>
<h3>Trials</h3>
<div id="trials"></div>
<h3>Files</h3>
<div id="compare-with"></div>
<div id="files"></div>`,
  });
}
