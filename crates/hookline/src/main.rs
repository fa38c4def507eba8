//! `hookline`: one binary for every role.

mod backends;
mod backlog;
mod cli;
mod first_start;
mod ops;
mod roles;
mod settings;
mod telemetry;
mod tools;

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::backends::Backends;
use crate::cli::{Cli, Command};
use crate::settings::{Engines, Settings};

/// mimalloc rather than glibc's malloc: with many small, short-lived allocations spread
/// over worker threads (one request, one task, one attempt at a time), glibc's allocator
/// was about a tenth of all CPU in the throughput benchmark (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(result) = run_tool(&cli.command) {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("hookline: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let loaded = Settings::load(cli.config.as_deref()).and_then(|settings| {
        settings.check_role(cli.command.name())?;
        Ok(settings)
    });
    let mut settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("hookline: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = embedded_admin_token(&mut settings) {
        eprintln!("hookline: {error:#}");
        return ExitCode::FAILURE;
    }
    let _telemetry = match telemetry::init(&settings.log, &settings.telemetry) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("hookline: cannot set up tracing: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hookline: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookline: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Embedded mode with no admin token configured uses the one in the data dir, generating
/// it (and showing it once) on the first start.
fn embedded_admin_token(settings: &mut Settings) -> anyhow::Result<()> {
    let Ok(Engines::Embedded { data_dir }) = settings.engines() else {
        return Ok(());
    };
    if !settings.auth.admin_tokens.is_empty() {
        return Ok(());
    }
    let stored = first_start::admin_token(&data_dir)?;
    if stored.generated {
        println!(
            "{}",
            first_start::welcome(&stored, &settings.api.public_url)
        );
    } else {
        println!(
            "hookline: using the admin token in {}",
            stored.path.display()
        );
    }
    settings.auth.admin_tokens = vec![stored.token.into()];
    Ok(())
}

/// The terminal tools need no server configuration; `None` for the server roles.
fn run_tool(command: &Command) -> Option<anyhow::Result<()>> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
    };
    let result = match command {
        Command::Listen { listen, secret } => {
            runtime().and_then(|rt| rt.block_on(tools::listen::run(*listen, secret)))
        }
        Command::Send {
            api,
            app,
            event_type,
            payload,
            idempotency_key,
        } => runtime().and_then(|rt| {
            rt.block_on(tools::send::run(
                api,
                app,
                event_type,
                payload,
                idempotency_key.as_deref(),
            ))
        }),
        Command::Recover {
            api,
            app,
            endpoint,
            since,
            until,
        } => runtime().and_then(|rt| {
            rt.block_on(tools::recover::run(
                api,
                app,
                endpoint,
                since,
                until.as_deref(),
            ))
        }),
        Command::Bench(args) => runtime().and_then(|rt| rt.block_on(tools::bench::run(args))),
        Command::Ingest
        | Command::Dispatcher
        | Command::Scheduler
        | Command::Serve
        | Command::Migrate => return None,
    };
    Some(result)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    if let Command::Migrate = command {
        return backends::migrate(&settings).await;
    }
    let backends = Backends::connect(&settings)?;
    backends.prepare(&settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    tracing::info!(role = command.name(), "starting");
    tokio::spawn(refresh_gauges(backends.clone(), shutdown.clone()));
    backends.spawn_upkeep(&shutdown);
    let ops = tokio::spawn(ops::serve(
        settings.ops.listen.clone(),
        backends.readiness(),
        std::sync::Arc::clone(&backends.metrics),
        shutdown.clone(),
    ));

    let result = match command {
        Command::Ingest => roles::ingest(&settings, &backends, shutdown.clone()).await,
        Command::Dispatcher => roles::dispatcher(&settings, &backends, shutdown.clone()).await,
        Command::Scheduler => roles::scheduler(&settings, &backends, shutdown.clone()).await,
        Command::Serve => {
            // Any role failing stops the others: a half-running process would look healthy.
            let stop_all = shutdown.clone();
            let first_error = |r: anyhow::Result<()>| {
                if r.is_err() {
                    stop_all.cancel();
                }
                r
            };
            let (ingest, dispatcher, scheduler) = tokio::join!(
                async { first_error(roles::ingest(&settings, &backends, shutdown.clone()).await) },
                async {
                    first_error(roles::dispatcher(&settings, &backends, shutdown.clone()).await)
                },
                async {
                    first_error(roles::scheduler(&settings, &backends, shutdown.clone()).await)
                },
            );
            ingest.and(dispatcher).and(scheduler)
        }
        Command::Listen { .. }
        | Command::Send { .. }
        | Command::Recover { .. }
        | Command::Bench(_)
        | Command::Migrate => Err(anyhow::anyhow!(
            "terminal tools run before any configuration is loaded"
        )),
    };
    backends.shutdown().await;
    shutdown.cancel();
    if let Ok(Err(error)) = ops.await {
        tracing::warn!(%error, "ops server");
    }
    result
}

/// Once a second: copies the engines' connection state and open circuits into the metrics.
async fn refresh_gauges(backends: Backends, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut redis_was_down = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => backends.sample_gauges(&mut redis_was_down).await,
        }
    }
}

/// SIGTERM (Kubernetes) or Ctrl-C starts a graceful shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
