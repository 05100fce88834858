//! What Tether serves an agent: its file reads and writes (`fs/*`) and its terminals
//! (`terminal/*`), all inside the session's worktree, under the same path checks and sandbox
//! as Tether's own tools. A path outside the worktree is an error to the agent, never a read
//! or a write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use agent_client_protocol::v1::schema::{
    CreateTerminalRequest, CreateTerminalResponse, KillTerminalResponse, ReadTextFileRequest,
    ReadTextFileResponse, ReleaseTerminalResponse, TerminalExitStatus, TerminalOutputResponse,
    WaitForTerminalExitResponse, WriteTextFileRequest, WriteTextFileResponse,
};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::connection::{Responder, lock};
use crate::agent::tools::{ToolContext, resolve};
use crate::beneath::Beneath;

/// The largest file an agent may read or write through Tether.
const FILE_LIMIT: u64 = 64 * 1024 * 1024;
/// A terminal's output kept when the agent names no limit.
const TERMINAL_OUTPUT_LIMIT: u64 = 1024 * 1024;
/// Terminals one session may hold at once.
const TERMINAL_LIMIT: usize = 32;

/// An error for the agent, with the reason as its message.
pub fn refusal(message: impl Into<String>) -> agent_client_protocol::Error {
    agent_client_protocol::Error::invalid_params().data(serde_json::Value::String(message.into()))
}

/// Answers `responder` with `result`, serialized.
pub fn answer<T: serde::Serialize>(
    responder: Responder,
    result: Result<T, agent_client_protocol::Error>,
) {
    let sent = match result
        .and_then(|value| serde_json::to_value(value).map_err(agent_client_protocol::Error::from))
    {
        Ok(value) => responder.respond(value),
        Err(error) => responder.respond_with_error(error),
    };
    if let Err(error) = sent {
        tracing::debug!("cannot answer the agent: {error}");
    }
}

/// The worktree path of an absolute path the agent named, relative and checked; or why it
/// may not be used.
pub fn inside(worktree: &[PathBuf], path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!(
            "{} is not absolute; name files by their absolute path in the worktree {}",
            path.display(),
            worktree
                .first()
                .map_or_else(String::new, |root| root.display().to_string())
        ));
    }
    let relative = worktree
        .iter()
        .find_map(|root| path.strip_prefix(root).ok())
        .ok_or_else(|| {
            format!(
                "{} is outside the session's worktree {}",
                path.display(),
                worktree
                    .first()
                    .map_or_else(String::new, |root| root.display().to_string())
            )
        })?;
    let text = relative
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
    resolve(text)
}

pub fn read_text_file(
    context: &ToolContext,
    roots: &[PathBuf],
    request: &ReadTextFileRequest,
) -> Result<ReadTextFileResponse, agent_client_protocol::Error> {
    let relative = inside(roots, &request.path).map_err(refusal)?;
    let bytes = Beneath::open(context.worktree())
        .map_err(|error| refusal(format!("cannot open the worktree: {error}")))?
        .read(&relative, FILE_LIMIT)
        .map_err(|error| {
            refusal(format!(
                "cannot read: {}",
                error.describe(&relative.to_string_lossy())
            ))
        })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| refusal(format!("{} is not UTF-8 text", request.path.display())))?;
    let start = request.line.map_or(0, |line| line.max(1) as usize - 1);
    let content = match (start, request.limit) {
        (0, None) => text,
        (start, limit) => text
            .split_inclusive('\n')
            .skip(start)
            .take(limit.map_or(usize::MAX, |limit| limit as usize))
            .collect(),
    };
    Ok(ReadTextFileResponse::new(content))
}

pub fn write_text_file(
    context: &ToolContext,
    roots: &[PathBuf],
    request: &WriteTextFileRequest,
) -> Result<WriteTextFileResponse, agent_client_protocol::Error> {
    if context.read_only {
        return Err(refusal(
            "this session may not change files (chat mode or permission_mode = \"read-only\")",
        ));
    }
    let relative = inside(roots, &request.path).map_err(refusal)?;
    Beneath::open(context.worktree())
        .map_err(|error| refusal(format!("cannot open the worktree: {error}")))?
        .write(&relative, request.content.as_bytes(), FILE_LIMIT)
        .map_err(|error| {
            refusal(format!(
                "cannot write: {}",
                error.describe(&relative.to_string_lossy())
            ))
        })?;
    Ok(WriteTextFileResponse::new())
}

/// What a terminal printed, its tail kept within its limit.
#[derive(Default)]
struct Output {
    text: Vec<u8>,
    truncated: bool,
}

struct Terminal {
    output: Arc<Mutex<Output>>,
    exit: watch::Receiver<Option<TerminalExitStatus>>,
    pgid: i32,
}

/// The terminals an agent opened in one session.
#[derive(Default)]
pub struct Terminals {
    open: HashMap<String, Terminal>,
    /// What the last released terminals printed: an agent often releases a terminal before
    /// it reports the tool call that ran it.
    released: std::collections::VecDeque<(String, String)>,
}

