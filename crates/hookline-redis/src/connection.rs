//! One connection type for a single Redis (or a Sentinel-less primary) and for Redis Cluster,
//! so every store operation is written once.
//!
//! Both are multiplexed and reconnect by themselves. The cluster connection follows `MOVED`
//! and `ASK` and refreshes its slot map when the topology changes; it is opened on first use,
//! so a cluster that is down at start-up fails calls, not start-up, as a single Redis does.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// A connection to a single Redis or to a Redis Cluster. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(LazyCluster),
}

/// A cluster connection opened by the first command that needs it. Clones share it.
#[derive(Clone)]
pub(crate) struct LazyCluster(Arc<ClusterSlot>);

struct ClusterSlot {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
}

impl LazyCluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        self.0
            .connection
            .get_or_try_init(|| self.0.client.get_async_connection())
            .await
            .cloned()
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
                    .build()?;
                Ok(Self::Cluster(LazyCluster(Arc::new(ClusterSlot {
                    client,
                    connection: OnceCell::new(),
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
                let mut conn = lazy.get().await?;
                conn.req_packed_command(cmd).await
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
                let mut conn = lazy.get().await?;
                conn.req_packed_commands(pipeline, offset, count).await
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
