//! `hookline listen` as a child process: where it listens and what it has printed so far.

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

pub struct Listener {
    /// Its base URL, as it printed it (`http://127.0.0.1:<port>`).
    pub address: String,
    printed: Arc<Mutex<Vec<String>>>,
    _child: Child,
}

impl Listener {
    /// Starts `hookline listen` on a free loopback port, verifying with `secret` (given as
    /// `HOOKLINE_SECRET`), and returns once it has said where it listens. It is killed on drop.
    pub async fn start(secret: &str) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["listen", "--listen", "127.0.0.1:0"])
            .env("HOOKLINE_SECRET", secret)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("hookline listen");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next_line().await.expect("read").expect("a line");
        assert!(first.contains("listening on"), "{first}");
        let address = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("the address in {first}"))
            .to_owned();
        let printed = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&printed);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        Self {
            address,
            printed,
            _child: child,
        }
    }

    /// Every line it has printed after the first.
    pub fn lines(&self) -> Vec<String> {
        self.printed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
