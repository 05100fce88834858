// The session panel's page (runs in the webview, not in the extension host): draws the
// entries the extension sends and posts back what the user does. No imports: tsc emits it
// as a plain script. Every text from the session goes in through textContent, except the
// agent's messages, which go through markdown-it with raw HTML escaped.

interface VsCodeApi {
  postMessage(message: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;
/** markdown-it's browser build, loaded before this script. */
declare function markdownit(options: Record<string, unknown>): { render(text: string): string };

(() => {
  const vscode = acquireVsCodeApi();
  const post = (message: unknown): void => vscode.postMessage(message);
  const entriesBox = document.getElementById("entries") as HTMLElement;
  const headerBox = document.getElementById("header") as HTMLElement;
  const errorBox = document.getElementById("error") as HTMLElement;
  const messageBox = document.getElementById("message") as HTMLTextAreaElement;
  const sendButton = document.getElementById("send") as HTMLButtonElement;
  /** What each entry was last drawn from, so an unchanged entry (and a form being filled) is left alone. */
  const drawn = new Map<string, string>();
  /** Which collapsible entries the user opened. */
  const expanded = new Set<string>();
  /** The user message being edited in the message box, if any. */
  let editing: string | undefined;
  const attachmentsBox = document.getElementById("attachments") as HTMLElement;
  /** Files pasted or dropped into the message box, sent with the next message. */
  let pending: Array<{ name: string; mimeType?: string; data?: string; uri?: string; preview?: string }> = [];
  /** Thumbnails of attached images, by hash, once the extension sent them. */
  const thumbnails = new Map<string, string>();
  const askedThumbnails = new Set<string>();
  const completionList = document.getElementById("completions") as HTMLUListElement;
  /** The completions shown for the word before the cursor, and the one chosen. */
  let completions: { word: string; items: Array<{ label: string; detail?: string; insert: string }>; chosen: number } | undefined;
  let completionTimer: ReturnType<typeof setTimeout> | undefined;

  /** The text before the cursor, when its last word is one to complete (`@…`, or a first `/…`). */
  function completable(): string | undefined {
    const before = messageBox.value.slice(0, messageBox.selectionStart ?? messageBox.value.length);
    const line = before.slice(before.lastIndexOf("\n") + 1);
    return /(^|\s)@\S*$/.test(line) || /^\s*\/[\w:-]*$/.test(line) ? before : undefined;
  }

  function closeCompletions(): void {
    completions = undefined;
    completionList.hidden = true;
    completionList.replaceChildren();
  }

  function drawCompletions(): void {
    if (!completions || completions.items.length === 0) {
      closeCompletions();
      return;
    }
    const shown = completions;
    completionList.hidden = false;
    completionList.replaceChildren(
      ...shown.items.map((item, index) => {
        const row = el(
          "li",
          { role: "option", "aria-selected": String(index === shown.chosen), class: index === shown.chosen ? "chosen" : "" },
          el("span", { class: "completion-label" }, item.label),
          item.detail ? el("span", { class: "muted" }, ` ${item.detail}`) : "",
        );
        row.addEventListener("mousedown", (pressed) => {
          pressed.preventDefault();
          accept(index);
        });
        return row;
      }),
    );
  }

  /** Puts completion `index` in place of the word before the cursor. */
  function accept(index: number): void {
    const item = completions?.items[index];
    if (!completions || !item) {
      return;
    }
    const cursor = messageBox.selectionStart ?? messageBox.value.length;
    const start = Math.max(0, cursor - completions.word.length);
    messageBox.value = messageBox.value.slice(0, start) + item.insert + messageBox.value.slice(cursor);
    const after = start + item.insert.length;
    messageBox.setSelectionRange(after, after);
    closeCompletions();
    messageBox.focus();
  }

  messageBox.addEventListener("input", () => {
    clearTimeout(completionTimer);
    const text = completable();
    if (text === undefined) {
      closeCompletions();
      return;
    }
    completionTimer = setTimeout(() => vscode.postMessage({ type: "complete", text }), 60);
  });
  // Raw HTML in a message is escaped (html: false); markdown-it also refuses javascript:,
  // vbscript:, file: and data: links. So a message can format, never inject.
  const markdown = typeof markdownit === "function" ? markdownit({ html: false, linkify: true, breaks: false }) : undefined;

  /** A message's text as Markdown, or as plain text if markdown-it did not load. */
  function rendered(text: string, streaming: boolean): HTMLElement {
    if (!markdown) {
      return el("div", { class: `text${streaming ? " streaming" : ""}` }, text);
    }
    const node = el("div", { class: `markdown${streaming ? " streaming" : ""}` });
    node.innerHTML = markdown.render(text);
    return node;
  }

  function collapsible(id: string, summary: Array<Node | string>, body: Array<Node | string>): HTMLDetailsElement {
    const details = el("details", {}, el("summary", {}, ...summary), ...body);
    details.open = expanded.has(id);
    details.addEventListener("toggle", () => {
      if (details.open) {
        expanded.add(id);
      } else {
        expanded.delete(id);
      }
    });
    return details;
  }

  const ROLES: Record<string, string> = {
    agent: "Agent",
    user: "You",
    system: "Tether note",
    summary: "Summary",
    hookFailure: "Hook failure",
  };

  function drawHeader(header: Json): void {
    const usage = (header.usage ?? {}) as Json;
    const activity = header.activity ? ` · ${str(header.activity).replace(/_/g, " ")}` : "";
    headerBox.replaceChildren(
      el(
        "div",
        { class: "title" },
        el("strong", {}, str(header.name)),
        " ",
        el("span", { class: `status status-${str(header.status)}`, "data-status": str(header.status) }, `${str(header.status)}${activity}`),
      ),
      el("div", { class: "muted" }, str(header.title)),
      el(
        "div",
        { class: "muted" },
        `${str(header.mode)} · ${str(header.branch)} · ${str(header.model)} · `,
        el(
          "span",
          { class: "usage" },
          `${Number(usage.inputTokens ?? 0).toLocaleString()} in · ${Number(usage.outputTokens ?? 0).toLocaleString()} out · $${Number(usage.costUsd ?? 0).toFixed(4)}`,
        ),
      ),
      ...(header.pullRequest
        ? [el("div", { class: "muted pull-request" }, "Pull request: ", el("span", { class: "url" }, str(header.pullRequest)))]
        : []),
      ...(header.context ? [contextMeter(header.context as Json)] : []),
      el(
        "div",
        { class: "actions" },
        button("Stop", () => vscode.postMessage({ type: "command", name: "stop" })),
        button("Resume", () => vscode.postMessage({ type: "command", name: "resume" })),
        button("Apply changes", () => vscode.postMessage({ type: "command", name: "apply" }), { id: "apply" }),
        button("Run review", () => vscode.postMessage({ type: "command", name: "review" })),
        button("Review hunks", () => vscode.postMessage({ type: "command", name: "reviewChanges" }), { id: "review-hunks" }),
        button("Checkpoints", () => vscode.postMessage({ type: "checkpoints" }), { id: "checkpoints" }),
        button("Git", () => vscode.postMessage({ type: "command", name: "git" }), { id: "git" }),
        ...(header.context
          ? [button("Compact", () => vscode.postMessage({ type: "compact" }), {
              id: "compact",
              title: "Summarize the conversation so far; the summary replaces it in the model's context",
            })]
          : []),
      ),
    );
  }

  function drawEntry(entry: PanelEntry): HTMLElement {
    const box = el("div", { class: `entry entry-${entry.kind}`, "data-id": entry.id, "data-kind": entry.kind });
    switch (entry.kind) {
      case "message": {
        const role = str(entry.role);
        if (!entry.streaming && !str(entry.text).trim()) {
          box.hidden = true; // an agent turn that only called tools says nothing
          break;
        }
        box.classList.add(`role-${role}`);
        box.append(
          el("div", { class: "role" }, ROLES[role] ?? role),
          role === "agent" || role === "summary"
            ? rendered(str(entry.text), entry.streaming === true)
            : el("div", { class: `text${entry.streaming ? " streaming" : ""}` }, str(entry.text)),
        );
        if (entry.interrupted) {
          box.append(el("div", { class: "muted" }, "(interrupted)"));
        }
        const attached = (entry.attachments ?? []) as Array<{ name: string; mimeType: string; size: number; sha256: string }>;
        if (attached.length) {
          box.append(el("div", { class: "attached" }, ...attached.map(attachedChip)));
        }
        if (role === "user" && entry.queued) {
          box.append(
            el(
              "div",
              { class: "message-actions" },
              el("span", { class: "badge queued" }, "queued"),
              " ",
              button("Delete", () => vscode.postMessage({ type: "deleteMessage", itemId: entry.id }), {
                class: "link delete-message",
                title: "Take this message back before the agent gets it",
              }),
            ),
          );
        } else if (role === "user" && !entry.superseded && !entry.streaming) {
          box.append(
            el(
              "div",
              { class: "message-actions" },
              button("Edit", () => startEditing(entry.id, str(entry.text)), {
                class: "link edit-message",
                title: "Edit this message and run the session again from it (the worktree goes back too)",
              }),
            ),
          );
        }
        const cost = entry.cost as { usd: number; tokensIn: number; tokensOut: number } | undefined;
        if (cost && !entry.streaming) {
          box.append(
            el(
              "div",
              { class: "muted cost" },
              `$${cost.usd.toFixed(4)} · ${cost.tokensIn.toLocaleString()} in · ${cost.tokensOut.toLocaleString()} out`,
            ),
          );
        }
        if (role === "agent" && !entry.streaming) {
          const rate = (rating: string) => () => vscode.postMessage({ type: "feedback", itemId: entry.id, rating });
          const chosen = (rating: string): Record<string, string> =>
            entry.rating === rating ? { "aria-pressed": "true", class: "link rated" } : { class: "link" };
          box.append(
            el(
              "div",
              { class: "feedback" },
              button("👍", rate("up"), { title: "Good reply", "data-rating": "up", ...chosen("up") }),
              " ",
              button("👎", rate("down"), { title: "Bad reply", "data-rating": "down", ...chosen("down") }),
              entry.comment ? el("span", { class: "muted" }, ` ${str(entry.comment)}`) : "",
            ),
          );
        }
        break;
      }
      case "thinking":
        box.append(
          collapsible(entry.id, [entry.streaming ? "Thinking…" : "Thought"], [el("div", { class: "text" }, str(entry.text))]),
        );
        break;
      case "tool": {
        const status = str(entry.status);
        const took = typeof entry.durationMs === "number" ? ` · ${entry.durationMs} ms` : "";
        box.append(
          collapsible(
            entry.id,
            [
              el("span", { class: `badge tool-${status}` }, status),
              " ",
              el("code", {}, str(entry.tool)),
              " ",
              el("span", { class: "muted" }, `${str(entry.input)}${took}`),
            ],
            [el("pre", {}, str(entry.output) || "(no output yet)")],
          ),
        );
        break;
      }
      case "fileChange": {
        const path = str(entry.path);
        box.append(
          "Changed ",
          button(path, () => vscode.postMessage({ type: "diff", path }), { class: "link", title: `Open the diff of ${path}` }),
          " ",
          el("span", { class: "added" }, `+${str(entry.additions)}`),
          " ",
          el("span", { class: "deleted" }, `−${str(entry.deletions)}`),
        );
        break;
      }
      case "question": {
        box.append(el("div", { class: "role" }, "Question"));
        const questions = (entry.questions ?? []) as Array<{ prompt: string }>;
        if (entry.open) {
          box.append(questionForm(entry, post));
        } else {
          const answers = (entry.answers ?? []) as unknown[];
          questions.forEach((question, index) => {
            const answer = answers[index];
            box.append(
              el(
                "div",
                {},
                `${question.prompt} → `,
                el("strong", {}, Array.isArray(answer) ? answer.join(", ") : str(answer) || "(not answered)"),
              ),
            );
          });
        }
        break;
      }
      case "plan":
        box.append(...planParts(entry, post));
        break;
      case "permission":
        box.append(...permissionParts(entry, post));
        break;
      case "findings":
        box.append(...findingsParts(entry, post));
        break;
      default:
        box.append(el("div", { class: "muted" }, str(entry.text)));
    }
    if (entry.withdrawn) {
      box.hidden = true;
    }
    if (entry.superseded) {
      // What an edit replaced stays, folded away.
      box.classList.add("superseded");
      const label = entry.kind === "message" ? (ROLES[str(entry.role)] ?? str(entry.role)) : entry.kind;
      box.replaceChildren(collapsible(entry.id, [el("span", { class: "muted" }, `Superseded by an edit · ${label}`)], [...box.childNodes]));
    }
    return box;
  }

  /** A file attached to a message: a thumbnail for an image (asked of the extension once). */
  function attachedChip(file: { name: string; mimeType: string; size: number; sha256: string }): HTMLElement {
    const chip = el("span", { class: "attachment", title: `${file.name} (${file.mimeType}, ${file.size.toLocaleString()} bytes)` });
    if (file.mimeType.startsWith("image/")) {
      const image = el("img", { class: "thumbnail", alt: file.name, "data-sha256": file.sha256 });
      const url = thumbnails.get(file.sha256);
      if (url) {
        image.src = url;
      } else if (!askedThumbnails.has(file.sha256)) {
        askedThumbnails.add(file.sha256);
        vscode.postMessage({ type: "thumbnail", sha256: file.sha256, mimeType: file.mimeType });
      }
      chip.append(image);
    }
    chip.append(el("span", { class: "attachment-name" }, file.name));
    return chip;
  }

  function drawPending(): void {
    attachmentsBox.hidden = pending.length === 0;
    attachmentsBox.replaceChildren(
      ...pending.map((file, index) => {
        const chip = el("span", { class: "attachment pending-attachment", title: file.name });
        if (file.preview) {
          const image = el("img", { class: "thumbnail", alt: file.name });
          image.src = file.preview;
          chip.append(image);
        }
        chip.append(
          el("span", { class: "attachment-name" }, file.name),
          button("×", () => {
            pending.splice(index, 1);
            drawPending();
          }, { class: "link remove-attachment", title: `Remove ${file.name}` }),
        );
        return chip;
      }),
    );
  }

  /** Reads a pasted or dropped file into the pending attachments. */
  function addFile(file: File): void {
    const reader = new FileReader();
    reader.addEventListener("load", () => {
      const url = String(reader.result ?? "");
      const comma = url.indexOf(",");
      const mimeType = file.type || undefined;
      pending.push({
        name: file.name || `pasted.${(mimeType ?? "image/png").split("/")[1] ?? "bin"}`,
        mimeType,
        data: url.slice(comma + 1),
        preview: mimeType?.startsWith("image/") ? url : undefined,
      });
      drawPending();
    });
    reader.readAsDataURL(file);
  }

  /** Puts a sent message in the message box; sending it then edits that message. */
  function startEditing(itemId: string, text: string): void {
    editing = itemId;
    messageBox.value = text;
    messageBox.focus();
    sendButton.textContent = "Run edited";
    document.body.classList.add("editing");
  }

  function stopEditing(): void {
    editing = undefined;
    sendButton.textContent = "Send";
    document.body.classList.remove("editing");
  }

  function upsert(entry: PanelEntry): void {
    const json = JSON.stringify(entry);
    if (drawn.get(entry.id) === json) {
      return;
    }
    drawn.set(entry.id, json);
    const node = drawEntry(entry);
    const old = entriesBox.querySelector(`[data-id="${CSS.escape(entry.id)}"]`);
    if (old) {
      old.replaceWith(node);
    } else {
      entriesBox.append(node);
    }
  }

  window.addEventListener("message", (received: MessageEvent) => {
    const message = received.data as Json;
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    if (message.type === "reset") {
      drawn.clear();
      entriesBox.replaceChildren();
    }
    if (message.type === "reset" || message.type === "update") {
      if (message.header) {
        drawHeader(message.header as Json);
      }
      for (const entry of (message.entries ?? []) as PanelEntry[]) {
        upsert(entry);
      }
      errorBox.hidden = true;
      if (atBottom) {
        window.scrollTo(0, document.body.scrollHeight);
      }
    } else if (message.type === "completions") {
      // Only if the box still ends as it did when asked.
      if (completable() === str(message.text)) {
        completions = {
          word: str(message.word),
          items: (message.items ?? []) as Array<{ label: string; detail?: string; insert: string }>,
          chosen: 0,
        };
        drawCompletions();
      }
    } else if (message.type === "thumbnail") {
      const sha256 = str(message.sha256);
      thumbnails.set(sha256, str(message.url));
      for (const image of document.querySelectorAll(`img[data-sha256="${CSS.escape(sha256)}"]`)) {
        (image as HTMLImageElement).src = str(message.url);
      }
    } else if (message.type === "checkpoints") {
      drawTimeline(document.getElementById("timeline") as HTMLElement, (message.checkpoints ?? []) as TimelineCheckpoint[], (name) =>
        vscode.postMessage({ type: "rewind", checkpoint: name }),
      );
    } else if (message.type === "error") {
      errorBox.textContent = str(message.text);
      errorBox.hidden = false;
    }
  });

  function send(): void {
    const text = messageBox.value.trim();
    if (text) {
      const attachments = pending.map(({ name, mimeType, data, uri }) => ({ name, mimeType, data, uri }));
      vscode.postMessage(editing ? { type: "edit", itemId: editing, text } : { type: "send", text, attachments });
      messageBox.value = "";
      if (!editing) {
        pending = [];
        drawPending();
      }
      stopEditing();
    }
  }
  // Images pasted into the message box, and files dropped on it (from the desktop, or
  // from VS Code's explorer as URIs), go with the next message.
  messageBox.addEventListener("paste", (pasted: ClipboardEvent) => {
    const files = [...(pasted.clipboardData?.items ?? [])]
      .filter((item) => item.kind === "file")
      .map((item) => item.getAsFile())
      .filter((file): file is File => file !== null);
    if (files.length) {
      pasted.preventDefault();
      files.forEach(addFile);
    }
  });
  messageBox.addEventListener("dragover", (dragged: DragEvent) => dragged.preventDefault());
  messageBox.addEventListener("drop", (dropped: DragEvent) => {
    const transfer = dropped.dataTransfer;
    if (!transfer) {
      return;
    }
    const files = [...transfer.files];
    const uris = (transfer.getData("text/uri-list") || "")
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.startsWith("file:"));
    if (!files.length && !uris.length) {
      return;
    }
    dropped.preventDefault();
    files.forEach(addFile);
    for (const uri of files.length ? [] : uris) {
      pending.push({ name: decodeURIComponent(uri.split("/").pop() ?? uri), uri });
    }
    drawPending();
  });
  sendButton.addEventListener("click", send);
  messageBox.addEventListener("keydown", (key) => {
    if (completions && !key.ctrlKey && !key.metaKey) {
      const count = completions.items.length;
      if (key.key === "ArrowDown" || key.key === "ArrowUp") {
        key.preventDefault();
        completions.chosen = (completions.chosen + (key.key === "ArrowDown" ? 1 : count - 1)) % count;
        drawCompletions();
        return;
      }
      if (key.key === "Tab" || key.key === "Enter") {
        key.preventDefault();
        accept(completions.chosen);
        return;
      }
      if (key.key === "Escape") {
        key.preventDefault();
        closeCompletions();
        return;
      }
    }
    if (key.key === "Enter" && (key.ctrlKey || key.metaKey)) {
      key.preventDefault();
      send();
    } else if (key.key === "Escape" && editing) {
      messageBox.value = "";
      stopEditing();
    }
  });
  vscode.postMessage({ type: "ready" });
})();
