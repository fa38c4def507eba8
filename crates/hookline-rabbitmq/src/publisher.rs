//! Confirmed, pipelined publishing.
//!
//! Each confirm-mode channel of the pool is owned by one task. `publish` calls hand their
//! encoded tasks to those tasks through one shared queue; an idle channel task takes every
//! request waiting (group commit), sends all their messages back to back, then awaits all
//! their confirms together. So a burst of concurrent calls costs about one broker round trip
//! per channel, not one per message or per call.
//!
//! Architecture invariant: a call answers `Ok` only when every one of its messages was
//! acked by the broker without being returned. Why one owner per channel:
//! - lapin 2 assigns a publish's confirm tag and queues its frames in two steps; two tasks
//!   publishing on one channel from different threads can interleave them and get each
//!   other's confirms.
//! - lapin attaches a returned (unroutable) message to whichever confirm resolves next,
//!   not necessarily the returned message's own. A channel used by one batch at a time
//!   keeps that mix-up inside the batch, and any return in a batch rejects the whole batch
//!   (every routing key is bound in the same declare as all the others, so unroutability
//!   is never specific to one task). The verdict lives in [`crate::confirm`], the channel tasks in
//!   [`crate::pool`].

use std::sync::Arc;

use async_trait::async_trait;
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{QueueError, TaskPublisher};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::DropGuard;
use tracing::{debug, warn};

use crate::link::Shared;

/// Most tasks one channel publishes before awaiting their confirms; bounds a batch's memory
/// and latency when many calls are waiting.
pub(crate) const MAX_BATCH_TASKS: usize = 2048;

/// How many `publish` calls may wait for a channel before callers wait to enqueue.
pub(crate) const REQUEST_QUEUE: usize = 4096;

/// One `publish` call waiting for a channel task.
pub(crate) struct PublishRequest {
    pub(crate) messages: Vec<Encoded>,
    pub(crate) deadline: Instant,
    pub(crate) reply: oneshot::Sender<Result<(), QueueError>>,
}

impl PublishRequest {
    /// Answers the caller `Unavailable` without publishing.
    pub(crate) fn refuse(self, why: &str) {
        let _ = self
            .reply
            .send(Err(QueueError::Unavailable(why.to_owned())));
    }
}

/// A task as it goes on the wire.
pub(crate) struct Encoded {
    pub(crate) payload: Vec<u8>,
    pub(crate) properties: BasicProperties,
    /// Index of its queue in [`TopologyNames::queues`](crate::TopologyNames::queues).
    pub(crate) queue: usize,
}

impl Encoded {
    fn new(task: &DeliveryTask, queue: usize) -> Result<Self, QueueError> {
        let payload = serde_json::to_vec(task)
            .map_err(|error| QueueError::Rejected(format!("task does not encode: {error}")))?;
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"));
        if let Some(traceparent) = &task.traceparent {
            let mut headers = FieldTable::default();
            headers.insert(
                ShortString::from("traceparent"),
                AMQPValue::LongString(LongString::from(traceparent.as_str())),
            );
            properties = properties.with_headers(headers);
        }
        Ok(Self {
            payload,
            properties,
            queue,
        })
    }
}

/// The [`TaskPublisher`] handed out by [`RabbitBroker::publisher`](crate::RabbitBroker::publisher).
pub(crate) struct RabbitPublisher {
    pub(crate) shared: Arc<Shared>,
    pub(crate) _guard: Arc<DropGuard>,
}

#[async_trait]
impl TaskPublisher for RabbitPublisher {
    async fn publish(&self, tasks: &[DeliveryTask]) -> Result<(), QueueError> {
        if tasks.is_empty() {
            return Ok(());
        }
        // Fail fast while disconnected: the caller answers 503 now, not after the timeout.
        if let Err(error) = self.shared.live() {
            debug!(tasks = tasks.len(), %error, "rabbitmq: publish refused while disconnected");
            return Err(error.into());
        }
        let names = &self.shared.names;
        let lanes = self.shared.lanes.assign(tasks);
        let messages = tasks
            .iter()
            .zip(lanes)
            .map(|(task, lane)| {
                let shard = hookline_core::fair::shard_of(&task.app_id, names.shards());
                Encoded::new(task, names.route_index(lane, shard))
            })
            .collect::<Result<_, _>>()?;
        let limit = self.shared.config.publish_timeout;
        let deadline = Instant::now() + limit;
        let (reply, answer) = oneshot::channel();
        let request = PublishRequest {
            messages,
            deadline,
            reply,
        };
        let exchange = async {
            if self.shared.requests.send_async(request).await.is_err() {
                return Err(QueueError::Unavailable("the publisher is stopped".into()));
            }
            answer.await.unwrap_or_else(|_| {
                Err(QueueError::Unavailable(
                    "the broker connection was lost before it confirmed".into(),
                ))
            })
        };
        let result = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(QueueError::Unavailable(format!(
                "the broker did not confirm within {} ms",
                limit.as_millis()
            ))),
        };
        if let Err(error) = &result {
            warn!(tasks = tasks.len(), %error, "rabbitmq: publish failed");
        }
        result
    }

    async fn is_ready(&self) -> bool {
        self.shared.live().is_ok()
    }
}
