// The review panel's page (runs in the webview): a session's files and hunks with Accept /
// Reject buttons and the progress; posts back what the user does. No imports: tsc emits it
// as a plain script. Every text goes in through textContent.

(() => {
  interface ReviewApi {
    postMessage(message: unknown): void;
  }
  const vscode = (globalThis as unknown as { acquireVsCodeApi(): ReviewApi }).acquireVsCodeApi();

  type Hunk = { index: number; header: string; lines: string[]; decision?: string; conflict?: boolean };
  type File = { path: string; status: string; additions: number; deletions: number; binary: boolean; hunks: Hunk[] };
  type Reset = { type: "reset"; name: string; progress: string; done: boolean; files: File[] };

  const header = document.getElementById("header") as HTMLElement;
  const filesBox = document.getElementById("files") as HTMLElement;
  const post = (message: Record<string, unknown>) => vscode.postMessage(message);

  function hunkView(file: File, hunk: Hunk): HTMLElement {
    const state = hunk.decision ?? (hunk.conflict ? "conflict" : "open");
    const actions = hunk.decision
      ? el("span", { class: `decision decision-${hunk.decision}` }, hunk.decision)
      : el(
          "span",
          { class: "actions" },
          button("Accept", () => post({ type: "hunk", path: file.path, index: hunk.index, decision: "accepted" }), {
            class: "primary accept-hunk",
          }),
          button("Reject", () => post({ type: "hunk", path: file.path, index: hunk.index, decision: "rejected" }), {
            class: "reject-hunk",
          }),
        );
    const lines = hunk.lines.map((line) =>
      el("div", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "ctx" }, line),
    );
    return el(
      "div",
      { class: `hunk hunk-${state}`, "data-path": file.path, "data-hunk": String(hunk.index) },
      el("div", { class: "hunk-head" }, el("code", {}, `#${hunk.index} ${hunk.header}`), actions),
      hunk.conflict && !hunk.decision
        ? el("div", { class: "conflict" }, "You changed these lines too: not applied. Edit it by hand, or reject it.")
        : "",
      el("pre", { class: "patch" }, ...lines),
    );
  }

  function fileView(file: File): HTMLElement {
    const open = file.hunks.some((hunk) => !hunk.decision);
    return el(
      "section",
      { class: "review-file", "data-path": file.path },
      el(
        "div",
        { class: "file-head" },
        el("strong", {}, file.path),
        ` ${file.status} +${file.additions} −${file.deletions} `,
        button("Open diff", () => post({ type: "diff", path: file.path }), { class: "open-diff" }),
        open ? button("Accept file", () => post({ type: "file", path: file.path, decision: "accepted" }), { class: "accept-file" }) : "",
        open ? button("Reject file", () => post({ type: "file", path: file.path, decision: "rejected" }), { class: "reject-file" }) : "",
      ),
      file.binary ? el("div", { class: "muted" }, "A binary file: take it from the session's worktree.") : "",
      ...file.hunks.map((hunk) => hunkView(file, hunk)),
    );
  }

  function draw(message: Reset): void {
    header.replaceChildren(
      el("div", { class: "title" }, `Review: ${message.name}`),
      el("div", { id: "progress", class: message.done ? "done" : "" }, message.progress),
      message.done
        ? ""
        : el(
            "div",
            { class: "actions" },
            button("Accept all", () => post({ type: "all", decision: "accepted" }), { class: "primary accept-all" }),
            button("Reject all", () => post({ type: "all", decision: "rejected" }), { class: "reject-all" }),
          ),
    );
    filesBox.replaceChildren(...message.files.map(fileView));
  }

  window.addEventListener("message", (event: MessageEvent<Reset>) => {
    if (event.data.type === "reset") {
      draw(event.data);
    }
  });
  post({ type: "ready" });
})();
