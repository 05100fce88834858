// The New Session picker's model: the providers `tether/providers/list` gives, as quick pick
// items, the ones that can run first (the default at the top), then the missing ones saying
// how to get them. Nothing here imports vscode, so it runs under node's own test runner.

/** One provider as `tether/providers/list` gives it (ProviderEntry in docs/protocol.md). */
export interface ProviderEntry {
  name: string;
  kind: "openai" | "anthropic" | "acp";
  preset: boolean;
  default: boolean;
  model?: string;
  command?: string;
  path?: string;
  available: boolean;
  missing?: string;
  models?: string[];
}

/** A quick pick item for one provider. */
export interface ProviderItem {
  label: string;
  description: string;
  detail?: string;
  provider: ProviderEntry;
}

/** What the picker shows, in order. */
export function providerItems(providers: ProviderEntry[]): ProviderItem[] {
  const ordered = [
    ...providers.filter((provider) => provider.available && provider.default),
    ...providers.filter((provider) => provider.available && !provider.default),
    ...providers.filter((provider) => !provider.available),
  ];
  return ordered.map((provider) => {
    const what =
      provider.kind === "acp"
        ? `agent · ${provider.command ?? "?"}`
        : `${provider.kind} · ${provider.model ?? "no default model"}`;
    const models = provider.models && provider.models.length > 0 ? ` · models: ${provider.models.join(", ")}` : "";
    return {
      label: provider.default ? `${provider.name} (default)` : provider.name,
      description: what + models,
      detail: provider.available ? undefined : `not available: ${provider.missing ?? "unknown reason"}`,
      provider,
    };
  });
}
