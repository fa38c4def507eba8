//! Scenario 10, ordered (FIFO) endpoints: how fast one ordered endpoint's line drains when
//! its receiver answers in 1 ms (one delivery at a time, so its own round trip bounds it),
//! and scenario 1 run again while other apps' ordered endpoints receive a steady trickle:
//! unordered deliveries must not pay for ordering elsewhere.

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::load;
use crate::receiver::Behaviour;
use crate::scenarios::{paths, result, Bench, ScenarioError, ScenarioResult, SENDERS};
use crate::stats;

/// Scenario 1 beside ordered endpoints, as a share of scenario 1 alone, at least.
pub const BESIDE_RATIO_TARGET: f64 = 0.95;
/// The receiver's answer time for the ordered endpoint.
const RECEIVER_DELAY: Duration = Duration::from_millis(1);
/// Messages per second each other app's ordered endpoint receives during the rerun: enough
/// to keep their lines in use, too little to take a visible share of the machine.
const TRICKLE_PER_APP: f64 = 1.0;

/// Runs scenario 10. `single`: scenario 1's deliveries per second in this run.
pub async fn run(bench: &Bench, single: Option<f64>) -> Result<ScenarioResult, ScenarioError> {
    let (line_rate, line_messages) = drain_one_line(bench).await?;
    let mut r = beside_ordered(bench).await?;
    r.details["orderedPerSecond"] = json!(line_rate);
    r.details["orderedMessages"] = json!(line_messages);
    r.details["orderedReceiverMs"] = json!(RECEIVER_DELAY.as_millis() as u64);
    r.details["orderedApps"] = json!(bench.scale.ordered_apps);
    match single {
        Some(single) if single > 0.0 => {
            let ratio = r.per_second / single;
            r.figure = format!(
                "{:.0} deliveries/s = {ratio:.2} of scenario 1 beside {} ordered endpoints; one ordered endpoint at 1 ms: {line_rate:.0}/s",
                r.per_second, bench.scale.ordered_apps
            );
            r.met = ratio >= BESIDE_RATIO_TARGET && r.deliveries == r.expected_deliveries;
            r.details["ratioToScenario1"] = json!(ratio);
        }
        _ => {
            r.figure = format!(
                "{:.0} deliveries/s beside {} ordered endpoints (scenario 1 did not run); one ordered endpoint at 1 ms: {line_rate:.0}/s",
                r.per_second, bench.scale.ordered_apps
            );
        }
    }
    r.target = format!("≥ {BESIDE_RATIO_TARGET:.2} of scenario 1");
    Ok(r)
}

/// One app, one ordered endpoint answering in 1 ms; messages sent as fast as the API takes
/// them, so the line is long and drains one delivery at a time. Answers deliveries per
/// second and how many were delivered.
async fn drain_one_line(bench: &Bench) -> Result<(f64, usize), ScenarioError> {
    let path = paths("s10line", 1);
    let app = bench.api.create_app("10 ordered: line").await?;
    let url = bench
        .receiver
        .url(&path[0], Behaviour::Slow(RECEIVER_DELAY));
    bench.api.create_ordered_endpoint(&app, &url).await?;
    let messages = bench.scale.ordered_messages;
    let bar = bench.bar(messages, "10 ordered: sending");
    let sent = load::max_throughput(
        &bench.api,
        &app,
        bench.body.clone(),
        messages,
        SENDERS,
        bench.epoch,
        &bar,
    )
    .await;
    bar.finish();
    let bar = bench.bar(0, "10 ordered: delivered in order");
    bench.await_deliveries(&path, sent.sent.len(), &bar).await;
    let matched = stats::match_arrivals(&sent.sent, &bench.receiver.take(), Some(&path));
    Ok((matched.per_second(), matched.deliveries()))
}

/// Scenario 1's flood on an app of its own while `ordered_apps` other apps' ordered
/// endpoints receive messages at a steady rate.
async fn beside_ordered(bench: &Bench) -> Result<ScenarioResult, ScenarioError> {
    let trickle_paths = paths("s10fifo", bench.scale.ordered_apps);
    let mut apps = Vec::with_capacity(trickle_paths.len());
    for (i, path) in trickle_paths.iter().enumerate() {
        let app = bench
            .api
            .create_app(&format!("10 ordered: app {i}"))
            .await?;
        let url = bench.receiver.url(path, Behaviour::Slow(RECEIVER_DELAY));
        bench.api.create_ordered_endpoint(&app, &url).await?;
        apps.push(app);
    }
    let (stop, stopped) = watch::channel(false);
    let trickle = tokio::spawn({
        let (api, body, epoch) = (bench.api.clone(), bench.body.clone(), bench.epoch);
        let rate = TRICKLE_PER_APP * apps.len() as f64;
        async move {
            let bar = indicatif::ProgressBar::hidden();
            load::open_loop_until(&api, &apps, body, rate, stopped, epoch, &bar).await
        }
    });
    let flood_paths = paths("s10", 1);
    let flooded = bench
        .flood(
            "10 scenario 1 beside ordered",
            &flood_paths,
            bench.scale.throughput_messages,
        )
        .await;
    let _ = stop.send(true);
    let trickled = trickle.await.map_or(0, |load| load.sent.len());
    let (load, matched) = flooded?;
    let mut r = result(
        10,
        "scenario 1 beside ordered endpoints",
        &load,
        &matched,
        1,
    );
    r.details["orderedTrickleMessages"] = json!(trickled);
    Ok(r)
}
