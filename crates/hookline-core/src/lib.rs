//! Hookline's pure core: everything about webhook delivery that can be decided without
//! touching a network or a disk.
//!
//! - [`backlog`]: deliveries pending per app and endpoint, tallied per process and flushed.
//! - [`address`]: which network addresses deliveries may reach (SSRF protection).
//! - [`headers`]: the rules for custom delivery headers.
//! - [`id`]: time-ordered, prefixed identifiers (`msg_…`, `ep_…`).
//! - [`names`]: validated newtypes for every outside value (parse, don't validate).
//! - [`json`]: the one-time payload minifier.
//! - [`signing`]: Standard Webhooks secrets and signatures.
//! - [`asymmetric`]: ed25519 keys (`whsk_`/`whpk_`) and their `v1a,` signatures.
//! - [`sealing`]: endpoint secrets encrypted at rest under a main key.
//! - [`secret`]: text that redacts itself in `Debug` (secrets, tokens, passwords).
//! - [`retry`]: the retry schedule with jitter.
//! - [`outcome`]: how an HTTP attempt's result is classified.
//! - [`fifo`]: the line of an ordered (FIFO) endpoint: whose turn it is, who waits.
//! - [`breaker`]: holding a task whose endpoint's circuit is open, and when to give up.
//! - [`plan`]: what an attempt's verdict means for the record and the next attempt.
//! - [`scope`]: what an app portal token may do in its app (Svix's capabilities).
//! - [`rate`]: per-endpoint rate limits (GCRA) over nanoseconds.
//! - [`model`]: apps, endpoints, messages, attempts and delivery tasks.
//! - [`ports`]: the small traits that the RabbitMQ and Redis adapters implement.
//!
//! Architecture invariant: this crate performs no I/O and knows no HTTP API shape.

pub mod address;
pub mod asymmetric;
pub mod backlog;
pub mod breaker;
pub mod fair;
pub mod fifo;
pub mod headers;
pub mod id;
pub mod json;
pub mod model;
pub mod names;
pub mod outbound;
pub mod outcome;
pub mod plan;
pub mod ports;
pub mod rate;
pub mod retry;
pub mod scope;
pub mod sealing;
pub mod secret;
pub mod signing;
