//! The transcript document: a session as a Markdown file the user can also write in, so that
//! chat works in any editor. Text under its last `## Reply` heading, saved, is a follow-up;
//! checked boxes (or an `Answer:` line) under a waiting question answer it.
//!
//! Also the draft document, whose `## Prompt`, saved, starts a new session.

use std::fmt::Write as _;

use super::{
    Answer, Event, EventRecord, Finding, FindingSource, Item, ItemPhase, QuestionKind, SessionInfo,
    export,
};

/// The heading the user writes a follow-up under.
pub const REPLY_HEADING: &str = "## Reply";
/// The heading of a draft's prompt.
pub const PROMPT_HEADING: &str = "## Prompt";
/// The draft's line that names the session's provider.
const PROVIDER_LABEL: &str = "Provider:";
const CONTEXT_HEADING: &str = "## Context";
const QUESTION_MARKER: &str = "<!-- tether:question ";
/// The marker that makes a reply an edit of an earlier message.
const EDIT_MARKER: &str = "<!-- tether:edit ";

/// Where a session's transcript lives: `<repo>/.tether/sessions/<name>.md`.
pub fn path(repo: &std::path::Path, name: &str) -> std::path::PathBuf {
    repo.join(".tether/sessions").join(format!("{name}.md"))
}

/// The session as its transcript document shows it, ending with an empty `## Reply`.
/// `changes`: its diff, listed file by file and hunk by hunk (given once a turn is over).
pub fn render(
    info: &SessionInfo,
    events: &[EventRecord],
    open_questions: &[Item],
    findings: &[(FindingSource, Finding)],
    changes: &[crate::workspace::FileDiff],
) -> String {
    let mut out = export::markdown(info, events, true);

    // The message being streamed right now.
    let mut streaming: Vec<(&str, String)> = Vec::new();
    for record in events {
        match &record.event {
            Event::Item {
                phase: ItemPhase::Started,
                item: Item::Message { id, text, .. },
            } => streaming.push((id, text.clone())),
            Event::Delta { item_id, text } => {
                if let Some((_, so_far)) = streaming.iter_mut().find(|(id, _)| id == item_id) {
                    so_far.push_str(text);
                }
            }
            Event::Item {
                phase: ItemPhase::Completed,
                item,
            } => streaming.retain(|(id, _)| *id != item.id()),
            _ => {}
        }
    }
    for (_, text) in streaming.iter().filter(|(_, text)| !text.trim().is_empty()) {
        let _ = writeln!(out, "\n## Agent (writing…)\n\n{}", text.trim_end());
    }

    write_changes(&mut out, &info.name, changes);

    let unplaced: Vec<&(FindingSource, Finding)> = findings
        .iter()
        .filter(|(_, finding)| finding.file.is_none())
        .collect();
    if !unplaced.is_empty() {
        let _ = writeln!(out, "\n## Findings\n");
        for (source, finding) in unplaced {
            let from = match source {
                FindingSource::Review => "review",
                FindingSource::Verification => "verification",
            };
            let _ = writeln!(
                out,
                "- **{}** ({from}, {:?}, {}) {}",
                finding.title,
                finding.severity,
                finding.category,
                finding.body.trim()
            );
        }
    }

    for item in open_questions {
        write_question(&mut out, item);
    }
    let _ = write!(out, "\n{REPLY_HEADING}\n\n");
    out
}

/// `## Changes`: each changed file, its hunks (numbered as `tether/session/apply` takes them)
/// and where each starts in the base, and how to take or refuse them from any editor.
fn write_changes(out: &mut String, name: &str, changes: &[crate::workspace::FileDiff]) {
    if changes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Changes\n\nEach hunk has code actions on its lines in your file: `tether: {name}: Apply hunk k of <file>` and `Reject hunk k` (the agent is told). `tether: Apply changes of {name}` takes them all.\n"
    );
    for file in changes {
        let _ = write!(
            out,
            "- `{}` ({}, +{} −{})",
            file.path, file.status, file.additions, file.deletions
        );
        if file.binary {
            let _ = writeln!(out, ": binary");
            continue;
        }
        let base = match file.status {
            "added" => "",
            _ => file.base_text.as_deref().unwrap_or_default(),
        };
        let new = file.new_text.as_deref().unwrap_or_default();
        let runs = crate::workspace::edits::changed_ranges(base, new);
        let listed: Vec<String> = crate::workspace::edits::hunks(base, new)
            .iter()
            .map(|hunk| match file.status {
                "added" => format!("hunk {} (the new file)", hunk.index),
                "deleted" => format!("hunk {} (the whole file)", hunk.index),
                _ => {
                    // Where its first change is, in the base's lines (from 1).
                    let from = hunk.old_start.saturating_sub(1);
                    let line = runs
                        .iter()
                        .map(|(old, _)| old.start)
                        .find(|start| *start >= from)
                        .map_or(hunk.old_start, |start| start + 1);
                    format!("hunk {} (line {line})", hunk.index)
                }
            })
            .collect();
        let _ = writeln!(out, ": {}", listed.join(", "));
    }
}

