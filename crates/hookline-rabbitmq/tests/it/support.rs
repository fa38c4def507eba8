//! Helpers shared by the integration tests: per-test topology, tasks, bounded waits, a raw
//! AMQP channel, and a private RabbitMQ node for outage tests.

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use hookline_core::model::{DeliveryTask, TriggerType};
use hookline_core::ports::{ReceivedTask, TaskSource};
use hookline_rabbitmq::{RabbitBroker, RabbitConfig, RabbitTaskSource};
use lapin::{Connection, ConnectionProperties};
use serde_json::value::RawValue;
use tokio::time::Instant;

/// The RabbitMQ every developer machine and CI runs.
pub const SHARED_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A config with a unique prefix, so tests never see each other's queues. `x-expires`
/// removes the queues even if a failing test skips its teardown.
pub fn test_config(url: &str) -> RabbitConfig {
    RabbitConfig {
        urls: vec![url.to_owned()],
        prefix: format!("hltest-{:016x}", rand::random::<u64>()),
        queue_expires: Some(Duration::from_secs(300)),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        ..RabbitConfig::default()
    }
}

/// Sends the adapter's events to the test output when `RUST_LOG` asks for them.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts a broker and waits until it is connected.
pub async fn start_ready(config: RabbitConfig) -> RabbitBroker {
    init_tracing();
    let broker = RabbitBroker::start(config);
    assert!(
        broker.wait_ready(Duration::from_secs(30)).await,
        "broker did not become ready"
    );
    broker
}

/// Deletes the test's topology and stops the broker.
pub async fn teardown(broker: &RabbitBroker) {
    broker
        .delete_topology()
        .await
        .expect("deleting the test topology");
    broker.shutdown().await;
}

/// The fast-lane queue that `app_id`'s tasks go to while it is within its share.
pub fn fast_queue(broker: &RabbitBroker, app_id: &str) -> String {
    let names = broker.names();
    let shard = hookline_core::fair::shard_of(app_id, names.shards());
    names
        .route(hookline_core::fair::Lane::Fast, shard)
        .name
        .clone()
}

/// A task whose message id encodes `n`.
pub fn task(n: usize) -> DeliveryTask {
    task_with_payload(n, "{\"n\":1}")
}

/// A task carrying `payload` (JSON text) inline.
pub fn task_with_payload(n: usize, payload: &str) -> DeliveryTask {
    DeliveryTask {
        msg_id: format!("msg_{n}"),
        app_id: "app_test".into(),
        endpoint_id: "ep_test".into(),
        attempt: 1,
        trigger: TriggerType::Scheduled,
        event_type: String::new(),
        payload: Some(RawValue::from_string(payload.to_owned()).expect("valid JSON")),
        traceparent: None,
        rate_slot: false,
        app_slot: false,
        held_since_ms: None,
        endpoint_version: None,
        queued_at_ms: None,
        in_line: false,
    }
}

/// The `n` a [`task`] was made from.
pub fn number_of(task: &DeliveryTask) -> usize {
    task.msg_id
        .trim_start_matches("msg_")
        .parse()
        .expect("test message id")
}

/// The next task, or `None` if none arrives within `limit`.
pub async fn next_within(source: &mut RabbitTaskSource, limit: Duration) -> Option<ReceivedTask> {
    tokio::time::timeout(limit, source.next())
        .await
        .ok()
        .flatten()
}

/// Polls `check` until it holds, failing the test after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain lapin connection and channel, to do what the adapter deliberately cannot.
pub async fn raw_channel(url: &str) -> (Connection, lapin::Channel) {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let connection = Connection::connect(url, properties)
        .await
        .expect("raw connection");
    let channel = connection.create_channel().await.expect("raw channel");
    (connection, channel)
}

/// A RabbitMQ node of the test's own, so outage tests never disturb the shared one.
///
/// Uses `scripts/rabbitmq-node` when the repository has it, else starts the node directly.
pub struct PrivateNode {
    name: String,
    port: u16,
    dir: PathBuf,
    script: Option<PathBuf>,
}

impl PrivateNode {
    /// Starts a node and waits until it accepts AMQP connections.
    pub fn start(name: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("hookline-rabbitmq-{name}-{port}"));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rabbitmq-node");
        let node = Self {
            name: name.to_owned(),
            port,
            dir,
            script: script.is_file().then_some(script),
        };
        match &node.script {
            Some(script) => run(Command::new(script).args(["start", name, &port.to_string()])),
            None => node.start_directly(),
        }
        node.await_amqp();
        node
    }

    /// The node's AMQP URL.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the RabbitMQ application (closing every client connection); the node stays up.
    pub fn stop_app(&self) {
        self.control("stop_app");
    }

    /// Starts the RabbitMQ application again and waits until it accepts connections.
    pub fn start_app(&self) {
        self.control("start_app");
        self.await_amqp();
    }

    fn control(&self, action: &str) {
        match &self.script {
            Some(script) => run(Command::new(script).args([action, &self.name])),
            None => run(Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl").args([
                "-n",
                &self.node_name(),
                action,
            ])),
        }
    }

    fn node_name(&self) -> String {
        format!("{}@localhost", self.name)
    }

    fn start_directly(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(self.dir.join("mnesia")).expect("node dir");
        std::fs::create_dir_all(self.dir.join("log")).expect("node log dir");
        let conf = self.dir.join("rabbitmq.conf");
        std::fs::write(
            &conf,
            format!("listeners.tcp.local = 127.0.0.1:{}\n", self.port),
        )
        .expect("node config");
        let plugins = self.dir.join("enabled_plugins");
        std::fs::write(&plugins, "[].\n").expect("node plugins");
        let env_file = self.dir.join("rabbitmq-env.conf");
        std::fs::write(&env_file, "").expect("node env file");
        let dist_port = free_port();
        run(Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .arg("-detached")
            .current_dir(&self.dir)
            .env("RABBITMQ_NODENAME", self.node_name())
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", &conf)
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_CONF_ENV_FILE", &env_file)
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            ));
    }

    fn await_amqp(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "node {} did not listen on {}",
                self.name,
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        let stopped = match &self.script {
            Some(script) => Command::new(script).args(["stop", &self.name]).output(),
            None => Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
                .args(["-n", &self.node_name(), "stop"])
                .output(),
        };
        if !matches!(stopped, Ok(output) if output.status.success()) {
            eprintln!("could not stop private node {}", self.name);
        }
        if self.script.is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `rabbitmqctl` for the shared node (Debian's wrapper runs it as the `rabbitmq` user).
pub fn rabbitmqctl() -> &'static str {
    const DEBIAN: &str = "/usr/sbin/rabbitmqctl";
    if std::path::Path::new(DEBIAN).is_file() {
        DEBIAN
    } else {
        "rabbitmqctl"
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn run(command: &mut Command) {
    let output = command.output().expect("running a RabbitMQ command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
