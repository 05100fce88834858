//! Slash commands: a message that starts with `/name` is a command. Tether's own (`/review`,
//! `/verify`, `/loop N prompt`, `/compact`, `/model NAME`, `/diff`, `/apply`, `/stop`), the
//! repository's (`.tether/commands/<name>.md`: a prompt template whose `$ARGUMENTS` the rest
//! of the message fills, with an optional `description:` in front matter), or the session's
//! ACP agent's own (sent to it as written).

use std::path::Path;

/// Tether's own commands: name, what it takes, what it does.
pub const BUILT_INS: &[(&str, &str, &str)] = &[
    ("review", "", "review the session's changes now"),
    ("verify", "", "verify the session's changes now"),
    ("loop", "N PROMPT", "run PROMPT in up to N iterations"),
    (
        "compact",
        "",
        "summarize the conversation to free the context window",
    ),
    ("model", "NAME", "use model NAME for the next turns"),
    ("diff", "", "show the session's changes (in the editor)"),
    (
        "apply",
        "",
        "apply the session's changes to your files (in the editor)",
    ),
    ("stop", "", "stop the agent"),
];

/// The folder of a repository's own commands.
pub const COMMANDS_DIR: &str = ".tether/commands";
/// The most of a command file read.
const COMMAND_FILE_LIMIT: u64 = 64 * 1024;

/// A message split as a command: `/name rest` → `("name", "rest")`. Only a first word made of
/// letters, digits, `-` and `_` is one (`/etc/hosts is broken` is not a command).
pub fn parse(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    let rest = text.strip_prefix('/')?;
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let name = &rest[..end];
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':');
    valid.then(|| (name, rest[end..].trim()))
}

/// One of the repository's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomCommand {
    pub name: String,
    pub description: String,
    pub template: String,
}

impl CustomCommand {
    /// The prompt it makes with `arguments`.
    pub fn expand(&self, arguments: &str) -> String {
        if self.template.contains("$ARGUMENTS") {
            self.template.replace("$ARGUMENTS", arguments)
        } else if arguments.is_empty() {
            self.template.clone()
        } else {
            format!("{}\n\n{arguments}", self.template)
        }
    }
}

/// The repository's command `name`, if it has one.
pub fn custom_command(repo: &Path, name: &str) -> Option<CustomCommand> {
    custom_commands(repo)
        .into_iter()
        .find(|command| command.name == name)
}

/// The repository's commands (`.tether/commands/*.md`), by name. Files that cannot be read
/// as UTF-8 text, or are too large, are left out.
pub fn custom_commands(repo: &Path) -> Vec<CustomCommand> {
    let Ok(entries) = std::fs::read_dir(repo.join(COMMANDS_DIR)) else {
        return Vec::new();
    };
    let mut commands: Vec<CustomCommand> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".md")?.to_owned();
            parse(&format!("/{name}")).filter(|(parsed, _)| *parsed == name)?;
            // Only a regular file: never a link out of the repository.
            let metadata = std::fs::symlink_metadata(&path).ok()?;
            if !metadata.is_file() || metadata.len() > COMMAND_FILE_LIMIT {
                return None;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            let (description, template) = front_matter(&text);
            Some(CustomCommand {
                name,
                description,
                template: template.trim().to_owned(),
            })
        })
        .collect();
    commands.sort_by(|a, b| a.name.cmp(&b.name));
    commands
}

/// A command file's `description:` (from `---` front matter, else its first line) and body.
fn front_matter(text: &str) -> (String, &str) {
    if let Some(rest) = text.strip_prefix("---\n")
        && let Some(end) = rest.find("\n---")
    {
        let description = rest[..end]
            .lines()
            .find_map(|line| line.strip_prefix("description:"))
            .map(|value| value.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        let body = rest[end + 4..].trim_start_matches(|c| c != '\n');
        return (description, body);
    }
    let first = text.lines().next().unwrap_or_default();
    (first.trim_start_matches('#').trim().to_owned(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_first_words_with_a_slash() {
        assert_eq!(parse("/loop 3 fix it"), Some(("loop", "3 fix it")));
        assert_eq!(parse("  /review"), Some(("review", "")));
        assert_eq!(parse("/etc/hosts is broken"), None);
        assert_eq!(parse("please /review"), None);
        assert_eq!(parse("/"), None);
        assert_eq!(parse("/9lives"), None);
    }

    #[test]
    fn custom_commands_come_from_markdown_files_with_front_matter() {
        let repo = tempfile::tempdir().expect("a temp dir");
        let dir = repo.path().join(COMMANDS_DIR);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("fix-issue.md"),
            "---\ndescription: \"Fix a GitHub issue\"\n---\nFix issue #$ARGUMENTS and add a test.\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("explain.md"),
            "# Explain the code\nExplain it simply.\n",
        )
        .expect("write");
        std::fs::write(dir.join("not a name.md"), "x").expect("write");
        // A link out of the repository is no command: its target is not read.
        let outside = tempfile::tempdir().expect("another");
        std::fs::write(outside.path().join("secret.md"), "the key is 42").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret.md"), dir.join("leak.md"))
            .expect("link");
        let commands = custom_commands(repo.path());
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["explain", "fix-issue"]);
        assert_eq!(commands[1].description, "Fix a GitHub issue");
        assert_eq!(commands[1].expand("42"), "Fix issue #42 and add a test.");
        assert_eq!(commands[0].description, "Explain the code");
        assert_eq!(
            commands[0].expand("main.rs"),
            "# Explain the code\nExplain it simply.\n\nmain.rs"
        );
    }
}
