//! Scenario 6, one tenant's flood: quiet apps send at a steady rate for the whole scenario;
//! after a baseline, one more app sends as fast as the API accepts. A fair deployment keeps
//! the quiet apps' tail latency near its baseline while the flood drains, and still gives the
//! flooding app about the throughput it gets alone (scenario 1). While the flood is under
//! way the bench also asks the server's backlog statistics who is behind, once a second, to
//! see whether they name the flooding app.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::client::{ApiClient, ClientError};
use crate::load::{self, LoadResult};
use crate::receiver::Behaviour;
use crate::scenarios::{paths, result, Bench, ScenarioError, ScenarioResult, SENDERS};
use crate::stats::{self, LatencyBin};

/// The quiet apps' p99 during the flood may be at most this many times their p99 before it.
pub const P99_RATIO_TARGET: f64 = 2.0;
/// The flooding app's deliveries per second, as a share of scenario 1's, at least.
pub const RATE_RATIO_TARGET: f64 = 0.8;
/// Width of the plot's time slices, in seconds.
const SLICE_SECONDS: f64 = 0.5;
/// The backlog statistics: the five apps with the most pending, admin only.
const BACKLOG_PATH: &str = "/api/v1/stats/backlog?limit=5";
/// A backlog poll counts towards "named the flooding app first" while at least this many
/// messages were pending: during the flood nearly all of them are the flooding app's (the
/// quiet apps keep a handful in flight), and a smaller backlog says little about a ranking.
const LARGE_BACKLOG: u64 = 100;

/// Scenario 6's series over time, in seconds since the scenario began (its apps made).
#[derive(Debug, Clone, Default)]
pub struct FloodSeries {
    /// The quiet apps' latency per slice, by when each message was due.
    pub quiet: Vec<LatencyBin>,
    /// The flooding app's deliveries per second per slice.
    pub flood_rate: Vec<(f64, f64)>,
    /// When the flood's first send went out.
    pub flood_start: f64,
    /// When the flood's last message was delivered.
    pub flood_end: f64,
    /// Scenario 1's deliveries per second in the same run, when it ran.
    pub single: Option<f64>,
}

