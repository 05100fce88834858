//! Where a session's lifecycle meets its hooks: which run when, in a trusted repository only,
//! each run recorded as a `hook` item, and what the agent is told.

use std::path::Path;
use std::sync::Arc;

use super::actor::SessionHandle;
use super::{SessionError, SessionManager};
use crate::hooks::{HookEvent, HookInput, HookRun, HookStatus};
use crate::session::transcript;
use crate::vocab::{Item, ItemPhase, MessageRole, SessionStatus, new_item_id};

/// How many times hooks may block one session's activation before their blocks are only
/// recorded (so a hook that always exits 2 cannot loop the agent forever).
pub const MAX_HOOK_BLOCKS: u32 = 3;

impl SessionManager {
    /// Trusts a repository's hooks (they run from now on).
    pub fn trust_hooks(&self, root: &Path) -> Result<(), SessionError> {
        let store = self.open_repository(root)?;
        store.trust_hooks()?;
        Ok(())
    }

    /// Runs the hooks of `event` for a session and records each run. Returns the runs
    /// (none when there are no hooks, or the repository is not trusted).
    pub(super) async fn run_hooks(
        &self,
        handle: &Arc<SessionHandle>,
        event: HookEvent,
    ) -> Vec<HookRun> {
        let view = handle.view();
        let (spec, in_loop) = (view.spec.clone(), view.in_loop);
        let Some(resolved) = self.settings_or_report(handle, format!("the {event} hooks")) else {
            return Vec::new();
        };
        let config = &resolved.config;
        let hooks = config.hooks.for_event(event);
        if hooks.is_empty() {
            return Vec::new();
        }
        if !trusted(&handle.store, config, &spec.repo) {
            for hook in hooks {
                self.record_hook(
                    handle,
                    event,
                    &HookRun {
                        name: hook.name.clone(),
                        status: HookStatus::Skipped,
                        exit_code: None,
                        duration_ms: 0,
                        output: "not run: this repository's hooks are not trusted; run the command tether.trust, or list the repository under [trust] repositories in your own settings".to_owned(),
                        message_for_agent: None,
                    },
                );
            }
            return Vec::new();
        }
        let changed_files = match event {
            HookEvent::OnInit => Vec::new(),
            _ => self
                .diff(&spec.id)
                .await
                .map(|files| files.into_iter().map(|file| file.path).collect())
                .unwrap_or_default(),
        };
        let input = HookInput {
            session_id: spec.id.clone(),
            transcript_path: transcript::path(&spec.repo, &spec.name)
                .display()
                .to_string(),
            worktree: spec.worktree.display().to_string(),
            branch: spec.branch.clone(),
            event,
            changed_files,
            in_loop,
        };
        let jail = self.jail(&handle.store, &spec, &spec.worktree, config);
        let runs = self
            .inner
            .hooks
            .run(&config.hooks, &spec.repo, &jail, &input)
            .await;
        // Hooks leave nothing running, and put back the gitlink if they changed it.
        match crate::workspace::SessionWorktree::pin(&spec.repo, &spec.worktree) {
            Ok(worktree) => super::git::end_programs(&spec.id, &worktree),
            Err(_) => {
                crate::sandbox::end_owner(&spec.id);
            }
        }
        for run in &runs {
            self.record_hook(handle, event, run);
        }
        runs
    }

    /// Tells the agent what the hooks said. With `may_block`, a blocking hook's complaint is
    /// a user message (so the agent answers it now), up to [`MAX_HOOK_BLOCKS`] times; every
    /// other message is a note the agent gets with its next message.
    pub(super) async fn tell_agent(
        &self,
        handle: &SessionHandle,
        runs: Vec<HookRun>,
        may_block: bool,
    ) -> Result<(), SessionError> {
        if runs.iter().all(|run| run.message_for_agent.is_none()) {
            return Ok(());
        }
        handle
            .run(move |actor| {
                // Notes first, so that they ride along with a blocking hook's message.
                let (blocking, others): (Vec<HookRun>, Vec<HookRun>) = runs
                    .into_iter()
                    .partition(|run| run.status == HookStatus::Blocked);
                for run in others.into_iter().chain(blocking) {
                    let Some(message) = run.message_for_agent else {
                        continue;
                    };
                    let blocks = may_block
                        && run.status == HookStatus::Blocked
                        && actor.hook_blocks < MAX_HOOK_BLOCKS;
                    if blocks {
                        actor.hook_blocks += 1;
                    }
                    let role = if blocks {
                        MessageRole::User
                    } else {
                        MessageRole::System
                    };
                    actor.emit_item(
                        ItemPhase::Completed,
                        Item::Message {
                            id: new_item_id(),
                            role,
                            text: message,
                            interrupted: false,
                            attachments: Vec::new(),
                        },
                    )?;
                }
                Ok(())
            })
            .await
    }

