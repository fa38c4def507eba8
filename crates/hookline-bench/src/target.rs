//! The Hookline under test: the bench's own (each role a separate process of this binary, on
//! the local RabbitMQ and Redis, under a fresh prefix) or any Svix-compatible server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::client::ApiClient;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot start `{role}`: {source}")]
    Spawn {
        role: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the API at {0} did not answer /api/v1/health within 30 s (role logs: {1})")]
    NotReady(String, String),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Deployment {
    pub api: ApiClient,
    pub api_url: String,
    /// Each spawned role and its process; empty for an external server.
    pub roles: Vec<(&'static str, Child)>,
    /// Redis key prefix of a spawned deployment.
    pub redis_prefix: Option<String>,
}

/// What the bench connects its own deployment to.
#[derive(Debug, Clone)]
pub struct Services {
    pub amqp_url: String,
    pub redis_url: String,
}

pub const ROLES: [&str; 3] = ["ingest", "dispatcher", "scheduler"];

impl Deployment {
    /// Starts ingest, dispatcher and scheduler as three processes of `exe`.
    pub async fn spawn(
        exe: &Path,
        services: &Services,
        logs: &Path,
        extra_env: &[(String, String)],
    ) -> Result<Self, TargetError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let prefix = format!("bench-{}", std::process::id());
        let token = format!("bench-admin-{}", rand::random::<u64>());
        let api_url = format!("http://127.0.0.1:{port}");
        std::fs::create_dir_all(logs)?;
        let env: Vec<(String, String)> = [
            ("HOOKLINE__AUTH__ADMIN_TOKENS", token.clone()),
            ("HOOKLINE__RABBITMQ__URL", services.amqp_url.clone()),
            ("HOOKLINE__RABBITMQ__PREFIX", prefix.clone()),
            ("HOOKLINE__RABBITMQ__QUEUE_EXPIRES_MS", "60000".into()),
            ("HOOKLINE__REDIS__URL", services.redis_url.clone()),
            ("HOOKLINE__REDIS__PREFIX", format!("{prefix}:")),
            ("HOOKLINE__API__LISTEN", format!("127.0.0.1:{port}")),
            ("HOOKLINE__API__PUBLIC_URL", api_url.clone()),
            ("HOOKLINE__OPS__LISTEN", "127.0.0.1:0".into()),
            ("HOOKLINE__DELIVERY__ALLOWED_SUBNETS", "127.0.0.0/8".into()),
            ("HOOKLINE__LOG__FILTER", "warn,lapin=error".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(extra_env.iter().cloned())
        .collect();
        let mut roles = Vec::new();
        for role in ROLES {
            let log = std::fs::File::create(logs.join(format!("{role}.log")))?;
            let child = Command::new(exe)
                .arg(role)
                .env_remove("HOOKLINE_CONFIG")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| TargetError::Spawn { role, source })?;
            roles.push((role, child));
        }
        let api = ApiClient::new(&api_url, &token)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !api.health().await {
            if tokio::time::Instant::now() > deadline {
                return Err(TargetError::NotReady(api_url, logs.display().to_string()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            api,
            api_url,
            roles,
            redis_prefix: Some(format!("{prefix}:")),
        })
    }

    /// Any Svix-compatible server.
    pub fn external(url: &str, token: &str) -> Result<Self, TargetError> {
        Ok(Self {
            api: ApiClient::new(url, token)?,
            api_url: url.to_owned(),
            roles: Vec::new(),
            redis_prefix: None,
        })
    }

    /// The processes whose CPU time a scenario records: the bench, each spawned role, and the
    /// local broker and Redis.
    pub fn cpu_watch(&self) -> crate::cpu::Watched {
        let roles: Vec<_> = self
            .roles
            .iter()
            .map(|(role, child)| (*role, child.id()))
            .collect();
        crate::cpu::Watched::new(&roles)
    }

    /// Peak resident memory of each spawned role so far, in MiB (Linux `VmHWM`).
    pub fn peak_rss_mib(&self) -> Vec<(&'static str, f64)> {
        self.roles
            .iter()
            .filter_map(|(role, child)| {
                let pid = child.id()?;
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let kib: f64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some((*role, kib / 1024.0))
            })
            .collect()
    }

    /// Stops the roles and removes the deployment's Redis keys.
    pub async fn tear_down(mut self, redis_url: &str) {
        for (_, child) in &mut self.roles {
            let _ = child.kill().await;
        }
        if let Some(prefix) = &self.redis_prefix {
            let _ = delete_keys(redis_url, prefix).await;
        }
    }
}

async fn delete_keys(redis_url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Where role logs go.
pub fn log_dir(out: &Path) -> PathBuf {
    out.join("roles")
}
