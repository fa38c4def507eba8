//! Consuming delivery tasks, across reconnects.
//!
//! A [`RabbitTaskSource`] owns at most one subscription (a channel with `basic.qos` and a
//! consumer) bound to one connection generation. When that connection dies it drops the
//! subscription and opens a new one on the next connection the supervisor publishes, so a
//! caller of [`TaskSource::next`] just waits.
//!
//! Architecture invariant: every acker keeps its own channel alive (lapin closes a channel
//! when its last handle drops, and closing it would requeue the task), so settling works
//! even after the source moved on or closed; once the connection is gone settling fails and
//! the broker redelivers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use hookline_core::fair::{Lane, LanePicker};
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{QueueError, ReceivedTask, TaskAcker, TaskSource};
use lapin::acker::Acker;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use crate::acks::AckBook;
use crate::error::{bounded, RabbitError};
use crate::link::{Link, LiveLink, Shared};
use crate::supervisor::Backoff;

/// A stream of delivery tasks from the quorum queue; see [`TaskSource`].
///
/// Made by [`RabbitBroker::source`](crate::RabbitBroker::source). `next` is cancel-safe:
/// dropping its future (in a `select!`) loses no task.
pub struct RabbitTaskSource {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
    link: watch::Receiver<Link>,
    tag_prefix: String,
    subscriptions: u64,
    active: Option<Subscription>,
    closed: bool,
}

/// Consumers of every delivery queue on one connection generation: one channel per lane,
/// so each lane's acks run over its own contiguous delivery tags.
struct Subscription {
    live: Arc<LiveLink>,
    fast: LaneConsumers,
    bulk: LaneConsumers,
    picker: LanePicker,
    tag: String,
}

/// One lane's channel and its consumers (one per shard), merged into one stream. Each
/// consumer's stream ends with a `None` item, so a consumer the broker cancelled is noticed
/// (the merged stream would otherwise just go on without it).
struct LaneConsumers {
    channel: Arc<Channel>,
    acks: AckBook,
    tags: Vec<String>,
    deliveries: SelectAll<BoxStream<'static, Option<lapin::Result<Delivery>>>>,
}

/// What woke a waiting `next`.
// Lives on the stack for one loop turn; boxing each delivery would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Event {
    Delivery(Lane, Option<Option<lapin::Result<Delivery>>>),
    ConnectionLost,
    Shutdown,
}

