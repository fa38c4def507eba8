//! A real HTTP receiver on loopback that records every delivery and answers as told.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Router;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// The status the receiver answered (or will answer, for a held or slow reply).
    pub status: u16,
    /// The sender's end of the connection.
    pub peer: std::net::SocketAddr,
}

impl Delivery {
    pub fn webhook_id(&self) -> &str {
        self.headers.get("webhook-id").map_or("", String::as_str)
    }
}

/// Every delivery carries an id that was `sent`, and the deliveries of one id (duplicates)
/// carry the same body.
pub fn assert_duplicates_identical(deliveries: &[Delivery], sent: &HashSet<String>) {
    let mut bodies: HashMap<&str, &str> = HashMap::new();
    for delivery in deliveries {
        let id = delivery.webhook_id();
        assert!(
            sent.contains(id),
            "delivered an id that was never sent: {id}"
        );
        let first = bodies.entry(id).or_insert(&delivery.body);
        assert_eq!(*first, delivery.body, "a duplicate of {id} differs");
    }
}

/// How a path answers its n-th request (0-based).
#[derive(Clone)]
pub enum Reply {
    Always(u16),
    /// These codes in turn, then the last one forever.
    Sequence(Vec<u16>),
    /// Answer 200 after a delay.
    Slow(Duration),
    /// First this status with `Retry-After: <seconds>`, then 200.
    ComeBackLater(u16, u64),
    /// This status to the first delivery of each message (`webhook-id`), 200 to the rest:
    /// every message needs a retry.
    FirstOfEachFails(u16),
    /// This status to the first `n` deliveries of each message (`webhook-id`), 200 to the
    /// rest: every message needs `n` retries.
    FirstOfEachFailTimes(u16, usize),
    /// Hold every request until the gate opens, then answer 200.
    Held(Gate),
    /// 500 to this percentage of requests, picked at random (a fixed pseudo-random sequence
    /// over the path's requests), 200 to the others.
    Flaky(u8),
    /// 500 to every request whose body contains this text, 200 to the others.
    FailWhen(String),
    /// Whatever status the shared cell holds when the request arrives.
    Switch(Arc<std::sync::atomic::AtomicU16>),
}

/// Holds [`Reply::Held`] requests until [`Gate::open`]; cloned gates are the same gate.
#[derive(Clone)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub fn closed() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(false)))
    }

    /// Lets every held request and every later one answer.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn pass(mut open: tokio::sync::watch::Receiver<bool>) {
        // An error means the gate is gone: nothing holds the request any more.
        let _ = open.wait_for(|open| *open).await;
    }
}

impl Reply {
    /// `n`: earlier deliveries to the path; `n_same`: earlier ones of the same message.
    fn status(&self, n: usize, n_same: usize, body: &str) -> (u16, Option<Duration>, Option<u64>) {
        match self {
            Self::Flaky(percent) => {
                let fails = splitmix(n as u64) % 100 < u64::from(*percent);
                (if fails { 500 } else { 200 }, None, None)
            }
            Self::FailWhen(text) if body.contains(text.as_str()) => (500, None, None),
            Self::FailWhen(_) => (200, None, None),
            Self::Switch(code) => (code.load(std::sync::atomic::Ordering::SeqCst), None, None),
            Self::FirstOfEachFails(code) if n_same == 0 => (*code, None, None),
            Self::FirstOfEachFails(_) => (200, None, None),
            Self::FirstOfEachFailTimes(code, times) if n_same < *times => (*code, None, None),
            Self::FirstOfEachFailTimes(..) => (200, None, None),
            Self::Always(code) => (*code, None, None),
            Self::Sequence(codes) => (
                codes.get(n).or(codes.last()).copied().unwrap_or(200),
                None,
                None,
            ),
            Self::Slow(delay) => (200, Some(*delay), None),
            Self::ComeBackLater(code, seconds) if n == 0 => (*code, None, Some(*seconds)),
            Self::ComeBackLater(..) => (200, None, None),
            Self::Held(_) => (200, None, None),
        }
    }
}

