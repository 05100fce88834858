//! From a session's change to a file, the smallest edits that carry it into the user's copy.
//!
//! Three texts meet here: `base` (the file at the session's base), `new` (the file in the
//! session's worktree) and `current` (what the user has now: the open buffer, or the file on
//! disk). The change `base → new` is cut into hunks (the `@@` hunks of the session's diff, 3
//! lines of context). Each hunk is moved onto `current` past the user's own changes; a hunk
//! that touches lines the user changed too is a conflict, reported and never forced.
//!
//! Lines end at `\n`, `\r\n` or a lone `\r`, as LSP counts them. Columns here are byte
//! offsets into the line; the LSP edge converts them to the negotiated encoding.

use std::collections::BTreeSet;
use std::ops::Range;

use similar::{DiffOp, group_diff_ops};

/// Lines of context around a hunk, as in `git diff`.
const CONTEXT_LINES: usize = 3;

/// A point in a text: a line, and the offset into it in bytes and in UTF-16 code units (the
/// two encodings LSP clients negotiate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinePosition {
    pub line: usize,
    pub byte: usize,
    pub utf16: usize,
}

/// Replace `start..end` of the user's text with `new_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChange {
    pub start: LinePosition,
    pub end: LinePosition,
    pub new_text: String,
}

/// One hunk of the session's change, in the line numbers of `base` and `new` (from 1, as in a
/// unified diff's `@@` header).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hunk {
    pub index: usize,
    pub old_start: usize,
    pub old_lines: usize,
    pub new_start: usize,
    pub new_lines: usize,
}

/// What carrying one file's change into the user's text comes to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileEdits {
    /// Non-overlapping, in document order, against `current`.
    pub changes: Vec<TextChange>,
    /// Hunks carried over.
    pub applied: Vec<Hunk>,
    /// Hunks left out because the user changed the same lines.
    pub conflicts: Vec<Hunk>,
    /// Hunks the user chose not to take.
    pub rejected: Vec<Hunk>,
}

/// Splits `text` into lines, each with its terminator (`\n`, `\r\n` or a lone `\r`).
pub fn split_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity(bytes.len() / 32 + 1);
    let mut start = 0;
    for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
        if at < start {
            continue; // the `\n` of a `\r\n` already taken
        }
        let end = if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
            at + 2
        } else {
            at + 1
        };
        lines.push(&text[start..end]);
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Lines (already split) as imara-diff tokens: each line's 64-bit hash, so that interning
/// compares integers, not text. A collision could only make two different lines look equal;
/// [`diff_lines`] checks every equal run and diffs the text itself if one ever does.
struct HashedLines<'lines, 'text>(&'lines [&'text str]);

fn line_hash(line: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(line)
}

impl<'lines> imara_diff::TokenSource for HashedLines<'lines, '_> {
    type Token = u64;
    type Tokenizer = std::iter::Map<std::slice::Iter<'lines, &'lines str>, fn(&&str) -> u64>;

    fn tokenize(&self) -> Self::Tokenizer {
        self.0.iter().map(|line| line_hash(line))
    }

    fn estimate_tokens(&self) -> u32 {
        self.0.len() as u32
    }
}

/// Lines as imara-diff tokens, compared by their text.
struct TextLines<'lines, 'text>(&'lines [&'text str]);

impl<'lines, 'text> imara_diff::TokenSource for TextLines<'lines, 'text> {
    type Token = &'text str;
    type Tokenizer = std::iter::Copied<std::slice::Iter<'lines, &'text str>>;

    fn tokenize(&self) -> Self::Tokenizer {
        self.0.iter().copied()
    }

    fn estimate_tokens(&self) -> u32 {
        self.0.len() as u32
    }
}

/// The line diff of `old → new` as diff ops (equal runs included).
fn diff_lines(old: &[&str], new: &[&str]) -> Vec<DiffOp> {
    let ops = diff_ops(&imara_diff::InternedInput::new(
        HashedLines(old),
        HashedLines(new),
    ));
    let runs_are_equal = ops.iter().all(|op| match *op {
        DiffOp::Equal {
            old_index,
            new_index,
            len,
        } => old[old_index..old_index + len] == new[new_index..new_index + len],
        _ => true,
    });
    if runs_are_equal {
        ops
    } else {
        diff_ops(&imara_diff::InternedInput::new(
            TextLines(old),
            TextLines(new),
        ))
    }
}

