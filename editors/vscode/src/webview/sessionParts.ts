// The session panel's interactive parts (runs in the webview, loaded before panel.js): the
// context meter, an open question's form, a plan to approve, a permission to give and a
// findings list with Fix and Dismiss. No imports: a plain script whose functions are the
// page's globals. What the user does goes back through `post`.

/* eslint-disable @typescript-eslint/no-unused-vars -- used by panel.ts */

type Json = Record<string, unknown>;
interface PanelEntry extends Json {
  kind: string;
  id: string;
}
type Post = (message: unknown) => void;

const str = (value: unknown): string => (value === undefined || value === null ? "" : String(value));

/** How full the model's context is: a bar, amber past 80%, red when full. */
function contextMeter(context: Json): HTMLElement {
  const used = Number(context.usedTokens ?? 0);
  const window = Math.max(1, Number(context.windowTokens ?? 1));
  const share = used / window;
  const level = share >= 1 ? "full" : share > 0.8 ? "high" : "ok";
  const percent = Math.min(100, Math.round(share * 100));
  const fill = el("div", { class: "meter-fill" });
  // Through the CSSOM: the page's CSP allows no inline style attributes.
  fill.style.width = `${percent}%`;
  const bar = el("div", { class: "meter-bar" }, fill);
  return el(
    "div",
    {
      class: `context-meter context-${level}`,
      "data-level": level,
      title: "How full the model's context window is; near the limit the conversation is compacted",
    },
    "Context ",
    bar,
    ` ${used.toLocaleString()} / ${window.toLocaleString()} tokens (${percent}%)`,
  );
}

/** An open question's form: a tab per question when there are several; "Other" for a single choice. */
function questionForm(entry: PanelEntry, post: Post): HTMLElement {
  const questions = (entry.questions ?? []) as Array<{ id: string; prompt: string; kind: string; options?: string[] }>;
  const form = el("form", { class: "question-form" });
  const tabs = el("div", { class: "tabs", role: "tablist" });
  const panes: HTMLElement[] = [];
  questions.forEach((question, index) => {
    const name = `${entry.id}-${question.id}`;
    const pane = el("fieldset", { class: "pane", "data-question": question.id }, el("legend", {}, question.prompt));
    if (question.kind === "single" || question.kind === "multi") {
      const type = question.kind === "single" ? "radio" : "checkbox";
      for (const option of question.options ?? []) {
        pane.append(el("label", {}, el("input", { type, name, value: option }), ` ${option}`));
      }
      if (question.kind === "single") {
        const otherChoice = el("input", { type: "radio", name, value: "", "data-other": "true" });
        const otherText = el("input", { type: "text", class: "other", "aria-label": `Other answer to ${question.prompt}` });
        // Typing an answer of one's own chooses "Other".
        otherText.addEventListener("input", () => (otherChoice.checked = otherText.value.trim() !== ""));
        pane.append(el("label", {}, otherChoice, " Other: ", otherText));
      }
    } else {
      pane.append(el("textarea", { class: "free", rows: "3", "aria-label": question.prompt }));
    }
    panes.push(pane);
    if (questions.length > 1) {
      const tab = button(`${index + 1}. ${question.prompt}`, () => select(index), { role: "tab", class: "tab" });
      tabs.append(tab);
    }
    form.append(pane);
  });
  function select(index: number): void {
    panes.forEach((pane, i) => (pane.hidden = i !== index));
    [...tabs.children].forEach((tab, i) => tab.setAttribute("aria-selected", String(i === index)));
  }
  if (questions.length > 1) {
    form.prepend(tabs);
    select(0);
  }
  form.append(el("button", { type: "submit", class: "primary" }, "Answer"));
  form.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const answers: Record<string, Json> = {};
    for (const pane of panes) {
      const id = pane.dataset.question as string;
      const inputs = [...pane.querySelectorAll("input")] as HTMLInputElement[];
      const checked = inputs.filter((input) => (input.type === "radio" || input.type === "checkbox") && input.checked);
      const otherChosen = checked.some((input) => input.dataset.other === "true");
      const otherText = (pane.querySelector("input.other") as HTMLInputElement | null)?.value ?? "";
      const free = (pane.querySelector("textarea.free") as HTMLTextAreaElement | null)?.value;
      answers[id] = {
        choice: checked.find((input) => input.type === "radio" && input.dataset.other !== "true")?.value,
        other: otherChosen ? otherText : undefined,
        choices: checked.filter((input) => input.type === "checkbox").map((input) => input.value),
        text: free,
      };
    }
    post({ type: "answer", questionId: entry.id, form: answers });
  });
  return form;
}

