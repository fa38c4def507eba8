//! Graceful shutdown: SIGTERM to a dispatcher with 50 deliveries in flight to a slow
//! endpoint. It exits within its grace period; whatever it could not finish returns to the
//! queue and is delivered by the next dispatcher, so nothing is lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

#[tokio::test]
async fn sigterm_with_50_slow_deliveries_in_flight_loses_nothing() {
    const MESSAGES: usize = 50;
    let grace = Duration::from_millis(1000);
    let stack = Stack::new("drain")
        .with("HOOKLINE__DELIVERY__CONCURRENCY", "64")
        .with("HOOKLINE__RABBITMQ__PREFETCH", "64")
        .with(
            "HOOKLINE__SHUTDOWN__GRACE_MS",
            &grace.as_millis().to_string(),
        );
    let ingest = stack.start(Role::Ingest).await;
    let _scheduler = stack.start(Role::Scheduler).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("drain-app").await;
    let url = receiver.url("slow", Reply::Slow(Duration::from_secs(2)));
    api.create_endpoint(&app, json!({"url": url})).await;
    let mut sent = HashSet::new();
    for n in 0..MESSAGES {
        sent.insert(api.send(&app, "job.done", json!({"n": n})).await);
    }

    let mut dispatcher = stack.start(Role::Dispatcher).await;
    eventually("all 50 in flight", Duration::from_secs(20), || async {
        (receiver.count("slow") >= MESSAGES).then_some(())
    })
    .await;
    let pid = dispatcher.child.id().expect("pid");
    let stopped_at = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), dispatcher.child.wait())
        .await
        .expect("the dispatcher exits")
        .expect("wait");
    let took = stopped_at.elapsed();
    assert_eq!(exit.code(), Some(0), "a clean exit");
    assert!(
        took < grace + Duration::from_secs(2),
        "exited after {took:?}"
    );

    // The unfinished ones are redelivered by the next dispatcher; every message arrives.
    let _next = stack.start(Role::Dispatcher).await;
    let completed = eventually(
        "every message delivered",
        Duration::from_secs(60),
        || async {
            let completed = receiver.completed("slow");
            let ids: HashSet<String> = completed
                .iter()
                .map(|d| d.webhook_id().to_owned())
                .collect();
            (ids == sent).then_some(completed)
        },
    )
    .await;
    let requests = receiver.count("slow");
    println!(
        "{requests} requests, {} completed, for {MESSAGES} messages after SIGTERM with a {grace:?} grace period",
        completed.len()
    );
    assert!(
        requests > MESSAGES,
        "the abandoned deliveries were made again"
    );
}
