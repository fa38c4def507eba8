//! The scenarios (the sixth, one tenant's flood beside quiet ones, in `flood.rs`). Each
//! uses an app of its own, so one scenario's leftovers (a retry to a
//! refusing endpoint) are not counted in the next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{ApiClient, ClientError};
use crate::load::{self, LoadResult};
use crate::receiver::{Behaviour, Receiver};
use crate::stats::{self, Latency, Matched};

/// How big a run is: the full run for the figures, or a few seconds for the smoke test.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub throughput_messages: usize,
    pub fanout_messages: usize,
    pub isolation_rate: f64,
    pub isolation_seconds: f64,
    pub backlog_retries: usize,
    pub backlog_fresh_messages: usize,
    pub latency_rate: f64,
    pub latency_seconds: f64,
    /// Scenario 6: messages the flooding app sends at full speed.
    pub flood_messages: usize,
    /// Scenario 6: quiet apps, one endpoint each, sending at `flood_quiet_rate` each.
    pub flood_quiet_apps: usize,
    pub flood_quiet_rate: f64,
    /// Scenario 6: how long the quiet apps send alone before the flood.
    pub flood_baseline_seconds: f64,
    /// Scenario 7: messages whose log is weighed.
    pub log_messages: usize,
    /// Scenario 8: messages in the day of log that is dropped.
    pub drop_messages: usize,
    /// Scenario 9: messages in the fixture the reads run against.
    pub read_fixture_messages: usize,
    /// Scenario 9: payload bytes of each fixture message.
    pub read_fixture_payload_bytes: usize,
    /// Scenario 9: requests timed per query.
    pub read_requests: usize,
    /// Scenario 10: messages through one ordered endpoint's line.
    pub ordered_messages: usize,
    /// Scenario 10: other apps whose ordered endpoints receive a trickle during the rerun of
    /// scenario 1.
    pub ordered_apps: usize,
}

impl Scale {
    pub const FULL: Self = Self {
        throughput_messages: 30_000,
        fanout_messages: 4_000,
        isolation_rate: 50.0,
        isolation_seconds: 15.0,
        backlog_retries: 1_000_000,
        backlog_fresh_messages: 20_000,
        latency_rate: 1_000.0,
        latency_seconds: 15.0,
        flood_messages: 200_000,
        flood_quiet_apps: 20,
        flood_quiet_rate: 10.0,
        flood_baseline_seconds: 10.0,
        log_messages: 100_000,
        drop_messages: 1_000_000,
        read_fixture_messages: 10_000_000,
        read_fixture_payload_bytes: 256,
        read_requests: 200,
        ordered_messages: 3_000,
        ordered_apps: 20,
    };

    pub const QUICK: Self = Self {
        throughput_messages: 300,
        fanout_messages: 40,
        isolation_rate: 20.0,
        isolation_seconds: 2.0,
        backlog_retries: 2_000,
        backlog_fresh_messages: 200,
        latency_rate: 100.0,
        latency_seconds: 2.0,
        flood_messages: 2_000,
        flood_quiet_apps: 5,
        flood_quiet_rate: 10.0,
        flood_baseline_seconds: 2.0,
        log_messages: 1_000,
        drop_messages: 10_000,
        read_fixture_messages: 20_000,
        read_fixture_payload_bytes: 256,
        read_requests: 20,
        ordered_messages: 100,
        ordered_apps: 3,
    };
}

/// The scenarios there are, by number.
pub const ALL: std::ops::RangeInclusive<u8> = 1..=10;
/// The scenarios about the delivery log (7 also runs with the log in Redis, for comparison).
pub const LOG: [u8; 3] = [7, 8, 9];
/// The scenarios that need the log on PostgreSQL (`--postgres`).
pub const POSTGRES_ONLY: [u8; 2] = [8, 9];

/// Concurrent senders in the max-throughput mode.
pub(crate) const SENDERS: usize = 64;
/// Scenario 1's target: this share of the RabbitMQ ceiling measured in the same run.
pub const THROUGHPUT_TARGET: f64 = 0.6;
/// A run gives up waiting for deliveries after this long without a new one.
pub(crate) const STALL: Duration = Duration::from_secs(20);

