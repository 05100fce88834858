// The review panel: a session's changes file by file and hunk by hunk, each hunk with Accept
// and Reject, each file with Open diff / Accept file / Reject file, Accept all / Reject all,
// and the progress ("3 of 7 hunks reviewed"). In a file's diff editor (yours ↔ the
// session's) the title bar's Accept Hunk / Reject Hunk act on the hunk under the cursor. The
// decisions are `review.ts`'s; the page is src/webview/review.ts.

import * as vscode from "vscode";

import type { Requester } from "./panel";
import { openFileDiff } from "./panel";
import { type ApplyFileOutcome, type ApplyRequest, type Decision, type DiffFile, Review } from "./review";
import type { SessionInfo } from "./sessions";
import { TetherPanel, pageHtml } from "./webviewPage";

/** Set while a review is open: the diff editor's title shows the hunk actions. */
const REVIEWING = "tether.reviewing";

export class ReviewPanels {
  private readonly panels = new Map<string, ReviewPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly request: Requester,
  ) {}

  async open(session: SessionInfo): Promise<void> {
    const existing = this.panels.get(session.id);
    if (existing) {
      existing.reveal();
      return;
    }
    const diff = await this.request<{ files: DiffFile[] }>("diff", { id: session.id });
    if (!diff) {
      return;
    }
    if (diff.files.length === 0) {
      void vscode.window.showInformationMessage(`Tether: ${session.name} has changed nothing to review.`);
      return;
    }
    const panel = new ReviewPanel(session, new Review(diff.files), this.extensionUri, this.request, () => {
      this.panels.delete(session.id);
      void vscode.commands.executeCommand("setContext", REVIEWING, this.panels.size > 0);
    });
    this.panels.set(session.id, panel);
    await vscode.commands.executeCommand("setContext", REVIEWING, true);
    const first = diff.files.find((file) => !file.binary);
    if (first) {
      await openFileDiff(session, first.path, vscode.ViewColumn.One);
    }
  }

  /** Accept or reject the hunk under the cursor of the active diff editor. */
  async decideAtCursor(decision: Decision): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return;
    }
    const file = editor.document.uri.fsPath;
    for (const panel of this.panels.values()) {
      if (await panel.decideAt(file, editor.selection.active.line, decision)) {
        return;
      }
    }
    void vscode.window.showInformationMessage("Tether: the cursor is on no hunk under review.");
  }

  dispose(): void {
    for (const panel of [...this.panels.values()]) {
      panel.dispose();
    }
  }
}

class ReviewPanel extends TetherPanel {
  private ready = false;

  constructor(
    private readonly session: SessionInfo,
    private readonly review: Review,
    extensionUri: vscode.Uri,
    private readonly request: Requester,
    onDispose: () => void,
  ) {
    super({
      viewType: "tether.review",
      title: `Tether review: ${session.name}`,
      column: vscode.ViewColumn.Two,
      extensionUri,
      page,
      onDispose,
    });
  }

  /** The hunk of `file` (a path in the user's repository or the session's worktree) on `line`. */
  async decideAt(file: string, line: number, decision: Decision): Promise<boolean> {
    for (const [root, side] of [
      [this.session.worktree, "session"],
      [this.session.repo, "yours"],
    ] as const) {
      if (!file.startsWith(`${root}/`)) {
        continue;
      }
      const path = file.slice(root.length + 1);
      const hunk = this.review.hunkAt(path, line, side);
      if (hunk) {
        await this.decide([{ path, indices: [hunk.index] }], decision);
        return true;
      }
    }
    return false;
  }

  private draw(): void {
    if (this.ready) {
      void this.panel.webview.postMessage({
        type: "reset",
        name: this.session.name,
        progress: this.review.progress(),
        done: this.review.done(),
        files: this.review.files,
      });
    }
  }

  /** Decides hunks of one or more files with one `apply`. */
  private async decide(picks: Array<{ path: string; indices: number[] }>, decision: Decision): Promise<void> {
    const merged: ApplyRequest = { hunks: {}, reject: {} };
    const sent: Array<{ path: string; indices: number[]; told: boolean }> = [];
    for (const { path, indices } of picks) {
      const request = this.review.request(path, indices, decision);
      if (!request) {
        continue;
      }
      Object.assign(merged.hunks, request.hunks);
      Object.assign(merged.reject, request.reject);
      sent.push({ path, indices, told: path in request.reject });
    }
    if (sent.length > 0) {
      const result = await this.request<{ files: ApplyFileOutcome[]; summary: string }>("apply", {
        id: this.session.id,
        ...merged,
      });
      if (result) {
        const said = sent
          .map(({ path, indices, told }) =>
            this.review.record(path, indices, decision, result.files.find((file) => file.path === path), told),
          )
          .filter((text): text is string => !!text);
        if (said.length > 0) {
          void vscode.window.showWarningMessage(`Tether: ${said.join(" ")}`);
        }
      }
    }
    this.draw();
    if (this.review.done()) {
      void vscode.window.showInformationMessage(`Tether: ${this.session.name} reviewed: ${this.review.progress()}.`);
    }
  }

  private undecided(path: string): number[] {
    return (this.review.file(path)?.hunks ?? []).filter((hunk) => !hunk.decision).map((hunk) => hunk.index);
  }

  protected async received(message: Record<string, unknown>): Promise<void> {
    const decision: Decision = message.decision === "rejected" ? "rejected" : "accepted";
    switch (message.type) {
      case "ready":
        this.ready = true;
        this.draw();
        return;
      case "hunk":
        await this.decide([{ path: String(message.path), indices: [Number(message.index)] }], decision);
        return;
      case "file": {
        const path = String(message.path);
        await this.decide([{ path, indices: this.undecided(path) }], decision);
        return;
      }
      case "all":
        await this.decide(
          this.review.files.map((file) => ({ path: file.path, indices: this.undecided(file.path) })),
          decision,
        );
        return;
      case "diff":
        await openFileDiff(this.session, String(message.path), vscode.ViewColumn.One);
        return;
    }
  }
}

function page(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  return pageHtml(webview, extensionUri, {
    scripts: ["review.js"],
    bodyClass: "review-page",
    body: `<div id="header"></div>
<div id="files"></div>`,
  });
}
