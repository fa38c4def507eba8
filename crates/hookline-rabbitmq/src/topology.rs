//! The exchanges and queues Hookline uses, declared identically by every process on every
//! (re)connect. Declares are idempotent, so many ingest and scheduler replicas can race.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use hookline_core::fair::Lane;

use crate::config::RabbitConfig;
use crate::error::{bounded, RabbitError};

/// One delivery queue: a lane of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQueue {
    pub lane: Lane,
    pub shard: u16,
    /// `<prefix>.deliveries` for shard 0's fast lane (the one queue there was before
    /// sharding, so an upgrade keeps draining it), `<prefix>.deliveries.<k>` for the other
    /// fast shards, `<prefix>.deliveries.bulk.<k>` for the bulk lane.
    pub name: String,
    /// Routing key binding it to the delivery exchange.
    pub routing_key: String,
}

/// Names of the exchanges and queues for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyNames {
    /// Direct exchange that publishers send delivery tasks to: `<prefix>.deliveries`.
    pub exchange: String,
    /// Shard 0's fast lane, `<prefix>.deliveries`.
    pub queue: String,
    /// Fanout exchange the quorum queues dead-letter to: `<prefix>.deliveries.dead`.
    pub dead_exchange: String,
    /// Quorum queue holding dead-lettered tasks: `<prefix>.deliveries.dead`.
    pub dead_queue: String,
    /// Routing key binding `queue` to `exchange`.
    pub routing_key: String,
    /// Every delivery queue: the fast lane of each shard, then the bulk lane of each.
    pub queues: Vec<DeliveryQueue>,
}

impl TopologyNames {
    /// The names for `prefix` with `shards` shards (at least one).
    pub fn new(prefix: &str, shards: u16) -> Self {
        let shards = shards.max(1);
        let fast = (0..shards).map(|shard| DeliveryQueue {
            lane: Lane::Fast,
            shard,
            name: if shard == 0 {
                format!("{prefix}.deliveries")
            } else {
                format!("{prefix}.deliveries.{shard}")
            },
            routing_key: if shard == 0 {
                "deliveries".to_owned()
            } else {
                format!("fast.{shard}")
            },
        });
        let bulk = (0..shards).map(|shard| DeliveryQueue {
            lane: Lane::Bulk,
            shard,
            name: format!("{prefix}.deliveries.bulk.{shard}"),
            routing_key: format!("bulk.{shard}"),
        });
        Self {
            exchange: format!("{prefix}.deliveries"),
            queue: format!("{prefix}.deliveries"),
            dead_exchange: format!("{prefix}.deliveries.dead"),
            dead_queue: format!("{prefix}.deliveries.dead"),
            routing_key: "deliveries".to_owned(),
            queues: fast.chain(bulk).collect(),
        }
    }

    /// Shards per lane.
    pub fn shards(&self) -> u16 {
        u16::try_from(self.queues.len() / 2).unwrap_or(u16::MAX)
    }

    /// The queue of `lane` in `shard` (taken modulo the shard count).
    pub fn route(&self, lane: Lane, shard: u16) -> &DeliveryQueue {
        &self.queues[self.route_index(lane, shard)]
    }

    /// Where [`route`](Self::route)'s queue is in `queues`.
    pub fn route_index(&self, lane: Lane, shard: u16) -> usize {
        let shards = usize::from(self.shards().max(1));
        let at = usize::from(shard) % shards;
        match lane {
            Lane::Fast => at,
            Lane::Bulk => shards + at,
        }
    }

