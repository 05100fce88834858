//! Sandboxed programs and the process groups they run in: starting one under its holder,
//! knowing every group a session has running, ending them, and ending after a crash the ones
//! a previous Tether left.
//!
//! Why this is safe from pid reuse: a group's id is its holder's pid, and the holder is
//! Tether's child, reaped only by [`end_owner`] *after* it signalled the group. Until then
//! the holder's pid (alive or a zombie) cannot be given to another process, so no signal
//! meant for the group can reach a stranger. After a crash the holder is nobody's child;
//! [`end_leftovers`] signals a recorded group whole only if a process with that pid still
//! exists and started at the recorded time of this boot, and otherwise only the processes of
//! that group id that carry the group's mark.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use super::{Jail, fork};

/// A program started under its holder.
pub struct Spawned {
    /// The process group (the holder's pid).
    pub pgid: i32,
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    /// The holder writes the program's wait status here.
    status: Option<tokio::net::unix::pipe::Receiver>,
    /// Why the program is less confined than asked, if it is.
    pub note: Option<String>,
}

impl Spawned {
    /// Waits until the program itself exits (what it left running may go on until its owner
    /// ends); `None` if its holder was killed first.
    pub async fn wait(&mut self) -> Option<ExitStatus> {
        let status = self.status.as_mut()?;
        let mut bytes = [0u8; 4];
        let read = status.read_exact(&mut bytes).await;
        self.status = None;
        read.ok()
            .map(|_| ExitStatus::from_raw(i32::from_ne_bytes(bytes)))
    }

    /// Reads the program's stdout and stderr (those piped) to their end, then waits for it:
    /// its status (`None` if its holder was killed first) and what it wrote.
    pub async fn output(&mut self) -> (Option<ExitStatus>, Vec<u8>, Vec<u8>) {
        let (mut stdout, mut stderr) = (self.stdout.take(), self.stderr.take());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(stream) = stdout.as_mut() {
                let _ = stream.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(stream) = stderr.as_mut() {
                let _ = stream.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        (self.wait().await, out, err)
    }

    /// Kills the whole group at once (a timeout, a stop).
    pub fn kill(&self) {
        // The holder is registered and not reaped until its owner ends, so the group id
        // still names this group.
        signal_group(self.pgid);
    }
}

/// A running group's holder, kept unreaped until its owner ends.
struct Holder {
    owner: Arc<str>,
    child: std::process::Child,
    record: Option<PathBuf>,
}

fn holders() -> &'static Mutex<Vec<Holder>> {
    static HOLDERS: OnceLock<Mutex<Vec<Holder>>> = OnceLock::new();
    HOLDERS.get_or_init(Mutex::default)
}

/// The read end of a pipe whose write end only Tether holds: each holder watches it and
/// ends its group when it closes, that is when Tether exits or is killed.
fn lifeline() -> std::io::Result<RawFd> {
    static LIFELINE: OnceLock<Result<(OwnedFd, OwnedFd), i32>> = OnceLock::new();
    match LIFELINE.get_or_init(|| new_pipe().map_err(|error| error.raw_os_error().unwrap_or(0))) {
        Ok((read, _write)) => Ok(read.as_raw_fd()),
        Err(code) => Err(std::io::Error::from_raw_os_error(*code)),
    }
}

/// A pipe whose two ends close on `exec`.
fn new_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether our child `pid` has exited (it is not reaped: WNOWAIT leaves it as it is).
fn has_exited(pid: i32) -> bool {
    // SAFETY: a zeroed siginfo_t is valid; waitid fills it for our own child only.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let state = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        state != 0 || info.si_pid() != 0
    }
}

/// Kills the group `pgid` of a program [`spawn`] started whose owner has not ended yet.
pub fn kill_group(pgid: i32) {
    signal_group(pgid);
}

