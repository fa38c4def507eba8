//! Must-show 7 and its Redis twin: with RabbitMQ (or Redis) stopped, message creation answers
//! 503 and stores nothing as accepted; once it is back, messages flow again without
//! restarting Hookline.
//!
//! Runs on a private RabbitMQ node (scripts/rabbitmq-node) so stopping it does not disturb
//! the tests sharing the main broker.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::testkit::{eventually, PrivateNode, Receiver, Reply, Role, Stack};

#[tokio::test]
async fn broker_outage_answers_503_and_recovers_without_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let node = PrivateNode::start(&format!("hlout{port}"), port);
    let stack = Stack::new("outage")
        .with(
            "HOOKLINE__RABBITMQ__URL",
            &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        )
        .with("HOOKLINE__RABBITMQ__PUBLISH_TIMEOUT_MS", "2000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("outage-app").await;
    let url = receiver.url("sink", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;
    let before = api
        .send(&app, "invoice.paid", json!({"phase": "before"}))
        .await;
    eventually(
        "delivery before the outage",
        Duration::from_secs(20),
        || async { (receiver.count("sink") == 1).then_some(()) },
    )
    .await;

    node.stop_app();
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "invoice.paid", "payload": {"phase": "during"}});
    let (status, error) = api
        .call(
            Method::POST,
            &path,
            Some(&body),
            &[("idempotency-key", "during-1")],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(
        error["code"].is_string() && error["detail"].is_string(),
        "{error}"
    );
    let listed = api.get(&path).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [before.as_str()],
        "nothing stored as accepted during the outage"
    );

    node.start_app();
    // The same idempotency key is free again: the failed request left no claim behind.
    let accepted = eventually(
        "message creation to succeed again",
        Duration::from_secs(60),
        || {
            let (api, path, body) = (api.clone(), path.clone(), body.clone());
            async move {
                let (status, answer) = api
                    .call(
                        Method::POST,
                        &path,
                        Some(&body),
                        &[("idempotency-key", "during-1")],
                    )
                    .await;
                (status == StatusCode::ACCEPTED).then_some(answer)
            }
        },
    )
    .await;
    let after = accepted["id"].as_str().expect("id").to_owned();
    eventually(
        "delivery after the outage",
        Duration::from_secs(30),
        || async {
            receiver
                .deliveries("sink")
                .iter()
                .any(|d| d.webhook_id() == after)
                .then_some(())
        },
    )
    .await;
}

/// A Redis server of the test's own, on a free port, killed when dropped. With `aof`, it
/// keeps an append-only file (fsync on every write) in its own directory, so a `kill -9`
/// and restart loses nothing it acknowledged.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
    aof_dir: Option<PathBuf>,
}

impl PrivateRedis {
    fn start() -> Self {
        Self::launch(false)
    }

    fn start_with_aof() -> Self {
        Self::launch(true)
    }

    fn launch(aof: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let aof_dir = aof.then(|| {
            let dir = std::env::temp_dir().join(format!("hookline-redis-aof-{port}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("aof dir");
            dir
        });
        let mut redis = Self {
            port,
            child: None,
            aof_dir,
        };
        redis.restart();
        redis
    }

    fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""]);
        match &self.aof_dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no", "--dir", "/tmp"]),
        };
        let child = command
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.aof_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// With Redis down, message creation answers 503; once it is back, messages flow again.
/// (The private Redis keeps nothing on disk, so the app is created again afterwards.)
#[tokio::test]
async fn redis_outage_answers_503_and_recovers_without_restart() {
    let mut redis = PrivateRedis::start();
    let stack = Stack::new("redisout").with("HOOKLINE__REDIS__URL", &redis.url());
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let url = receiver.url("sink", Reply::Always(200));
    let app = api.create_app("redis-outage-app").await;
    api.create_endpoint(&app, json!({"url": url})).await;

    redis.kill();
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "invoice.paid", "payload": {"phase": "during"}});
    let (status, error) = api.call(Method::POST, &path, Some(&body), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
    assert!(
        error["code"].is_string() && error["detail"].is_string(),
        "{error}"
    );
    let (status, _) = api.call(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness reports the outage"
    );

    redis.restart();
    let app = eventually(
        "the API to reach Redis again",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let (status, app) = api
                    .call(
                        Method::POST,
                        "/api/v1/app",
                        Some(&json!({"name": "again", "uid": "again"})),
                        &[],
                    )
                    .await;
                (status == StatusCode::CREATED)
                    .then(|| app["id"].as_str().unwrap_or_default().to_owned())
            }
        },
    )
    .await;
    api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api
        .send(&app, "invoice.paid", json!({"phase": "after"}))
        .await;
    eventually(
        "delivery after the outage",
        Duration::from_secs(30),
        || async {
            receiver
                .deliveries("sink")
                .iter()
                .any(|d| d.webhook_id() == msg)
                .then_some(())
        },
    )
    .await;
}

/// Sends a message until it is accepted, retrying 503s with the same idempotency key, the
/// way a careful producer does during an outage.
async fn send_until_accepted(api: &crate::testkit::Api, app: &str, n: usize) -> String {
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "order.created", "payload": {"n": n}});
    let key = format!("order-{n}");
    eventually(
        "the message to be accepted",
        Duration::from_secs(120),
        || {
            let (api, path, body, key) = (api.clone(), path.clone(), body.clone(), key.clone());
            async move {
                let (status, answer) = api
                    .call(
                        Method::POST,
                        &path,
                        Some(&body),
                        &[("idempotency-key", key.as_str())],
                    )
                    .await;
                (status == StatusCode::ACCEPTED)
                    .then(|| answer["id"].as_str().unwrap_or_default().to_owned())
            }
        },
    )
    .await
}