/// The user message whose section of a transcript holds line `line` (from 0): its item id
/// and its text.
pub fn message_at(text: &str, line: usize) -> Option<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let heading = lines
        .get(..=line.min(lines.len().checked_sub(1)?))?
        .iter()
        .rposition(|line| line.starts_with("## "))?;
    let id = lines[heading]
        .split_once(export::MESSAGE_MARKER)?
        .1
        .strip_suffix(" -->")?
        .to_owned();
    let body: Vec<&str> = lines[heading + 1..]
        .iter()
        .take_while(|line| !line.starts_with("## ") && !line.starts_with("<details>"))
        .copied()
        .collect();
    Some((id, body.join("\n").trim().to_owned()))
}

/// The queued message on line `line` (from 0) of a transcript: its item id.
pub fn queued_at(text: &str, line: usize) -> Option<String> {
    let line = text.lines().nth(line)?;
    let id = line
        .split_once(export::QUEUED_MARKER)?
        .1
        .strip_suffix(" -->")?;
    Some(id.to_owned())
}

/// What to write under `## Reply` to edit message `item_id`, starting from `text`.
pub fn edit_reply(item_id: &str, text: &str) -> String {
    format!("{EDIT_MARKER}{item_id} -->\n{}\n", text.trim_end())
}

/// A reply that edits an earlier message (it starts with the edit marker): the message's
/// item id and its new text.
pub fn written_edit(reply: &str) -> Option<(String, String)> {
    let rest = reply.trim_start().strip_prefix(EDIT_MARKER)?;
    let (id, text) = rest.split_once(" -->")?;
    Some((id.trim().to_owned(), text.trim().to_owned()))
}

/// The marker of a line that attaches a file to a reply or a draft's prompt.
const ATTACH_LABEL: &str = "Attach:";

/// A reply or prompt without its `Attach: <path>` lines, and the files they name (paths
/// relative to the repository, or absolute).
pub fn attachment_lines(text: &str) -> (String, Vec<crate::vocab::AttachmentSource>) {
    let mut kept = Vec::new();
    let mut attachments = Vec::new();
    for line in text.lines() {
        match line.trim().strip_prefix(ATTACH_LABEL).map(str::trim) {
            Some(path) if !path.is_empty() => attachments.push(crate::vocab::AttachmentSource {
                path: Some(path.trim_matches('`').to_owned()),
                ..Default::default()
            }),
            _ => kept.push(line),
        }
    }
    (kept.join("\n").trim().to_owned(), attachments)
}

/// A waiting question, with a box per option and an `Answer:` line where text may answer.
fn write_question(out: &mut String, item: &Item) {
    let Item::Question { id, questions, .. } = item else {
        return;
    };
    let _ = writeln!(
        out,
        "\n## Waiting for your answer\n\nCheck boxes or write after `Answer:`, then save.\n\n{QUESTION_MARKER}{id} -->"
    );
    for (index, question) in questions.iter().enumerate() {
        let _ = writeln!(out, "\n**{}. {}**\n", index + 1, question.prompt.trim());
        for option in &question.options {
            let _ = writeln!(out, "- [ ] {option}");
        }
        if question.kind != QuestionKind::Multi {
            let _ = writeln!(out, "Answer: ");
        }
    }
}

/// Splits a transcript at its last `## Reply` heading: the text above (heading included) and
/// what the user wrote under it.
pub fn split_reply(text: &str) -> (&str, &str) {
    match find_heading(text, REPLY_HEADING) {
        Some(end_of_heading) => text.split_at(end_of_heading),
        None => (text, ""),
    }
}

/// The byte offset just after the last line that is exactly `heading`.
fn find_heading(text: &str, heading: &str) -> Option<usize> {
    let mut found = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == heading {
            found = Some(offset + line.len());
        }
        offset += line.len();
    }
    found
}

