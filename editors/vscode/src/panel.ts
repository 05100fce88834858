// The session panel: a webview per session showing its live transcript (from
// `tether/session/get`, then its `tether/session/event`s), with a message box, the question
// form, plan approval and permission buttons. The page itself is src/webview/panel.ts.

import * as vscode from "vscode";

import { answersFromForm, type EventParams, type SessionInfo } from "./sessions";
import { type EventRecord, type Header, Transcript } from "./transcript";
import { TetherPanel, pageHtml } from "./webviewPage";

/** Sends `tether/session/<method>`; shows the error and returns undefined when it fails. */
export type Requester = <T>(method: string, params: unknown) => Promise<T | undefined>;

/** How long updates gather before they go to the page: streaming text arrives ~60 times a second. */
const FLUSH_MS = 50;

/** Every open session panel, one per session. */
export class SessionPanels {
  private readonly panels = new Map<string, SessionPanel>();

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly request: Requester,
    private readonly runCommand: (name: string, session: SessionInfo) => Promise<void>,
  ) {}

  /** Shows the session's panel, opening it if need be. */
  async open(session: SessionInfo): Promise<void> {
    const existing = this.panels.get(session.id);
    if (existing) {
      existing.reveal();
      return;
    }
    const panel = new SessionPanel(session, this.extensionUri, this.request, this.runCommand, () =>
      this.panels.delete(session.id),
    );
    this.panels.set(session.id, panel);
    await panel.load();
  }

  isOpen(id: string): boolean {
    return this.panels.has(id);
  }

  /** A live event: to its session's panel, if one is open. */
  event(params: EventParams): void {
    this.panels.get(params.sessionId)?.event(params);
  }

  dispose(): void {
    for (const panel of [...this.panels.values()]) {
      panel.dispose();
    }
  }
}

class SessionPanel extends TetherPanel {
  private transcript: Transcript;
  private readonly dirty = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ready = false;
  /** The page asked for the timeline: it is kept current from then on. */
  private timelineShown = false;
  private loading: Promise<void> | undefined;
  /** Live events that arrived while the transcript was being read. */
  private held: EventParams[] = [];

  constructor(
    private readonly session: SessionInfo,
    extensionUri: vscode.Uri,
    private readonly request: Requester,
    private readonly runCommand: (name: string, session: SessionInfo) => Promise<void>,
    onDispose: () => void,
  ) {
    super({
      viewType: "tether.session",
      title: `Tether: ${session.name}`,
      column: vscode.ViewColumn.Beside,
      extensionUri,
      page,
      onDispose,
      extraRoots: [MARKDOWN_IT],
    });
    this.transcript = new Transcript(session as unknown as Partial<Header>);
  }

  protected closed(): void {
    clearTimeout(this.timer);
  }

  /** Reads the whole transcript again (on open, and after a gap in the events). */
  load(): Promise<void> {
    this.loading ??= (async () => {
      const got = await this.request<{ session: SessionInfo; events: EventRecord[] }>("get", { id: this.session.id });
      if (got) {
        const transcript = new Transcript(got.session as unknown as Partial<Header>);
        for (const record of got.events) {
          transcript.apply(record);
        }
        this.transcript = transcript;
      }
      this.loading = undefined;
      this.dirty.clear();
      this.post({ type: "reset", header: this.transcript.header, entries: this.transcript.all() });
      // What arrived meanwhile: the read has the older ones (they are skipped), not the newer.
      // When the read failed (the error is shown), they wait for the next event or open.
      const held = got ? this.held : [];
      this.held = [];
      for (const params of held) {
        this.event(params);
      }
    })();
    return this.loading;
  }