/// Runs scenario 6. `single`: scenario 1's deliveries per second in this run, if it ran.
pub async fn run(bench: &Bench, single: Option<f64>) -> Result<ScenarioResult, ScenarioError> {
    let scale = bench.scale;
    let quiet_paths = paths("s6q", scale.flood_quiet_apps);
    let flood_paths = paths("s6a", 1);
    let mut quiet_apps = Vec::with_capacity(quiet_paths.len());
    for (i, path) in quiet_paths.iter().enumerate() {
        let endpoint = [(path.clone(), Behaviour::Accept)];
        quiet_apps.push(
            bench
                .app_with(&format!("6 flood: quiet {i}"), &endpoint, &[])
                .await?,
        );
    }
    let endpoint = [(flood_paths[0].clone(), Behaviour::Accept)];
    let flooder = bench.app_with("6 flood: flooding", &endpoint, &[]).await?;

    let origin = bench.epoch.elapsed();
    let since_origin = |at: Duration| at.as_secs_f64() - origin.as_secs_f64();
    let (stop_quiet, quiet_stop) = watch::channel(false);
    let quiet_sender = tokio::spawn({
        let (api, body, epoch) = (bench.api.clone(), bench.body.clone(), bench.epoch);
        let rate = scale.flood_quiet_rate * quiet_apps.len() as f64;
        async move {
            // Hidden: it runs beside the flood's own progress bar.
            let bar = indicatif::ProgressBar::hidden();
            load::open_loop_until(&api, &quiet_apps, body, rate, quiet_stop, epoch, &bar).await
        }
    });
    eprintln!(
        "6 flood: {} quiet apps at {}/s each, {} s alone first",
        scale.flood_quiet_apps, scale.flood_quiet_rate, scale.flood_baseline_seconds
    );
    tokio::time::sleep(Duration::from_secs_f64(scale.flood_baseline_seconds)).await;

    let flood_start = bench.epoch.elapsed();
    let (stop_polls, polls_stop) = watch::channel(false);
    let poller = tokio::spawn(poll_backlog(
        bench.api.clone(),
        flooder.clone(),
        polls_stop,
        bench.epoch,
        origin,
    ));
    let bar = bench.bar(scale.flood_messages, "6 flood: flooding app sending");
    let flood = load::max_throughput(
        &bench.api,
        &flooder,
        bench.body.clone(),
        scale.flood_messages,
        SENDERS,
        bench.epoch,
        &bar,
    )
    .await;
    bar.finish();
    let bar = bench.bar(0, "6 flood: flooding app delivered");
    bench
        .await_deliveries(&flood_paths, flood.sent.len(), &bar)
        .await;
    let _ = stop_quiet.send(true);
    let _ = stop_polls.send(true);
    let quiet = quiet_sender.await.unwrap_or_else(|e| LoadResult {
        errors: 1,
        first_error: Some(format!("quiet sender: {e}")),
        ..LoadResult::default()
    });
    let backlog = poller
        .await
        .unwrap_or_else(|e| Backlog::Failed(format!("poller: {e}")));
    let bar = bench.bar(0, "6 flood: quiet apps delivered");
    bench
        .await_deliveries(&quiet_paths, quiet.sent.len(), &bar)
        .await;

    let arrivals = bench.receiver.take();
    let flooded = stats::match_arrivals(&flood.sent, &arrivals, Some(&flood_paths));
    let calm = stats::match_arrivals(&quiet.sent, &arrivals, Some(&quiet_paths));
    let flood_end = flooded.last_arrival.max(flood_start);

    // Each quiet delivery by when its message was due. The baseline is what was due and
    // delivered before the flood's first send (a message due just before it but delivered
    // during it is in neither phase); the flood phase is what was due from its first send
    // to its last delivery; what was due after that, before the quiet senders stopped, is
    // counted for losses only.
    let points: Vec<(f64, f64, u64)> = calm
        .arrival_times
        .iter()
        .zip(&calm.latencies_us)
        .map(|(at, us)| {
            let due = at.saturating_sub(Duration::from_micros(*us));
            (since_origin(due), since_origin(*at), *us)
        })
        .collect();
    let (start_s, end_s) = (since_origin(flood_start), since_origin(flood_end));
    let latencies = |keep: &dyn Fn(f64, f64) -> bool| -> Vec<u64> {
        points
            .iter()
            .filter(|(due, at, _)| keep(*due, *at))
            .map(|(_, _, us)| *us)
            .collect()
    };
    let before = latencies(&|_, at| at < start_s);
    let during = latencies(&|due, _| due >= start_s && due <= end_s);
    let straddling = latencies(&|due, at| due < start_s && at >= start_s).len();
    let baseline_latency = stats::latency(&before);

    let mut r = result(
        6,
        "flood: 1 app floods, quiet apps keep sending",
        &flood,
        &flooded,
        1,
    );
    let quiet_lost = quiet.sent.len().saturating_sub(calm.deliveries());
    let flood_lost = flood.sent.len().saturating_sub(flooded.deliveries());
    r.messages += quiet.sent.len();
    r.deliveries += calm.deliveries();
    r.expected_deliveries += quiet.sent.len();
    r.duplicates += calm.duplicates;
    r.rejected += quiet.errors;
    // The table's latency and the CDF are the quiet apps' during the flood: the figure.
    r.latency = stats::latency(&during);
    r.cdf = stats::cdf(&during);
    let p99_ratio = r.latency.p99_ms / baseline_latency.p99_ms.max(0.001);
    let single = single.filter(|s| *s > 0.0);
    let rate_ratio = single.map(|s| r.per_second / s);
    let rate_figure = match rate_ratio {
        Some(ratio) => format!("{ratio:.2} of scenario 1"),
        None => "ratio unknown (scenario 1 did not run)".into(),
    };
    r.figure = format!(
        "quiet p99 {:.1} ms vs {:.1} ms before = {p99_ratio:.2}x; flood {:.0}/s = {rate_figure}",
        r.latency.p99_ms, baseline_latency.p99_ms, r.per_second
    );
    r.target = format!("≤ {P99_RATIO_TARGET:.1}x; ≥ {RATE_RATIO_TARGET:.2} of 1; none lost");
    let whole = quiet_lost == 0 && flood_lost == 0 && r.rejected == 0 && r.duplicates == 0;
    r.met = !during.is_empty()
        && !before.is_empty()
        && p99_ratio <= P99_RATIO_TARGET
        && rate_ratio.is_some_and(|ratio| ratio >= RATE_RATIO_TARGET)
        && whole;

    let slice = Duration::from_secs_f64(SLICE_SECONDS);
    let series = FloodSeries {
        quiet: stats::latency_bins(
            &points
                .iter()
                .map(|(due, _, us)| (*due, *us))
                .collect::<Vec<_>>(),
            0.0,
            SLICE_SECONDS,
        ),
        flood_rate: stats::timeline_from(&flooded.arrival_times, origin, slice),
        flood_start: start_s,
        flood_end: end_s,
        single,
    };
    r.details = json!({
        "firstRejection": flood.first_error.clone().or_else(|| quiet.first_error.clone()),
        "quietApps": scale.flood_quiet_apps,
        "quietRatePerApp": scale.flood_quiet_rate,
        "baselineSeconds": scale.flood_baseline_seconds,
        "floodStartS": start_s,
        "floodEndS": end_s,
        "p99Ratio": p99_ratio,
        "baselineLatency": baseline_latency,
        "floodLatency": r.latency,
        "floodPerSecond": r.per_second,
        "scenario1PerSecond": single,
        "ratioToScenario1": rate_ratio,
        "flood": part(&flood, flooded.deliveries(), flooded.duplicates),
        "quiet": part(&quiet, calm.deliveries(), calm.duplicates),
        "quietStraddlingFloodStart": straddling,
        "quietAfterFlood": points.iter().filter(|(due, _, _)| *due > end_s).count(),
        "backlogRanking": backlog.summary(),
        "quietLatencyBins": series.quiet,
        "floodDeliveriesPerSecond": series.flood_rate,
    });
    r.flood = Some(series);
    Ok(r)
}