/// The answers written under a waiting question: `(question item id, one answer per
/// question)`, when every question has one.
pub fn written_answers(text: &str, open_questions: &[Item]) -> Option<(String, Vec<Answer>)> {
    let (above, _) = split_reply(text);
    for item in open_questions {
        let Item::Question { id, questions, .. } = item else {
            continue;
        };
        let marker = format!("{QUESTION_MARKER}{id} -->");
        let Some(start) = above.find(&marker) else {
            continue;
        };
        let section = &above[start + marker.len()..];
        // One block per question, each starting at its bold "**n. " line.
        let mut blocks: Vec<Vec<&str>> = Vec::new();
        for line in section.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("**") && trimmed.ends_with("**") {
                blocks.push(Vec::new());
            } else if let Some(block) = blocks.last_mut() {
                block.push(trimmed);
            }
        }
        if blocks.len() != questions.len() {
            return None;
        }
        let mut answers = Vec::new();
        for (question, block) in questions.iter().zip(&blocks) {
            let checked: Vec<String> = block
                .iter()
                .filter_map(|line| {
                    line.strip_prefix("- [x] ")
                        .or_else(|| line.strip_prefix("- [X] "))
                })
                .map(|option| option.trim().to_owned())
                .filter(|option| question.options.contains(option))
                .collect();
            let written = block
                .iter()
                .find_map(|line| line.strip_prefix("Answer:"))
                .map(str::trim)
                .filter(|answer| !answer.is_empty());
            let answer = match question.kind {
                QuestionKind::Multi if !checked.is_empty() => Answer::Choices(checked),
                QuestionKind::Single if checked.len() == 1 => Answer::Text(checked[0].clone()),
                QuestionKind::Single | QuestionKind::Text => Answer::Text(written?.to_owned()),
                QuestionKind::Multi => return None,
            };
            answers.push(answer);
        }
        return Some((id.clone(), answers));
    }
    None
}

/// The draft a new session starts from; `context` is quoted code the session is about.
pub fn render_draft(context: Option<&str>) -> String {
    let mut out = String::from(
        "# New tether session\n\nWrite what the session should do under \"## Prompt\" and save this file to start it.\n\n",
    );
    let _ = write!(
        out,
        "{PROVIDER_LABEL} default\n(or an agent: claude, codex, gemini, opencode, qwen, goose; or a provider of your settings; `:lsp-workspace-command tether.providers` lists them; several, comma-separated, race as a task: `claude, codex, default`)\n"
    );
    if let Some(context) = context {
        let _ = write!(out, "\n{CONTEXT_HEADING}\n\n{}\n", context.trim_end());
    }
    let _ = write!(out, "\n{PROMPT_HEADING}\n\n");
    out
}

/// The providers a saved draft names on its `Provider:` line, before its prompt, comma
/// separated (`None`: the default). One starts a session; several race as a task's trials.
pub fn draft_providers(text: &str) -> Vec<Option<String>> {
    // Up to the prompt's heading (the last, as `draft_prompt` takes it).
    let end = find_heading(text, PROMPT_HEADING).unwrap_or(text.len());
    let Some(value) = text[..end]
        .lines()
        .find_map(|line| line.trim().strip_prefix(PROVIDER_LABEL))
    else {
        return vec![None];
    };
    let named: Vec<Option<String>> = value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| (name != "default").then(|| name.to_owned()))
        .collect();
    if named.is_empty() { vec![None] } else { named }
}

