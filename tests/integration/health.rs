//! Endpoint health: a dead endpoint trips its circuit breaker (few connection attempts, a
//! healthy endpoint unaffected), is disabled after failing too long, and an
//! `endpoint.disabled` operational webhook arrives, signed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::testkit::python::verify_delivery;
use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const OPERATOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A TCP port that accepts and drops every connection, counting them: a dead endpoint
/// whose connection attempts can be counted from outside Hookline.
async fn dead_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/dead", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(socket);
        }
    });
    (url, connections)
}

#[apply(backends)]
#[tokio::test]
async fn a_dead_endpoint_trips_the_breaker_and_is_disabled_with_an_operational_webhook(
    #[case] backend: Backend,
) {
    const MESSAGES: usize = 1_000;
    let receiver = Receiver::start().await;
    let operator_url = receiver.url("operator", Reply::Always(200));
    let stack = Stack::on(backend, "breaker")
        .with("HOOKLINE__DELIVERY__CONCURRENCY", "32")
        .with("HOOKLINE__RABBITMQ__PREFETCH", "32")
        .with(
            "HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS",
            "300,300,300,300,300,300",
        )
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "3")
        .with("HOOKLINE__DELIVERY__CIRCUIT_OPEN_MS", "500")
        .with(
            "HOOKLINE__DELIVERY__ENDPOINT_FAILURE_DISABLE_AFTER_SECS",
            "3",
        )
        .with("HOOKLINE__OPERATIONAL_WEBHOOKS__URL", &operator_url)
        .with("HOOKLINE__OPERATIONAL_WEBHOOKS__SECRET", OPERATOR_SECRET);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("breaker-app").await;
    let (dead_url, connections) = dead_endpoint().await;
    let dead = api.create_endpoint(&app, json!({"url": dead_url})).await;
    let healthy_url = receiver.url("healthy", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": healthy_url})).await;

    let started = Instant::now();
    api.send_many(&app, "order.created", MESSAGES).await;
    eventually(
        "every message at the healthy endpoint",
        Duration::from_secs(60),
        || async { (receiver.count("healthy") >= MESSAGES).then_some(()) },
    )
    .await;
    let healthy_done = started.elapsed();

    let disabled = eventually(
        "the dead endpoint to be disabled",
        Duration::from_secs(60),
        || async {
            let endpoint = api.get(&format!("/api/v1/app/{app}/endpoint/{dead}")).await;
            (endpoint["disabled"] == true).then_some(endpoint)
        },
    )
    .await;
    assert_eq!(disabled["id"], dead.as_str());
    let notice = eventually(
        "the endpoint.disabled webhook",
        Duration::from_secs(30),
        || async {
            receiver.deliveries("operator").into_iter().find(|d| {
                serde_json::from_str::<Value>(&d.body).is_ok_and(|b| {
                    b["type"] == "endpoint.disabled" && b["data"]["endpointId"] == dead.as_str()
                })
            })
        },
    )
    .await;
    let (verified, answer) = verify_delivery(OPERATOR_SECRET, &notice.headers, &notice.body).await;
    assert!(verified, "the operational webhook is signed: {answer}");
    let body: Value = serde_json::from_str(&notice.body).expect("json");
    assert_eq!(body["data"]["appId"], app.as_str());
    assert_eq!(body["data"]["trigger"], "automatic");
    assert!(body["data"]["failSince"].is_string(), "{body}");

    // The open circuit shows in the shared gauge.
    let metrics = format!("{}/metrics", hookline.ops_url().await);
    await_metric_line(&metrics, "hookline_open_circuits 1").await;

    let attempts = connections.load(Ordering::Relaxed);
    println!(
        "{MESSAGES} messages: {attempts} connections to the dead endpoint; healthy endpoint done in {healthy_done:?}"
    );
    assert!(
        attempts < MESSAGES / 5,
        "the breaker kept connection attempts far below {MESSAGES}: {attempts}"
    );
    // The operator also heard about both endpoints being created.
    let created = receiver
        .deliveries("operator")
        .iter()
        .filter(|d| d.body.contains("\"endpoint.created\""))
        .count();
    assert_eq!(created, 2);
}

