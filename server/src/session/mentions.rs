//! `@` mentions in a prompt: `@path` attaches that file of the repository, `@path:10-20`
//! those lines of it (as a text excerpt). A word after `@` that names no file is left as it
//! is (an email address, a handle); one that reaches outside the repository is refused.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;

use crate::vocab::{AttachmentSource, mime_type_of};

/// One mention: its path as written and its lines, if it named some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub path: String,
    pub lines: Option<(u32, u32)>,
}

/// The mentions in `text`: `@` at the start or after whitespace, then a path (and
/// `:first-last` or `:line`), up to whitespace; trailing punctuation is not part of it.
pub fn mentions(text: &str) -> Vec<Mention> {
    let mut found = Vec::new();
    for word in text.split_whitespace() {
        let Some(rest) = word.strip_prefix('@') else {
            continue;
        };
        let rest = rest.trim_end_matches(['.', ',', ';', ')', '!', '?', '"', '\'']);
        if rest.is_empty() {
            continue;
        }
        let (path, lines) = match rest.rsplit_once(':') {
            Some((path, range)) if !path.is_empty() => match parse_lines(range) {
                Some(lines) => (path, Some(lines)),
                None => (rest, None),
            },
            _ => (rest, None),
        };
        found.push(Mention {
            path: path.to_owned(),
            lines,
        });
    }
    found
}

fn parse_lines(range: &str) -> Option<(u32, u32)> {
    let (first, last) = range.split_once('-').unwrap_or((range, range));
    let (first, last) = (first.parse::<u32>().ok()?, last.parse::<u32>().ok()?);
    (first >= 1 && last >= first).then_some((first, last))
}

/// Why a mention cannot be taken.
#[derive(Debug, PartialEq, Eq)]
pub struct OutsideRepository(pub String);

impl std::fmt::Display for OutsideRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "@{} is outside the repository; mention files of the repository only",
            self.0
        )
    }
}

/// The attachments `text`'s mentions make, reading the files under `repo`. A mention that
/// names no file of the repository is skipped; one outside it is an error.
pub fn attachments_of(repo: &Path, text: &str) -> Result<Vec<AttachmentSource>, OutsideRepository> {
    let mut attachments = Vec::new();
    let found = mentions(text);
    if found.is_empty() {
        return Ok(attachments);
    }
    let Ok(real_repo) = repo.canonicalize() else {
        return Ok(attachments);
    };
    for mention in found {
        let Some(relative) = inside(&mention.path) else {
            return Err(OutsideRepository(mention.path));
        };
        let path = repo.join(&relative);
        // Links are followed only to where they stay in the repository.
        let Ok(real) = path.canonicalize() else {
            continue;
        };
        if !real.starts_with(&real_repo) {
            return Err(OutsideRepository(mention.path));
        }
        if !real.is_file() {
            continue;
        }
        let name = relative.to_string_lossy().into_owned();
        match mention.lines {
            None => attachments.push(AttachmentSource {
                path: Some(real.to_string_lossy().into_owned()),
                name: Some(name.clone()),
                mime_type: mime_type_of(&name)
                    .or(Some("text/plain"))
                    .map(str::to_owned),
                ..Default::default()
            }),
            Some((first, last)) => {
                let Ok(text) = std::fs::read_to_string(&real) else {
                    continue;
                };
                let excerpt: Vec<&str> = text
                    .lines()
                    .skip(first as usize - 1)
                    .take((last - first + 1) as usize)
                    .collect();
                attachments.push(AttachmentSource {
                    data: Some(
                        base64::engine::general_purpose::STANDARD.encode(excerpt.join("\n")),
                    ),
                    mime_type: Some("text/plain".to_owned()),
                    name: Some(format!("{name}:{first}-{last}")),
                    ..Default::default()
                });
            }
        }
    }
    Ok(attachments)
}

/// `path` as a relative path that stays in the repository, if it is one.
fn inside(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    let mut kept = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => kept.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!kept.as_os_str().is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_words_that_start_with_an_at() {
        assert_eq!(
            mentions("look at @src/lib.rs:10-20, and @README.md. mail me@x.com @a:7"),
            [
                Mention {
                    path: "src/lib.rs".into(),
                    lines: Some((10, 20))
                },
                Mention {
                    path: "README.md".into(),
                    lines: None
                },
                Mention {
                    path: "a".into(),
                    lines: Some((7, 7))
                },
            ]
        );
        assert_eq!(mentions("@x:20-10")[0].path, "x:20-10", "not a range");
    }

    #[test]
    fn a_mention_outside_the_repository_is_refused_and_a_stranger_skipped() {
        let repo = tempfile::tempdir().expect("a temp dir");
        std::fs::write(repo.path().join("a.rs"), "one\ntwo\nthree\n").expect("write");
        let outside = tempfile::tempdir().expect("another");
        std::fs::write(outside.path().join("secret"), "key").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), repo.path().join("link"))
            .expect("link");
        for text in ["@../secret", "@/etc/passwd", "@link"] {
            assert!(attachments_of(repo.path(), text).is_err(), "{text}");
        }
        assert_eq!(attachments_of(repo.path(), "@nobody hi"), Ok(Vec::new()));
        let taken = attachments_of(repo.path(), "see @a.rs:2-3").expect("taken");
        assert_eq!(taken[0].name.as_deref(), Some("a.rs:2-3"));
        let excerpt = base64::engine::general_purpose::STANDARD
            .decode(taken[0].data.as_deref().expect("data"))
            .expect("base64");
        assert_eq!(excerpt, b"two\nthree");
    }
}
