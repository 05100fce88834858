// A session's git status as the Git panel and its tests read it (pure: no `vscode` import):
// staged and unstaged files from `tether/session/git`'s porcelain letters, and the
// branch line.

export interface GitFile {
  path: string;
  /** The index's letter (`M`, `A`, `D`, `R`, `?`, ` `). */
  index: string;
  /** The work tree's letter. */
  worktree: string;
}

export interface GitStatus {
  branch: string;
  baseBranch: string;
  aheadOfBase: number;
  behindBase: number;
  upstream?: { name: string; ahead: number; behind: number };
  files: GitFile[];
}

/** Files with something staged, and files with something not staged (untracked included). */
export function splitFiles(files: GitFile[]): { staged: GitFile[]; unstaged: GitFile[] } {
  const untracked = (file: GitFile) => file.index === "?" || file.worktree === "?";
  return {
    staged: files.filter((file) => !untracked(file) && file.index.trim() !== ""),
    unstaged: files.filter((file) => untracked(file) || file.worktree.trim() !== ""),
  };
}

/** "tether/fix → main: 1 ahead, 0 behind · origin/tether/fix: up to date". */
export function branchLine(status: GitStatus): string {
  const base = `${status.branch} → ${status.baseBranch}: ${status.aheadOfBase} ahead, ${status.behindBase} behind`;
  const upstream = status.upstream
    ? status.upstream.ahead === 0 && status.upstream.behind === 0
      ? `${status.upstream.name}: up to date`
      : `${status.upstream.name}: ${status.upstream.ahead} to push, ${status.upstream.behind} to pull`
    : "not pushed yet";
  return `${base} · ${upstream}`;
}

/** A file's letter as the panel shows it: `??` becomes `U` (untracked). */
export function letter(file: GitFile, side: "staged" | "unstaged"): string {
  if (file.index === "?" || file.worktree === "?") {
    return "U";
  }
  return (side === "staged" ? file.index : file.worktree).trim() || "·";
}
