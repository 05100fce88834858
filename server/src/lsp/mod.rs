//! The LSP edge: the only module that knows LSP. It translates requests into calls on the
//! [`Sessions`] (in the daemon, or in this process) and their events into
//! `tether/session/event` notifications. Everything that belongs to one editor stays here:
//! documents, encodings, capabilities, diagnostics, code actions, transcripts, progress.
//!
//! Handlers never await a request to the client and never wait for a turn: they answer at
//! once and the work's outcome arrives as events. Tether's own requests do not go through
//! tower-lsp-server's four request slots: [`routing`] takes them off the input and
//! [`dispatch`] runs each where its method's declared schedule says.

pub mod completion;
mod diagnostics;
mod dispatch;
mod documents;
pub mod ext;
mod handlers;
mod lifecycle;
mod notices;
mod progress;
mod routing;
mod tasks;
mod transcripts;
mod transport;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::{
    CodeActionParams, CodeActionResponse, CompletionParams, CompletionResponse,
    DidChangeConfigurationParams, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, ExecuteCommandParams, InitializeParams,
    InitializeResult, InitializedParams, MessageType, PositionEncodingKind, ResourceOperationKind,
    ServerInfo,
};
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

use crate::api::SessionEventParams;
use crate::api::{METHODS, MethodInfo};
use crate::config::EditorLayer;
use crate::front::Sessions;
use crate::session::SessionError;
use dispatch::Scheduler;
pub use documents::text_edits;
use documents::{Documents, SavedDocument};
use ext::SessionEventNotification;
use handlers::apply::EditSupport;
pub(crate) use lifecycle::Lifecycle;

/// Serves LSP on stdin/stdout until the client says `exit` or closes stdin. Tether frames
/// the messages itself ([`transport`]), routes its own requests and the text notifications
/// past tower-lsp-server ([`routing`]), and hands tower only the rest, and only what it can
/// decode: tower's own reader stops at the first message it cannot. Slow requests run on
/// `work`, the session runtime.
pub async fn serve_stdio(sessions: Sessions, work: tokio::runtime::Handle) {
    let (service, socket, backend) = build(sessions, work);
    transport::serve(
        transport::read_stdin(),
        tokio::io::stdout(),
        routing::TetherRouter::new(backend),
        |input, output| Server::new(input, output, socket).serve(service),
    )
    .await;
}

/// The service, for serving over any transport (tests use in-process pipes). Without the
/// router in front, every request goes through tower's four slots.
pub fn build_service(
    sessions: Sessions,
    work: tokio::runtime::Handle,
) -> (LspService<Backend>, tower_lsp_server::ClientSocket) {
    let (service, socket, _) = build(sessions, work);
    (service, socket)
}

fn build(
    sessions: Sessions,
    work: tokio::runtime::Handle,
) -> (LspService<Backend>, tower_lsp_server::ClientSocket, Backend) {
    let (saved_sender, saved_documents) = tokio::sync::mpsc::unbounded_channel();
    let documents = Documents::start(saved_sender);
    let saved_documents = std::sync::Mutex::new(Some(saved_documents));
    let mut served = None;
    let mut builder = LspService::build(|client| {
        let backend = Backend {
            client,
            diagnostics_refresh: sessions.removed().unwrap_or_default(),
            sessions,
            documents,
            saved_documents: Arc::new(saved_documents),
            transcripts: Arc::default(),
            scheduler: Scheduler::new(work),
            tasks: Arc::default(),
            files: Default::default(),
            diffs: Arc::default(),
            state: Arc::new(ServerState {
                lifecycle: AtomicU8::new(Lifecycle::Uninitialized as u8),
                initialized: AtomicBool::default(),
                edit_support: RwLock::default(),
                sessions_loaded: tokio::sync::watch::Sender::new(false),
                opted_in: AtomicBool::default(),
                work_done_progress: AtomicBool::default(),
                roots: RwLock::default(),
                config_error: RwLock::default(),
                warned_repositories: std::sync::Mutex::default(),
                client_name: RwLock::default(),
                early: std::sync::Mutex::default(),
            }),
        };
        served = Some(backend.clone());
        backend
    });
    // Registered with tower too: before `initialize` and after `shutdown` the router leaves
    // them to tower, which answers as the spec says; without the router they run from here.
    for method in METHODS {
        builder = builder.custom_method(method.name, move |backend: &Backend, params: Value| {
            let backend = backend.clone();
            async move { dispatch::dispatch(&backend, method, params).await }
        });
    }
    let (service, socket) = builder.finish();
    let backend = served.expect("LspService::build makes the server before it returns");
    (service, socket, backend)
}