  event(params: EventParams): void {
    if (this.loading) {
      this.held.push(params);
      return;
    }
    if (params.seq > this.transcript.lastSeq + 1) {
      this.held.push(params);
      void this.load();
      return;
    }
    const kind = (params.event as { kind?: string }).kind;
    if (this.timelineShown && (kind === "checkpoint" || kind === "rewound")) {
      void this.postCheckpoints();
    }
    const changed = this.transcript.apply(params);
    if (!changed || changed.length === 0) {
      return;
    }
    for (const id of changed) {
      this.dirty.add(id);
    }
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.timer = undefined;
    const entries = [...this.dirty]
      .filter((id) => id !== "header")
      .map((id) => this.transcript.entry(id))
      .filter((entry) => entry !== undefined);
    this.dirty.clear();
    this.post({ type: "update", header: this.transcript.header, entries });
  }

  private post(message: unknown): void {
    if (this.ready) {
      void this.panel.webview.postMessage(message);
    }
  }

  private error(text: string): void {
    void this.panel.webview.postMessage({ type: "error", text });
  }

  protected async received(message: Record<string, unknown>): Promise<void> {
    const id = this.session.id;
    switch (message.type) {
      case "ready":
        this.ready = true;
        this.post({ type: "reset", header: this.transcript.header, entries: this.transcript.all() });
        return;
      case "send":
        // The editor's own commands run here; the rest are the server's.
        if (/^\s*\/(diff|apply)\s*$/.test(String(message.text))) {
          await this.runCommand(String(message.text).trim().slice(1), this.session);
          return;
        }
        await this.request("send", {
          id,
          text: String(message.text),
          attachments: Array.isArray(message.attachments) && message.attachments.length ? message.attachments : undefined,
        });
        return;
      case "edit":
        await this.request("editMessage", { id, itemId: String(message.itemId), text: String(message.text) });
        return;
      case "complete": {
        const got = await this.request<{ word: string; items: unknown[] }>("completions", {
          id,
          text: String(message.text),
        });
        this.post({ type: "completions", text: String(message.text), word: got?.word ?? "", items: got?.items ?? [] });
        return;
      }
      case "thumbnail": {
        // An attached image's bytes, for its thumbnail (a data: URL the page's CSP allows).
        const sha256 = String(message.sha256);
        const got = await this.request<{ data: string }>("attachment", { id, sha256 });
        if (got?.data) {
          this.post({ type: "thumbnail", sha256, url: `data:${String(message.mimeType)};base64,${got.data}` });
        }
        return;
      }
      case "compact":
        await this.request("compact", { id });
        return;
      case "deleteMessage":
        await this.request("deleteMessage", { id, itemId: String(message.itemId) });
        return;
      case "answer": {
        const entry = this.transcript.open(String(message.questionId));
        if (entry?.kind !== "question") {
          this.error("That question is no longer open.");
          return;
        }
        const form = (message.form ?? {}) as Parameters<typeof answersFromForm>[1];
        const result = answersFromForm(entry.questions, form);
        if ("error" in result) {
          this.error(result.error);
          return;
        }
        await this.request("answer", { id, questionId: entry.id, answers: result.answers });
        return;
      }
      case "plan":
        await this.request("decidePlan", {
          id,
          planId: String(message.planId),
          approve: message.approve === true,
          feedback: message.feedback ? String(message.feedback) : undefined,
        });
        return;
      case "permission": {
        const decision = String(message.decision);
        const feedback = String(message.feedback ?? "").trim();
        await this.request("answer", {
          id,
          questionId: String(message.itemId),
          answers: feedback && decision.startsWith("reject") ? [decision, feedback] : [decision],
        });
        return;
      }
      case "feedback": {
        const rating = String(message.rating);
        // A thumbs-down says most with a reason; a thumbs-up needs none.
        const comment =
          rating === "down"
            ? await vscode.window.showInputBox({ prompt: "What was wrong with this reply? (optional)" })
            : undefined;
        await this.request("feedback", { id, itemId: String(message.itemId), rating, comment: comment || undefined });
        return;
      }
      case "diff":
        await this.diff(String(message.path));
        return;
      case "open": {
        const file = vscode.Uri.file(`${this.transcript.header.repo}/${String(message.file)}`);
        const line = Math.max(0, Number(message.line ?? 1) - 1);
        await vscode.window.showTextDocument(file, {
          selection: new vscode.Range(line, 0, line, 0),
          viewColumn: this.besidePanel(),
        });
        return;
      }
      case "command":
        await this.runCommand(String(message.name), this.session);
        return;
      case "fixFinding":
        await this.request("fixFinding", { id, findingId: String(message.findingId) });
        return;
      case "dismissFinding":
        await this.request("dismissFinding", { id, findingId: String(message.findingId) });
        return;
      case "checkpoints":
        this.timelineShown = true;
        await this.postCheckpoints();
        return;
      case "rewind":
        await this.rewind(String(message.checkpoint));
        return;
    }
  }

