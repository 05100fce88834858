//! Transcript documents under each repository's `.tether/sessions/`: kept rendered from the
//! events, and read back when the user saves one (a reply, answers) or the draft (a new
//! session).
//!
//! One task owns them. A transcript the editor has open is updated with
//! `workspace/applyEdit` on the part above `## Reply`, so what the user is writing there is
//! never touched; a closed one is rewritten on disk.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{
    DocumentChanges, MessageType, OneOf, OptionalVersionedTextDocumentIdentifier,
    ShowDocumentParams, TextDocumentEdit, Uri, WorkspaceEdit,
};

use super::documents::{Documents, SavedDocument};
use crate::api::{self, methods};
use crate::beneath::Beneath;
use crate::front::Sessions;
use crate::host::HostError;
use crate::session::transcript::{self, REPLY_HEADING};
use crate::session::{Event, SessionError, SessionInfo, SessionStatus};
use crate::workspace::edits;

/// The folder, under a repository, that holds its transcripts.
pub const TRANSCRIPT_DIR: &str = ".tether/sessions";
/// The draft a new session is written in.
const DRAFT_FILE: &str = "new-session.md";
/// Renders of a busy session are at most this often.
const RENDER_DELAY: Duration = Duration::from_millis(200);
/// Renders for streamed text alone are at most this often.
const STREAMING_RENDER_DELAY: Duration = Duration::from_secs(1);
/// How long an editor may take to apply a transcript update.
const EDIT_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Request {
    /// Render now; answers with the transcript's path.
    Show {
        id: String,
        reply: oneshot::Sender<Result<PathBuf, SessionError>>,
    },
    /// Write the draft (with `context` quoted); answers with its path.
    Draft {
        root: PathBuf,
        context: Option<String>,
        reply: oneshot::Sender<Result<PathBuf, String>>,
    },
    /// Sessions were deleted: remove their transcripts.
    Reconcile,
}

/// Where a session's transcript lives.
pub fn transcript_path(repo: &Path, name: &str) -> PathBuf {
    transcript::path(repo, name)
}

/// The repository whose transcripts folder holds `path`, if it is a document there (a
/// transcript or the draft).
pub fn repository_of_document(path: &Path) -> Option<&Path> {
    let folder = path.parent()?;
    if !folder.ends_with(TRANSCRIPT_DIR) {
        return None;
    }
    folder.parent().and_then(Path::parent)
}

/// The session whose transcript `path` is.
pub fn session_of_transcript(sessions: &Sessions, path: &Path) -> Option<SessionInfo> {
    let repo = repository_of_document(path)?;
    let name = path.file_stem().and_then(|stem| stem.to_str())?;
    sessions
        .list(&Default::default())
        .into_iter()
        .find(|info| info.name == name && info.repo == repo)
}

/// Opens `path` in the editor, from a task of its own (never awaited in a handler).
pub fn show_document(client: &Client, path: &Path) {
    let Some(uri) = Uri::from_file_path(path) else {
        return;
    };
    let client = client.clone();
    tokio::spawn(async move {
        let params = ShowDocumentParams {
            uri,
            external: None,
            take_focus: Some(true),
            selection: None,
        };
        if let Err(error) = tokio::time::timeout(EDIT_TIMEOUT, client.show_document(params)).await {
            tracing::debug!("showDocument unanswered: {error}");
        }
    });
}

pub fn start(
    client: Client,
    manager: Sessions,
    documents: Documents,
    saved: mpsc::UnboundedReceiver<SavedDocument>,
    sessions_loaded: tokio::sync::watch::Receiver<bool>,
    started_by: crate::vocab::StartedBy,
    tasks: std::sync::Arc<super::tasks::KnownTasks>,
) -> mpsc::UnboundedSender<Request> {
    let (sender, requests) = mpsc::unbounded_channel();
    let transcripts = Transcripts {
        started_by,
        tasks,
        client,
        manager,
        documents,
        excluded: HashSet::new(),
        clear_reply: HashSet::new(),
        awaiting_change: HashMap::new(),
    };
    tokio::spawn(transcripts.run(requests, saved, sessions_loaded));
    sender
}

