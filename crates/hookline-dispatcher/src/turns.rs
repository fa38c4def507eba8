//! Ordered endpoints: passing the turn on.
//!
//! A task of an ordered endpoint (`in_line`) asks its line for its turn in
//! [`Dispatcher::deliver`]'s admit step; one whose turn has not come waits in the store.
//! When a message's delivery ends (delivered, given up, dropped), it leaves its line and the
//! task that now heads the line, if it was waiting, is queued again here, before the task
//! that ended is acked: a crash in between redelivers that task, which finds its message
//! gone from the line and leaves again, and a crash after the leave but before the queueing
//! leaves a task the scheduler's stall sweep hands out later (`Sequencer::stalled`).

use hookline_core::fifo::{leaves_line, Leaving};

use crate::delivery::{Attempted, DeliveryError, Dispatcher, Outcome};

/// Whether a task that ended with `outcome` without a settled attempt is done with its
/// line: dropped (endpoint disabled or gone, message gone, out of turn) or given up behind
/// an open circuit.
pub(crate) fn ends_turn(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Skipped | Outcome::Exhausted)
}

/// The messages of `batch` whose delivery to an ordered endpoint ended with this attempt.
pub(crate) fn leaving(batch: &[Attempted]) -> Vec<Leaving> {
    batch
        .iter()
        .filter(|a| a.task.in_line && leaves_line(a.settled.destination.status))
        .map(|a| Leaving::of(&a.task))
        .collect()
}

impl Dispatcher {
    /// Takes `leaving` out of their lines and queues the tasks whose turn came.
    pub(crate) async fn pass_turns(&self, leaving: &[Leaving]) -> Result<(), DeliveryError> {
        if leaving.is_empty() {
            return Ok(());
        }
        let now = time::OffsetDateTime::now_utc();
        let handed = self.stores.sequencer.leave(leaving, now).await?;
        if handed.is_empty() {
            return Ok(());
        }
        let tasks: Vec<_> = handed.into_iter().map(|t| t.queued_now()).collect();
        self.stores.publisher.publish(&tasks).await?;
        Ok(())
    }
}
