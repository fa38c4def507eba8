//! Configuration: built-in defaults < `hookline.toml` (or `--config`) < `HOOKLINE__SECTION__KEY`
//! environment variables. The keys are a public contract (see `hookline.example.toml`).
//!
//! Everything is checked here, before any port binds or connection opens, so a bad value stops
//! start-up with one line naming the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hookline_core::address::AddressPolicy;
use hookline_core::retry::RetryPolicy;
use hookline_core::sealing::MainKey;
use hookline_core::secret::SecretText;
use serde::{Deserialize, Deserializer};

/// The whole configuration, as the operator wrote it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where embedded mode keeps its database and generated admin token.
    pub data_dir: PathBuf,
    pub api: ApiSettings,
    pub auth: AuthSettings,
    pub rabbitmq: RabbitSettings,
    pub redis: RedisSettings,
    pub postgres: PostgresSettings,
    pub delivery: DeliverySettings,
    pub scheduler: SchedulerSettings,
    pub operational_webhooks: OperationalWebhookSettings,
    pub shutdown: ShutdownSettings,
    pub ops: OpsSettings,
    pub log: LogSettings,
    pub telemetry: TelemetrySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("hookline-data"),
            api: ApiSettings::default(),
            auth: AuthSettings::default(),
            rabbitmq: RabbitSettings::default(),
            redis: RedisSettings::default(),
            postgres: PostgresSettings::default(),
            delivery: DeliverySettings::default(),
            scheduler: SchedulerSettings::default(),
            operational_webhooks: OperationalWebhookSettings::default(),
            shutdown: ShutdownSettings::default(),
            ops: OpsSettings::default(),
            log: LogSettings::default(),
            telemetry: TelemetrySettings::default(),
        }
    }
}

/// Which engines hold the queue and the stores.
#[derive(Debug, Clone)]
pub enum Engines {
    /// RabbitMQ and Redis: any role, any number of processes.
    Services,
    /// One redb database in the data dir: `serve` only, one process.
    Embedded { data_dir: PathBuf },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Address the ingest API listens on.
    pub listen: String,
    pub max_body_bytes: usize,
    pub max_payload_depth: usize,
    pub idempotency_ttl_secs: u64,
    /// How long a request holds its idempotency keys while it works. A retry waits this long
    /// for an interrupted request's claim, and an unconfirmed message is swept after it.
    pub idempotency_lease_ms: u64,
    /// How long a background task (recover, replay, purge, statistics) counts as running
    /// after its process last recorded progress; a task whose process died reads as failed
    /// after it, and its lock (one recovery per endpoint) is free again.
    pub background_task_lease_ms: u64,
    /// Where people reach the API; app portal links start with it.
    pub public_url: String,
    pub max_endpoints_per_app: usize,
    /// Message requests in service at once per ingest process; past it requests wait in
    /// line per application and applications take turns, so a flood's requests wait
    /// behind each other, not in front of another application's.
    pub intake_concurrency: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8071".into(),
            max_body_bytes: 1024 * 1024,
            max_payload_depth: 64,
            idempotency_ttl_secs: 24 * 3600,
            idempotency_lease_ms: 10_000,
            background_task_lease_ms: hookline_ingest::background::DEFAULT_LEASE.as_millis() as u64,
            public_url: "http://localhost:8071".into(),
            max_endpoints_per_app: 100,
            intake_concurrency: hookline_ingest::state::IngestConfig::default().intake_concurrency,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Bearer tokens with full access; comma-separated in the environment.
    #[serde(deserialize_with = "secret_list")]
    pub admin_tokens: Vec<SecretText>,
    /// Base64 of 32 random bytes; when set, endpoint secrets are encrypted at rest.
    pub main_key: Option<SecretText>,
}

/// A service URL that may carry a password: `Debug` shows it with the userinfo of each
/// comma-separated URL replaced by `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ServiceUrl(SecretText);

impl ServiceUrl {
    /// The URL as written, password included, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl From<&str> for ServiceUrl {
    fn from(url: &str) -> Self {
        Self(url.into())
    }
}

