//! An endpoint change reaches every dispatcher: at once for messages sent after it (their
//! tasks carry the endpoint's version), and within `delivery.endpoint_cache_ms` (1 s by
//! default) for tasks queued before it, such as retries.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

/// The default `delivery.endpoint_cache_ms`.
const BOUND: Duration = Duration::from_secs(1);
/// Room for a retry already past its cache check when the bound ends (one request).
const MARGIN: Duration = Duration::from_millis(500);

/// Two dispatchers retry failing messages every 150 ms. Moving the endpoint to a healthy URL
/// and then disabling it are honoured by both within the bound: nothing reaches the old URL
/// after it, and nothing at all after the disable.
#[tokio::test]
async fn endpoint_changes_reach_two_dispatchers_within_the_cache_bound() {
    const MESSAGES: usize = 20;
    let retries = vec!["150"; 40].join(",");
    let stack = Stack::new("epchange")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", &retries)
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        // The endpoint fails on purpose; its circuit must not hold the retries.
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "100000");
    let ingest = stack.start(Role::Ingest).await;
    let _scheduler = stack.start(Role::Scheduler).await;
    let _first = stack.start(Role::Dispatcher).await;
    let _second = stack.start(Role::Dispatcher).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("epchange-app").await;
    let failing = receiver.url("old", Reply::Always(500));
    let healthy = receiver.url("new", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": failing})).await;
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}");

    let sent: HashSet<String> = api
        .send_many(&app, "order.created", MESSAGES)
        .await
        .into_iter()
        .collect();
    eventually(
        "every message failing and retrying",
        Duration::from_secs(30),
        || async { (receiver.count("old") >= 2 * MESSAGES).then_some(()) },
    )
    .await;
    let (status, body) = api
        .call(Method::PATCH, &path, Some(&json!({"url": healthy})), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let moved_at = Instant::now();
    receiver
        .await_all("new", &sent, Duration::from_secs(30))
        .await;
    let late: Vec<Duration> = receiver
        .deliveries("old")
        .iter()
        .filter(|d| d.at > moved_at)
        .map(|d| d.at - moved_at)
        .collect();
    let latest = late.iter().max().copied().unwrap_or_default();
    println!(
        "after the move: {} requests still reached the old URL, the last {latest:?} after it",
        late.len()
    );
    assert!(
        latest <= BOUND + MARGIN,
        "the old URL was still used {latest:?} after the move"
    );

    // Failing again, then disabled: every retry stops within the bound.
    let (status, body) = api
        .call(Method::PATCH, &path, Some(&json!({"url": failing})), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = receiver.count("old");
    api.send_many(&app, "order.created", MESSAGES).await;
    eventually(
        "the new messages failing and retrying",
        Duration::from_secs(30),
        || async { (receiver.count("old") >= before + 2 * MESSAGES).then_some(()) },
    )
    .await;
    let (status, body) = api
        .call(Method::PATCH, &path, Some(&json!({"disabled": true})), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let disabled_at = Instant::now();
    // Retries come every 150 ms: were any still sent, they would show within this wait.
    eventually(
        "the bound and a few retry periods to pass",
        Duration::from_secs(10),
        || async {
            (disabled_at.elapsed() >= BOUND + MARGIN + Duration::from_secs(1)).then_some(())
        },
    )
    .await;
    let late: Vec<Duration> = receiver
        .deliveries("old")
        .iter()
        .filter(|d| d.at > disabled_at)
        .map(|d| d.at - disabled_at)
        .collect();
    let latest = late.iter().max().copied().unwrap_or_default();
    println!(
        "after the disable: {} requests, the last {latest:?} after it",
        late.len()
    );
    assert!(
        latest <= BOUND + MARGIN,
        "the disabled endpoint was still called {latest:?} after the disable"
    );
}
