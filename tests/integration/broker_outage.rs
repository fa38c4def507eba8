//! Must-show 7: with RabbitMQ stopped, message creation answers 503 and stores nothing as
//! accepted; once it is back, messages flow again without restarting Hookline.
//!
//! Runs on a private RabbitMQ node (scripts/rabbitmq-node) so stopping it does not disturb
//! the tests sharing the main broker.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

/// A private broker node, stopped for good when dropped.
struct PrivateNode {
    name: String,
}

impl PrivateNode {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rabbitmq-node")
    }

    fn run(args: &[&str]) {
        let status = Command::new(Self::script())
            .args(args)
            .status()
            .expect("run scripts/rabbitmq-node");
        assert!(status.success(), "scripts/rabbitmq-node {args:?} failed");
    }

    fn start(name: &str, port: u16) -> Self {
        Self::run(&["start", name, &port.to_string()]);
        Self {
            name: name.to_owned(),
        }
    }

    fn stop_app(&self) {
        Self::run(&["stop_app", &self.name]);
    }

    fn start_app(&self) {
        Self::run(&["start_app", &self.name]);
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args(["stop", &self.name])
            .status();
    }
}

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