impl std::fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted: Vec<String> = self
            .expose()
            .split(',')
            .map(hookline_rabbitmq::redact_url)
            .collect();
        write!(f, "{:?}", redacted.join(","))
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitSettings {
    /// AMQP URL; several comma-separated URLs are tried in order.
    #[serde(deserialize_with = "url_list")]
    pub url: Vec<ServiceUrl>,
    pub prefix: String,
    pub prefetch: u16,
    pub delivery_limit: u32,
    pub publisher_channels: usize,
    pub publish_timeout_ms: u64,
    /// `x-expires` on the queues; for throw-away test queues only.
    pub queue_expires_ms: Option<u64>,
    /// Delivery queues per lane (fast and bulk); raise it to spread load over more queue
    /// leaders (nodes). Lowering it strands tasks in the queues that go away.
    pub shards: u16,
    /// Tasks per second one application may put in the fast lane from one publishing
    /// process; beyond it (after `fair_share_burst`) its tasks take the bulk lane.
    pub fair_share_rate: f64,
    pub fair_share_burst: u32,
    /// Dispatchers take from the bulk lane first once in this many picks.
    pub bulk_every: u32,
}

impl Default for RabbitSettings {
    fn default() -> Self {
        let base = hookline_rabbitmq::RabbitConfig::default();
        Self {
            url: Vec::new(),
            prefix: base.prefix,
            prefetch: base.prefetch,
            delivery_limit: base.delivery_limit,
            publisher_channels: base.publisher_channels,
            publish_timeout_ms: millis(base.publish_timeout),
            queue_expires_ms: None,
            shards: base.shards,
            fair_share_rate: base.fair_share.rate,
            fair_share_burst: base.fair_share.burst,
            bulk_every: base.bulk_every,
        }
    }
}

impl std::fmt::Debug for RabbitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSettings")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// The Redis URL; with `cluster`, comma-separated seed node URLs.
    pub url: Option<ServiceUrl>,
    /// Redis Cluster instead of a single Redis.
    pub cluster: bool,
    /// The primary's name under Sentinel; `url` then lists the Sentinels.
    pub sentinel_primary: Option<String>,
    pub prefix: String,
    pub response_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            cluster: false,
            sentinel_primary: None,
            prefix: "hl:".into(),
            response_timeout_ms: 2_000,
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            // Redacted one seed at a time: a cluster's list carries a password per URL.
            .field("url", &self.url)
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The delivery log on PostgreSQL (RabbitMQ + Redis deployments). Without a URL the log
/// stays in Redis, with every record expiring after its retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:5432/db`; may carry a password.
    pub url: Option<ServiceUrl>,
    /// The schema holding the log's tables.
    pub schema: String,
    /// Connections per process.
    pub pool_size: usize,
    pub statement_timeout_ms: u64,
    /// Apply missing migrations when the process starts (otherwise run `hookline migrate`
    /// first; a process whose schema is behind reports not ready).
    pub migrate_on_start: bool,
    /// Days of partitions made ahead of today.
    pub days_ahead: u64,
    /// How often partitions are made and dropped and payloads past their retention expunged.
    pub upkeep_interval_ms: u64,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            url: None,
            schema: "hookline".into(),
            pool_size: 16,
            statement_timeout_ms: 5_000,
            migrate_on_start: false,
            days_ahead: 3,
            upkeep_interval_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Waits between attempts, comma-separated milliseconds.
    #[serde(deserialize_with = "u64_list")]
    pub retry_schedule_ms: Vec<u64>,
    /// Spread of each wait, as a fraction (0.1 = ±10%).
    pub retry_jitter: f64,
    pub timeout_ms: u64,
    /// Deliveries in flight per dispatcher process.
    pub concurrency: usize,
    /// Deliveries in flight to one endpoint per dispatcher process.
    pub max_in_flight_per_endpoint: usize,
    pub max_response_bytes: usize,
    pub retention_days: u64,
    /// CIDRs exempt from the SSRF policy (internal addresses are refused otherwise).
    #[serde(deserialize_with = "string_list")]
    pub allowed_subnets: Vec<String>,
    /// Refuse plain-http endpoint URLs.
    pub https_only: bool,
    /// A DNS server (`ip:port`) to resolve endpoint hosts with, instead of the system's.
    pub dns_server: Option<String>,
    /// How long a rotated-out endpoint secret keeps signing.
    pub secret_rotation_grace_secs: u64,
    /// Consecutive failures that open an endpoint's circuit.
    pub circuit_failure_threshold: u32,
    /// How long an open circuit holds tasks before one probe tries again.
    pub circuit_open_ms: u64,
    /// How long a task may be held by an open circuit before its message is given up;
    /// unset: the retry schedule's span or two open periods, whichever is longer.
    pub circuit_max_hold_ms: Option<u64>,
    /// An endpoint failing without a single success this long is disabled.
    pub endpoint_failure_disable_after_secs: u64,
    /// How long a dispatcher uses its copy of an endpoint and its knowledge that a circuit
    /// is closed before reading them again: the longest an endpoint change (URL, secret,
    /// disable, filters) takes to reach messages already queued. Messages sent after a
    /// change always see it. 0 reads them for every delivery.
    pub endpoint_cache_ms: u64,
    /// Most finished attempts a dispatcher writes to the store in one round trip.
    pub settle_batch: usize,
    /// Fault injection for crash tests: pause between writing a batch and acking it.
    pub pause_before_ack_ms: Option<u64>,
    /// A forward proxy every delivery goes through (`http://[user:password@]host:port`),
    /// for receivers that allow only fixed source addresses. Each destination still passes
    /// the address policy before the request is handed to it; the proxy's own host is
    /// exempt. Unset: deliveries connect directly, whatever `HTTP(S)_PROXY` says.
    pub egress_proxy: Option<SecretText>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_schedule_ms: hookline_core::retry::DEFAULT_DELAYS_MS.to_vec(),
            retry_jitter: 0.1,
            timeout_ms: 30_000,
            concurrency: 256,
            max_in_flight_per_endpoint: 32,
            max_response_bytes: 64 * 1024,
            retention_days: 30,
            allowed_subnets: Vec::new(),
            https_only: false,
            dns_server: None,
            secret_rotation_grace_secs: 24 * 3600,
            circuit_failure_threshold: 5,
            circuit_open_ms: 30_000,
            circuit_max_hold_ms: None,
            endpoint_failure_disable_after_secs: 5 * 24 * 3600,
            endpoint_cache_ms: 1_000,
            settle_batch: 256,
            pause_before_ack_ms: None,
            egress_proxy: None,
        }
    }
}

