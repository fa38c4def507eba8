//! The roles scale independently: two ingest, three dispatcher and two scheduler processes,
//! each started on its own, deliver 10,000 messages (with retries in the mix) and lose none.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

#[tokio::test]
async fn many_processes_per_role_deliver_10000_messages() {
    const MESSAGES: usize = 10_000;
    let stack = Stack::new("scale")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "100")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let ingest = [
        stack.start(Role::Ingest).await,
        stack.start(Role::Ingest).await,
    ];
    let _schedulers = [
        stack.start(Role::Scheduler).await,
        stack.start(Role::Scheduler).await,
    ];
    let _dispatchers = [
        stack.start(Role::Dispatcher).await,
        stack.start(Role::Dispatcher).await,
        stack.start(Role::Dispatcher).await,
    ];
    let apis = [stack.api(&ingest[0]), stack.api(&ingest[1])];
    let receiver = Receiver::start().await;
    let app = apis[0].create_app("scale-app").await;
    // Every tenth request fails once, so the schedulers carry retries during the run.
    let codes: Vec<u16> = (0..MESSAGES)
        .map(|n| if n % 10 == 0 { 500 } else { 200 })
        .collect();
    let url = receiver.url("sink", Reply::Sequence(codes));
    apis[1].create_endpoint(&app, json!({"url": url})).await;

    let started = Instant::now();
    let mut sent = HashSet::new();
    for batch in 0..MESSAGES / 100 {
        let sends = (0..100).map(|i| {
            let api = apis[i % 2].clone();
            let app = app.clone();
            async move {
                api.send(&app, "order.created", json!({"n": batch * 100 + i}))
                    .await
            }
        });
        sent.extend(futures::future::join_all(sends).await);
    }
    let accepted = started.elapsed();
    let seen = eventually(
        "every message delivered",
        Duration::from_secs(300),
        || async {
            let completed = receiver.completed("sink");
            let ok: HashSet<String> = completed
                .iter()
                .map(|d| d.webhook_id().to_owned())
                .collect();
            (ok.len() == MESSAGES).then_some(completed.len())
        },
    )
    .await;
    let ids: HashSet<String> = receiver
        .deliveries("sink")
        .iter()
        .map(|d| d.webhook_id().to_owned())
        .collect();
    assert_eq!(ids, sent, "every accepted message, and nothing else");
    println!(
        "{MESSAGES} messages accepted in {accepted:?} through 2 ingest processes; \
         {seen} requests in {:?} through 3 dispatchers and 2 schedulers",
        started.elapsed()
    );
}
