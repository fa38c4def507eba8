//! How long tasks waited in the queue: the age of the oldest task taken in each second,
//! exported as `hookline_oldest_pending_age_seconds`. In a queue served in order, the task
//! taken is the oldest one left, so this is the age of the oldest pending delivery; it is
//! zero in a second in which nothing was taken (the queue was empty).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use hookline_core::model::DeliveryTask;
use hookline_metrics::Metrics;
use tokio_util::sync::CancellationToken;

/// The oldest queue age seen since the gauge was last set, in milliseconds.
#[derive(Debug, Default)]
pub(crate) struct QueueAge {
    oldest_ms: AtomicI64,
}

impl QueueAge {
    /// Notes a task just taken from the queue.
    pub(crate) fn taken(&self, task: &DeliveryTask) {
        if let Some(queued) = task.queued_at_ms {
            let age = now_ms().saturating_sub(queued).max(0);
            self.oldest_ms.fetch_max(age, Ordering::Relaxed);
        }
    }

    /// Sets the gauge from the second that just ended and starts the next, every second
    /// until `stop`.
    pub(crate) async fn publish(&self, metrics: &Metrics, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {
                    let oldest = self.oldest_ms.swap(0, Ordering::Relaxed);
                    metrics.oldest_pending_age.set(oldest as f64 / 1000.0);
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_oldest_age_and_ignores_tasks_without_a_time() {
        let age = QueueAge::default();
        let task = |queued: Option<i64>| {
            DeliveryTask {
            queued_at_ms: queued,
            in_line: false,
            ..serde_json::from_str(
                r#"{"msgId":"m","appId":"a","endpointId":"e","attempt":1,"trigger":"scheduled","payload":null}"#,
            )
            .expect("task")
        }
        };
        age.taken(&task(Some(now_ms() - 5_000)));
        age.taken(&task(Some(now_ms() - 1_000)));
        age.taken(&task(None));
        let oldest = age.oldest_ms.load(Ordering::Relaxed);
        assert!((5_000..6_000).contains(&oldest), "{oldest}");
    }
}
