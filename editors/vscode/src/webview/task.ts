// The task panel's page (runs in the webview): the trials side by side, the files they
// changed with diff links, and Promote buttons; posts back what the user does. No imports:
// tsc emits it as a plain script. Every text goes in through textContent.

(() => {
  interface TaskApi {
    postMessage(message: unknown): void;
  }
  const vscode = (globalThis as unknown as { acquireVsCodeApi(): TaskApi }).acquireVsCodeApi();

  type Trial = {
    index: number;
    sessionId: string;
    provider: string;
    pullRequest?: string;
  };
  /** What the extension drew up: the table's rows (a label and a cell per trial), and which
   * trials can be promoted. */
  type View = { rows: Array<{ label: string; cells: string[] }>; promotable: boolean[] };
  type Task = {
    id: string;
    name: string;
    title: string;
    status: string;
    baseBranch: string;
    baseCommit: string;
    trials: Trial[];
    promoted?: { trial: number; how: string; reason?: string; pullRequest?: string };
  };
  type File = {
    path: string;
    agreement: string;
    trials: Array<{ trial: number; sessionId: string; status: string; additions: number; deletions: number }>;
  };

  const header = document.getElementById("header") as HTMLElement;
  const trialsBox = document.getElementById("trials") as HTMLElement;
  const filesBox = document.getElementById("files") as HTMLElement;
  const compareBox = document.getElementById("compare-with") as HTMLElement;
  const errorBox = document.getElementById("error") as HTMLElement;
  /** The diff's two sides: "base" or a trial's session id; kept across redraws. */
  let left = "base";
  let right = "";

  function drawHeader(task: Task): void {
    const promoted = task.promoted
      ? ` · trial ${task.promoted.trial} promoted by ${task.promoted.how}${task.promoted.reason ? `: ${task.promoted.reason}` : ""}`
      : "";
    header.replaceChildren(
      el("div", { class: "title" }, `Task: ${task.title}`),
      el(
        "div",
        { class: "muted" },
        el("span", { class: `status status-${task.status}`, "data-task-status": task.status }, task.status),
        ` ${task.name} · ${task.trials.length} trials from ${task.baseBranch} @ ${task.baseCommit.slice(0, 10)}${promoted}`,
      ),
    );
  }

  function drawTrials(task: Task, view: View): void {
    const table = el("table", { class: "trials" });
    const head = el("tr", {}, el("th", {}, ""));
    for (const trial of task.trials) {
      head.append(
        el(
          "th",
          { "data-trial": String(trial.index) },
          button(`Trial ${trial.index}`, () => vscode.postMessage({ type: "session", sessionId: trial.sessionId }), {
            class: "link",
          }),
        ),
      );
    }
    table.append(head);
    for (const { label, cells } of view.rows) {
      const row = el("tr", { "data-row": label }, el("th", {}, label));
      for (const cell of cells) {
        row.append(el("td", {}, cell));
      }
      table.append(row);
    }
    const promote = el("tr", { "data-row": "promote" }, el("th", {}, "promote"));
    for (const [position, trial] of task.trials.entries()) {
      const cell = el("td", { class: "promote" });
      if (trial.pullRequest) {
        cell.append(el("div", { class: "muted" }, trial.pullRequest));
      }
      if (view.promotable[position]) {
        const reason = el("input", { type: "text", class: "reason", placeholder: "why this one?", "aria-label": `Why trial ${trial.index}` });
        cell.append(reason);
        const actions = el("div", { class: "actions" });
        for (const [how, label] of [
          ["apply", "Apply"],
          ["merge", `Merge into ${task.baseBranch}`],
          ["pr", "Pull request"],
        ]) {
          actions.append(
            button(
              label,
              () => vscode.postMessage({ type: "promote", sessionId: trial.sessionId, how, reason: reason.value }),
              { class: how === "apply" ? "primary" : "", "data-how": how },
            ),
          );
        }
        cell.append(actions);
      } else if (task.promoted?.trial === trial.index) {
        cell.append(el("span", { class: "badge" }, `promoted (${task.promoted.how})`));
      }
      promote.append(cell);
    }
    table.append(promote);
    trialsBox.replaceChildren(table);
  }

  function sideSelect(task: Task, value: string, withBase: boolean, onChange: (value: string) => void): HTMLSelectElement {
    const select = el("select", {});
    if (withBase) {
      select.append(el("option", { value: "base" }, `base (${task.baseBranch})`));
    }
    for (const trial of task.trials) {
      select.append(el("option", { value: trial.sessionId }, `trial ${trial.index} (${trial.provider})`));
    }
    select.value = value;
    select.addEventListener("change", () => onChange(select.value));
    return select;
  }

  function drawFiles(task: Task, files: File[]): void {
    if (!task.trials.some((trial) => trial.sessionId === right)) {
      right = task.trials[0]?.sessionId ?? "";
    }
    compareBox.replaceChildren(
      el("span", {}, "Diff "),
      sideSelect(task, left, true, (value) => (left = value)),
      el("span", {}, " ↔ "),
      sideSelect(task, right, false, (value) => (right = value)),
    );
    const table = el("table", { class: "files" });
    const head = el("tr", {}, el("th", {}, "file"));
    for (const trial of task.trials) {
      head.append(el("th", {}, `trial ${trial.index}`));
    }
    head.append(el("th", {}, "trials agree?"));
    table.append(head);
    for (const file of files) {
      const row = el(
        "tr",
        { "data-file": file.path },
        el("td", {}, button(file.path, () => vscode.postMessage({ type: "diff", path: file.path, left, right }), { class: "link" })),
      );
      for (const trial of task.trials) {
        const change = file.trials.find((change) => change.trial === trial.index);
        row.append(
          el(
            "td",
            {},
            change
              ? button(
                  `+${change.additions} −${change.deletions}`,
                  () => vscode.postMessage({ type: "diff", path: file.path, left: "base", right: trial.sessionId }),
                  { class: "link", "data-trial": String(trial.index) },
                )
              : "·",
          ),
        );
      }
      row.append(el("td", {}, ({ single: "one trial", same: "same", different: "differ" } as Record<string, string>)[file.agreement] ?? file.agreement));
      table.append(row);
    }
    filesBox.replaceChildren(files.length > 0 ? table : el("div", { class: "muted" }, "No trial has changed a file yet."));
  }

  window.addEventListener("message", (event: MessageEvent) => {
    const message = event.data as { type: string; task?: Task; view?: View; files?: File[]; text?: string };
    if (message.type === "reset" && message.task && message.view) {
      errorBox.hidden = true;
      drawHeader(message.task);
      drawTrials(message.task, message.view);
      drawFiles(message.task, message.files ?? []);
    } else if (message.type === "error") {
      errorBox.textContent = message.text ?? "";
      errorBox.hidden = false;
    }
  });
  vscode.postMessage({ type: "ready" });
})();