/// What one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub id: u8,
    pub name: &'static str,
    pub messages: usize,
    /// First deliveries (message, endpoint) that arrived.
    pub deliveries: usize,
    pub expected_deliveries: usize,
    pub duplicates: u64,
    pub rejected: u64,
    pub per_second: f64,
    pub latency: Latency,
    /// The headline figure and its target.
    pub figure: String,
    pub target: String,
    pub met: bool,
    pub details: Value,
    #[serde(skip)]
    pub cdf: Vec<(f64, f64)>,
    #[serde(skip)]
    pub timeline: Vec<(f64, f64)>,
    /// Scenario 6's series over time, for its own plot.
    #[serde(skip)]
    pub flood: Option<crate::flood::FloodSeries>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error("store: {0}")]
    Store(String),
    #[error("{0}")]
    Log(String),
}

/// What every scenario works with.
pub struct Bench {
    pub api: ApiClient,
    pub receiver: Receiver,
    pub epoch: Instant,
    pub body: Arc<Value>,
    pub scale: Scale,
}

impl Bench {
    pub(crate) fn bar(&self, total: usize, message: &str) -> ProgressBar {
        let bar = ProgressBar::new(total as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:<34} [{bar:30}] {pos:>7}/{len:7} {per_sec:>12} {elapsed_precise}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        bar
    }

    /// An app with an endpoint per receiver path, plus endpoints at `other_urls`.
    pub(crate) async fn app_with(
        &self,
        name: &str,
        endpoints: &[(String, Behaviour)],
        other_urls: &[String],
    ) -> Result<String, ClientError> {
        let app = self.api.create_app(name).await?;
        for (path, behaviour) in endpoints {
            let url = self.receiver.url(path, *behaviour);
            self.api.create_endpoint(&app, &url).await?;
        }
        for url in other_urls {
            self.api.create_endpoint(&app, url).await?;
        }
        Ok(app)
    }

