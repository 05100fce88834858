// The extension's settings as tether's initializationOptions. Kept free of the vscode module
// so it is unit-tested: the caller says where each setting's value may come from.

/** Where the extension's settings are read. */
export interface SettingsSource {
  /** A setting from any scope: the user's, the workspace's or a folder's. */
  anyScope(key: string): string | undefined;
  /**
   * A setting from the user's own settings only. A repository's `.vscode/settings.json` is
   * the repository's, not the user's: it must not choose the binary VS Code runs, the key
   * variable sent to a provider, or whether changes need approval.
   */
  userOnly(key: string): string | undefined;
}

/** The settings read with `userOnly`; package.json gives each `"scope": "application"`. */
export const USER_ONLY_SETTINGS = ["path", "apiKeyEnv", "permissionMode"] as const;

/** tether's settings (its config file's keys, as JSON) from the extension's. */
export function serverSettings(source: SettingsSource): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  const provider = source.anyScope("provider");
  const model = source.anyScope("model");
  const apiKeyEnv = source.userOnly("apiKeyEnv");
  const permissionMode = source.userOnly("permissionMode");
  if (provider) {
    settings.default_provider = provider;
    const providerSettings: Record<string, string> = {};
    if (model) {
      providerSettings.model = model;
    }
    if (apiKeyEnv) {
      providerSettings.api_key_env = apiKeyEnv;
    }
    if (Object.keys(providerSettings).length > 0) {
      settings.providers = { [provider]: providerSettings };
    }
  }
  if (permissionMode) {
    settings.session = { permission_mode: permissionMode };
  }
  return settings;
}
