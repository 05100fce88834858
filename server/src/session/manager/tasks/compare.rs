//! Trials side by side: which trial changed which file, and, in a file two or more trials
//! changed, the regions of the base where they agree (the same new text) and where they
//! differ. All trials start from one base commit, so their changes are lines of one text:
//! each trial's changes (without context) are laid over the base, overlapping ones are
//! grouped into regions, and each trial's text for a region is compared.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::super::{SessionError, SessionManager};
use crate::vocab::TaskInfo;
use crate::workspace::FileDiff;
use crate::workspace::edits::{changed_ranges, split_lines};

/// The most text a region's variant carries; the patches have the whole change.
const VARIANT_TEXT_LIMIT: usize = 4096;
/// The most regions a comparison lists.
const REGION_LIMIT: usize = 500;

/// What `tether/task/compare` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskComparison {
    pub task: TaskInfo,
    /// Every file any trial changed, by path.
    pub files: Vec<ComparedFile>,
    /// Regions of files two or more trials changed, in file and line order.
    pub regions: Vec<ComparedRegion>,
    /// More regions than [`REGION_LIMIT`] were found; the rest are left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regions_truncated: bool,
    /// Each trial's whole diff.
    pub patches: Vec<TrialPatch>,
    /// The comparison as a Markdown document (the task document).
    pub document: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// Only one trial changed it.
    Single,
    /// Every trial that changed it made the same change.
    Same,
    /// The trials that changed it differ.
    Different,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparedFile {
    pub path: String,
    pub agreement: Agreement,
    pub trials: Vec<FileInTrial>,
}

/// One trial's change to a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInTrial {
    pub trial: u32,
    pub session_id: String,
    /// `added`, `modified`, `deleted` or `renamed`.
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
}

/// Lines of the base that two or more trials' changes touch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparedRegion {
    pub path: String,
    /// The base's lines, from 1 (for an insertion: the line it follows, 0 for the top).
    pub base_start: usize,
    pub base_lines: usize,
    pub agreement: Agreement,
    /// The texts the trials that touched the region put there, each with its trials.
    pub variants: Vec<Variant>,
    /// Trials that changed the file but left these lines as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unchanged_in: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    pub trials: Vec<u32>,
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialPatch {
    pub trial: u32,
    pub session_id: String,
    pub patch: String,
}

impl SessionManager {
    /// The task's trials side by side (all of them, or those of `sessions`).
    pub async fn compare_task(
        &self,
        id: &str,
        sessions: Option<&[String]>,
    ) -> Result<TaskComparison, SessionError> {
        let task = self.task_info(id).await?;
        if let Some(sessions) = sessions
            && let Some(unknown) = sessions.iter().find(|id| task.trial(id).is_none())
        {
            return Err(SessionError::InvalidParams {
                field: "sessionIds",
                message: format!("{unknown:?} is not a trial of task {}", task.name),
            });
        }
        // The trials' diffs side by side: each is git processes, mostly waiting.
        let mut running = tokio::task::JoinSet::new();
        for trial in &task.trials {
            if trial.gone || sessions.is_some_and(|ids| !ids.contains(&trial.session_id)) {
                continue;
            }
            let (manager, index, id) = (self.clone(), trial.index, trial.session_id.clone());
            running.spawn(async move {
                let diff = manager.diff(&id).await;
                diff.map(|diff| (index, id, diff))
            });
        }
        let mut diffs = Vec::new();
        while let Some(joined) = running.join_next().await {
            diffs.push(joined.map_err(|error| {
                SessionError::Internal(format!("reading a trial's diff failed: {error}"))
            })??);
        }
        diffs.sort_by_key(|(index, _, _)| *index);
        let compared = tokio::task::spawn_blocking(move || compare(&diffs))
            .await
            .map_err(|error| {
                SessionError::Internal(format!("comparing the trials failed: {error}"))
            })?;
        let document = super::task_document(&task, Some(&compared));
        Ok(TaskComparison {
            task,
            files: compared.files,
            regions: compared.regions,
            regions_truncated: compared.regions_truncated,
            patches: compared.patches,
            document,
        })
    }
}

/// The comparison without the task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compared {
    pub files: Vec<ComparedFile>,
    pub regions: Vec<ComparedRegion>,
    pub regions_truncated: bool,
    pub patches: Vec<TrialPatch>,
}