/// SplitMix64: a well-spread pseudo-random number for each `n`.
fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Default)]
struct Inner {
    replies: HashMap<String, Reply>,
    deliveries: Vec<Delivery>,
    /// Requests whose response was produced (a slow reply the client gave up on is not).
    completed: Vec<Delivery>,
    /// Requests so far by path, and by path and `webhook-id`: kept as counts so a run of
    /// tens of thousands of deliveries does not rescan the list on every request.
    per_path: HashMap<String, usize>,
    per_message: HashMap<(String, String), usize>,
    /// Distinct `webhook-id`s by path, so waiting for every message of a flood costs a
    /// lookup per poll, not a copy of every delivery while the handlers wait for the lock.
    distinct_per_path: HashMap<String, usize>,
    /// Requests whose body holds the text wait at the gate, whatever their reply.
    holds: Vec<(String, Gate)>,
}

#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A receiver on a given loopback port (0: any), e.g. one that comes back after an outage.
    pub async fn start_on(port: u16) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            inner,
            server: Arc::new(server),
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("a port in the base URL")
    }

    /// The URL of `path`, answering per `reply`.
    pub fn url(&self, path: &str, reply: Reply) -> String {
        self.lock().replies.insert(path.to_owned(), reply);
        format!("{}/{path}", self.base)
    }

    pub fn deliveries(&self, path: &str) -> Vec<Delivery> {
        self.lock()
            .deliveries
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    /// Deliveries whose response was sent: the client waited for it.
    pub fn completed(&self, path: &str) -> Vec<Delivery> {
        self.lock()
            .completed
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    /// Waits until as many distinct messages as were `sent` have arrived at `path`
    /// (answered or not); answers every delivery so far.
    pub async fn await_all(
        &self,
        path: &str,
        sent: &HashSet<String>,
        within: Duration,
    ) -> Vec<Delivery> {
        super::eventually("every message at the receiver", within, || async {
            (self.distinct(path) == sent.len()).then(|| self.deliveries(path))
        })
        .await
    }

    /// From now on, requests whose body contains `text` wait until `gate` opens, then
    /// answer as their path says.
    pub fn hold_when(&self, text: &str, gate: &Gate) {
        self.lock().holds.push((text.to_owned(), gate.clone()));
    }

    /// Distinct messages (`webhook-id`s) that reached `path`.
    pub fn distinct(&self, path: &str) -> usize {
        self.lock()
            .distinct_per_path
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn count(&self, path: &str) -> usize {
        self.lock().per_path.get(path).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(String, String); 1], String) {
    let mut delivery = Delivery {
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        status: 0,
        peer,
    };
    let (code, delay, retry_after, gate) = {
        let mut inner = inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = inner.per_path.entry(path.clone()).or_default();
        let earlier = *n;
        *n += 1;
        let same = inner
            .per_message
            .entry((path.clone(), delivery.webhook_id().to_owned()))
            .or_default();
        let earlier_same = *same;
        *same += 1;
        if earlier_same == 0 {
            *inner.distinct_per_path.entry(path.clone()).or_default() += 1;
        }
        let reply = inner.replies.get(&path);
        let (code, delay, retry_after) = reply.map_or((200, None, None), |reply| {
            reply.status(earlier, earlier_same, &delivery.body)
        });
        let held = inner
            .holds
            .iter()
            .find(|(text, _)| delivery.body.contains(text.as_str()))
            .map(|(_, gate)| gate.0.subscribe());
        let gate = match reply {
            Some(Reply::Held(gate)) => Some(gate.0.subscribe()),
            _ => held,
        };
        delivery.status = code;
        inner.deliveries.push(delivery.clone());
        (code, delay, retry_after, gate)
    };
    if let Some(gate) = gate {
        Gate::pass(gate).await;
    }
    if let Some(delay) = delay {
        // Dropped here if the client disconnects first: then it never counts as completed.
        tokio::time::sleep(delay).await;
    }
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .completed
        .push(delivery);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let header = match retry_after {
        Some(seconds) => ("retry-after".to_owned(), seconds.to_string()),
        None => ("x-receiver".to_owned(), "test".to_owned()),
    };
    (status, [header], format!("answer {code} to request {path}"))
}
