// The Git panel: a session's branch as git sees it — ahead of / behind its base and its
// upstream, staged and unstaged files with Stage / Unstage / Discard each or all, a commit
// message and Commit, Push, Pull, Pull a branch…, Merge into the base, Pull the base in.
// Every operation is `tether/session/git`; a refusal (nothing staged, not a fast-forward, a
// conflict naming its files) is shown in the panel as the server words it, and nothing
// changes. The page is src/webview/git.ts.

import * as vscode from "vscode";

import { type GitStatus, branchLine, letter, splitFiles } from "./git";
import type { SessionInfo } from "./sessions";
import { TetherPanel, pageHtml } from "./webviewPage";

/** Sends a request; its result, or the server's error message. */
export type TryRequest = <T>(method: string, params: unknown) => Promise<{ result?: T; error?: string }>;

export class GitPanels {
  private readonly panels = new Map<string, GitPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly request: TryRequest,
  ) {}

  async open(session: SessionInfo): Promise<void> {
    const existing = this.panels.get(session.id);
    if (existing) {
      existing.reveal();
      return;
    }
    const panel = new GitPanel(session, this.extensionUri, this.request, () => this.panels.delete(session.id));
    this.panels.set(session.id, panel);
    await panel.run({ op: "status" });
  }

  dispose(): void {
    for (const panel of [...this.panels.values()]) {
      panel.dispose();
    }
  }
}

class GitPanel extends TetherPanel {
  private ready = false;
  private last: { status?: GitStatus; error?: string; done?: string } = {};

  constructor(
    private readonly session: SessionInfo,
    extensionUri: vscode.Uri,
    private readonly request: TryRequest,
    onDispose: () => void,
  ) {
    super({
      viewType: "tether.git",
      title: `Tether git: ${session.name}`,
      column: vscode.ViewColumn.Active,
      extensionUri,
      page,
      onDispose,
    });
  }

  private draw(): void {
    if (!this.ready) {
      return;
    }
    const status = this.last.status;
    const files = status ? splitFiles(status.files) : { staged: [], unstaged: [] };
    void this.panel.webview.postMessage({
      type: "reset",
      name: this.session.name,
      baseBranch: status?.baseBranch ?? this.session.baseBranch,
      branchLine: status ? branchLine(status) : "",
      staged: files.staged.map((file) => ({ path: file.path, letter: letter(file, "staged") })),
      unstaged: files.unstaged.map((file) => ({ path: file.path, letter: letter(file, "unstaged") })),
      error: this.last.error,
      done: this.last.done,
    });
  }

  /** Runs one operation; the status after it (or the refusal) is drawn. */
  async run(params: { op: string; paths?: string[]; message?: string; branch?: string }): Promise<void> {
    const answer = await this.request<{ status: GitStatus; commit?: string }>("git", { id: this.session.id, ...params });
    if (answer.result) {
      const commit = answer.result.commit ? ` (${answer.result.commit.slice(0, 10)})` : "";
      this.last = {
        status: answer.result.status,
        done: params.op === "status" ? undefined : `${params.op}: done${commit}`,
      };
    } else {
      this.last = { ...this.last, error: answer.error, done: undefined };
      void vscode.window.showErrorMessage(`Tether git ${params.op}: ${answer.error ?? "failed"}`);
    }
    this.draw();
  }

  protected async received(message: Record<string, unknown>): Promise<void> {
    const paths = Array.isArray(message.paths) ? message.paths.map(String) : undefined;
    switch (message.type) {
      case "ready":
        this.ready = true;
        this.draw();
        return;
      case "op": {
        const op = String(message.op);
        if (op === "discard") {
          const what = paths ? paths.join(", ") : "every uncommitted change";
          const sure = await vscode.window.showWarningMessage(
            `Discard ${what} in ${this.session.name}? This cannot be undone.`,
            { modal: true },
            "Discard",
          );
          if (sure !== "Discard") {
            return;
          }
        }
        let branch: string | undefined;
        if (op === "pullBranch") {
          branch = await vscode.window.showInputBox({ prompt: "Which branch of origin to merge in?" });
          if (!branch) {
            return;
          }
        }
        await this.run({ op, paths, branch, message: message.message ? String(message.message) : undefined });
        return;
      }
    }
  }
}

function page(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  return pageHtml(webview, extensionUri, {
    scripts: ["git.js"],
    bodyClass: "git-page",
    body: `<div id="header"></div>
<div id="error" role="alert" hidden></div>
<div id="done" hidden></div>
<div id="files"></div>
<div id="commit">
<textarea id="commit-message" rows="3" placeholder="Commit message" aria-label="Commit message"></textarea>
</div>
<div id="remote"></div>`,
  });
}
