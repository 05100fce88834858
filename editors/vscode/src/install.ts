// The binary as the user meets it: found (setting, PATH, cargo's bin folder) and checked
// (`tether --version` against the extension's version), or, when missing, an offer to run
// the exact `cargo install` and reload once it succeeds; and "Tether: Doctor", the same
// report as `tether doctor` and Neovim's `:checkhealth tether`.

import * as vscode from "vscode";
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

import { type DoctorReport, candidates, compatible, installCommand, parseVersion, reportLines } from "./binary";

/** What the extension knows of itself: its version and its repository. */
export interface Self {
  version: string;
  repositoryUrl?: string;
}

export function selfOf(context: vscode.ExtensionContext): Self {
  const manifest = context.extension.packageJSON as { version: string; repository?: { url?: string } };
  return { version: manifest.version, repositoryUrl: manifest.repository?.url };
}

function onPath(): string | undefined {
  try {
    const found = execFileSync(process.platform === "win32" ? "where" : "which", ["tether"], { encoding: "utf8" });
    return found.split(/\r?\n/)[0]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The binary to run: the first candidate that exists. */
export function findBinary(configured: string | undefined): string | undefined {
  return candidates(configured, onPath(), process.env).find((path) => path === configured || existsSync(path));
}

/**
 * The binary, checked; `undefined` (after telling the user, with a way forward) when there is
 * none or it is not tether. A binary of another version is used, with a warning: what it
 * does not understand fails with a clear error, and nothing is lost.
 */
export async function checkedBinary(configured: string | undefined, self: Self): Promise<string | undefined> {
  const binary = findBinary(configured);
  if (!binary) {
    void offerInstall("the tether binary was not found (tether.path, PATH, ~/.cargo/bin)", self);
    return undefined;
  }
  let output: string;
  try {
    output = execFileSync(binary, ["--version"], { encoding: "utf8", timeout: 10_000 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "does not exist"
        : code === "EACCES"
          ? "is not executable"
          : `cannot be run (${(error as Error).message.split("\n")[0]})`;
    void offerInstall(`${binary} ${why}`, self);
    return undefined;
  }
  const version = parseVersion(output);
  if (!version) {
    void offerInstall(`${binary} is not tether (its --version says "${output.trim().slice(0, 80)}")`, self);
    return undefined;
  }
  if (!compatible(self.version, version)) {
    void offerInstall(
      `${binary} is tether ${version}, but this extension is ${self.version}: some features may fail`,
      self,
      "warning",
    );
  }
  return binary;
}

/** Says what is wrong and offers the exact install command (run as a task), or the setting. */
async function offerInstall(problem: string, self: Self, level: "error" | "warning" = "error"): Promise<void> {
  const command = installCommand(self.repositoryUrl);
  const show = level === "error" ? vscode.window.showErrorMessage : vscode.window.showWarningMessage;
  const choice = await show(`Tether: ${problem}. Install it with: ${command}`, "Install with cargo", "Set tether.path");
  if (choice === "Set tether.path") {
    await vscode.commands.executeCommand("workbench.action.openSettings", "tether.path");
  } else if (choice === "Install with cargo") {
    await runInstall(command);
  }
}

async function runInstall(command: string): Promise<void> {
  const task = new vscode.Task(
    { type: "shell", task: "tether-install" },
    vscode.TaskScope.Global,
    "install tether",
    "tether",
    new vscode.ShellExecution(command),
  );
  const execution = await vscode.tasks.executeTask(task);
  const ended = vscode.tasks.onDidEndTaskProcess(async (event) => {
    if (event.execution !== execution) {
      return;
    }
    ended.dispose();
    if (event.exitCode === 0) {
      const reload = await vscode.window.showInformationMessage("Tether: installed. Reload the window to start it.", "Reload");
      if (reload) {
        await vscode.commands.executeCommand("workbench.action.reloadWindow");
      }
    } else {
      void vscode.window.showErrorMessage(`Tether: \`${command}\` failed (exit ${event.exitCode}); see its terminal.`);
    }
  });
}

/** Runs `tether doctor --json` and shows its report in the "Tether Doctor" output. */
export async function showDoctor(configured: string | undefined, self: Self, output: vscode.OutputChannel): Promise<void> {
  output.clear();
  output.show(true);
  const binary = findBinary(configured);
  if (!binary) {
    output.appendLine(`✗ fail tether  not found (tether.path, PATH, ~/.cargo/bin)`);
    output.appendLine(`       fix: ${installCommand(self.repositoryUrl)}`);
    return;
  }
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? process.cwd();
  const json = await new Promise<string>((resolve) => {
    // Exit 1 means something failed: the report is on stdout all the same.
    execFile(binary, ["doctor", "--json", "--repo", folder], { timeout: 30_000, encoding: "utf8" }, (_, stdout, stderr) =>
      resolve(stdout || stderr),
    );
  });
  let report: DoctorReport;
  try {
    report = JSON.parse(json) as DoctorReport;
  } catch {
    output.appendLine(`✗ fail tether doctor gave no report: ${json.trim().slice(0, 500)}`);
    return;
  }
  for (const line of reportLines(report)) {
    output.appendLine(line);
  }
  const found = parseVersion(`tether ${report.version}`);
  if (found && !compatible(self.version, found)) {
    output.appendLine(`! warn the binary is ${found}, this extension ${self.version}: ${installCommand(self.repositoryUrl)}`);
  }
}
