//! The circuit breaker never loses a message: a task that meets an open circuit is held
//! (its attempt number kept, none of its budget spent, no failed attempt recorded) and comes
//! back after the open period, spread out; only a circuit that stays open longer than the
//! hold bound gives a message up, with a final attempt that says why.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::testkit::receiver::Delivery;
use crate::testkit::{backends, eventually, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

/// Deliveries per message id, in arrival order.
fn by_message(deliveries: &[Delivery]) -> HashMap<&str, Vec<&Delivery>> {
    let mut per_id: HashMap<&str, Vec<&Delivery>> = HashMap::new();
    for delivery in deliveries {
        per_id
            .entry(delivery.webhook_id())
            .or_default()
            .push(delivery);
    }
    per_id
}

/// Held entries in a message's attempt log: pending, no response, `circuit_open`.
fn is_held(attempt: &Value) -> bool {
    attempt["errorKind"] == "circuit_open" && attempt["status"] == 1
}

/// An endpoint that fails the first two attempts of every message and then accepts it,
/// with the breaker's default settings (5 failures open the circuit for 30 s): every one of
/// 100 messages arrives, with exactly three requests each; the attempt log shows the holds
/// as held, never as failed attempts; and the held tasks reach the receiver spread out.
#[apply(backends)]
#[tokio::test]
async fn a_flaky_endpoint_behind_an_open_circuit_gets_every_message(#[case] backend: Backend) {
    const MESSAGES: usize = 100;
    let receiver = Receiver::start().await;
    let stack =
        Stack::on(backend, "held").with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "200,400,800");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("held-app").await;
    let url = receiver.url("flaky", Reply::FirstOfEachFailTimes(500, 2));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;

    let started = Instant::now();
    let ids = api.send_many(&app, "order.created", MESSAGES).await;
    // The open period alone is 30 s; the rest is the probe and the spread release.
    eventually(
        "every message answered 200",
        Duration::from_secs(150),
        || async {
            let deliveries = receiver.deliveries("flaky");
            let per_id = by_message(&deliveries);
            ids.iter()
                .all(|id| per_id.get(id.as_str()).is_some_and(|d| d.len() >= 3))
                .then_some(())
        },
    )
    .await;
    println!("{MESSAGES} messages delivered in {:?}", started.elapsed());

    for id in &ids {
        let destination = eventually(
            "the destination to succeed",
            Duration::from_secs(10),
            || async {
                let d = api.destination(&app, id, &endpoint).await?;
                (d["status"] == 0).then_some(d)
            },
        )
        .await;
        assert_eq!(destination["attempts"], 3, "{destination}");
    }
    assert_held_never_spent(&api, &app, &ids).await;

    let deliveries = receiver.deliveries("flaky");
    let per_id = by_message(&deliveries);
    for id in &ids {
        assert_eq!(per_id[id.as_str()].len(), 3, "three requests for {id}");
    }
    assert_released_spread_out(&deliveries);
}

/// Per message: real attempts numbered 1, 2, 3 (500, 500, 200) and at least one message held;
/// no hold recorded as a failed attempt.
async fn assert_held_never_spent(api: &Api, app: &str, ids: &[String]) {
    let mut held = 0;
    for id in ids {
        let attempts = api.attempts_of_message(app, id).await;
        let (holds, made): (Vec<&Value>, Vec<&Value>) = attempts
            .iter()
            .partition(|a| a["errorKind"] == "circuit_open");
        assert!(
            holds.iter().all(|a| is_held(a)),
            "a hold is not a failure: {holds:?}"
        );
        held += holds.len();
        let numbers: Vec<&Value> = made.iter().map(|a| &a["attemptNumber"]).collect();
        assert_eq!(numbers, [1, 2, 3], "{id}: {attempts:?}");
        let codes: Vec<&Value> = made.iter().map(|a| &a["responseStatusCode"]).collect();
        assert_eq!(codes, [500, 500, 200], "{id}");
    }
    assert!(held > 0, "the circuit opened and held tasks");
}

/// The tasks that waited out the open period do not reach the receiver at once: of each
/// message's first request after the open period, the first 20 span more than a second
/// (they are spread over half the open period; unspread they would come within
/// milliseconds).
fn assert_released_spread_out(deliveries: &[Delivery]) {
    let first_at = deliveries.first().map(|d| d.at).expect("deliveries");
    let mut seen = std::collections::HashSet::new();
    let released: Vec<Instant> = deliveries
        .iter()
        .filter(|d| d.at - first_at >= Duration::from_secs(20))
        .filter(|d| seen.insert(d.webhook_id().to_owned()))
        .map(|d| d.at)
        .take(20)
        .collect();
    assert_eq!(released.len(), 20, "held tasks after the open period");
    let span = released[19] - released[0];
    assert!(
        span >= Duration::from_secs(1),
        "20 held tasks arrived within {span:?}"
    );
}

/// An endpoint that always fails, for longer than the retry schedule's span: its messages
/// still end, each failed, within the hold bound (max(schedule span 1.4 s, 2 × open period
/// 1 s) = 2 s after a task is first held): the budget is not infinite. Holds are logged as
/// held; a message given up while held ends with a failed `circuit_open` attempt.
#[apply(backends)]
#[tokio::test]
async fn a_dead_endpoint_still_exhausts_its_messages_within_the_hold_bound(
    #[case] backend: Backend,
) {
    const MESSAGES: usize = 20;
    let receiver = Receiver::start().await;
    let stack = Stack::on(backend, "heldout")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "200,400,800")
        .with("HOOKLINE__DELIVERY__CIRCUIT_OPEN_MS", "1000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("heldout-app").await;
    let url = receiver.url("dead", Reply::Always(500));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;

    let started = Instant::now();
    let ids = api.send_many(&app, "order.created", MESSAGES).await;
    for id in &ids {
        eventually(
            "the destination to fail",
            Duration::from_secs(30),
            || async {
                let d = api.destination(&app, id, &endpoint).await?;
                (d["status"] == 2).then_some(())
            },
        )
        .await;
    }
    let took = started.elapsed();
    println!("{MESSAGES} messages given up or exhausted in {took:?}");
    // Held at most 2 s after the first hold, plus the probes' own retries and polling.
    assert!(took < Duration::from_secs(15), "took {took:?}");

    let mut given_up = 0;
    let mut held = 0;
    for id in &ids {
        let attempts = api.attempts_of_message(&app, id).await;
        let last = attempts.last().expect("attempts");
        assert_eq!(last["status"], 2, "{last}");
        if last["errorKind"] == "circuit_open" {
            given_up += 1;
        }
        held += attempts.iter().filter(|a| is_held(a)).count();
        let made = attempts
            .iter()
            .filter(|a| a["errorKind"] != "circuit_open")
            .count();
        assert!(made <= 4, "never more than the budget: {attempts:?}");
    }
    assert!(given_up > 0, "some messages were given up while held");
    assert!(held > 0, "holds are logged as held");
    assert!(
        receiver.count("dead") < MESSAGES * 4,
        "the breaker spared the endpoint: {} requests",
        receiver.count("dead")
    );
}
