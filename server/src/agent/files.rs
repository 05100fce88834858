//! The file tools: read, list, search, edit, write, delete, move. Each names a path the
//! model chose; [`super::tools::resolve`] checks it lexically (relative, not above the root,
//! not `.git`) and [`Beneath`] resolves and opens it in one step beneath the worktree, so a
//! command racing in the background cannot swap a folder for a link in between.

use std::path::Path;

use serde::Deserialize;

use super::context::{FileChange, ToolContext, ToolOutcome, resolve};
use crate::beneath::{Beneath, FileError};

/// At most this much of a file is returned by one read.
const READ_LIMIT: usize = 200_000;
/// The largest file read, edited or searched.
const FILE_SIZE_LIMIT: u64 = 64 * 1024 * 1024;
/// Files larger than this are skipped by search.
const SEARCH_FILE_LIMIT: u64 = 8 * 1024 * 1024;
/// At most this many search matches are returned.
const SEARCH_LIMIT: usize = 200;
/// At most this many files are looked at by one search.
const SEARCH_FILES_LIMIT: usize = 100_000;

fn open_worktree(context: &ToolContext) -> Result<Beneath, String> {
    Beneath::open(context.worktree()).map_err(|error| {
        format!(
            "cannot open the worktree {}: {error}",
            context.worktree().display()
        )
    })
}

fn text_of(bytes: Vec<u8>, path: &str) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))
}

/// Line counts of the change from `before` to `after` in `path`.
pub(super) fn count_change(path: &str, before: &str, after: &str) -> FileChange {
    let diff = similar::TextDiff::from_lines(before, after);
    let (mut additions, mut deletions) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => additions += 1,
            similar::ChangeTag::Delete => deletions += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    FileChange {
        path: path.to_owned(),
        additions,
        deletions,
    }
}

fn written(relative: &Path, before: &str, after: &str, message: String) -> ToolOutcome {
    ToolOutcome {
        file_changes: vec![count_change(&relative.to_string_lossy(), before, after)],
        ..ToolOutcome::ok(message)
    }
}

#[derive(Deserialize)]
pub(super) struct ReadArgs {
    path: String,
    start_line: Option<usize>,
    end_line: Option<usize>,
}

