//! One file per group of handlers.

pub mod apply;
pub mod code_action;
pub mod session;
