//! The machine's raw ceiling, measured in the same run as the scenarios so figures can be
//! given as ratios to it: what the broker does with nothing of Hookline in the way, and what
//! loopback HTTP does against the same receiver.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::receiver::{Receiver, CEILING_PATH};

#[derive(Debug, thiserror::Error)]
pub enum CeilingError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the raw consumer stopped after {got} of {expected} messages")]
    ConsumerStopped { got: u64, expected: u64 },
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Publishes confirmed, persistent `payload_bytes` messages to a fresh quorum queue while a
/// consumer acks them; answers messages per second through the whole trip.
pub async fn rabbitmq(
    amqp_url: &str,
    count: u64,
    payload_bytes: usize,
) -> Result<f64, CeilingError> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = declare_quorum_queue(&publisher, "ceiling").await?;
    let consumer_channel = connection.create_channel().await?;
    // The same prefetch as Hookline's dispatcher default.
    consumer_channel
        .basic_qos(256, BasicQosOptions::default())
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(
            &queue,
            "ceiling",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let consumed = tokio::spawn(async move {
        let mut got = 0u64;
        while got < count {
            match consumer.next().await {
                Some(Ok(delivery)) => {
                    if delivery.ack(BasicAckOptions::default()).await.is_err() {
                        break;
                    }
                    got += 1;
                }
                _ => break,
            }
        }
        got
    });
    let payload = vec![b'x'; payload_bytes];
    let properties = BasicProperties::default().with_delivery_mode(2);
    // Keep a window of confirms in flight, as a pipelining publisher would.
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..count {
        let confirm = publisher
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                &payload,
                properties.clone(),
            )
            .await?;
        in_flight.push(confirm);
        while in_flight.len() >= 512 {
            if let Some(result) = in_flight.next().await {
                result?;
            }
        }
    }
    while let Some(result) = in_flight.next().await {
        result?;
    }
    let got = consumed.await.unwrap_or(0);
    let elapsed = started.elapsed();
    let _ = publisher
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await;
    let _ = connection.close(200, "ceiling measured").await;
    if got < count {
        return Err(CeilingError::ConsumerStopped {
            got,
            expected: count,
        });
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// A fresh durable quorum queue, as Hookline's delivery queue is.
async fn declare_quorum_queue(
    channel: &lapin::Channel,
    name: &str,
) -> Result<String, CeilingError> {
    let queue = format!("hookline-bench-{name}-{}", std::process::id());
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    channel
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    Ok(queue)
}

/// The broker's share of end-to-end latency: one persistent message at a time, from publish
/// through its confirm to its arrival at a consumer, `samples` times. Hookline's path
/// contains this trip once (ingest publishes, a dispatcher consumes).
pub async fn rabbitmq_round_trip(
    amqp_url: &str,
    samples: usize,
    payload_bytes: usize,
) -> Result<Vec<u64>, CeilingError> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = declare_quorum_queue(&channel, "round-trip").await?;
    let consumer_channel = connection.create_channel().await?;
    let mut consumer = consumer_channel
        .basic_consume(
            &queue,
            "round-trip",
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let payload = vec![b'x'; payload_bytes];
    let properties = BasicProperties::default().with_delivery_mode(2);
    let mut trips = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        channel
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                &payload,
                properties.clone(),
            )
            .await?
            .await?;
        match consumer.next().await {
            Some(Ok(_)) => {
                trips.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
            }
            _ => {
                return Err(CeilingError::ConsumerStopped {
                    got: trips.len() as u64,
                    expected: samples as u64,
                })
            }
        }
    }
    let _ = channel
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await;
    let _ = connection.close(200, "round trip measured").await;
    Ok(trips)
}

/// POSTs `count` bodies of `payload_bytes` to the receiver from `concurrency` connections;
/// answers requests per second.
pub async fn http(
    receiver: &Receiver,
    count: u64,
    payload_bytes: usize,
    concurrency: usize,
) -> Result<f64, CeilingError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("http://{}/{CEILING_PATH}", receiver.addr);
    let body = bytes::Bytes::from(vec![b'x'; payload_bytes]);
    let next = Arc::new(AtomicU64::new(0));
    let before = receiver.ceiling_hits();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body, next) =
                (client.clone(), url.clone(), body.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let _ = client.post(&url).body(body.clone()).send().await;
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed();
    let done = receiver.ceiling_hits() - before;
    Ok(done as f64 / elapsed.as_secs_f64())
}
