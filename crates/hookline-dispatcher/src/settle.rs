//! Settling finished attempts in batches: one store round trip for many attempts' records,
//! next attempts and endpoint health, instead of four per attempt.

use std::collections::HashMap;

use hookline_core::breaker::{OpenRules, Results};
use hookline_core::model::{DeliveryTask, MessageStatus, TriggerType};
use hookline_core::ports::{HealthAfter, HealthReport, SettledAttempt};
use time::OffsetDateTime;

use crate::delivery::{Attempted, DeliveryError, Dispatcher, Outcome};

impl Dispatcher {
    /// Makes a batch of attempts durable (records, then next attempts, then health, in one
    /// write), then acts on what the endpoints' health says (disabling one that failed too
    /// long) and announces what needs announcing. Answers each attempt's outcome, in order.
    /// On an error nothing is settled and the caller keeps the tasks unacked.
    pub async fn settle_batch(&self, batch: &[Attempted]) -> Result<Vec<Outcome>, DeliveryError> {
        let attempts: Vec<&SettledAttempt> = batch.iter().map(|a| &a.settled).collect();
        let reports = health_reports(batch);
        let rules = OpenRules {
            threshold: self.config.circuit_failure_threshold,
            open_for: self.config.circuit_open_for,
        };
        let after = self
            .stores
            .settlement
            .settle(&attempts, &reports, rules)
            .await?;
        let now = OffsetDateTime::now_utc();
        let mut disabled = HashMap::new();
        for health in &after {
            let closed = health.health.open_until_ms == 0;
            self.circuits
                .learn(&health.app_id, &health.endpoint_id, closed);
            let failing_since = health
                .health
                .failing_since()
                .filter(|since| now - *since >= self.config.disable_after_failing_for);
            if failing_since.is_some() {
                disabled.insert(key(health), failing_since);
            }
        }
        for attempted in batch.iter().filter(|a| a.gone) {
            let endpoint = &attempted.endpoint;
            disabled.insert((endpoint.app_id.clone(), endpoint.id.clone()), None);
        }
        let mut handled = std::collections::HashSet::new();
        for attempted in batch {
            let endpoint = &attempted.endpoint;
            let id = (endpoint.app_id.clone(), endpoint.id.clone());
            let Some(failing_since) = disabled.get(&id).copied() else {
                continue;
            };
            if !handled.insert(id) {
                continue;
            }
            self.endpoints.forget(&endpoint.app_id, &endpoint.id);
            if let Err(error) = self.disable(endpoint, failing_since, now).await {
                // Its streak is kept, so the next failure tries again.
                tracing::warn!(endpoint_id = %endpoint.id, %error, "could not disable endpoint");
            }
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for attempted in batch {
            let endpoint = &attempted.endpoint;
            let was_disabled =
                disabled.contains_key(&(endpoint.app_id.clone(), endpoint.id.clone()));
            let outcome = outcome(attempted, was_disabled);
            self.settled(
                &attempted.task,
                endpoint,
                &attempted.settled.attempt,
                outcome,
                now,
            )
            .await;
            self.count_settled(&attempted.task, outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Counts `task` out of this process's backlog tally when `outcome` ends its delivery;
    /// a task that waits again (a retry, a deferral, a hold) stays pending.
    pub(crate) fn count_settled(&self, task: &DeliveryTask, outcome: Outcome) {
        if concludes(outcome) {
            self.stores.backlog.concluded(task);
        }
    }
}

/// Whether a task settled with `outcome` is done: delivered, given up, or dropped.
fn concludes(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Succeeded
        | Outcome::Exhausted
        | Outcome::ManualFailed
        | Outcome::Disabled
        | Outcome::Skipped => true,
        Outcome::RetryScheduled | Outcome::Deferred | Outcome::Held | Outcome::Waiting => false,
    }
}

/// Each endpoint's results in the batch, in the order its attempts ended.
fn health_reports(batch: &[Attempted]) -> Vec<HealthReport> {
    let mut reports: Vec<HealthReport> = Vec::new();
    let mut at: HashMap<(&str, &str), usize> = HashMap::new();
    for attempted in batch {
        let attempt = &attempted.settled.attempt;
        let slot = *at
            .entry((attempt.app_id.as_str(), attempt.endpoint_id.as_str()))
            .or_insert_with(|| {
                reports.push(HealthReport {
                    app_id: attempt.app_id.clone(),
                    endpoint_id: attempt.endpoint_id.clone(),
                    results: Results::default(),
                });
                reports.len() - 1
            });
        reports[slot]
            .results
            .push(attempted.success, attempt.timestamp);
    }
    reports
}

fn key(health: &HealthAfter) -> (String, String) {
    (health.app_id.clone(), health.endpoint_id.clone())
}

/// What became of one settled attempt.
fn outcome(attempted: &Attempted, disabled: bool) -> Outcome {
    let status = attempted.settled.attempt.status;
    match (status, attempted.settled.next.is_some(), disabled) {
        (MessageStatus::Success, _, _) => Outcome::Succeeded,
        (_, _, true) => Outcome::Disabled,
        (_, true, _) => Outcome::RetryScheduled,
        _ if attempted.task.trigger == TriggerType::Manual => Outcome::ManualFailed,
        _ => Outcome::Exhausted,
    }
}
