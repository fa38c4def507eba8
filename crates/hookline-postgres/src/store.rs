//! [`LoggedStore`]: the message and attempt ports with the log on PostgreSQL and the
//! short-lived parts on a hot store (Redis).
//!
//! Orders that keep the invariants with two stores that share no transaction:
//! - **Accepting a message:** the hot store's outbox mark first, then the log's rows, then
//!   (the caller) the queue's confirms, then the mark's removal. A request that dies after
//!   the mark but before the rows never answered 202, and the sweep that finds its mark
//!   finds no message and drops the mark; one that dies after the rows is queued by the
//!   sweep. So a 202 still means stored, and nothing stored is left undelivered.
//! - **Settling a batch:** the log's records first, then the hot store's schedule and health.
//!   A crash between them repeats the attempts (the tasks are not acked), never loses one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::breaker::OpenRules;
use hookline_core::model::{Attempt, DestinationStatus, Message};
use hookline_core::ports::{
    AttemptLog, ConfirmedMessage, HealthAfter, HealthReport, IdempotencyClaim, MessageStore,
    NewUnconfirmed, Page, PageRequest, SettledAttempt, Settlement, StoreError, Unconfirmed,
};
use time::OffsetDateTime;

use crate::log::{AttemptsBy, NewMessage};
use crate::PgLog;

/// The message store, attempt log and settlement of a deployment whose log is on
/// PostgreSQL. `hot` must be a store that keeps no log of its own (Redis with
/// `log_elsewhere`): only idempotency, outbox marks, the schedule and health.
#[derive(Clone)]
pub struct LoggedStore {
    log: PgLog,
    hot: Arc<dyn MessageStore>,
    hot_settlement: Arc<dyn Settlement>,
}

impl LoggedStore {
    pub fn new(
        log: PgLog,
        hot: Arc<dyn MessageStore>,
        hot_settlement: Arc<dyn Settlement>,
    ) -> Self {
        Self {
            log,
            hot,
            hot_settlement,
        }
    }

    pub fn log(&self) -> &PgLog {
        &self.log
    }

    /// Keeps the partitions ahead of time and drops those past retention, and expunges
    /// payloads past their own retention, every `every` until `stop`.
    pub async fn run_upkeep(self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let now = OffsetDateTime::now_utc();
            if let Err(error) = self.log.maintain(now).await {
                tracing::warn!(%error, "delivery log: partition upkeep failed; retrying");
            }
            match self.log.expunge_due_payloads(now).await {
                Ok(0) => {}
                Ok(count) => {
                    tracing::info!(count, "delivery log: payloads past retention expunged")
                }
                Err(error) => tracing::warn!(%error, "delivery log: expunging payloads failed"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

#[async_trait]
impl MessageStore for LoggedStore {
    async fn claim_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
        lease_ms: u64,
        keep_secs: u64,
    ) -> Result<IdempotencyClaim, StoreError> {
        self.hot
            .claim_idempotency(app_id, keys, owner, lease_ms, keep_secs)
            .await
    }

    async fn complete_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        response: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        self.hot
            .complete_idempotency(app_id, keys, response, ttl_secs)
            .await
    }

    async fn idempotent_response(
        &self,
        app_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.hot.idempotent_response(app_id, key).await
    }

    async fn release_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
    ) -> Result<(), StoreError> {
        self.hot.release_idempotency(app_id, keys, owner).await
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
    ) -> Result<(), StoreError> {
        self.log
            .insert_messages(&[NewMessage {
                message,
                endpoint_ids,
                retention_secs,
            }])
            .await
    }

    async fn insert_unconfirmed(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
        deliver_at: Option<OffsetDateTime>,
        lease_ms: u64,
    ) -> Result<(), StoreError> {
        self.hot
            .insert_unconfirmed(message, endpoint_ids, retention_secs, deliver_at, lease_ms)
            .await?;
        self.insert_message(message, endpoint_ids, retention_secs)
            .await
    }

    async fn confirm_message(
        &self,
        app_id: &str,
        msg_id: &str,
        keys: &[String],
        response: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        self.hot
            .confirm_message(app_id, msg_id, keys, response, ttl_secs)
            .await
    }

    async fn unconfirmed(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Option<Unconfirmed>, StoreError> {
        self.hot.unconfirmed(app_id, msg_id).await
    }

    async fn claim_unconfirmed(
        &self,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Unconfirmed>, StoreError> {
        self.hot.claim_unconfirmed(lease_ms, limit).await
    }

    async fn remove_message(&self, app_id: &str, msg_id: &str) -> Result<(), StoreError> {
        // The rows first: a mark without rows is dropped by the sweep, rows without a mark
        // would be a message nobody delivers.
        self.log.delete_message(app_id, msg_id).await?;
        self.hot.remove_message(app_id, msg_id).await
    }

    async fn get_message(&self, app_id: &str, msg_id: &str) -> Result<Option<Message>, StoreError> {
        self.log.get_message(app_id, msg_id).await
    }

    async fn list_messages(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        self.log.list_messages(app_id, page).await
    }

    async fn expunge_payload(&self, app_id: &str, msg_id: &str) -> Result<bool, StoreError> {
        self.log.expunge_payload(app_id, msg_id).await
    }

    async fn destinations(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Vec<DestinationStatus>, StoreError> {
        self.log.destinations(app_id, msg_id).await
    }

    /// The marks of the whole batch in the hot store's one round trip, then the rows of
    /// every marked message in the log's one statement.
    async fn insert_unconfirmed_batch(
        &self,
        items: &[NewUnconfirmed],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = self.hot.insert_unconfirmed_batch(items).await?;
        let marked: Vec<NewMessage<'_>> = items
            .iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|(item, _)| NewMessage {
                message: &item.message,
                endpoint_ids: &item.endpoint_ids,
                retention_secs: item.retention_secs,
            })
            .collect();
        if let Err(error) = self.log.insert_messages(&marked).await {
            for result in results.iter_mut().filter(|r| r.is_ok()) {
                *result = Err(error.clone());
            }
        }
        Ok(results)
    }

    async fn confirm_messages_batch(
        &self,
        items: &[ConfirmedMessage],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.hot.confirm_messages_batch(items).await
    }
}

#[async_trait]
impl AttemptLog for LoggedStore {
    async fn record_attempt(
        &self,
        attempt: &Attempt,
        destination: &DestinationStatus,
        _retention_secs: u64,
    ) -> Result<(), StoreError> {
        self.log.record_attempts(&[(attempt, destination)]).await
    }

    async fn get_attempt(
        &self,
        app_id: &str,
        attempt_id: &str,
    ) -> Result<Option<Attempt>, StoreError> {
        self.log.get_attempt(app_id, attempt_id).await
    }

    async fn expunge_response(&self, app_id: &str, attempt_id: &str) -> Result<bool, StoreError> {
        self.log.expunge_response(app_id, attempt_id).await
    }

    async fn attempts_by_message(
        &self,
        app_id: &str,
        msg_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        self.log
            .attempts_by(AttemptsBy::Message, app_id, msg_id, page)
            .await
    }

    async fn attempts_by_endpoint(
        &self,
        app_id: &str,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        self.log
            .attempts_by(AttemptsBy::Endpoint, app_id, endpoint_id, page)
            .await
    }
}

#[async_trait]
impl Settlement for LoggedStore {
    async fn settle(
        &self,
        attempts: &[&SettledAttempt],
        health: &[HealthReport],
        rules: OpenRules,
    ) -> Result<Vec<HealthAfter>, StoreError> {
        self.log.record_settled(attempts).await?;
        self.hot_settlement.settle(attempts, health, rules).await
    }
}
