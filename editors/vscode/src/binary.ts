// Finding the `tether` binary and checking it (pure: no `vscode` import, tested under node):
// where to look, whether its version speaks this extension's protocol, the exact command
// that installs it, and `tether doctor`'s report as lines.

import { join } from "node:path";

/** Where to look, in order: the user's `tether.path`, PATH, then cargo's own bin folder
 * (`cargo install` puts it there, and an editor started from a desktop may lack it on PATH). */
export function candidates(configured: string | undefined, onPath: string | undefined, env: NodeJS.ProcessEnv): string[] {
  if (configured) {
    return [configured];
  }
  const cargoHome = env.CARGO_HOME || (env.HOME ? join(env.HOME, ".cargo") : undefined);
  return [onPath, cargoHome ? join(cargoHome, "bin", "tether") : undefined].filter(
    (path): path is string => !!path,
  );
}

/** The version in `tether --version`'s output ("tether 0.1.0"), if it is one. */
export function parseVersion(output: string): string | undefined {
  return /^tether (\d+\.\d+\.\d+\S*)\s*$/.exec(output.trim())?.[1];
}

/** Whether a binary of `found` speaks the protocol of an extension of `expected`: the same
 * major and minor version. */
export function compatible(expected: string, found: string): boolean {
  const [major, minor] = expected.split(".");
  const [foundMajor, foundMinor] = found.split(".");
  return major === foundMajor && minor === foundMinor;
}

/** The command that installs the binary from the extension's repository. */
export function installCommand(repositoryUrl: string | undefined): string {
  return repositoryUrl
    ? `cargo install --locked --git ${repositoryUrl} tether`
    : "cargo install --locked --path server   # in a checkout of tether";
}

export type CheckStatus = "ok" | "info" | "warn" | "fail";

/** One line of `tether doctor --json`. */
export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  version: string;
  ok: boolean;
  checks: DoctorCheck[];
}

const MARKS: Record<CheckStatus, string> = { ok: "✓", info: "·", warn: "!", fail: "✗" };

/** The report as the output channel shows it: one line per check, its fix under it. */
export function reportLines(report: DoctorReport): string[] {
  const width = Math.max(0, ...report.checks.map((check) => check.name.length));
  const lines = [`tether doctor (${report.version}): ${report.ok ? "all set" : "something needs fixing"}`];
  for (const check of report.checks) {
    lines.push(`${MARKS[check.status] ?? "?"} ${check.status.padEnd(4)} ${check.name.padEnd(width)}  ${check.detail}`);
    if (check.fix && check.status !== "ok") {
      lines.push(`${" ".repeat(width + 9)}fix: ${check.fix}`);
    }
  }
  return lines;
}
