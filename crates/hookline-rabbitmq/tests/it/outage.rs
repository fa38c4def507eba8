//! Reconnecting: a private node's RabbitMQ application is stopped and started again under
//! a live broker object, publisher and source.

use std::collections::HashSet;
use std::time::Duration;

use hookline_core::ports::{QueueError, TaskSource};
use hookline_rabbitmq::RabbitConfig;

use crate::support::{
    eventually, next_within, number_of, start_ready, task, teardown, test_config, PrivateNode,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_and_source_survive_a_broker_restart() {
    let node = tokio::task::spawn_blocking(|| {
        PrivateNode::start(&format!("hltest{:08x}", rand::random::<u32>()))
    })
    .await
    .expect("starting the private node");
    let config = RabbitConfig {
        publish_timeout: Duration::from_secs(2),
        rpc_timeout: Duration::from_secs(2),
        ..test_config(&node.url())
    };
    let broker = start_ready(config).await;
    let publisher = broker.publisher();
    let mut source = broker.source("outage");

    publisher
        .publish(&[task(1)])
        .await
        .expect("publish before the outage");
    let first = next_within(&mut source, Duration::from_secs(10))
        .await
        .expect("delivery before the outage");
    first.acker.ack().await.expect("ack before the outage");
    publisher
        .publish(&[task(2)])
        .await
        .expect("publish before the outage");
    let unsettled = next_within(&mut source, Duration::from_secs(10))
        .await
        .expect("second delivery before the outage");

    let node = tokio::task::spawn_blocking(move || {
        node.stop_app();
        node
    })
    .await
    .expect("stop_app");
    // Right after the stop, whether or not the adapter has noticed yet: never Ok.
    let during = publisher.publish(&[task(3)]).await;
    assert!(
        matches!(during, Err(QueueError::Unavailable(_))),
        "{during:?}"
    );
    eventually("the outage is noticed", Duration::from_secs(10), || async {
        !publisher.is_ready().await
    })
    .await;
    let during = publisher.publish(&[task(3)]).await;
    assert!(
        matches!(during, Err(QueueError::Unavailable(_))),
        "{during:?}"
    );
    // Settling on the dead channel errors (and the broker redelivers), it does not panic.
    assert!(unsettled.acker.ack().await.is_err());

    let node = tokio::task::spawn_blocking(move || {
        node.start_app();
        node
    })
    .await
    .expect("start_app");
    assert!(
        broker.wait_ready(Duration::from_secs(30)).await,
        "no reconnect"
    );
    publisher
        .publish(&[task(4)])
        .await
        .expect("publish after the reconnect");

    // The same source delivers again: task 4, and task 2 whose ack was lost.
    let mut seen = HashSet::new();
    while !(seen.contains(&2) && seen.contains(&4)) {
        let received = next_within(&mut source, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("after the reconnect only {seen:?} arrived"));
        seen.insert(number_of(&received.task));
        received.acker.ack().await.expect("ack after the reconnect");
    }
    assert!(
        !seen.contains(&3),
        "a publish reported unavailable was delivered"
    );
    source.close().await;
    teardown(&broker).await;
    drop(node);
}
