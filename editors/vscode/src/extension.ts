// The Tether extension: starts the `tether` language server, shows its sessions in the
// activity bar, and runs session commands. Diagnostics, code actions and workspace edits
// come from the server through vscode-languageclient as they are.

import * as vscode from "vscode";
import {
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  type StaticFeature,
} from "vscode-languageclient/node";

import { type ProviderEntry, providerItems } from "./providers";
import { EMPTY_SCHEME, SessionPanels, emptyDocuments, openFileDiff } from "./panel";
import { type EventParams, type SessionInfo, SessionStore, describe } from "./sessions";
import { BASE_SCHEME, TaskPanels, baseDocuments } from "./taskPanel";
import { type TaskInfo, TaskStore, describeTask } from "./tasks";
import { type SettingsSource, serverSettings } from "./settings";
import { checkedBinary, selfOf, showDoctor } from "./install";
import { ReviewPanels } from "./reviewPanel";
import { showFindings } from "./findings";
import { GitPanels } from "./gitPanel";

let client: LanguageClient | undefined;
const store = new SessionStore();
const tasks = new TaskStore();

/**
 * Where the extension reads its settings. User-only settings (`"scope": "application"`) are
 * read from `inspect()`'s user value: VS Code already ignores workspace values of
 * application-scoped settings, and this makes sure a repository's `.vscode/settings.json` is
 * never used for them. (Not `"machine"`: in a remote window, code-server's included, VS Code
 * ignores the user's value of a machine-scoped setting, so `tether.path` would never be read.)
 */
function settingsSource(): SettingsSource {
  const config = vscode.workspace.getConfiguration("tether");
  return {
    anyScope: (key) => config.get<string>(key),
    userOnly: (key) => {
      const inspected = config.inspect<string>(key);
      return inspected?.globalValue ?? inspected?.defaultValue;
    },
  };
}

/** Opts in to tether's notifications (`capabilities.experimental.tether`). */
const optIn: StaticFeature = {
  fillClientCapabilities(capabilities) {
    capabilities.experimental = { ...(capabilities.experimental ?? {}), tether: true };
  },
  initialize() {},
  getState() {
    return { kind: "static" };
  },
  clear() {},
};

type Node =
  | { kind: "group"; status: string; sessions: SessionInfo[] }
  | { kind: "session"; session: SessionInfo }
  | { kind: "tasks" }
  | { kind: "task"; task: TaskInfo };

class SessionsView implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  refresh(): void {
    this.changed.fire(undefined);
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === "tasks") {
      const item = new vscode.TreeItem(`Tasks (${tasks.all().length})`, vscode.TreeItemCollapsibleState.Expanded);
      item.contextValue = "tasks";
      return item;
    }
    if (node.kind === "task") {
      const item = new vscode.TreeItem(node.task.name, vscode.TreeItemCollapsibleState.None);
      item.description = describeTask(node.task);
      item.tooltip = `${node.task.title}\n${item.description}`;
      item.contextValue = "task";
      item.id = `task:${node.task.id}`;
      item.iconPath = new vscode.ThemeIcon("layers");
      item.command = { command: "tether.ui.openTask", title: "Open Task", arguments: [node] };
      return item;
    }
    if (node.kind === "group") {
      const item = new vscode.TreeItem(
        `${node.status} (${node.sessions.length})`,
        vscode.TreeItemCollapsibleState.Expanded,
      );
      item.contextValue = "group";
      return item;
    }
    const item = new vscode.TreeItem(node.session.name, vscode.TreeItemCollapsibleState.None);
    item.description = describe(node.session);
    // The description is cut to the view's width; the tooltip shows all of it.
    item.tooltip = `${node.session.title}\n${item.description}`;
    item.contextValue = "session";
    item.id = node.session.id;
    item.command = { command: "tether.ui.open", title: "Open Session", arguments: [node] };
    return item;
  }

  getChildren(node?: Node): Node[] {
    if (!node) {
      const groups: Node[] = store.grouped().map(([status, sessions]) => ({ kind: "group", status, sessions }));
      return tasks.all().length > 0 ? [{ kind: "tasks" }, ...groups] : groups;
    }
    if (node.kind === "tasks") {
      return tasks.all().map((task) => ({ kind: "task", task }));
    }
    return node.kind === "group" ? node.sessions.map((session) => ({ kind: "session", session })) : [];
  }
}

