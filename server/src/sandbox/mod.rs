//! The confinement of every program Tether runs on a session's behalf: the agent's
//! commands and lifecycle hooks (both execute what the agent wrote: tests, build scripts).
//!
//! On Linux a command runs
//! - under Landlock ([`landlock`]): it reads everywhere but writes only in the session's
//!   worktree and temp dir, makes no device nodes, connects to no abstract Unix socket and
//!   signals no process outside its own sandbox, and (with `network = false`) makes no TCP
//!   connection;
//! - under a seccomp filter ([`seccomp`]): no `setsid`/`setpgid`, so it cannot leave its
//!   process group, and (with `network = false`) no socket but a Unix one, UDP and raw
//!   sockets included;
//! - without capabilities, when Tether itself has some (running as root);
//! - in a process group led by a holder ([`groups`]): a small process, outside the sandbox,
//!   that reaps everything the command leaves behind and kills the whole group when Tether
//!   goes away, even by `kill -9`. Tether ends a session's groups when its turn ends, when it
//!   is deleted and at shutdown, and records each running group on disk so that a restarted
//!   Tether ends those a crash left.
//!
//! This module never decides *what* runs (the agent and hooks do) and knows nothing of
//! sessions beyond an owner name.

mod fork;
pub mod groups;
mod landlock;
mod seccomp;

use std::path::PathBuf;
use std::sync::Arc;

pub use groups::{Spawned, end_leftovers, end_owner};
pub use landlock::kernel_abi;

pub use crate::config::SandboxMode;

/// Where and under which rules a session's programs run.
#[derive(Debug, Clone)]
pub struct Jail {
    pub mode: SandboxMode,
    /// The session's worktree: programs may write there.
    pub worktree: PathBuf,
    /// The session's own temp dir (`TMPDIR`): programs may write there too.
    pub temp_dir: PathBuf,
    /// More folders they may write (an agent's own state folders); none for commands.
    pub writable: Vec<PathBuf>,
    /// Whether they may use the network.
    pub network: bool,
    /// Environment variables they must not see (API keys, `[secrets] env`).
    pub hidden_env: Vec<String>,
    /// Whose groups these are (the session id): [`end_owner`] ends them all.
    pub owner: Arc<str>,
    /// Where running groups are recorded, for [`end_leftovers`] after a crash.
    pub records: PathBuf,
}

/// The restrictions one program starts under, prepared in Tether's process: the child only
/// makes system calls between `fork` and `exec`, where nothing may allocate or lock.
pub(crate) struct Restrictions {
    landlock: Option<::landlock::RulesetCreated>,
    seccomp: Option<seccompiler::BpfProgram>,
    drop_capabilities: bool,
    /// Why the program is less confined than asked, for its output.
    pub note: Option<String>,
}

impl Restrictions {
    fn none() -> Restrictions {
        Restrictions {
            landlock: None,
            seccomp: None,
            drop_capabilities: false,
            note: None,
        }
    }
}

/// Builds the restrictions for `jail`, or says why the program must not run.
pub(crate) fn prepare(jail: &Jail) -> Result<Restrictions, String> {
    if jail.mode == SandboxMode::Off {
        return Ok(Restrictions::none());
    }
    let mut restrictions = Restrictions::none();
    match kernel_abi() {
        Some(_) => {
            restrictions.landlock = Some(
                landlock::ruleset(
                    &[jail.worktree.clone(), jail.temp_dir.clone()]
                        .into_iter()
                        .chain(jail.writable.iter().cloned())
                        .collect::<Vec<_>>(),
                    jail.network,
                )
                .map_err(|error| format!("cannot set up the command sandbox: {error}"))?,
            );
        }
        None => {
            let reason =
                "this kernel has no Landlock, so the command is not confined to the worktree";
            if jail.mode == SandboxMode::Required {
                return Err(format!(
                    "{reason}; session.sandbox = \"required\" forbids running it"
                ));
            }
            restrictions.note = Some(format!("[{reason}]"));
        }
    }
    match seccomp::filter(jail.network) {
        Ok(program) => restrictions.seccomp = Some(program),
        Err(error) if jail.mode == SandboxMode::Required => {
            return Err(format!(
                "cannot set up the command's seccomp filter: {error}"
            ));
        }
        Err(error) => {
            let note = format!("[no seccomp filter: {error}]");
            restrictions.note = Some(match restrictions.note.take() {
                Some(before) => format!("{before}\n{note}"),
                None => note,
            });
        }
    }
    restrictions.drop_capabilities = fork::has_capabilities();
    Ok(restrictions)
}
