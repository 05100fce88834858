// What the extension's webview panels share: the panel itself (scripts on, kept while hidden,
// loading only from the bundle's webview folder and media/), its wiring (`TetherPanel`), and
// its page (a nonce CSP, the shared stylesheet, dom.js, then the page's own script).

import { randomBytes } from "node:crypto";
import * as vscode from "vscode";

/** A panel of `viewType` titled `title`, with the extension's icon; `extraRoots` (folders of
 * the extension) are readable by its page besides the webview folder and media/. */
export function createPanel(
  viewType: string,
  title: string,
  column: vscode.ViewColumn,
  extensionUri: vscode.Uri,
  extraRoots: string[] = [],
): vscode.WebviewPanel {
  const panel = vscode.window.createWebviewPanel(viewType, title, column, {
    enableScripts: true,
    retainContextWhenHidden: true,
    localResourceRoots: [
      vscode.Uri.joinPath(extensionUri, "dist", "webview"),
      vscode.Uri.joinPath(extensionUri, "media"),
      ...extraRoots.map((root) => vscode.Uri.joinPath(extensionUri, root)),
    ],
  });
  panel.iconPath = vscode.Uri.joinPath(extensionUri, "media", "tether.svg");
  return panel;
}

/** What makes one of the extension's panels. */
export interface PanelSpec {
  viewType: string;
  title: string;
  column: vscode.ViewColumn;
  extensionUri: vscode.Uri;
  /** The page's HTML. */
  page: (webview: vscode.Webview, extensionUri: vscode.Uri) => string;
  /** Called once the user closed it (after `closed`). */
  onDispose: () => void;
  extraRoots?: string[];
}

/** One of the extension's panels: made by `createPanel`, its page's messages go to `received`;
 * a subclass's `closed` runs when the user closes it. */
export abstract class TetherPanel {
  protected readonly panel: vscode.WebviewPanel;

  constructor(spec: PanelSpec) {
    this.panel = createPanel(spec.viewType, spec.title, spec.column, spec.extensionUri, spec.extraRoots);
    this.panel.webview.html = spec.page(this.panel.webview, spec.extensionUri);
    this.panel.webview.onDidReceiveMessage((message) => void this.received(message));
    this.panel.onDidDispose(() => {
      this.closed();
      spec.onDispose();
    });
  }

  reveal(): void {
    this.panel.reveal();
  }

  dispose(): void {
    this.panel.dispose();
  }

  protected abstract received(message: Record<string, unknown>): Promise<void>;

  /** What to stop once the panel is gone (a timer); nothing by default. */
  protected closed(): void {}
}

/** What a page is made of. */
export interface PageSpec {
  /** Scripts of `dist/webview`, run in this order after dom.js (the page's own last). */
  scripts: string[];
  /** Scripts elsewhere in the extension (a library's browser build), run before dom.js. */
  libraries?: string[];
  bodyClass?: string;
  /** Static markup: no session text. */
  body: string;
  /** Images from the extension and `data:` URLs may be shown. */
  images?: boolean;
}

/** A page of one of the extension's panels: a nonce CSP, the shared stylesheet, then `spec`'s
 * scripts. */
export function pageHtml(webview: vscode.Webview, extensionUri: vscode.Uri, spec: PageSpec): string {
  const nonce = randomBytes(16).toString("hex");
  const uri = (...path: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...path)).toString();
  const sources = [
    ...(spec.libraries ?? []).map((path) => uri(path)),
    ...["dom.js", ...spec.scripts].map((name) => uri("dist", "webview", name)),
  ];
  const images = spec.images ? ` img-src ${webview.cspSource} data:;` : "";
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource};${images} script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${uri("media", "panel.css")}">
</head>
<body${spec.bodyClass ? ` class="${spec.bodyClass}"` : ""}>
${spec.body}
${sources.map((source) => `<script nonce="${nonce}" src="${source}"></script>`).join("\n")}
</body>
</html>`;
}
