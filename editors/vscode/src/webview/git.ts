// The Git panel's page (runs in the webview): the branch line, staged and unstaged files
// with their buttons, the commit box and the remote operations; posts back what the user
// does. No imports: tsc emits it as a plain script. Every text goes in through textContent.

(() => {
  interface GitApi {
    postMessage(message: unknown): void;
  }
  const vscode = (globalThis as unknown as { acquireVsCodeApi(): GitApi }).acquireVsCodeApi();

  type Row = { path: string; letter: string };
  type Reset = {
    type: "reset";
    name: string;
    baseBranch: string;
    branchLine: string;
    staged: Row[];
    unstaged: Row[];
    error?: string;
    done?: string;
  };

  const header = document.getElementById("header") as HTMLElement;
  const errorBox = document.getElementById("error") as HTMLElement;
  const doneBox = document.getElementById("done") as HTMLElement;
  const filesBox = document.getElementById("files") as HTMLElement;
  const commitBox = document.getElementById("commit") as HTMLElement;
  const messageBox = document.getElementById("commit-message") as HTMLTextAreaElement;
  const remoteBox = document.getElementById("remote") as HTMLElement;
  const op = (name: string, extra: Record<string, unknown> = {}) => vscode.postMessage({ type: "op", op: name, ...extra });

  const commitButton = button("Commit", () => op("commit", { message: messageBox.value }), { class: "primary", id: "commit-button" });
  commitBox.append(commitButton);

  function fileRow(row: Row, side: "staged" | "unstaged"): HTMLElement {
    const actions =
      side === "staged"
        ? [button("Unstage", () => op("unstage", { paths: [row.path] }), { class: "unstage" })]
        : [
            button("Stage", () => op("stage", { paths: [row.path] }), { class: "stage" }),
            button("Discard", () => op("discard", { paths: [row.path] }), { class: "discard" }),
          ];
    return el(
      "li",
      { class: `git-file git-${side}`, "data-path": row.path },
      el("code", { class: "letter" }, row.letter),
      ` ${row.path} `,
      ...actions,
    );
  }

  function draw(message: Reset): void {
    header.replaceChildren(
      el("div", { class: "title" }, `Git: ${message.name}`),
      el("div", { id: "branch-line" }, message.branchLine),
      button("Refresh", () => op("status"), { class: "refresh" }),
    );
    errorBox.textContent = message.error ?? "";
    errorBox.hidden = !message.error;
    doneBox.textContent = message.done ?? "";
    doneBox.hidden = !message.done;
    filesBox.replaceChildren(
      el(
        "h3",
        {},
        `Staged (${message.staged.length}) `,
        message.staged.length > 0 ? button("Unstage all", () => op("unstage"), { class: "unstage-all" }) : "",
      ),
      el("ul", { class: "staged" }, ...message.staged.map((row) => fileRow(row, "staged"))),
      el(
        "h3",
        {},
        `Changes (${message.unstaged.length}) `,
        message.unstaged.length > 0 ? button("Stage all", () => op("stage"), { class: "stage-all" }) : "",
        message.unstaged.length > 0 ? button("Discard all", () => op("discard"), { class: "discard-all" }) : "",
      ),
      el("ul", { class: "unstaged" }, ...message.unstaged.map((row) => fileRow(row, "unstaged"))),
    );
    remoteBox.replaceChildren(
      button("Push", () => op("push"), { class: "push" }),
      button("Pull", () => op("pull"), { class: "pull" }),
      button("Pull a branch…", () => op("pullBranch"), { class: "pull-branch" }),
      button(`Merge into ${message.baseBranch}`, () => op("mergeToBase"), { class: "merge-to-base" }),
      button(`Pull ${message.baseBranch} in`, () => op("pullFromBase"), { class: "pull-from-base" }),
    );
    if (message.done?.startsWith("commit")) {
      messageBox.value = "";
    }
  }

  window.addEventListener("message", (event: MessageEvent<Reset>) => {
    if (event.data.type === "reset") {
      draw(event.data);
    }
  });
  vscode.postMessage({ type: "ready" });
})();
