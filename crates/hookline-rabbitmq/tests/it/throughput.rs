//! Raw ceiling of this machine: confirmed publishing and acked consumption of 1 KiB
//! persistent tasks on the quorum queue, concurrently. Prints the rate; run with
//! `cargo test --release -p hookline-rabbitmq throughput -- --nocapture` to measure.

use std::time::Duration;

use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use hookline_core::ports::TaskSource;
use hookline_rabbitmq::RabbitConfig;
use tokio::time::Instant;

use crate::support::{start_ready, task_with_payload, teardown, test_config, SHARED_URL};

const TASKS: usize = 20_000;
const CALLERS: usize = 16;
const TASKS_PER_CALL: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_and_ack_throughput_of_1kib_tasks() {
    let config = RabbitConfig {
        prefetch: 512,
        ..test_config(SHARED_URL)
    };
    let broker = start_ready(config).await;
    // About 1 KiB on the wire once the task's other fields are added.
    let payload = format!("{{\"data\":\"{}\"}}", "x".repeat(880));
    let probe = serde_json::to_vec(&task_with_payload(0, &payload)).expect("encode");
    let mut source = broker.source("throughput");

    let started = Instant::now();
    let consumer = tokio::spawn(async move {
        let mut acks = FuturesUnordered::new();
        let mut received = 0;
        while received < TASKS {
            tokio::select! {
                next = tokio::time::timeout(Duration::from_secs(20), source.next()) => {
                    let task = next.ok().flatten().expect("a task within 20 s");
                    received += 1;
                    acks.push(async move { task.acker.ack().await });
                }
                Some(result) = acks.next(), if !acks.is_empty() => result.expect("ack"),
            }
        }
        while let Some(result) = acks.next().await {
            result.expect("ack");
        }
        source.close().await;
        Instant::now()
    });

    let publisher = broker.publisher();
    let callers = (0..CALLERS).map(|caller| {
        let publisher = publisher.clone();
        let payload = payload.clone();
        async move {
            let mut n = caller;
            let mut batch = Vec::with_capacity(TASKS_PER_CALL);
            while n < TASKS {
                batch.push(task_with_payload(n, &payload));
                n += CALLERS;
                if batch.len() == TASKS_PER_CALL || n >= TASKS {
                    publisher.publish(&batch).await.expect("publish");
                    batch.clear();
                }
            }
        }
    });
    join_all(callers).await;
    let published = started.elapsed();
    let consumed = consumer.await.expect("consumer task") - started;

    let rate = |elapsed: Duration| TASKS as f64 / elapsed.as_secs_f64();
    println!(
        "rabbitmq throughput: {TASKS} tasks of {} bytes; confirmed publish {:.0}/s ({CALLERS} callers x {TASKS_PER_CALL} per call); publish+consume+ack {:.0}/s",
        probe.len(),
        rate(published),
        rate(consumed),
    );
    teardown(&broker).await;
}
