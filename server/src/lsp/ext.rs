//! Tether's custom LSP extensions, LSP side: the `tether/session/event` notification as a
//! tower-lsp-server `Notification`. The requests themselves — names, params, results and
//! where each runs — are the typed table in [`crate::api`]; docs/protocol.md documents both.

use tower_lsp_server::ls_types::notification::Notification;

pub use crate::api::error_code;
use crate::api::{SESSION_EVENT, SessionEventParams, TASK_EVENT, TaskEventParams};

/// `tether/session/event`: `{sessionId, seq, at, event}`, sent only to clients that set
/// `capabilities.experimental.tether`.
pub enum SessionEventNotification {}

impl Notification for SessionEventNotification {
    type Params = SessionEventParams;
    const METHOD: &'static str = SESSION_EVENT;
}

/// `tether/task/event`: `{taskId, task}`, sent only to clients that set
/// `capabilities.experimental.tether`.
pub enum TaskEventNotification {}

impl Notification for TaskEventNotification {
    type Params = TaskEventParams;
    const METHOD: &'static str = TASK_EVENT;
}
