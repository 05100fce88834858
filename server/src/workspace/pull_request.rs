//! Pull requests through GitHub's CLI, `gh`, as the user (their login, their hosts): the
//! session's branch is pushed first, then `gh pr create` opens the request and prints its
//! URL. Without `gh`, or when it fails (not logged in, no GitHub remote), the refusal says
//! what happened and the command to run by hand.
//!
//! `gh` runs git itself, in the user's repository: the settings that would make git run a
//! program are switched off for it too, through `GIT_CONFIG_*` (which outrank every config
//! file, like git's `-c`), so a repository's config cannot run code through `gh` either.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How long `gh pr create` may take (it talks to GitHub).
const GH_TIMEOUT: Duration = Duration::from_secs(120);

/// What `gh`'s git must never run, as `GIT_CONFIG_*` pairs.
const HARDENING: &[(&str, &str)] = &[
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("protocol.ext.allow", "never"),
    ("core.pager", "cat"),
    ("core.editor", "true"),
];

/// Why no pull request was opened, and what to do: a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declined(pub String);

/// The pull request to open: `head` into `base`.
pub struct PullRequest<'a> {
    /// The user's repository (its main work tree), where `gh` runs.
    pub repo: &'a Path,
    pub head: &'a str,
    pub base: &'a str,
    pub title: &'a str,
    pub body: &'a str,
}

impl PullRequest<'_> {
    /// The command a user would run to open it by hand.
    pub fn by_hand(&self) -> String {
        format!(
            "gh pr create --head {} --base {} --title {:?} --body <description>",
            self.head, self.base, self.title
        )
    }

    /// Opens it; its URL. A request that exists for the branch already is answered with its
    /// URL too.
    pub async fn open(&self) -> Result<String, Declined> {
        let mut command = tokio::process::Command::new("gh");
        command
            .args(["pr", "create", "--head", self.head, "--base", self.base])
            .args(["--title", self.title, "--body", self.body])
            .current_dir(self.repo)
            .env("GH_PROMPT_DISABLED", "1")
            .env("GH_NO_UPDATE_NOTIFIER", "1")
            .env("GH_SPINNER_DISABLED", "1")
            .env("NO_COLOR", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_COUNT", HARDENING.len().to_string())
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (index, (key, value)) in HARDENING.iter().enumerate() {
            command
                .env(format!("GIT_CONFIG_KEY_{index}"), key)
                .env(format!("GIT_CONFIG_VALUE_{index}"), value);
        }
        let output = match tokio::time::timeout(GH_TIMEOUT, command.output()).await {
            Err(_) => {
                return Err(Declined(format!(
                    "`gh pr create` did not finish in {} s; the branch {} is pushed, open the pull request with: {}",
                    GH_TIMEOUT.as_secs(),
                    self.head,
                    self.by_hand()
                )));
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Declined(format!(
                    "GitHub's CLI `gh` is not installed (https://cli.github.com); the branch {} is pushed to origin, open the pull request there or install gh, run `gh auth login`, then: {}",
                    self.head,
                    self.by_hand()
                )));
            }
            Ok(Err(error)) => {
                return Err(Declined(format!("cannot run `gh`: {error}")));
            }
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success()
            && let Some(url) = url_in(&stdout)
        {
            return Ok(url);
        }
        // gh refuses a second request for one branch, naming the first: that is the answer.
        if stderr.contains("already exists")
            && let Some(url) = url_in(&stderr)
        {
            return Ok(url);
        }
        let said = [stderr.trim(), stdout.trim()]
            .into_iter()
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let said: String = said.chars().take(600).collect();
        Err(Declined(format!(
            "`gh pr create` failed ({}): {said}. The branch {} is pushed; if gh is not logged in, run `gh auth login`, then: {}",
            output.status,
            self.head,
            self.by_hand()
        )))
    }
}

/// The last `https://` URL in `text`.
fn url_in(text: &str) -> Option<String> {
    text.split_whitespace()
        .rev()
        .find(|word| word.starts_with("https://") || word.starts_with("http://"))
        .map(|url| url.trim_end_matches(['.', ',', ')']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_last_one_gh_printed() {
        assert_eq!(
            url_in("Creating pull request for x into main\n\nhttps://github.com/o/r/pull/7\n")
                .as_deref(),
            Some("https://github.com/o/r/pull/7")
        );
        assert_eq!(
            url_in("a pull request for branch \"x\" into branch \"main\" already exists:\nhttps://github.com/o/r/pull/3.")
                .as_deref(),
            Some("https://github.com/o/r/pull/3")
        );
        assert_eq!(url_in("nothing here"), None);
    }
}
