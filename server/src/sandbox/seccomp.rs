//! The seccomp filter of a sandboxed program (as Codex's Linux sandbox does for its network
//! switch). Every listed call fails with `EPERM`; everything else is allowed.
//!
//! - Always: `setsid` and `setpgid`, so nothing the program starts can leave the process
//!   group its holder leads and outlive the turn.
//! - With `network = false`: `socket` and `socketpair` for any family but `AF_UNIX` (UDP,
//!   raw and packet sockets included, which Landlock does not cover), and `io_uring`, whose
//!   operations can open sockets without the `socket` call.
//!
//! On x86_64 the x32 numbers of the same calls are listed too: the filter's architecture
//! check lets x32 calls through, and they would otherwise bypass it.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The bit x32 system call numbers carry on x86_64.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        format!(
            "seccomp filters are not supported on {}",
            std::env::consts::ARCH
        )
    })
}

/// A rule that matches when argument 0 (the address family) is not `AF_UNIX`.
fn not_unix_family() -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )?])?])
}

/// The filter for a program that may (or may not) use the network.
pub(super) fn filter(network: bool) -> Result<BpfProgram, String> {
    let arch = target_arch()?;
    let build = || -> Result<BpfProgram, seccompiler::BackendError> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        rules.insert(libc::SYS_setsid, Vec::new());
        rules.insert(libc::SYS_setpgid, Vec::new());
        if !network {
            rules.insert(libc::SYS_socket, not_unix_family()?);
            rules.insert(libc::SYS_socketpair, not_unix_family()?);
            rules.insert(libc::SYS_io_uring_setup, Vec::new());
            rules.insert(libc::SYS_io_uring_enter, Vec::new());
            rules.insert(libc::SYS_io_uring_register, Vec::new());
        }
        #[cfg(target_arch = "x86_64")]
        {
            let native: Vec<(i64, Vec<SeccompRule>)> =
                rules.iter().map(|(nr, r)| (*nr, r.clone())).collect();
            for (number, conditions) in native {
                rules.insert(number | X32_SYSCALL_BIT, conditions);
            }
        }
        SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch,
        )?
        .try_into()
    };
    build().map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_build_for_both_network_settings() {
        let open = filter(true).expect("filter");
        let closed = filter(false).expect("filter");
        assert!(
            closed.len() > open.len(),
            "the network rules add instructions"
        );
    }
}
