//! A private PostgreSQL server (scripts/postgres-node), for tests that stop the database
//! without disturbing the tests sharing the one on 5432.

use std::path::PathBuf;
use std::process::Command;

/// A private server on its own port, stopped and deleted when dropped.
pub struct PrivatePostgres {
    pub name: String,
    pub port: u16,
}

impl PrivatePostgres {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres-node")
    }

    fn run(args: &[&str]) {
        let status = Command::new(Self::script())
            .args(args)
            .status()
            .expect("run scripts/postgres-node");
        assert!(status.success(), "scripts/postgres-node {args:?} failed");
    }

    pub fn start(name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Self::run(&["start", name, &port.to_string()]);
        Self {
            name: name.to_owned(),
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/hookline", self.port)
    }

    /// Stops the server; its clients are disconnected.
    pub fn stop_db(&self) {
        Self::run(&["stop_db", &self.name]);
    }

    /// Starts it again and waits until it answers.
    pub fn start_db(&self) {
        Self::run(&["start_db", &self.name]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args(["stop", &self.name])
            .status();
    }
}