/// Compares trials' diffs: (trial, session id, diff) each.
pub fn compare(trials: &[(u32, String, Vec<FileDiff>)]) -> Compared {
    let mut by_path: BTreeMap<&str, Vec<(u32, &str, &FileDiff)>> = BTreeMap::new();
    for (trial, session_id, files) in trials {
        for file in files {
            by_path
                .entry(&file.path)
                .or_default()
                .push((*trial, session_id, file));
        }
    }
    let mut compared = Compared::default();
    for (path, changes) in &by_path {
        let agreement = if changes.len() == 1 {
            Agreement::Single
        } else if changes
            .windows(2)
            .all(|pair| same_result(pair[0].2, pair[1].2))
        {
            Agreement::Same
        } else {
            Agreement::Different
        };
        compared.files.push(ComparedFile {
            path: path.to_string(),
            agreement,
            trials: changes
                .iter()
                .map(|(trial, session_id, file)| FileInTrial {
                    trial: *trial,
                    session_id: session_id.to_string(),
                    status: file.status.to_owned(),
                    additions: file.additions,
                    deletions: file.deletions,
                })
                .collect(),
        });
        if changes.len() > 1 {
            for region in regions_of(path, changes) {
                if compared.regions.len() == REGION_LIMIT {
                    compared.regions_truncated = true;
                    break;
                }
                compared.regions.push(region);
            }
        }
    }
    compared.patches = trials
        .iter()
        .map(|(trial, session_id, files)| TrialPatch {
            trial: *trial,
            session_id: session_id.clone(),
            patch: files.iter().map(|file| file.patch.as_str()).collect(),
        })
        .collect();
    compared
}

/// Whether two trials left a file the same (its text, or its absence).
fn same_result(a: &FileDiff, b: &FileDiff) -> bool {
    if a.binary || b.binary {
        return a.patch == b.patch && a.status == b.status;
    }
    a.new_text == b.new_text && a.old_path == b.old_path
}

/// One trial's changes to a file: its new lines and the changed ranges of the base.
struct TrialChange<'a> {
    trial: u32,
    lines: Vec<&'a str>,
    ranges: Vec<(Range<usize>, Range<usize>)>,
}

/// Lines of the base and the changes that touch them, as (trial, change) indices.
type Group = (Range<usize>, Vec<(usize, usize)>);

/// The regions of one file several trials changed.
fn regions_of(path: &str, changes: &[(u32, &str, &FileDiff)]) -> Vec<ComparedRegion> {
    // Binary files are compared whole (above); they have no lines.
    if changes.iter().any(|(_, _, file)| file.binary) {
        return Vec::new();
    }
    let base = changes
        .iter()
        .find_map(|(_, _, file)| file.base_text.as_deref())
        .unwrap_or_default();
    let trials: Vec<TrialChange> = changes
        .iter()
        .map(|(trial, _, file)| {
            let new = file.new_text.as_deref().unwrap_or_default();
            TrialChange {
                trial: *trial,
                lines: split_lines(new),
                ranges: changed_ranges(base, new),
            }
        })
        .collect();
    // Every change of every trial, by where it starts in the base; overlapping or touching
    // ones form one region.
    let mut spans: Vec<(Range<usize>, usize, usize)> = trials
        .iter()
        .enumerate()
        .flat_map(|(t, change)| {
            change
                .ranges
                .iter()
                .enumerate()
                .map(move |(r, (old, _))| (old.clone(), t, r))
        })
        .collect();
    spans.sort_by_key(|(old, t, r)| (old.start, old.end, *t, *r));
    let mut groups: Vec<Group> = Vec::new();
    for (old, t, r) in spans {
        match groups.last_mut() {
            Some((range, members)) if old.start <= range.end => {
                range.end = range.end.max(old.end);
                members.push((t, r));
            }
            _ => groups.push((old, vec![(t, r)])),
        }
    }
    groups
        .into_iter()
        .map(|(range, members)| {
            let mut variants: Vec<Variant> = Vec::new();
            let mut unchanged_in = Vec::new();
            for (t, change) in trials.iter().enumerate() {
                let inside: Vec<usize> = members
                    .iter()
                    .filter(|(member, _)| *member == t)
                    .map(|(_, r)| *r)
                    .collect();
                if inside.is_empty() {
                    unchanged_in.push(change.trial);
                    continue;
                }
                let text = text_of_region(change, &range, &inside);
                match variants.iter_mut().find(|variant| variant.text == text) {
                    Some(variant) => variant.trials.push(change.trial),
                    None => variants.push(Variant {
                        trials: vec![change.trial],
                        text,
                        truncated: false,
                    }),
                }
            }
            let touched: usize = variants.iter().map(|variant| variant.trials.len()).sum();
            let agreement = match (touched, variants.len()) {
                (1, _) => Agreement::Single,
                (_, 1) => Agreement::Same,
                _ => Agreement::Different,
            };
            for variant in &mut variants {
                if variant.text.len() > VARIANT_TEXT_LIMIT {
                    let mut end = VARIANT_TEXT_LIMIT;
                    while !variant.text.is_char_boundary(end) {
                        end -= 1;
                    }
                    variant.text.truncate(end);
                    variant.truncated = true;
                }
            }
            ComparedRegion {
                path: path.to_owned(),
                base_start: if range.is_empty() {
                    range.start
                } else {
                    range.start + 1
                },
                base_lines: range.len(),
                agreement,
                variants,
                unchanged_in,
            }
        })
        .collect()
}

