//! The connection's lifecycle as the server lives it: the capabilities `initialize`
//! answers, what starts at `initialized`, settings from `didChangeConfiguration`, and the
//! [`Lifecycle`] state the router reads to know when it may take messages.
//!
//! `initialized` and `didChangeConfiguration` are handled when they are read, in order with
//! the requests around them (`routing.rs` calls [`Backend::on_initialized`] and
//! [`Backend::on_configuration`] from the reading task): a request sent after new settings
//! must see them, and one sent after `initialized` must find the transcripts task started.
//! Neither waits on anything; what they tell the user goes out from tasks of their own.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tower_lsp_server::ls_types::{
    CodeActionProviderCapability, CompletionOptions, ExecuteCommandOptions, MessageType,
    PositionEncodingKind, SaveOptions, ServerCapabilities, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions,
    WorkspaceFoldersServerCapabilities, WorkspaceServerCapabilities,
};

use super::{Backend, diagnostics, notices, progress, transcripts};
use crate::api::{self, METHODS, MethodInfo};
use crate::config::EditorLayer;
use crate::front::Sessions;

/// Where the connection is in LSP's lifecycle, as far as the router needs to know: it takes
/// messages only while the server is initialized and not shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Lifecycle {
    Uninitialized = 0,
    Initialized = 1,
    ShutDown = 2,
}

/// What `initialize` answers the server can do; the commands and the custom methods come
/// from the method table.
pub(super) fn server_capabilities(utf8: bool) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(if utf8 {
            PositionEncodingKind::UTF8
        } else {
            PositionEncodingKind::UTF16
        }),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(true),
                })),
                ..Default::default()
            },
        )),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        // `@` files and `/` commands in transcript documents and the draft.
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["@".to_owned(), "/".to_owned()]),
            ..Default::default()
        }),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: METHODS.iter().map(MethodInfo::command).collect(),
            ..Default::default()
        }),
        workspace: Some(WorkspaceServerCapabilities {
            workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                supported: Some(true),
                change_notifications: None,
            }),
            file_operations: None,
        }),
        experimental: Some(json!({
            "tether": {
                "protocolVersion": 1,
                "methods": METHODS.iter().map(|method| method.name).collect::<Vec<_>>(),
                "notifications": [api::SESSION_EVENT, api::TASK_EVENT],
            }
        })),
        ..Default::default()
    }
}

impl Backend {
    pub(crate) fn lifecycle(&self) -> Lifecycle {
        match self.state.lifecycle.load(Ordering::SeqCst) {
            0 => Lifecycle::Uninitialized,
            1 => Lifecycle::Initialized,
            _ => Lifecycle::ShutDown,
        }
    }

    pub(crate) fn set_lifecycle(&self, lifecycle: Lifecycle) {
        self.state
            .lifecycle
            .store(lifecycle as u8, Ordering::SeqCst);
    }

    /// `initialized`: starts the tasks beside the handlers (transcripts, event forwarding,
    /// diagnostics, progress) and tells the user what `initialize` could not. Once only: a
    /// second `initialized` would forward every event twice.
    pub(crate) fn on_initialized(&self) {
        if self.state.initialized.swap(true, Ordering::SeqCst) {
            tracing::warn!("a second `initialized` was ignored");
            return;
        }
        let saved = self
            .saved_documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(saved) = saved {
            let sender = transcripts::start(
                self.client.clone(),
                self.sessions.clone(),
                self.documents.clone(),
                saved,
                self.state.sessions_loaded.subscribe(),
                self.started_by(),
                self.tasks.clone(),
            );
            let _ = self.transcripts.set(sender);
        }
        let Some(early) = self
            .state
            .early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            tracing::warn!("`initialized` came before `initialize` was answered");
            return;
        };
        if self.state.opted_in.load(Ordering::SeqCst) {
            self.start_event_forwarding(early.events);
        }
        super::tasks::start(self);
        {
            let backend = self.clone();
            tokio::spawn(async move {
                backend.sessions_ready().await;
                diagnostics::start(
                    backend.client.clone(),
                    backend.sessions.clone(),
                    backend.diagnostics_refresh.clone(),
                );
            });
        }
        notices::start(self.client.clone(), self.sessions.clone(), early.notices);
        if let Sessions::Remote(remote) = &self.sessions
            && let Some(mut daemon_notices) = remote.take_notices()
        {
            // What the daemon link has to say (another version, no daemon): as it happens.
            let client = self.client.clone();
            tokio::spawn(async move {
                while let Some(notice) = daemon_notices.recv().await {
                    client.show_message(MessageType::WARNING, notice).await;
                }
            });
        }
        if self.state.work_done_progress.load(Ordering::SeqCst) {
            progress::start(self.client.clone(), self.sessions.clone(), early.progress);
        }
        let config_error = self
            .state
            .config_error
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(error) = config_error {
            self.show_error(format!(
                "tether: the editor's settings were ignored: {error}"
            ));
        }
        for root in self.roots() {
            self.warn_about_repository_config(root);
        }
    }

    /// `workspace/didChangeConfiguration`: the new settings replace the editor's last ones,
    /// or, when they cannot be used, the user is told and nothing changes.
    pub(crate) fn on_configuration(&self, settings: Value) {
        let applied = tether_settings(settings).and_then(|settings| {
            self.sessions
                .set_editor_layer(EditorLayer::Settings, settings)
                .map_err(|error| error.to_string())
        });
        if let Err(error) = applied {
            self.show_error(format!(
                "tether: the new settings were not applied, the ones before stay: {error}"
            ));
        }
    }

    /// `window/showMessage` (Error) from a task of its own.
    fn show_error(&self, message: String) {
        let client = self.client.clone();
        tokio::spawn(async move { client.show_message(MessageType::ERROR, message).await });
    }
}

/// Tether's part of `workspace/didChangeConfiguration`'s `settings`: its `tether` key when it
/// has one, else the whole object; null for none. Anything that is not an object is refused
/// with a message naming what it was, so that garbage never replaces the settings.
fn tether_settings(settings: Value) -> Result<Value, String> {
    match settings {
        Value::Object(mut settings) => match settings.remove("tether") {
            None => Ok(Value::Object(settings)),
            Some(tether @ (Value::Object(_) | Value::Null)) => Ok(tether),
            Some(other) => Err(format!(
                "`settings.tether` is {}, not an object of tether's settings",
                crate::config::kind_of(&other)
            )),
        },
        Value::Null => Ok(Value::Null),
        other => Err(format!(
            "`settings` is {}, not an object of tether's settings",
            crate::config::kind_of(&other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_are_not_an_object_are_refused_naming_what_they_were() {
        let settings = json!({"session": {"network": false}});
        assert_eq!(
            tether_settings(json!({"tether": settings.clone()})),
            Ok(settings.clone())
        );
        assert_eq!(tether_settings(settings.clone()), Ok(settings));
        assert_eq!(tether_settings(Value::Null), Ok(Value::Null));
        assert_eq!(tether_settings(json!({"tether": null})), Ok(Value::Null));
        assert_eq!(tether_settings(json!({})), Ok(json!({})));
        for (settings, what) in [
            (json!([]), "`settings` is an array"),
            (json!(["x"]), "`settings` is an array"),
            (json!("tether"), "`settings` is a string"),
            (json!(7), "`settings` is a number"),
            (json!({"tether": []}), "`settings.tether` is an array"),
            (json!({"tether": false}), "`settings.tether` is a boolean"),
        ] {
            let error = tether_settings(settings.clone()).expect_err("refused");
            assert!(error.starts_with(what), "{settings}: {error}");
        }
    }
}