    fn record_hook(&self, handle: &SessionHandle, event: HookEvent, run: &HookRun) {
        let item = Item::Hook {
            id: new_item_id(),
            event,
            name: run.name.clone(),
            status: run.status,
            exit_code: run.exit_code,
            duration_ms: run.duration_ms,
            output: run.output.clone(),
        };
        handle.tell(move |actor| {
            if let Err(error) = actor.emit_item(ItemPhase::Completed, item) {
                tracing::warn!("session {}: cannot record a hook run: {error}", actor.id);
            }
        });
    }

    /// Completes a session after its `on_done` hooks: a hook that blocks (exit 2) keeps the
    /// session open and sends its complaint to the agent instead. Without `on_done` hooks it
    /// completes at once; with them it answers at once and completes when they pass.
    pub async fn complete_after_hooks(&self, id: &str) -> Result<super::SessionInfo, SessionError> {
        let handle = self.writable_handle(id)?;
        let view = handle.view();
        let has_hooks = self
            .config_of(&view.spec)
            .is_ok_and(|resolved| !resolved.config.hooks.on_done.is_empty());
        if !has_hooks {
            return self.complete(id).await;
        }
        if !matches!(
            view.info.status,
            SessionStatus::Waiting | SessionStatus::Stopped | SessionStatus::Failed
        ) {
            return Err(SessionError::InvalidState {
                name: view.spec.name.clone(),
                status: view.info.status,
                operation: "complete",
                hint: "; stop it first",
            });
        }
        let manager = self.clone();
        let session_id = id.to_owned();
        let info = view.info.clone();
        self.inner.runtime.spawn(async move {
            let runs = manager.run_hooks(&handle, HookEvent::OnDone).await;
            let blocked: Vec<String> = runs
                .iter()
                .filter(|run| run.status == HookStatus::Blocked)
                .filter_map(|run| run.message_for_agent.clone())
                .collect();
            let any_blocked = !blocked.is_empty();
            let may_block = handle
                .run(move |actor| {
                    let may_block = actor.done_blocks < MAX_HOOK_BLOCKS;
                    if may_block && any_blocked {
                        actor.done_blocks += 1;
                    }
                    Ok(may_block)
                })
                .await
                .unwrap_or(false);
            let outcome = if blocked.is_empty() || !may_block {
                manager.complete(&session_id).await.map(drop)
            } else {
                // Not done yet: the agent gets to fix what the hook found.
                let text = format!(
                    "{}\nFix this, then say when you are done.",
                    blocked.join("\n\n")
                );
                match handle.view().info.status {
                    SessionStatus::Waiting => manager.send(&session_id, text).await.map(drop),
                    _ => manager.resume(&session_id, Some(text)).await.map(drop),
                }
            };
            if let Err(error) = outcome {
                tracing::warn!("session {session_id}: after on_done hooks: {error}");
            }
        });
        Ok(info)
    }
}

/// Whether the user trusts `repo` to run its own programs (its hooks, its MCP servers):
/// through `tether.trust`, or by listing it under `[trust] repositories`.
pub(super) fn trusted(
    store: &crate::store::RepoStore,
    config: &crate::config::Config,
    repo: &Path,
) -> bool {
    let canonical = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_owned());
    store.hooks_trusted()
        || config
            .trust
            .repositories
            .iter()
            .any(|trusted| canonical(trusted) == canonical(repo))
}