    /// Waits until `expected` deliveries arrived on `paths`, or none came for [`STALL`].
    pub(crate) async fn await_deliveries(
        &self,
        paths: &[String],
        expected: usize,
        bar: &ProgressBar,
    ) {
        bar.set_length(expected as u64);
        bar.set_position(0);
        let mut last = (0, Instant::now());
        loop {
            let got = self.receiver.count_on(paths);
            bar.set_position(got as u64);
            if got >= expected {
                break;
            }
            if got != last.0 {
                last = (got, Instant::now());
            } else if last.1.elapsed() > STALL {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bar.finish();
    }

    /// Sends at full speed to an app whose endpoints are `paths`; matches what arrived.
    pub(crate) async fn flood(
        &self,
        name: &str,
        paths: &[String],
        messages: usize,
    ) -> Result<(LoadResult, Matched), ScenarioError> {
        let endpoints: Vec<_> = paths
            .iter()
            .map(|p| (p.clone(), Behaviour::Accept))
            .collect();
        let app = self.app_with(name, &endpoints, &[]).await?;
        Ok(self
            .flood_app(name, &app, paths, self.body.clone(), messages)
            .await)
    }

    /// Sends `messages` of `body` at full speed to `app`, whose endpoints are `paths`;
    /// matches what arrived.
    pub(crate) async fn flood_app(
        &self,
        name: &str,
        app: &str,
        paths: &[String],
        body: Arc<Value>,
        messages: usize,
    ) -> (LoadResult, Matched) {
        let bar = self.bar(messages, &format!("{name}: sending"));
        let sent =
            load::max_throughput(&self.api, app, body, messages, SENDERS, self.epoch, &bar).await;
        bar.finish();
        let bar = self.bar(0, &format!("{name}: delivered"));
        self.await_deliveries(paths, sent.sent.len() * paths.len(), &bar)
            .await;
        let matched = stats::match_arrivals(&sent.sent, &self.receiver.take(), Some(paths));
        (sent, matched)
    }

    /// Sends at `rate` for `seconds` to an app with these endpoints; matches what arrived on
    /// the healthy ones.
    pub(crate) async fn steady(
        &self,
        name: &str,
        endpoints: &[(String, Behaviour)],
        other_urls: &[String],
        healthy: &[String],
        rate: f64,
        seconds: f64,
    ) -> Result<(String, LoadResult, Matched), ScenarioError> {
        let app = self.app_with(name, endpoints, other_urls).await?;
        let count = (rate * seconds) as usize;
        let bar = self.bar(count, &format!("{name}: sending at {rate}/s"));
        let sent = load::open_loop(
            &self.api,
            &app,
            self.body.clone(),
            rate,
            count,
            self.epoch,
            &bar,
        )
        .await;
        bar.finish();
        let bar = self.bar(0, &format!("{name}: delivered"));
        self.await_deliveries(healthy, sent.sent.len() * healthy.len(), &bar)
            .await;
        let matched = stats::match_arrivals(&sent.sent, &self.receiver.take(), Some(healthy));
        Ok((app, sent, matched))
    }
}

impl Bench {
    async fn disable_endpoints(&self, app: &str) -> Result<(), ClientError> {
        let list = self
            .api
            .get(&format!("/api/v1/app/{app}/endpoint?limit=250"))
            .await?;
        for endpoint in list["data"].as_array().into_iter().flatten() {
            if let Some(id) = endpoint["id"].as_str() {
                self.api
                    .patch(
                        &format!("/api/v1/app/{app}/endpoint/{id}"),
                        &json!({"disabled": true}),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

pub(crate) fn paths(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

pub(crate) fn result(
    id: u8,
    name: &'static str,
    load: &LoadResult,
    matched: &Matched,
    per_message: usize,
) -> ScenarioResult {
    ScenarioResult {
        id,
        name,
        messages: load.sent.len(),
        deliveries: matched.deliveries(),
        expected_deliveries: load.sent.len() * per_message,
        duplicates: matched.duplicates,
        rejected: load.errors,
        per_second: matched.per_second(),
        latency: stats::latency(&matched.latencies_us),
        figure: String::new(),
        target: String::new(),
        met: false,
        details: json!({ "firstRejection": load.first_error }),
        cdf: stats::cdf(&matched.latencies_us),
        timeline: stats::timeline(&matched.arrival_times, Duration::from_millis(500)),
        flood: None,
    }
}

/// 1: one endpoint, 1 KiB payloads, as fast as the API accepts them.
pub async fn max_throughput(
    bench: &Bench,
    broker_ceiling: f64,
) -> Result<ScenarioResult, ScenarioError> {
    let paths = paths("s1", 1);
    let (load, matched) = bench
        .flood("1 max throughput", &paths, bench.scale.throughput_messages)
        .await?;
    let mut r = result(1, "max throughput, 1 endpoint", &load, &matched, 1);
    let ratio = r.per_second / broker_ceiling;
    r.figure = format!(
        "{:.0} deliveries/s = {ratio:.2} of the RabbitMQ ceiling",
        r.per_second
    );
    r.target = format!("≥ {THROUGHPUT_TARGET:.2} of the RabbitMQ ceiling");
    r.met = ratio >= THROUGHPUT_TARGET && r.deliveries == r.expected_deliveries;
    r.details["ratioToBrokerCeiling"] = json!(ratio);
    Ok(r)
}

/// 2: each message to 10 endpoints.
pub async fn fan_out(bench: &Bench, single: f64) -> Result<ScenarioResult, ScenarioError> {
    let paths = paths("s2", 10);
    let (load, matched) = bench
        .flood("2 fan-out x10", &paths, bench.scale.fanout_messages)
        .await?;
    let mut r = result(2, "fan-out, 10 endpoints per message", &load, &matched, 10);
    let ratio = r.per_second / single;
    r.figure = format!(
        "{:.0} deliveries/s = {ratio:.2} of scenario 1",
        r.per_second
    );
    r.target = "≥ 0.80 of scenario 1".into();
    r.met = ratio >= 0.8 && r.deliveries == r.expected_deliveries;
    r.details["ratioToScenario1"] = json!(ratio);
    Ok(r)
}

/// 3: 20 endpoints; first all healthy, then one slow (5 s) and one refusing connections.
pub async fn isolation(bench: &Bench) -> Result<ScenarioResult, ScenarioError> {
    let scale = bench.scale;
    let healthy_a = paths("s3a", 20);
    let all_healthy: Vec<_> = healthy_a
        .iter()
        .map(|p| (p.clone(), Behaviour::Accept))
        .collect();
    let (_, _, baseline) = bench
        .steady(
            "3 isolation: all healthy",
            &all_healthy,
            &[],
            &healthy_a,
            scale.isolation_rate,
            scale.isolation_seconds,
        )
        .await?;
    let baseline_latency = stats::latency(&baseline.latencies_us);

    let healthy_b = paths("s3b", 18);
    let mut endpoints: Vec<_> = healthy_b
        .iter()
        .map(|p| (p.clone(), Behaviour::Accept))
        .collect();
    endpoints.push(("s3b-slow".into(), Behaviour::Slow(Duration::from_secs(5))));
    let refusing = [closed_port_url()];
    let (app, load, degraded) = bench
        .steady(
            "3 isolation: 10% bad",
            &endpoints,
            &refusing,
            &healthy_b,
            scale.isolation_rate,
            scale.isolation_seconds,
        )
        .await?;
    // Keep the bad endpoints' retries out of the scenarios that follow.
    bench.disable_endpoints(&app).await?;
    let mut r = result(
        3,
        "isolation, 10% of endpoints slow or refusing",
        &load,
        &degraded,
        18,
    );
    let ratio = r.latency.p99_ms / baseline_latency.p99_ms.max(0.001);
    r.figure = format!(
        "healthy p99 {:.1} ms vs {:.1} ms without bad endpoints = {ratio:.2}x",
        r.latency.p99_ms, baseline_latency.p99_ms
    );
    r.target = "≤ 2x".into();
    r.met = ratio <= 2.0 && r.deliveries == r.expected_deliveries;
    r.details["baselineLatency"] = json!(baseline_latency);
    r.details["p99Ratio"] = json!(ratio);
    Ok(r)
}

/// 4: fresh-message throughput with 1,000,000 retries waiting in the schedule.
/// `waiting`: retries the caller put in the deployment's schedule ([`fill_schedule`]).
pub async fn backlog(
    bench: &Bench,
    waiting: usize,
    empty: f64,
) -> Result<ScenarioResult, ScenarioError> {
    let paths = paths("s4", 1);
    let (load, matched) = bench
        .flood(
            "4 backlog: fresh messages",
            &paths,
            bench.scale.backlog_fresh_messages,
        )
        .await?;
    let mut r = result(
        4,
        "backlog: retries waiting in the schedule",
        &load,
        &matched,
        1,
    );
    let ratio = r.per_second / empty;
    r.figure = format!(
        "{:.0} deliveries/s with {waiting} retries waiting = {ratio:.2} of scenario 1",
        r.per_second
    );
    r.target = "≥ 0.90 of scenario 1".into();
    r.met = waiting > 0 && ratio >= 0.9 && r.deliveries == r.expected_deliveries;
    r.details["retriesWaiting"] = json!(waiting);
    r.details["ratioToScenario1"] = json!(ratio);
    Ok(r)
}

/// 5: latency at a fixed rate, one endpoint.
pub async fn latency(bench: &Bench) -> Result<ScenarioResult, ScenarioError> {
    let paths = paths("s5", 1);
    let endpoints: Vec<_> = paths
        .iter()
        .map(|p| (p.clone(), Behaviour::Accept))
        .collect();
    let (_, load, matched) = bench
        .steady(
            "5 latency",
            &endpoints,
            &[],
            &paths,
            bench.scale.latency_rate,
            bench.scale.latency_seconds,
        )
        .await?;
    let mut r = result(5, "latency at a fixed rate", &load, &matched, 1);
    r.figure = format!(
        "p50 {:.1} ms, p99 {:.1} ms at {}/s",
        r.latency.p50_ms, r.latency.p99_ms, bench.scale.latency_rate
    );
    r.target = "p50 < 5 ms, p99 < 25 ms".into();
    r.met =
        r.latency.p50_ms < 5.0 && r.latency.p99_ms < 25.0 && r.deliveries == r.expected_deliveries;
    Ok(r)
}

/// Puts `backlog_retries` retries, due in an hour, into the schedule through the store's own
/// port (the API has no way to make a retry wait); answers how many.
/// Puts the scale's backlog of retries, due in an hour, straight into a retry schedule (the
/// public API has no way to).
pub async fn fill_schedule(
    bench: &Bench,
    store: &dyn hookline_core::ports::RetrySchedule,
) -> Result<usize, ScenarioError> {
    use hookline_core::model::{DeliveryTask, TriggerType};
    let total = bench.scale.backlog_retries;
    let bar = bench.bar(total, "4 backlog: filling the schedule");
    let due = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let results: Vec<Result<(), String>> = stream::iter(0..total)
        .map(|n| {
            let task = DeliveryTask {
                msg_id: format!("msg_backlog{n}"),
                app_id: "app_backlog".into(),
                endpoint_id: "ep_backlog".into(),
                attempt: 2,
                trigger: TriggerType::Scheduled,
                event_type: "bench.event".into(),
                payload: None,
                traceparent: None,
                rate_slot: false,
                app_slot: false,
                held_since_ms: None,
                endpoint_version: None,
                queued_at_ms: None,
                in_line: false,
            };
            let bar = bar.clone();
            async move {
                let r = store.schedule(&task, due).await.map_err(|e| e.to_string());
                bar.inc(1);
                r
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    bar.finish();
    if let Some(Err(error)) = results.into_iter().find(Result::is_err) {
        return Err(ScenarioError::Store(error));
    }
    Ok(total)
}

/// A URL on a loopback port nothing listens on.
fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(9, |a| a.port());
    format!("http://127.0.0.1:{port}/refused")
}
