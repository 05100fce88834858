//! The Landlock ruleset of a sandboxed program, built from every right the running kernel
//! offers (the crate drops, best effort, what an older kernel lacks; docs/security.md says
//! what each ABI adds and what is lost without it).
//!
//! - Files (ABI 1–3, 5): read and execute everywhere; write, create, remove, rename, truncate
//!   only beneath the writable folders; no character or block device nodes anywhere; device
//!   ioctls only on the few terminal and null devices.
//! - Network (ABI 4): with `network = false`, no TCP bind or connect (seccomp covers the rest).
//! - Scopes (ABI 6): no signal to a process outside the sandbox (Tether, the holder, other
//!   sessions' commands, the user's programs) and no connection to an abstract Unix socket
//!   outside it.
//! - Logging (ABI 7): denials after `exec` are logged to the kernel's audit log.
//! - Pathname Unix sockets (ABI 9): connections only to sockets beneath the writable folders.

use std::path::PathBuf;
use std::sync::OnceLock;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, Scope, path_beneath_rules,
};

/// The newest ABI the crate knows; older kernels get what they support.
const TARGET_ABI: ABI = ABI::V9;

/// Devices a command may read, write and use as a terminal.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

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

/// Everything beneath a writable folder, except making device nodes.
fn writable_access() -> BitFlags<AccessFs> {
    AccessFs::from_all(TARGET_ABI) & !(AccessFs::MakeChar | AccessFs::MakeBlock)
}

/// The ruleset for a program that may write beneath `writable`.
pub(super) fn ruleset(
    writable: &[PathBuf],
    network: bool,
) -> Result<RulesetCreated, landlock::RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)?;
    if !network {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    let devices: Vec<PathBuf> = DEVICES
        .iter()
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .collect();
    ruleset
        .create()?
        .log_new_exec(true)?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(TARGET_ABI)))?
        .add_rules(path_beneath_rules(
            &devices,
            // Truncate: a shell's `> /dev/null` opens with O_TRUNC.
            AccessFs::ReadFile
                | AccessFs::WriteFile
                | AccessFs::Truncate
                | AccessFs::IoctlDev
                | AccessFs::ReadDir,
        ))?
        .add_rules(path_beneath_rules(writable, writable_access()))
}
