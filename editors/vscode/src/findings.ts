// "Tether: Findings": a session's open findings (severity, file:line, title, from review or
// verification), beside the diagnostics, each with Fix (the session is asked to fix it),
// Dismiss (its diagnostic goes) and Open.

import * as vscode from "vscode";

import type { Requester } from "./panel";
import type { SessionInfo } from "./sessions";
import type { Finding } from "./transcript";

type Listed = Finding & { source: string };

const ICONS: Record<string, string> = { critical: "$(error)", high: "$(error)", medium: "$(warning)", low: "$(info)" };

/** The quick pick's line for a finding. */
export function findingLabel(finding: Listed): { label: string; description: string } {
  const place = finding.file ? `${finding.file}:${finding.startLine} ` : "";
  return {
    label: `${ICONS[finding.severity] ?? "$(info)"} ${finding.severity} · ${place}${finding.title}`,
    description: finding.source,
  };
}

export async function showFindings(session: SessionInfo, request: Requester): Promise<void> {
  const listed = await request<{ findings: Listed[] }>("findings", { id: session.id });
  if (!listed) {
    return;
  }
  if (listed.findings.length === 0) {
    void vscode.window.showInformationMessage(`Tether: ${session.name} has no open findings.`);
    return;
  }
  const picked = await vscode.window.showQuickPick(
    listed.findings.map((finding) => ({ ...findingLabel(finding), detail: finding.body, finding })),
    { title: `Findings of ${session.name}`, placeHolder: "Pick one to fix, dismiss or open", matchOnDescription: true },
  );
  if (!picked) {
    return;
  }
  const { finding } = picked;
  const choice = await vscode.window.showQuickPick(["Fix", "Dismiss", ...(finding.file ? ["Open"] : [])], {
    title: finding.title,
  });
  if (choice === "Fix") {
    await request("fixFinding", { id: session.id, findingId: finding.id });
  } else if (choice === "Dismiss") {
    await request("dismissFinding", { id: session.id, findingId: finding.id });
  } else if (choice === "Open" && finding.file) {
    const line = Math.max(0, finding.startLine - 1);
    await vscode.window.showTextDocument(vscode.Uri.file(`${session.repo}/${finding.file}`), {
      selection: new vscode.Range(line, 0, line, 0),
    });
  }
}