fn signal_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) on a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Starts `command` (its stdio already chosen) as `jail` says: its own process group under a
/// holder, restricted by the sandbox, without the hidden variables. The group stays
/// registered under the jail's owner until [`end_owner`].
pub fn spawn(jail: &Jail, mut command: std::process::Command) -> Result<Spawned, String> {
    // Before the ruleset: Landlock rules name folders that exist.
    std::fs::create_dir_all(&jail.temp_dir)
        .map_err(|error| format!("cannot create the session's temp dir: {error}"))?;
    let mut restrictions = super::prepare(jail)?;
    let note = restrictions.note.take();
    for name in &jail.hidden_env {
        command.env_remove(name);
    }
    command.env("TMPDIR", &jail.temp_dir);
    // A mark every process of the group inherits, so that a restarted Tether can tell the
    // group's processes from strangers even when the holder is gone.
    let mark = uuid::Uuid::now_v7().simple().to_string();
    command.env(GROUP_MARK, &mark);
    let lifeline =
        lifeline().map_err(|error| format!("cannot set up the command's lifeline: {error}"))?;
    let (status_read, status_write) =
        new_pipe().map_err(|error| format!("cannot set up the command's status pipe: {error}"))?;
    let status_fd = status_write.as_raw_fd();
    command.process_group(0);
    // SAFETY: the closure runs in the forked child; `split_holder` and `restrict` make
    // system calls only (see `fork`), and the restrictions were prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            fork::split_holder(lifeline, status_fd)?;
            fork::restrict(&mut restrictions)
        });
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start the command: {error}"))?;
    // Only the holder may write the status, so that its end is the holder's end.
    drop(status_write);
    let pgid = child.id() as i32;
    let record = record_group(&jail.records, &jail.owner, pgid, &mark);
    let stdin = child
        .stdin
        .take()
        .and_then(|pipe| tokio::process::ChildStdin::from_std(pipe).ok());
    let stdout = child
        .stdout
        .take()
        .and_then(|pipe| tokio::process::ChildStdout::from_std(pipe).ok());
    let stderr = child
        .stderr
        .take()
        .and_then(|pipe| tokio::process::ChildStderr::from_std(pipe).ok());
    let status = tokio::net::unix::pipe::Receiver::from_owned_fd(status_read).ok();
    holders()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Holder {
            owner: jail.owner.clone(),
            child,
            record,
        });
    Ok(Spawned {
        pgid,
        stdin,
        stdout,
        stderr,
        status,
        note,
    })
}

/// Ends every group `owner` has running: kills each, then reaps its holder (off the calling
/// thread) and forgets its record. Returns how many were still running.
pub fn end_owner(owner: &str) -> usize {
    end_matching(|holder| &*holder.owner == owner)
}

/// Ends every group this process started (shutdown).
pub fn end_all() -> usize {
    end_matching(|_| true)
}

fn end_matching(matches: impl Fn(&Holder) -> bool) -> usize {
    let ended: Vec<Holder> = {
        let mut holders = holders()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ended, kept) = std::mem::take(&mut *holders)
            .into_iter()
            .partition(|holder| matches(holder));
        *holders = kept;
        ended
    };
    if ended.is_empty() {
        return 0;
    }
    let mut running = 0;
    for holder in &ended {
        let pid = holder.child.id() as i32;
        if !has_exited(pid) {
            running += 1;
        }
        // Signal first, reap after: an unreaped holder keeps its pid, so the group id cannot
        // name anyone else.
        signal_group(pid);
    }
    let reap = move || {
        for mut holder in ended {
            let _ = holder.child.wait();
            if let Some(record) = &holder.record {
                let _ = std::fs::remove_file(record);
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(reap)),
        Err(_) => reap(),
    }
    running
}

/// The environment variable that marks a group's processes (see [`GroupRecord::mark`]).
const GROUP_MARK: &str = "TETHER_GROUP";

/// A running group, as recorded on disk while it runs.
#[derive(Debug, Serialize, Deserialize)]
struct GroupRecord {
    pgid: i32,
    /// The holder's start time, in clock ticks after boot (`/proc/<pid>/stat`, field 22).
    start_ticks: u64,
    boot_id: String,
    owner: String,
    /// The value of `TETHER_GROUP` in the group's processes.
    mark: String,
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
}

/// When process `pid` started, in clock ticks after boot.
fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    group_and_start(&stat).map(|(_, start)| start)
}

fn record_group(dir: &Path, owner: &str, pgid: i32, mark: &str) -> Option<PathBuf> {
    let record = GroupRecord {
        pgid,
        start_ticks: start_ticks(pgid)?,
        boot_id: boot_id()?,
        owner: owner.to_owned(),
        mark: mark.to_owned(),
    };
    let path = dir.join(format!("{pgid}.json"));
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_vec(&record).map_err(std::io::Error::other)?,
        )
    });
    match written {
        Ok(()) => Some(path),
        Err(error) => {
            tracing::warn!(
                "cannot record process group {pgid} in {}: {error}",
                dir.display()
            );
            None
        }
    }
}