/// The diff of interned lines. imara-diff (what helix and gitoxide use) compares the
/// lines' numbers rather than their text; its Myers drops lines only one side has before
/// searching, so scattered changes to a large file cost little more than reading it.
fn diff_ops<T: Eq + std::hash::Hash>(input: &imara_diff::InternedInput<T>) -> Vec<DiffOp> {
    let mut diff = imara_diff::Diff::compute(imara_diff::Algorithm::Myers, input);
    // Slides each change to one canonical place among equal lines (the indent heuristic
    // would need the text, which the tokens are not).
    diff.postprocess_no_heuristic(input);
    let mut ops = Vec::new();
    let (mut old_at, mut new_at) = (0usize, 0usize);
    let push_equal = |ops: &mut Vec<DiffOp>, old_at: usize, new_at: usize, len: usize| {
        if len > 0 {
            ops.push(DiffOp::Equal {
                old_index: old_at,
                new_index: new_at,
                len,
            });
        }
    };
    for hunk in diff.hunks() {
        let before = hunk.before.start as usize..hunk.before.end as usize;
        let after = hunk.after.start as usize..hunk.after.end as usize;
        push_equal(&mut ops, old_at, new_at, before.start - old_at);
        ops.push(match (before.is_empty(), after.is_empty()) {
            (true, _) => DiffOp::Insert {
                old_index: before.start,
                new_index: after.start,
                new_len: after.len(),
            },
            (_, true) => DiffOp::Delete {
                old_index: before.start,
                old_len: before.len(),
                new_index: after.start,
            },
            _ => DiffOp::Replace {
                old_index: before.start,
                old_len: before.len(),
                new_index: after.start,
                new_len: after.len(),
            },
        });
        old_at = before.end;
        new_at = after.end;
    }
    push_equal(&mut ops, old_at, new_at, input.before.len() - old_at);
    ops
}

/// The change `base → new` grouped into hunks: each group is the change ops of one hunk.
fn hunks_of(ops: Vec<DiffOp>) -> Vec<(Hunk, Vec<DiffOp>)> {
    group_diff_ops(ops, CONTEXT_LINES)
        .into_iter()
        .enumerate()
        .filter_map(|(index, group)| {
            let first = group.first()?;
            let last = group.last()?;
            let old_range = first.old_range().start..last.old_range().end;
            let new_range = first.new_range().start..last.new_range().end;
            let hunk = Hunk {
                index,
                old_start: unified_start(&old_range),
                old_lines: old_range.len(),
                new_start: unified_start(&new_range),
                new_lines: new_range.len(),
            };
            let changes = group
                .into_iter()
                .filter(|op| !matches!(op, DiffOp::Equal { .. }))
                .collect();
            Some((hunk, changes))
        })
        .collect()
}

/// A unified diff counts from 1, and names the line before an empty range.
fn unified_start(range: &Range<usize>) -> usize {
    if range.is_empty() {
        range.start
    } else {
        range.start + 1
    }
}

/// The hunks of `base → new`, numbered as [`plan`] and [`unified_patch`] number them.
pub fn hunks(base: &str, new: &str) -> Vec<Hunk> {
    hunks_of(diff_lines(&split_lines(base), &split_lines(new)))
        .into_iter()
        .map(|(hunk, _)| hunk)
        .collect()
}

/// The lines `base → new` changes, without context: each a range of `base`'s lines and the
/// range of `new`'s that replace them (counted from 0, end excluded), in order.
pub fn changed_ranges(base: &str, new: &str) -> Vec<(Range<usize>, Range<usize>)> {
    diff_lines(&split_lines(base), &split_lines(new))
        .into_iter()
        .filter(|op| !matches!(op, DiffOp::Equal { .. }))
        .map(|op| (op.old_range(), op.new_range()))
        .collect()
}

