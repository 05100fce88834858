//! What runs in a forked child of Tether, between `fork` and `exec`: the holder of a
//! program's process group, and the restrictions the program takes on. Tether is
//! multi-threaded, so after `fork` only async-signal-safe calls are allowed here: system
//! calls on plain integers and stack buffers, no allocation, no locks, no panics.

use std::io;
use std::os::fd::RawFd;

use super::Restrictions;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// Securebits that keep uid 0 from regaining capabilities at `exec`, locked.
const SECURE_NO_ROOT: libc::c_ulong = (1 << 0) // SECBIT_NOROOT
    | (1 << 1) // SECBIT_NOROOT_LOCKED
    | (1 << 2) // SECBIT_NO_SETUID_FIXUP
    | (1 << 3) // SECBIT_NO_SETUID_FIXUP_LOCKED
    | (1 << 6) // SECBIT_NO_CAP_AMBIENT_RAISE
    | (1 << 7); // SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED

#[repr(C)]
struct CapabilityHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapabilityData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Whether Tether runs with any effective capability (as root, typically): its programs
/// then drop them all. Read in Tether's process, before any fork.
pub(super) fn has_capabilities() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .map(|value| value.trim().chars().any(|digit| digit != '0'))
        })
        // Unknown: drop them anyway when running as root.
        // SAFETY: geteuid has no preconditions and cannot fail.
        .unwrap_or_else(|| unsafe { libc::geteuid() } == 0)
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Clears every capability set, the bounding set included, and locks uid 0 out of regaining
/// them at `exec`.
///
/// # Safety
/// Runs in a forked child: system calls only.
unsafe fn drop_capabilities() -> io::Result<()> {
    // SAFETY: prctl and capset with integer arguments and a stack struct.
    unsafe {
        // Best effort: an older kernel may lack some bits; the bounding set below is what
        // matters.
        libc::prctl(libc::PR_SET_SECUREBITS, SECURE_NO_ROOT, 0, 0, 0);
        for capability in 0..64 {
            // EINVAL past the kernel's last capability.
            libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        let header = CapabilityHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [CapabilityData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(
            libc::SYS_capset,
            &header as *const CapabilityHeader,
            data.as_ptr(),
        ) != 0
        {
            return Err(last_error());
        }
    }
    Ok(())
}

/// Puts the program under its restrictions, just before it executes.
///
/// # Safety
/// Runs in a forked child: system calls only (the ruleset and filter were built before the
/// fork; applying them allocates nothing).
pub(super) unsafe fn restrict(restrictions: &mut Restrictions) -> io::Result<()> {
    if restrictions.drop_capabilities {
        // SAFETY: the caller runs this in a forked child.
        unsafe { drop_capabilities()? };
    }
    if let Some(program) = &restrictions.seccomp {
        seccompiler::apply_filter(program)
            .map_err(|_| io::Error::from_raw_os_error(libc::EPERM))?;
    }
    if let Some(ruleset) = restrictions.landlock.take() {
        ruleset
            .restrict_self()
            .map_err(|_| io::Error::from_raw_os_error(libc::EPERM))?;
    }
    Ok(())
}

/// Splits the forked child in two: this process becomes the holder of its process group
/// (it never returns), and a new child, the program's process, returns `Ok` to go on to
/// `exec`.
///
/// The holder is a subreaper, so everything the program leaves behind becomes its child; it
/// reports the program's wait status on `status` (4 bytes) and then reaps until nothing of
/// the group is left. When `lifeline` (whose write end only Tether holds) reaches its end,
/// Tether is gone, and the holder kills the whole group, itself included.
///
/// # Safety
/// Runs in a forked child of a multi-threaded process: system calls only.
pub(super) unsafe fn split_holder(lifeline: RawFd, status: RawFd) -> io::Result<()> {
    // SAFETY: prctl, getpid and fork take and return integers.
    unsafe {
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(last_error());
        }
        let holder = libc::getpid();
        let program = libc::fork();
        if program < 0 {
            return Err(last_error());
        }
        if program == 0 {
            // The program dies with its holder, should anything kill the holder alone.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != holder {
                libc::_exit(126);
            }
            return Ok(());
        }
        hold(program, lifeline, status)
    }
}

/// Closes every descriptor from `first` up, except those in `keep` (sorted).
unsafe fn close_all_but(first: RawFd, keep: &[RawFd]) {
    let mut from = first;
    let close_range = |from: RawFd, to: RawFd| {
        if from > to {
            return;
        }
        // SAFETY: close_range / close on descriptor numbers.
        unsafe {
            if libc::syscall(
                libc::SYS_close_range,
                from as libc::c_uint,
                to as libc::c_uint,
                0,
            ) != 0
            {
                // Before Linux 5.9: one at a time, up to a generous limit.
                let last = to.min(65_535);
                let mut fd = from;
                while fd <= last {
                    libc::close(fd);
                    fd += 1;
                }
            }
        }
    };
    for &kept in keep {
        if kept >= from {
            close_range(from, kept - 1);
            from = kept + 1;
        }
    }
    close_range(from, RawFd::MAX);
}

/// The holder's life: see [`split_holder`].
unsafe fn hold(program: libc::pid_t, lifeline: RawFd, status: RawFd) -> ! {
    // SAFETY: signal dispositions, masks, descriptors and waits, on integers and stack
    // buffers only.
    unsafe {
        // Only Tether (SIGKILL) ends the holder. Its group becomes orphaned when Tether
        // dies, and if a member stopped itself the kernel then sends the group SIGHUP: the
        // holder must live through that to kill the group. Terminal signals must not stop
        // it, and a status nobody reads must not kill it (SIGPIPE).
        for signal in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGQUIT,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        // Children's exits arrive through a descriptor, so one poll waits for them and for
        // the lifeline alike.
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
        let children = libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);

        // The holder keeps none of the program's pipes, so they end when the program's side
        // closes them; nor any other descriptor of Tether's.
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for stdio in 0..3 {
                libc::dup2(null, stdio);
            }
        }
        let mut keep = [lifeline, status, children];
        keep.sort_unstable();
        close_all_but(3, &keep);

        let group = libc::getpid();
        let mut status = status;
        loop {
            loop {
                let mut wait_status: libc::c_int = 0;
                let reaped = libc::waitpid(-1, &mut wait_status, libc::WNOHANG);
                if reaped > 0 {
                    if reaped == program && status >= 0 {
                        let bytes = wait_status.to_ne_bytes();
                        libc::write(status, bytes.as_ptr().cast(), bytes.len());
                        libc::close(status);
                        status = -1;
                    }
                    continue;
                }
                if reaped == 0 {
                    break;
                }
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                // ECHILD: nothing of the group is left.
                libc::_exit(0);
            }
            let mut watched = [
                libc::pollfd {
                    fd: lifeline,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: children,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Without a signalfd (it cannot fail on Linux, but never spin): look every 50 ms.
            let timeout = if children >= 0 { -1 } else { 50 };
            let ready = libc::poll(watched.as_mut_ptr(), 2, timeout);
            if ready < 0 {
                continue;
            }
            if watched[0].revents != 0 {
                // Tether is gone: so is everything it started.
                libc::kill(-group, libc::SIGKILL);
                libc::_exit(137);
            }
            if watched[1].revents != 0 {
                let mut drained = [0u8; 512];
                while libc::read(children, drained.as_mut_ptr().cast(), drained.len()) > 0 {}
            }
        }
    }
}
