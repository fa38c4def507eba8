//! Lanes and shards: a flooding application's tasks beyond its share wait in the bulk lane,
//! and a consumer serves the fast lane first.

use std::time::Duration;

use hookline_core::fair::Share;
use hookline_core::model::DeliveryTask;
use hookline_core::ports::TaskSource;
use hookline_rabbitmq::{LaneDepths, RabbitConfig};

use crate::support::{
    eventually, next_within, start_ready, task, teardown, test_config, SHARED_URL,
};

fn of_app(mut task: DeliveryTask, app: &str) -> DeliveryTask {
    task.app_id = app.to_owned();
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_waits_in_the_bulk_lane_behind_a_quiet_application() {
    let config = RabbitConfig {
        // A share so small that the flood's first five tasks exhaust it for the test's span.
        fair_share: Share {
            rate: 0.01,
            burst: 5,
        },
        prefetch: 100,
        bulk_every: 4,
        ..test_config(SHARED_URL)
    };
    let broker = start_ready(config).await;
    let flood: Vec<_> = (0..50).map(|n| of_app(task(n), "app_flood")).collect();
    broker.publisher().publish(&flood).await.expect("flood");
    broker
        .publisher()
        .publish(&[of_app(task(1000), "app_quiet")])
        .await
        .expect("quiet");
    assert_eq!(broker.published(), (6, 45), "(fast, bulk) tasks published");
    eventually(
        "the lanes hold the tasks",
        Duration::from_secs(10),
        || async { broker.lane_depths().await.ok() == Some(LaneDepths { fast: 6, bulk: 45 }) },
    )
    .await;

    let mut source = broker.source("lanes");
    let first = next_within(&mut source, Duration::from_secs(10))
        .await
        .expect("a task");
    // Everything else is prefetched once no task is ready on the broker; from then on the
    // order is the source's choice, not the order deliveries happened to arrive in.
    eventually(
        "all tasks are prefetched",
        Duration::from_secs(10),
        || async { broker.queue_depth().await.ok() == Some(0) },
    )
    .await;
    let mut order = vec![first];
    while order.len() < 51 {
        let next = next_within(&mut source, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("only {} of 51 tasks arrived", order.len()));
        order.push(next);
    }
    let quiet_at = order
        .iter()
        .position(|r| r.task.app_id == "app_quiet")
        .expect("the quiet task arrived");
    // Ahead of it at most: the first pick, the flood's five fast tasks, and one bulk pick
    // in four; in one FIFO queue it would have been the 51st.
    assert!(quiet_at <= 8, "the quiet task came {}th", quiet_at + 1);
    for received in order {
        received.acker.ack().await.expect("ack");
    }
    source.close().await;
    teardown(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_spread_over_the_shards() {
    let broker = start_ready(test_config(SHARED_URL)).await;
    let names = broker.names().clone();
    assert_eq!(names.shards(), 4);
    let tasks: Vec<_> = (0..64)
        .map(|n| of_app(task(n), &format!("app_{n}")))
        .collect();
    broker.publisher().publish(&tasks).await.expect("publish");
    let (_connection, channel) = crate::support::raw_channel(SHARED_URL).await;
    let mut used = 0;
    for queue in names.lane(hookline_core::fair::Lane::Fast) {
        let declared = channel
            .queue_declare(
                &queue.name,
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("passive declare");
        if declared.message_count() > 0 {
            used += 1;
        }
    }
    assert_eq!(used, 4, "64 applications use every shard");
    teardown(&broker).await;
}
