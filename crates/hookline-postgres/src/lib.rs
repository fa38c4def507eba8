//! Hookline's delivery log on PostgreSQL.
//!
//! Redis (or any hot store) keeps what is short-lived: idempotency claims, outbox marks, the
//! retry schedule, breaker and rate state. [`PgLog`] keeps what a person reads for weeks:
//! messages, their per-endpoint state and every attempt, in tables partitioned by day on
//! their ids, so retention is dropping a day's partitions, never deleting rows.
//! [`LoggedStore`] puts the two together behind the store ports the roles already use.
//!
//! Architecture invariants:
//! - Every write of the log is one statement for a whole batch (rows passed as arrays and
//!   `unnest`ed), so the log adds one round trip per batch, not per delivery.
//! - Only `schema.rs` knows table and partition names; only `migrations/` changes the schema.

mod codec;
mod log;
mod schema;
mod store;

use std::time::Duration;

use hookline_core::ports::StoreError;
use hookline_core::secret::SecretText;

pub use log::{stored_attempt, stored_message, AttemptsBy, PgLog};
pub use schema::{Migration, MIGRATIONS};
pub use store::LoggedStore;

/// How to reach PostgreSQL and how long to keep the log.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// A `postgres://` URL (or `key=value` connection string); may carry a password.
    pub url: SecretText,
    /// The schema that holds the log's tables (created by the migrations); tests use one
    /// each.
    pub schema: String,
    /// Connections per process.
    pub pool_size: usize,
    /// How long a statement may take before the store answers "unavailable".
    pub statement_timeout: Duration,
    /// Days of log kept: a day's partitions are dropped once all of it is older.
    pub retention_days: u64,
    /// Days of partitions made ahead of today.
    pub days_ahead: u64,
}

impl PgConfig {
    /// Defaults for `url`: schema `hookline`, 16 connections, 5 s statements, 30 days kept,
    /// partitions 3 days ahead.
    pub fn new(url: SecretText) -> Self {
        Self {
            url,
            schema: "hookline".into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            retention_days: 30,
            days_ahead: 3,
        }
    }
}

/// Failures of the PostgreSQL log outside the store ports (start-up, migrations).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("postgres settings: {0}")]
    Config(String),
    #[error("postgres: {0}")]
    Database(String),
    #[error("the database's schema is at version {found}, newer than this binary's {known}")]
    TooNew { found: i32, known: i32 },
}

/// A database error as the ports say it: the log is unavailable (retry later), never "the
/// data is gone". The message is the server's, without the connection string.
pub(crate) fn unavailable(error: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(format!("postgres: {}", described(&error)))
}

/// An error with its causes: the driver's own `Display` says only "db error", the server's
/// message is its source.
pub(crate) fn described(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
