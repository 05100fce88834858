import { test } from "node:test";
import * as assert from "node:assert/strict";

import { type ProviderEntry, providerItems } from "../providers";

const entries: ProviderEntry[] = [
  { name: "claude", kind: "acp", preset: true, default: false, command: "claude-agent-acp", available: false,
    missing: "`claude-agent-acp` is not on PATH; npm install -g @agentclientprotocol/claude-agent-acp" },
  { name: "local", kind: "openai", preset: true, default: true, model: "smollm2", available: true },
  { name: "qwen", kind: "acp", preset: true, default: false, command: "qwen", path: "/usr/bin/qwen", available: true,
    models: ["qwen3-coder", "qwen3"] },
];

test("the picker shows the default first, then what can run, then what is missing and how to get it", () => {
  const items = providerItems(entries);
  assert.deepEqual(
    items.map((item) => item.label),
    ["local (default)", "qwen", "claude"],
  );
  assert.equal(items[0].description, "openai · smollm2");
  assert.equal(items[1].description, "agent · qwen · models: qwen3-coder, qwen3");
  assert.equal(items[1].detail, undefined);
  assert.match(items[2].detail ?? "", /^not available: .*npm install -g @agentclientprotocol\/claude-agent-acp/);
  assert.equal(items[2].provider.name, "claude");
});