pub(super) fn read_file(context: &ToolContext, args: ReadArgs) -> Result<ToolOutcome, String> {
    let relative = resolve(&args.path)?;
    let bytes = open_worktree(context)?
        .read(&relative, FILE_SIZE_LIMIT)
        .map_err(|error| format!("cannot read: {}", error.describe(&args.path)))?;
    let text = text_of(bytes, &args.path)?;
    let start = args.start_line.unwrap_or(1).max(1);
    let end = args.end_line.unwrap_or(usize::MAX);
    let mut out = String::new();
    for line in text
        .lines()
        .skip(start - 1)
        .take(end.saturating_sub(start).saturating_add(1))
    {
        if out.len() + line.len() > READ_LIMIT {
            out.push_str("\n[… cut: read a smaller range]");
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(ToolOutcome::ok(out))
}

#[derive(Deserialize)]
pub(super) struct ListArgs {
    #[serde(default)]
    path: Option<String>,
}

pub(super) fn list_directory(context: &ToolContext, args: ListArgs) -> Result<ToolOutcome, String> {
    let (relative, shown) = match args.path.as_deref() {
        None | Some("") | Some(".") => (Default::default(), ".".to_owned()),
        Some(path) => (resolve(path)?, path.to_owned()),
    };
    let at_root = relative.as_os_str().is_empty();
    let entries = open_worktree(context)?
        .list(&relative)
        .map_err(|error| format!("cannot list: {}", error.describe(&shown)))?;
    let mut names: Vec<String> = entries
        .into_iter()
        .filter(|(name, _)| !(at_root && name == ".git"))
        .map(|(mut name, is_folder)| {
            if is_folder {
                name.push('/');
            }
            name
        })
        .collect();
    names.sort();
    Ok(ToolOutcome::ok(names.join("\n")))
}

#[derive(Deserialize)]
pub(super) struct SearchArgs {
    pattern: String,
    #[serde(default)]
    path: Option<String>,
}

/// Walks the worktree by name (the `ignore` crate honours .gitignore), but reads every file
/// through [`Beneath`]: a folder swapped for a link mid-walk yields only refused reads.
pub(super) fn search(context: &ToolContext, args: SearchArgs) -> Result<ToolOutcome, String> {
    let regex = regex::Regex::new(&args.pattern)
        .map_err(|error| format!("invalid regular expression: {error}"))?;
    let start = match args.path.as_deref() {
        None | Some("") | Some(".") => Default::default(),
        Some(path) => resolve(path)?,
    };
    let beneath = open_worktree(context)?;
    let mut matches = Vec::new();
    let walker = ignore::WalkBuilder::new(context.worktree().join(&start))
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    'files: for entry in walker.flatten().take(SEARCH_FILES_LIMIT) {
        if !entry.file_type().is_some_and(|kind| kind.is_file()) {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(context.worktree()) else {
            continue;
        };
        let Ok(bytes) = beneath.read(relative, SEARCH_FILE_LIMIT) else {
            continue; // outside, too large, gone, or not a file any more
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue; // binary
        };
        for (number, line) in text.lines().enumerate() {
            if regex.is_match(line) {
                matches.push(format!(
                    "{}:{}: {}",
                    relative.display(),
                    number + 1,
                    line.trim_end()
                ));
                if matches.len() >= SEARCH_LIMIT {
                    matches.push(format!(
                        "[… more than {SEARCH_LIMIT} matches; narrow the search]"
                    ));
                    break 'files;
                }
            }
        }
    }
    matches.sort();
    if matches.is_empty() {
        return Ok(ToolOutcome::ok("no matches"));
    }
    Ok(ToolOutcome::ok(matches.join("\n")))
}

#[derive(Deserialize)]
pub(super) struct EditArgs {
    path: String,
    old_string: String,
    new_string: String,
}

pub(super) fn edit_file(context: &ToolContext, args: EditArgs) -> Result<ToolOutcome, String> {
    let relative = resolve(&args.path)?;
    let beneath = open_worktree(context)?;
    let before = beneath
        .read(&relative, FILE_SIZE_LIMIT)
        .map_err(|error| format!("cannot read: {}", error.describe(&args.path)))?;
    let before = text_of(before, &args.path)?;
    if args.old_string.is_empty() {
        return Err("old_string is empty; use write_file to create a file".to_owned());
    }
    match before.matches(&args.old_string).count() {
        0 => Err(format!(
            "old_string was not found in {}; read the file and copy the text exactly",
            args.path
        )),
        1 => {
            let after = before.replacen(&args.old_string, &args.new_string, 1);
            beneath
                .write(&relative, after.as_bytes(), FILE_SIZE_LIMIT)
                .map_err(|error| format!("cannot write: {}", error.describe(&args.path)))?;
            Ok(written(
                &relative,
                &before,
                &after,
                format!("edited {}", args.path),
            ))
        }
        count => Err(format!(
            "old_string occurs {count} times in {}; include more context so it is unique",
            args.path
        )),
    }
}

#[derive(Deserialize)]
pub(super) struct WriteArgs {
    path: String,
    content: String,
}

pub(super) fn write_file(context: &ToolContext, args: WriteArgs) -> Result<ToolOutcome, String> {
    let relative = resolve(&args.path)?;
    let before = open_worktree(context)?
        .write(&relative, args.content.as_bytes(), FILE_SIZE_LIMIT)
        .map_err(|error| format!("cannot write: {}", error.describe(&args.path)))?;
    let before = String::from_utf8(before).unwrap_or_default();
    Ok(written(
        &relative,
        &before,
        &args.content,
        format!("wrote {}", args.path),
    ))
}

#[derive(Deserialize)]
pub(super) struct DeleteArgs {
    path: String,
}

pub(super) fn delete_file(context: &ToolContext, args: DeleteArgs) -> Result<ToolOutcome, String> {
    let relative = resolve(&args.path)?;
    let beneath = open_worktree(context)?;
    let before = match beneath.read(&relative, FILE_SIZE_LIMIT) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Err(FileError::NotFound) => {
            return Err(format!("cannot delete {}: it does not exist", args.path));
        }
        Err(_) => String::new(),
    };
    beneath
        .remove(&relative)
        .map_err(|error| format!("cannot delete: {}", error.describe(&args.path)))?;
    Ok(written(
        &relative,
        &before,
        "",
        format!("deleted {}", args.path),
    ))
}

#[derive(Deserialize)]
pub(super) struct MoveArgs {
    from: String,
    to: String,
}

pub(super) fn move_file(context: &ToolContext, args: MoveArgs) -> Result<ToolOutcome, String> {
    let from = resolve(&args.from)?;
    let to = resolve(&args.to)?;
    let beneath = open_worktree(context)?;
    if beneath.exists(&to) {
        return Err(format!("{} already exists", args.to));
    }
    let content = beneath
        .read(&from, FILE_SIZE_LIMIT)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    beneath.rename(&from, &to).map_err(|error| match error {
        FileError::Exists => format!("{} already exists", args.to),
        other => format!(
            "cannot move {} to {}: {}",
            args.from,
            args.to,
            other.describe(&args.from)
        ),
    })?;
    Ok(ToolOutcome {
        file_changes: vec![
            count_change(&from.to_string_lossy(), &content, ""),
            count_change(&to.to_string_lossy(), "", &content),
        ],
        ..ToolOutcome::ok(format!("moved {} to {}", args.from, args.to))
    })
}