/// A unified diff of `base → new` (3 lines of context), hunks as [`hunks`] numbers them.
pub fn unified_patch(old_path: &str, new_path: &str, base: &str, new: &str) -> String {
    use std::fmt::Write as _;
    let base_lines = split_lines(base);
    let new_lines = split_lines(new);
    let groups = group_diff_ops(diff_lines(&base_lines, &new_lines), CONTEXT_LINES);
    let mut patch = String::new();
    if groups.is_empty() {
        return patch;
    }
    let _ = writeln!(patch, "--- {old_path}\n+++ {new_path}");
    for group in groups {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let _ = writeln!(
            patch,
            "@@ -{},{} +{},{} @@",
            unified_start(&old_range),
            old_range.len(),
            unified_start(&new_range),
            new_range.len()
        );
        for op in &group {
            for (sign, line) in op
                .old_range()
                .filter(|_| !matches!(op, DiffOp::Insert { .. }))
                .map(|index| {
                    let sign = if matches!(op, DiffOp::Equal { .. }) {
                        ' '
                    } else {
                        '-'
                    };
                    (sign, base_lines[index])
                })
                .chain(
                    op.new_range()
                        .filter(|_| !matches!(op, DiffOp::Equal { .. } | DiffOp::Delete { .. }))
                        .map(|index| ('+', new_lines[index])),
                )
            {
                let text = line.trim_end_matches(['\n', '\r']);
                let _ = writeln!(patch, "{sign}{text}");
                if text.len() == line.len() {
                    patch.push_str("\\ No newline at end of file\n");
                }
            }
        }
    }
    patch
}

/// A change the user made: lines `base_lines` of `base` became `current_len` lines.
struct UserChange {
    base_lines: Range<usize>,
    current_len: usize,
}

/// Carries the change `base → new` into `current`. `selected` limits it to those hunks.
pub fn plan(base: &str, new: &str, current: &str, selected: Option<&BTreeSet<usize>>) -> FileEdits {
    let base_lines = split_lines(base);
    let new_lines = split_lines(new);
    let hunks = hunks_of(diff_lines(&base_lines, &new_lines));
    let user_changes: Vec<UserChange> = if current == base {
        Vec::new()
    } else {
        diff_lines(&base_lines, &split_lines(current))
            .into_iter()
            .filter(|op| !matches!(op, DiffOp::Equal { .. }))
            .map(|op| UserChange {
                base_lines: op.old_range(),
                current_len: op.new_range().len(),
            })
            .collect()
    };

    let mut edits = FileEdits::default();
    // Both lists are in base order: one sweep finds each hunk's neighbours among the user's
    // changes and how far the user's changes before it moved it.
    let mut next_user_change = 0;
    let mut shift: isize = 0;
    for (hunk, ops) in hunks {
        if selected.is_some_and(|selected| !selected.contains(&hunk.index)) {
            edits.rejected.push(hunk);
            continue;
        }
        let (Some(first), Some(last)) = (ops.first(), ops.last()) else {
            continue;
        };
        let ours = first.old_range().start..last.old_range().end;
        // Touching counts as overlapping, as in a git merge: which goes first is unknowable.
        let conflicts = user_changes[next_user_change..]
            .iter()
            .take_while(|theirs| theirs.base_lines.start <= ours.end)
            .any(|theirs| {
                ops.iter().any(|op| {
                    let ours = op.old_range();
                    theirs.base_lines.start <= ours.end && ours.start <= theirs.base_lines.end
                })
            });
        if conflicts {
            edits.conflicts.push(hunk);
            continue;
        }
        for op in ops {
            let old = op.old_range();
            while let Some(theirs) = user_changes.get(next_user_change)
                && theirs.base_lines.end < old.start
            {
                shift += theirs.current_len as isize - theirs.base_lines.len() as isize;
                next_user_change += 1;
            }
            let first_line = old.start.saturating_add_signed(shift);
            let old_text = base_lines[old.clone()].concat();
            let new_text = new_lines[op.new_range()].concat();
            edits
                .changes
                .push(minimal_change(first_line, &old_text, &new_text));
        }
        edits.applied.push(hunk);
    }
    edits
}