/// Where operational webhooks (endpoint.disabled, message.attempt.exhausted, ...) go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperationalWebhookSettings {
    pub url: Option<String>,
    /// `whsec_…`; generated receivers verify with it.
    pub secret: Option<SecretText>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    pub batch_size: usize,
    pub lease_ms: u64,
    pub poll_ms: u64,
    /// Fault injection for crash tests: pause between claiming and publishing.
    pub pause_after_claim_ms: Option<u64>,
    /// How often ordered endpoints' lines are checked for a waiting task nobody queued.
    pub fifo_sweep_ms: u64,
    /// How long a waiting task handed out to be queued stays handed before the sweep hands
    /// it out again (its dispatcher died in between).
    pub fifo_stale_ms: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            lease_ms: 30_000,
            poll_ms: 100,
            pause_after_claim_ms: None,
            fifo_sweep_ms: 1_000,
            fifo_stale_ms: 30_000,
        }
    }
}

/// The operations port: `/healthz`, `/readyz`, `/metrics` on every role.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsSettings {
    pub listen: String,
    /// How often this process adds its backlog tally (tasks accepted, taken, concluded) to
    /// the store: how far the backlog view may trail the deliveries.
    pub backlog_flush_ms: u64,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9090".into(),
            backlog_flush_ms: hookline_core::backlog::DEFAULT_FLUSH_INTERVAL_MS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long in-flight work may take to finish after SIGTERM.
    pub grace_ms: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { grace_ms: 30_000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info,hookline_dispatcher=debug`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            // lapin logs returned message bodies at warn: keep payloads out of the logs.
            filter: "info,lapin=error".into(),
        }
    }
}

/// OpenTelemetry trace export.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP collector base URL (`http://otel-collector:4318`); unset: no export.
    pub otlp_endpoint: Option<String>,
    /// Fraction of new traces sampled (0.0 to 1.0); propagated traces follow their parent.
    pub sample_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sample_ratio: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A setting that cannot work, named by its key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    #[error("{key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl Settings {
    /// Reads defaults, then the file (`explicit` must exist; `hookline.toml` may), then the
    /// environment.
    pub fn load(explicit: Option<&Path>) -> Result<Self, SettingsError> {
        let file = match explicit {
            Some(path) => config::File::from(path).required(true),
            None => config::File::with_name("hookline.toml")
                .format(config::FileFormat::Toml)
                .required(false),
        };
        let settings: Settings = config::Config::builder()
            .add_source(file)
            .add_source(
                config::Environment::with_prefix("HOOKLINE")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()?
            .try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// Rules the types alone cannot state.
    fn check(&self) -> Result<(), SettingsError> {
        if self.api.intake_concurrency == 0 {
            return Err(invalid("api.intake_concurrency", "must be greater than 0"));
        }
        if self.delivery.timeout_ms == 0 {
            return Err(invalid("delivery.timeout_ms", "must be greater than 0"));
        }
        if self.delivery.concurrency == 0 {
            return Err(invalid("delivery.concurrency", "must be greater than 0"));
        }
        if self.delivery.max_in_flight_per_endpoint == 0 {
            return Err(invalid(
                "delivery.max_in_flight_per_endpoint",
                "must be greater than 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.delivery.retry_jitter) {
            return Err(invalid("delivery.retry_jitter", "must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(invalid("telemetry.sample_ratio", "must be between 0 and 1"));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            url::Url::parse(endpoint)
                .map_err(|e| invalid("telemetry.otlp_endpoint", e.to_string()))?;
        }
        if self.scheduler.batch_size == 0 {
            return Err(invalid("scheduler.batch_size", "must be greater than 0"));
        }
        if self.api.idempotency_lease_ms < 100 {
            return Err(invalid("api.idempotency_lease_ms", "must be at least 100"));
        }
        if self.api.background_task_lease_ms < 1000 {
            return Err(invalid(
                "api.background_task_lease_ms",
                "must be at least 1000",
            ));
        }
        if self.scheduler.lease_ms < 100 {
            return Err(invalid("scheduler.lease_ms", "must be at least 100"));
        }
        if !(100..=60_000).contains(&self.ops.backlog_flush_ms) {
            return Err(invalid(
                "ops.backlog_flush_ms",
                "must be between 100 and 60000",
            ));
        }
        if self.ops.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "ops.listen",
                "must be an address such as 0.0.0.0:9090",
            ));
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "api.listen",
                "must be an address such as 0.0.0.0:8071",
            ));
        }
        self.resolver()?;
        self.check_egress_proxy()?;
        self.main_key()?;
        if let Engines::Services = self.engines()? {
            self.redis_config()?;
        }
        self.postgres_config()?;
        self.operator_target()?;
        if self.delivery.circuit_failure_threshold == 0 {
            return Err(invalid(
                "delivery.circuit_failure_threshold",
                "must be at least 1",
            ));
        }
        if self.auth.admin_tokens.iter().any(|t| t.expose().len() < 16) {
            return Err(invalid(
                "auth.admin_tokens",
                "each token must be at least 16 characters",
            ));
        }
        Ok(())
    }

    /// The resolver that applies the SSRF policy, for the API and the dispatcher.
    pub fn resolver(&self) -> Result<hookline_net::Resolver, SettingsError> {
        let d = &self.delivery;
        let allowed = AddressPolicy::parse_allowed(&d.allowed_subnets)
            .map_err(|problem| invalid("delivery.allowed_subnets", problem))?;
        let policy = AddressPolicy::new(allowed, d.https_only);
        match &d.dns_server {
            None => Ok(hookline_net::Resolver::system(policy)),
            Some(server) => {
                let server = server.parse().map_err(|_| {
                    invalid(
                        "delivery.dns_server",
                        "must be an address such as 10.0.0.2:53",
                    )
                })?;
                Ok(hookline_net::Resolver::with_server(policy, server))
            }
        }
    }

    /// The egress proxy must be an http(s) URL with a host; problems are named without
    /// repeating the URL, which may hold a password.
    fn check_egress_proxy(&self) -> Result<(), SettingsError> {
        let Some(proxy) = &self.delivery.egress_proxy else {
            return Ok(());
        };
        let key = "delivery.egress_proxy";
        let url = url::Url::parse(proxy.expose())
            .map_err(|e| invalid(key, format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(key, "must be an http:// or https:// URL"));
        }
        if url.host().is_none() {
            return Err(invalid(key, "must name the proxy's host"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(invalid(
                key,
                "must be only scheme, credentials, host and port",
            ));
        }
        Ok(())
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        let delays = self
            .delivery
            .retry_schedule_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
        RetryPolicy::new(delays, self.delivery.retry_jitter)
    }

    /// How long a task may be held by an open circuit: the setting, or by default
    /// [`hookline_core::breaker::default_max_hold`].
    pub fn circuit_max_hold(&self) -> Duration {
        let d = &self.delivery;
        match d.circuit_max_hold_ms {
            Some(ms) => Duration::from_millis(ms),
            None => hookline_core::breaker::default_max_hold(
                &self.retry_policy(),
                Duration::from_millis(d.circuit_open_ms),
            ),
        }
    }

    /// RabbitMQ and Redis when both are configured, embedded when neither is; one without
    /// the other is a mistake worth stopping for, not a reason to guess.
    pub fn engines(&self) -> Result<Engines, SettingsError> {
        match (self.rabbitmq.url.is_empty(), self.redis.url.is_none()) {
            (false, false) => Ok(Engines::Services),
            (true, true) => Ok(Engines::Embedded {
                data_dir: self.data_dir.clone(),
            }),
            (true, false) => Err(invalid(
                "rabbitmq.url",
                "not set while redis.url is; set HOOKLINE__RABBITMQ__URL too, or neither for embedded mode",
            )),
            (false, true) => Err(invalid(
                "redis.url",
                "not set while rabbitmq.url is; set HOOKLINE__REDIS__URL too, or neither for embedded mode",
            )),
        }
    }

    /// What `role` (`ingest`, `dispatcher`, `scheduler` or `serve`) needs beyond the common
    /// checks: embedded mode runs only as `serve` (one process owns the database), and the
    /// roles that serve the API need an admin token unless embedded mode generates one.
    pub fn check_role(&self, role: &str) -> Result<(), SettingsError> {
        if role == "migrate" {
            return match self.postgres_config()? {
                Some(_) => Ok(()),
                None => Err(invalid(
                    "postgres.url",
                    "not set: `hookline migrate` prepares the PostgreSQL log; set HOOKLINE__POSTGRES__URL",
                )),
            };
        }
        match self.engines()? {
            Engines::Embedded { .. } if role != "serve" => Err(invalid(
                "rabbitmq.url",
                format!(
                    "not set: `hookline {role}` runs on its own only against RabbitMQ and Redis; \
                     set HOOKLINE__RABBITMQ__URL and HOOKLINE__REDIS__URL, or run `hookline serve` \
                     for embedded mode"
                ),
            )),
            Engines::Embedded { .. } => Ok(()),
            Engines::Services if matches!(role, "ingest" | "serve") => {
                self.require_admin_tokens().map(|_| ())
            }
            Engines::Services => Ok(()),
        }
    }

    /// The embedded store's configuration.
    pub fn embedded_config(&self) -> Result<hookline_embedded::EmbeddedConfig, SettingsError> {
        Ok(hookline_embedded::EmbeddedConfig {
            data_dir: self.data_dir.clone(),
            main_key: self.main_key()?,
        })
    }

    /// The admin tokens, or the error that stops a role needing them.
    pub fn require_admin_tokens(&self) -> Result<&[SecretText], SettingsError> {
        if self.auth.admin_tokens.is_empty() {
            return Err(invalid(
                "auth.admin_tokens",
                "no admin token configured; set HOOKLINE__AUTH__ADMIN_TOKENS",
            ));
        }
        Ok(&self.auth.admin_tokens)
    }

    pub fn rabbit_config(&self) -> Result<hookline_rabbitmq::RabbitConfig, SettingsError> {
        if self.rabbitmq.url.is_empty() {
            return Err(invalid(
                "rabbitmq.url",
                "not set; set HOOKLINE__RABBITMQ__URL",
            ));
        }
        let r = &self.rabbitmq;
        let config = hookline_rabbitmq::RabbitConfig {
            urls: r.url.iter().map(|u| u.expose().to_owned()).collect(),
            prefix: r.prefix.clone(),
            prefetch: r.prefetch,
            delivery_limit: r.delivery_limit,
            publisher_channels: r.publisher_channels,
            publish_timeout: Duration::from_millis(r.publish_timeout_ms),
            queue_expires: r.queue_expires_ms.map(Duration::from_millis),
            shards: r.shards,
            fair_share: hookline_core::fair::Share {
                rate: r.fair_share_rate,
                burst: r.fair_share_burst,
            },
            bulk_every: r.bulk_every,
            ..hookline_rabbitmq::RabbitConfig::default()
        };
        config
            .validate()
            .map_err(|e| invalid("rabbitmq", e.to_string()))?;
        Ok(config)
    }

    /// The operator endpoint for operational webhooks, when configured.
    pub fn operator_target(
        &self,
    ) -> Result<Option<hookline_events::OperatorTarget>, SettingsError> {
        let o = &self.operational_webhooks;
        match (&o.url, &o.secret) {
            (None, None) => Ok(None),
            (Some(url), Some(secret)) => {
                url::Url::parse(url)
                    .map_err(|e| invalid("operational_webhooks.url", e.to_string()))?;
                hookline_core::signing::SigningSecret::parse(secret.expose())
                    .map_err(|e| invalid("operational_webhooks.secret", e.to_string()))?;
                Ok(Some(hookline_events::OperatorTarget {
                    url: url.clone(),
                    secret: secret.clone(),
                }))
            }
            (Some(_), None) => Err(invalid(
                "operational_webhooks.secret",
                "set it too (a whsec_ secret the operator verifies with)",
            )),
            (None, Some(_)) => Err(invalid("operational_webhooks.url", "set it too")),
        }
    }

    fn main_key(&self) -> Result<Option<MainKey>, SettingsError> {
        self.auth
            .main_key
            .as_ref()
            .map(|text| {
                MainKey::parse(text.expose()).map_err(|e| invalid("auth.main_key", e.to_string()))
            })
            .transpose()
    }

    /// The PostgreSQL log's settings, when `postgres.url` is set (RabbitMQ + Redis only).
    pub fn postgres_config(&self) -> Result<Option<hookline_postgres::PgConfig>, SettingsError> {
        let Some(url) = &self.postgres.url else {
            return Ok(None);
        };
        if url.expose().trim().is_empty() {
            return Err(invalid(
                "postgres.url",
                "is empty; give a postgres:// URL, or leave it unset to keep the log in Redis",
            ));
        }
        if matches!(self.engines()?, Engines::Embedded { .. }) {
            return Err(invalid(
                "postgres.url",
                "the PostgreSQL log is for RabbitMQ + Redis deployments; embedded mode keeps its log in its own database",
            ));
        }
        let p = &self.postgres;
        if p.pool_size == 0 {
            return Err(invalid("postgres.pool_size", "must be greater than 0"));
        }
        if p.statement_timeout_ms == 0 {
            return Err(invalid(
                "postgres.statement_timeout_ms",
                "must be greater than 0",
            ));
        }
        if p.upkeep_interval_ms == 0 {
            return Err(invalid(
                "postgres.upkeep_interval_ms",
                "must be greater than 0",
            ));
        }
        let mut config = hookline_postgres::PgConfig::new(url.expose().into());
        config.schema = p.schema.clone();
        config.pool_size = p.pool_size;
        config.statement_timeout = Duration::from_millis(p.statement_timeout_ms);
        config.retention_days = self.delivery.retention_days;
        config.days_ahead = p.days_ahead.max(1);
        Ok(Some(config))
    }

    pub fn redis_config(&self) -> Result<hookline_redis::RedisConfig, SettingsError> {
        let Some(url) = &self.redis.url else {
            return Err(invalid("redis.url", "not set; set HOOKLINE__REDIS__URL"));
        };
        let mut config = hookline_redis::RedisConfig::new(url.expose().to_owned());
        if self.redis.cluster && self.redis.sentinel_primary.is_some() {
            return Err(invalid(
                "redis.sentinel_primary",
                "set either redis.cluster or redis.sentinel_primary, not both",
            ));
        }
        config.cluster = self.redis.cluster;
        config.sentinel_primary = self.redis.sentinel_primary.clone();
        config.prefix = self.redis.prefix.clone();
        config.response_timeout = Duration::from_millis(self.redis.response_timeout_ms);
        config.main_key = self.main_key()?;
        config.log_elsewhere = self.postgres.url.is_some();
        Ok(config)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A list given either as a TOML array or as one comma-separated string (the env form).
#[derive(Deserialize)]
#[serde(untagged)]
enum ListForm<T> {
    List(Vec<T>),
    Text(String),
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match ListForm::<String>::deserialize(d)? {
        ListForm::List(items) => items,
        ListForm::Text(text) => split(&text).map(str::to_owned).collect(),
    })
}

fn secret_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretText>, D::Error> {
    string_list(d).map(|items| items.into_iter().map(SecretText::from).collect())
}

fn url_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ServiceUrl>, D::Error> {
    secret_list(d).map(|items| items.into_iter().map(ServiceUrl).collect())
}

fn u64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    match ListForm::<u64>::deserialize(d)? {
        ListForm::List(items) => Ok(items),
        ListForm::Text(text) => split(&text)
            .map(|item| {
                item.parse().map_err(|_| {
                    serde::de::Error::custom(format!("`{item}` is not a number of milliseconds"))
                })
            })
            .collect(),
    }
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example must stay loadable and match the built-in defaults.
    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../../../hookline.example.toml");
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .expect("example parses");
        settings.check().expect("example is valid");
        let defaults = Settings::default();
        assert_eq!(settings.api.listen, defaults.api.listen);
        assert_eq!(
            settings.delivery.retry_schedule_ms,
            defaults.delivery.retry_schedule_ms
        );
        assert_eq!(settings.delivery.timeout_ms, defaults.delivery.timeout_ms);
        assert_eq!(settings.scheduler.lease_ms, defaults.scheduler.lease_ms);
        assert_eq!(settings.rabbitmq.prefetch, defaults.rabbitmq.prefetch);
        assert_eq!(
            settings.api.background_task_lease_ms,
            defaults.api.background_task_lease_ms
        );
        assert_eq!(settings.ops.backlog_flush_ms, defaults.ops.backlog_flush_ms);
    }

    #[test]
    fn a_backlog_flush_interval_out_of_range_is_named() {
        for bad in [0, 99, 60_001] {
            let mut settings = Settings::default();
            settings.ops.backlog_flush_ms = bad;
            let error = settings.check().expect_err("refused").to_string();
            assert!(error.starts_with("ops.backlog_flush_ms:"), "{error}");
        }
    }

    #[test]
    fn an_unusable_egress_proxy_is_named_without_its_password() {
        for bad in [
            "proxy.internal:3128",
            "socks5://u:hunter2@proxy:1080",
            "http://u:hunter2@proxy:3128/some/path",
            "http://u:hunter2@",
        ] {
            let mut settings = Settings::default();
            settings.delivery.egress_proxy = Some(bad.into());
            let error = settings.check().expect_err(bad).to_string();
            assert!(error.starts_with("delivery.egress_proxy:"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
        let mut settings = Settings::default();
        settings.delivery.egress_proxy = Some("http://u:hunter2@proxy.internal:3128".into());
        settings.check().expect("a proxy URL with credentials");
    }

    #[test]
    fn lists_come_as_arrays_or_comma_separated_text() {
        let text = "[auth]\nadmin_tokens = \"aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb\"\n[delivery]\nretry_schedule_ms = \"10,20\"\n";
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .expect("parses");
        assert_eq!(settings.auth.admin_tokens.len(), 2);
        assert_eq!(settings.delivery.retry_schedule_ms, [10, 20]);
        assert_eq!(settings.retry_policy().max_attempts(), 3);
    }

    /// Every secret the operator configures stays out of `Debug`, for the settings and for
    /// the operator target built from them.
    #[test]
    fn debug_shows_no_secret() {
        let text = r#"
            [auth]
            admin_tokens = "admintokenAAAAAAAAAA, admintokenBBBBBBBBBB"
            main_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
            [rabbitmq]
            url = "amqp://guest:rabbitpassword@127.0.0.1:5672/%2f, amqp://u:rabbitsecond@h:1/"
            [redis]
            url = "redis://:redispassword@127.0.0.1:7101,redis://:redissecond@127.0.0.1:7102"
            [operational_webhooks]
            url = "http://127.0.0.1:9/"
            secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            [delivery]
            egress_proxy = "http://proxyuser:proxypassword@10.0.0.5:3128"
        "#;
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .expect("parses");
        settings.check().expect("valid");
        let target = settings.operator_target().expect("valid").expect("set");
        let shown = format!("{settings:?} {target:?}");
        let secrets = [
            "admintokenAAAAAAAAAA",
            "admintokenBBBBBBBBBB",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
            "rabbitpassword",
            "rabbitsecond",
            "redispassword",
            "redissecond",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "proxypassword",
        ];
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(shown.contains("amqp://***@127.0.0.1:5672/%2f"), "{shown}");
        assert!(shown.contains("redis://***@127.0.0.1:7102"), "{shown}");
        // The values themselves are intact for the code that connects and signs.
        assert_eq!(
            settings.rabbit_config().expect("valid").urls[0],
            "amqp://guest:rabbitpassword@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            target.secret.expose(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
        assert_eq!(
            settings.require_admin_tokens().expect("set")[1].expose(),
            secrets[1]
        );
    }
}
