//! "Apply hunk k of <file>" / "Reject hunk k of <file>": a finished session's changes, hunk
//! by hunk, as code actions on the lines of the user's file each would change. Hunk review
//! for an editor with standard LSP alone (Helix); a lightbulb in every other. Apply sends
//! `tether/session/apply {hunks: {file: [k]}, reject: {}}` (the file's other hunks are left
//! for later), Reject `{hunks: {}, reject: {file: [k]}}` (the agent is told). A hunk on lines
//! the user changed too is offered, titled as a conflict: applying it says so and changes
//! nothing. A hunk the user's copy already has is not offered.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use dashmap::DashMap;
use tower_lsp_server::ls_types::CodeActionOrCommand;

use super::code_action::action;
use crate::api::{self, methods};
use crate::front::Sessions;
use crate::session::SessionInfo;
use crate::workspace::FileDiff;
use crate::workspace::edits;

/// Each session's diff as of its last event: code actions are asked for on every cursor
/// move in some editors, and the worktree changes only through the session's events.
#[derive(Default)]
pub struct DiffCache {
    diffs: DashMap<String, (u64, Arc<Vec<FileDiff>>)>,
}

impl DiffCache {
    async fn diff(&self, sessions: &Sessions, session: &SessionInfo) -> Option<Arc<Vec<FileDiff>>> {
        if let Some(entry) = self.diffs.get(&session.id)
            && entry.0 == session.last_seq
        {
            return Some(entry.1.clone());
        }
        let diff = Arc::new(sessions.diff(&session.id).await.ok()?);
        self.diffs
            .insert(session.id.clone(), (session.last_seq, diff.clone()));
        Some(diff)
    }
}

/// One hunk of a session's file as it stands against the user's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkPlace {
    pub index: usize,
    /// The user's lines it changes (from 0, end excluded; empty where it only adds).
    pub lines: Range<usize>,
    /// The user changed the same lines: applying it changes nothing.
    pub conflict: bool,
}

/// Where each hunk of `base → new` not yet in `current` would land in `current`.
pub fn places(base: &str, new: &str, current: &str) -> Vec<HunkPlace> {
    // What still differs between the user's copy and the session's, in the session's lines.
    let remaining = edits::changed_ranges(current, new);
    let runs = edits::changed_ranges(base, new);
    let touches = |a: &Range<usize>, b: &Range<usize>| a.start <= b.end && b.start <= a.end;
    // Whether a hunk conflicts does not depend on which others are taken: one plan of them
    // all says it for each.
    let conflicts: BTreeSet<usize> = edits::plan(base, new, current, None)
        .conflicts
        .iter()
        .map(|hunk| hunk.index)
        .collect();
    edits::hunks(base, new)
        .into_iter()
        .filter_map(|hunk| {
            let start = hunk
                .new_start
                .saturating_sub(usize::from(hunk.new_lines > 0));
            let span = start..start + hunk.new_lines;
            // The hunk's own changed lines (its runs), without context.
            let own: Vec<&Range<usize>> = runs
                .iter()
                .map(|(_, new_range)| new_range)
                .filter(|run| touches(run, &span) && run.start >= span.start && run.end <= span.end)
                .collect();
            let differs: Vec<&Range<usize>> = remaining
                .iter()
                .filter(|(_, new_range)| own.iter().any(|run| touches(run, new_range)))
                .map(|(current_range, _)| current_range)
                .collect();
            let (first, last) = (differs.first()?, differs.last()?);
            Some(HunkPlace {
                index: hunk.index,
                lines: first.start..last.end,
                conflict: conflicts.contains(&hunk.index),
            })
        })
        .collect()
}

