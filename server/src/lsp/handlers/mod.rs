//! One file per group of handlers.

pub mod session;