impl Terminals {
    pub fn create(
        &mut self,
        context: &ToolContext,
        roots: &[PathBuf],
        request: &CreateTerminalRequest,
    ) -> Result<CreateTerminalResponse, agent_client_protocol::Error> {
        if context.read_only {
            return Err(refusal(
                "this session may not run commands (chat mode or permission_mode = \"read-only\")",
            ));
        }
        if self.open.len() >= TERMINAL_LIMIT {
            return Err(refusal(format!(
                "{TERMINAL_LIMIT} terminals are open; release some first"
            )));
        }
        let cwd = match &request.cwd {
            Some(cwd) => context
                .worktree()
                .join(inside(roots, cwd).map_err(refusal)?),
            None => context.worktree().to_owned(),
        };
        let mut command = std::process::Command::new(&request.command);
        command
            .args(&request.args)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for variable in &request.env {
            command.env(&variable.name, &variable.value);
        }
        let mut spawned = crate::sandbox::groups::spawn(&context.jail, command).map_err(refusal)?;
        let limit = request.output_byte_limit.unwrap_or(TERMINAL_OUTPUT_LIMIT) as usize;
        let output = Arc::new(Mutex::new(Output::default()));
        let (exit_tx, exit) = watch::channel(None);
        let (stdout, stderr) = (spawned.stdout.take(), spawned.stderr.take());
        let pgid = spawned.pgid;
        let collected = output.clone();
        tokio::spawn(async move {
            let read_out = collect(stdout, collected.clone(), limit);
            let read_err = collect(stderr, collected, limit);
            tokio::join!(read_out, read_err);
            let status = spawned.wait().await;
            let _ = exit_tx.send(Some(exit_status(status)));
        });
        let id = format!("term-{}", uuid::Uuid::now_v7().simple());
        self.open
            .insert(id.clone(), Terminal { output, exit, pgid });
        Ok(CreateTerminalResponse::new(id))
    }

    fn get(&self, id: &str) -> Result<&Terminal, agent_client_protocol::Error> {
        self.open
            .get(id)
            .ok_or_else(|| refusal(format!("no terminal {id} is open")))
    }

    pub fn output(&self, id: &str) -> Result<TerminalOutputResponse, agent_client_protocol::Error> {
        let terminal = self.get(id)?;
        let output = lock(&terminal.output);
        let text = String::from_utf8_lossy(&output.text).into_owned();
        let exit = terminal.exit.borrow().clone();
        Ok(TerminalOutputResponse::new(text, output.truncated).exit_status(exit))
    }

    /// What terminal `id` printed so far, as text (for its tool call's item).
    pub fn printed(&self, id: &str) -> Option<String> {
        match self.open.get(id) {
            Some(terminal) => Some(text_of(&terminal.output)),
            None => self
                .released
                .iter()
                .find(|(released, _)| released == id)
                .map(|(_, text)| text.clone()),
        }
    }

    /// The exit of terminal `id`, whenever it comes (answered off the turn's loop).
    pub fn wait_for_exit(
        &self,
        id: &str,
    ) -> Result<
        impl Future<Output = Result<WaitForTerminalExitResponse, agent_client_protocol::Error>>
        + Send
        + 'static,
        agent_client_protocol::Error,
    > {
        let mut exit = self.get(id)?.exit.clone();
        Ok(async move {
            match exit.wait_for(Option::is_some).await {
                Ok(status) => Ok(WaitForTerminalExitResponse::new(
                    status.clone().unwrap_or_else(TerminalExitStatus::new),
                )),
                Err(_) => Err(refusal("the terminal was released")),
            }
        })
    }

    pub fn kill(&self, id: &str) -> Result<KillTerminalResponse, agent_client_protocol::Error> {
        let terminal = self.get(id)?;
        if terminal.exit.borrow().is_none() {
            crate::sandbox::groups::kill_group(terminal.pgid);
        }
        Ok(KillTerminalResponse::new())
    }

    pub fn release(
        &mut self,
        id: &str,
    ) -> Result<ReleaseTerminalResponse, agent_client_protocol::Error> {
        self.kill(id)?;
        if let Some(terminal) = self.open.remove(id) {
            if self.released.len() == TERMINAL_LIMIT {
                self.released.pop_front();
            }
            self.released
                .push_back((id.to_owned(), text_of(&terminal.output)));
        }
        Ok(ReleaseTerminalResponse::new())
    }
}

fn text_of(output: &Mutex<Output>) -> String {
    String::from_utf8_lossy(&lock(output).text).into_owned()
}

async fn collect<R: tokio::io::AsyncRead + Unpin>(
    stream: Option<R>,
    output: Arc<Mutex<Output>>,
    limit: usize,
) {
    let Some(mut stream) = stream else { return };
    let mut buffer = vec![0u8; 8192];
    loop {
        let read = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let mut output = lock(&output);
        output.text.extend_from_slice(&buffer[..read]);
        if output.text.len() > limit {
            let cut = output.text.len() - limit;
            output.text.drain(..cut);
            output.truncated = true;
        }
    }
}

fn exit_status(status: Option<std::process::ExitStatus>) -> TerminalExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(status) => TerminalExitStatus::new()
            .exit_code(status.code().map(|code| code as u32))
            .signal(status.signal().map(|signal| format!("signal {signal}"))),
        None => TerminalExitStatus::new().signal(Some("SIGKILL".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_worktree_are_served() {
        let roots = [PathBuf::from("/wt/demo"), PathBuf::from("/private/wt/demo")];
        assert_eq!(
            inside(&roots, Path::new("/wt/demo/src/a.rs")),
            Ok(PathBuf::from("src/a.rs"))
        );
        assert_eq!(
            inside(&roots, Path::new("/private/wt/demo/b.txt")),
            Ok(PathBuf::from("b.txt"))
        );
        for outside in [
            "/etc/passwd",
            "/wt/demo/../other/x",
            "/wt/demo/.git/config",
            "/wt/demox/a",
            "relative/path",
        ] {
            assert!(
                inside(&roots, Path::new(outside)).is_err(),
                "{outside} must be refused"
            );
        }
    }
}
