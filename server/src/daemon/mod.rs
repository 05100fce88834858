//! The session host as a per-user daemon (DESIGN.md, "Session host"): `tether daemon` owns
//! the sessions of a state folder and serves them over a Unix socket; `tether lsp`, `tether
//! run` and `tether sessions …` are its fronts. [`paths`] places and guards the socket,
//! [`wire`] is what goes over it, [`server`] is the daemon, [`client`] a front's connection.

pub mod client;
pub mod commands;
pub mod paths;
pub mod schedules;
pub mod server;
pub mod wire;