/// The prompt a saved draft asks for: what is under `## Prompt`, with the context before it.
pub fn draft_prompt(text: &str) -> Option<String> {
    let prompt_start = find_heading(text, PROMPT_HEADING)?;
    let prompt = text[prompt_start..].trim();
    if prompt.is_empty() {
        return None;
    }
    let context = find_heading(&text[..prompt_start], CONTEXT_HEADING).map(|context_start| {
        let context_end = text[..prompt_start]
            .rfind(PROMPT_HEADING)
            .unwrap_or(prompt_start);
        text[context_start..context_end].trim()
    });
    Some(match context {
        Some(context) if !context.is_empty() => format!("{prompt}\n\n{context}"),
        _ => prompt.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Question;

    fn question(kind: QuestionKind, options: &[&str]) -> Question {
        Question {
            id: "q".to_owned(),
            prompt: "Which?".to_owned(),
            kind,
            options: options.iter().map(|option| (*option).to_owned()).collect(),
        }
    }

    #[test]
    fn a_draft_names_its_provider_or_leaves_the_default() {
        let draft = render_draft(None);
        assert_eq!(draft_providers(&draft), [None]);
        let chosen = draft.replace("Provider: default", "Provider: claude");
        assert_eq!(draft_providers(&chosen), [Some("claude".to_owned())]);
        // Several race as a task; `default` is the default provider.
        let race = draft.replace("Provider: default", "Provider: claude, default ,codex,");
        assert_eq!(
            draft_providers(&race),
            [Some("claude".to_owned()), None, Some("codex".to_owned())]
        );
        // A "Provider:" line in the prompt is the prompt's.
        let in_prompt = format!("{draft}Provider: codex is what I use\n");
        assert_eq!(draft_providers(&in_prompt), [None]);
        assert_eq!(
            draft_prompt(&in_prompt).as_deref(),
            Some("Provider: codex is what I use")
        );
    }

    #[test]
    fn the_reply_is_what_follows_the_last_reply_heading() {
        let text = "# t\n\n## Agent\n\n## Reply\nquoted\n\n## Reply\n\nplease go on\n";
        let (above, reply) = split_reply(text);
        assert_eq!(reply.trim(), "please go on");
        assert!(above.ends_with("## Reply\n"));
        assert_eq!(split_reply("no heading").1, "");
    }

    #[test]
    fn checked_boxes_and_answer_lines_answer_the_waiting_question() {
        let item = Item::Question {
            id: "item-1".to_owned(),
            questions: vec![
                question(QuestionKind::Multi, &["red", "green", "blue"]),
                question(QuestionKind::Single, &["yes", "no"]),
                question(QuestionKind::Text, &[]),
            ],
            answers: None,
        };
        let mut rendered = String::from("# t\n");
        rendered.push_str(&render_questions_only(&item));
        assert_eq!(
            written_answers(&rendered, std::slice::from_ref(&item)),
            None
        );

        let answered = rendered
            .replacen("- [ ] red", "- [x] red", 1)
            .replacen("- [ ] blue", "- [X] blue", 1)
            .replacen("- [ ] no", "- [x] no", 1)
            .replacen("Answer: \n\n", "Answer: because\n\n", 1);
        // The single-choice question has its own (empty) Answer line first.
        let answered = {
            let last = answered.rfind("Answer: ").expect("an answer line");
            let mut text = answered.clone();
            text.replace_range(last..last + "Answer: ".len(), "Answer: because");
            text
        };
        assert_eq!(
            written_answers(&answered, &[item]),
            Some((
                "item-1".to_owned(),
                vec![
                    Answer::Choices(vec!["red".to_owned(), "blue".to_owned()]),
                    Answer::Text("no".to_owned()),
                    Answer::Text("because".to_owned()),
                ]
            ))
        );
    }

    fn render_questions_only(item: &Item) -> String {
        let mut out = String::new();
        write_question(&mut out, item);
        out.push_str("\n## Reply\n\n");
        out
    }

    #[test]
    fn a_user_message_and_a_queued_one_are_found_by_line_and_an_edit_reads_back() {
        let text = "# t\n\n## User <!-- tether:message m1 -->\n\nfix it\nplease\n\n## Agent\n\ndone\n\n\
                    ## Queued (not delivered yet)\n\n- and more <!-- tether:queued q1 -->\n\n## Reply\n\n";
        let expected = Some(("m1".to_owned(), "fix it\nplease".to_owned()));
        assert_eq!(message_at(text, 2), expected);
        assert_eq!(message_at(text, 5), expected);
        assert_eq!(
            message_at(text, 9),
            None,
            "an agent reply is no user message"
        );
        assert_eq!(message_at(text, 0), None);
        assert_eq!(queued_at(text, 13).as_deref(), Some("q1"));
        assert_eq!(queued_at(text, 12), None);
        let reply = edit_reply("m1", "fix it\nnow");
        assert_eq!(
            written_edit(&format!("\n{reply}")),
            Some(("m1".to_owned(), "fix it\nnow".to_owned()))
        );
        assert_eq!(written_edit("just a reply"), None);
    }

    #[test]
    fn a_saved_draft_is_a_prompt_with_its_context() {
        let empty = render_draft(Some("```rust\nfn f() {}\n```"));
        assert_eq!(draft_prompt(&empty), None, "nothing written yet");
        let written = format!("{empty}make it async\n");
        assert_eq!(
            draft_prompt(&written).as_deref(),
            Some("make it async\n\n```rust\nfn f() {}\n```")
        );
        let plain = format!("{}fix the tests\n", render_draft(None));
        assert_eq!(draft_prompt(&plain).as_deref(), Some("fix the tests"));
    }
}