  /** The timeline, read again (after a checkpoint or a rewind). */
  private async postCheckpoints(): Promise<void> {
    const got = await this.request<{ checkpoints: unknown[] }>("checkpoints", { id: this.session.id });
    if (got) {
      this.post({ type: "checkpoints", checkpoints: got.checkpoints });
    }
  }

  /** Puts the worktree back to `checkpoint`, offering the undo the rewind leaves. */
  private async rewind(checkpoint: string): Promise<void> {
    const rewound = await this.request<{ undo: string }>("rewind", { id: this.session.id, checkpoint });
    await this.postCheckpoints();
    if (!rewound) {
      return;
    }
    const undo = await vscode.window.showInformationMessage(
      `Tether: ${this.session.name} is back at ${checkpoint}; what it was is kept as ${rewound.undo}.`,
      "Undo",
    );
    if (undo === "Undo") {
      await this.request("rewind", { id: this.session.id, checkpoint: rewound.undo });
      await this.postCheckpoints();
    }
  }

  /** The editor column beside the panel, so what it opens does not cover it. */
  private besidePanel(): vscode.ViewColumn {
    return this.panel.viewColumn === vscode.ViewColumn.One ? vscode.ViewColumn.Two : vscode.ViewColumn.One;
  }

  private async diff(path: string): Promise<void> {
    await openFileDiff(this.transcript.header, path, this.besidePanel());
  }
}

/** Your copy of a file beside the session's, as a diff editor: what applying would change. */
export async function openFileDiff(
  session: { repo: string; worktree: string; name: string },
  path: string,
  viewColumn?: vscode.ViewColumn,
): Promise<void> {
  const side = async (root: string) => {
    const uri = vscode.Uri.file(`${root}/${path}`);
    const exists = await vscode.workspace.fs.stat(uri).then(
      () => true,
      () => false,
    );
    return exists ? uri : vscode.Uri.from({ scheme: EMPTY_SCHEME, path: `/${path}` });
  };
  await vscode.commands.executeCommand(
    "vscode.diff",
    await side(session.repo),
    await side(session.worktree),
    `${path} (yours ↔ ${session.name})`,
    { viewColumn },
  );
}

/** markdown-it's browser build (a UMD script defining `markdownit`), copied by esbuild.mjs. */
const MARKDOWN_IT = "dist/media";

/** The scheme of an empty document: the missing side of a diff for an added or deleted file. */
export const EMPTY_SCHEME = "tether-empty";

export const emptyDocuments: vscode.TextDocumentContentProvider = {
  provideTextDocumentContent: () => "",
};

function page(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  return pageHtml(webview, extensionUri, {
    libraries: [`${MARKDOWN_IT}/markdown-it.min.js`],
    scripts: ["timeline.js", "sessionParts.js", "panel.js"],
    images: true,
    body: `<div id="header"></div>
<div id="timeline" hidden></div>
<div id="entries" aria-live="polite"></div>
<div id="error" role="alert" hidden></div>
<div id="attachments" hidden></div>
<div id="composer">
<textarea id="message" rows="2" placeholder="Message the session (Ctrl+Enter sends; @ a file, / a command)" aria-label="Message"></textarea>
<ul id="completions" role="listbox" aria-label="Completions" hidden></ul>
<button id="send" type="button" class="primary">Send</button>
</div>`,
  });
}
