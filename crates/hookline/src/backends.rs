//! The engines behind the ports: RabbitMQ and Redis, or the embedded database. Roles see
//! only [`Ports`], so they run unchanged on either.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use hookline_core::backlog::SharedTally;
use hookline_core::ports::{
    AttemptLog, BackgroundTaskStore, BacklogLedger, EndpointHealth, MessageStore, RateLimiter,
    Registry, RetrySchedule, Sequencer, Settlement, TaskPublisher, TaskSource, TokenStore,
};
use hookline_embedded::{EmbeddedQueue, EmbeddedStore};
use hookline_events::OperationalEvents;
use hookline_ingest::ReadinessCheck;
use hookline_metrics::Metrics;
use hookline_postgres::{LoggedStore, PgLog};
use hookline_rabbitmq::RabbitBroker;
use hookline_redis::RedisStore;
use tokio_util::sync::CancellationToken;

use crate::backlog::Flusher;
use crate::settings::{Engines, Settings};

/// Every store port, each an `Arc` of the same adapter.
#[derive(Clone)]
pub struct Ports {
    pub registry: Arc<dyn Registry>,
    pub messages: Arc<dyn MessageStore>,
    pub attempts: Arc<dyn AttemptLog>,
    pub schedule: Arc<dyn RetrySchedule>,
    pub limiter: Arc<dyn RateLimiter>,
    pub health: Arc<dyn EndpointHealth>,
    pub settlement: Arc<dyn Settlement>,
    pub tokens: Arc<dyn TokenStore>,
    pub jobs: Arc<dyn BackgroundTaskStore>,
    pub ledger: Arc<dyn BacklogLedger>,
    /// Ordered endpoints' lines; on the hot store (Redis or embedded), also with the log
    /// on PostgreSQL: a line is short-lived state.
    pub sequencer: Arc<dyn Sequencer>,
    pub publisher: Arc<dyn TaskPublisher>,
}

impl Ports {
    fn of<S>(store: &S, publisher: Arc<dyn TaskPublisher>) -> Self
    where
        S: Registry
            + MessageStore
            + AttemptLog
            + RetrySchedule
            + RateLimiter
            + EndpointHealth
            + Settlement
            + TokenStore
            + BackgroundTaskStore
            + BacklogLedger
            + Sequencer
            + Clone
            + 'static,
    {
        Self {
            registry: Arc::new(store.clone()),
            messages: Arc::new(store.clone()),
            attempts: Arc::new(store.clone()),
            schedule: Arc::new(store.clone()),
            limiter: Arc::new(store.clone()),
            health: Arc::new(store.clone()),
            settlement: Arc::new(store.clone()),
            tokens: Arc::new(store.clone()),
            jobs: Arc::new(store.clone()),
            ledger: Arc::new(store.clone()),
            sequencer: Arc::new(store.clone()),
            publisher,
        }
    }

    /// These ports with the log (messages, attempts, settlement) on PostgreSQL and the rest
    /// where they were.
    fn with_log(mut self, log: &LoggedStore) -> Self {
        self.messages = Arc::new(log.clone());
        self.attempts = Arc::new(log.clone());
        self.settlement = Arc::new(log.clone());
        self
    }
}

#[derive(Clone)]
enum Engine {
    Services {
        store: RedisStore,
        broker: RabbitBroker,
        /// The delivery log on PostgreSQL, when configured.
        log: Option<LoggedStore>,
    },
    Embedded {
        store: EmbeddedStore,
        queue: EmbeddedQueue,
    },
}

/// Ready tasks per lane and in the dead-letter queue, and what this process published into
/// each lane.
async fn sample_lanes(metrics: &Metrics, broker: &RabbitBroker) {
    if let Ok(depths) = broker.lane_depths().await {
        for (lane, ready) in [("fast", depths.fast), ("bulk", depths.bulk)] {
            metrics
                .queue_ready
                .with_label_values(&[lane])
                .set(i64::from(ready));
        }
    }
    if let Ok(dead) = broker.dead_letter_count().await {
        metrics
            .queue_ready
            .with_label_values(&["dead"])
            .set(i64::from(dead));
    }
    let (fast, bulk) = broker.published();
    for (lane, total) in [("fast", fast), ("bulk", bulk)] {
        let counter = metrics.published_tasks.with_label_values(&[lane]);
        counter.inc_by(total.saturating_sub(counter.get()));
    }
}

