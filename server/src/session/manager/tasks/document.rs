//! The task document: a task and its trials' comparison as Markdown, for any editor (Helix
//! opens it as `.tether/tasks/<name>.md`) and for `compare`'s answer.

use std::fmt::Write;

use super::compare::{Agreement, Compared};
use crate::vocab::{HookStatus, TaskInfo, TrialSummary, Verdict};

/// The most differing regions the document spells out.
const DOCUMENT_REGIONS: usize = 40;

/// `task` as Markdown, with the comparison when there is one.
pub fn task_document(task: &TaskInfo, compared: Option<&Compared>) -> String {
    let mut out = String::new();
    let short_base: String = task.base_commit.chars().take(10).collect();
    let _ = writeln!(out, "# Task: {}\n", task.title);
    let _ = writeln!(
        out,
        "Status: {} · {} trial(s) · base `{}` at `{short_base}` · task `{}`\n",
        status_word(task),
        task.trials.len(),
        task.base_branch,
        task.name
    );
    if let Some(promoted) = &task.promoted {
        let _ = write!(
            out,
            "Promoted: trial {} by {}",
            promoted.trial,
            promoted.how.as_str()
        );
        if let Some(url) = &promoted.pull_request {
            let _ = write!(out, " ({url})");
        }
        if let Some(reason) = &promoted.reason {
            let _ = write!(out, ": {reason}");
        }
        out.push_str("\n\n");
    }
    out.push_str("## Prompt\n\n");
    for line in task.prompt.lines() {
        let _ = writeln!(out, "> {line}");
    }
    out.push_str("\n## Trials\n\n");
    out.push_str(
        "| # | agent | status | files | +/- | findings (C/H/M/L) | verification | tests | cost | time |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for trial in &task.trials {
        let _ = writeln!(
            out,
            "| {} | {}/{} | {} | {} | +{} −{} | {}/{}/{}/{} | {} | {} | ${:.4} | {} |",
            trial.index,
            trial.provider,
            trial.model,
            trial_status(trial),
            trial.files_changed,
            trial.additions,
            trial.deletions,
            trial.findings.critical,
            trial.findings.high,
            trial.findings.medium,
            trial.findings.low,
            verdict_word(trial.verification),
            hooks_word(trial),
            trial.cost_usd,
            duration_word(trial.duration_ms),
        );
    }
    let Some(compared) = compared else {
        return out;
    };
    if !compared.files.is_empty() {
        out.push_str("\n## Files\n\n| file |");
        for trial in &task.trials {
            let _ = write!(out, " {} |", trial.index);
        }
        out.push_str(" trials agree? |\n| --- |");
        for _ in &task.trials {
            out.push_str(" --- |");
        }
        out.push_str(" --- |\n");
        for file in &compared.files {
            let _ = write!(out, "| `{}` |", file.path);
            for trial in &task.trials {
                match file
                    .trials
                    .iter()
                    .find(|change| change.trial == trial.index)
                {
                    Some(change) => {
                        let _ = write!(out, " +{} −{} |", change.additions, change.deletions);
                    }
                    None => out.push_str(" · |"),
                }
            }
            let _ = writeln!(out, " {} |", agreement_word(file.agreement));
        }
    }
    let differing: Vec<_> = compared
        .regions
        .iter()
        .filter(|region| region.agreement == Agreement::Different)
        .collect();
    if !differing.is_empty() {
        out.push_str("\n## Where the trials differ\n");
        for region in differing.iter().take(DOCUMENT_REGIONS) {
            let lines = match region.base_lines {
                0 => format!("after line {}", region.base_start),
                1 => format!("line {}", region.base_start),
                n => format!("lines {}–{}", region.base_start, region.base_start + n - 1),
            };
            let _ = writeln!(out, "\n### `{}`, {lines}\n", region.path);
            for variant in &region.variants {
                let trials: Vec<String> = variant.trials.iter().map(u32::to_string).collect();
                let _ = writeln!(out, "Trial {}:\n", trials.join(", "));
                out.push_str("```\n");
                out.push_str(&variant.text);
                if !variant.text.ends_with('\n') && !variant.text.is_empty() {
                    out.push('\n');
                }
                if variant.truncated {
                    out.push_str("…\n");
                }
                out.push_str("```\n\n");
            }
            if !region.unchanged_in.is_empty() {
                let trials: Vec<String> = region.unchanged_in.iter().map(u32::to_string).collect();
                let _ = writeln!(out, "Left as it was by trial {}.", trials.join(", "));
            }
        }
        if differing.len() > DOCUMENT_REGIONS {
            let _ = writeln!(
                out,
                "\n…and {} more; `tether/task/compare` lists them all.",
                differing.len() - DOCUMENT_REGIONS
            );
        }
    }
    if task.promoted.is_none() {
        out.push_str("\n## Promote\n\nRun the code action \"Promote trial k\" on a trial's row (apply into your files, merge into the base branch, or open a pull request), or `tether.taskPromote` with `{id, sessionId, how}`.\n");
    }
    out
}

fn status_word(task: &TaskInfo) -> &'static str {
    match task.status {
        crate::vocab::TaskStatus::Running => "running",
        crate::vocab::TaskStatus::Done => "done",
        crate::vocab::TaskStatus::Failed => "failed",
        crate::vocab::TaskStatus::Promoted => "promoted",
    }
}

fn trial_status(trial: &TrialSummary) -> String {
    if trial.gone {
        return "deleted".to_owned();
    }
    trial.status.as_str().to_owned()
}

fn verdict_word(verdict: Option<Verdict>) -> &'static str {
    match verdict {
        None => "—",
        Some(Verdict::Running) => "running",
        Some(Verdict::Passed) => "passed",
        Some(Verdict::Failed) => "failed",
        Some(Verdict::Error) => "error",
        Some(Verdict::Cancelled) => "cancelled",
        Some(Verdict::Skipped) => "skipped",
    }
}

fn hooks_word(trial: &TrialSummary) -> String {
    match trial.hooks_passed {
        None => "—".to_owned(),
        Some(true) => "passed".to_owned(),
        Some(false) => {
            let failed: Vec<&str> = trial
                .hooks
                .iter()
                .filter(|hook| {
                    !matches!(
                        hook.status,
                        HookStatus::Success | HookStatus::Skipped | HookStatus::Disabled
                    )
                })
                .map(|hook| hook.name.as_str())
                .collect();
            format!("failed: {}", failed.join(", "))
        }
    }
}

fn agreement_word(agreement: Agreement) -> &'static str {
    match agreement {
        Agreement::Single => "one trial",
        Agreement::Same => "same",
        Agreement::Different => "differ",
    }
}

fn duration_word(millis: u64) -> String {
    let seconds = millis / 1000;
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}