/// A 5,000-message run through a broker `stop_app`/`start_app` and a Redis `kill -9` and
/// restart (AOF on): every accepted message is delivered, no Hookline process restarted.
#[tokio::test]
async fn outage_broker_and_redis_restart_during_a_5000_message_run() {
    const MESSAGES: usize = 5_000;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let node = PrivateNode::start(&format!("hlrun{port}"), port);
    let mut redis = PrivateRedis::start_with_aof();
    let stack = Stack::new("restarts")
        .with(
            "HOOKLINE__RABBITMQ__URL",
            &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        )
        .with("HOOKLINE__REDIS__URL", &redis.url())
        .with("HOOKLINE__RABBITMQ__PUBLISH_TIMEOUT_MS", "2000")
        // Retries outlast the outages, and the breaker stays out of the way: this run is
        // about the pipeline surviving restarts, not about an unhealthy receiver.
        .with(
            "HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS",
            "200,1000,2000,5000",
        )
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "100000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("restarts-app").await;
    let codes: Vec<u16> = (0..MESSAGES)
        .map(|n| if n % 10 == 0 { 500 } else { 200 })
        .collect();
    let url = receiver.url("sink", Reply::Sequence(codes));
    api.create_endpoint(&app, json!({"url": url})).await;

    let mut sent = std::collections::HashSet::new();
    for batch in 0..MESSAGES / 50 {
        if batch == MESSAGES / 150 {
            // On a blocking thread: the receiver shares this test's runtime and must keep
            // answering while the broker restarts.
            let name = node.name.clone();
            tokio::task::spawn_blocking(move || PrivateNode::run(&["stop_app", &name]))
                .await
                .expect("stop_app");
            // Creation answers 503 while the broker is away...
            let (status, _) = api
                .call(
                    Method::POST,
                    &format!("/api/v1/app/{app}/msg"),
                    Some(&json!({"eventType": "x", "payload": {}})),
                    &[],
                )
                .await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            let name = node.name.clone();
            tokio::task::spawn_blocking(move || PrivateNode::run(&["start_app", &name]))
                .await
                .expect("start_app");
        }
        if batch == 2 * MESSAGES / 150 {
            redis.kill();
            redis.restart();
        }
        let sends = (0..50).map(|i| {
            let (api, app) = (api.clone(), app.clone());
            async move { send_until_accepted(&api, &app, batch * 50 + i).await }
        });
        sent.extend(futures::future::join_all(sends).await);
    }
    assert_eq!(sent.len(), MESSAGES);
    let waiting = std::time::Instant::now();
    loop {
        let ok: std::collections::HashSet<String> = receiver
            .completed("sink")
            .iter()
            .map(|d| d.webhook_id().to_owned())
            .collect();
        let missing: Vec<&String> = sent.iter().filter(|id| !ok.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            waiting.elapsed() < Duration::from_secs(150),
            "{} of {MESSAGES} accepted messages undelivered after 150 s, e.g. {:?}",
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{MESSAGES} messages through a broker stop/start and a Redis kill -9: {} requests",
        receiver.count("sink")
    );
    // The reconnect shows in the metrics.
    let metrics = format!("{}/metrics", hookline.ops_url().await);
    eventually(
        "the broker reconnect counted",
        Duration::from_secs(10),
        || async {
            let page = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
            page.lines()
                .any(|l| l.starts_with("hookline_broker_reconnects ") && !l.ends_with(" 0"))
                .then_some(())
        },
    )
    .await;
    drop(node);
}

/// Tasks that cannot be recorded while Redis is down stay with their dispatcher instead of
/// bouncing through the queue: with a delivery limit of 3, a longer outage would otherwise
/// dead-letter them. Once Redis is back, every message is delivered.
#[tokio::test]
async fn outage_of_redis_longer_than_the_delivery_limit_dead_letters_nothing() {
    const MESSAGES: usize = 20;
    let mut redis = PrivateRedis::start_with_aof();
    let stack = Stack::new("heldtasks")
        .with("HOOKLINE__REDIS__URL", &redis.url())
        .with("HOOKLINE__RABBITMQ__DELIVERY_LIMIT", "3");
    let ingest = stack.start(Role::Ingest).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("held-app").await;
    let url = receiver.url("sink", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;
    let mut sent = std::collections::HashSet::new();
    for n in 0..MESSAGES {
        sent.insert(api.send(&app, "order.created", json!({"n": n})).await);
    }
    redis.kill();
    let dispatcher = stack.start(Role::Dispatcher).await;
    let metrics = format!("{}/metrics", dispatcher.ops_url().await);
    // Well past the point where requeueing would have hit the delivery limit.
    eventually(
        "many failed attempts to store outcomes",
        Duration::from_secs(60),
        || async {
            let page = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
            let retries: f64 = page.lines().find_map(|l| {
                l.strip_prefix("hookline_store_retries_total ")?
                    .parse()
                    .ok()
            })?;
            (retries >= (4 * MESSAGES) as f64).then_some(())
        },
    )
    .await;
    redis.restart();
    eventually(
        "every message delivered",
        Duration::from_secs(120),
        || async {
            let ids: std::collections::HashSet<String> = receiver
                .completed("sink")
                .iter()
                .map(|d| d.webhook_id().to_owned())
                .collect();
            (ids == sent).then_some(())
        },
    )
    .await;
}
