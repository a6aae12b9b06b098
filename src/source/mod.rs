//! The only code that speaks SQL. One dedicated, read-only `PgConnection` polls the lease rows and the lock
//! waits; a tokio task runs the polls and publishes the latest state on a watch channel (latest wins), so the
//! UI never awaits the database and a slow poll is skipped, never queued.

pub mod connect;
pub mod conninfo;
pub mod error;
pub mod fleet;
pub mod lease;
pub mod locks;
pub mod mirror;
pub mod monitor;
pub mod packed;
pub mod poller;
pub mod read;
pub mod service;
pub mod simple;
pub mod text;
mod unread;

pub use crate::model::feed::{Control, Feed, Link};
pub use connect::{Pooler, SessionLimits, Target};
pub use error::SourceError;
pub use monitor::{LeaseDetail, Monitor, SUMMARY_REFRESH};
pub use poller::{Backoff, PollerSettings, every, run_poller, unsteered};
