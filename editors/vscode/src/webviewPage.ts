// What the extension's webview panels share: the panel itself (scripts on, kept while hidden,
// loading only from the bundle's webview folder and media/) and its page (a nonce CSP, the
// shared stylesheet, dom.js, then the page's own script).

import { randomBytes } from "node:crypto";
import * as vscode from "vscode";

/** A panel of `viewType` titled `title`, with the extension's icon. */
export function createPanel(
  viewType: string,
  title: string,
  column: vscode.ViewColumn,
  extensionUri: vscode.Uri,
): vscode.WebviewPanel {
  const panel = vscode.window.createWebviewPanel(viewType, title, column, {
    enableScripts: true,
    retainContextWhenHidden: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, "dist", "webview"), vscode.Uri.joinPath(extensionUri, "media")],
  });
  panel.iconPath = vscode.Uri.joinPath(extensionUri, "media", "tether.svg");
  return panel;
}

/** A page running `dist/webview/<script>` over `body` (static markup, no session text). */
export function pageHtml(webview: vscode.Webview, extensionUri: vscode.Uri, script: string, bodyClass: string, body: string): string {
  const nonce = randomBytes(16).toString("hex");
  const source = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, "dist", "webview", name)).toString();
  const style = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, "media", "panel.css"));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource}; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style.toString()}">
</head>
<body class="${bodyClass}">
${body}
<script nonce="${nonce}" src="${source("dom.js")}"></script>
<script nonce="${nonce}" src="${source(script)}"></script>
</body>
</html>`;
}
