//! The dispatcher's batched write: a batch's attempts, its retries and its endpoints' health
//! in one write job, where the ports one at a time took a job (and a wait on the writer
//! thread) for each.

use async_trait::async_trait;
use hookline_core::breaker::OpenRules;
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{HealthAfter, HealthReport, SettledAttempt, Settlement, StoreError};

use crate::attempts::AttemptWrite;
use crate::db::{unix_ms, Durability};
use crate::health::{HealthWrite, HealthWrites};
use crate::keys;
use crate::records::Writer;
use crate::schedule::{schedule_in, Tables};
use crate::EmbeddedStore;

#[async_trait]
impl Settlement for EmbeddedStore {
    /// Deferred durability, as `record_attempt`: the caller acks the batch's tasks after
    /// this returns, commits reach the disk in order, so a crash that loses this write
    /// loses those acks too and the tasks are delivered again.
    async fn settle(
        &self,
        attempts: &[&SettledAttempt],
        health: &[HealthReport],
        rules: OpenRules,
    ) -> Result<Vec<HealthAfter>, StoreError> {
        if attempts.is_empty() && health.is_empty() {
            return Ok(Vec::new());
        }
        // Encoded here, so the writer thread (which every write waits on) only stores bytes.
        let records = attempts
            .iter()
            .map(|a| AttemptWrite::new(&a.attempt, &a.destination, a.retention_secs))
            .collect::<Result<Vec<_>, _>>()?;
        let retries: Vec<(DeliveryTask, i64)> = attempts
            .iter()
            .filter_map(|a| a.next.as_ref())
            .map(|(task, due)| (task.clone(), unix_ms(*due)))
            .collect();
        let reports = health
            .iter()
            .map(|report| HealthWrite {
                key: keys::health(&report.app_id, &report.endpoint_id),
                results: report.results,
            })
            .collect();
        let writes = HealthWrites::new(reports, rules, &self.local);
        let job = writes.job();
        // Records, then retries, then health: the order the port promises, although one
        // transaction commits all of it or none.
        let written = self
            .db
            .write(Durability::Deferred, move |txn| {
                let mut w = Writer::open(txn)?;
                for record in &records {
                    record.apply(&mut w)?;
                }
                drop(w);
                let mut t = Tables::open(txn)?;
                for (task, due_ms) in &retries {
                    schedule_in(&mut t, task, *due_ms)?;
                }
                drop(t);
                job.apply(txn)
            })
            .await?;
        let after = writes.committed(&written);
        Ok(health
            .iter()
            .zip(after)
            .map(|(report, health)| HealthAfter {
                app_id: report.app_id.clone(),
                endpoint_id: report.endpoint_id.clone(),
                health,
            })
            .collect())
    }
}
