//! locktop: a terminal dashboard of live PostgreSQL lock state — lease rows (TTL "ENTRY locks") and
//! `pg_locks` waits — for an operator in the middle of an incident. Read-only, one dedicated connection.
//!
//! The tree follows the data: `source` polls (the only SQL), `model` applies the runbook's rules (pure),
//! `cmd` wires them to the command line.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod demo;
pub mod model;
pub mod recording;
pub mod serve;
pub mod source;
pub mod theme;
pub mod ui;
