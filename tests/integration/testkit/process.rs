//! One Hookline deployment per test: its own RabbitMQ names and Redis prefix, and the
//! `hookline` binary run as real processes that a test can `kill -9`.

use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::api::Api;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// What a process started by [`Stack::start_capturing_logs`] has written to stderr so far.
#[derive(Clone)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<String>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The text, once checked to hold the dispatcher's debug-level line for each attempt: a
    /// test that looks for secrets in it must not be looking at a quieter log.
    pub fn at_debug_level(&self) -> String {
        let text = self.text();
        assert!(
            text.contains("attempt recorded"),
            "debug logs were captured: {text}"
        );
        text
    }
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

pub fn amqp_url() -> String {
    std::env::var("HOOKLINE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("HOOKLINE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The PostgreSQL database that holds the delivery logs of RabbitMQ + Redis test
/// deployments, one schema each (`scripts/services` creates it).
pub fn postgres_url() -> String {
    std::env::var("HOOKLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/hookline".into())
}

/// A PostgreSQL schema name for a test's unique prefix.
pub fn schema_for(prefix: &str) -> String {
    let mut schema: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    schema.truncate(63);
    schema
}

/// The 3-node RabbitMQ cluster `scripts/test` starts (`scripts/clusters`), comma-separated.
pub fn cluster_amqp_urls() -> String {
    std::env::var("HOOKLINE_TEST_CLUSTER_AMQP_URLS").unwrap_or_else(|_| {
        (5701..=5703)
            .map(|port| format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The seed nodes of the 6-node Redis Cluster `scripts/test` starts, comma-separated.
pub fn cluster_redis_urls() -> String {
    std::env::var("HOOKLINE_TEST_CLUSTER_REDIS_URLS").unwrap_or_else(|_| {
        (7101..=7106)
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The engines a deployment runs on. The conformance tests run on each (see
/// [`super::backends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// RabbitMQ and Redis on 127.0.0.1, under the test's own names.
    RabbitRedis,
    /// No broker, no Redis: `hookline serve` on its embedded database in a temp dir.
    Embedded,
    /// A 3-node RabbitMQ cluster and a 6-node Redis Cluster on loopback.
    Clusters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Serve,
    Ingest,
    Dispatcher,
    Scheduler,
}

impl Role {
    fn arg(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Ingest => "ingest",
            Self::Dispatcher => "dispatcher",
            Self::Scheduler => "scheduler",
        }
    }

    /// The stdout line the role prints once it runs.
    fn ready_line(self) -> &'static str {
        match self {
            Self::Serve | Self::Ingest => "hookline: ingest listening on ",
            Self::Dispatcher => "hookline: dispatcher consuming",
            Self::Scheduler => "hookline: scheduler running",
        }
    }
}

/// A running `hookline` process, killed when dropped.
pub struct Process {
    pub child: Child,
    /// The API's base URL for roles that serve it.
    pub api_url: Option<String>,
    ops_url: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// Everything the process printed on stdout so far.
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Process {
    /// The base URL of the process's ops port (`/healthz`, `/readyz`, `/metrics`).
    pub async fn ops_url(&self) -> String {
        let slot = std::sync::Arc::clone(&self.ops_url);
        super::eventually("the ops port", Duration::from_secs(10), || {
            let slot = std::sync::Arc::clone(&slot);
            async move {
                slot.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            }
        })
        .await
    }

    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether this process holds the TCP connection from local port `from` to port `to`
    /// (Linux: the socket's inode in `/proc/net/tcp`, then the process's fds).
    pub fn holds_connection(&self, from: u16, to: u16) -> bool {
        let Some(pid) = self.child.id() else {
            return false;
        };
        let Some(inode) = socket_inode(from, to) else {
            return false;
        };
        let wanted = format!("socket:[{inode}]");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to.to_string_lossy() == wanted))
    }

    /// `kill -9`: no chance to ack, requeue or clean up anything.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reap");
    }
}

/// The inode of the IPv4 TCP socket from local port `from` to remote port `to` (one
/// ephemeral port may serve connections to several destinations).
fn socket_inode(from: u16, to: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (local, remote) = (format!(":{from:04X}"), format!(":{to:04X}"));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let ours = fields.get(1).is_some_and(|addr| addr.ends_with(&local))
            && fields.get(2).is_some_and(|addr| addr.ends_with(&remote));
        ours.then(|| fields.get(9).map(|inode| (*inode).to_owned()))
            .flatten()
    })
}

/// The settings shared by every process of one test's deployment.
pub struct Stack {
    pub prefix: String,
    pub backend: Backend,
    env: Vec<(String, String)>,
    /// Embedded mode's data dir, removed with the stack.
    data_dir: Option<tempfile::TempDir>,
}

impl Stack {
    /// A deployment on RabbitMQ and Redis with a fresh prefix; `name` shows up in queue
    /// names and keys.
    pub fn new(name: &str) -> Self {
        Self::on(Backend::RabbitRedis, name)
    }

    /// A deployment on `backend`. An embedded one runs only [`Role::Serve`].
    pub fn on(backend: Backend, name: &str) -> Self {
        let unique = format!(
            "t{}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed),
            name
        );
        let env = [
            ("HOOKLINE__AUTH__ADMIN_TOKENS", TOKEN.to_owned()),
            ("HOOKLINE__RABBITMQ__URL", amqp_url()),
            ("HOOKLINE__RABBITMQ__PREFIX", unique.clone()),
            // Throw-away queues vanish a minute after the test stops using them.
            ("HOOKLINE__RABBITMQ__QUEUE_EXPIRES_MS", "60000".to_owned()),
            ("HOOKLINE__REDIS__URL", redis_url()),
            ("HOOKLINE__REDIS__PREFIX", format!("{unique}:")),
            ("HOOKLINE__API__LISTEN", "127.0.0.1:0".to_owned()),
            ("HOOKLINE__OPS__LISTEN", "127.0.0.1:0".to_owned()),
            ("HOOKLINE__DELIVERY__TIMEOUT_MS", "5000".to_owned()),
            // Test receivers live on loopback, which the SSRF policy refuses by default.
            (
                "HOOKLINE__DELIVERY__ALLOWED_SUBNETS",
                "127.0.0.0/8,::1/128".to_owned(),
            ),
            ("HOOKLINE__SHUTDOWN__GRACE_MS", "2000".to_owned()),
            ("HOOKLINE__LOG__FILTER", "warn,lapin=error".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut stack = Self {
            prefix: unique,
            backend,
            env,
            data_dir: None,
        };
        if backend == Backend::RabbitRedis {
            // The single-node deployment keeps its log on PostgreSQL (the clusters keep theirs
            // in Redis, so both places are tested).
            stack.set("HOOKLINE__POSTGRES__URL", &postgres_url());
            stack.set("HOOKLINE__POSTGRES__SCHEMA", &schema_for(&stack.prefix));
            stack.set("HOOKLINE__POSTGRES__MIGRATE_ON_START", "true");
        }
        if backend == Backend::Clusters {
            stack.set("HOOKLINE__RABBITMQ__URL", &cluster_amqp_urls());
            stack.set("HOOKLINE__REDIS__URL", &cluster_redis_urls());
            stack.set("HOOKLINE__REDIS__CLUSTER", "true");
        }
        if backend == Backend::Embedded {
            let dir = tempfile::Builder::new()
                .prefix(&format!("hookline-{}-", stack.prefix))
                .tempdir()
                .expect("a temp data dir");
            stack.env.retain(|(k, _)| {
                !k.starts_with("HOOKLINE__RABBITMQ__") && !k.starts_with("HOOKLINE__REDIS__")
            });
            stack.set("HOOKLINE__DATA_DIR", &dir.path().display().to_string());
            stack.data_dir = Some(dir);
        }
        stack
    }

    /// The embedded data dir (`None` on RabbitMQ and Redis).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_ref().map(tempfile::TempDir::path)
    }

    /// Sets (or overrides) one `HOOKLINE__…` variable for processes started from now on.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.set(key, value);
        self
    }

    /// Leaves `key` unset for processes started from now on.
    pub fn without(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// The value `key` has for processes started from now on.
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// Whether this deployment keeps its delivery log on PostgreSQL.
    pub fn logs_to_postgres(&self) -> bool {
        self.env_value("HOOKLINE__POSTGRES__URL").is_some()
    }

    pub fn redis_prefix(&self) -> String {
        format!("{}:", self.prefix)
    }

    /// Starts `role` and waits until it says it runs.
    pub async fn start(&self, role: Role) -> Process {
        self.start_with(role, &[]).await
    }

    /// Starts `role` with its stderr (the logs) collected into the returned buffer.
    pub async fn start_capturing_logs(
        &self,
        role: Role,
        extra: &[(&str, &str)],
    ) -> (Process, CapturedLogs) {
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let process = self
            .spawn(role, extra, Some(std::sync::Arc::clone(&logs)))
            .await;
        (process, CapturedLogs(logs))
    }

    /// Starts `role` with extra variables for this process only.
    pub async fn start_with(&self, role: Role, extra: &[(&str, &str)]) -> Process {
        self.spawn(role, extra, None).await
    }

    /// Starts `role` and returns as soon as it listens, without waiting for `/readyz`
    /// (its broker connection may still be opening).
    pub async fn start_listening(&self, role: Role) -> Process {
        self.spawn_and_wait(role, &[], None, false).await
    }

    async fn spawn(
        &self,
        role: Role,
        extra: &[(&str, &str)],
        logs: Option<std::sync::Arc<std::sync::Mutex<String>>>,
    ) -> Process {
        self.spawn_and_wait(role, extra, logs, true).await
    }

    async fn spawn_and_wait(
        &self,
        role: Role,
        extra: &[(&str, &str)],
        logs: Option<std::sync::Arc<std::sync::Mutex<String>>>,
        wait_ready: bool,
    ) -> Process {
        assert!(
            self.backend != Backend::Embedded || role == Role::Serve,
            "an embedded deployment runs only `serve`"
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookline"));
        command
            .arg(role.arg())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if logs.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true);
        let mut child = command.spawn().expect("spawn hookline");
        if let (Some(logs), Some(stderr)) = (logs, child.stderr.take()) {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut logs = logs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let wanted = role.ready_line();
        let ops_url = std::sync::Arc::new(std::sync::Mutex::new(None));
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let remember = {
            let ops_url = std::sync::Arc::clone(&ops_url);
            let stdout = std::sync::Arc::clone(&stdout);
            move |line: &str| {
                let mut printed = stdout
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                printed.push_str(line);
                printed.push('\n');
                if let Some(url) = line.strip_prefix("hookline: ops listening on ") {
                    *ops_url
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(url.to_owned());
                }
            }
        };
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                remember(&line);
                if let Some(rest) = line.strip_prefix(wanted) {
                    return Some(rest.to_owned());
                }
            }
            None
        })
        .await;
        let rest = match found {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!("hookline {} exited before it was ready", role.arg()),
            Err(_) => panic!("hookline {} not ready within 30 s", role.arg()),
        };
        // Keep draining stdout so the child never blocks on a full pipe (and catch the ops
        // line if it comes after the ready line).
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                remember(&line);
            }
        });
        let api_url = matches!(role, Role::Serve | Role::Ingest).then_some(rest);
        if let Some(url) = api_url.as_ref().filter(|_| wait_ready) {
            // Listening comes before the broker connection; wait until the API can accept.
            let readyz = format!("{url}/readyz");
            super::eventually("the API to be ready", Duration::from_secs(30), || async {
                let response = reqwest::get(&readyz).await.ok()?;
                response.status().is_success().then_some(())
            })
            .await;
        }
        Process {
            child,
            api_url,
            ops_url,
            stdout,
        }
    }

    pub fn api(&self, process: &Process) -> Api {
        Api::new(process.api_url.as_deref().expect("an API role"), TOKEN)
    }

    /// A direct handle on this deployment's Redis keys, for checks the API does not expose.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis_url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    pub fn keys(&self) -> hookline_redis::Keys {
        hookline_redis::Keys::new(&self.redis_prefix())
    }
}

impl Drop for Stack {
    /// Removes the deployment's Redis keys; its queues expire on their own.
    fn drop(&mut self) {
        if self.env.iter().any(|(k, _)| k == "HOOKLINE__POSTGRES__URL") {
            let url = self
                .env_value("HOOKLINE__POSTGRES__URL")
                .unwrap_or_default();
            let schema = self
                .env_value("HOOKLINE__POSTGRES__SCHEMA")
                .unwrap_or_default();
            let _ = std::process::Command::new("psql")
                .args(["-q", "-d", &url, "-c"])
                .arg(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let urls = match self.backend {
            Backend::Embedded => return,
            Backend::RabbitRedis => redis_url(),
            // Each node holds the keys of its own slots; a replica refuses the DEL, its
            // primary (also in the list) takes it.
            Backend::Clusters => cluster_redis_urls(),
        };
        let pattern = format!("{}*", self.redis_prefix());
        for url in urls.split(',') {
            let Ok(client) = redis::Client::open(url) else {
                continue;
            };
            let Ok(mut conn) = client.get_connection() else {
                continue;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for key in keys {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key).query(&mut conn);
            }
        }
    }
}