    /// The queues of one lane, shard by shard.
    pub fn lane(&self, lane: Lane) -> impl Iterator<Item = &DeliveryQueue> {
        self.queues.iter().filter(move |q| q.lane == lane)
    }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn insert(table: &mut FieldTable, key: &str, value: AMQPValue) {
    table.insert(ShortString::from(key.to_owned()), value);
}

fn expires(table: &mut FieldTable, queue_expires: Option<Duration>) {
    if let Some(expires) = queue_expires {
        let millis = i64::try_from(expires.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        insert(table, "x-expires", AMQPValue::LongLongInt(millis));
    }
}

/// Arguments of a delivery queue. Changing any of them makes the broker refuse the declare
/// of an existing queue (PRECONDITION_FAILED), so they are part of the deployment contract:
/// shard 0's fast lane keeps the arguments it had before sharding, and every other queue
/// asks for a balanced leader, so on a cluster the leaders (each about one core of work)
/// land on different nodes.
fn delivery_arguments(
    config: &RabbitConfig,
    names: &TopologyNames,
    queue: &DeliveryQueue,
) -> FieldTable {
    let mut table = quorum_arguments(config, names);
    if queue.name != names.queue {
        insert(
            &mut table,
            "x-queue-leader-locator",
            AMQPValue::LongString(LongString::from("balanced")),
        );
    }
    table
}

fn quorum_arguments(config: &RabbitConfig, names: &TopologyNames) -> FieldTable {
    let mut table = FieldTable::default();
    insert(
        &mut table,
        "x-queue-type",
        AMQPValue::LongString(LongString::from("quorum")),
    );
    insert(
        &mut table,
        "x-delivery-limit",
        AMQPValue::LongLongInt(i64::from(config.delivery_limit)),
    );
    insert(
        &mut table,
        "x-dead-letter-exchange",
        AMQPValue::LongString(LongString::from(names.dead_exchange.as_str())),
    );
    expires(&mut table, config.queue_expires);
    table
}

/// Arguments of the dead-letter queue: a quorum queue too. A classic queue lives on one node,
/// and while that node is down every declare of it fails (`NOT_FOUND - home node … is down`),
/// which would keep the whole topology, and so every publisher and consumer, from coming
/// back on the surviving nodes.
fn dead_letter_arguments(config: &RabbitConfig) -> FieldTable {
    let mut table = FieldTable::default();
    insert(
        &mut table,
        "x-queue-type",
        AMQPValue::LongString(LongString::from("quorum")),
    );
    expires(&mut table, config.queue_expires);
    table
}

/// Declares both exchanges and queues and their bindings on `channel`.
pub(crate) async fn declare(
    channel: &Channel,
    config: &RabbitConfig,
    names: &TopologyNames,
) -> Result<(), RabbitError> {
    let limit = config.rpc_timeout;
    bounded(
        "declare dead-letter exchange",
        limit,
        channel.exchange_declare(
            &names.dead_exchange,
            ExchangeKind::Fanout,
            durable_exchange(),
            FieldTable::default(),
        ),
    )
    .await?;
    bounded(
        "declare dead-letter queue",
        limit,
        channel.queue_declare(
            &names.dead_queue,
            durable_queue(),
            dead_letter_arguments(config),
        ),
    )
    .await?;
    bounded(
        "bind dead-letter queue",
        limit,
        channel.queue_bind(
            &names.dead_queue,
            &names.dead_exchange,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    bounded(
        "declare delivery exchange",
        limit,
        channel.exchange_declare(
            &names.exchange,
            ExchangeKind::Direct,
            durable_exchange(),
            FieldTable::default(),
        ),
    )
    .await?;
    for queue in &names.queues {
        bounded(
            "declare delivery queue",
            limit,
            channel.queue_declare(
                &queue.name,
                durable_queue(),
                delivery_arguments(config, names, queue),
            ),
        )
        .await?;
        bounded(
            "bind delivery queue",
            limit,
            channel.queue_bind(
                &queue.name,
                &names.exchange,
                &queue.routing_key,
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
    }
    Ok(())
}

/// Messages ready in `queue` (not counting unacknowledged ones), by passive declare.
pub(crate) async fn ready_messages(
    channel: &Channel,
    queue: &str,
    limit: Duration,
) -> Result<u32, RabbitError> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = bounded(
        "passive queue declare",
        limit,
        channel.queue_declare(queue, options, FieldTable::default()),
    )
    .await?;
    Ok(queue.message_count())
}

/// Deletes both queues and both exchanges, messages included. For test teardown.
pub(crate) async fn delete(
    channel: &Channel,
    names: &TopologyNames,
    limit: Duration,
) -> Result<(), RabbitError> {
    let queues = names.queues.iter().map(|q| &q.name);
    for queue in queues.chain([&names.dead_queue]) {
        bounded(
            "delete queue",
            limit,
            channel.queue_delete(queue, QueueDeleteOptions::default()),
        )
        .await?;
    }
    for exchange in [&names.exchange, &names.dead_exchange] {
        bounded(
            "delete exchange",
            limit,
            channel.exchange_delete(exchange, ExchangeDeleteOptions::default()),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let names = TopologyNames::new("hl", 3);
        assert_eq!(names.exchange, "hl.deliveries");
        assert_eq!(names.queue, "hl.deliveries");
        let all: Vec<_> = names.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            all,
            [
                "hl.deliveries",
                "hl.deliveries.1",
                "hl.deliveries.2",
                "hl.deliveries.bulk.0",
                "hl.deliveries.bulk.1",
                "hl.deliveries.bulk.2"
            ]
        );
        assert_eq!(names.route(Lane::Bulk, 1).name, "hl.deliveries.bulk.1");
        assert_eq!(names.route(Lane::Fast, 0).routing_key, "deliveries");
        assert_eq!(names.route(Lane::Fast, 4).name, "hl.deliveries.1");
        assert_eq!(names.dead_exchange, "hl.deliveries.dead");
        assert_eq!(names.dead_queue, "hl.deliveries.dead");
        assert_eq!(names.routing_key, "deliveries");
    }

    #[test]
    fn quorum_queue_dead_letters_with_a_limit() {
        let config = RabbitConfig {
            delivery_limit: 7,
            queue_expires: Some(Duration::from_secs(60)),
            ..RabbitConfig::default()
        };
        let names = TopologyNames::new("hl", 2);
        let table = quorum_arguments(&config, &names);
        let inner = table.inner();
        let get = |key: &str| inner.get(&ShortString::from(key.to_owned())).cloned();
        assert_eq!(
            get("x-queue-type"),
            Some(AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongLongInt(7)));
        assert_eq!(
            get("x-dead-letter-exchange"),
            Some(AMQPValue::LongString("hl.deliveries.dead".into()))
        );
        assert_eq!(get("x-expires"), Some(AMQPValue::LongLongInt(60_000)));
        let locator = |queue: &DeliveryQueue| {
            delivery_arguments(&config, &names, queue)
                .inner()
                .get(&ShortString::from("x-queue-leader-locator".to_owned()))
                .cloned()
        };
        assert_eq!(
            locator(&names.queues[0]),
            None,
            "the queue from before sharding"
        );
        assert_eq!(
            locator(&names.queues[1]),
            Some(AMQPValue::LongString("balanced".into()))
        );
    }

    #[test]
    fn the_dead_letter_queue_is_replicated_too() {
        let table = dead_letter_arguments(&RabbitConfig::default());
        assert_eq!(
            table
                .inner()
                .get(&ShortString::from("x-queue-type".to_owned()))
                .cloned(),
            Some(AMQPValue::LongString("quorum".into()))
        );
    }
}