/// The process group and start time of process `pid` (`/proc/<pid>/stat`).
fn group_and_start(stat: &str) -> Option<(i32, u64)> {
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// The processes of group `pgid` that carry `mark` in their environment: the group's own,
/// whatever else came to use that number.
fn marked_members(pgid: i32, mark: &str) -> Vec<i32> {
    let wanted = format!("{GROUP_MARK}={mark}");
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let in_group = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| group_and_start(&stat))
            .is_some_and(|(group, _)| group == pgid);
        if !in_group {
            continue;
        }
        let marked = std::fs::read(entry.path().join("environ")).is_ok_and(|environ| {
            environ
                .split(|&byte| byte == 0)
                .any(|variable| variable == wanted.as_bytes())
        });
        if marked {
            members.push(pid);
        }
    }
    members
}

/// Ends the groups recorded in `dir` that a previous Tether left running (it crashed, or was
/// killed, before ending them), and forgets every record there. Call it only while holding
/// the lock that makes this process the records' only writer. Returns the groups ended.
///
/// A group whose holder still runs (same pid, same start time, same boot) is killed whole.
/// One whose holder is gone (someone killed it) is ended process by process: those of its
/// number that carry its mark, round after round until none is left (its processes cannot
/// leave the group, and the number cannot be reused while any of them lives).
pub fn end_leftovers(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let boot = boot_id();
    let mut ended = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let record: Option<GroupRecord> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if let Some(record) = record
            && boot.as_deref() == Some(record.boot_id.as_str())
        {
            if start_ticks(record.pgid) == Some(record.start_ticks) {
                tracing::warn!(
                    "ending process group {} that session {} left running",
                    record.pgid,
                    record.owner
                );
                signal_group(record.pgid);
                ended += 1;
            } else {
                let mut rounds = 0;
                loop {
                    let members = marked_members(record.pgid, &record.mark);
                    if members.is_empty() || rounds == 100 {
                        break;
                    }
                    if rounds == 0 {
                        tracing::warn!(
                            "ending {} process(es) that session {} left running without their holder",
                            members.len(),
                            record.owner
                        );
                        ended += 1;
                    }
                    for pid in members {
                        // SAFETY: kill(2) on a pid that carries this group's mark.
                        unsafe {
                            libc::kill(pid, libc::SIGKILL);
                        }
                    }
                    rounds += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(dir: &Path, owner: &str) -> Jail {
        Jail {
            mode: super::super::SandboxMode::Off,
            worktree: dir.to_owned(),
            temp_dir: dir.join("tmp"),
            writable: Vec::new(),
            network: true,
            hidden_env: Vec::new(),
            owner: owner.into(),
            records: dir.join("records"),
        }
    }

    /// Whether `pid` runs (a zombie has ended; only its parent has not looked yet).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rfind(')')
                .and_then(|at| stat[at + 1..].split_whitespace().next())
                .is_some_and(|state| state != "Z")
        })
    }

    #[tokio::test]
    async fn leftovers_are_ended_from_their_records_and_strangers_are_spared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jail = jail(dir.path(), "leftovers-test");
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", "sleep 300 & echo $! > child; wait"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null());
        let mut spawned = spawn(&jail, command).expect("spawn");
        let record = dir
            .path()
            .join("records")
            .join(format!("{}.json", spawned.pgid));
        let child_file = dir.path().join("child");
        for _ in 0..500 {
            if std::fs::read_to_string(&child_file).is_ok_and(|text| text.ends_with('\n')) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let child: i32 = std::fs::read_to_string(&child_file)
            .expect("child pid")
            .trim()
            .parse()
            .expect("a pid");
        assert!(record.exists(), "the running group is recorded");

        // A stranger: alive, in a group of its own, not started by us, with a record that
        // names its pid but another start time (as after pid reuse).
        let mut stranger = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .expect("stranger");
        let stranger_pid = stranger.id() as i32;
        let forged = GroupRecord {
            pgid: stranger_pid,
            start_ticks: start_ticks(stranger_pid).expect("start") + 1,
            boot_id: boot_id().expect("boot id"),
            owner: "someone".into(),
            mark: "not-its-mark".into(),
        };
        std::fs::write(
            dir.path()
                .join("records")
                .join(format!("{stranger_pid}.json")),
            serde_json::to_vec(&forged).expect("json"),
        )
        .expect("write");

        // As a restarted Tether would: the group dies, the stranger lives, records go.
        assert_eq!(end_leftovers(&dir.path().join("records")), 1);
        let status = spawned.wait().await;
        assert!(
            status.is_none_or(|status| status.code().is_none()),
            "the program was killed: {status:?}"
        );
        for _ in 0..500 {
            if !alive(child) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            !alive(child),
            "what the program left running was killed too"
        );
        assert!(
            stranger.try_wait().expect("stranger").is_none(),
            "a stranger was killed"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("records"))
                .expect("records")
                .count(),
            0
        );
        let _ = stranger.kill();
        let _ = stranger.wait();
        end_owner("leftovers-test");
    }
}