async function request<T>(method: string, params: unknown): Promise<T | undefined> {
  if (!client) {
    void vscode.window.showErrorMessage("Tether: the server is not running.");
    return undefined;
  }
  try {
    // A bare name is a session method; a full one (`tether/providers/list`) is sent as it is.
    return await client.sendRequest<T>(method.includes("/") ? method : `tether/session/${method}`, params);
  } catch (error) {
    void vscode.window.showErrorMessage(`Tether: ${method}: ${(error as Error).message}`);
    return undefined;
  }
}

/** Sends a request; its result, or the server's error message (shown where the caller shows it). */
async function tryRequest<T>(method: string, params: unknown): Promise<{ result?: T; error?: string }> {
  if (!client) {
    return { error: "the server is not running" };
  }
  try {
    return { result: await client.sendRequest<T>(method.includes("/") ? method : `tether/session/${method}`, params) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

async function reload(view: SessionsView): Promise<void> {
  const listed = await request<{ sessions: SessionInfo[] }>("list", {});
  if (listed) {
    store.reset(listed.sessions);
    store.gaps.clear();
  }
  const listedTasks = await request<{ tasks: TaskInfo[] }>("tether/task/list", {});
  if (listedTasks) {
    tasks.reset(listedTasks.tasks);
  }
  view.refresh();
}

/** The task a command is about: the tree item it was run on, or one picked. */
async function chooseTask(node?: Node): Promise<TaskInfo | undefined> {
  if (node?.kind === "task") {
    return tasks.get(node.task.id) ?? node.task;
  }
  const picked = await vscode.window.showQuickPick(
    tasks.all().map((task) => ({ label: task.name, description: describeTask(task), task })),
    { placeHolder: "Which task?" },
  );
  return picked?.task;
}

/** The session a command is about: the tree item it was run on, or one picked. */
async function chooseSession(node?: Node): Promise<SessionInfo | undefined> {
  if (node?.kind === "session") {
    return node.session;
  }
  const picked = await vscode.window.showQuickPick(
    store.all().map((session) => ({ label: session.name, description: describe(session), session })),
    { placeHolder: "Which session?" },
  );
  return picked?.session;
}

async function openMarkdown(content: string): Promise<void> {
  const document = await vscode.workspace.openTextDocument({ language: "markdown", content });
  await vscode.window.showTextDocument(document);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const view = new SessionsView();
  context.subscriptions.push(vscode.window.registerTreeDataProvider("tether.sessions", view));
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  status.command = "tether.sessions.focus";
  context.subscriptions.push(status);
  const showCount = () => {
    const working = store.workingCount();
    status.text = `$(sync${working > 0 ? "~spin" : ""}) tether: ${working} working`;
    status.show();
  };

  const panels = new SessionPanels(context.extensionUri, request, async (name, session) => {
    await vscode.commands.executeCommand(`tether.ui.${name}`, { kind: "session", session });
  });
  context.subscriptions.push(panels, vscode.workspace.registerTextDocumentContentProvider(EMPTY_SCHEME, emptyDocuments));
  const taskPanels = new TaskPanels(
    context.extensionUri,
    request,
    async (sessionId) => {
      const session = store.get(sessionId);
      if (session) {
        await panels.open(session);
      }
    },
    () => void reload(view),
  );
  context.subscriptions.push(taskPanels, vscode.workspace.registerTextDocumentContentProvider(BASE_SCHEME, baseDocuments));
  /** A session that waits on the user while its panel is closed says so, once per item. */
  const promptIfWaiting = (params: EventParams) => {
    const item = params.event.item as { id?: string; type?: string } | undefined;
    if (params.event.kind !== "item" || params.event.phase !== "started" || panels.isOpen(params.sessionId)) {
      return;
    }
    const asks: Record<string, string> = { question: "asks a question", plan: "proposes a plan", permission: "asks for permission" };
    const session = store.get(params.sessionId);
    const what = item?.type && asks[item.type];
    if (session && what) {
      void vscode.window.showInformationMessage(`Tether: ${session.name} ${what}.`, "Open").then((choice) => {
        if (choice === "Open") {
          void panels.open(session);
        }
      });
    }
  };

  // "Tether: Doctor" works without a server: it says why there is none.
  const self = selfOf(context);
  const doctorOutput = vscode.window.createOutputChannel("Tether Doctor");
  context.subscriptions.push(
    doctorOutput,
    vscode.commands.registerCommand("tether.ui.doctor", () =>
      showDoctor(settingsSource().userOnly("path"), self, doctorOutput),
    ),
  );
  const binary = await checkedBinary(settingsSource().userOnly("path"), self);
  if (!binary) {
    return;
  }
  const serverOptions: ServerOptions = { command: binary, args: ["lsp"] };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }],
    initializationOptions: serverSettings(settingsSource()),
  };
  client = new LanguageClient("tether", "Tether", serverOptions, clientOptions);
  client.registerFeature(optIn);
  context.subscriptions.push({ dispose: () => void client?.stop() });
  await client.start();
  client.onNotification("tether/session/event", (params: EventParams) => {
    panels.event(params);
    promptIfWaiting(params);
    if (store.apply(params)) {
      view.refresh();
      showCount();
    }
    if (store.gaps.size > 0) {
      void reload(view);
    }
  });
  client.onNotification("tether/task/event", (params: { taskId: string; task: TaskInfo }) => {
    tasks.apply(params.task);
    view.refresh();
    taskPanels.changed(params.task);
  });
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((change) => {
      if (change.affectsConfiguration("tether") && client) {
        void client.sendNotification("workspace/didChangeConfiguration", {
          settings: serverSettings(settingsSource()),
        });
      }
    }),
  );
  await reload(view);
  showCount();

  const on = (name: string, run: (node?: Node) => Promise<void>) =>
    context.subscriptions.push(vscode.commands.registerCommand(`tether.ui.${name}`, run));

  on("refresh", () => reload(view));
  on("open", async (node) => {
    const session = await chooseSession(node);
    if (session) {
      await panels.open(session);
    }
  });
  on("newSession", async () => {
    // Which agent: the providers the server can run first, the missing ones with how to get them.
    const listed = await request<{ providers: ProviderEntry[] }>("tether/providers/list", {});
    if (!listed) {
      return;
    }
    const picked = await vscode.window.showQuickPick(providerItems(listed.providers), {
      title: "Which agent runs the session?",
      placeHolder: "Pick an agent or a model API",
      matchOnDescription: true,
    });
    if (!picked) {
      return;
    }
    if (!picked.provider.available) {
      void vscode.window.showWarningMessage(`Tether: ${picked.provider.name}: ${picked.provider.missing ?? "not available"}`);
      return;
    }
    const prompt = await vscode.window.showInputBox({ prompt: "What should the session do?" });
    const session = prompt && (await request<SessionInfo>("create", { prompt, provider: picked.provider.name }));
    if (session) {
      if (!store.get(session.id)) {
        store.reset([...store.all(), session]);
        view.refresh();
      }
      await panels.open(session);
    }
  });
  on("newTask", async () => {
    // The agents that race: one trial each (the ones that can run).
    const listed = await request<{ providers: ProviderEntry[] }>("tether/providers/list", {});
    if (!listed) {
      return;
    }
    const picked = await vscode.window.showQuickPick(
      providerItems(listed.providers).filter((item) => item.provider.available),
      { title: "Which agents race the task? (one trial each, up to 8)", canPickMany: true, matchOnDescription: true },
    );
    if (!picked || picked.length === 0) {
      return;
    }
    const prompt = await vscode.window.showInputBox({ prompt: "What should the trials do?" });
    const task =
      prompt &&
      (await request<TaskInfo>("tether/task/create", {
        prompt,
        trials: picked.map((item) => ({ provider: item.provider.name })),
      }));
    if (task) {
      tasks.apply(task);
      await reload(view);
      await taskPanels.open(task);
    }
  });
  on("openTask", async (node) => {
    const task = await chooseTask(node);
    if (task) {
      await taskPanels.open(task);
    }
  });
  on("stopTask", async (node) => {
    const task = await chooseTask(node);
    if (task) {
      await request("tether/task/stop", { id: task.id });
    }
  });
  on("deleteTask", async (node) => {
    const task = await chooseTask(node);
    const sure =
      task &&
      (await vscode.window.showWarningMessage(
        `Delete task ${task.name} and its ${task.trials.length} trials (their worktrees and branches)?`,
        { modal: true },
        "Delete",
      ));
    if (task && sure === "Delete") {
      await request("tether/task/delete", { id: task.id });
      taskPanels.close(task.id);
      tasks.remove(task.id);
      await reload(view);
    }
  });
  on("send", async (node) => {
    const session = await chooseSession(node);
    const text = session && (await vscode.window.showInputBox({ prompt: `Message to ${session.name}` }));
    if (session && text) {
      await request("send", { id: session.id, text });
    }
  });
  for (const method of ["stop", "resume", "clone"]) {
    on(method, async (node) => {
      const session = await chooseSession(node);
      if (session) {
        await request(method, { id: session.id });
      }
    });
  }
  on("apply", async (node) => {
    const session = await chooseSession(node);
    const result = session && (await request<{ sent: boolean; summary: string }>("apply", { id: session.id }));
    // An edit that went out shows itself; otherwise say why nothing changed.
    if (result && !result.sent) {
      void vscode.window.showWarningMessage(`Tether: nothing to apply: ${result.summary}`);
    }
  });
  const reviews = new ReviewPanels(context.extensionUri, request);
  context.subscriptions.push(reviews);
  on("reviewChanges", async (node) => {
    const session = await chooseSession(node);
    if (session) {
      await reviews.open(store.get(session.id) ?? session);
    }
  });
  const gitPanels = new GitPanels(context.extensionUri, tryRequest);
  context.subscriptions.push(gitPanels);
  on("git", async (node) => {
    const session = await chooseSession(node);
    if (session) {
      await gitPanels.open(store.get(session.id) ?? session);
    }
  });
  on("findings", async (node) => {
    const session = await chooseSession(node);
    if (session) {
      await showFindings(session, request);
    }
  });
  on("acceptHunk", () => reviews.decideAtCursor("accepted"));
  on("rejectHunk", () => reviews.decideAtCursor("rejected"));
  on("delete", async (node) => {
    const session = await chooseSession(node);
    const sure =
      session &&
      (await vscode.window.showWarningMessage(
        `Delete ${session.name}, its worktree and its branch?`,
        { modal: true },
        "Delete",
      ));
    if (session && sure === "Delete") {
      await request("delete", { id: session.id });
      await reload(view);
    }
  });
  on("export", async (node) => {
    const session = await chooseSession(node);
    const exported = session && (await request<{ content: string }>("export", { id: session.id, format: "markdown" }));
    if (exported) {
      await openMarkdown(exported.content);
    }
  });
  on("diff", async (node) => {
    const session = await chooseSession(node);
    type DiffFile = { path: string; status: string; additions: number; deletions: number; patch: string };
    const diff = session && (await request<{ files: DiffFile[] }>("diff", { id: session.id }));
    if (!session || !diff) {
      return;
    }
    if (diff.files.length === 0) {
      void vscode.window.showInformationMessage(`Tether: ${session.name} has changed nothing.`);
      return;
    }
    const whole = { label: "$(diff) The whole patch", description: `${diff.files.length} files`, path: undefined };
    const picked = await vscode.window.showQuickPick(
      [
        ...diff.files.map((file) => ({
          label: file.path,
          description: `${file.status} +${file.additions} −${file.deletions}`,
          path: file.path as string | undefined,
        })),
        whole,
      ],
      { placeHolder: `Which change of ${session.name}? (yours ↔ the session's)` },
    );
    if (picked?.path) {
      await openFileDiff(session, picked.path);
    } else if (picked) {
      const document = await vscode.workspace.openTextDocument({
        language: "diff",
        content: diff.files.map((file) => file.patch).join("\n"),
      });
      await vscode.window.showTextDocument(document);
    }
  });
  on("review", async (node) => {
    const session = await chooseSession(node);
    const kind = session && (await vscode.window.showQuickPick(["review", "verification"]));
    if (session && kind) {
      await request("review", { id: session.id, kind });
    }
  });
  on("loop", async (node) => {
    const session = await chooseSession(node);
    const prompt = session && (await vscode.window.showInputBox({ prompt: "Loop prompt" }));
    const count = prompt && (await vscode.window.showInputBox({ prompt: "Most iterations", value: "10" }));
    if (session && prompt && count) {
      await request("loop", { id: session.id, prompt, maxIterations: Number(count) || 10 });
    }
  });
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
