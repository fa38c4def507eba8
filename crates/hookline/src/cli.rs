//! The command line: which role to run and where its configuration lives.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "hookline", version, about = "Self-hosted webhook delivery")]
pub struct Cli {
    /// Configuration file (TOML). Default: `hookline.toml` when it exists. Environment
    /// variables `HOOKLINE__SECTION__KEY` override it.
    #[arg(long, global = true, env = "HOOKLINE_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The HTTP API: accepts messages and publishes delivery tasks.
    Ingest,
    /// Consumes delivery tasks, signs and POSTs them, records attempts, schedules retries.
    Dispatcher,
    /// Moves due retries from the schedule back onto the queue.
    Scheduler,
    /// Every role in one process.
    Serve,
    /// Applies the PostgreSQL log's missing migrations (versioned, each once, safe to run
    /// from several processes at once) and makes the coming days' partitions, then exits.
    Migrate,
    /// A local receiver that verifies each delivery's signature and prints it.
    Listen {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: SocketAddr,
        /// The endpoint's signing secret (`whsec_…`), or its public key (`whpk_…`) if it
        /// signs with ed25519.
        #[arg(long, env = "HOOKLINE_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// Create a message through the API.
    Send {
        #[command(flatten)]
        api: ApiArgs,
        /// Application id or uid.
        #[arg(long)]
        app: String,
        #[arg(long)]
        event_type: String,
        /// The JSON payload.
        #[arg(long, default_value = "{}")]
        payload: String,
        /// Repeating a key returns the original message instead of creating another.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Resend every message that failed for an endpoint since a time, with progress.
    Recover {
        #[command(flatten)]
        api: ApiArgs,
        /// Application id or uid.
        #[arg(long)]
        app: String,
        /// Endpoint id or uid.
        #[arg(long)]
        endpoint: String,
        /// RFC 3339 time (2026-11-24T10:00:00Z) or a span back from now (90m, 6h, 2d).
        #[arg(long)]
        since: String,
        /// RFC 3339 time; default: now.
        #[arg(long)]
        until: Option<String>,
    },
    /// Benchmark: load through the public API, the machine's raw ceiling, ratios and plots.
    Bench(BenchArgs),
}

/// `hookline bench`. Without `--url` it starts its own ingest, dispatcher and scheduler (this
/// binary) on the local RabbitMQ and Redis under a fresh prefix, or with `--embedded` one
/// `serve` process on a fresh embedded database, and removes them afterwards.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Drive this running Svix-compatible server instead of starting one.
    #[arg(long, requires = "token")]
    pub url: Option<String>,
    /// Start the bench's own Hookline in embedded mode: one `serve` process on its own
    /// database, no RabbitMQ or Redis (the raw ceiling still measures the local RabbitMQ).
    #[arg(long, conflicts_with = "url")]
    pub embedded: bool,
    /// Admin token of the server at `--url`.
    #[arg(long, hide_env_values = true, env = "HOOKLINE_BENCH_TOKEN")]
    pub token: Option<String>,
    /// RabbitMQ for the raw ceiling and for the bench's own deployment.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Redis for the bench's own deployment.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Scenarios to run: 1 max throughput, 2 fan-out, 3 isolation, 4 backlog, 5 latency,
    /// 6 one app's flood beside quiet apps; and, asked for by number, 7 log sizing (Redis,
    /// and PostgreSQL with --postgres), 8 retention drop and 9 log reads at volume (both
    /// with --postgres), 10 ordered endpoints (one line's drain at a 1 ms receiver, and
    /// scenario 1 again beside other apps' ordered endpoints).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6")]
    pub scenarios: Vec<u8>,
    /// Messages the flooding app sends in scenario 6 (200,000 in a full run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub flood_messages: Option<u64>,
    /// Keep the bench's own roles' delivery log in this PostgreSQL, in a schema of its own
    /// (migrated at start, dropped afterwards like its Redis keys). Not with --url or
    /// --embedded (from the environment, it is then left unused).
    #[arg(
        long = "postgres",
        value_name = "URL",
        env = "HOOKLINE_BENCH_POSTGRES_URL",
        hide_env_values = true
    )]
    pub postgres_url: Option<String>,
    /// Leave the log's schema (with scenario 9's fixture) in PostgreSQL after the run, to
    /// EXPLAIN its queries; the bench prints its name. Drop it yourself when done.
    #[arg(long, requires = "postgres_url")]
    pub keep_postgres_schema: bool,
    /// Scenario 7: messages whose log is weighed (100,000 in a full run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_messages: Option<u64>,
    /// Scenario 8: messages in the day of log that is dropped (1,000,000 in a full run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub drop_messages: Option<u64>,
    /// Scenario 9: messages in the log the reads run against (10,000,000 in a full run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub read_fixture_messages: Option<u64>,
    /// Scenario 9: payload bytes of each fixture message (256; smaller than scenario 7's
    /// 1 KiB so ten million fit on a development disk).
    #[arg(long, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub read_fixture_payload_bytes: Option<u64>,
    /// A run of seconds instead of minutes (for the smoke test; its figures mean little).
    #[arg(long)]
    pub quick: bool,
    /// Size of each create-message request body.
    #[arg(long, default_value_t = 1024)]
    pub payload_bytes: usize,
    /// Where results.json, latency-cdf.svg, throughput.svg and flood-latency.svg go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Extra setting for the bench's own roles, e.g. `--set HOOKLINE__DELIVERY__CONCURRENCY=512`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// Where the API is and how to authenticate.
#[derive(Debug, Args)]
pub struct ApiArgs {
    #[arg(long, env = "HOOKLINE_URL", default_value = "http://localhost:8071")]
    pub url: String,
    /// An admin or app token.
    #[arg(long, env = "HOOKLINE_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Dispatcher => "dispatcher",
            Self::Scheduler => "scheduler",
            Self::Serve => "serve",
            Self::Migrate => "migrate",
            Self::Listen { .. } => "listen",
            Self::Send { .. } => "send",
            Self::Recover { .. } => "recover",
            Self::Bench(_) => "bench",
        }
    }
}
