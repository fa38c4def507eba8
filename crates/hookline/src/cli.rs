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
    /// A local receiver that verifies each delivery's signature and prints it.
    Listen {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: SocketAddr,
        /// The endpoint's signing secret (`whsec_…`).
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
            Self::Listen { .. } => "listen",
            Self::Send { .. } => "send",
            Self::Recover { .. } => "recover",
        }
    }
}
