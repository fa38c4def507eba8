//! The Hookline under test: the bench's own (each role a separate process of this binary, on
//! the local RabbitMQ and Redis, under a fresh prefix; or one embedded `serve` process) or
//! any Svix-compatible server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hookline_postgres::{PgConfig, PgLog};
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
    #[error("the delivery log on PostgreSQL: {0}")]
    Postgres(#[from] hookline_postgres::PgError),
}

pub struct Deployment {
    pub api: ApiClient,
    pub api_url: String,
    /// Each spawned role and its process; empty for an external server.
    pub roles: Vec<(&'static str, Child)>,
    /// Where a spawned deployment keeps its state.
    pub engine: Engine,
    /// The delivery log on PostgreSQL, when the bench's own roles keep it there (its own
    /// schema, dropped at tear-down).
    pub log: Option<PgLog>,
    /// How to start the roles again; `None` for an external server.
    launch: Option<Launch>,
}

/// The engines of a spawned deployment.
#[derive(Debug, Clone)]
pub enum Engine {
    /// RabbitMQ and Redis, under this Redis key prefix.
    RabbitRedis { redis_prefix: String },
    /// One `serve` process on its embedded database in this data dir.
    Embedded { data_dir: PathBuf },
    /// Someone else's server: the bench knows nothing of its engines.
    External,
}

/// What the bench connects its own deployment to.
#[derive(Debug, Clone)]
pub struct Services {
    pub amqp_url: String,
    pub redis_url: String,
    /// Keep the roles' delivery log on this PostgreSQL (`None`: in Redis).
    pub postgres_url: Option<String>,
}

/// How long the bench's own statements on the log may take (fixtures are loaded with COPY
/// and vacuumed, which the roles' 5 s would cut short).
const BENCH_STATEMENT_TIMEOUT: Duration = Duration::from_secs(3_600);

/// The log's schema for a bench prefix: lower-case letters, digits and `_` only.
pub fn schema_for(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .collect()
}

/// Connects the bench to the log in `schema` and applies the migrations, so the schema
/// exists before any role starts.
async fn prepare_log(url: &str, schema: &str) -> Result<PgLog, TargetError> {
    let mut config = PgConfig::new(url.into());
    config.schema = schema.to_owned();
    config.pool_size = 4;
    config.statement_timeout = BENCH_STATEMENT_TIMEOUT;
    let log = PgLog::connect(&config)?;
    log.migrate().await?;
    Ok(log)
}

pub const ROLES: [&str; 3] = ["ingest", "dispatcher", "scheduler"];

struct Launch {
    exe: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    roles: &'static [&'static str],
}