/// One sender's count: sent, delivered, rejected, duplicates.
fn part(load: &LoadResult, delivered: usize, duplicates: u64) -> Value {
    json!({
        "sent": load.sent.len(),
        "delivered": delivered,
        "lost": load.sent.len().saturating_sub(delivered),
        "rejected": load.errors,
        "duplicates": duplicates,
    })
}

/// What the backlog statistics said during the flood.
enum Backlog {
    Polls {
        polls: Vec<BacklogPoll>,
        failed: usize,
        first_error: Option<String>,
    },
    /// The server has no such route (404): not built in the server under test.
    Missing,
    Failed(String),
}

/// One answer of `GET /api/v1/stats/backlog`, as far as the scenario needs it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct BacklogPoll {
    /// Seconds since the scenario began.
    t: f64,
    pending: Option<u64>,
    /// The first of `apps`: `appId`, `pending`, `oldestPendingAgeMs`.
    first: Value,
    flooder_first: bool,
    /// The flooding app's entry in `apps`, when listed.
    flooder_pending: Option<u64>,
    flooder_oldest_pending_age_ms: Option<u64>,
}

impl BacklogPoll {
    fn read(answer: &Value, flooder: &str, t: f64) -> Self {
        let apps = answer["apps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let first = apps.first().cloned().unwrap_or(Value::Null);
        let mine = apps.iter().find(|a| a["appId"] == flooder);
        Self {
            t,
            pending: answer["pending"].as_u64(),
            flooder_first: first["appId"] == flooder,
            first: json!({
                "appId": first["appId"],
                "pending": first["pending"],
                "oldestPendingAgeMs": first["oldestPendingAgeMs"],
            }),
            flooder_pending: mine.and_then(|a| a["pending"].as_u64()),
            flooder_oldest_pending_age_ms: mine.and_then(|a| a["oldestPendingAgeMs"].as_u64()),
        }
    }
}

impl Backlog {
    /// For results.json: `null` when the route is missing, else the polls and whether the
    /// flooding app came first in most of those taken while the backlog was large.
    fn summary(&self) -> Value {
        match self {
            Self::Missing => Value::Null,
            Self::Failed(error) => json!({ "error": error }),
            Self::Polls {
                polls,
                failed,
                first_error,
            } => {
                let large: Vec<_> = polls
                    .iter()
                    .filter(|p| p.pending.is_some_and(|n| n >= LARGE_BACKLOG))
                    .collect();
                let first: Vec<_> = large.iter().filter(|p| p.flooder_first).collect();
                let most =
                    |f: fn(&BacklogPoll) -> Option<u64>| first.iter().filter_map(|p| f(p)).max();
                json!({
                    "polls": polls.len(),
                    "failedPolls": failed,
                    "firstError": first_error,
                    "largeThreshold": LARGE_BACKLOG,
                    "pollsWhileLarge": large.len(),
                    "flooderFirstWhileLarge": first.len(),
                    "flooderFirstInMajority": (!large.is_empty()).then(|| first.len() * 2 > large.len()),
                    "flooderMaxPendingWhenFirst": most(|p| p.flooder_pending),
                    "flooderMaxOldestAgeMsWhenFirst": most(|p| p.flooder_oldest_pending_age_ms),
                    "samples": polls,
                })
            }
        }
    }
}

/// Asks the backlog statistics once a second until `stop`; stops at a 404.
async fn poll_backlog(
    api: ApiClient,
    flooder: String,
    mut stop: watch::Receiver<bool>,
    epoch: std::time::Instant,
    origin: Duration,
) -> Backlog {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut polls, mut failed, mut first_error) = (Vec::new(), 0, None);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = ticker.tick() => {}
        }
        let asked = epoch.elapsed().saturating_sub(origin).as_secs_f64();
        let answer = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            answer = api.get(BACKLOG_PATH) => answer,
        };
        match answer {
            Ok(answer) => polls.push(BacklogPoll::read(&answer, &flooder, asked)),
            Err(ClientError::Status { status: 404, .. }) => return Backlog::Missing,
            Err(error) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    if polls.is_empty() {
        if let Some(error) = first_error {
            return Backlog::Failed(error);
        }
    }
    Backlog::Polls {
        polls,
        failed,
        first_error,
    }
}

