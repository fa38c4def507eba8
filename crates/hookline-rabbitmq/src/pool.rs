//! The publisher channel pool of one connection: one task per confirm-mode channel, each
//! serving batches of waiting `publish` calls (see [`crate::publisher`] for why).

use std::sync::Arc;

use futures::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::Channel;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::confirm::{BatchVerdict, Confirmed};
use crate::error::{bounded, RabbitError};
use crate::link::{LiveLink, Shared};
use crate::publisher::{PublishRequest, MAX_BATCH_TASKS};
use crate::supervisor::Backoff;

/// Opens the publisher channels of a new connection and starts one task per channel.
pub(crate) async fn start_pool(
    shared: &Arc<Shared>,
    live: &Arc<LiveLink>,
) -> Result<(), RabbitError> {
    let count = shared.config.publisher_channels.max(1);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(open_confirm_channel(live, shared.config.rpc_timeout).await?);
    }
    for (index, channel) in channels.into_iter().enumerate() {
        let task = ChannelTask {
            shared: Arc::clone(shared),
            live: Arc::clone(live),
            channel,
            index,
        };
        tokio::spawn(task.run());
    }
    Ok(())
}

async fn open_confirm_channel(
    live: &LiveLink,
    limit: std::time::Duration,
) -> Result<Channel, RabbitError> {
    let channel = bounded("open channel", limit, live.connection.create_channel()).await?;
    bounded(
        "confirm.select",
        limit,
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    Ok(channel)
}

/// Owns one confirm-mode channel for the lifetime of one connection.
struct ChannelTask {
    shared: Arc<Shared>,
    live: Arc<LiveLink>,
    channel: Channel,
    index: usize,
}

/// Whether a channel can take the next batch.
enum ChannelHealth {
    Fine,
    /// Closed by the broker, timed out, or left with confirms we stopped waiting for.
    Broken,
}

impl ChannelTask {
    async fn run(mut self) {
        let generation = self.live.generation;
        debug!(
            generation,
            channel = self.index,
            "rabbitmq: publisher channel started"
        );
        loop {
            let first = tokio::select! {
                biased;
                () = self.live.lost.cancelled() => break,
                () = self.shared.shutdown.cancelled() => break,
                request = self.shared.pending.recv_async() => match request {
                    Ok(request) => request,
                    Err(_) => break,
                },
            };
            let batch = self.gather(first);
            if batch.is_empty() {
                continue;
            }
            if let ChannelHealth::Broken = self.publish_batch(batch).await {
                if !self.reopen().await {
                    break;
                }
            }
        }
        debug!(
            generation,
            channel = self.index,
            "rabbitmq: publisher channel stopped"
        );
    }

    /// Takes `first` plus every request already waiting, up to [`MAX_BATCH_TASKS`] tasks,
    /// skipping requests whose caller has given up.
    fn gather(&self, first: PublishRequest) -> Vec<PublishRequest> {
        let now = Instant::now();
        let mut batch = Vec::new();
        let mut tasks = 0;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            if request.reply.is_closed() || request.deadline <= now {
                request.refuse("timed out waiting for a publisher channel");
            } else {
                tasks += request.messages.len();
                batch.push(request);
            }
            if tasks < MAX_BATCH_TASKS {
                next = self.shared.pending.try_recv().ok();
            }
        }
        batch
    }

    /// Sends every message of `batch`, awaits all confirms together, answers every caller.
    async fn publish_batch(&self, batch: Vec<PublishRequest>) -> ChannelHealth {
        let started = Instant::now();
        let deadline = started + self.shared.config.publish_timeout;
        let names = &self.shared.names;
        let options = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        // All publishes are polled by this one task, so confirm tags follow frame order.
        let sends = batch
            .iter()
            .flat_map(|request| &request.messages)
            .map(|message| {
                let routing_key = names
                    .queues
                    .get(message.queue)
                    .map_or(names.routing_key.as_str(), |q| q.routing_key.as_str());
                self.channel.basic_publish(
                    &names.exchange,
                    routing_key,
                    options,
                    &message.payload,
                    message.properties.clone(),
                )
            });
        let sent = match tokio::time::timeout_at(deadline, join_all(sends)).await {
            Ok(sent) => sent,
            Err(_) => return self.fail(batch, "sending to the broker timed out"),
        };
        let mut confirms = Vec::with_capacity(sent.len());
        for result in sent {
            match result {
                Ok(confirm) => confirms.push(confirm),
                Err(error) => {
                    return self.fail(batch, &format!("the broker channel failed: {error}"));
                }
            }
        }
        let confirmations: Vec<Confirmed> =
            match tokio::time::timeout_at(deadline, join_all(confirms)).await {
                Ok(confirmations) => confirmations.into_iter().map(Confirmed::from).collect(),
                Err(_) => return self.fail(batch, "the broker did not confirm in time"),
            };
        let verdict = BatchVerdict::of(&confirmations);
        debug!(
            generation = self.live.generation,
            channel = self.index,
            calls = batch.len(),
            tasks = confirmations.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "rabbitmq: batch confirmed"
        );
        let mut offset = 0;
        for request in batch {
            let count = request.messages.len();
            let mine = &confirmations[offset..offset + count];
            offset += count;
            let _ = request.reply.send(verdict.for_request(mine));
        }
        if verdict.errored {
            ChannelHealth::Broken
        } else {
            ChannelHealth::Fine
        }
    }

    /// Answers the whole batch `Unavailable` and marks the channel for replacement.
    fn fail(&self, batch: Vec<PublishRequest>, why: &str) -> ChannelHealth {
        warn!(
            generation = self.live.generation,
            channel = self.index,
            calls = batch.len(),
            reason = why,
            "rabbitmq: publish batch failed"
        );
        for request in batch {
            request.refuse(why);
        }
        ChannelHealth::Broken
    }

    /// Replaces a broken channel on the same connection. `false` when the connection is
    /// gone (the supervisor starts a new pool then) or on shutdown.
    async fn reopen(&mut self) -> bool {
        let limit = self.shared.config.rpc_timeout;
        // Dropping the old handle closes it; its unconfirmed publishes die with it.
        let mut backoff = Backoff::new(
            self.shared.config.reconnect_min,
            self.shared.config.reconnect_max,
        );
        loop {
            if !self.live.is_alive() || self.shared.shutdown.is_cancelled() {
                return false;
            }
            match open_confirm_channel(&self.live, limit).await {
                Ok(channel) => {
                    self.channel = channel;
                    debug!(channel = self.index, "rabbitmq: publisher channel reopened");
                    return true;
                }
                Err(error) => {
                    warn!(channel = self.index, %error, "rabbitmq: reopening a publisher channel failed");
                }
            }
            tokio::select! {
                () = self.live.lost.cancelled() => return false,
                () = self.shared.shutdown.cancelled() => return false,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }
}
