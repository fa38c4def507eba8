//! Scenario 10, ordered (FIFO) endpoints: how fast one ordered endpoint's line drains when
//! its receiver answers in 1 ms (one delivery at a time, so its own round trip bounds it),
//! and scenario 1's flood with and without other apps' ordered endpoints receiving a steady
//! trickle beside it: unordered deliveries must not pay for ordering elsewhere.

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::load;
use crate::receiver::Behaviour;
use crate::scenarios::{paths, result, Bench, ScenarioError, ScenarioResult};

/// Scenario 1 beside ordered endpoints, as a share of scenario 1 alone, at least.
pub const BESIDE_RATIO_TARGET: f64 = 0.95;
/// The receiver's answer time for the ordered endpoint.
const RECEIVER_DELAY: Duration = Duration::from_millis(1);
/// Messages per second each other app's ordered endpoint receives during the rerun: enough
/// to keep their lines in use, too little to take a visible share of the machine.
const TRICKLE_PER_APP: f64 = 1.0;

/// Runs scenario 10. `single`: scenario 1's deliveries per second in this run.
///
/// The comparison is made inside the scenario, in the order A B B A (scenario 1's flood
/// without ordered traffic, twice with it, once more without), so a drift over the run (the
/// stores filling up) weighs on both sides alike.
pub async fn run(bench: &Bench, single: Option<f64>) -> Result<ScenarioResult, ScenarioError> {
    let (line_rate, line_messages) = drain_one_line(bench).await?;
    let trickle_apps = ordered_apps(bench).await?;
    let control_1 = flood(bench, "10 scenario 1, control", None).await?;
    let beside_1 = flood(bench, "10 scenario 1 beside ordered", Some(&trickle_apps)).await?;
    let beside_2 = flood(bench, "10 scenario 1 beside ordered", Some(&trickle_apps)).await?;
    let control_2 = flood(bench, "10 scenario 1, control", None).await?;
    let control = (control_1.per_second + control_2.per_second) / 2.0;
    let beside = (beside_1.per_second + beside_2.per_second) / 2.0;
    let ratio = if control > 0.0 { beside / control } else { 0.0 };
    let mut r = beside_2;
    let all_delivered = [&control_1, &beside_1, &r, &control_2]
        .iter()
        .all(|run| run.deliveries == run.expected_deliveries);
    r.figure = format!(
        "{beside:.0} deliveries/s beside {} ordered endpoints = {ratio:.2} of {control:.0} without; one ordered endpoint at 1 ms: {line_rate:.0}/s",
        bench.scale.ordered_apps
    );
    r.target = format!("≥ {BESIDE_RATIO_TARGET:.2} of scenario 1 without them");
    r.met = ratio >= BESIDE_RATIO_TARGET && all_delivered;
    r.details["ratioToControl"] = json!(ratio);
    r.details["controlPerSecond"] = json!([control_1.per_second, control_2.per_second]);
    r.details["besidePerSecond"] = json!([beside_1.per_second, r.per_second]);
    if let Some(single) = single.filter(|s| *s > 0.0) {
        r.details["ratioToScenario1"] = json!(beside / single);
    }
    r.details["orderedPerSecond"] = json!(line_rate);
    r.details["orderedMessages"] = json!(line_messages);
    r.details["orderedReceiverMs"] = json!(RECEIVER_DELAY.as_millis() as u64);
    r.details["orderedApps"] = json!(bench.scale.ordered_apps);
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
    let (_, matched) = bench
        .flood_app("10 ordered line", &app, &path, bench.body.clone(), messages)
        .await;
    Ok((matched.per_second(), matched.deliveries()))
}

/// `ordered_apps` apps, each with an ordered endpoint answering in 1 ms.
async fn ordered_apps(bench: &Bench) -> Result<Vec<String>, ScenarioError> {
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
    Ok(apps)
}

/// Scenario 1's flood on an app of its own; with `trickle`, while those apps' ordered
/// endpoints receive messages at a steady rate.
async fn flood(
    bench: &Bench,
    name: &str,
    trickle: Option<&[String]>,
) -> Result<ScenarioResult, ScenarioError> {
    let (stop, stopped) = watch::channel(false);
    let trickling = trickle.map(|apps| {
        let (api, body, epoch) = (bench.api.clone(), bench.body.clone(), bench.epoch);
        let (apps, rate) = (apps.to_vec(), TRICKLE_PER_APP * apps.len() as f64);
        tokio::spawn(async move {
            let bar = indicatif::ProgressBar::hidden();
            load::open_loop_until(&api, &apps, body, rate, stopped, epoch, &bar).await
        })
    });
    let flood_paths = paths("s10", 1);
    let flooded = bench
        .flood(name, &flood_paths, bench.scale.throughput_messages)
        .await;
    let _ = stop.send(true);
    let trickled = match trickling {
        Some(task) => task.await.map_or(0, |load| load.sent.len()),
        None => 0,
    };
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
