//! One file per group of handlers: each `impl Handler for methods::X` is the work of one
//! request of the method table (`crate::api`).

pub mod apply;
pub mod code_action;
pub mod completion;
pub mod git_actions;
pub mod hunk_actions;
pub mod message_actions;
pub mod session;
pub mod tasks;
pub mod transcript;