/// The hunk actions on lines `first..=last` (from 0) of the user's file `path`, whose text
/// is `current` (the open buffer, else the file on disk).
pub async fn actions(
    sessions: &Sessions,
    cache: &DiffCache,
    path: &Path,
    current: Option<String>,
    first: usize,
    last: usize,
) -> Vec<CodeActionOrCommand> {
    let mut found = Vec::new();
    for session in sessions.list(&Default::default()) {
        // Not while it works (half a turn is not worth reviewing), nor a read-only copy.
        if session.status.is_active() || session.read_only {
            continue;
        }
        let Ok(relative) = path.strip_prefix(&session.repo) else {
            continue;
        };
        let Some(relative) = relative.to_str().map(str::to_owned) else {
            continue;
        };
        let Some(diff) = cache.diff(sessions, &session).await else {
            continue;
        };
        let Some(file) = diff
            .iter()
            .find(|file| file.path == relative && file.status == "modified" && !file.binary)
        else {
            continue;
        };
        let (Some(base), Some(new)) = (file.base_text.clone(), file.new_text.clone()) else {
            continue;
        };
        let current = match &current {
            Some(text) => text.clone(),
            None => match tokio::fs::read_to_string(path).await {
                Ok(text) => text,
                Err(_) => continue,
            },
        };
        let placed = tokio::task::spawn_blocking(move || places(&base, &new, &current))
            .await
            .unwrap_or_default();
        for place in placed {
            let lines = place.lines.start..place.lines.end.max(place.lines.start + 1);
            if lines.start > last || lines.end <= first {
                continue;
            }
            found.extend(hunk_actions(&session, &relative, &place));
        }
    }
    found
}

fn hunk_actions(session: &SessionInfo, path: &str, place: &HunkPlace) -> [CodeActionOrCommand; 2] {
    let name = &session.name;
    let k = place.index;
    let only = |k: usize| BTreeMap::from([(path.to_owned(), BTreeSet::from([k]))]);
    let apply_title = if place.conflict {
        format!("tether: {name}: Apply hunk {k} of {path} (conflicts with your edits)")
    } else {
        format!("tether: {name}: Apply hunk {k} of {path}")
    };
    [
        action::<methods::Apply>(
            apply_title,
            &api::ApplyParams {
                id: session.id.clone(),
                files: None,
                hunks: Some(only(k)),
                reject: Some(BTreeMap::new()),
            },
        ),
        action::<methods::Apply>(
            format!("tether: {name}: Reject hunk {k} of {path}"),
            &api::ApplyParams {
                id: session.id.clone(),
                files: None,
                hunks: Some(BTreeMap::new()),
                reject: Some(only(k)),
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered() -> String {
        (1..=20).map(|n| format!("line {n}\n")).collect()
    }

    #[test]
    fn hunks_land_on_the_users_lines_and_applied_ones_are_gone() {
        let base = numbered();
        let new = base
            .replace("line 3\n", "line three\n")
            .replace("line 15\n", "line fifteen\n");
        // The user's copy as the base: both hunks, on lines 3 and 15 (2 and 14 from 0).
        let placed = places(&base, &new, &base);
        assert_eq!(
            placed,
            vec![
                HunkPlace {
                    index: 0,
                    lines: 2..3,
                    conflict: false
                },
                HunkPlace {
                    index: 1,
                    lines: 14..15,
                    conflict: false
                },
            ]
        );
        // Two lines added at the top move hunk 1 down; hunk 0 applied already is not offered.
        let current = format!("new a\nnew b\n{}", base.replace("line 3\n", "line three\n"));
        assert_eq!(
            places(&base, &new, &current),
            vec![HunkPlace {
                index: 1,
                lines: 16..17,
                conflict: false
            }]
        );
        // The user changed line 15 their own way: a conflict, on their line.
        let current = base.replace("line 15\n", "line 15, mine\n");
        let placed = places(&base, &new, &current);
        assert_eq!(
            placed[1],
            HunkPlace {
                index: 1,
                lines: 14..15,
                conflict: true
            }
        );
        assert!(!placed[0].conflict);
        // A hunk that only adds lines sits where they would go.
        let added = base.replace("line 10\n", "line 10\nline 10½\n");
        assert_eq!(
            places(&base, &added, &base),
            vec![HunkPlace {
                index: 0,
                lines: 10..10,
                conflict: false
            }]
        );
    }
}
