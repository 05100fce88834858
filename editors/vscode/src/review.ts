// Reviewing a session's changes hunk by hunk (pure: no `vscode` import, tested under node).
// The hunks come from `tether/session/diff`'s patches, numbered from 0 as
// `tether/session/apply` takes them. Accepting a hunk applies it at once (an undoable edit of
// the user's buffers: `apply {hunks: {path: [k]}, reject: {}}`); rejections are gathered per
// file and told to the agent in one call once every hunk of the file is decided, or when the
// user rejects the file or everything that is left.

export interface DiffFile {
  path: string;
  status: "added" | "modified" | "deleted" | "renamed";
  additions: number;
  deletions: number;
  patch: string;
  binary: boolean;
}

export type Decision = "accepted" | "rejected";

export interface ReviewHunk {
  index: number;
  /** The `@@` line. */
  header: string;
  /** The hunk's lines as the patch has them (` `, `-`, `+` first). */
  lines: string[];
  /** Where it is in the session's copy: lines from 0, end excluded. */
  newStart: number;
  newEnd: number;
  /** Where it is in the base (the user's copy, unless they changed it). */
  oldStart: number;
  oldEnd: number;
  decision?: Decision;
  /** Accepting it found the user changed the same lines: not applied. */
  conflict?: boolean;
}

export interface ReviewFile {
  path: string;
  status: DiffFile["status"];
  additions: number;
  deletions: number;
  binary: boolean;
  hunks: ReviewHunk[];
  /** The file's rejections were told to the agent. */
  told: boolean;
}

/** The hunks of a unified diff. */
export function parseHunks(patch: string): ReviewHunk[] {
  const hunks: ReviewHunk[] = [];
  for (const line of patch.split("\n")) {
    const header = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (header) {
      const [oldStart, oldLines, newStart, newLines] = [header[1], header[2] ?? "1", header[3], header[4] ?? "1"].map(Number);
      // A unified diff counts from 1 and names the line before an empty range.
      const from = (start: number, count: number) => (count === 0 ? start : start - 1);
      hunks.push({
        index: hunks.length,
        header: line,
        lines: [],
        newStart: from(newStart, newLines),
        newEnd: from(newStart, newLines) + newLines,
        oldStart: from(oldStart, oldLines),
        oldEnd: from(oldStart, oldLines) + oldLines,
      });
    } else if (hunks.length > 0 && /^[ +\\-]/.test(line)) {
      hunks[hunks.length - 1].lines.push(line);
    }
  }
  return hunks;
}

/** What `apply` is asked to do. */
export interface ApplyRequest {
  hunks: Record<string, number[]>;
  reject: Record<string, number[]>;
}

/** What `apply` answered for one file. */
export interface ApplyFileOutcome {
  path: string;
  applied: number[];
  conflicts: number[];
  rejected: number[];
  skipped?: string;
}

export class Review {
  readonly files: ReviewFile[];

  constructor(diff: DiffFile[]) {
    this.files = diff.map((file) => ({
      path: file.path,
      status: file.status,
      additions: file.additions,
      deletions: file.deletions,
      binary: file.binary,
      hunks: file.binary ? [] : parseHunks(file.patch),
      told: false,
    }));
  }

  file(path: string): ReviewFile | undefined {
    return this.files.find((file) => file.path === path);
  }

  /** "3 of 7 hunks reviewed". */
  progress(): string {
    const all = this.files.flatMap((file) => file.hunks);
    const decided = all.filter((hunk) => hunk.decision).length;
    return `${decided} of ${all.length} hunk${all.length === 1 ? "" : "s"} reviewed`;
  }

  done(): boolean {
    return this.files.every((file) => file.hunks.every((hunk) => hunk.decision));
  }

  /** The hunk of `path` on line `line` (from 0) of the session's copy, else of the user's. */
  hunkAt(path: string, line: number, side: "session" | "yours"): ReviewHunk | undefined {
    const hunks = this.file(path)?.hunks ?? [];
    const within = (start: number, end: number) => line >= start && line < Math.max(end, start + 1);
    return side === "session"
      ? hunks.find((hunk) => within(hunk.newStart, hunk.newEnd))
      : hunks.find((hunk) => within(hunk.oldStart, hunk.oldEnd));
  }

  /**
   * The request for deciding `indices` of `path` (undecided ones only), and for telling the
   * file's rejections once nothing of it is left undecided. `undefined`: nothing to send.
   */
  request(path: string, indices: number[], decision: Decision): ApplyRequest | undefined {
    const file = this.file(path);
    if (!file) {
      return undefined;
    }
    const open = new Set(file.hunks.filter((hunk) => !hunk.decision).map((hunk) => hunk.index));
    const picked = indices.filter((index) => open.has(index));
    const left = [...open].filter((index) => !picked.includes(index));
    const rejected = file.hunks.filter((hunk) => hunk.decision === "rejected").map((hunk) => hunk.index);
    const request: ApplyRequest = { hunks: {}, reject: {} };
    if (decision === "accepted" && picked.length > 0) {
      request.hunks[path] = picked;
    }
    const toTell = [...rejected, ...(decision === "rejected" ? picked : [])];
    if (left.length === 0 && toTell.length > 0 && !file.told) {
      request.reject[path] = toTell.sort((a, b) => a - b);
    }
    if (Object.keys(request.hunks).length === 0 && Object.keys(request.reject).length === 0) {
      // A rejection kept for later: recorded here, told with the file's last decision.
      if (decision === "rejected") {
        for (const hunk of file.hunks.filter((hunk) => picked.includes(hunk.index))) {
          hunk.decision = "rejected";
        }
      }
      return undefined;
    }
    if (!request.hunks[path]) {
      request.hunks[path] = [];
    }
    return request;
  }

  /** Records what `apply` answered for `decided` hunks of `path`; returns what to tell the user. */
  record(path: string, decided: number[], decision: Decision, outcome: ApplyFileOutcome | undefined, told: boolean): string | undefined {
    const file = this.file(path);
    if (!file) {
      return undefined;
    }
    if (told) {
      file.told = true;
    }
    if (outcome?.skipped) {
      return `${path} not applied: ${outcome.skipped}`;
    }
    const conflicts = new Set(outcome?.conflicts ?? []);
    for (const hunk of file.hunks.filter((hunk) => decided.includes(hunk.index))) {
      if (decision === "accepted" && conflicts.has(hunk.index)) {
        hunk.conflict = true;
        continue;
      }
      hunk.conflict = false;
      hunk.decision = decision;
    }
    if (conflicts.size > 0) {
      const listed = [...conflicts].map((index) => `#${index}`).join(", ");
      return `${path} hunk ${listed}: you changed the same lines, so it was not applied. Edit it by hand, or reject it.`;
    }
    return undefined;
  }
}
