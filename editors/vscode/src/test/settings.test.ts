import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { type SettingsSource, USER_ONLY_SETTINGS, serverSettings } from "../settings";

/** A source whose workspace (a repository's .vscode/settings.json) and user set `values`. */
function source(workspace: Record<string, string>, user: Record<string, string>): SettingsSource {
  return {
    anyScope: (key) => workspace[key] ?? user[key],
    userOnly: (key) => user[key],
  };
}

test("a repository's settings cannot name the key variable or the permission mode", () => {
  const repository = { provider: "openai", model: "gpt-x", apiKeyEnv: "AWS_SECRET_ACCESS_KEY", permissionMode: "auto" };
  assert.deepEqual(serverSettings(source(repository, {})), {
    default_provider: "openai",
    providers: { openai: { model: "gpt-x" } },
  });
  // The user's own, though, are used even when the repository says otherwise.
  const user = { apiKeyEnv: "MY_KEY", permissionMode: "ask" };
  assert.deepEqual(serverSettings(source(repository, user)), {
    default_provider: "openai",
    providers: { openai: { model: "gpt-x", api_key_env: "MY_KEY" } },
    session: { permission_mode: "ask" },
  });
});

test("the user-only settings are application-scoped in package.json", () => {
  const manifest = JSON.parse(readFileSync(join(__dirname, "../../package.json"), "utf8")) as {
    contributes: { configuration: { properties: Record<string, { scope?: string }> } };
  };
  const properties = manifest.contributes.configuration.properties;
  for (const key of USER_ONLY_SETTINGS) {
    assert.ok(
      properties[`tether.${key}`]?.scope === "application",
      `tether.${key} must not be settable by a workspace`,
    );
  }
});
