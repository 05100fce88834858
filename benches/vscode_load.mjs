// How long the VS Code extension's main module takes to load (`require`) — the part of its
// activation that bundling changes — bundled (dist/extension.js, what the .vsix carries) and
// unbundled (tsc's out/extension.js reading vscode-languageclient from node_modules, what the
// .vsix carried before). Each sample is a fresh node process, so the file cache is warm but
// the module cache is cold, as in a new extension host. `vscode` is a stand-in: the host
// provides it.
//
//   cd editors/vscode && npm run compile && npm run bundle && node ../../benches/vscode_load.mjs [runs]
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const runs = Number(process.argv[2] ?? 30);
const child = `
const Module = require("module");
const handler = {
  get: (target, name) => (name === "__esModule" ? false : name === "prototype" ? {} : fake()),
  construct: () => fake(),
  apply: () => fake(),
};
function fake() { return new Proxy(function () {}, handler); }
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === "vscode" ? fake() : load.call(this, request, ...rest);
};
const started = process.hrtime.bigint();
require(process.argv[1]);
process.stdout.write(String(Number(process.hrtime.bigint() - started) / 1e6));
`;

function sample(main) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    times.push(Number(execFileSync(process.execPath, ["-e", child, main], { encoding: "utf8" })));
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { p50: at(0.5), p90: at(0.9), min: times[0] };
}

for (const [name, main] of [
  ["bundled   dist/extension.js", "dist/extension.js"],
  ["unbundled out/extension.js ", "out/extension.js"],
]) {
  const path = resolve(main);
  if (!existsSync(path)) {
    console.log(`${name}: missing (${path}); run npm run compile && npm run bundle`);
    continue;
  }
  const { p50, p90, min } = sample(path);
  console.log(`${name}: load p50 ${p50.toFixed(1)} ms, p90 ${p90.toFixed(1)} ms, min ${min.toFixed(1)} ms (${runs} runs)`);
}