/// The change `old_text → new_text` starting at the beginning of `first_line`, with the
/// text both share at either end left alone.
fn minimal_change(first_line: usize, old_text: &str, new_text: &str) -> TextChange {
    let mut prefix = common_prefix(old_text, new_text);
    // Never cut a `\r\n` in two: a position between them is not a position in LSP.
    if old_text[..prefix].ends_with('\r') {
        prefix -= 1;
    }
    let mut suffix = common_suffix(&old_text[prefix..], &new_text[prefix..]);
    if old_text[old_text.len() - suffix..].starts_with('\n')
        && old_text[..old_text.len() - suffix].ends_with('\r')
    {
        suffix -= 1;
    }
    let start = advance(
        LinePosition {
            line: first_line,
            byte: 0,
            utf16: 0,
        },
        &old_text[..prefix],
    );
    let end = advance(start, &old_text[prefix..old_text.len() - suffix]);
    TextChange {
        start,
        end,
        new_text: new_text[prefix..new_text.len() - suffix].to_owned(),
    }
}

/// Where `from` ends up after `text`.
fn advance(from: LinePosition, text: &str) -> LinePosition {
    let lines = split_lines(text);
    match lines.as_slice() {
        [] => from,
        [.., last] => {
            let ends_line = last.ends_with(['\n', '\r']);
            let line_breaks = lines.len() - usize::from(!ends_line);
            if line_breaks == 0 {
                LinePosition {
                    line: from.line,
                    byte: from.byte + text.len(),
                    utf16: from.utf16 + text.encode_utf16().count(),
                }
            } else if ends_line {
                LinePosition {
                    line: from.line + line_breaks,
                    byte: 0,
                    utf16: 0,
                }
            } else {
                LinePosition {
                    line: from.line + line_breaks,
                    byte: last.len(),
                    utf16: last.encode_utf16().count(),
                }
            }
        }
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((index, _), _)| index)
}

