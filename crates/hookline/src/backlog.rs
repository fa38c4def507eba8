//! The backlog flusher: once per interval, this process's tally (what its ingest accepted
//! and its dispatcher took and concluded) goes to the store in one write, so counting costs
//! one write per interval per process, never one per delivery.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::backlog::{SharedTally, TallyBatch};
use hookline_core::ports::BacklogLedger;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Drains a [`SharedTally`] into a [`BacklogLedger`].
pub struct Flusher {
    tally: SharedTally,
    ledger: Arc<dyn BacklogLedger>,
    /// A batch the store did not take: sent again, under the same id (so a write that did
    /// land is not counted twice), before anything newer.
    unsent: Option<TallyBatch>,
}

impl Flusher {
    pub fn new(tally: SharedTally, ledger: Arc<dyn BacklogLedger>) -> Self {
        Self {
            tally,
            ledger,
            unsent: None,
        }
    }

    /// Sends what waits: the batch the store refused last time, else what was counted
    /// since. On a failure the batch is kept and the tally goes on counting beside it.
    pub async fn step(&mut self) {
        let now = OffsetDateTime::now_utc();
        let batch = match self.unsent.take() {
            Some(batch) => batch,
            None => {
                let ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                match self.tally.drain(|| hookline_core::id::new_id("blg", ms)) {
                    Some(batch) => batch,
                    None => return,
                }
            }
        };
        if let Err(error) = self.ledger.add(&batch, now).await {
            tracing::warn!(%error, changes = batch.changes.len(), "backlog counts not flushed; trying again");
            self.unsent = Some(batch);
        }
    }

    /// Flushes every `every` until `shutdown`.
    pub async fn run(
        flusher: Arc<tokio::sync::Mutex<Self>>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => flusher.lock().await.step().await,
            }
        }
    }

    /// The last flush at shutdown: what the store refused before, then what is left.
    pub async fn finish(&mut self) {
        if self.unsent.is_some() {
            self.step().await;
        }
        if self.unsent.is_none() {
            self.step().await;
        }
    }
}
