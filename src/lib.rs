//! locktop: a terminal dashboard of live PostgreSQL lock state — lease rows (TTL "ENTRY locks") and
//! `pg_locks` waits — for an operator in the middle of an incident. Read-only, one dedicated connection.
//!
//! The tree follows the data: `source` polls (the only SQL), `model` applies the runbook's rules (pure),
//! `app` holds the UI state, `ui` draws it, `cmd` wires them to the command line; `rig` is the demo's
//! throwaway cluster and workload, not the product. ARCHITECTURE.md has the map.

pub mod app;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod model;
pub mod recording;
pub mod rig;
pub mod source;
pub mod theme;
pub mod ui;