/// The adapters every role shares within one process.
#[derive(Clone)]
pub struct Backends {
    pub ports: Ports,
    pub events: OperationalEvents,
    pub metrics: Arc<Metrics>,
    /// What this process's roles count for the backlog view (one tally per process).
    pub backlog: SharedTally,
    /// Drains `backlog` into the store (`spawn_upkeep`, and once more at `shutdown`).
    flusher: Arc<tokio::sync::Mutex<Flusher>>,
    flush_every: Duration,
    /// How often the PostgreSQL log's partitions are kept up.
    log_upkeep_every: Duration,
    engine: Engine,
}

impl Backends {
    /// Opens the configured engines. RabbitMQ and Redis only start connecting (neither fails
    /// because its service is down right now); the embedded database opens here, and fails
    /// if another process holds it.
    pub fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let engine = match settings.engines()? {
            Engines::Services => {
                let store = RedisStore::connect(&settings.redis_config()?).context("redis")?;
                let broker = RabbitBroker::start(settings.rabbit_config()?);
                let log = match settings.postgres_config()? {
                    Some(config) => {
                        let log = PgLog::connect(&config).context("postgres")?;
                        Some(LoggedStore::new(
                            log,
                            Arc::new(store.clone()),
                            Arc::new(store.clone()),
                        ))
                    }
                    None => None,
                };
                Engine::Services { store, broker, log }
            }
            Engines::Embedded { data_dir } => {
                let (store, queue) = hookline_embedded::open(&settings.embedded_config()?)
                    .with_context(|| format!("embedded store in {}", data_dir.display()))?;
                Engine::Embedded { store, queue }
            }
        };
        let ports = match &engine {
            Engine::Services { store, broker, log } => {
                let ports = Ports::of(store, broker.publisher());
                match log {
                    Some(log) => ports.with_log(log),
                    None => ports,
                }
            }
            Engine::Embedded { store, queue } => Ports::of(store, Arc::new(queue.clone())),
        };
        let events = OperationalEvents::new(
            settings.operator_target()?,
            Arc::clone(&ports.registry),
            Arc::clone(&ports.messages),
            Arc::clone(&ports.publisher),
        );
        let metrics = Arc::new(Metrics::new().context("metrics")?);
        let backlog = SharedTally::default();
        let flusher = Flusher::new(backlog.clone(), Arc::clone(&ports.ledger));
        Ok(Self {
            ports,
            events,
            metrics,
            backlog,
            flusher: Arc::new(tokio::sync::Mutex::new(flusher)),
            flush_every: Duration::from_millis(settings.ops.backlog_flush_ms),
            log_upkeep_every: Duration::from_millis(settings.postgres.upkeep_interval_ms),
            engine,
        })
    }

    /// What `/readyz` checks on every role.
    pub fn readiness(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        match &self.engine {
            Engine::Services { store, broker, log } => {
                let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![
                    Arc::new(RabbitReady(broker.clone())),
                    Arc::new(RedisReady(store.clone())),
                ];
                if let Some(log) = log {
                    checks.push(Arc::new(PostgresReady(log.log().clone())));
                }
                checks
            }
            Engine::Embedded { store, .. } => vec![Arc::new(EmbeddedReady(store.clone()))],
        }
    }

    /// A consumer of delivery tasks for one dispatcher.
    pub fn source(&self, tag: &str) -> Box<dyn TaskSource> {
        match &self.engine {
            Engine::Services { broker, .. } => Box::new(broker.source(tag)),
            Engine::Embedded { queue, .. } => Box::new(queue.source()),
        }
    }

    /// Background upkeep while the process runs: the backlog flusher, and the embedded
    /// store's janitor, which deletes records past their retention (Redis expires keys
    /// itself).
    pub fn spawn_upkeep(&self, shutdown: &CancellationToken) {
        tokio::spawn(Flusher::run(
            Arc::clone(&self.flusher),
            self.flush_every,
            shutdown.clone(),
        ));
        if let Engine::Embedded { store, .. } = &self.engine {
            let store = store.clone();
            let stop = shutdown.clone().cancelled_owned();
            tokio::spawn(async move { store.run_janitor(Duration::from_secs(10), stop).await });
        }
        if let Engine::Services { log: Some(log), .. } = &self.engine {
            let stop = shutdown.clone().cancelled_owned();
            tokio::spawn(log.clone().run_upkeep(self.log_upkeep_every, stop));
        }
    }

    /// Applies the log's missing migrations when the settings ask for it at start-up.
    pub async fn prepare(&self, settings: &Settings) -> anyhow::Result<()> {
        if let Engine::Services { log: Some(log), .. } = &self.engine {
            if settings.postgres.migrate_on_start {
                let applied = log.log().migrate().await.context("postgres migrations")?;
                if !applied.is_empty() {
                    tracing::info!(?applied, "postgres: migrations applied");
                }
            }
        }
        Ok(())
    }

    /// Copies the engines' connection state and queue depths into the metrics; called once
    /// a second.
    /// `redis_was_down` carries what the previous call saw, to count reconnects.
    pub async fn sample_gauges(&self, redis_was_down: &mut bool) {
        let metrics = &self.metrics;
        if let Engine::Services { store, broker, .. } = &self.engine {
            let reconnects = broker.reconnects();
            metrics
                .broker_reconnects
                .set(i64::try_from(reconnects).unwrap_or(i64::MAX));
            let redis_up = store.ping().await.is_ok();
            if redis_up && *redis_was_down {
                metrics.redis_reconnects.inc();
            }
            metrics.redis_up.set(i64::from(redis_up));
            *redis_was_down = !redis_up;
            sample_lanes(metrics, broker).await;
        }
        if let Engine::Embedded { queue, .. } = &self.engine {
            // One queue, fair by itself: everything counts as the fast lane.
            if let Ok(depth) = queue.depth().await {
                metrics
                    .queue_ready
                    .with_label_values(&["fast"])
                    .set(i64::try_from(depth).unwrap_or(i64::MAX));
            }
        }
        if let Ok(open) = self.ports.health.open_circuits().await {
            metrics
                .open_circuits
                .set(i64::try_from(open).unwrap_or(i64::MAX));
        }
    }

    /// Flushes the backlog counts one last time, then closes the broker connection, or makes
    /// the embedded database's last commits durable.
    pub async fn shutdown(&self) {
        self.flusher.lock().await.finish().await;
        match &self.engine {
            Engine::Services { broker, .. } => broker.shutdown().await,
            Engine::Embedded { store, .. } => {
                if let Err(error) = store.flush().await {
                    tracing::warn!(%error, "embedded store: final flush failed");
                }
            }
        }
    }
}

