//! Every role serves /healthz, /readyz and /metrics; the counters move as deliveries happen.

use std::time::Duration;

use serde_json::json;

use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

/// The value of one sample line (`name{labels} value`) in a Prometheus text page.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn metrics_count_100_deliveries_with_10_failing_on_every_role() {
    let stack = Stack::new("metrics")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        // Every attempt made, so the counts are exact: an open circuit would hold the
        // failing endpoint's tasks for its open period (`breaker.rs` tests that).
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "100");
    let ingest = stack.start(Role::Ingest).await;
    let scheduler = stack.start(Role::Scheduler).await;
    let dispatcher = stack.start(Role::Dispatcher).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("metrics-app").await;
    let ok = receiver.url("ok", Reply::Always(200));
    let bad = receiver.url("bad", Reply::Always(500));
    api.create_endpoint(&app, json!({"url": ok, "eventTypes": ["good"]}))
        .await;
    api.create_endpoint(&app, json!({"url": bad, "eventTypes": ["bad"]}))
        .await;

    for process in [&ingest, &scheduler, &dispatcher] {
        let ops = process.ops_url().await;
        assert_eq!(get_text(&format!("{ops}/healthz")).await.0, 200);
        // Ready once its broker connection is up.
        let readyz = format!("{ops}/readyz");
        eventually("the role to be ready", Duration::from_secs(20), || async {
            (get_text(&readyz).await.0 == 200).then_some(())
        })
        .await;
        assert_eq!(get_text(&format!("{ops}/metrics")).await.0, 200);
    }

    for n in 0..100 {
        let event_type = if n % 10 == 0 { "bad" } else { "good" };
        api.send(&app, event_type, json!({"n": n})).await;
    }
    let dispatcher_metrics = format!("{}/metrics", dispatcher.ops_url().await);
    let page = eventually(
        "all deliveries settled",
        Duration::from_secs(30),
        || async {
            let (_, page) = get_text(&dispatcher_metrics).await;
            let exhausted = sample(&page, r#"hookline_deliveries_total{outcome="exhausted"}"#);
            let ok = sample(&page, r#"hookline_deliveries_total{outcome="succeeded"}"#);
            // A task's outcome is counted before its ack; it leaves the in-flight gauge after.
            let in_flight = sample(&page, "hookline_in_flight_tasks");
            (exhausted >= 10.0 && ok >= 90.0 && in_flight == 0.0).then_some(page)
        },
    )
    .await;
    assert_eq!(
        sample(&page, r#"hookline_deliveries_total{outcome="succeeded"}"#),
        90.0
    );
    assert_eq!(
        sample(
            &page,
            r#"hookline_deliveries_total{outcome="retry_scheduled"}"#
        ),
        10.0
    );
    assert_eq!(
        sample(&page, r#"hookline_deliveries_total{outcome="exhausted"}"#),
        10.0
    );
    // 110 attempts in all, every one made over HTTP.
    let made = sample(&page, "hookline_attempt_duration_seconds_count");
    let held = sample(&page, "hookline_circuit_open_skips_total");
    assert_eq!((made, held), (110.0, 0.0));
    assert_eq!(sample(&page, "hookline_end_to_end_seconds_count"), 90.0);
    assert_eq!(sample(&page, "hookline_in_flight_tasks"), 0.0);

    let (_, ingest_page) = get_text(&format!("{}/metrics", api.base)).await;
    assert_eq!(
        sample(&ingest_page, "hookline_messages_accepted_total"),
        100.0
    );
    let (_, ingest_ops_page) = get_text(&format!("{}/metrics", ingest.ops_url().await)).await;
    assert_eq!(
        sample(&ingest_ops_page, "hookline_messages_accepted_total"),
        100.0
    );
    let (_, scheduler_page) = get_text(&format!("{}/metrics", scheduler.ops_url().await)).await;
    assert!(
        scheduler_page.contains("hookline_retry_schedule_backlog"),
        "{scheduler_page}"
    );
}

/// An OTLP/HTTP receiver of the test's own gets the ingest request's span and the delivery
/// attempt's span, in one trace.
#[tokio::test]
async fn one_trace_spans_the_ingest_request_and_the_delivery_attempt() {
    use std::sync::{Arc, Mutex};

    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = Arc::clone(&received);
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                if let Ok(value) = serde_json::from_slice(&body) {
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(value);
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let stack = Stack::new("tracing").with("HOOKLINE__TELEMETRY__OTLP_ENDPOINT", &endpoint);
    // Export batches every 100 ms instead of every 5 s.
    let hookline = stack
        .start_with(Role::Serve, &[("OTEL_BSP_SCHEDULE_DELAY", "100")])
        .await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("tracing-app").await;
    let url = receiver.url("traced", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;
    api.send(&app, "invoice.paid", json!({"t": 1})).await;

    let (ingest, attempt) = eventually("both spans exported", Duration::from_secs(30), || {
        let received = Arc::clone(&received);
        async move {
            let batches = received
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let spans: Vec<serde_json::Value> = batches
                .iter()
                .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
                .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
                .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
                .collect();
            let find = |name: &str| spans.iter().find(|s| s["name"] == name).cloned();
            Some((find("ingest message")?, find("delivery attempt")?))
        }
    })
    .await;
    let trace = ingest["traceId"].as_str().expect("trace id");
    assert!(
        !trace.is_empty() && trace.chars().any(|c| c != '0'),
        "{ingest}"
    );
    assert_eq!(
        attempt["traceId"], ingest["traceId"],
        "one trace: {ingest} {attempt}"
    );
    assert_eq!(
        attempt["parentSpanId"], ingest["spanId"],
        "the attempt is the request's child"
    );
}