#[derive(Clone)]
pub struct Backend {
    client: Client,
    sessions: Sessions,
    /// The buffers the editor has open.
    documents: Documents,
    /// Saved buffers, taken by whoever handles them once the client is initialized.
    saved_documents:
        Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<SavedDocument>>>>,
    /// Notified when findings go away without an event (a session was deleted).
    diagnostics_refresh: Arc<tokio::sync::Notify>,
    /// The task that keeps transcript documents; set at `initialized`.
    transcripts: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<transcripts::Request>>>,
    /// Where requests run, by their method's schedule.
    scheduler: Scheduler,
    /// The tasks this editor heard of, and their documents.
    tasks: Arc<tasks::KnownTasks>,
    /// The repositories' files, for `@` completion.
    files: crate::workspace::file_index::FileIndex,
    /// Sessions' diffs, for the hunk code actions.
    diffs: Arc<handlers::hunk_actions::DiffCache>,
    state: Arc<ServerState>,
}

struct ServerState {
    /// A [`Lifecycle`]: set at the end of `initialize`, and when `shutdown` is read.
    lifecycle: AtomicU8,
    /// `initialized` was handled (it starts tasks that must run once).
    initialized: AtomicBool,
    /// What the client's `workspace/applyEdit` can take.
    edit_support: RwLock<EditSupport>,
    /// Becomes true once the sessions of every workspace repository are rebuilt from their
    /// logs; session requests wait for it so that none sees a half-loaded list.
    sessions_loaded: tokio::sync::watch::Sender<bool>,
    /// The client set `capabilities.experimental.tether`: it gets custom notifications.
    opted_in: AtomicBool,
    /// The client accepts server-initiated `$/progress` (`window.workDoneProgress`).
    work_done_progress: AtomicBool,
    /// Workspace folders, in the order the client gave them.
    roots: RwLock<Vec<PathBuf>>,
    /// Settings that failed to load at `initialize`, reported once `initialized` arrives.
    config_error: RwLock<Option<String>>,
    /// Repositories whose `.tether/config.toml` warnings were shown: once each is enough.
    warned_repositories: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
    /// The editor's name from `initialize` (`clientInfo.name`): sessions it starts say so.
    client_name: RwLock<Option<String>>,
    /// Subscriptions made before `initialize` is answered, for the tasks `initialized`
    /// starts: a session the client creates before `initialized` is handled (the router
    /// takes requests past tower's queue) is heard of from its first event.
    early: std::sync::Mutex<Option<EarlySubscriptions>>,
}

struct EarlySubscriptions {
    events: crate::session::Subscription,
    notices: crate::session::Subscription,
    progress: crate::session::Subscription,
}

