//! End-to-end tests: the built `tether` binary over stdio, real git, a real HTTP model server.

mod support;

mod acp;
mod agent;
mod agents;
mod apply;
mod bad_input;
mod cli;
mod config;
mod confinement;
mod context;
mod conversation;
mod crash;
mod daemon;
mod feedback;
mod findings;
mod front;
mod git_ops;
mod helix;
mod hooks;
mod instructions;
mod lifecycle;
mod local_model;
mod loops;
mod malformed;
mod mcp;
mod neovim;
mod provider;
mod pull_requests;
mod real_agents;
mod review;
mod scheduling;
mod surfaces;
mod tasks;
mod transcripts;
mod vscode;
