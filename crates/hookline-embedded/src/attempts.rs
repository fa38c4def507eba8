//! The attempt log: one record per attempt, indexed per message and per endpoint.

use async_trait::async_trait;
use hookline_core::model::{Attempt, DestinationStatus};
use hookline_core::ports::{AttemptLog, Page, PageRequest, StoreError};

use crate::db::{unavailable, Durability, RECORDS};
use crate::keys;
use crate::records::{self, Writer};
use crate::EmbeddedStore;

#[async_trait]
impl AttemptLog for EmbeddedStore {
    /// Deferred durability: only dispatchers record attempts, and they ack the task after
    /// this write; a crash that loses the write loses the ack too, and the task is retried.
    async fn record_attempt(
        &self,
        attempt: &Attempt,
        destination: &DestinationStatus,
        retention_secs: u64,
    ) -> Result<(), StoreError> {
        let write = AttemptWrite::new(attempt, destination, retention_secs)?;
        self.db
            .write(Durability::Deferred, move |txn| {
                write.apply(&mut Writer::open(txn)?)
            })
            .await
    }

    async fn get_attempt(
        &self,
        app_id: &str,
        attempt_id: &str,
    ) -> Result<Option<Attempt>, StoreError> {
        let key = keys::attempt(app_id, attempt_id);
        self.db.read_record(key, "attempt").await
    }

    async fn expunge_response(&self, app_id: &str, attempt_id: &str) -> Result<bool, StoreError> {
        let key = keys::attempt(app_id, attempt_id);
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let Some(mut attempt) = w.get::<Attempt>(&key, "attempt")? else {
                    return Ok(false);
                };
                attempt.response = String::new();
                w.replace(&key, &attempt)
            })
            .await
    }

    async fn attempts_by_message(
        &self,
        app_id: &str,
        msg_id: &str,
        request: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        self.attempt_page(app_id, keys::message_attempts(app_id, msg_id), request)
            .await
    }

    async fn attempts_by_endpoint(
        &self,
        app_id: &str,
        endpoint_id: &str,
        request: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        self.attempt_page(
            app_id,
            keys::endpoint_attempts(app_id, endpoint_id),
            request,
        )
        .await
    }
}

/// An attempt and its destination's state with their keys, encoded before the operation
/// reaches the writer thread, which every write waits on.
pub(crate) struct AttemptWrite {
    attempt_key: String,
    by_message: String,
    by_endpoint: String,
    attempt_id: String,
    destination_key: String,
    attempt: Vec<u8>,
    destination: Vec<u8>,
    ttl: Option<u64>,
}

impl AttemptWrite {
    pub(crate) fn new(
        attempt: &Attempt,
        destination: &DestinationStatus,
        retention_secs: u64,
    ) -> Result<Self, StoreError> {
        let app = &attempt.app_id;
        Ok(Self {
            attempt_key: keys::attempt(app, &attempt.id),
            by_message: keys::message_attempts(app, &attempt.msg_id),
            by_endpoint: keys::endpoint_attempts(app, &attempt.endpoint_id),
            attempt_id: attempt.id.clone(),
            destination_key: keys::destination(app, &attempt.msg_id, &attempt.endpoint_id),
            attempt: crate::encode(attempt)?,
            destination: crate::encode(destination)?,
            ttl: Some(retention_secs),
        })
    }

    /// The attempt, its two indexes and the destination's state, all kept for the retention.
    pub(crate) fn apply(&self, w: &mut Writer<'_>) -> Result<(), StoreError> {
        w.put_encoded(&self.attempt_key, &self.attempt, self.ttl)?;
        w.index(&self.by_message, &self.attempt_id, self.ttl)?;
        w.index(&self.by_endpoint, &self.attempt_id, self.ttl)?;
        w.put_encoded(&self.destination_key, &self.destination, self.ttl)
    }
}

impl EmbeddedStore {
    async fn attempt_page(
        &self,
        app_id: &str,
        index: String,
        request: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        let (app, request) = (app_id.to_owned(), request.clone());
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::read_page(
                    &table,
                    &index,
                    &request,
                    |id| keys::attempt(&app, id),
                    "attempt",
                )
            })
            .await
    }
}
