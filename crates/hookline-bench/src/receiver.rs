//! The bench's own HTTP receiver on loopback: answers each path as configured (at once, after
//! a delay, or failing at a rate) and records when each `webhook-id` arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;

/// How one receiver path answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 200 at once.
    Accept,
    /// 200 after this long.
    Slow(Duration),
    /// 500 for this fraction of requests (0.0–1.0), 200 otherwise.
    FailRate(f64),
}

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub msg_id: String,
    pub path: String,
    /// Since the bench's epoch.
    pub at: Duration,
}

struct Inner {
    epoch: Instant,
    behaviours: RwLock<HashMap<String, Behaviour>>,
    arrivals: Mutex<Vec<Arrival>>,
    /// Requests to the ceiling path, which records nothing else.
    ceiling_hits: AtomicU64,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

/// The path the raw HTTP ceiling is measured against: the same server, nothing recorded.
pub const CEILING_PATH: &str = "ceiling";

impl Receiver {
    pub async fn start(epoch: Instant) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            epoch,
            behaviours: RwLock::default(),
            arrivals: Mutex::default(),
            ceiling_hits: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/{path}", post(receive))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    /// The URL of `path`, answering per `behaviour`.
    pub fn url(&self, path: &str, behaviour: Behaviour) -> String {
        if let Ok(mut behaviours) = self.inner.behaviours.write() {
            behaviours.insert(path.to_owned(), behaviour);
        }
        format!("http://{}/{path}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.inner.arrivals.lock().map_or(0, |a| a.len())
    }

    /// Arrivals on any of `paths`.
    pub fn count_on(&self, paths: &[String]) -> usize {
        self.inner
            .arrivals
            .lock()
            .map_or(0, |a| a.iter().filter(|x| paths.contains(&x.path)).count())
    }

    /// Everything recorded so far, leaving the record empty for the next scenario.
    pub fn take(&self) -> Vec<Arrival> {
        self.inner
            .arrivals
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    pub fn ceiling_hits(&self) -> u64 {
        self.inner.ceiling_hits.load(Ordering::Relaxed)
    }
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    if path == CEILING_PATH {
        inner.ceiling_hits.fetch_add(1, Ordering::Relaxed);
        return StatusCode::OK;
    }
    let at = inner.epoch.elapsed();
    let behaviour = inner
        .behaviours
        .read()
        .ok()
        .and_then(|b| b.get(&path).copied())
        .unwrap_or(Behaviour::Accept);
    let msg_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut arrivals) = inner.arrivals.lock() {
        arrivals.push(Arrival { msg_id, path, at });
    }
    match behaviour {
        Behaviour::Accept => StatusCode::OK,
        Behaviour::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
        Behaviour::FailRate(rate) if rand::random::<f64>() < rate => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Behaviour::FailRate(_) => StatusCode::OK,
    }
}
