//! Publishing: confirms, wire form, concurrency, unroutable messages.

use std::time::Duration;

use futures::future::join_all;
use hookline_core::ports::QueueError;
use lapin::options::{BasicGetOptions, QueueDeleteOptions};
use lapin::types::AMQPValue;

use crate::support::{
    eventually, fast_queue, raw_channel, start_ready, task, teardown, test_config, SHARED_URL,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_task_has_the_agreed_wire_form() {
    let broker = start_ready(test_config(SHARED_URL)).await;
    let mut sent = task(7);
    sent.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    broker
        .publisher()
        .publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");

    let (_connection, channel) = raw_channel(SHARED_URL).await;
    let got = channel
        .basic_get(
            &fast_queue(&broker, &sent.app_id),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic.get")
        .expect("a message in the queue");
    let properties = &got.delivery.properties;
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert_eq!(
        properties.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    let traceparent = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("traceparent").cloned());
    assert_eq!(
        traceparent,
        Some(AMQPValue::LongString(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()
        ))
    );
    assert_eq!(
        got.delivery.data,
        serde_json::to_vec(&sent).expect("encode")
    );
    teardown(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_all_get_confirmed() {
    let broker = start_ready(test_config(SHARED_URL)).await;
    let publisher = broker.publisher();
    let calls = (0..50).map(|call| {
        let publisher = publisher.clone();
        async move {
            let tasks: Vec<_> = (0..40).map(|i| task(call * 40 + i)).collect();
            publisher.publish(&tasks).await
        }
    });
    for (call, result) in join_all(calls).await.into_iter().enumerate() {
        result.unwrap_or_else(|error| panic!("call {call}: {error}"));
    }
    eventually(
        "all 2000 tasks are in the queue",
        Duration::from_secs(10),
        || async { broker.queue_depth().await.ok() == Some(2000) },
    )
    .await;
    teardown(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_publish_is_rejected_not_confirmed() {
    let broker = start_ready(test_config(SHARED_URL)).await;
    // Remove the queues behind the broker's back: the exchange now routes nowhere, and the
    // broker still acks the publish, with the message returned.
    let (_connection, channel) = raw_channel(SHARED_URL).await;
    for queue in &broker.names().queues {
        channel
            .queue_delete(&queue.name, QueueDeleteOptions::default())
            .await
            .expect("queue.delete");
    }
    let result = broker.publisher().publish(&[task(1), task(2)]).await;
    assert!(
        matches!(result, Err(QueueError::Rejected(ref why)) if why.contains("NO_ROUTE")),
        "{result:?}"
    );
    teardown(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_is_unavailable_within_the_timeout() {
    let config = crate::support::test_config("amqp://guest:guest@127.0.0.1:1/%2f");
    let limit = config.publish_timeout;
    let broker = hookline_rabbitmq::RabbitBroker::start(config);
    let publisher = broker.publisher();
    assert!(!publisher.is_ready().await);
    let started = tokio::time::Instant::now();
    let result = publisher.publish(&[task(1)]).await;
    assert!(
        matches!(result, Err(QueueError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() <= limit, "took {:?}", started.elapsed());
    assert!(!broker.wait_ready(Duration::from_millis(300)).await);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_urls_are_tried_when_the_first_is_down() {
    let config = hookline_rabbitmq::RabbitConfig {
        urls: vec![
            "amqp://guest:guest@127.0.0.1:1/%2f".into(),
            SHARED_URL.into(),
        ],
        ..test_config(SHARED_URL)
    };
    let broker = start_ready(config).await;
    broker
        .publisher()
        .publish(&[task(1)])
        .await
        .expect("publish");
    teardown(&broker).await;
}

/// Sets a policy on the shared node for one test's queue only, and removes it on drop.
struct QueuePolicy {
    name: String,
}

impl QueuePolicy {
    fn set(queue: &str, definition: &str) -> Self {
        let name = format!("{queue}-policy");
        let pattern = format!("^{}$", queue.replace('.', "\\."));
        let output = std::process::Command::new(crate::support::rabbitmqctl())
            .args([
                "set_policy",
                &name,
                &pattern,
                definition,
                "--apply-to",
                "queues",
            ])
            .output()
            .expect("running rabbitmqctl");
        assert!(output.status.success(), "set_policy: {output:?}");
        Self { name }
    }
}

impl Drop for QueuePolicy {
    fn drop(&mut self) {
        let _ = std::process::Command::new(crate::support::rabbitmqctl())
            .args(["clear_policy", &self.name])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_publish_is_rejected() {
    let broker = start_ready(test_config(SHARED_URL)).await;
    let policy = QueuePolicy::set(
        &fast_queue(&broker, &task(1).app_id),
        r#"{"max-length":1,"overflow":"reject-publish"}"#,
    );
    let publisher = broker.publisher();
    // The queue takes the policy a moment after it is set; until then publishes succeed.
    eventually("a full queue nacks", Duration::from_secs(10), || async {
        match publisher.publish(&[task(1)]).await {
            Ok(()) => false,
            Err(QueueError::Rejected(why)) => why.contains("refused"),
            Err(other) => panic!("expected Rejected, got {other:?}"),
        }
    })
    .await;
    drop(policy);
    teardown(&broker).await;
}
