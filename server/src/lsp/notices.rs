//! `window/showMessage` for what a user must see even with no session panel open: a session
//! that failed, and a session that waits with a reason (its settings kept hooks or reviews
//! from running). Every client gets these: they are standard LSP.

use tower_lsp_server::Client;
use tower_lsp_server::ls_types::MessageType;

use crate::front::Sessions;
use crate::session::{Event, SessionStatus, Subscription};

/// Shows what `events` (subscribed when `initialize` was answered) calls for.
pub fn start(client: Client, manager: Sessions, mut events: Subscription) {
    tokio::spawn(async move {
        while let Some(announced) = events.next().await {
            let Event::Status {
                status,
                reason: Some(reason),
                ..
            } = &announced.record.event
            else {
                continue;
            };
            let (kind, what) = match status {
                SessionStatus::Failed => (MessageType::ERROR, " failed: "),
                SessionStatus::Waiting => (MessageType::WARNING, ": "),
                _ => continue,
            };
            let name = manager
                .info(&announced.session_id)
                .map(|info| info.name)
                .unwrap_or_else(|_| announced.session_id.to_string());
            client
                .show_message(kind, format!("tether: session {name}{what}{reason}"))
                .await;
        }
    });
}