impl Backend {
    /// Who sessions this editor starts were started by.
    fn started_by(&self) -> crate::vocab::StartedBy {
        crate::vocab::StartedBy::Editor {
            name: self
                .state
                .client_name
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// Asks the transcript task; `None` before `initialized`.
    fn transcripts(&self, request: transcripts::Request) -> bool {
        self.transcripts
            .get()
            .is_some_and(|sender| sender.send(request).is_ok())
    }

    fn edit_support(&self) -> EditSupport {
        *self
            .state
            .edit_support
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn roots(&self) -> Vec<PathBuf> {
        self.state
            .roots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until the workspace's sessions are rebuilt from their logs.
    async fn sessions_ready(&self) {
        let _ = self
            .state
            .sessions_loaded
            .subscribe()
            .wait_for(|loaded| *loaded)
            .await;
    }

    /// Shows, once per repository, what the `.tether/config.toml` of the repository holding
    /// `root` tried that was ignored (settings looser than the user's). Runs in its own task:
    /// it reads files and sends to the client, so a handler never waits for it.
    fn warn_about_repository_config(&self, root: PathBuf) {
        let backend = self.clone();
        tokio::spawn(async move {
            let sessions = backend.sessions.clone();
            let found = tokio::task::spawn_blocking(move || sessions.config_warnings(&root)).await;
            let (repository, warnings) = match found {
                Ok(Ok(found)) => found,
                // A settings file that cannot be read: say so once; sessions say it again.
                Ok(Err(error @ crate::session::SessionError::Config(_))) => {
                    backend
                        .client
                        .show_message(
                            MessageType::ERROR,
                            format!("tether: the settings cannot be used: {error}"),
                        )
                        .await;
                    return;
                }
                // No repository here: creating a session there says why.
                _ => return,
            };
            if warnings.is_empty()
                || !backend
                    .state
                    .warned_repositories
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(repository.clone())
            {
                return;
            }
            let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
            backend
                .client
                .show_message(
                    MessageType::WARNING,
                    format!(
                        "tether: {} tried to loosen your safety settings:\n{}",
                        repository.display(),
                        lines.join("\n")
                    ),
                )
                .await;
        });
    }

    /// Forwards the sessions' events to the client, in order, for as long as it is connected.
    fn start_event_forwarding(&self, mut events: crate::session::Subscription) {
        let client = self.client.clone();
        tokio::spawn(async move {
            // Gap-free: what the channel dropped is re-read from the logs first.
            while let Some(announced) = events.next().await {
                let params = SessionEventParams {
                    session_id: announced.session_id.to_string(),
                    seq: announced.record.seq,
                    at: announced.record.at,
                    event: announced.record.event.clone(),
                };
                client
                    .send_notification::<SessionEventNotification>(params)
                    .await;
            }
        });
    }
}

pub(crate) fn rpc_error(code: i64, message: String) -> jsonrpc::Error {
    jsonrpc::Error {
        code: ErrorCode::ServerError(code),
        message: message.into(),
        data: None,
    }
}

/// Maps a domain error to the JSON-RPC error a client sees (codes in docs/protocol.md).
pub(crate) fn session_error(error: SessionError) -> jsonrpc::Error {
    handlers::session::host_error(crate::host::HostError::from(error))
}

fn path_of_uri(uri: &tower_lsp_server::ls_types::Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|path| path.into_owned())
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let opted_in = params
            .capabilities
            .experimental
            .as_ref()
            .and_then(|experimental| experimental.get("tether"))
            .is_some_and(|value| value == &Value::Bool(true) || value.is_object());
        self.state.opted_in.store(opted_in, Ordering::SeqCst);
        *self
            .state
            .client_name
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = params
            .client_info
            .as_ref()
            .map(|info| info.name.chars().take(100).collect());
        if let (Sessions::Remote(remote), Some(info)) = (&self.sessions, &params.client_info) {
            remote.set_client_name(&info.name.chars().take(100).collect::<String>());
        }
        let work_done_progress = params
            .capabilities
            .window
            .as_ref()
            .and_then(|window| window.work_done_progress)
            .unwrap_or(false);
        self.state
            .work_done_progress
            .store(work_done_progress, Ordering::SeqCst);

        let utf8 = params
            .capabilities
            .general
            .as_ref()
            .and_then(|general| general.position_encodings.as_ref())
            .is_some_and(|encodings| encodings.contains(&PositionEncodingKind::UTF8));
        self.documents.set_utf8(utf8);
        let workspace_edit = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|workspace| workspace.workspace_edit.as_ref());
        let resource_operations = workspace_edit
            .and_then(|edit| edit.resource_operations.clone())
            .unwrap_or_default();
        let document_changes = workspace_edit
            .and_then(|edit| edit.document_changes)
            .unwrap_or(false);
        *self
            .state
            .edit_support
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = EditSupport {
            document_changes,
            create: document_changes
                && resource_operations.contains(&ResourceOperationKind::Create),
            rename: document_changes
                && resource_operations.contains(&ResourceOperationKind::Rename),
            delete: document_changes
                && resource_operations.contains(&ResourceOperationKind::Delete),
        };

        #[allow(deprecated)] // root_uri: older clients send only that
        let roots: Vec<PathBuf> = match (&params.workspace_folders, &params.root_uri) {
            (Some(folders), _) if !folders.is_empty() => folders
                .iter()
                .filter_map(|folder| path_of_uri(&folder.uri))
                .collect(),
            (_, Some(root)) => path_of_uri(root).into_iter().collect(),
            _ => Vec::new(),
        };
        *self
            .state
            .roots
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = roots;

        let options = match params.initialization_options {
            // Lua clients encode an empty table as `[]`: no settings, as `{}` would be.
            Some(Value::Array(items)) if items.is_empty() => None,
            other => other,
        };
        if let Some(options) = options
            && let Err(error) = self
                .sessions
                .set_editor_layer(EditorLayer::Initialization, options)
        {
            *self
                .state
                .config_error
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.to_string());
        }

        // Rebuild the sessions of every workspace repository off the request path; session
        // requests wait for it, `initialize` does not.
        let sessions = self.sessions.clone();
        let roots = self.roots();
        let state = self.state.clone();
        tokio::spawn(async move {
            for root in roots {
                if let Err(error) = sessions.open_repository(root.clone()).await {
                    tracing::info!("{}: no sessions here: {error}", root.display());
                }
            }
            state.sessions_loaded.send_replace(true);
        });

        let result = InitializeResult {
            capabilities: lifecycle::server_capabilities(utf8),
            server_info: Some(ServerInfo {
                name: "tether".to_owned(),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            }),
            ..Default::default()
        };
        *self
            .state
            .early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(EarlySubscriptions {
            events: self.sessions.subscribe(),
            notices: self.sessions.subscribe(),
            progress: self.sessions.subscribe(),
        });
        // From the moment the answer goes out, the client may send anything: the router
        // takes Tether's requests and the text notifications from here on.
        if self.lifecycle() == Lifecycle::Uninitialized {
            self.set_lifecycle(Lifecycle::Initialized);
        }
        Ok(result)
    }

