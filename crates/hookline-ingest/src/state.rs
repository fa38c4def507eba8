//! What every handler can reach: the store and queue ports plus the API's own settings.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::backlog::SharedTally;
use hookline_core::ports::{
    AttemptLog, BackgroundTaskStore, BacklogLedger, MessageStore, Registry, RetrySchedule,
    Sequencer, TaskPublisher, TokenStore,
};

use hookline_events::OperationalEvents;
use hookline_metrics::Metrics;
use hookline_net::Resolver;

use crate::admission::Admission;
use crate::auth::AdminTokens;
use crate::group_commit::GroupCommit;

/// Limits and lifetimes the API enforces.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest accepted request body (413 beyond).
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting in a message payload (422 beyond).
    pub max_payload_depth: usize,
    /// Upper bound for a message's `payloadRetentionPeriod`, in days.
    pub max_retention_days: u64,
    /// How long an idempotency key is remembered after its request finished.
    pub idempotency_ttl: Duration,
    /// How long a request may hold an idempotency key while it works; a concurrent duplicate
    /// waits up to this long for the first request's answer.
    pub idempotency_lease: Duration,
    /// How long a background task counts as running after its runner last saved progress.
    pub background_task_lease: Duration,
    /// How long a message waits for the broker connection (at start, across a short
    /// reconnect) before the API answers 503; the broker's publish timeout.
    pub broker_wait: Duration,
    /// How long a rotated-out endpoint secret keeps signing.
    pub secret_rotation_grace: Duration,
    /// Endpoints one app may have (409 beyond).
    pub max_endpoints_per_app: usize,
    /// Where people reach this API (for app portal links).
    pub public_url: String,
    /// Longest life of an app portal token.
    pub max_app_token_lifetime: Duration,
    /// Message requests in service at once; more wait in line per application, taking
    /// turns (`admission.rs`).
    pub intake_concurrency: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_payload_depth: 64,
            max_retention_days: 90,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_lease: Duration::from_secs(10),
            background_task_lease: crate::background::DEFAULT_LEASE,
            broker_wait: Duration::from_secs(5),
            secret_rotation_grace: Duration::from_secs(24 * 3600),
            max_endpoints_per_app: 100,
            public_url: "http://localhost:8071".into(),
            max_app_token_lifetime: Duration::from_secs(7 * 24 * 3600),
            intake_concurrency: 32,
        }
    }
}

/// Something `/readyz` must see working (broker, store).
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    /// A short name for the check, shown in `/readyz`.
    fn name(&self) -> &'static str;
    /// `Err` with a reason when the dependency is not usable.
    async fn check(&self) -> Result<(), String>;
}

/// The ports and settings the API runs on.
pub struct Services {
    pub registry: Arc<dyn Registry>,
    pub messages: Arc<dyn MessageStore>,
    pub attempts: Arc<dyn AttemptLog>,
    pub publisher: Arc<dyn TaskPublisher>,
    pub tokens: Arc<dyn TokenStore>,
    pub jobs: Arc<dyn BackgroundTaskStore>,
    /// For messages created with `deliverAt`.
    pub schedule: Arc<dyn RetrySchedule>,
    /// Ordered endpoints' lines, which a message joins before its task is queued.
    pub sequencer: Arc<dyn Sequencer>,
    /// This process's backlog tally: tasks accepted (the process flushes it to `ledger`).
    pub backlog: SharedTally,
    /// The backlog view's totals, read by `GET /api/v1/stats/backlog`.
    pub ledger: Arc<dyn BacklogLedger>,
    /// Operational webhooks (endpoint.created, ...).
    pub events: OperationalEvents,
    pub metrics: Arc<Metrics>,
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    pub admin_tokens: AdminTokens,
    /// Checks endpoint URLs against the SSRF policy.
    pub resolver: Resolver,
    pub config: IngestConfig,
}

/// Shared, cheaply cloned handler state.
#[derive(Clone)]
pub struct ApiState(Arc<Services>, Arc<GroupCommit>, Arc<Admission>);

impl ApiState {
    pub fn new(services: Services) -> Self {
        let group = GroupCommit::new(
            Arc::clone(&services.messages),
            Arc::clone(&services.registry),
        );
        let admission = Admission::new(services.config.intake_concurrency);
        Self(Arc::new(services), Arc::new(group), Arc::new(admission))
    }

    /// Who may be in the accept path now: applications take turns once it is full.
    pub fn admission(&self) -> &Admission {
        &self.2
    }

    /// The accept path's shared round trips: inserts, confirms and app reads of concurrent
    /// requests together.
    pub fn group(&self) -> &GroupCommit {
        &self.1
    }

    pub fn registry(&self) -> &dyn Registry {
        self.0.registry.as_ref()
    }
    pub fn messages(&self) -> &dyn MessageStore {
        self.0.messages.as_ref()
    }
    pub fn attempts(&self) -> &dyn AttemptLog {
        self.0.attempts.as_ref()
    }
    pub fn publisher(&self) -> &dyn TaskPublisher {
        self.0.publisher.as_ref()
    }
    pub fn tokens(&self) -> &dyn TokenStore {
        self.0.tokens.as_ref()
    }
    pub fn schedule(&self) -> &dyn RetrySchedule {
        self.0.schedule.as_ref()
    }
    pub fn sequencer(&self) -> &dyn Sequencer {
        self.0.sequencer.as_ref()
    }
    pub fn backlog(&self) -> &SharedTally {
        &self.0.backlog
    }
    pub fn ledger(&self) -> &dyn BacklogLedger {
        self.0.ledger.as_ref()
    }
    pub fn jobs(&self) -> &dyn BackgroundTaskStore {
        self.0.jobs.as_ref()
    }
    pub fn events(&self) -> &OperationalEvents {
        &self.0.events
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    pub fn readiness(&self) -> &[Arc<dyn ReadinessCheck>] {
        &self.0.readiness
    }
    pub fn admin_tokens(&self) -> &AdminTokens {
        &self.0.admin_tokens
    }
    pub fn resolver(&self) -> &Resolver {
        &self.0.resolver
    }
    pub fn config(&self) -> &IngestConfig {
        &self.0.config
    }
}