/// The table's line about the backlog statistics, from scenario 6's details.
pub fn backlog_line(details: &Value) -> String {
    let ranking = &details["backlogRanking"];
    if ranking.is_null() {
        return "not available (the server has no GET /api/v1/stats/backlog)".into();
    }
    if let Some(error) = ranking["error"].as_str() {
        return format!("not read: {error}");
    }
    let verdict = match ranking["flooderFirstInMajority"].as_bool() {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "unknown",
    };
    format!(
        "flooding app named first in {} of {} polls with ≥ {} pending (majority: {verdict}); largest pending when first {}, oldest {} ms",
        ranking["flooderFirstWhileLarge"],
        ranking["pollsWhileLarge"],
        ranking["largeThreshold"],
        ranking["flooderMaxPendingWhenFirst"],
        ranking["flooderMaxOldestAgeMsWhenFirst"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(pending: u64, apps: &[(&str, u64, u64)]) -> Value {
        let apps: Vec<Value> = apps
            .iter()
            .map(|(id, pending, age)| {
                json!({"appId": id, "appUid": null, "pending": pending, "oldestPendingAgeMs": age})
            })
            .collect();
        json!({"pending": pending, "oldestPendingAgeMs": 0, "apps": apps, "endpoints": [], "asOf": "now"})
    }

    #[test]
    fn the_flooder_counts_as_first_only_in_polls_with_a_large_backlog() {
        let polls = vec![
            // Small backlog: not counted either way.
            BacklogPoll::read(&answer(10, &[("app_quiet", 9, 5)]), "app_flood", 1.0),
            BacklogPoll::read(
                &answer(5_000, &[("app_flood", 4_990, 900), ("app_quiet", 3, 5)]),
                "app_flood",
                2.0,
            ),
            BacklogPoll::read(
                &answer(8_000, &[("app_flood", 7_990, 1_900)]),
                "app_flood",
                3.0,
            ),
            BacklogPoll::read(
                &answer(6_000, &[("app_quiet", 10, 5), ("app_flood", 5_990, 2_500)]),
                "app_flood",
                4.0,
            ),
        ];
        let summary = Backlog::Polls {
            polls,
            failed: 0,
            first_error: None,
        }
        .summary();
        assert_eq!(summary["pollsWhileLarge"], 3, "{summary}");
        assert_eq!(summary["flooderFirstWhileLarge"], 2, "{summary}");
        assert_eq!(summary["flooderFirstInMajority"], true, "{summary}");
        assert_eq!(summary["flooderMaxPendingWhenFirst"], 7_990, "{summary}");
        assert_eq!(
            summary["flooderMaxOldestAgeMsWhenFirst"], 1_900,
            "{summary}"
        );
        assert!(backlog_line(&json!({ "backlogRanking": summary })).contains("2 of 3"));
    }

    #[test]
    fn a_missing_route_is_null_and_no_large_backlog_is_unknown() {
        assert_eq!(Backlog::Missing.summary(), Value::Null);
        assert!(backlog_line(&json!({ "backlogRanking": null })).contains("not available"));
        let summary = Backlog::Polls {
            polls: vec![BacklogPoll::read(&answer(3, &[]), "app_flood", 1.0)],
            failed: 0,
            first_error: None,
        }
        .summary();
        assert_eq!(summary["flooderFirstInMajority"], Value::Null, "{summary}");
    }
}
