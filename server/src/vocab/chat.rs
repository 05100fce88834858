//! The conversation as the model sees it: messages, their roles, and the tool calls they
//! carry. Kept in the session's state (rebuilt from its log) and sent by every provider.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    System,
    User,
    Assistant,
    /// The result of a tool call, answering `tool_call_id`.
    Tool,
}

/// A tool call as the model asked for it; `arguments` is the JSON text it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallRequest {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A file attached to a user message, with its bytes once they are read for a request
/// (the conversation in memory holds only what names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAttachment {
    pub file: super::Attachment,
    pub data: Option<std::sync::Arc<Vec<u8>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
    /// On a user message: the files attached to it.
    pub attachments: Vec<ChatAttachment>,
    /// On an assistant message: the tools it called.
    pub tool_calls: Vec<ToolCallRequest>,
    /// On a tool message: the call it answers.
    pub tool_call_id: Option<String>,
}

/// How much of `history` the model has answered: everything up to and with its last reply
/// (what the user or a tool said since waits for the next one).
pub fn answered_len(history: &[ChatMessage]) -> usize {
    history
        .iter()
        .rposition(|message| message.role == ChatRole::Assistant)
        .map_or(0, |last| last + 1)
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            attachments: Vec::new(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}
