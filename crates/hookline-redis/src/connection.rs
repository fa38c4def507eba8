//! One connection type for a single Redis (or a Sentinel-less primary) and for Redis Cluster,
//! so every store operation is written once.
//!
//! Both are multiplexed and reconnect by themselves. The cluster connection follows `MOVED`
//! and `ASK` and refreshes its slot map when the topology changes; it is opened on first use,
//! so a cluster that is down at start-up fails calls, not start-up, as a single Redis does.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;

/// A connection to a single Redis or to a Redis Cluster. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(LazyCluster),
}

/// A cluster connection opened by the first command that needs it, and opened afresh after
/// it stops answering. Clones share it.
///
/// Why reopen: when a primary dies, the crate refreshes its slot map at once, while the
/// other nodes still name the dead primary; the replica is promoted seconds later and the
/// crate does not look again, so commands for those slots time out for good. A new
/// connection reads the slot map from the seeds and finds the promoted replica.
#[derive(Clone)]
pub(crate) struct LazyCluster(Arc<ClusterSlot>);

struct ClusterSlot {
    client: ClusterClient,
    current: Mutex<Current>,
}

#[derive(Default)]
struct Current {
    connection: Option<ClusterConnection>,
    /// Counts connections opened, so a failure only discards the one it happened on.
    generation: u64,
    opened_at: Option<Instant>,
}

/// A connection is kept at least this long before a failure may replace it, so a cluster
/// that is down is not hammered with reconnects.
const REOPEN_AFTER: Duration = Duration::from_millis(500);

impl LazyCluster {
    async fn get(&self) -> RedisResult<(u64, ClusterConnection)> {
        let mut current = self.0.current.lock().await;
        if let Some(connection) = &current.connection {
            return Ok((current.generation, connection.clone()));
        }
        let connection = self.0.client.get_async_connection().await?;
        current.generation += 1;
        current.connection = Some(connection.clone());
        current.opened_at = Some(Instant::now());
        Ok((current.generation, connection))
    }

    /// Drops connection `generation` after a failure that a new slot map may cure.
    async fn failed(&self, generation: u64, error: &RedisError) {
        let cured_by_reopening = error.is_timeout()
            || error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_cluster_error();
        if !cured_by_reopening {
            return;
        }
        let mut current = self.0.current.lock().await;
        let old_enough = current
            .opened_at
            .is_none_or(|at| at.elapsed() >= REOPEN_AFTER);
        if current.generation == generation && old_enough {
            tracing::warn!(%error, "redis cluster: reopening the connection to re-read the slot map");
            current.connection = None;
        }
    }

    async fn run<T>(
        &self,
        request: impl AsyncFnOnce(&mut ClusterConnection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let (generation, mut connection) = self.get().await?;
        let result = request(&mut connection).await;
        if let Err(error) = &result {
            self.failed(generation, error).await;
        }
        result
    }
}

/// Where the store connects.
pub(crate) enum Topology<'a> {
    Single(&'a str),
    /// Seed node URLs; the rest of the cluster is discovered from them.
    Cluster(&'a [String]),
}

impl Conn {
    pub(crate) fn open(
        topology: Topology<'_>,
        response_timeout: Duration,
        connection_timeout: Duration,
    ) -> RedisResult<Self> {
        match topology {
            Topology::Single(url) => {
                let client = redis::Client::open(url)?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(connection_timeout))
                    .set_max_delay(Duration::from_secs(2));
                Ok(Self::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Topology::Cluster(seeds) => {
                let client = ClusterClient::builder(seeds.iter().map(String::as_str))
                    .response_timeout(response_timeout)
                    .connection_timeout(connection_timeout)
                    // A node that refuses connections is dropped after two tries, so the
                    // next topology refresh routes its slots to the replica that took over,
                    // instead of reconnecting to the dead primary forever.
                    .max_connection_attempts(NonZeroUsize::MIN.saturating_add(1))
                    // Retries of a command come quickly: a failover takes seconds, and the
                    // crate's default backoff grows to minutes.
                    .min_retry_wait(100)
                    .max_retry_wait(1_000)
                    .build()?;
                Ok(Self::Cluster(LazyCluster(Arc::new(ClusterSlot {
                    client,
                    current: Mutex::new(Current::default()),
                }))))
            }
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(lazy) => Box::pin(async move {
                lazy.run(async |conn| conn.req_packed_command(cmd).await)
                    .await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(lazy) => Box::pin(async move {
                lazy.run(async |conn| conn.req_packed_commands(pipeline, offset, count).await)
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(_) => 0,
        }
    }
}