/// The text a trial put in place of the base's lines `region`, given which of its changes
/// (`inside`, by index) fall in it.
fn text_of_region(change: &TrialChange, region: &Range<usize>, inside: &[usize]) -> String {
    let shift = |(old, new): &(Range<usize>, Range<usize>)| new.len() as isize - old.len() as isize;
    // Lines the trial added or removed before the region move its start.
    let before: isize = change
        .ranges
        .iter()
        .enumerate()
        .filter(|(r, (old, _))| !inside.contains(r) && old.start < region.start)
        .map(|(_, range)| shift(range))
        .sum();
    let within: isize = inside.iter().map(|r| shift(&change.ranges[*r])).sum();
    let start = (region.start as isize + before).max(0) as usize;
    let end = (start as isize + region.len() as isize + within).max(start as isize) as usize;
    change
        .lines
        .get(start..end.min(change.lines.len()))
        .unwrap_or_default()
        .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modified(path: &str, base: &str, new: &str) -> FileDiff {
        FileDiff {
            path: path.into(),
            old_path: None,
            status: "modified",
            additions: 1,
            deletions: 1,
            patch: crate::workspace::edits::unified_patch(path, path, base, new),
            base_text: Some(base.into()),
            new_text: Some(new.into()),
            binary: false,
        }
    }

    const BASE: &str = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";

    #[test]
    fn regions_say_where_trials_agree_and_where_they_differ() {
        // Trial 1 and 2 change line b the same way; line h differently; trial 3 only adds a
        // line at the end.
        let one = modified("x.txt", BASE, "a\nB\nc\nd\ne\nf\ng\nH1\ni\nj\n");
        let two = modified("x.txt", BASE, "a\nB\nc\nd\ne\nf\ng\nH2\ni\nj\n");
        let three = modified("x.txt", BASE, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n");
        let compared = compare(&[
            (1, "s1".into(), vec![one]),
            (2, "s2".into(), vec![two]),
            (3, "s3".into(), vec![three]),
        ]);
        assert_eq!(compared.files.len(), 1);
        assert_eq!(compared.files[0].agreement, Agreement::Different);
        assert_eq!(compared.files[0].trials.len(), 3);
        let regions: Vec<_> = compared
            .regions
            .iter()
            .map(|region| (region.base_start, region.base_lines, region.agreement))
            .collect();
        assert_eq!(
            regions,
            [
                (2, 1, Agreement::Same),
                (8, 1, Agreement::Different),
                (10, 0, Agreement::Single)
            ]
        );
        let same = &compared.regions[0];
        assert_eq!(same.variants.len(), 1);
        assert_eq!(same.variants[0].trials, [1, 2]);
        assert_eq!(same.variants[0].text, "B\n");
        assert_eq!(same.unchanged_in, [3]);
        let differ = &compared.regions[1];
        assert_eq!(
            differ
                .variants
                .iter()
                .map(|variant| (variant.trials.clone(), variant.text.as_str()))
                .collect::<Vec<_>>(),
            [(vec![1], "H1\n"), (vec![2], "H2\n")]
        );
        assert_eq!(compared.regions[2].variants[0].text, "k\n");
        assert_eq!(compared.patches.len(), 3);
        assert!(compared.patches[0].patch.contains("+H1"));
    }

    #[test]
    fn a_region_shifted_by_earlier_changes_is_read_in_the_right_place() {
        // Trial 1 inserts two lines at the top, then changes e; trial 2 changes e alike.
        let one = modified("x.txt", BASE, "0\n00\na\nb\nc\nd\nE\nf\ng\nh\ni\nj\n");
        let two = modified("x.txt", BASE, "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\n");
        let compared = compare(&[(1, "s1".into(), vec![one]), (2, "s2".into(), vec![two])]);
        let e = compared
            .regions
            .iter()
            .find(|region| region.base_start == 5)
            .expect("the region of line e");
        assert_eq!(e.agreement, Agreement::Same);
        assert_eq!(e.variants[0].text, "E\n");
        assert_eq!(e.variants[0].trials, [1, 2]);
    }

    #[test]
    fn files_changed_by_one_trial_or_identically_are_told_apart() {
        let same = || modified("same.txt", "x\n", "y\n");
        let compared = compare(&[
            (
                1,
                "s1".into(),
                vec![same(), modified("only.txt", "x\n", "z\n")],
            ),
            (2, "s2".into(), vec![same()]),
        ]);
        let files: Vec<_> = compared
            .files
            .iter()
            .map(|file| (file.path.as_str(), file.agreement))
            .collect();
        assert_eq!(
            files,
            [
                ("only.txt", Agreement::Single),
                ("same.txt", Agreement::Same)
            ]
        );
    }
}
