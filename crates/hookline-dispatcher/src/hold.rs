//! A task whose endpoint's circuit is open is held, not attempted: it keeps its attempt
//! number, spends none of its budget and goes back to the retry schedule, due when the
//! circuit may be tried again (plus a spread). Held past the bound, its message is given up.

use hookline_core::breaker::{Hold, HoldRules};
use hookline_core::model::{Attempt, DeliveryTask, DestinationStatus, Endpoint, MessageStatus};
use hookline_core::outcome::{AttemptResult, TransportError};
use hookline_core::ports::StoreError;
use time::OffsetDateTime;

use crate::delivery::{attempt_record, unix_ms, Dispatcher, Outcome, Sent};
use crate::sender::Exchange;

impl Dispatcher {
    /// Holds `task` until its circuit may be tried (`until`), or gives its message up for
    /// this endpoint when it has been held past `circuit_max_hold`. The attempt log gets
    /// one pending "held" entry per attempt number (not one per re-hold) and a failed one
    /// when the message is given up; the record is written before the schedule.
    pub(crate) async fn hold(
        &self,
        task: &DeliveryTask,
        endpoint: &Endpoint,
        previous: Option<&DestinationStatus>,
        until: OffsetDateTime,
    ) -> Result<Outcome, StoreError> {
        let now = OffsetDateTime::now_utc();
        let rules = HoldRules {
            open_for: self.config.circuit_open_for,
            max_hold: self.config.circuit_max_hold,
        };
        let held_since = task.held_since_ms.and_then(|ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        });
        // Attempts made so far: this one is not.
        let made = task
            .attempt
            .saturating_sub(1)
            .max(previous.map_or(0, |p| p.attempts));
        match rules.decide_random(until, held_since, now) {
            Hold::Until { due, held_since } => {
                self.metrics.circuit_open_skips.inc();
                if task.held_since_ms.is_none() {
                    let entry = held_entry(task, endpoint, MessageStatus::Pending, now);
                    let destination = DestinationStatus {
                        endpoint_id: endpoint.id.clone(),
                        status: MessageStatus::Pending,
                        attempts: made,
                        next_attempt: Some(due),
                    };
                    self.stores
                        .attempts
                        .record_attempt(&entry, &destination, self.config.retention_secs)
                        .await?;
                }
                let since_ms = i64::try_from(unix_ms(held_since)).unwrap_or(i64::MAX);
                self.stores
                    .schedule
                    .schedule(&task.held(since_ms), due)
                    .await?;
                Ok(Outcome::Held)
            }
            Hold::GiveUp { held_since } => {
                let entry = held_entry(task, endpoint, MessageStatus::Fail, now);
                let destination = DestinationStatus {
                    endpoint_id: endpoint.id.clone(),
                    status: MessageStatus::Fail,
                    attempts: made,
                    next_attempt: None,
                };
                self.stores
                    .attempts
                    .record_attempt(&entry, &destination, self.config.retention_secs)
                    .await?;
                tracing::info!(
                    msg_id = %task.msg_id,
                    endpoint_id = %endpoint.id,
                    attempt = task.attempt,
                    %held_since,
                    "held behind an open circuit too long; message given up"
                );
                self.announce_attempt(task, endpoint, &entry, Outcome::Exhausted)
                    .await;
                Ok(Outcome::Exhausted)
            }
        }
    }
}

/// The attempt log's entry for a hold (`Pending`) or a give-up (`Fail`): no request was
/// made, so no status code, and `circuit_open` says why.
fn held_entry(
    task: &DeliveryTask,
    endpoint: &Endpoint,
    status: MessageStatus,
    now: OffsetDateTime,
) -> Attempt {
    let nothing_sent = Sent {
        exchange: Exchange {
            result: AttemptResult::Transport(TransportError::CircuitOpen),
            response_body: String::new(),
            response_headers: Default::default(),
            duration: std::time::Duration::ZERO,
            retry_after: None,
        },
        request_headers: Default::default(),
    };
    attempt_record(task, endpoint, status, nothing_sent, now)
}