impl Deployment {
    /// Starts ingest, dispatcher and scheduler as three processes of `exe` on RabbitMQ and
    /// Redis, or, `embedded`, one `serve` process on a fresh data dir under `logs`.
    pub async fn spawn(
        exe: &Path,
        services: &Services,
        logs: &Path,
        extra_env: &[(String, String)],
        embedded: bool,
    ) -> Result<Self, TargetError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let prefix = format!("bench-{}", std::process::id());
        let token = format!("bench-admin-{}", rand::random::<u64>());
        let api_url = format!("http://127.0.0.1:{port}");
        std::fs::create_dir_all(logs)?;
        let common = [
            ("HOOKLINE__AUTH__ADMIN_TOKENS", token.clone()),
            ("HOOKLINE__API__LISTEN", format!("127.0.0.1:{port}")),
            ("HOOKLINE__API__PUBLIC_URL", api_url.clone()),
            ("HOOKLINE__OPS__LISTEN", "127.0.0.1:0".into()),
            ("HOOKLINE__DELIVERY__ALLOWED_SUBNETS", "127.0.0.0/8".into()),
            ("HOOKLINE__LOG__FILTER", "warn,lapin=error".into()),
        ];
        let (engine, engine_env, roles): (Engine, Vec<(&str, String)>, &'static [&'static str]) =
            if embedded {
                let data_dir = logs.join("embedded-data");
                // A fresh database each run, so earlier runs' messages do not weigh on this one.
                if data_dir.exists() {
                    std::fs::remove_dir_all(&data_dir)?;
                }
                let env = vec![("HOOKLINE__DATA_DIR", data_dir.display().to_string())];
                (Engine::Embedded { data_dir }, env, &["serve"])
            } else {
                let mut env = vec![
                    ("HOOKLINE__RABBITMQ__URL", services.amqp_url.clone()),
                    ("HOOKLINE__RABBITMQ__PREFIX", prefix.clone()),
                    ("HOOKLINE__RABBITMQ__QUEUE_EXPIRES_MS", "60000".into()),
                    ("HOOKLINE__REDIS__URL", services.redis_url.clone()),
                    ("HOOKLINE__REDIS__PREFIX", format!("{prefix}:")),
                ];
                if let Some(url) = &services.postgres_url {
                    env.extend(log_env(url, &schema_for(&prefix)));
                }
                let engine = Engine::RabbitRedis {
                    redis_prefix: format!("{prefix}:"),
                };
                (engine, env, &ROLES)
            };
        let log = match (&services.postgres_url, embedded) {
            (Some(url), false) => Some(prepare_log(url, &schema_for(&prefix)).await?),
            _ => None,
        };
        let env: Vec<(String, String)> = common
            .into_iter()
            .chain(engine_env)
            .map(|(k, v)| (k.to_owned(), v))
            .chain(extra_env.iter().cloned())
            .collect();
        let mut deployment = Self {
            api: ApiClient::new(&api_url, &token)?,
            api_url,
            roles: Vec::new(),
            engine,
            log,
            launch: Some(Launch {
                exe: exe.to_owned(),
                env,
                logs: logs.to_owned(),
                roles,
            }),
        };
        if let Err(error) = deployment.start_roles().await {
            if let Some(log) = &deployment.log {
                let _ = log.drop_schema().await;
            }
            return Err(error);
        }
        Ok(deployment)
    }

    /// Starts the roles (again) and waits until the API answers.
    pub async fn start_roles(&mut self) -> Result<(), TargetError> {
        let Some(launch) = &self.launch else {
            return Ok(());
        };
        for &role in launch.roles {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(launch.logs.join(format!("{role}.log")))?;
            let child = Command::new(&launch.exe)
                .arg(role)
                .env_remove("HOOKLINE_CONFIG")
                .envs(launch.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| TargetError::Spawn { role, source })?;
            self.roles.push((role, child));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.api.health().await {
            if tokio::time::Instant::now() > deadline {
                return Err(TargetError::NotReady(
                    self.api_url.clone(),
                    launch.logs.display().to_string(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Stops the roles with SIGTERM and waits for them to exit (an embedded `serve` then
    /// lets go of its database).
    pub async fn stop_roles(&mut self) {
        for (_, child) in &mut self.roles {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = child.wait().await;
        }
        self.roles.clear();
    }

    /// Any Svix-compatible server.
    pub fn external(url: &str, token: &str) -> Result<Self, TargetError> {
        Ok(Self {
            api: ApiClient::new(url, token)?,
            api_url: url.to_owned(),
            roles: Vec::new(),
            engine: Engine::External,
            log: None,
            launch: None,
        })
    }

    /// The processes whose CPU time a scenario records: the bench, each spawned role, and the
    /// broker and Redis of `services` when they run on this machine.
    pub fn cpu_watch(&self, services: &Services) -> crate::cpu::Watched {
        let roles: Vec<_> = self
            .roles
            .iter()
            .map(|(role, child)| (*role, child.id()))
            .collect();
        let ports = [
            ("rabbitmq", crate::cpu::port_of(&services.amqp_url, 5672)),
            ("redis", crate::cpu::port_of(&services.redis_url, 6379)),
        ];
        crate::cpu::Watched::new(&roles, &ports)
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

    /// Stops the roles and removes the deployment's Redis keys or embedded data dir, and
    /// the log's schema unless `keep_log_schema`.
    pub async fn tear_down(mut self, redis_url: &str, keep_log_schema: bool) {
        for (_, child) in &mut self.roles {
            let _ = child.kill().await;
        }
        match &self.engine {
            Engine::RabbitRedis { redis_prefix } => {
                let _ = delete_keys(redis_url, redis_prefix).await;
            }
            Engine::Embedded { data_dir } => {
                let _ = std::fs::remove_dir_all(data_dir);
            }
            Engine::External => {}
        }
        if let Some(log) = &self.log {
            if keep_log_schema {
                eprintln!(
                    "the log's schema {} is left in place: DROP SCHEMA {} CASCADE when done",
                    log.schema(),
                    log.schema()
                );
            } else if let Err(error) = log.drop_schema().await {
                eprintln!(
                    "could not drop the bench's schema {}: {error}",
                    log.schema()
                );
            }
        }
    }
}

/// The roles' settings for a log on PostgreSQL in `schema`. Their upkeep runs once at start
/// (partitions ahead) and then daily, so it never drops a day the bench is about to time
/// dropping itself (scenario 8).
fn log_env(url: &str, schema: &str) -> [(&'static str, String); 4] {
    [
        ("HOOKLINE__POSTGRES__URL", url.to_owned()),
        ("HOOKLINE__POSTGRES__SCHEMA", schema.to_owned()),
        ("HOOKLINE__POSTGRES__MIGRATE_ON_START", "true".into()),
        ("HOOKLINE__POSTGRES__UPKEEP_INTERVAL_MS", "86400000".into()),
    ]
}

async fn delete_keys(redis_url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys) = crate::redis_stats::scan_page(&mut conn, prefix, cursor).await?;
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
