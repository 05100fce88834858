//! Which files and hunks an apply carries, from its `files`, `hunks` and `reject`: a
//! path or hunk number the session's diff does not have is the client out of date, an
//! invalid-params error rather than something skipped quietly.

use std::collections::{BTreeSet, HashMap};

use tower_lsp_server::jsonrpc;

use crate::api::ApplyParams;
use crate::workspace::FileDiff;

/// The files to carry, each with its selected hunks (`None`: all).
pub(super) fn select(
    params: &ApplyParams,
    diff: &[FileDiff],
) -> jsonrpc::Result<HashMap<String, Option<BTreeSet<usize>>>> {
    let known = |path: &str| diff.iter().any(|file| file.path == path);
    let hunk_count = |path: &str| {
        diff.iter()
            .find(|file| file.path == path)
            .map_or(0, |file| {
                file.patch
                    .lines()
                    .filter(|line| line.starts_with("@@ "))
                    .count()
            })
    };
    // Hunk numbers must be the file's: a hunk the user picked that is not there is a
    // client out of date, not something to skip quietly.
    let check_hunks = |field: &str, path: &str, indices: &BTreeSet<usize>| {
        let count = hunk_count(path);
        match indices.iter().find(|index| **index >= count) {
            Some(index) => Err(jsonrpc::Error::invalid_params(format!(
                "invalid params for tether/session/apply: `{field}.{path}`: hunk {index} is not one of its {count} hunk(s)"
            ))),
            None => Ok(()),
        }
    };
    let mut wanted = HashMap::new();
    if let Some(files) = &params.files {
        for (index, path) in files.iter().enumerate() {
            if !known(path) {
                return Err(jsonrpc::Error::invalid_params(format!(
                    "invalid params for tether/session/apply: `files[{index}]`: {path:?} is not among the session's changed files"
                )));
            }
            wanted.insert(path.clone(), None);
        }
    }
    if let Some(hunks) = &params.hunks {
        for (path, indices) in hunks {
            if !known(path) {
                return Err(jsonrpc::Error::invalid_params(format!(
                    "invalid params for tether/session/apply: `hunks.{path}`: not among the session's changed files"
                )));
            }
            check_hunks("hunks", path, indices)?;
            wanted.insert(path.clone(), Some(indices.clone()));
        }
    }
    if params.files.is_none() && params.hunks.is_none() {
        for file in diff {
            wanted.insert(file.path.clone(), None);
        }
    }
    for (path, rejected) in params.reject.iter().flatten() {
        if !known(path) {
            return Err(jsonrpc::Error::invalid_params(format!(
                "invalid params for tether/session/apply: `reject.{path}`: not among the session's changed files"
            )));
        }
        check_hunks("reject", path, rejected)?;
        let both = params
            .hunks
            .as_ref()
            .and_then(|hunks| hunks.get(path))
            .and_then(|selected| selected.intersection(rejected).next());
        if let Some(index) = both {
            return Err(jsonrpc::Error::invalid_params(format!(
                "invalid params for tether/session/apply: `reject.{path}`: hunk {index} is in `hunks` too"
            )));
        }
        let selected = match wanted.remove(path) {
            Some(None) => (0..hunk_count(path)).collect(),
            Some(Some(selected)) => selected,
            None => BTreeSet::new(),
        };
        wanted.insert(path.clone(), Some(&selected - rejected));
    }
    Ok(wanted)
}
