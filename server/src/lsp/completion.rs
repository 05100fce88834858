//! Completion of `@` mentions (the repository's files, fuzzily) and `/` commands (Tether's,
//! the repository's, the session's ACP agent's) in what the user writes: in transcript
//! documents and the new-session draft (`textDocument/completion`), and in a client's own
//! message box (`tether/session/completions`). The file walk and matching run off the LSP
//! thread.

use std::path::Path;

use crate::api::{Completion, CompletionKind};
use crate::session::commands;
use crate::vocab::AgentCommand;
use crate::workspace::file_index::{FileIndex, best_matches};

/// The most files one completion offers.
const MAX_FILES: usize = 50;

/// The word being written at the end of `before` (the line up to the cursor), if it is one
/// completions are offered for: `@…` anywhere, `/…` as a line's first word.
pub fn word_at_end(before: &str) -> Option<&str> {
    let start = before.rfind(char::is_whitespace).map_or(0, |index| {
        index + before[index..].chars().next().map_or(1, char::len_utf8)
    });
    let word = &before[start..];
    match word.chars().next()? {
        '@' => Some(word),
        '/' if before[..start].trim().is_empty() && !word[1..].contains('/') => Some(word),
        _ => None,
    }
}

/// The completions for `word` (from [`word_at_end`]) in repository `repo`.
pub fn complete(
    index: &FileIndex,
    repo: &Path,
    agent_commands: &[AgentCommand],
    word: &str,
) -> Vec<Completion> {
    if let Some(query) = word.strip_prefix('@') {
        let files = index.files(repo);
        return best_matches(&files, query, MAX_FILES)
            .into_iter()
            .map(|path| Completion {
                label: format!("@{path}"),
                detail: String::new(),
                insert: format!("@{path} "),
                kind: CompletionKind::File,
            })
            .collect();
    }
    let Some(prefix) = word.strip_prefix('/') else {
        return Vec::new();
    };
    let mut all: Vec<(String, String)> = commands::BUILT_INS
        .iter()
        .map(|(name, takes, does)| {
            let detail = if takes.is_empty() {
                (*does).to_owned()
            } else {
                format!("{takes}: {does}")
            };
            ((*name).to_owned(), detail)
        })
        .collect();
    all.extend(
        commands::custom_commands(repo)
            .into_iter()
            .map(|command| (command.name, command.description)),
    );
    all.extend(
        agent_commands
            .iter()
            .map(|command| (command.name.clone(), command.description.clone())),
    );
    all.into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, detail)| Completion {
            label: format!("/{name}"),
            detail,
            insert: format!("/{name} "),
            kind: CompletionKind::Command,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_is_a_mention_anywhere_or_a_command_first() {
        assert_eq!(word_at_end("look at @src/ma"), Some("@src/ma"));
        assert_eq!(word_at_end("@"), Some("@"));
        assert_eq!(word_at_end("/rev"), Some("/rev"));
        assert_eq!(word_at_end("  /rev"), Some("/rev"));
        assert_eq!(
            word_at_end("please /rev"),
            None,
            "a command is the first word"
        );
        assert_eq!(word_at_end("/etc/hos"), None, "a path, not a command");
        assert_eq!(word_at_end("plain words"), None);
        assert_eq!(word_at_end("é @x"), Some("@x"));
    }
}