impl std::fmt::Debug for RabbitTaskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitTaskSource")
            .field("tag_prefix", &self.tag_prefix)
            .field("subscribed", &self.active.is_some())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl RabbitTaskSource {
    pub(crate) fn new(shared: Arc<Shared>, guard: Arc<DropGuard>, tag_prefix: &str) -> Self {
        let link = shared.link.subscribe();
        Self {
            shared,
            _guard: guard,
            link,
            tag_prefix: tag_prefix.to_owned(),
            subscriptions: 0,
            active: None,
            closed: false,
        }
    }

    /// Waits for a live connection and subscribes on it; `None` on shutdown.
    async fn subscribe(&mut self) -> Option<Subscription> {
        let config = &self.shared.config;
        let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
        loop {
            if self.shared.shutdown.is_cancelled() {
                return None;
            }
            let current = self.link.borrow_and_update().clone();
            let live = match current {
                Link::Shutdown => return None,
                Link::Up(live) if live.is_alive() => live,
                Link::Up(_) | Link::Down => {
                    // The supervisor announces every change; a closed sender means shutdown.
                    if self.link.changed().await.is_err() {
                        return None;
                    }
                    continue;
                }
            };
            self.subscriptions += 1;
            let tag = format!(
                "{}-{}-{}",
                self.tag_prefix, live.generation, self.subscriptions
            );
            match open(&self.shared, &live, &tag).await {
                Ok((fast, bulk)) => {
                    info!(generation = live.generation, consumer_tag = %tag, "rabbitmq: consuming");
                    return Some(Subscription {
                        live,
                        fast,
                        bulk,
                        picker: LanePicker::new(config.bulk_every),
                        tag,
                    });
                }
                Err(error) => {
                    warn!(generation = live.generation, %error, "rabbitmq: subscribing failed");
                    tokio::select! {
                        () = self.shared.shutdown.cancelled() => return None,
                        () = live.lost.cancelled() => {}
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }
}

async fn open(
    shared: &Shared,
    live: &LiveLink,
    tag: &str,
) -> Result<(LaneConsumers, LaneConsumers), RabbitError> {
    let fast = open_lane(shared, live, tag, Lane::Fast).await?;
    let bulk = open_lane(shared, live, tag, Lane::Bulk).await?;
    Ok((fast, bulk))
}

async fn open_lane(
    shared: &Shared,
    live: &LiveLink,
    tag: &str,
    lane: Lane,
) -> Result<LaneConsumers, RabbitError> {
    let config = &shared.config;
    let limit = config.rpc_timeout;
    let channel = bounded("open channel", limit, live.connection.create_channel()).await?;
    // Per consumer: each shard of the lane has its own window.
    bounded(
        "basic.qos",
        limit,
        channel.basic_qos(config.prefetch, BasicQosOptions { global: false }),
    )
    .await?;
    let mut tags = Vec::new();
    let mut deliveries = SelectAll::new();
    for queue in shared.names.lane(lane) {
        let queue_tag = format!("{tag}-{}{}", lane.name(), queue.shard);
        let consumer: Consumer = bounded(
            "basic.consume",
            limit,
            channel.basic_consume(
                &queue.name,
                &queue_tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        tags.push(queue_tag);
        deliveries.push(
            consumer
                .map(Some)
                .chain(futures::stream::once(async { None }))
                .boxed(),
        );
    }
    Ok(LaneConsumers {
        channel: Arc::new(channel),
        acks: AckBook::start(config.rpc_timeout),
        tags,
        deliveries,
    })
}

/// Waits for the next delivery of either lane, trying `first` first.
async fn next_event(subscription: &mut Subscription, shutdown: &CancellationToken) -> Event {
    let Subscription {
        live,
        fast,
        bulk,
        picker,
        ..
    } = subscription;
    match picker.first() {
        Lane::Fast => tokio::select! {
            biased;
            () = shutdown.cancelled() => Event::Shutdown,
            () = live.lost.cancelled() => Event::ConnectionLost,
            d = fast.deliveries.next() => Event::Delivery(Lane::Fast, d),
            d = bulk.deliveries.next() => Event::Delivery(Lane::Bulk, d),
        },
        Lane::Bulk => tokio::select! {
            biased;
            () = shutdown.cancelled() => Event::Shutdown,
            () = live.lost.cancelled() => Event::ConnectionLost,
            d = bulk.deliveries.next() => Event::Delivery(Lane::Bulk, d),
            d = fast.deliveries.next() => Event::Delivery(Lane::Fast, d),
        },
    }
}

#[async_trait]
impl TaskSource for RabbitTaskSource {
    async fn next(&mut self) -> Option<ReceivedTask> {
        loop {
            if self.closed {
                return None;
            }
            let Some(subscription) = self.active.as_mut() else {
                self.active = Some(self.subscribe().await?);
                continue;
            };
            let event = next_event(subscription, &self.shared.shutdown).await;
            match event {
                Event::Shutdown => return None,
                Event::ConnectionLost => {
                    info!(consumer_tag = %subscription.tag, "rabbitmq: connection lost; will resubscribe");
                    self.active = None;
                }
                Event::Delivery(lane, Some(Some(Ok(delivery)))) => {
                    let limit = self.shared.config.rpc_timeout;
                    let consumers = match lane {
                        Lane::Fast => &subscription.fast,
                        Lane::Bulk => &subscription.bulk,
                    };
                    let settle = Settle {
                        acks: consumers.acks.clone(),
                        channel: Arc::clone(&consumers.channel),
                    };
                    if let Some(task) = accept(settle, &subscription.tag, delivery, limit).await {
                        return Some(task);
                    }
                }
                Event::Delivery(_, Some(Some(Err(error)))) => {
                    warn!(consumer_tag = %subscription.tag, %error, "rabbitmq: consumer failed; will resubscribe");
                    self.active = None;
                }
                Event::Delivery(_, Some(None) | None) => {
                    warn!(consumer_tag = %subscription.tag, "rabbitmq: a consumer was cancelled by the broker; will resubscribe");
                    self.active = None;
                }
            }
        }
    }

    async fn close(&mut self) {
        self.closed = true;
        let Some(subscription) = self.active.take() else {
            return;
        };
        let limit = self.shared.config.rpc_timeout;
        let mut requeued = 0_usize;
        for mut lane in [subscription.fast, subscription.bulk] {
            for tag in &lane.tags {
                let cancel = lane
                    .channel
                    .basic_cancel(tag, BasicCancelOptions::default());
                if let Err(error) = bounded("basic.cancel", limit, cancel).await {
                    // The connection is probably gone, and with it every unacked delivery.
                    debug!(consumer_tag = %tag, %error, "rabbitmq: cancel failed");
                    return;
                }
            }
            // Deliveries prefetched but never handed out go back to the queue now, rather
            // than when the channel finally closes. A cancelled consumer's stream ends.
            while let Ok(Some(delivery)) = tokio::time::timeout(limit, lane.deliveries.next()).await
            {
                let Some(Ok(delivery)) = delivery else {
                    continue;
                };
                let requeue = delivery.acker.nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                });
                if bounded("requeue", limit, requeue).await.is_ok() {
                    requeued += 1;
                }
            }
        }
        info!(consumer_tag = %subscription.tag, requeued, "rabbitmq: consumers closed");
    }
}

/// Decodes a delivery into a task for the caller, or dead-letters it.
/// Where a delivery is settled: its lane's ack book and channel.
struct Settle {
    acks: AckBook,
    channel: Arc<Channel>,
}

async fn accept(
    lane: Settle,
    tag: &str,
    delivery: Delivery,
    limit: Duration,
) -> Option<ReceivedTask> {
    match serde_json::from_slice::<DeliveryTask>(&delivery.data) {
        Ok(task) => {
            lane.acks.accepted(delivery.delivery_tag);
            Some(ReceivedTask {
                task,
                acker: Box::new(RabbitAcker {
                    acker: delivery.acker,
                    delivery_tag: delivery.delivery_tag,
                    book: lane.acks,
                    _channel: lane.channel,
                }),
            })
        }
        Err(error) => {
            warn!(
                consumer_tag = %tag,
                delivery_tag = delivery.delivery_tag,
                bytes = delivery.data.len(),
                %error,
                "rabbitmq: undecodable task; dead-lettering it"
            );
            let reject = delivery.acker.reject(BasicRejectOptions { requeue: false });
            if let Err(error) = bounded("reject", limit, reject).await {
                warn!(delivery_tag = delivery.delivery_tag, %error, "rabbitmq: dead-lettering failed; the broker will redeliver it");
            }
            None
        }
    }
}

/// Settles one delivery on the channel it arrived on, through the channel's [`AckBook`].
struct RabbitAcker {
    acker: Acker,
    delivery_tag: u64,
    book: AckBook,
    /// Keeps the channel open until this delivery is settled or dropped.
    _channel: Arc<Channel>,
}

impl RabbitAcker {
    fn failed(&self, error: String) -> QueueError {
        // Expected after a reconnect: the broker redelivers the task anyway.
        debug!(delivery_tag = self.delivery_tag, %error, "rabbitmq: settling a task failed");
        QueueError::Unavailable(error)
    }
}

#[async_trait]
impl TaskAcker for RabbitAcker {
    async fn ack(&self) -> Result<(), QueueError> {
        self.book
            .ack(self.delivery_tag, self.acker.clone())
            .await
            .map_err(|e| self.failed(e))
    }

    async fn requeue(&self) -> Result<(), QueueError> {
        self.book
            .requeue(self.delivery_tag, self.acker.clone())
            .await
            .map_err(|e| self.failed(e))
    }
}