fn common_suffix(a: &str, b: &str) -> usize {
    a.chars()
        .rev()
        .zip(b.chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum()
}

/// Applies `changes` (non-overlapping, in order) to `text`; tests and the benchmark check a
/// plan with it.
pub fn apply(text: &str, changes: &[TextChange]) -> String {
    let lines = split_lines(text);
    let offset = |position: LinePosition| {
        lines[..position.line.min(lines.len())]
            .iter()
            .map(|line| line.len())
            .sum::<usize>()
            + position.byte
    };
    let mut result = String::with_capacity(text.len());
    let mut done = 0;
    for change in changes {
        let start = offset(change.start);
        result.push_str(&text[done..start]);
        result.push_str(&change.new_text);
        done = offset(change.end);
    }
    result.push_str(&text[done..]);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(base: &str, new: &str, current: &str) -> (String, FileEdits) {
        let edits = plan(base, new, current, None);
        (apply(current, &edits.changes), edits)
    }

    #[test]
    fn lines_end_as_lsp_counts_them() {
        assert_eq!(split_lines("a\nb\r\nc\rd"), ["a\n", "b\r\n", "c\r", "d"]);
        assert_eq!(split_lines(""), Vec::<&str>::new());
        assert_eq!(split_lines("\n\n"), ["\n", "\n"]);
    }

    #[test]
    fn a_one_word_change_is_a_one_word_edit() {
        let base = "fn main() {\n    let x = 1;\n}\n";
        let new = "fn main() {\n    let x = 2;\n}\n";
        let (result, edits) = carried(base, new, base);
        assert_eq!(result, new);
        assert_eq!(
            edits.changes,
            [TextChange {
                start: LinePosition {
                    line: 1,
                    byte: 12,
                    utf16: 12
                },
                end: LinePosition {
                    line: 1,
                    byte: 13,
                    utf16: 13
                },
                new_text: "2".to_owned(),
            }]
        );
    }

    #[test]
    fn inserts_deletes_and_the_last_line_without_a_newline() {
        for (base, new) in [
            ("a\nb\nc\n", "a\nx\nb\nc\n"),
            ("a\nb\nc\n", "a\nc\n"),
            ("a\nb", "a\nb\nc"),
            ("a\nb\n", "a\nb"),
            ("", "new file\n"),
            ("gone\n", ""),
            ("a\r\nb\r\n", "a\r\nB\r\nc\r\n"),
            ("a\r\nb\r\n", "a\nb\n"),
            ("日本語\n👍 ok\n", "日本語\n👍 okay\n"),
        ] {
            let (result, _) = carried(base, new, base);
            assert_eq!(result, new, "{base:?} → {new:?}");
        }
    }

    #[test]
    fn columns_are_counted_in_bytes_and_in_utf16_units() {
        let base = "a👍é = 1;\n";
        let edits = plan(base, "a👍é = 2;\n", base, None);
        // 'a' 1 + '👍' 4 bytes / 2 units + 'é' 2 bytes / 1 unit + " = " 3.
        assert_eq!(
            edits.changes[0].start,
            LinePosition {
                line: 0,
                byte: 10,
                utf16: 7
            }
        );
    }

    #[test]
    fn line_endings_are_never_cut_in_two() {
        let edits = plan("a\r\n", "a\n", "a\r\n", None);
        assert_eq!(
            edits.changes,
            [TextChange {
                start: LinePosition {
                    line: 0,
                    byte: 1,
                    utf16: 1
                },
                end: LinePosition {
                    line: 1,
                    byte: 0,
                    utf16: 0
                },
                new_text: "\n".to_owned(),
            }]
        );
    }

    #[test]
    fn hunks_move_past_the_users_own_changes() {
        let base: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let new = base.replace("line 15\n", "line fifteen\n");
        let current = base.replace("line 2\n", "line 2\nuser line\nuser line\n");
        let (result, edits) = carried(&base, &new, &current);
        assert_eq!(
            result,
            current.replace("line 15\n", "line fifteen\n"),
            "both changes kept"
        );
        assert_eq!(edits.changes[0].start.line, 16);
        assert!(edits.conflicts.is_empty());
    }

    #[test]
    fn a_user_change_between_two_changes_of_one_hunk_moves_the_second() {
        let base: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        // Lines 5 and 9 change: one hunk, since their context overlaps.
        let new = base
            .replace("line 5\n", "line five\n")
            .replace("line 9\n", "line nine\n");
        assert_eq!(hunks(&base, &new).len(), 1);
        let current = base.replace("line 7\n", "line 7\nuser\n");
        let (result, edits) = carried(&base, &new, &current);
        assert!(edits.conflicts.is_empty());
        assert_eq!(
            result,
            current
                .replace("line 5\n", "line five\n")
                .replace("line 9\n", "line nine\n")
        );
    }

    #[test]
    fn a_hunk_on_lines_the_user_changed_is_a_conflict() {
        let base: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let new = base
            .replace("line 3\n", "line three\n")
            .replace("line 15\n", "line fifteen\n");
        let current = base.replace("line 15\n", "line 15 (mine)\n");
        let (result, edits) = carried(&base, &new, &current);
        assert_eq!(edits.applied.len(), 1);
        assert_eq!(edits.conflicts.len(), 1);
        assert_eq!(edits.conflicts[0].index, 1);
        assert_eq!(
            result,
            current.replace("line 3\n", "line three\n"),
            "the user's line is untouched"
        );
    }

    #[test]
    fn unselected_hunks_are_rejected() {
        let base: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let new = base
            .replace("line 3\n", "line three\n")
            .replace("line 15\n", "line fifteen\n");
        let selected = BTreeSet::from([1]);
        let edits = plan(&base, &new, &base, Some(&selected));
        assert_eq!(
            apply(&base, &edits.changes),
            base.replace("line 15\n", "line fifteen\n")
        );
        assert_eq!(edits.rejected.len(), 1);
        assert_eq!(edits.rejected[0].old_start, 3 - CONTEXT_LINES + 1);
    }

    #[test]
    fn the_patch_numbers_hunks_as_the_plan_does() {
        let base: String = (1..=20).map(|n| format!("line {n}\n")).collect();
        let new = base
            .replace("line 3\n", "line three\n")
            .replace("line 15\n", "line fifteen\n");
        let patch = unified_patch("a/f", "b/f", &base, &new);
        let headers: Vec<&str> = patch.lines().filter(|l| l.starts_with("@@")).collect();
        assert_eq!(headers, ["@@ -1,6 +1,6 @@", "@@ -12,7 +12,7 @@"]);
        assert_eq!(hunks(&base, &new).len(), 2);
        assert!(patch.contains("-line 3\n+line three\n"), "{patch}");
        assert!(unified_patch("a", "b", "x", "y").contains("\\ No newline at end of file"));
    }
}