/** A plan: its phases, and Approve / Reject (with feedback) while it is open. */
function planParts(entry: PanelEntry, post: Post): Array<Node | string> {
  const parts: Array<Node | string> = [];
  parts.push(el("div", { class: "role" }, "Plan"));
  const list = el("ol");
  for (const phase of (entry.phases ?? []) as Array<{ title: string; subtasks?: string[] }>) {
    list.append(el("li", {}, phase.title, el("ul", {}, ...(phase.subtasks ?? []).map((task) => el("li", {}, task)))));
  }
  parts.push(list);
  if (entry.open) {
    const feedback = el("textarea", { class: "feedback", rows: "2", placeholder: "Feedback (for a rejection)" });
    parts.push(
      feedback,
      el(
        "div",
        { class: "actions" },
        button("Approve", () => post({ type: "plan", planId: entry.id, approve: true }), { class: "primary" }),
        button("Reject", () =>
          post({ type: "plan", planId: entry.id, approve: false, feedback: feedback.value }),
        ),
      ),
    );
  } else {
    const decision = entry.decision as { approved?: boolean; feedback?: string } | undefined;
    parts.push(
      el(
        "div",
        { class: "muted" },
        decision ? (decision.approved ? "Approved" : `Rejected${decision.feedback ? `: ${decision.feedback}` : ""}`) : "Cancelled",
      ),
    );
  }
  return parts;
}

/** A permission asked: the call, what "always" covers, and the decisions offered while it is open. */
function permissionParts(entry: PanelEntry, post: Post): Array<Node | string> {
  const parts: Array<Node | string> = [];
  parts.push(
    el("div", { class: "role" }, "Permission"),
    el("div", {}, el("code", {}, str(entry.tool)), " ", str(entry.input)),
    el("div", { class: "muted" }, `"Always" covers: ${str(entry.scope)}`),
  );
  if (entry.open) {
    const feedback = el("input", { type: "text", class: "feedback", placeholder: "Feedback (for a rejection)" });
    const labels: Record<string, string> = {
      allow_once: "Allow once",
      allow_always_session: "Always in this session",
      allow_always_project: "Always in this project",
      reject_once: "Reject",
      reject_always: "Always reject",
    };
    parts.push(
      feedback,
      el(
        "div",
        { class: "actions" },
        ...((entry.decisions ?? []) as string[]).map((decision) =>
          button(labels[decision] ?? decision, () =>
            post({ type: "permission", itemId: entry.id, decision, feedback: feedback.value }),
          ),
        ),
      ),
    );
  } else {
    parts.push(el("div", { class: "muted" }, str(entry.decision).replace(/_/g, " ")));
  }
  return parts;
}

/** A review's or verification's findings: severity, file:line (opens it), title, Fix and Dismiss. */
function findingsParts(entry: PanelEntry, post: Post): Array<Node | string> {
  const findings = (entry.findings ?? []) as Array<Json>;
  const name = entry.source === "verification" ? "Verification" : "Review";
  return [
    el("div", { class: "role" }, `${name}: ${str(entry.status)}${entry.error ? ` (${str(entry.error)})` : ""}`),
    findings.length === 0 && entry.status === "completed" ? el("div", { class: "muted" }, "No findings") : "",
    el(
      "ul",
      {},
      ...findings.map((finding) =>
        el(
          "li",
          { class: "finding", "data-finding": str(finding.id) },
          el("span", { class: `badge severity-${str(finding.severity)}` }, str(finding.severity)),
          " ",
          finding.file
            ? button(`${str(finding.file)}:${str(finding.startLine)}`, () =>
                post({ type: "open", file: finding.file, line: finding.startLine }),
              { class: "link" })
            : "",
          ` ${str(finding.title)} `,
          finding.dismissed
            ? el("span", { class: "muted dismissed" }, "dismissed")
            : el(
                "span",
                { class: "finding-actions" },
                button("Fix", () => post({ type: "fixFinding", findingId: finding.id }), {
                  class: "fix-finding",
                  title: "Ask the session to fix this",
                }),
                button("Dismiss", () => post({ type: "dismissFinding", findingId: finding.id }), {
                  class: "dismiss-finding",
                }),
              ),
        ),
      ),
    ),
  ];
}