    async fn initialized(&self, _: InitializedParams) {
        self.on_initialized();
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        self.set_lifecycle(Lifecycle::ShutDown);
        self.sessions.shutdown().await;
        Ok(())
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        self.on_configuration(params.settings);
    }

    // The text notifications reach these only when the router leaves them to tower (before
    // `initialize` is answered, when tower drops them anyway); see `routing.rs`.
    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        if let Some(path) = path_of_uri(&params.text_document.uri) {
            self.documents.open(
                path,
                params.text_document.version,
                params.text_document.text,
            );
        }
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        if let Some(path) = path_of_uri(&params.text_document.uri) {
            self.documents
                .change(path, params.text_document.version, params.content_changes);
        }
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        if let Some(path) = path_of_uri(&params.text_document.uri) {
            self.documents.saved(path, params.text);
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        if let Some(path) = path_of_uri(&params.text_document.uri) {
            self.documents.close(path);
        }
    }

    async fn completion(
        &self,
        params: CompletionParams,
    ) -> jsonrpc::Result<Option<CompletionResponse>> {
        Ok(handlers::completion::document_completions(self, params).await)
    }

    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> jsonrpc::Result<Option<CodeActionResponse>> {
        self.sessions_ready().await;
        let mut actions = handlers::code_action::actions(&self.sessions, &params);
        if let Some(document) = params.text_document.uri.to_file_path() {
            let document = document.into_owned();
            let open = self.documents.read(vec![document.clone()]).await;
            let current = open
                .get(&document)
                .filter(|open| open.in_sync)
                .map(|open| open.text.to_string());
            let (start, end) = (params.range.start.line, params.range.end.line);
            actions.extend(
                handlers::hunk_actions::actions(
                    &self.sessions,
                    &self.diffs,
                    &document,
                    current,
                    start.min(end) as usize,
                    start.max(end) as usize,
                )
                .await,
            );
            actions.extend(tasks::document_actions(&self.tasks, &document));
            if transcripts::repository_of_document(&document).is_some() {
                actions.extend(handlers::git_actions::actions(&self.sessions, &document));
                let open = self.documents.read(vec![document.clone()]).await;
                if let Some(open) = open.get(&document).filter(|open| open.in_sync) {
                    actions.extend(handlers::message_actions::actions(
                        &self.sessions,
                        &params.text_document.uri,
                        &document,
                        &open.text.to_string(),
                        params.range.start.line,
                    ));
                }
            }
        }
        Ok(Some(actions))
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> jsonrpc::Result<Option<Value>> {
        // Known commands are routed past tower (`routing.rs`); this is the rest.
        let Some(method) = MethodInfo::for_command(&params.command) else {
            return Err(jsonrpc::Error::invalid_params(format!(
                "unknown command {:?}",
                params.command
            )));
        };
        let argument = params
            .arguments
            .into_iter()
            .next()
            .unwrap_or_else(|| json!({}));
        dispatch::dispatch(self, method, argument).await.map(Some)
    }
}
