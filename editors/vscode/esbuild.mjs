// Bundles the extension for the .vsix (`npm run bundle`, run by `vsce package`): the
// extension host's code and its dependencies (vscode-languageclient) as one minified file,
// dist/extension.js, so the package carries no node_modules and activation reads one file
// instead of hundreds. The webview pages (plain scripts) and markdown-it's browser build are
// copied beside it. `tsc` still type-checks everything and builds out/ for the unit tests.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
await build({
  entryPoints: ["src/extension.ts"],
  bundle: true,
  outfile: "dist/extension.js",
  external: ["vscode"],
  format: "cjs",
  platform: "node",
  target: "node18",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
await build({
  entryPoints: ["src/webview/dom.ts", "src/webview/sessionParts.ts", "src/webview/panel.ts", "src/webview/review.ts", "src/webview/task.ts", "src/webview/timeline.ts", "src/webview/git.ts"],
  outdir: "dist/webview",
  // Plain scripts whose top-level functions are the page's globals: no module wrapper, and
  // minification keeps top-level names.
  bundle: false,
  target: "es2022",
  minify: true,
  logLevel: "warning",
});
mkdirSync("dist/media", { recursive: true });
copyFileSync("node_modules/markdown-it/dist/markdown-it.min.js", "dist/media/markdown-it.min.js");
