//! The dispatcher role: take a delivery task from the queue, sign it, POST it, record the
//! attempt, schedule the next one if it failed, and only then settle the task.
//!
//! - [`config`]: what an operator tunes (concurrency, timeout, retry schedule).
//! - [`sender`]: the outbound HTTP exchange and how its failures are named.
//! - [`delivery`]: one task, start to finish, as a function of the stores ([`Dispatcher::deliver`]:
//!   admit, exchange, settle); a task whose circuit is open is held (`hold.rs`), not attempted.
//! - [`oauth`]: OAuth2 client-credentials tokens for endpoints that want a bearer token.
//! - [`worker`]: the consume loop with bounded concurrency and graceful shutdown.
//!
//! Invariant: a task is acked only after its outcome (attempt record, and the next retry when
//! there is one) is durable in the store. Any store failure requeues the task instead, so a
//! crash at any point repeats an attempt rather than losing one.

mod cache;
pub mod config;
pub mod delivery;
mod health;
mod hold;
mod in_flight;
mod keys;
pub mod oauth;
mod queue_age;
pub mod sender;
mod settle;
mod turns;
pub mod worker;

pub use config::DispatcherConfig;
pub use delivery::{Attempted, Delivered, DeliveryError, Dispatcher, Outcome};
