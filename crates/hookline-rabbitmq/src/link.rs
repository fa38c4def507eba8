//! The state every part of the adapter shares: the current connection (if any), published
//! by the supervisor, plus the configuration and the queue of pending publishes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hookline_core::fair::{Lane, LaneMeter, Share};
use hookline_core::model::DeliveryTask;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::RabbitConfig;
use crate::error::RabbitError;
use crate::publisher::PublishRequest;
use crate::topology::TopologyNames;

/// Where the supervisor stands. Every change is broadcast on [`Shared::link`].
#[derive(Clone)]
pub(crate) enum Link {
    /// Connecting or reconnecting.
    Down,
    /// A connection with declared topology and a ready publisher pool.
    Up(Arc<LiveLink>),
    /// [`RabbitBroker::shutdown`](crate::RabbitBroker::shutdown) ran; nothing will reconnect.
    Shutdown,
}

/// One established connection. `lost` fires once when it dies, so every channel, consumer
/// and publisher task bound to it stops together; the next connection gets a new
/// generation.
pub(crate) struct LiveLink {
    pub(crate) generation: u64,
    pub(crate) connection: lapin::Connection,
    pub(crate) lost: CancellationToken,
}

impl LiveLink {
    /// Whether the connection still looks usable.
    pub(crate) fn is_alive(&self) -> bool {
        !self.lost.is_cancelled() && self.connection.status().connected()
    }
}

/// Everything the broker handle, the supervisor, publishers and sources share.
pub(crate) struct Shared {
    pub(crate) config: RabbitConfig,
    pub(crate) names: TopologyNames,
    pub(crate) link: watch::Sender<Link>,
    /// Fires on shutdown (explicit, or when every handle is dropped).
    pub(crate) shutdown: CancellationToken,
    /// Publish requests wait here for one of the current connection's publisher tasks.
    /// The queue outlives connections, so a request made during a reconnect is served by
    /// the next connection if its deadline allows.
    pub(crate) requests: flume::Sender<PublishRequest>,
    pub(crate) pending: flume::Receiver<PublishRequest>,
    /// Connections that reached "ready" since start (for the reconnect metric).
    pub(crate) connections: std::sync::atomic::AtomicU64,
    /// Which lane each application's tasks take from this process.
    pub(crate) lanes: Lanes,
}

/// The lane decisions of this process's publishers and what they published per lane.
pub(crate) struct Lanes {
    meter: std::sync::Mutex<LaneMeter>,
    fast: AtomicU64,
    bulk: AtomicU64,
}

impl Lanes {
    pub(crate) fn new(share: Share) -> Self {
        Self {
            meter: std::sync::Mutex::new(LaneMeter::new(share)),
            fast: AtomicU64::new(0),
            bulk: AtomicU64::new(0),
        }
    }

    /// The lane of each of `tasks`, published now (one lock for them all).
    pub(crate) fn assign(&self, tasks: &[DeliveryTask]) -> Vec<Lane> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let mut meter = match self.meter.lock() {
            Ok(meter) => meter,
            // A panic elsewhere while deciding a lane: the meter is still a valid state.
            Err(poisoned) => poisoned.into_inner(),
        };
        let lanes: Vec<Lane> = tasks
            .iter()
            .map(|task| meter.lane(&task.app_id, 1, now))
            .collect();
        drop(meter);
        let bulk = lanes.iter().filter(|l| **l == Lane::Bulk).count() as u64;
        self.bulk.fetch_add(bulk, Ordering::Relaxed);
        self.fast
            .fetch_add(lanes.len() as u64 - bulk, Ordering::Relaxed);
        lanes
    }

    pub(crate) fn published(&self) -> (u64, u64) {
        (
            self.fast.load(Ordering::Relaxed),
            self.bulk.load(Ordering::Relaxed),
        )
    }
}

impl Shared {
    /// The live connection, or why there is none.
    pub(crate) fn live(&self) -> Result<Arc<LiveLink>, RabbitError> {
        match &*self.link.borrow() {
            Link::Up(live) if live.is_alive() => Ok(Arc::clone(live)),
            Link::Shutdown => Err(RabbitError::Shutdown),
            Link::Up(_) | Link::Down => Err(RabbitError::NotConnected),
        }
    }

    /// Opens a short-lived channel on the live connection for an administrative call.
    pub(crate) async fn admin_channel(&self) -> Result<lapin::Channel, RabbitError> {
        let live = self.live()?;
        crate::error::bounded(
            "open channel",
            self.config.rpc_timeout,
            live.connection.create_channel(),
        )
        .await
    }
}
