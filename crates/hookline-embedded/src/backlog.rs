//! The backlog view's totals, in memory: `hookline_core::backlog::Ledger` behind a lock.
//!
//! Not in the database: embedded mode is one process, so every tally that feeds the ledger
//! is this process's own and a flush is a map update, not a write (one more write job a
//! second would compete with deliveries for the single writer). The cost: after a restart
//! the view starts from zero. Tasks queued before it are not counted, and their
//! conclusions leave negative balances that the ledger drops after their grace, so the
//! view is short by what was pending at the restart until those tasks are done.

use async_trait::async_trait;
use hookline_core::backlog::{BacklogView, TallyBatch};
use hookline_core::ports::{BacklogLedger, StoreError};
use time::OffsetDateTime;

use crate::db::unix_ms;
use crate::EmbeddedStore;

#[async_trait]
impl BacklogLedger for EmbeddedStore {
    async fn add(&self, batch: &TallyBatch, now: OffsetDateTime) -> Result<(), StoreError> {
        self.ledger().add(batch, unix_ms(now));
        Ok(())
    }

    async fn busiest(&self, limit: usize, now: OffsetDateTime) -> Result<BacklogView, StoreError> {
        Ok(self.ledger().busiest(limit, unix_ms(now)))
    }
}

impl EmbeddedStore {
    fn ledger(&self) -> std::sync::MutexGuard<'_, hookline_core::backlog::Ledger> {
        self.backlog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
