//! `hookline bench`: drives a Hookline (its own, or any Svix-compatible server) through the
//! public API only, measures the machine's raw ceiling in the same run, and reports each
//! figure as a ratio to it, with JSON results and SVG plots.
//!
//! It is a benchmark, not a test: it prints figures and whether each target was met; the
//! test suite only runs a seconds-long smoke run of it.

pub mod ceiling;
pub mod client;
pub mod cpu;
pub mod fixture;
pub mod flood;
pub mod load;
pub mod ordered;
pub mod pglog;
pub mod plot;
pub mod receiver;
pub mod redis_stats;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use scenarios::{Bench, Scale, ScenarioError, ScenarioResult};
use target::{Deployment, Engine, Services};

/// Which Hookline to drive.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start ingest, dispatcher and scheduler from this executable on these services, or,
    /// `embedded`, one `serve` process on its embedded database.
    Spawn { exe: PathBuf, embedded: bool },
    /// A running server: its base URL and an admin token.
    External { url: String, token: String },
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub target: Target,
    pub services: Services,
    pub scale: Scale,
    /// Scenario numbers to run ([`scenarios::ALL`]).
    pub scenarios: Vec<u8>,
    pub payload_bytes: usize,
    /// Where results.json and the plots go.
    pub out_dir: PathBuf,
    /// Extra `HOOKLINE__…` settings for a spawned deployment.
    pub env: Vec<(String, String)>,
    /// Leave the log's PostgreSQL schema in place after the run (to EXPLAIN its queries).
    pub keep_log_schema: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("starting the deployment: {0}")]
    Target(#[from] target::TargetError),
    #[error("measuring the ceiling: {0}")]
    Ceiling(#[from] ceiling::CeilingError),
    #[error("scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("receiver: {0}")]
    Receiver(std::io::Error),
    #[error("writing results: {0}")]
    Output(String),
}

/// Runs the bench and writes its results; answers the report.
pub async fn run(options: &BenchOptions) -> Result<report::Report, BenchError> {
    let epoch = Instant::now();
    let receiver = receiver::Receiver::start(epoch)
        .await
        .map_err(BenchError::Receiver)?;
    std::fs::create_dir_all(&options.out_dir).map_err(|e| BenchError::Output(e.to_string()))?;
    let mut deployment = match &options.target {
        Target::Spawn { exe, embedded } => {
            Deployment::spawn(
                exe,
                &options.services,
                &target::log_dir(&options.out_dir),
                &options.env,
                *embedded,
            )
            .await?
        }
        Target::External { url, token } => Deployment::external(url, token)?,
    };
    let outcome = measure(options, &mut deployment, receiver, epoch).await;
    deployment
        .tear_down(&options.services.redis_url, options.keep_log_schema)
        .await;
    let report = outcome?;
    report::write(&report, &options.out_dir).map_err(BenchError::Output)?;
    plot::write(&report, &options.out_dir).map_err(BenchError::Output)?;
    Ok(report)
}

async fn measure(
    options: &BenchOptions,
    deployment: &mut Deployment,
    receiver: receiver::Receiver,
    epoch: Instant,
) -> Result<report::Report, BenchError> {
    let scale = options.scale;
    let ceiling_messages = (scale.throughput_messages as u64 * 2).max(2_000);
    eprintln!("measuring the raw ceiling ({ceiling_messages} messages each)…");
    let cpu = deployment.cpu_watch(&options.services);
    let before = cpu.start();
    let broker = ceiling::rabbitmq(
        &options.services.amqp_url,
        ceiling_messages,
        options.payload_bytes,
    )
    .await?;
    let ceiling_cores = before.cores_since(&cpu);
    let before = cpu.start();
    let http = ceiling::http(&receiver, ceiling_messages, options.payload_bytes, 64).await?;
    let http_cores = before.cores_since(&cpu);
    let samples = if scale.throughput_messages < 1_000 {
        50
    } else {
        1_000
    };
    let round_trip = stats::latency(
        &ceiling::rabbitmq_round_trip(&options.services.amqp_url, samples, options.payload_bytes)
            .await?,
    );
    let bench = Bench {
        api: deployment.api.clone(),
        receiver,
        epoch,
        body: Arc::new(load::message_body(options.payload_bytes)),
        scale,
    };
    let wanted = |n: u8| options.scenarios.contains(&n);
    let mut results: Vec<ScenarioResult> = Vec::new();
    let mut peak_rss = Vec::new();
    let mut single = None;
    // Redis's own counters, read around a scenario, where the deployment uses Redis.
    let redis_url = match deployment.engine {
        Engine::RabbitRedis { .. } => Some(options.services.redis_url.as_str()),
        _ => None,
    };
    let redis_calls = || async move {
        match redis_url {
            Some(url) => redis_stats::command_calls(url).await,
            None => None,
        }
    };
    let redis_figure = |before: Option<_>, after: Option<_>, r: &ScenarioResult| {
        before
            .zip(after)
            .and_then(|(before, after)| redis_stats::per_delivery(&before, &after, r.deliveries))
    };
    if wanted(1) || wanted(2) || wanted(4) || wanted(10) {
        let cpu = deployment.cpu_watch(&options.services);
        let before = cpu.start();
        let calls_before = redis_calls().await;
        let mut r = scenarios::max_throughput(&bench, broker).await?;
        r.details["coresUsed"] = serde_json::json!(before.cores_since(&cpu));
        if let Some(figure) = redis_figure(calls_before, redis_calls().await, &r) {
            r.details["redisCommands"] = figure;
        }
        peak_rss = deployment.peak_rss_mib();
        single = Some(r.per_second);
        if wanted(1) {
            results.push(r);
        }
    }
    if wanted(2) {
        let calls_before = redis_calls().await;
        let mut r = scenarios::fan_out(&bench, single.unwrap_or(1.0)).await?;
        if let Some(figure) = redis_figure(calls_before, redis_calls().await, &r) {
            r.details["redisCommands"] = figure;
        }
        results.push(r);
    }
    if wanted(5) {
        results.push(scenarios::latency(&bench).await?);
    }
    if wanted(10) {
        results.push(ordered::run(&bench, single).await?);
    }
    // Before 6, 3 and 4, whose leftovers (a refusing endpoint's retries, a million waiting
    // retries) would keep scenario 7 from ever seeing nothing pending.
    results.extend(log_scenarios(options, deployment, &bench).await?);
    // Before 3 and 4: their leftovers (a refusing endpoint's retries, a million waiting
    // retries) would sit in the backlog statistics the flood reads.
    if wanted(6) {
        results.push(flood::run(&bench, single).await?);
    }
    if wanted(3) {
        results.push(scenarios::isolation(&bench).await?);
    }
    if wanted(4) {
        let waiting = fill_backlog(options, deployment, &bench).await?;
        results.push(scenarios::backlog(&bench, waiting, single.unwrap_or(1.0)).await?);
    }
    Ok(report::Report {
        target: deployment.api_url.clone(),
        engine: match deployment.engine {
            Engine::RabbitRedis { .. } => "rabbitmq+redis",
            Engine::Embedded { .. } => "embedded",
            Engine::External => "external",
        }
        .to_owned(),
        log: match (&deployment.engine, &deployment.log) {
            (Engine::RabbitRedis { .. }, Some(_)) => Some("postgres".into()),
            (Engine::RabbitRedis { .. }, None) => Some("redis".into()),
            (Engine::Embedded { .. }, _) => Some("embedded".into()),
            (Engine::External, _) => None,
        },
        log_schema: deployment.log.as_ref().map(|log| log.schema().to_owned()),
        spawned: !deployment.roles.is_empty(),
        payload_bytes: options.payload_bytes,
        ceiling: report::Ceiling {
            rabbitmq_per_second: broker,
            http_per_second: http,
            rabbitmq_round_trip: round_trip,
            cores_used: ceiling_cores,
            http_cores_used: http_cores,
        },
        peak_rss_mib: peak_rss
            .into_iter()
            .map(|(role, mib)| (role.to_owned(), mib))
            .collect(),
        scenarios: results,
        machine: report::machine(),
    })
}

/// Scenarios 7, 8 and 9, those asked for: the bench's own RabbitMQ + Redis deployment
/// only (they weigh and fill its stores), 8 and 9 with the log on PostgreSQL.
async fn log_scenarios(
    options: &BenchOptions,
    deployment: &Deployment,
    bench: &Bench,
) -> Result<Vec<ScenarioResult>, BenchError> {
    let wanted: Vec<u8> = scenarios::LOG
        .into_iter()
        .filter(|n| options.scenarios.contains(n))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let Engine::RabbitRedis { redis_prefix } = &deployment.engine else {
        return Err(ScenarioError::Log(
            "scenarios 7-9 weigh and fill the bench's own RabbitMQ + Redis deployment".into(),
        )
        .into());
    };
    let target = pglog::LogTarget {
        redis_url: options.services.redis_url.clone(),
        redis_prefix: redis_prefix.clone(),
        log: deployment.log.clone(),
    };
    let mut results = Vec::new();
    if wanted.contains(&7) {
        results.push(pglog::sizing(bench, &target).await?);
    }
    let needs_log =
        || ScenarioError::Log("scenarios 8 and 9 need the log on PostgreSQL (--postgres)".into());
    if wanted.contains(&8) {
        let log = target.log.as_ref().ok_or_else(needs_log)?;
        results.push(pglog::retention_drop(bench, log).await?);
    }
    if wanted.contains(&9) {
        let log = target.log.as_ref().ok_or_else(needs_log)?;
        results.push(pglog::log_reads(bench, log).await?);
    }
    Ok(results)
}

/// Scenario 4's backlog: written straight into the deployment's retry schedule. The embedded
/// database has one owner, so its `serve` is stopped while the bench writes and started
/// again after. An external server's schedule is out of reach: no backlog.
async fn fill_backlog(
    options: &BenchOptions,
    deployment: &mut Deployment,
    bench: &Bench,
) -> Result<usize, BenchError> {
    let store_error = |e: hookline_core::ports::StoreError| ScenarioError::Store(e.to_string());
    match deployment.engine.clone() {
        Engine::RabbitRedis { redis_prefix } => {
            let mut config = hookline_redis::RedisConfig::new(options.services.redis_url.clone());
            config.prefix = redis_prefix;
            let store = hookline_redis::RedisStore::connect(&config).map_err(store_error)?;
            Ok(scenarios::fill_schedule(bench, &store).await?)
        }
        Engine::Embedded { data_dir } => {
            deployment.stop_roles().await;
            let config = hookline_embedded::EmbeddedConfig {
                data_dir,
                main_key: None,
            };
            let waiting = {
                let (store, _queue) = hookline_embedded::open(&config).map_err(store_error)?;
                scenarios::fill_schedule(bench, &store).await?
                // Dropping the store and queue here closes the database for `serve`.
            };
            deployment.start_roles().await?;
            Ok(waiting)
        }
        Engine::External => Ok(0),
    }
}
