//! The scheduler role: move due tasks from the retry schedule back onto the queue.
//!
//! Each step claims a batch under a lease (atomically, so several schedulers never claim the
//! same task), publishes it with confirms, and only then forgets it. A scheduler that dies
//! between claim and publish loses nothing: the lease runs out and the next claim takes the
//! tasks again. The price is a possible duplicate publish, which at-least-once allows.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::ports::{QueueError, RetrySchedule, Sequencer, StoreError, TaskPublisher};
use hookline_metrics::Metrics;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// What an operator tunes on a scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Tasks claimed per step.
    pub batch_size: usize,
    /// How long a claim is held before another scheduler may take it over.
    pub lease: Duration,
    /// Longest wait between polls when nothing is due (new retries may arrive any time).
    pub max_idle_wait: Duration,
    /// Fault injection for crash tests: wait this long between claim and publish.
    pub pause_after_claim: Option<Duration>,
    /// How often the lines of ordered endpoints are checked for a waiting head task that
    /// nobody queued ([`Sequencer::stalled`]).
    pub stall_sweep_every: Duration,
    /// How long after a waiting task was handed out it may be handed out again: whoever
    /// took it died before queueing it.
    pub stale_after: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            lease: Duration::from_secs(30),
            max_idle_wait: Duration::from_millis(100),
            pause_after_claim: None,
            stall_sweep_every: Duration::from_secs(1),
            stale_after: Duration::from_secs(30),
        }
    }
}

/// Why a step failed; the next step tries again.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

pub struct Scheduler {
    config: SchedulerConfig,
    schedule: Arc<dyn RetrySchedule>,
    publisher: Arc<dyn TaskPublisher>,
    sequencer: Arc<dyn Sequencer>,
    metrics: Arc<Metrics>,
}

impl Scheduler {
    pub fn new(
        config: SchedulerConfig,
        schedule: Arc<dyn RetrySchedule>,
        publisher: Arc<dyn TaskPublisher>,
        sequencer: Arc<dyn Sequencer>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            config,
            schedule,
            publisher,
            sequencer,
            metrics,
        }
    }

    /// Moves one batch of due tasks to the queue; returns how many moved.
    ///
    /// A successful step, even one that found nothing due, stamps
    /// `hookline_scheduler_last_step_timestamp_seconds`, so an alert can tell a scheduler
    /// that serves the schedule from one that is stuck or failing.
    pub async fn step(&self, now: OffsetDateTime) -> Result<usize, StepError> {
        let moved = self.move_due(now).await?;
        // The wall clock, not `now`: the gauge tells operators when the schedule was served.
        let finished = OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
        self.metrics.scheduler_last_step.set(finished);
        Ok(moved)
    }

    async fn move_due(&self, now: OffsetDateTime) -> Result<usize, StepError> {
        let lease_ms = u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX);
        let claimed = self
            .schedule
            .claim_due(now, lease_ms, self.config.batch_size)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        if let Some(pause) = self.config.pause_after_claim {
            tracing::warn!(
                claimed = claimed.len(),
                ?pause,
                "fault injection: pausing after claim"
            );
            tokio::time::sleep(pause).await;
        }
        let tasks: Vec<_> = claimed
            .iter()
            .map(|c| c.task.clone().queued_now())
            .collect();
        // If publishing fails the claims stay leased and come back when the lease ends.
        self.publisher.publish(&tasks).await?;
        // Each claim completes only itself: if its lease ran out meanwhile and another
        // scheduler claimed the key again, that newer claim stays.
        let claims: Vec<_> = claimed.into_iter().map(|c| c.claim).collect();
        self.schedule.complete(&claims).await?;
        tracing::debug!(moved = claims.len(), "due tasks republished");
        Ok(claims.len())
    }

    /// Queues the waiting head tasks of ordered endpoints' lines that nobody queued: a
    /// dispatcher died between passing a turn on and queueing the task, or a message left
    /// its line without its dispatcher (removed when its request failed). Answers how many.
    pub async fn sweep_stalled(&self, now: OffsetDateTime) -> Result<usize, StepError> {
        let stalled = self
            .sequencer
            .stalled(now, self.config.stale_after, self.config.batch_size)
            .await?;
        if stalled.is_empty() {
            return Ok(0);
        }
        let tasks: Vec<_> = stalled.into_iter().map(|t| t.queued_now()).collect();
        // A failed publish leaves them handed: the next sweep after `stale_after` tries again.
        self.publisher.publish(&tasks).await?;
        tracing::info!(
            queued = tasks.len(),
            "stalled ordered deliveries queued again"
        );
        Ok(tasks.len())
    }

    async fn run_stall_sweep(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(error) = self.sweep_stalled(OffsetDateTime::now_utc()).await {
                tracing::warn!(%error, "stall sweep of ordered endpoints failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.stall_sweep_every) => {}
            }
        }
    }

    /// Steps until `shutdown` fires, sleeping until the next due time (at most
    /// `max_idle_wait`) whenever a step leaves nothing due; sweeps ordered endpoints' lines
    /// beside it.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let sweep = tokio::spawn(Arc::clone(&self).run_stall_sweep(shutdown.clone()));
        self.run_steps(&shutdown).await;
        let _ = sweep.await;
    }

    async fn run_steps(&self, shutdown: &CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let wait = match self.step(OffsetDateTime::now_utc()).await {
                Ok(moved) if moved >= self.config.batch_size => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.idle_wait().await
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "scheduler step failed");
                    backoff(failures)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn idle_wait(&self) -> Duration {
        let max = self.config.max_idle_wait;
        if let Ok(backlog) = self.schedule.backlog().await {
            self.metrics
                .schedule_backlog
                .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        }
        match self.schedule.next_due().await {
            Ok(Some(due)) => {
                let until = due - OffsetDateTime::now_utc();
                Duration::try_from(until).unwrap_or(Duration::ZERO).min(max)
            }
            Ok(None) | Err(_) => max,
        }
    }
}

/// 100 ms doubling to 5 s while the store or broker keeps failing.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_millis(100u64 << exp).min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(7), Duration::from_millis(5000));
        assert_eq!(backoff(100), Duration::from_secs(5));
    }
}
