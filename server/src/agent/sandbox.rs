//! The kernel sandbox for the agent's commands: on Linux, Landlock lets a command read
//! everywhere but write only in the session's worktree, its temp dir and a few devices, and
//! (when configured) make no TCP connections, as Codex's Linux sandbox does.
//!
//! The ruleset is built in tether's process; the child only calls `restrict_self` between
//! `fork` and `exec`, where nothing may allocate or lock.

use std::path::PathBuf;
use std::sync::OnceLock;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, path_beneath_rules,
};

/// What a session asks of the sandbox (`session.sandbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// Sandbox when the kernel can; otherwise run unsandboxed and say so.
    #[default]
    Auto,
    /// Refuse to run commands where the kernel cannot sandbox them.
    Required,
    /// Never sandbox.
    Off,
}

/// The rules one command runs under.
#[derive(Debug, Clone)]
pub struct SandboxPolicy {
    pub mode: SandboxMode,
    /// Folders the command may write in (the worktree, the session's temp dir).
    pub writable: Vec<PathBuf>,
    /// Whether TCP connections and binds are allowed.
    pub network: bool,
}

/// The ABI the crate targets: Landlock ABI 4 added TCP rules.
const TARGET_ABI: ABI = ABI::V5;

/// The running kernel's Landlock ABI version, or `None` when it has no Landlock.
pub fn kernel_abi() -> Option<i64> {
    static ABI_VERSION: OnceLock<Option<i64>> = OnceLock::new();
    *ABI_VERSION.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
            // SAFETY: with a null attribute, size 0 and the VERSION flag, this syscall only
            // returns the ABI version (or -1); it touches no memory.
            let version = unsafe {
                libc::syscall(
                    libc::SYS_landlock_create_ruleset,
                    std::ptr::null::<libc::c_void>(),
                    0usize,
                    LANDLOCK_CREATE_RULESET_VERSION,
                )
            };
            (version > 0).then_some(version)
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    })
}

/// What to do for one command.
pub enum Prepared {
    /// Restrict the child with this ruleset.
    Sandboxed(RulesetCreated),
    /// Run unsandboxed; the note says why (for the command's output).
    Unsandboxed(Option<String>),
}

/// Builds the ruleset for `policy`, or says why the command must not run.
pub fn prepare(policy: &SandboxPolicy) -> Result<Prepared, String> {
    if policy.mode == SandboxMode::Off {
        return Ok(Prepared::Unsandboxed(None));
    }
    if kernel_abi().is_none() {
        let reason = "this kernel has no Landlock, so the command is not sandboxed";
        if policy.mode == SandboxMode::Required {
            return Err(format!(
                "{reason}; session.sandbox = \"required\" forbids running it"
            ));
        }
        return Ok(Prepared::Unsandboxed(Some(format!("[{reason}]"))));
    }
    build(policy)
        .map(Prepared::Sandboxed)
        .map_err(|error| format!("cannot set up the command sandbox: {error}"))
}

fn build(policy: &SandboxPolicy) -> Result<RulesetCreated, landlock::RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET_ABI))?;
    if !policy.network {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    let devices = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/pts",
    ]
    .into_iter()
    .map(PathBuf::from)
    .filter(|path| path.exists());
    ruleset
        .create()?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(TARGET_ABI)))?
        .add_rules(path_beneath_rules(
            policy
                .writable
                .iter()
                .chain(devices.collect::<Vec<_>>().iter()),
            AccessFs::from_all(TARGET_ABI),
        ))
}
