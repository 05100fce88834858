//! Tether: AI coding-agent sessions, served to editors over the Language Server Protocol.
//!
//! The crate is split by job (see `docs/architecture.md`):
//! - [`session`] owns the domain: sessions, events, the state machine and the manager.
//! - [`store`] owns the durable, append-only event logs and the per-repository lock.
//! - [`agent`] runs one turn of a session against a model provider.
//! - [`provider`] speaks the model providers' wire formats.
//! - [`sandbox`] confines the programs run for a session (commands, hooks).
//! - [`workspace`] owns git: repository discovery, worktrees and branches.
//! - [`config`] merges settings from files, the editor and the environment.
//! - [`vocab`] is the shared vocabulary (events, items, ids, state): a leaf every layer uses.
//! - [`api`] is the session protocol as one typed method table (serde only, no LSP).
//! - [`lsp`] is the only module that knows LSP; it translates to and from the domain.

pub mod acp;
pub mod agent;
pub mod api;
mod beneath;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod front;
pub mod hooks;
pub mod host;
pub mod lsp;
pub mod mcp;
pub mod provider;
pub mod review;
pub mod sandbox;
pub mod session;
pub mod store;
pub mod vocab;
pub mod workspace;
