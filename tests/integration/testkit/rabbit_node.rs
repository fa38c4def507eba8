//! A private RabbitMQ node (scripts/rabbitmq-node), for tests that stop a broker or need one
//! configured differently, without disturbing the tests sharing the main broker.

use std::path::PathBuf;
use std::process::Command;

/// A private broker node, stopped for good when dropped.
pub struct PrivateNode {
    pub name: String,
}

impl PrivateNode {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rabbitmq-node")
    }

    pub fn run(args: &[&str]) {
        let status = Command::new(Self::script())
            .args(args)
            .status()
            .expect("run scripts/rabbitmq-node");
        assert!(status.success(), "scripts/rabbitmq-node {args:?} failed");
    }

    pub fn start(name: &str, port: u16) -> Self {
        Self::start_with_conf(name, port, "")
    }

    /// Starts the node with `extra` lines added to its `rabbitmq.conf`.
    pub fn start_with_conf(name: &str, port: u16, extra: &str) -> Self {
        let status = Command::new(Self::script())
            .args(["start", name, &port.to_string()])
            .env("HOOKLINE_RABBIT_EXTRA_CONF", extra)
            .status()
            .expect("run scripts/rabbitmq-node");
        assert!(
            status.success(),
            "scripts/rabbitmq-node start {name} failed"
        );
        Self {
            name: name.to_owned(),
        }
    }

    pub fn stop_app(&self) {
        Self::run(&["stop_app", &self.name]);
    }

    pub fn start_app(&self) {
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
