//! Hookline's RabbitMQ adapter: the [`TaskPublisher`](hookline_core::ports::TaskPublisher)
//! and [`TaskSource`](hookline_core::ports::TaskSource) behind which delivery tasks travel
//! from ingest and scheduler to the dispatchers.
//!
//! - [`RabbitBroker`]: one supervised connection per process. A background supervisor
//!   connects (URLs in order, exponential backoff), declares the topology, opens the
//!   confirm-mode publisher channels, and rebuilds all of it after a connection loss.
//! - [`RabbitBroker::publisher`]: persistent, `mandatory`, confirmed publishing, pipelined
//!   and group-committed across concurrent callers.
//! - [`RabbitBroker::source`]: a consumer with `basic.qos`, re-subscribing transparently on
//!   every new connection.
//!
//! Topology (see [`TopologyNames`]): direct exchange `<prefix>.deliveries` → durable quorum
//! queues, two lanes (fast and bulk) of `shards` queues each, all with `x-delivery-limit`
//! and dead-lettering to fanout exchange `<prefix>.deliveries.dead` → quorum queue
//! `<prefix>.deliveries.dead`. Publishers route each message's tasks to its application's
//! shard, in the fast lane while the application is within its share
//! ([`hookline_core::fair`]) and the bulk lane beyond; sources consume every queue, fast
//! lane first with a guaranteed bulk share.
//!
//! Architecture invariants:
//! - `publish` returns `Ok` only after the broker confirmed every task as routed to the
//!   queue; anything else is `Rejected` (nack, unroutable) or `Unavailable` (down, timeout).
//! - A body that does not decode as a `DeliveryTask` is never handed out: it is rejected
//!   without requeue and so dead-lettered.
//! - Every broker await is bounded by a timeout: lapin can leave futures pending forever
//!   once its connection is gone.
//! - Credentials never reach logs or errors: URLs pass through [`redact_url`].
//! - Only this crate knows the AMQP wire form; the task body is `DeliveryTask`'s serde JSON.

mod acks;
mod broker;
mod config;
mod confirm;
mod error;
mod link;
mod pool;
mod publisher;
mod redact;
mod source;
mod supervisor;
mod topology;

pub use broker::{LaneDepths, RabbitBroker};
pub use config::RabbitConfig;
pub use error::{ConfigError, RabbitError};
pub use redact::redact_url;
pub use source::RabbitTaskSource;
pub use topology::{DeliveryQueue, TopologyNames};
