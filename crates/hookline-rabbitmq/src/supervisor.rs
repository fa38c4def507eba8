//! The reconnect loop: connect (trying each URL in order), declare the topology, start the
//! publisher pool, publish the connection, wait for it to die, repeat with backoff.
//!
//! lapin's own recovery is not used: one loop owning the whole lifecycle is simpler to
//! reason about, and every consumer and publisher re-binds to the next generation by
//! watching [`Shared::link`].

use std::sync::Arc;
use std::time::Duration;

use lapin::types::LongString;
use lapin::{Connection, ConnectionProperties};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::error::{bounded, RabbitError};
use crate::link::{Link, LiveLink, Shared};
use crate::redact::redact_url;
use crate::{pool, topology};

/// How often the supervisor double-checks the connection status, in case lapin's error
/// callback never fires for some way of dying.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// Runs until shutdown; never returns early because the broker is down.
pub(crate) async fn run(shared: Arc<Shared>) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut generation = 0_u64;
    loop {
        let connected = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            connected = connect_any(&shared) => connected,
        };
        let Some(connection) = connected else {
            let delay = backoff.next_delay();
            debug!(
                delay_ms = delay.as_millis() as u64,
                "rabbitmq: waiting before reconnecting"
            );
            tokio::select! {
                () = shared.shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => continue,
            }
        };
        generation += 1;
        let lost = CancellationToken::new();
        {
            let lost = lost.clone();
            let shutdown = shared.shutdown.clone();
            connection.on_error(move |error| {
                if shutdown.is_cancelled() {
                    debug!(generation, %error, "rabbitmq: connection error while shutting down");
                } else {
                    warn!(generation, %error, "rabbitmq: connection error");
                }
                lost.cancel();
            });
        }
        let live = Arc::new(LiveLink {
            generation,
            connection,
            lost,
        });
        if let Err(error) = prepare(&shared, &live).await {
            error!(generation, %error, "rabbitmq: setting up the connection failed");
            live.lost.cancel();
            close(&live, config.rpc_timeout).await;
            let delay = backoff.next_delay();
            tokio::select! {
                () = shared.shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => continue,
            }
        }
        shared.link.send_replace(Link::Up(Arc::clone(&live)));
        shared
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!(generation, "rabbitmq: connected and ready");
        backoff.reset();

        let shutting_down = watch(&shared, &live).await;
        live.lost.cancel();
        shared.link.send_replace(Link::Down);
        close(&live, config.rpc_timeout).await;
        if shutting_down {
            break;
        }
        warn!(generation, "rabbitmq: connection lost; reconnecting");
    }
    shared.link.send_replace(Link::Shutdown);
    // Calls that raced with the shutdown would otherwise wait out their timeout.
    while let Ok(request) = shared.pending.try_recv() {
        request.refuse("the RabbitMQ adapter is shut down");
    }
    info!("rabbitmq: supervisor stopped");
}

/// Tries every URL once, in order; the first connection wins.
async fn connect_any(shared: &Shared) -> Option<Connection> {
    let config = &shared.config;
    for url in &config.urls {
        let shown = redact_url(url);
        let Ok(uri) = url.parse::<lapin::uri::AMQPUri>() else {
            error!(url = %shown, "rabbitmq: invalid AMQP URL; skipping it");
            continue;
        };
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio)
            .with_connection_name(LongString::from(format!("hookline {}", config.prefix)));
        match tokio::time::timeout(
            config.connect_timeout,
            Connection::connect_uri(uri, properties),
        )
        .await
        {
            Ok(Ok(connection)) => {
                info!(url = %shown, "rabbitmq: connection established");
                return Some(connection);
            }
            Ok(Err(error)) => warn!(url = %shown, %error, "rabbitmq: connect failed"),
            Err(_) => warn!(
                url = %shown,
                timeout_ms = config.connect_timeout.as_millis() as u64,
                "rabbitmq: connect timed out"
            ),
        }
    }
    None
}

/// Declares the topology and starts the publisher pool on a fresh connection.
async fn prepare(shared: &Arc<Shared>, live: &Arc<LiveLink>) -> Result<(), RabbitError> {
    let config = &shared.config;
    let channel = bounded(
        "open channel",
        config.rpc_timeout,
        live.connection.create_channel(),
    )
    .await?;
    topology::declare(&channel, config, &shared.names).await?;
    // Dropping the last handle closes the channel (lapin closes channels on drop).
    drop(channel);
    pool::start_pool(shared, live).await
}

/// Waits until the connection dies (`false`) or shutdown is asked for (`true`).
async fn watch(shared: &Shared, live: &LiveLink) -> bool {
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return true,
            () = live.lost.cancelled() => return false,
            () = tokio::time::sleep(STATUS_POLL) => {
                if !live.connection.status().connected() {
                    return false;
                }
            }
        }
    }
}

/// Best-effort close; a dead connection just errors, which is fine.
async fn close(live: &LiveLink, limit: Duration) {
    if live.connection.status().connected() {
        let closing = live.connection.close(200, "hookline closing");
        match tokio::time::timeout(limit, closing).await {
            Ok(Ok(())) => debug!(generation = live.generation, "rabbitmq: connection closed"),
            Ok(Err(error)) => {
                debug!(generation = live.generation, %error, "rabbitmq: close failed")
            }
            Err(_) => debug!(generation = live.generation, "rabbitmq: close timed out"),
        }
    }
}

/// Exponential backoff with jitter, so many replicas do not reconnect in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The next wait: between half and all of the current step, which then doubles.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = step.saturating_mul(2).min(self.max);
        let half = step / 2;
        let jitter_nanos =
            rand::rng().random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(jitter_nanos)
    }

    /// Back to the shortest wait, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut caps = Vec::new();
        for _ in 0..6 {
            let step = backoff.next;
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} outside {step:?}"
            );
            caps.push(step.as_millis());
        }
        assert_eq!(caps, [100, 200, 400, 800, 800, 800]);
        backoff.reset();
        assert_eq!(backoff.next, Duration::from_millis(100));
    }
}