/// `message.attempt.failing` after the fourth failed attempt and `message.attempt.exhausted`
/// after the last reach the operator; updates and deletes of endpoints are announced too.
#[apply(backends)]
#[tokio::test]
async fn attempt_and_endpoint_events_reach_the_operator(#[case] backend: Backend) {
    let receiver = Receiver::start().await;
    let operator_url = receiver.url("operator", Reply::Always(200));
    let stack = Stack::on(backend, "opevents")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "20,20,20,20,20")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "100")
        .with("HOOKLINE__OPERATIONAL_WEBHOOKS__URL", &operator_url)
        .with("HOOKLINE__OPERATIONAL_WEBHOOKS__SECRET", OPERATOR_SECRET);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("opevents-app").await;
    let url = receiver.url("failing", Reply::Always(500));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "invoice.paid", json!({"n": 1})).await;

    let events = |wanted: &'static str| {
        let receiver = receiver.clone();
        move || {
            let receiver = receiver.clone();
            async move {
                receiver.deliveries("operator").into_iter().find_map(|d| {
                    let body: Value = serde_json::from_str(&d.body).ok()?;
                    (body["type"] == wanted).then_some(body)
                })
            }
        }
    };
    let exhausted = eventually(
        "message.attempt.exhausted",
        Duration::from_secs(30),
        events("message.attempt.exhausted"),
    )
    .await;
    assert_eq!(exhausted["data"]["msgId"], msg.as_str());
    assert_eq!(exhausted["data"]["endpointId"], endpoint.as_str());
    assert_eq!(exhausted["data"]["lastAttempt"]["responseStatusCode"], 500);
    let failing = eventually(
        "message.attempt.failing",
        Duration::from_secs(5),
        events("message.attempt.failing"),
    )
    .await;
    assert_eq!(failing["data"]["msgId"], msg.as_str());
    assert_eq!(receiver.count("failing"), 6);

    let (status, _) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{endpoint}"),
            Some(&json!({"description": "renamed"})),
            &[],
        )
        .await;
    assert!(status.is_success());
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/app/{app}/endpoint/{endpoint}"),
            None,
            &[],
        )
        .await;
    assert!(status.is_success());
    let updated = eventually(
        "endpoint.updated",
        Duration::from_secs(10),
        events("endpoint.updated"),
    )
    .await;
    assert_eq!(updated["data"]["endpointId"], endpoint.as_str());
    let deleted = eventually(
        "endpoint.deleted",
        Duration::from_secs(10),
        events("endpoint.deleted"),
    )
    .await;
    assert_eq!(deleted["data"]["endpointId"], endpoint.as_str());
}

/// 410 Gone disables the endpoint at once, after a single attempt.
#[apply(backends)]
#[tokio::test]
async fn gone_disables_the_endpoint_at_once(#[case] backend: Backend) {
    let stack = Stack::on(backend, "gone");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("gone-app").await;
    let url = receiver.url("gone", Reply::Always(410));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    eventually(
        "the endpoint to be disabled",
        Duration::from_secs(20),
        || async {
            let ep = api
                .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
                .await;
            (ep["disabled"] == true).then_some(())
        },
    )
    .await;
    let destination = api
        .destination(&app, &msg, &endpoint)
        .await
        .expect("destination");
    assert_eq!(destination["status"], 2);
    assert_eq!(destination["attempts"], 1);
    assert_eq!(receiver.count("gone"), 1);
}

/// A flaky endpoint: its first three answers are 500 (one message's first three attempts, so
/// the streak is not broken by concurrent successes), which opens its circuit; deliveries in
/// the open period are held (attempts with no response, none spent); the probe's success
/// closes the circuit, the open-circuits gauge goes up and back down, and every message
/// arrives.
#[apply(backends)]
#[tokio::test]
async fn a_flaky_endpoint_opens_its_circuit_then_closes_it_and_gets_every_message(
    #[case] backend: Backend,
) {
    const MESSAGES: usize = 10;
    const FAILURES: usize = 3;
    let receiver = Receiver::start().await;
    let stack = Stack::on(backend, "flaky")
        .with(
            "HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS",
            &["200"; 20].join(","),
        )
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "3")
        // Longer than the gauge's one-second sampling, so the open circuit shows in it.
        .with("HOOKLINE__DELIVERY__CIRCUIT_OPEN_MS", "1500");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("flaky-app").await;
    let replies = [vec![500; FAILURES], vec![200]].concat();
    let url = receiver.url("flaky", Reply::Sequence(replies));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let metrics = format!("{}/metrics", hookline.ops_url().await);

    let mut ids = vec![api.send(&app, "order.created", json!({"n": 0})).await];
    await_metric_line(&metrics, "hookline_open_circuits 1").await;
    ids.extend(api.send_many(&app, "order.created", MESSAGES - 1).await);
    eventually(
        "every message answered 200",
        Duration::from_secs(30),
        || async {
            let succeeded: std::collections::HashSet<String> = receiver
                .deliveries("flaky")
                .into_iter()
                .skip(FAILURES)
                .map(|d| d.webhook_id().to_owned())
                .collect();
            ids.iter().all(|id| succeeded.contains(id)).then_some(())
        },
    )
    .await;
    await_metric_line(&metrics, "hookline_open_circuits 0").await;
    let attempts = api
        .get(&format!(
            "/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250"
        ))
        .await;
    let skipped = attempts["data"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter(|a| a["responseStatusCode"] == 0)
        .count();
    assert!(
        skipped > 0,
        "retries in the open period were held: {attempts}"
    );
}

/// Waits until the `/metrics` page at `metrics` has the line `wanted`.
async fn await_metric_line(metrics: &str, wanted: &str) {
    eventually(
        &format!("`{wanted}` in {metrics}"),
        Duration::from_secs(10),
        || async {
            let page = reqwest::get(metrics).await.ok()?.text().await.ok()?;
            page.lines().any(|l| l == wanted).then_some(())
        },
    )
    .await;
}
