// The session panel's checkpoints timeline (runs in the webview, loaded before panel.js): each
// checkpoint (the start, each turn that changed files, what each rewind left) with when, its
// files and counts, and Rewind; a rewind's own checkpoint offers to undo it. No imports: tsc
// emits it as a plain script, and `drawTimeline` is a global of the page.
/* eslint-disable @typescript-eslint/no-unused-vars -- used by panel.ts */

type TimelineFile = { path: string; status: string; additions: number; deletions: number };
type TimelineCheckpoint = { name: string; at: number; turn?: number; undoes?: string; files: TimelineFile[] };

/** Draws `checkpoints` (oldest first) into `box`, newest on top; `rewind(name)` on a click. */
function drawTimeline(box: HTMLElement, checkpoints: TimelineCheckpoint[], rewind: (name: string) => void): void {
  const label = (checkpoint: TimelineCheckpoint) =>
    checkpoint.turn !== undefined
      ? `turn ${checkpoint.turn}`
      : checkpoint.name === "start"
        ? "start"
        : `before the rewind to ${checkpoint.undoes ?? "?"}`;
  const rows = [...checkpoints].reverse().map((checkpoint, index) => {
    const added = checkpoint.files.reduce((sum, file) => sum + file.additions, 0);
    const deleted = checkpoint.files.reduce((sum, file) => sum + file.deletions, 0);
    const when = new Date(checkpoint.at).toLocaleTimeString();
    const summary = `${checkpoint.files.length} file${checkpoint.files.length === 1 ? "" : "s"} +${added} −${deleted} · ${when}`;
    const action = checkpoint.undoes
      ? button(`Undo the rewind to ${checkpoint.undoes}`, () => rewind(checkpoint.name), { class: "undo-rewind" })
      : index === 0
        ? el("span", { class: "muted" }, "latest")
        : button("Rewind here", () => rewind(checkpoint.name), { class: "rewind" });
    return el(
      "li",
      { class: "checkpoint", "data-checkpoint": checkpoint.name },
      el("div", { class: "checkpoint-head" }, el("strong", {}, label(checkpoint)), ` · ${summary} `, action),
      el(
        "ul",
        { class: "checkpoint-files" },
        ...checkpoint.files.map((file) => el("li", {}, `${file.path} (${file.status}) +${file.additions} −${file.deletions}`)),
      ),
    );
  });
  box.replaceChildren(
    el("div", { class: "timeline-title" }, "Checkpoints"),
    rows.length > 0 ? el("ol", { class: "timeline" }, ...rows) : el("div", { class: "muted" }, "No checkpoints yet."),
  );
  box.hidden = false;
}
