//! Dispatcher settings.

use std::time::Duration;

use hookline_core::retry::RetryPolicy;
use hookline_core::secret::SecretText;

/// What an operator tunes on a dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Deliveries in flight at once in this process.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint in this process; more wait in the retry
    /// schedule, so a slow endpoint cannot hold every worker.
    pub max_in_flight_per_endpoint: usize,
    /// Whole-exchange limit for one HTTP attempt (connect, send, read the response).
    pub request_timeout: Duration,
    /// How much of a response body is read and kept in the attempt log.
    pub max_response_bytes: usize,
    /// The waits between attempts.
    pub retry: RetryPolicy,
    /// How long attempts are kept.
    pub retention_secs: u64,
    /// The `user-agent` sent with every delivery.
    pub user_agent: String,
    /// Consecutive failures that open an endpoint's circuit.
    pub circuit_failure_threshold: u32,
    /// How long an open circuit holds tasks before one probe may try again.
    pub circuit_open_for: Duration,
    /// How long a task may be held by an open circuit (since its first hold after its last
    /// real attempt) before its message is given up.
    pub circuit_max_hold: Duration,
    /// An endpoint failing without a single success this long is disabled.
    pub disable_after_failing_for: Duration,
    /// How long a dispatcher uses its copy of an endpoint, and trusts its knowledge that
    /// the endpoint's circuit is closed, before asking the store again: the longest a
    /// change takes to reach every dispatcher. Zero reads both on every delivery.
    pub cache_ttl: Duration,
    /// Most finished attempts written to the store in one round trip.
    pub settle_batch: usize,
    /// Fault injection for crash tests: a pause between a batch's write and its acks.
    pub pause_before_ack: Option<Duration>,
    /// The operator's forward proxy (`http://[user:password@]host:port`) every delivery goes
    /// through; `None`: deliveries connect directly and proxy environment variables are
    /// ignored. A secret: its URL may carry credentials.
    pub egress_proxy: Option<SecretText>,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        let circuit_open_for = Duration::from_secs(30);
        Self {
            concurrency: 256,
            max_in_flight_per_endpoint: 32,
            request_timeout: Duration::from_secs(15),
            max_response_bytes: 64 * 1024,
            circuit_max_hold: hookline_core::breaker::default_max_hold(&retry, circuit_open_for),
            retry,
            retention_secs: 30 * 24 * 3600,
            user_agent: concat!("Hookline/", env!("CARGO_PKG_VERSION")).to_owned(),
            circuit_failure_threshold: 5,
            circuit_open_for,
            disable_after_failing_for: Duration::from_secs(5 * 24 * 3600),
            cache_ttl: Duration::from_secs(1),
            settle_batch: 256,
            pause_before_ack: None,
            egress_proxy: None,
        }
    }
}
