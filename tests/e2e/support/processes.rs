//! Processes as the tests see them: by process group, read from `/proc`, never by matching
//! command lines (which would see every process on the machine).

use std::path::Path;
use std::time::Duration;

/// The process group of each process, from `/proc/<pid>/stat` (field 5, after the name).
fn process_groups() -> Vec<(i32, i32)> {
    let mut groups = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after_name) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            continue;
        };
        // state, ppid, pgrp
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue; // a zombie runs nothing
        }
        if let Some(Ok(group)) = fields.get(2).map(|field| field.parse::<i32>()) {
            groups.push((pid, group));
        }
    }
    groups
}

/// The live (not zombie) processes of group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    process_groups()
        .into_iter()
        .filter(|(_, group)| *group == pgid)
        .map(|(pid, _)| pid)
        .collect()
}

/// The process groups Tether has recorded as running, under `state` (its `TETHER_HOME`).
pub fn recorded_groups(state: &Path) -> Vec<i32> {
    let mut groups = Vec::new();
    for repo in std::fs::read_dir(state.join("repos"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for record in std::fs::read_dir(repo.path().join("processes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(Ok(pgid)) = record
                .path()
                .file_stem()
                .map(|stem| stem.to_string_lossy().parse::<i32>())
            {
                groups.push(pgid);
            }
        }
    }
    groups.sort_unstable();
    groups
}

/// Waits until `condition` holds, checking every 20 ms; false if it never did within `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The size of a file (0 when it does not exist).
pub fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path)
        .map(|metadata| metadata.len())
        .unwrap_or(0)
}
