//! Fairness between applications: a flood from one application does not delay another's
//! message, and loses nothing of its own.
//!
//! The bound: another application's message sent after the flood's 5,000 were accepted
//! arrives within [`QUIET_BOUND`] of its acceptance, while the flood is still draining. On
//! RabbitMQ the flood's tasks beyond its fair share wait in the bulk lane, which dispatchers
//! take from only when the fast lane is empty (or one pick in four); in embedded mode the
//! queue hands tasks out with applications taking turns. In one FIFO queue the message
//! would wait for the whole flood.
//!
//! On RabbitMQ the test takes the worst case on purpose: one shard, so both applications'
//! tasks share one fast and one bulk queue (with the default four, they would share them
//! only when their ids happen to hash alike). The bound then holds only while the
//! dispatcher drains the fast lane faster than the flood's share fills it: a share above
//! that capacity queues the surplus in the fast lane, in front of everyone on the shard
//! (docs/operations.md, "What bounds it"). A debug build on two cores delivers about 260 a
//! second here alone and far fewer beside other tests, so the test grants 10 a second, as
//! an operator sizes the share well below what the dispatchers deliver.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::testkit::{Backend, Receiver, Reply, Role, Stack};

const FLOOD: usize = 5_000;
/// Far below the flood's drain time (about 20 s alone in a debug build: see the stack below).
const QUIET_BOUND: Duration = Duration::from_secs(2);

async fn a_flood_does_not_delay_another_application(backend: Backend) {
    // A saturated dispatcher: 8 deliveries at once to a receiver answering in 20 ms drain at
    // most 400 a second (about 260 in a debug build), slower than the flood is sent, so a
    // backlog builds.
    let stack = Stack::on(backend, "fairness")
        .with("HOOKLINE__DELIVERY__CONCURRENCY", "8")
        .with("HOOKLINE__RABBITMQ__SHARDS", "1")
        .with("HOOKLINE__RABBITMQ__FAIR_SHARE_RATE", "10")
        .with("HOOKLINE__RABBITMQ__FAIR_SHARE_BURST", "20");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let flood = api.create_app("fair-flood").await;
    api.create_endpoint(
        &flood,
        json!({"url": receiver.url("flood", Reply::Slow(Duration::from_millis(20)))}),
    )
    .await;
    let quiet = api.create_app("fair-quiet").await;
    api.create_endpoint(
        &quiet,
        json!({"url": receiver.url("quiet", Reply::Always(200))}),
    )
    .await;

    let flood_started = Instant::now();
    let sent: HashSet<String> = api
        .send_many(&flood, "bulk.import", FLOOD)
        .await
        .into_iter()
        .collect();
    let quiet_sent = Instant::now();
    let quiet_id = api.send(&quiet, "order.created", json!({"n": 1})).await;
    let arrived = crate::testkit::eventually("the quiet message", QUIET_BOUND * 10, || async {
        let deliveries = receiver.deliveries("quiet");
        deliveries
            .iter()
            .find(|d| d.webhook_id() == quiet_id)
            .map(|d| d.at)
    })
    .await;
    let flood_done_then = receiver.count("flood");
    let waited = arrived.saturating_duration_since(quiet_sent);

    let deliveries = receiver
        .await_all("flood", &sent, Duration::from_secs(600))
        .await;
    let drained = deliveries
        .iter()
        .map(|d| d.at)
        .max()
        .expect("deliveries")
        .saturating_duration_since(flood_started);
    println!(
        "{backend:?}: quiet message waited {} ms; the flood ({FLOOD}) had {flood_done_then} \
         delivered then and drained {} ms after it began",
        waited.as_millis(),
        drained.as_millis()
    );
    assert!(
        waited <= QUIET_BOUND,
        "the quiet message waited {waited:?} (flood drained in {drained:?})"
    );
    assert!(
        flood_done_then < FLOOD,
        "the flood had already drained: the test proves nothing about waiting behind it"
    );
    let ids: HashSet<&str> = deliveries.iter().map(|d| d.webhook_id()).collect();
    assert_eq!(ids.len(), FLOOD, "every message of the flood delivered");
}

#[tokio::test]
async fn a_flood_does_not_delay_another_application_on_rabbitmq() {
    a_flood_does_not_delay_another_application(Backend::RabbitRedis).await;
}

#[tokio::test]
async fn a_flood_does_not_delay_another_application_embedded() {
    a_flood_does_not_delay_another_application(Backend::Embedded).await;
}
