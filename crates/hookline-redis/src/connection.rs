//! One connection type for a single Redis, for Redis Cluster and for a Sentinel-managed
//! primary, so every store operation is written once.
//!
//! All are multiplexed. A single Redis reconnects by itself (`ConnectionManager`). The
//! cluster and Sentinel connections are opened on first use, so a deployment that is down at
//! start-up fails calls, not start-up, and are opened afresh after they stop answering
//! ([`Reopening`]).

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};
use tokio::sync::Mutex;

/// A connection to a single Redis, a Redis Cluster or a Sentinel-managed primary. Cheap to
/// clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(Reopening<ClusterConnection>),
    Sentinel(Reopening<MultiplexedConnection>),
}

/// Where the store connects.
pub(crate) enum Topology<'a> {
    Single(&'a str),
    /// Seed node URLs; the rest of the cluster is discovered from them.
    Cluster(&'a [String]),
    /// Sentinel URLs and the name of the primary they watch.
    Sentinel {
        sentinels: &'a [String],
        primary: &'a str,
    },
}

type Opening<C> = Pin<Box<dyn Future<Output = RedisResult<C>> + Send>>;
type Opener<C> = Box<dyn Fn() -> Opening<C> + Send + Sync>;

/// A connection opened by the first command that needs it, and opened afresh after a failure
/// that a new view of the deployment may cure. Clones share it.
///
/// Why reopen: when a cluster primary dies, redis-rs refreshes its slot map at once, while the
/// other nodes still name the dead primary; the replica is promoted seconds later and the
/// crate does not look again, so commands for those slots time out for good. Under Sentinel
/// a connection stays bound to the node that was primary, which after a failover refuses
/// writes (`READONLY`) or is gone. A new connection asks the seeds or the sentinels again.
#[derive(Clone)]
pub(crate) struct Reopening<C>(Arc<ReopenSlot<C>>);

struct ReopenSlot<C> {
    what: &'static str,
    open: Opener<C>,
    current: Mutex<Current<C>>,
}

struct Current<C> {
    connection: Option<C>,
    /// Counts connections opened, so a failure only discards the one it happened on.
    generation: u64,
    opened_at: Option<Instant>,
}

/// A connection is kept at least this long before a failure may replace it, so a deployment
/// that is down is not hammered with reconnects.
const REOPEN_AFTER: Duration = Duration::from_millis(500);

impl<C: ConnectionLike + Clone + Send> Reopening<C> {
    fn new(what: &'static str, open: Opener<C>) -> Self {
        Self(Arc::new(ReopenSlot {
            what,
            open,
            current: Mutex::new(Current {
                connection: None,
                generation: 0,
                opened_at: None,
            }),
        }))
    }

    async fn get(&self) -> RedisResult<(u64, C)> {
        let mut current = self.0.current.lock().await;
        if let Some(connection) = &current.connection {
            return Ok((current.generation, connection.clone()));
        }
        let connection = (self.0.open)().await?;
        current.generation += 1;
        current.connection = Some(connection.clone());
        current.opened_at = Some(Instant::now());
        Ok((current.generation, connection))
    }

    /// Drops connection `generation` after a failure that a new connection may cure.
    async fn failed(&self, generation: u64, error: &RedisError) {
        let cured_by_reopening = error.is_timeout()
            || error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_cluster_error()
            || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly);
        if !cured_by_reopening {
            return;
        }
        let mut current = self.0.current.lock().await;
        let old_enough = current
            .opened_at
            .is_none_or(|at| at.elapsed() >= REOPEN_AFTER);
        if current.generation == generation && old_enough {
            tracing::warn!(%error, what = self.0.what, "redis: reopening the connection");
            current.connection = None;
        }
    }

    async fn run<T>(&self, request: impl AsyncFnOnce(&mut C) -> RedisResult<T>) -> RedisResult<T> {
        let (generation, mut connection) = self.get().await?;
        let result = request(&mut connection).await;
        if let Err(error) = &result {
            self.failed(generation, error).await;
        }
        result
    }
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
                    // A node that refuses connections is dropped after two tries instead of
                    // being reconnected to forever.
                    .max_connection_attempts(NonZeroUsize::MIN.saturating_add(1))
                    // Retries of a command come quickly: a failover takes seconds, and the
                    // crate's default backoff grows to minutes.
                    .min_retry_wait(100)
                    .max_retry_wait(1_000)
                    .build()?;
                let open: Opener<ClusterConnection> = Box::new(move || {
                    let client = client.clone();
                    Box::pin(async move { client.get_async_connection().await })
                });
                Ok(Self::Cluster(Reopening::new("cluster", open)))
            }
            Topology::Sentinel { sentinels, primary } => {
                let client = SentinelClient::build(
                    sentinels.to_vec(),
                    primary,
                    None,
                    SentinelServerType::Master,
                )?;
                let client = Arc::new(Mutex::new(client));
                let config = AsyncConnectionConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(connection_timeout));
                let open: Opener<MultiplexedConnection> = Box::new(move || {
                    let (client, config) = (Arc::clone(&client), config.clone());
                    Box::pin(async move {
                        // Asks the sentinels which node is the primary now.
                        client
                            .lock()
                            .await
                            .get_async_connection_with_config(&config)
                            .await
                    })
                });
                Ok(Self::Sentinel(Reopening::new("sentinel", open)))
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
            Self::Cluster(lazy) => {
                Box::pin(async move { lazy.run(async |c| c.req_packed_command(cmd).await).await })
            }
            Self::Sentinel(lazy) => {
                Box::pin(async move { lazy.run(async |c| c.req_packed_command(cmd).await).await })
            }
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
                lazy.run(async |c| c.req_packed_commands(pipeline, offset, count).await)
                    .await
            }),
            Self::Sentinel(lazy) => Box::pin(async move {
                lazy.run(async |c| c.req_packed_commands(pipeline, offset, count).await)
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(_) | Self::Sentinel(_) => 0,
        }
    }
}
