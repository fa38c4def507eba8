//! Must-shows 5 and 6: `kill -9` of a dispatcher or a scheduler loses nothing.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::testkit::receiver::assert_duplicates_identical;
use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

/// 2,000 messages; the dispatcher is killed with deliveries in flight and restarted. Every
/// message arrives, and a message delivered twice carries the same `webhook-id` and body.
#[tokio::test]
async fn kill_dispatcher_mid_run_loses_no_message() {
    const MESSAGES: usize = 2_000;
    let stack = Stack::new("killdisp")
        .with("HOOKLINE__DELIVERY__CONCURRENCY", "64")
        .with("HOOKLINE__RABBITMQ__PREFETCH", "64");
    let ingest = stack.start(Role::Ingest).await;
    let _scheduler = stack.start(Role::Scheduler).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("kill-app").await;
    // A little latency keeps many deliveries in flight when the kill lands.
    let url = receiver.url("sink", Reply::Slow(Duration::from_millis(10)));
    api.create_endpoint(&app, json!({"url": url})).await;

    // All 2,000 are accepted (queued) before any dispatcher runs.
    let sent: HashSet<String> = api
        .send_many(&app, "order.created", MESSAGES)
        .await
        .into_iter()
        .collect();
    assert_eq!(sent.len(), MESSAGES);

    let mut dispatcher = stack.start(Role::Dispatcher).await;
    eventually("deliveries under way", Duration::from_secs(60), || async {
        (receiver.count("sink") >= 300).then_some(())
    })
    .await;
    dispatcher.kill9().await;
    let killed_at = receiver.count("sink");
    assert!(
        killed_at < MESSAGES,
        "the kill landed before everything was delivered"
    );
    let _restarted = stack.start(Role::Dispatcher).await;

    let seen = receiver
        .await_all("sink", &sent, Duration::from_secs(180))
        .await;
    assert_duplicates_identical(&seen, &sent);
    println!(
        "killed the dispatcher after {killed_at} deliveries; {} deliveries for {MESSAGES} messages ({} duplicates)",
        seen.len(),
        seen.len() - MESSAGES
    );
}

/// The scheduler claims a due retry and is killed before publishing it. Once the lease runs
/// out, another scheduler takes the retry over and it is delivered.
#[tokio::test]
async fn kill_scheduler_between_claim_and_publish_loses_no_retry() {
    let stack = Stack::new("killsched")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "100")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__SCHEDULER__LEASE_MS", "1500");
    let ingest = stack.start(Role::Ingest).await;
    let _dispatcher = stack.start(Role::Dispatcher).await;
    // This scheduler claims, then stalls long enough to be killed before it publishes.
    let mut stalled = stack
        .start_with(
            Role::Scheduler,
            &[("HOOKLINE__SCHEDULER__PAUSE_AFTER_CLAIM_MS", "600000")],
        )
        .await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("sched-app").await;
    let url = receiver.url("once-failing", Reply::Sequence(vec![500, 200]));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "invoice.paid", json!({"x": 1})).await;

    let mut redis = stack.redis().await;
    let leases = stack.keys().schedule_leases();
    eventually(
        "the stalled scheduler to claim the retry",
        Duration::from_secs(20),
        || {
            let mut redis = redis.clone();
            let leases = leases.clone();
            async move {
                let claimed: u64 = redis::cmd("ZCARD")
                    .arg(&leases)
                    .query_async(&mut redis)
                    .await
                    .ok()?;
                (claimed == 1).then_some(())
            }
        },
    )
    .await;
    stalled.kill9().await;
    assert_eq!(
        receiver.count("once-failing"),
        1,
        "the retry was not published before the kill"
    );

    let _successor = stack.start(Role::Scheduler).await;
    eventually(
        "the retry delivered after the lease expired",
        Duration::from_secs(20),
        || async {
            let d = api.destination(&app, &msg, &endpoint).await?;
            (d["status"] == 0).then_some(())
        },
    )
    .await;
    assert_eq!(receiver.count("once-failing"), 2);
    let claimed: u64 = redis::cmd("ZCARD")
        .arg(&leases)
        .query_async(&mut redis)
        .await
        .expect("zcard");
    assert_eq!(claimed, 0, "the successor completed the claim");
}

/// The dispatcher writes a batch of attempts and is killed before acking it (its settler
/// holds the acks back by a fault-injection pause, and writes nothing after that batch).
/// The broker redelivers every task to a new dispatcher: every message is delivered again
/// under the same `webhook-id`, the attempts written before the kill stay in the log beside
/// the new ones, and every message ends delivered.
#[tokio::test]
async fn kill_dispatcher_between_batch_write_and_ack_redelivers_the_batch() {
    // Within the prefetch (128), so all are handed out while no ack goes back.
    const MESSAGES: usize = 100;
    let stack = Stack::new("killack");
    let ingest = stack.start(Role::Ingest).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("killack-app").await;
    let url = receiver.url("sink", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;
    let sent: Vec<String> = api.send_many(&app, "order.created", MESSAGES).await;
    let sent_set: HashSet<String> = sent.iter().cloned().collect();

    // No scheduler runs here: the per-endpoint cap is lifted so that no task waits for a
    // slot in the retry schedule (a loaded machine makes slot waits long), which is not what
    // this test is about.
    let uncapped = ("HOOKLINE__DELIVERY__MAX_IN_FLIGHT_PER_ENDPOINT", "256");
    let mut stalled = stack
        .start_with(
            Role::Dispatcher,
            &[
                ("HOOKLINE__DELIVERY__PAUSE_BEFORE_ACK_MS", "600000"),
                uncapped,
            ],
        )
        .await;
    receiver
        .await_all("sink", &sent_set, Duration::from_secs(60))
        .await;
    // The settler's first batch is written, and its acks are held back.
    let written = eventually("a batch written", Duration::from_secs(30), || async {
        let mut written = Vec::new();
        for msg in &sent {
            if !api.attempts_of_message(&app, msg).await.is_empty() {
                written.push(msg.clone());
            }
        }
        (!written.is_empty()).then_some(written)
    })
    .await;
    stalled.kill9().await;
    assert_eq!(
        receiver.count("sink"),
        MESSAGES,
        "each delivered once before the kill"
    );

    let _successor = stack.start_with(Role::Dispatcher, &[uncapped]).await;
    eventually(
        "every task redelivered",
        Duration::from_secs(60),
        || async { (receiver.count("sink") >= 2 * MESSAGES).then_some(()) },
    )
    .await;
    let seen = receiver.deliveries("sink");
    assert_duplicates_identical(&seen, &sent_set);
    for msg in &sent {
        let twice = seen.iter().filter(|d| d.webhook_id() == msg).count();
        assert_eq!(twice, 2, "{msg} delivered again after the kill");
        let expected = if written.contains(msg) { 2 } else { 1 };
        eventually("its attempts recorded", Duration::from_secs(30), || async {
            let attempts = api.attempts_of_message(&app, msg).await;
            (attempts.len() == expected && attempts.iter().all(|a| a["status"] == 0)).then_some(())
        })
        .await;
    }
    println!(
        "{} attempts were written and not acked when the dispatcher was killed",
        written.len()
    );
}
