//! The handle the roles hold: starts the supervisor, hands out publishers and sources, and
//! offers the few administrative calls operations and tests need.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::fair::Lane;
use hookline_core::ports::TaskPublisher;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::info;

use crate::config::RabbitConfig;
use crate::error::RabbitError;
use crate::link::{Lanes, Link, Shared};
use crate::publisher::{RabbitPublisher, REQUEST_QUEUE};
use crate::source::RabbitTaskSource;
use crate::topology::{self, TopologyNames};
use crate::{redact::redact_url, supervisor};

/// Ready tasks per lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneDepths {
    pub fast: u32,
    pub bulk: u32,
}

/// A supervised RabbitMQ connection shared by every publisher and source made from it.
///
/// Cheap to clone. The connection lives until [`RabbitBroker::shutdown`] runs or the last
/// clone, publisher and source are dropped.
#[derive(Clone)]
pub struct RabbitBroker {
    shared: Arc<Shared>,
    guard: Arc<DropGuard>,
    supervisor: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for RabbitBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitBroker")
            .field("prefix", &self.shared.config.prefix)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl RabbitBroker {
    /// Starts connecting in the background and returns at once.
    ///
    /// Never fails because the broker is down: the supervisor keeps retrying with backoff,
    /// publishes fail with `Unavailable` meanwhile, and sources wait. Check the config with
    /// [`RabbitConfig::validate`] first; invalid URLs are skipped and logged here.
    /// Must be called within a Tokio runtime.
    pub fn start(config: RabbitConfig) -> Self {
        let names = TopologyNames::new(&config.prefix, config.shards);
        let lanes = Lanes::new(config.fair_share);
        let (link, _) = watch::channel(Link::Down);
        let (requests, pending) = flume::bounded(REQUEST_QUEUE);
        let shutdown = CancellationToken::new();
        let urls: Vec<String> = config.urls.iter().map(|url| redact_url(url)).collect();
        info!(?urls, prefix = %config.prefix, "rabbitmq: starting");
        let shared = Arc::new(Shared {
            config,
            names,
            link,
            shutdown: shutdown.clone(),
            requests,
            pending,
            connections: std::sync::atomic::AtomicU64::new(0),
            lanes,
        });
        let supervisor = tokio::spawn(supervisor::run(Arc::clone(&shared)));
        Self {
            shared,
            guard: Arc::new(shutdown.drop_guard()),
            supervisor: Arc::new(Mutex::new(Some(supervisor))),
        }
    }

    /// Times the broker connection was re-established after the first (a metric).
    pub fn reconnects(&self) -> u64 {
        self.shared
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(1)
    }

    /// Whether a live connection with declared topology exists right now.
    pub fn is_ready(&self) -> bool {
        self.shared.live().is_ok()
    }

    /// Waits up to `timeout` for a live connection; `true` if there is one.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut link = self.shared.link.subscribe();
        let ready = link.wait_for(|link| match link {
            Link::Up(live) => live.is_alive(),
            Link::Down | Link::Shutdown => false,
        });
        let outcome = tokio::time::timeout(timeout, ready).await;
        matches!(outcome, Ok(Ok(_)))
    }

    /// A publisher for the ingest and scheduler roles. Safe to share and call concurrently.
    pub fn publisher(&self) -> Arc<dyn TaskPublisher> {
        Arc::new(RabbitPublisher {
            shared: Arc::clone(&self.shared),
            _guard: Arc::clone(&self.guard),
        })
    }

    /// A new consumer of the delivery queue; its consumer tags start with
    /// `consumer_tag_prefix` (name the process, e.g. `dispatcher-<host>`).
    pub fn source(&self, consumer_tag_prefix: &str) -> RabbitTaskSource {
        RabbitTaskSource::new(
            Arc::clone(&self.shared),
            Arc::clone(&self.guard),
            consumer_tag_prefix,
        )
    }

    /// The exchange and queue names in use.
    pub fn names(&self) -> &TopologyNames {
        &self.shared.names
    }

    /// Tasks ready in all delivery queues (unacknowledged ones not counted).
    pub async fn queue_depth(&self) -> Result<u32, RabbitError> {
        let depths = self.lane_depths().await?;
        Ok(depths.fast.saturating_add(depths.bulk))
    }

    /// Tasks ready in each lane, summed over its shards.
    pub async fn lane_depths(&self) -> Result<LaneDepths, RabbitError> {
        let channel = self.shared.admin_channel().await?;
        let mut depths = LaneDepths::default();
        for queue in &self.shared.names.queues {
            let ready = topology::ready_messages(&channel, &queue.name, self.rpc_timeout()).await?;
            let lane = match queue.lane {
                Lane::Fast => &mut depths.fast,
                Lane::Bulk => &mut depths.bulk,
            };
            *lane = lane.saturating_add(ready);
        }
        Ok(depths)
    }

    /// Tasks this process has published into each lane since it started (fast, bulk).
    pub fn published(&self) -> (u64, u64) {
        self.shared.lanes.published()
    }

    /// Tasks waiting in the dead-letter queue.
    pub async fn dead_letter_count(&self) -> Result<u32, RabbitError> {
        let channel = self.shared.admin_channel().await?;
        topology::ready_messages(&channel, &self.shared.names.dead_queue, self.rpc_timeout()).await
    }

    /// Deletes both queues (with their messages) and both exchanges. For test teardown;
    /// a running supervisor declares them again only on its next reconnect.
    pub async fn delete_topology(&self) -> Result<(), RabbitError> {
        let channel = self.shared.admin_channel().await?;
        topology::delete(&channel, &self.shared.names, self.rpc_timeout()).await
    }

    /// Stops reconnecting and closes the connection; unacknowledged deliveries return to
    /// the queue. Publishes fail and sources end afterwards. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let handle = self.supervisor.lock().await.take();
        if let Some(handle) = handle {
            if let Err(error) = handle.await {
                tracing::error!(%error, "rabbitmq: supervisor task failed");
            }
        }
    }

    fn rpc_timeout(&self) -> Duration {
        self.shared.config.rpc_timeout
    }
}