struct RabbitReady(RabbitBroker);

#[async_trait]
impl ReadinessCheck for RabbitReady {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.is_ready() {
            Ok(())
        } else {
            Err("not connected".into())
        }
    }
}

struct RedisReady(RedisStore);

#[async_trait]
impl ReadinessCheck for RedisReady {
    fn name(&self) -> &'static str {
        "redis"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct PostgresReady(PgLog);

#[async_trait]
impl ReadinessCheck for PostgresReady {
    fn name(&self) -> &'static str {
        "postgres"
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.is_ready().await {
            Ok(())
        } else {
            Err(
                "not reachable, or its schema is not this version's (run `hookline migrate`)"
                    .into(),
            )
        }
    }
}

/// `hookline migrate`: the log's migrations, then the coming days' partitions.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let Some(config) = settings.postgres_config()? else {
        anyhow::bail!("postgres.url is not set");
    };
    let log = PgLog::connect(&config).context("postgres")?;
    let applied = log.migrate().await.context("migrations")?;
    log.maintain(time::OffsetDateTime::now_utc())
        .await
        .context("partitions")?;
    let version = log.version().await.context("schema version")?;
    println!(
        "hookline: postgres schema {:?} at version {version} (applied now: {applied:?})",
        log.schema()
    );
    Ok(())
}

struct EmbeddedReady(EmbeddedStore);

#[async_trait]
impl ReadinessCheck for EmbeddedReady {
    fn name(&self) -> &'static str {
        "embedded"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.check().await.map_err(|e| e.to_string())
    }
}