struct Transcripts {
    /// The editor, for sessions started from a draft.
    started_by: crate::vocab::StartedBy,
    /// Tasks started from a draft get their document.
    tasks: std::sync::Arc<super::tasks::KnownTasks>,
    client: Client,
    manager: Sessions,
    documents: Documents,
    /// Repositories whose `.git/info/exclude` already lists the transcripts.
    excluded: HashSet<PathBuf>,
    /// Transcripts whose reply was sent: the next render empties it.
    clear_reply: HashSet<PathBuf>,
    /// Open transcripts the editor accepted an update of, with the buffer version the update
    /// was for: the next update waits for the editor's `didChange` (or a while), so that it is
    /// never computed against text the editor already changed.
    awaiting_change: HashMap<PathBuf, (i32, tokio::time::Instant)>,
}

/// How long an update waits for the editor to report the last one.
const CHANGE_WAIT: Duration = Duration::from_secs(2);

/// A render that must be retried: the editor has not caught up with the last update yet.
struct Deferred;

impl Transcripts {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut saved: mpsc::UnboundedReceiver<SavedDocument>,
        mut sessions_loaded: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut events = self.manager.subscribe();
        let _ = sessions_loaded.wait_for(|loaded| *loaded).await;
        // Transcripts written by an earlier run are brought up to date.
        for info in self.manager.list(&Default::default()) {
            let path = transcript_path(&info.repo, &info.name);
            let marker = seq_marker(info.last_seq);
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if !current.contains(&marker) {
                let _ = self.render(&info.id).await;
            }
        }
        let mut dirty: HashSet<String> = HashSet::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let sleep = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = events.next() => match received {
                    Some(announced) => {
                        dirty.insert(announced.session_id.to_string());
                        // Streamed text shows up a little later than everything else.
                        let delay = if matches!(announced.record.event, Event::Delta { .. }) {
                            STREAMING_RENDER_DELAY
                        } else {
                            RENDER_DELAY
                        };
                        let at = tokio::time::Instant::now() + delay;
                        deadline = Some(deadline.map_or(at, |deadline| deadline.min(at)));
                    }
                    None => break,
                },
                request = requests.recv() => match request {
                    Some(request) => self.answer(request).await,
                    None => break,
                },
                Some(document) = saved.recv() => {
                    if let Some(id) = self.on_save(document).await {
                        dirty.insert(id);
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + RENDER_DELAY);
                    }
                }
                () = sleep => {
                    deadline = None;
                    for id in std::mem::take(&mut dirty) {
                        if self.render(&id).await.is_err() {
                            dirty.insert(id);
                        }
                    }
                    if !dirty.is_empty() {
                        deadline = Some(tokio::time::Instant::now() + RENDER_DELAY);
                    }
                }
            }
        }
    }

    async fn answer(&mut self, request: Request) {
        match request {
            Request::Show { id, reply } => {
                let outcome = match self.manager.info(&id) {
                    Ok(info) => {
                        // Deferred only when the editor has it open, which is being shown.
                        let _ = self.render(&id).await;
                        Ok(transcript_path(&info.repo, &info.name))
                    }
                    Err(error) => Err(error),
                };
                let _ = reply.send(outcome);
            }
            Request::Draft {
                root,
                context,
                reply,
            } => {
                let path = root.join(TRANSCRIPT_DIR).join(DRAFT_FILE);
                let text = transcript::render_draft(context.as_deref());
                let outcome = match self.write(&root, &path, &text, false).await {
                    Ok(()) | Err(WriteError::Deferred) => Ok(path),
                    Err(WriteError::Failed(error)) => Err(error),
                };
                let _ = reply.send(outcome);
            }
            Request::Reconcile => self.remove_orphans(),
        }
    }

    /// Renders a session's transcript and puts it where the user sees it.
    async fn render(&mut self, id: &str) -> Result<(), Deferred> {
        let Ok(info) = self.manager.info(id) else {
            return Ok(());
        };
        // Reading the log is file work (or a request to the daemon), and rendering a long
        // session is work too: neither on the thread that answers the editor.
        let Ok((logged, events)) = self.manager.all_events(id).await else {
            return Ok(());
        };
        let open_questions = self.manager.pending_items(id).unwrap_or_default();
        let findings = self.manager.session_findings(id).unwrap_or_default();
        // The changes, hunk by hunk, once a turn is over (half a turn's are not for review).
        let changes = if info.status.is_active() {
            Vec::new()
        } else {
            self.manager.diff(id).await.unwrap_or_default()
        };
        let rendered = tokio::task::spawn_blocking(move || {
            let text = transcript::render(&logged, &events, &open_questions, &findings, &changes);
            Some(format!("{}\n{text}", seq_marker(logged.last_seq)))
        })
        .await;
        let Ok(Some(text)) = rendered else {
            return Ok(());
        };
        let path = transcript_path(&info.repo, &info.name);
        let clear = self.clear_reply.contains(&path);
        match self.write(&info.repo, &path, &text, clear).await {
            Ok(()) => {
                self.clear_reply.remove(&path);
            }
            Err(WriteError::Deferred) => return Err(Deferred),
            Err(WriteError::Failed(error)) => {
                tracing::warn!("transcript of {}: {error}", info.name);
            }
        }
        Ok(())
    }

    /// Puts `text` (ending with an empty reply) in the file: through the editor when it has
    /// the file open (keeping what is under `## Reply` unless `clear_reply`), else on disk.
    async fn write(
        &mut self,
        repo: &Path,
        path: &Path,
        text: &str,
        clear_reply: bool,
    ) -> Result<(), WriteError> {
        self.exclude(repo).await;
        let open = self.documents.read(vec![path.to_owned()]).await;
        if let Some(document) = open.get(path) {
            if let Some((version, since)) = self.awaiting_change.get(path)
                && document.version <= *version
                && since.elapsed() < CHANGE_WAIT
            {
                return Err(WriteError::Deferred);
            }
            self.awaiting_change.remove(path);
            let buffer = document.text.to_string();
            let wanted = if clear_reply || !buffer.contains(REPLY_HEADING) {
                text.to_owned()
            } else {
                let (above, _) = transcript::split_reply(text);
                let (_, reply) = transcript::split_reply(&buffer);
                format!("{above}{reply}")
            };
            if wanted != buffer
                && self
                    .edit_open_document(path, document.version, &buffer, &wanted)
                    .await
            {
                self.awaiting_change.insert(
                    path.to_owned(),
                    (document.version, tokio::time::Instant::now()),
                );
            }
            return Ok(());
        }
        let path = path.to_owned();
        let text = text.to_owned();
        let repo = repo.to_owned();
        tokio::task::spawn_blocking(move || write_file(&repo, &path, &text))
            .await
            .map_err(|error| WriteError::Failed(error.to_string()))?
            .map_err(WriteError::Failed)
    }

    /// Sends the edit that turns `buffer` into `wanted`; returns whether the editor took it.
    async fn edit_open_document(
        &self,
        path: &Path,
        version: i32,
        buffer: &str,
        wanted: &str,
    ) -> bool {
        let Some(uri) = Uri::from_file_path(path) else {
            return false;
        };
        let plan = edits::plan(buffer, wanted, buffer, None);
        let text_edits = super::documents::text_edits(&plan.changes, self.documents.utf8())
            .into_iter()
            .map(OneOf::Left)
            .collect();
        let edit = WorkspaceEdit {
            document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                text_document: OptionalVersionedTextDocumentIdentifier {
                    uri,
                    version: Some(version),
                },
                edits: text_edits,
            }])),
            ..Default::default()
        };
        // Awaited here, in this task, never in a request handler: updates stay in order.
        match tokio::time::timeout(EDIT_TIMEOUT, self.client.apply_edit(edit)).await {
            Ok(Ok(response)) if response.applied => true,
            Ok(Ok(response)) => {
                tracing::debug!("transcript update refused: {:?}", response.failure_reason);
                false
            }
            Ok(Err(error)) => {
                tracing::debug!("transcript update failed: {error}");
                false
            }
            Err(_) => {
                tracing::debug!("transcript update unanswered");
                false
            }
        }
    }

    /// Lists `.tether/sessions/` in the repository's `info/exclude`, once.
    async fn exclude(&mut self, repo: &Path) {
        if self.excluded.insert(repo.to_owned())
            && let Err(error) =
                crate::workspace::exclude_locally(repo, &format!("/{TRANSCRIPT_DIR}/")).await
        {
            tracing::warn!("{}: {error}", repo.display());
        }
    }

    fn remove_orphans(&self) {
        let sessions = self.manager.list(&Default::default());
        let roots: HashSet<PathBuf> = self.excluded.iter().cloned().collect();
        for root in roots {
            // Beneath the repository: its `.tether/sessions` may be a link to elsewhere, whose
            // Markdown files are not transcripts to remove.
            let Ok(beneath) = Beneath::open(&root) else {
                continue;
            };
            let folder = Path::new(TRANSCRIPT_DIR);
            for (file, is_folder) in beneath.list(folder).into_iter().flatten() {
                let path = folder.join(&file);
                let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
                    continue;
                };
                let known = sessions
                    .iter()
                    .any(|info| info.name == name && info.repo == root);
                if !known
                    && !is_folder
                    && path.extension().is_some_and(|ext| ext == "md")
                    && !path.ends_with(DRAFT_FILE)
                {
                    let _ = beneath.remove(&path);
                }
            }
        }
    }

    /// Acts on a saved transcript or draft; returns the session whose transcript to render.
    async fn on_save(&mut self, document: SavedDocument) -> Option<String> {
        let repo = repository_of_document(&document.path)?;
        if document.path.ends_with(DRAFT_FILE) {
            self.start_from_draft(repo, &document).await;
            return None;
        }
        let info = session_of_transcript(&self.manager, &document.path)?;
        let name = info.name.clone();
        let open_questions = self.manager.pending_items(&info.id).unwrap_or_default();
        if let Some((question_id, answers)) =
            transcript::written_answers(&document.text, &open_questions)
            && let Err(error) = self
                .manager
                .call::<methods::Answer>(api::AnswerParams {
                    id: info.id.clone(),
                    question_id,
                    answers,
                })
                .await
        {
            self.tell(format!(
                "tether: the answers in {name}.md were not taken: {error}"
            ))
            .await;
        }
        let (_, reply) = transcript::split_reply(&document.text);
        let reply = reply.trim();
        if !reply.is_empty() {
            match self.send_reply(&info, reply).await {
                Ok(()) => {
                    self.clear_reply.insert(document.path.clone());
                }
                Err(error) => {
                    self.tell(format!(
                        "tether: your reply in {name}.md was not sent: {error}"
                    ))
                    .await;
                }
            }
        }
        Some(info.id)
    }

    async fn send_reply(&self, info: &SessionInfo, reply: &str) -> Result<(), HostError> {
        if let Some((item_id, text)) = transcript::written_edit(reply) {
            return self
                .manager
                .call::<methods::EditMessage>(api::EditMessageParams {
                    id: info.id.clone(),
                    item_id,
                    text,
                })
                .await
                .map(drop);
        }
        // A stopped session is resumed first; the reply then goes as any message does, its
        // command, mentions and attachments included.
        if matches!(info.status, SessionStatus::Stopped | SessionStatus::Failed) {
            self.manager
                .call::<methods::Resume>(api::ResumeParams {
                    id: info.id.clone(),
                    text: None,
                })
                .await?;
        }
        let (text, attachments) = transcript::attachment_lines(reply);
        self.manager
            .call::<methods::Send>(api::SendParams {
                id: info.id.clone(),
                text,
                attachments,
            })
            .await
            .map(drop)
    }

    async fn start_from_draft(&mut self, repo: &Path, document: &SavedDocument) {
        let Some(prompt) = transcript::draft_prompt(&document.text) else {
            return;
        };
        let root = repo.display().to_string();
        self.manager.follow(&root).await;
        let providers = transcript::draft_providers(&document.text);
        if providers.len() > 1 {
            self.start_task_from_draft(repo, document, prompt, root, providers)
                .await;
            return;
        }
        let (prompt, attachments) = transcript::attachment_lines(&prompt);
        let created = self
            .manager
            .call::<methods::Create>(api::CreateParams {
                attachments,
                prompt,
                mode: None,
                name: None,
                root: Some(root),
                base_branch: None,
                provider: providers.into_iter().next().flatten(),
                model: None,
                toggles: Default::default(),
                started_by: Some(self.started_by.clone()),
                settings_profile: self.manager.settings_profile(),
            })
            .await;
        match created {
            Ok(info) => {
                let blank = transcript::render_draft(None);
                if let Err(WriteError::Failed(error)) =
                    self.write(repo, &document.path, &blank, true).await
                {
                    tracing::warn!("could not reset the draft: {error}");
                }
                let _ = self.render(&info.id).await;
                show_document(&self.client, &transcript_path(&info.repo, &info.name));
            }
            Err(error) => {
                self.tell(format!("tether: the session was not started: {error}"))
                    .await;
            }
        }
    }

    /// A draft that names several providers races them: a task, whose document is shown.
    async fn start_task_from_draft(
        &mut self,
        repo: &Path,
        document: &SavedDocument,
        prompt: String,
        root: String,
        providers: Vec<Option<String>>,
    ) {
        let created = self
            .manager
            .call::<methods::TaskCreate>(api::TaskCreateParams {
                prompt,
                trials: providers
                    .into_iter()
                    .map(|provider| api::TrialParams {
                        provider,
                        model: None,
                    })
                    .collect(),
                name: None,
                root: Some(root),
                base_branch: None,
                toggles: Default::default(),
                settings_profile: self.manager.settings_profile(),
            })
            .await;
        match created {
            Ok(task) => {
                let blank = transcript::render_draft(None);
                if let Err(WriteError::Failed(error)) =
                    self.write(repo, &document.path, &blank, true).await
                {
                    tracing::warn!("could not reset the draft: {error}");
                }
                match super::tasks::write_document(&self.manager, &self.tasks, &task.id).await {
                    Ok(path) => show_document(&self.client, &path),
                    Err(error) => tracing::warn!("the task document of {}: {error}", task.name),
                }
            }
            Err(error) => {
                self.tell(format!("tether: the task was not started: {error}"))
                    .await;
            }
        }
    }

    async fn tell(&self, message: String) {
        self.client.show_message(MessageType::ERROR, message).await;
    }
}

/// Writes a transcript on disk (through a temporary file, so a reader never sees half),
/// beneath the repository: the folder comes with the repository, which may have made it, or
/// the file, a link to somewhere else.
fn write_file(repo: &Path, path: &Path, text: &str) -> Result<(), String> {
    let relative = path
        .strip_prefix(repo)
        .map_err(|_| format!("{} is not inside {}", path.display(), repo.display()))?;
    let beneath =
        Beneath::open(repo).map_err(|error| format!("cannot open {}: {error}", repo.display()))?;
    if beneath
        .read(relative, 64 * 1024 * 1024)
        .is_ok_and(|current| current == text.as_bytes())
    {
        return Ok(());
    }
    beneath.replace(relative, text.as_bytes()).map_err(|error| {
        format!(
            "cannot write {}",
            error.describe(&path.display().to_string())
        )
    })
}

enum WriteError {
    /// The editor has not reported the last update yet: try again shortly.
    Deferred,
    Failed(String),
}

/// A line at the top of every transcript naming the last event it shows, so that a restart
/// re-renders only transcripts that are behind.
fn seq_marker(last_seq: u64) -> String {
    format!("<!-- tether:seq {last_seq} -->")
}
