//! The exchanges and queues Hookline uses, declared identically by every process on every
//! (re)connect. Declares are idempotent, so many ingest and scheduler replicas can race.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::config::RabbitConfig;
use crate::error::{bounded, RabbitError};

/// Names of the exchanges and queues for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyNames {
    /// Direct exchange that publishers send delivery tasks to: `<prefix>.deliveries`.
    pub exchange: String,
    /// Durable quorum queue the dispatchers consume: `<prefix>.deliveries`.
    pub queue: String,
    /// Fanout exchange the quorum queue dead-letters to: `<prefix>.deliveries.dead`.
    pub dead_exchange: String,
    /// Quorum queue holding dead-lettered tasks: `<prefix>.deliveries.dead`.
    pub dead_queue: String,
    /// Routing key binding `queue` to `exchange`.
    pub routing_key: String,
}

impl TopologyNames {
    /// The names for `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            exchange: format!("{prefix}.deliveries"),
            queue: format!("{prefix}.deliveries"),
            dead_exchange: format!("{prefix}.deliveries.dead"),
            dead_queue: format!("{prefix}.deliveries.dead"),
            routing_key: "deliveries".to_owned(),
        }
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

/// Arguments of the quorum queue. Changing any of them makes the broker refuse the declare
/// of an existing queue (PRECONDITION_FAILED), so they are part of the deployment contract.
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
    bounded(
        "declare delivery queue",
        limit,
        channel.queue_declare(
            &names.queue,
            durable_queue(),
            quorum_arguments(config, names),
        ),
    )
    .await?;
    bounded(
        "bind delivery queue",
        limit,
        channel.queue_bind(
            &names.queue,
            &names.exchange,
            &names.routing_key,
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
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
    for queue in [&names.queue, &names.dead_queue] {
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
        let names = TopologyNames::new("hl");
        assert_eq!(names.exchange, "hl.deliveries");
        assert_eq!(names.queue, "hl.deliveries");
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
        let table = quorum_arguments(&config, &TopologyNames::new("hl"));
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
