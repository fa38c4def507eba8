//! Load generators. Open loop: message `i` is due at `start + i / rate` whether or not earlier
//! requests have returned, and its latency counts from that due time, so a slow server cannot
//! hide its slowness by slowing the generator (no coordinated omission). Max throughput: a
//! fixed number of senders, each sending its next message as soon as the last is accepted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::ApiClient;

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Sent {
    pub msg_id: String,
    /// When it was due to be sent, since the bench's epoch.
    pub due: Duration,
}

#[derive(Debug, Default)]
pub struct LoadResult {
    pub sent: Vec<Sent>,
    /// Requests that were not accepted (any non-2xx or transport failure).
    pub errors: u64,
    /// The first error, to show the operator.
    pub first_error: Option<String>,
}

/// A message body whose payload makes the request body about `bytes` long.
pub fn message_body(bytes: usize) -> Value {
    let envelope = json!({"eventType": "bench.event", "payload": {"data": ""}}).to_string();
    let fill = bytes.saturating_sub(envelope.len());
    json!({"eventType": "bench.event", "payload": {"data": "x".repeat(fill)}})
}

type Outcome = (Duration, Result<String, String>);

/// Sends `count` messages at `rate` per second.
pub async fn open_loop(
    client: &ApiClient,
    app: &str,
    body: Arc<Value>,
    rate: f64,
    count: usize,
    epoch: Instant,
    progress: &ProgressBar,
) -> LoadResult {
    let apps = [app.to_owned()];
    // Kept alive until the run ends: a dropped sender would stop it.
    let (_never, stop) = watch::channel(false);
    let pace = Pace { rate, count, stop };
    paced(client, &apps, body, pace, epoch, progress).await
}

/// Sends at `rate` per second in all, to `apps` in turn (each gets `rate / apps.len()`,
/// evenly spaced between the others' sends), until `stop` turns true.
pub async fn open_loop_until(
    client: &ApiClient,
    apps: &[String],
    body: Arc<Value>,
    rate: f64,
    stop: watch::Receiver<bool>,
    epoch: Instant,
    progress: &ProgressBar,
) -> LoadResult {
    let pace = Pace {
        rate,
        count: usize::MAX,
        stop,
    };
    paced(client, apps, body, pace, epoch, progress).await
}

/// How fast an open-loop run sends, and when it ends: after `count` sends, or once `stop`
/// turns true (or its sender is dropped).
struct Pace {
    rate: f64,
    count: usize,
    stop: watch::Receiver<bool>,
}

async fn paced(
    client: &ApiClient,
    apps: &[String],
    body: Arc<Value>,
    pace: Pace,
    epoch: Instant,
    progress: &ProgressBar,
) -> LoadResult {
    let Pace {
        rate,
        count,
        mut stop,
    } = pace;
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Bounds memory if the server stalls; a full window delays sends, and their latency
    // still counts from when they were due.
    let window = Arc::new(Semaphore::new(4096));
    let (tx, rx) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now();
    for (i, app) in (0..count).zip(apps.iter().cycle()) {
        let due = start + interval.mul_f64(i as f64);
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let Ok(permit) = window.clone().acquire_owned().await else {
            break;
        };
        let (client, app, body, tx) = (client.clone(), app.clone(), body.clone(), tx.clone());
        let due = due.saturating_duration_since(epoch);
        tokio::spawn(async move {
            let result = client.send(&app, &body).await.map_err(|e| e.to_string());
            let _ = tx.send((due, result));
            drop(permit);
        });
        progress.inc(1);
    }
    drop(tx);
    collect(rx).await
}

/// Sends `count` messages from `senders` concurrent senders, as fast as they are accepted.
pub async fn max_throughput(
    client: &ApiClient,
    app: &str,
    body: Arc<Value>,
    count: usize,
    senders: usize,
    epoch: Instant,
    progress: &ProgressBar,
) -> LoadResult {
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel::<Outcome>();
    for _ in 0..senders {
        let (client, app, body, tx, next) = (
            client.clone(),
            app.to_owned(),
            body.clone(),
            tx.clone(),
            next.clone(),
        );
        let progress = progress.clone();
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let due = epoch.elapsed();
                let result = client.send(&app, &body).await.map_err(|e| e.to_string());
                progress.inc(1);
                if tx.send((due, result)).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    collect(rx).await
}

async fn collect(mut rx: mpsc::UnboundedReceiver<Outcome>) -> LoadResult {
    let mut result = LoadResult::default();
    while let Some((due, outcome)) = rx.recv().await {
        match outcome {
            Ok(msg_id) => result.sent.push(Sent { msg_id, due }),
            Err(error) => {
                result.errors += 1;
                result.first_error.get_or_insert(error);
            }
        }
    }
    result
}
