//! The command line: which role to run and where its configuration lives.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Dispatcher => "dispatcher",
            Self::Scheduler => "scheduler",
            Self::Serve => "serve",
        }
    }
}
