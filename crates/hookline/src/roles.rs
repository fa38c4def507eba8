//! Wiring: each role takes the adapters and runs until shutdown. No logic lives here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hookline_dispatcher::delivery::Stores;
use hookline_dispatcher::{Dispatcher, DispatcherConfig};
use hookline_ingest::auth::AdminTokens;
use hookline_ingest::{ApiState, IngestConfig, Services};
use hookline_scheduler::{Scheduler, SchedulerConfig};
use tokio_util::sync::CancellationToken;

use crate::backends::Backends;
use crate::settings::Settings;

pub async fn ingest(
    settings: &Settings,
    backends: &Backends,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tokens = settings.require_admin_tokens()?;
    let api = &settings.api;
    let config = IngestConfig {
        max_body_bytes: api.max_body_bytes,
        max_payload_depth: api.max_payload_depth,
        idempotency_ttl: Duration::from_secs(api.idempotency_ttl_secs),
        public_url: api.public_url.clone(),
        max_endpoints_per_app: api.max_endpoints_per_app,
        secret_rotation_grace: Duration::from_secs(settings.delivery.secret_rotation_grace_secs),
        idempotency_lease: Duration::from_millis(api.idempotency_lease_ms),
        background_task_lease: Duration::from_millis(api.background_task_lease_ms),
        broker_wait: Duration::from_millis(settings.rabbitmq.publish_timeout_ms),
        intake_concurrency: api.intake_concurrency,
        ..IngestConfig::default()
    };
    let ports = backends.ports.clone();
    let state = ApiState::new(Services {
        registry: ports.registry,
        messages: ports.messages,
        attempts: ports.attempts,
        publisher: ports.publisher,
        tokens: ports.tokens,
        jobs: ports.jobs,
        schedule: ports.schedule,
        sequencer: ports.sequencer,
        backlog: backends.backlog.clone(),
        ledger: ports.ledger,
        events: backends.events.clone(),
        readiness: backends.readiness(),
        metrics: Arc::clone(&backends.metrics),
        admin_tokens: AdminTokens::new(tokens.iter().map(|t| t.expose())),
        resolver: settings.resolver()?,
        config,
    });
    let listener = tokio::net::TcpListener::bind(&api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", api.listen))?;
    let address = listener.local_addr()?;
    // Printed on stdout so scripts and tests can find the port when `listen` used port 0.
    println!("hookline: ingest listening on http://{address}");
    tracing::info!(%address, "ingest listening");
    // Queues the tasks of messages whose request died before the broker confirmed them.
    let sweep = tokio::spawn(hookline_ingest::outbox::run(
        state.clone(),
        shutdown.clone(),
    ));
    let served = hookline_ingest::run(listener, state, shutdown.clone())
        .await
        .context("ingest server");
    shutdown.cancel();
    let _ = sweep.await;
    served
}

pub async fn dispatcher(
    settings: &Settings,
    backends: &Backends,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let d = &settings.delivery;
    let config = DispatcherConfig {
        concurrency: d.concurrency,
        max_in_flight_per_endpoint: d.max_in_flight_per_endpoint,
        request_timeout: Duration::from_millis(d.timeout_ms),
        max_response_bytes: d.max_response_bytes,
        retry: settings.retry_policy(),
        retention_secs: d.retention_days.saturating_mul(24 * 3600),
        circuit_failure_threshold: d.circuit_failure_threshold,
        circuit_open_for: Duration::from_millis(d.circuit_open_ms),
        circuit_max_hold: settings.circuit_max_hold(),
        disable_after_failing_for: Duration::from_secs(d.endpoint_failure_disable_after_secs),
        cache_ttl: Duration::from_millis(d.endpoint_cache_ms),
        settle_batch: d.settle_batch,
        pause_before_ack: d.pause_before_ack_ms.map(Duration::from_millis),
        egress_proxy: d.egress_proxy.clone(),
        ..DispatcherConfig::default()
    };
    let dispatcher = Arc::new(Dispatcher::new(
        config,
        stores(backends),
        settings.resolver()?,
        backends.events.clone(),
        Arc::clone(&backends.metrics),
    )?);
    let tag = format!("dispatcher-{}", std::process::id());
    let source = backends.source(&tag);
    println!("hookline: dispatcher consuming");
    let grace = Duration::from_millis(settings.shutdown.grace_ms);
    let drained = dispatcher.run(source, shutdown, grace).await;
    tracing::info!(abandoned = drained.abandoned, "dispatcher stopped");
    Ok(())
}

pub async fn scheduler(
    settings: &Settings,
    backends: &Backends,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let s = &settings.scheduler;
    let config = SchedulerConfig {
        batch_size: s.batch_size,
        lease: Duration::from_millis(s.lease_ms),
        max_idle_wait: Duration::from_millis(s.poll_ms),
        pause_after_claim: s.pause_after_claim_ms.map(Duration::from_millis),
        stall_sweep_every: Duration::from_millis(s.fifo_sweep_ms.max(1)),
        stale_after: Duration::from_millis(s.fifo_stale_ms),
    };
    let scheduler = Arc::new(Scheduler::new(
        config,
        Arc::clone(&backends.ports.schedule),
        Arc::clone(&backends.ports.publisher),
        Arc::clone(&backends.ports.sequencer),
        Arc::clone(&backends.metrics),
    ));
    println!("hookline: scheduler running");
    scheduler.run(shutdown).await;
    tracing::info!("scheduler stopped");
    Ok(())
}

/// The ports the dispatcher uses, and the process's backlog tally.
fn stores(backends: &Backends) -> Stores {
    let ports = &backends.ports;
    Stores {
        registry: Arc::clone(&ports.registry),
        messages: Arc::clone(&ports.messages),
        attempts: Arc::clone(&ports.attempts),
        schedule: Arc::clone(&ports.schedule),
        limiter: Arc::clone(&ports.limiter),
        health: Arc::clone(&ports.health),
        settlement: Arc::clone(&ports.settlement),
        sequencer: Arc::clone(&ports.sequencer),
        publisher: Arc::clone(&ports.publisher),
        backlog: backends.backlog.clone(),
    }
}
