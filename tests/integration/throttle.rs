//! An app's `throttleRate` bounds what all its endpoints receive together, whichever
//! dispatchers send: sends wait in the retry schedule for slots of the app's throttle (held
//! by the task, never asked for twice) and pass a last gate shared through the store.
//!
//! The bound asserted is the rate itself, with nothing extra: in any one-second window of
//! arrival times at the receivers, at most `throttleRate` deliveries. The app's gate admits
//! sends 1.05 s / rate apart (21 ms at 50/s), each at most 15 ms before its time, so any 51
//! admitted sends span at least 1.035 s, and the receivers count at most 50 in a second
//! unless the delay between a send's admission and its arrival varies by more than 35 ms
//! within that second (`hookline_core::rate`,
//! `an_app_throttle_holds_at_the_receiver_with_35_ms_of_uneven_delay`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rstest_reuse::apply;
use serde_json::json;

use crate::testkit::receiver::Delivery;
use crate::testkit::{backends, Api, Backend, Receiver, Reply, Role, Stack};

/// The app's `throttleRate` in these tests.
const RATE: usize = 50;
/// Everything arrives well within this (300 deliveries at 50/s take about 6.5 s).
const DEADLINE: Duration = Duration::from_secs(90);

/// The most arrivals in any window [t, t + 1 s) that starts at an arrival.
fn busiest_second(deliveries: &[Delivery]) -> usize {
    let mut times: Vec<Instant> = deliveries.iter().map(|d| d.at).collect();
    times.sort();
    let mut most = 0;
    let mut end = 0;
    for (start, at) in times.iter().enumerate() {
        while end < times.len() && times[end] < *at + Duration::from_secs(1) {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

/// Creates an app throttled at [`RATE`] with an endpoint at each of `paths` of `receiver`,
/// sends `messages` messages as fast as the API takes them, and waits for every one at every
/// endpoint; answers all the deliveries (every path together).
async fn send_through_the_throttle(
    api: &Api,
    receiver: &Receiver,
    paths: &[&str],
    messages: usize,
) -> Vec<Delivery> {
    let app = api
        .post(
            "/api/v1/app",
            json!({"name": "throttled", "throttleRate": RATE}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(app["throttleRate"], RATE, "{app}");
    let app = app["id"].as_str().expect("app id").to_owned();
    for path in paths {
        let url = receiver.url(path, Reply::Always(200));
        api.create_endpoint(&app, json!({"url": url})).await;
    }
    let sent: HashSet<String> = api
        .send_many(&app, "throttle.tick", messages)
        .await
        .into_iter()
        .collect();
    let mut all = Vec::new();
    for path in paths {
        let deliveries = receiver.await_all(path, &sent, DEADLINE).await;
        let ids: HashSet<&str> = deliveries.iter().map(Delivery::webhook_id).collect();
        assert_eq!(ids.len(), messages, "every message reached {path}");
        all.extend(deliveries);
    }
    all
}

/// What every test asserts of the deliveries: never more than the rate in any second, and
/// not far below it either (the throttle spaces sends, it does not starve them: at least half
/// the rate in the busiest second of a backlog; 49 of 50 is usual, fewer on the
/// clusters).
fn assert_throttled(deliveries: &[Delivery]) {
    let busiest = busiest_second(deliveries);
    println!("{} deliveries, busiest second: {busiest}", deliveries.len());
    assert!(
        busiest <= RATE,
        "{busiest} deliveries within one second, throttleRate {RATE}"
    );
    assert!(
        busiest >= RATE / 2,
        "only {busiest} deliveries in the busiest second of a backlog, throttleRate {RATE}"
    );
}

/// Two endpoints of one app share its throttle: 150 messages to each, 300 deliveries, and
/// no second in which the two receivers together see more than 50.
#[apply(backends)]
#[tokio::test]
async fn an_app_throttle_bounds_all_its_endpoints_together(#[case] backend: Backend) {
    let stack = Stack::on(backend, "throttle");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let deliveries = send_through_the_throttle(&api, &receiver, &["a", "b"], 150).await;
    assert_throttled(&deliveries);
}

/// Two dispatcher processes share one app's throttle through the store: 300 messages to one
/// endpoint arrive, none lost, never more than 50 in a second.
#[tokio::test]
async fn an_app_throttle_holds_across_two_dispatchers() {
    let stack = Stack::new("throttle2");
    let ingest = stack.start(Role::Ingest).await;
    let _scheduler = stack.start(Role::Scheduler).await;
    let _first = stack.start(Role::Dispatcher).await;
    let _second = stack.start(Role::Dispatcher).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let deliveries = send_through_the_throttle(&api, &receiver, &["only"], 300).await;
    assert_throttled(&deliveries);
}

/// `throttleRate` is set, changed, cleared with `null` and refused out of range (below 1 or
/// above 65,535) naming the field, under either of its names.
#[apply(backends)]
#[tokio::test]
async fn a_throttle_rate_is_validated_and_null_clears_it(#[case] backend: Backend) {
    let stack = Stack::on(backend, "throttleapi");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("throttle-api").await;
    let path = format!("/api/v1/app/{app}");
    let call = |method: Method, body: serde_json::Value| {
        let (api, path) = (api.clone(), path.clone());
        async move { api.call(method, &path, Some(&body), &[]).await }
    };
    for (body, field) in [
        (json!({"throttleRate": 0}), "throttleRate"),
        (json!({"throttleRate": 65_536}), "throttleRate"),
        (json!({"rateLimit": 0}), "rateLimit"),
    ] {
        for (method, mut body) in [(Method::PATCH, body.clone()), (Method::PUT, body)] {
            body["name"] = json!("throttle-api");
            let (status, answer) = call(method.clone(), body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {body}: {answer}"
            );
            assert_eq!(
                answer["detail"][0]["loc"],
                json!(["body", field]),
                "{answer}"
            );
        }
    }
    let (status, set) = call(Method::PATCH, json!({"throttleRate": 65_535})).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        (set["throttleRate"].clone(), set["rateLimit"].clone()),
        (json!(65_535), json!(65_535))
    );
    let (_, kept) = call(Method::PATCH, json!({"name": "renamed"})).await;
    assert_eq!(kept["throttleRate"], 65_535, "absent: unchanged: {kept}");
    let (_, cleared) = call(Method::PATCH, json!({"throttleRate": null})).await;
    assert_eq!(cleared["throttleRate"], json!(null), "{cleared}");
    assert_eq!(api.get(&path).await["throttleRate"], json!(null));
}
