//! Messages, idempotency claims and per-endpoint delivery state.

use async_trait::async_trait;
use hookline_core::model::{DestinationStatus, Message};
use hookline_core::ports::{
    AcceptedMessage, ConfirmedMessage, IdempotencyClaim, MessageStore, NewUnconfirmed, Page,
    PageRequest, StoreError, Unconfirmed,
};
use serde::{Deserialize, Serialize};

use crate::db::{unavailable, Durability, RECORDS};
use crate::keys;
use crate::queue::Encoded;
use crate::records::{self, Writer};
use crate::EmbeddedStore;

/// What an idempotency key holds: a request in progress, or the response of a finished one.
#[derive(Serialize, Deserialize)]
enum Claim {
    /// The older form of a claim, which expired with its lease: in progress while it lasts.
    Pending(String),
    /// A claim kept past its lease, so a retry can adopt the owner's message.
    Leased {
        owner: String,
        until_ms: u64,
    },
    Done(String),
}

#[async_trait]
impl MessageStore for EmbeddedStore {
    async fn claim_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
        lease_ms: u64,
        keep_secs: u64,
    ) -> Result<IdempotencyClaim, StoreError> {
        let names = idempotency_keys(app_id, keys);
        let owner = owner.to_owned();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let mut adopted = None;
                for name in &names {
                    match w.get::<Claim>(name, "idempotency key")? {
                        Some(Claim::Done(response)) => return Ok(IdempotencyClaim::Done(response)),
                        Some(Claim::Pending(_)) => return Ok(IdempotencyClaim::InProgress),
                        Some(Claim::Leased { until_ms, .. }) if until_ms > w.now_ms => {
                            return Ok(IdempotencyClaim::InProgress)
                        }
                        Some(Claim::Leased { owner, .. }) => {
                            adopted.get_or_insert(owner);
                        }
                        None => {}
                    }
                }
                let claim = Claim::Leased {
                    owner: adopted.clone().unwrap_or_else(|| owner.clone()),
                    until_ms: w.now_ms.saturating_add(lease_ms.max(1)),
                };
                let keep = w
                    .now_ms
                    .saturating_add(keep_secs.saturating_mul(1000).max(lease_ms));
                for name in &names {
                    w.put_until(name, &claim, keep)?;
                }
                Ok(adopted.map_or(IdempotencyClaim::Claimed, IdempotencyClaim::Adopted))
            })
            .await
    }

    async fn complete_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        response: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let names = idempotency_keys(app_id, keys);
        let done = Claim::Done(response.to_owned());
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                for name in &names {
                    w.put(name, &done, Some(ttl_secs))?;
                }
                Ok(())
            })
            .await
    }

    async fn idempotent_response(
        &self,
        app_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let name = keys::idempotency(app_id, key);
        let claim = self
            .db
            .read_record::<Claim>(name, "idempotency key")
            .await?;
        Ok(match claim {
            Some(Claim::Done(response)) => Some(response),
            _ => None,
        })
    }

    async fn release_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
    ) -> Result<(), StoreError> {
        let names = idempotency_keys(app_id, keys);
        let owner = owner.to_owned();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                for name in &names {
                    let held = match w.get(name, "idempotency key")? {
                        Some(Claim::Pending(o) | Claim::Leased { owner: o, .. }) => o == owner,
                        _ => false,
                    };
                    if held {
                        w.delete(name)?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
    ) -> Result<(), StoreError> {
        let message = message.clone();
        let endpoint_ids = endpoint_ids.to_vec();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                put_message(&mut w, &message, &endpoint_ids, retention_secs)
            })
            .await
    }

    async fn insert_unconfirmed(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
        deliver_at: Option<time::OffsetDateTime>,
        lease_ms: u64,
    ) -> Result<(), StoreError> {
        let item = NewUnconfirmed {
            message: message.clone(),
            endpoint_ids: endpoint_ids.to_vec(),
            retention_secs,
            deliver_at,
            lease_ms,
        };
        self.db
            .write(Durability::Immediate, move |txn| {
                put_unconfirmed(&mut Writer::open(txn)?, &item)
            })
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
        let item = ConfirmedMessage {
            app_id: app_id.to_owned(),
            msg_id: msg_id.to_owned(),
            keys: keys.to_vec(),
            response: response.to_owned(),
            ttl_secs,
        };
        self.db
            .write(Durability::Immediate, move |txn| {
                put_confirmed(&mut Writer::open(txn)?, &item)
            })
            .await
    }

    async fn unconfirmed(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Option<Unconfirmed>, StoreError> {
        let key = keys::outbox(app_id, msg_id);
        let mark = self.db.read_record::<Mark>(key, "outbox mark").await?;
        Ok(mark.map(|m| m.unconfirmed))
    }

    async fn claim_unconfirmed(
        &self,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Unconfirmed>, StoreError> {
        // Deferred: a lost re-lease leaves the mark due, to be taken again (repeated work).
        self.db
            .write(Durability::Deferred, move |txn| {
                let mut w = Writer::open(txn)?;
                let marks: Vec<Mark> =
                    records::scan(&w.records, keys::outbox_all(), w.now_ms, "outbox mark")?;
                let mut claimed = Vec::new();
                let now_ms = w.now_ms;
                for mut mark in marks.into_iter().filter(|m| m.until_ms <= now_ms) {
                    if claimed.len() >= limit.max(1) {
                        break;
                    }
                    mark.until_ms = w.now_ms.saturating_add(lease_ms);
                    let u = &mark.unconfirmed;
                    w.replace(&keys::outbox(&u.app_id, &u.msg_id), &mark)?;
                    claimed.push(mark.unconfirmed);
                }
                Ok(claimed)
            })
            .await
    }

    async fn remove_message(&self, app_id: &str, msg_id: &str) -> Result<(), StoreError> {
        let (app, msg) = (app_id.to_owned(), msg_id.to_owned());
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                w.delete(&keys::message(&app, &msg))?;
                w.unindex(&keys::messages(&app), &msg)?;
                w.delete(&keys::outbox(&app, &msg))?;
                w.delete_prefix(&keys::destinations(&app, &msg))
            })
            .await
    }

    async fn get_message(&self, app_id: &str, msg_id: &str) -> Result<Option<Message>, StoreError> {
        let key = keys::message(app_id, msg_id);
        self.db.read_record(key, "message").await
    }

    async fn list_messages(
        &self,
        app_id: &str,
        request: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let (app, request) = (app_id.to_owned(), request.clone());
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                let index = keys::messages(&app);
                records::read_page(
                    &table,
                    &index,
                    &request,
                    |id| keys::message(&app, id),
                    "message",
                )
            })
            .await
    }

    async fn expunge_payload(&self, app_id: &str, msg_id: &str) -> Result<bool, StoreError> {
        let key = keys::message(app_id, msg_id);
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let Some(mut message) = w.get::<Message>(&key, "message")? else {
                    return Ok(false);
                };
                message.payload = serde_json::value::RawValue::from_string("{}".into())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                w.replace(&key, &message)
            })
            .await
    }

    async fn destinations(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Vec<DestinationStatus>, StoreError> {
        let prefix = keys::destinations(app_id, msg_id);
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::scan(&table, &prefix, crate::db::now_ms(), "destination")
            })
            .await
    }

    /// One write transaction, one fsync, for the whole batch. Within it only storage can
    /// fail, and a storage failure fails the transaction, so the batch stands or falls whole.
    async fn insert_unconfirmed_batch(
        &self,
        items: &[NewUnconfirmed],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let items = items.to_vec();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                for item in &items {
                    put_unconfirmed(&mut w, item)?;
                }
                Ok(vec![Ok(()); items.len()])
            })
            .await
    }

    /// One write, one fsync: the message, its tasks and its response (see the port). The
    /// tasks are handed out only after the commit, from memory, as `publish` does.
    async fn accept_and_enqueue(&self, item: &AcceptedMessage) -> Result<Option<()>, StoreError> {
        let message = &item.message;
        let accept = EncodedAccept {
            message: EncodedMessage::new(message, &item.endpoint_ids, item.retention_secs)?,
            tasks: self.queue.encode_tasks(&item.tasks)?,
            keys: idempotency_keys(&message.app_id, &item.keys),
            done: crate::encode(&Claim::Done(item.response.clone()))?,
            ttl_secs: item.ttl_secs,
        };
        let (first, sizes) = (accept.tasks.first, accept.tasks.sizes());
        self.db
            .write(Durability::Immediate, move |txn| accept.put(txn))
            .await?;
        self.queue.make_published_ready(first, &item.tasks, &sizes);
        Ok(Some(()))
    }

    /// One write transaction for the whole batch, like
    /// [`MessageStore::insert_unconfirmed_batch`].
    async fn confirm_messages_batch(
        &self,
        items: &[ConfirmedMessage],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let items = items.to_vec();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                for item in &items {
                    put_confirmed(&mut w, item)?;
                }
                Ok(vec![Ok(()); items.len()])
            })
            .await
    }
}

/// An outbox mark: the message, and when a sweeper may take it (the end of its lease).
#[derive(Serialize, Deserialize)]
struct Mark {
    unconfirmed: Unconfirmed,
    until_ms: u64,
}

/// Stores a message and a pending destination per endpoint in `w`'s transaction.
fn put_message(
    w: &mut Writer<'_>,
    message: &Message,
    endpoint_ids: &[String],
    retention_secs: u64,
) -> Result<(), StoreError> {
    EncodedMessage::new(message, endpoint_ids, retention_secs)?.put(w)
}

/// A message with a pending destination per endpoint, encoded before its write reaches the
/// writer thread, which every write shares.
struct EncodedMessage {
    app_id: String,
    id: String,
    body: Vec<u8>,
    /// (key, body) of each pending destination.
    destinations: Vec<(String, Vec<u8>)>,
    retention_secs: u64,
}

impl EncodedMessage {
    fn new(
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
    ) -> Result<Self, StoreError> {
        let app = &message.app_id;
        let destinations = endpoint_ids
            .iter()
            .map(|endpoint_id| {
                let pending = DestinationStatus::pending(endpoint_id);
                let key = keys::destination(app, &message.id, endpoint_id);
                Ok((key, crate::encode(&pending)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            app_id: app.clone(),
            id: message.id.clone(),
            body: crate::encode(message)?,
            destinations,
            retention_secs,
        })
    }

    fn put(&self, w: &mut Writer<'_>) -> Result<(), StoreError> {
        let ttl = Some(self.retention_secs);
        w.put_encoded(&keys::message(&self.app_id, &self.id), &self.body, ttl)?;
        w.index(&keys::messages(&self.app_id), &self.id, ttl)?;
        for (key, pending) in &self.destinations {
            w.put_encoded(key, pending, ttl)?;
        }
        Ok(())
    }
}

/// A message accepted with its tasks, encoded for its one write.
struct EncodedAccept {
    message: EncodedMessage,
    tasks: Encoded,
    /// The idempotency keys' names, and the response they record (a `Claim::Done`).
    keys: Vec<String>,
    done: Vec<u8>,
    ttl_secs: u64,
}

impl EncodedAccept {
    /// Stores the message (no outbox mark), queues its tasks and records the response, as
    /// `insert_message`, `publish` and `confirm_message` do.
    fn put(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        let mut w = Writer::open(txn)?;
        self.message.put(&mut w)?;
        for name in &self.keys {
            w.put_encoded(name, &self.done, Some(self.ttl_secs))?;
        }
        self.tasks.insert(txn)
    }
}

/// Stores a message with its outbox mark in `w`'s transaction.
fn put_unconfirmed(w: &mut Writer<'_>, item: &NewUnconfirmed) -> Result<(), StoreError> {
    let message = &item.message;
    put_message(w, message, &item.endpoint_ids, item.retention_secs)?;
    let mark = Mark {
        unconfirmed: Unconfirmed {
            app_id: message.app_id.clone(),
            msg_id: message.id.clone(),
            deliver_at: item.deliver_at,
        },
        until_ms: w.now_ms.saturating_add(item.lease_ms),
    };
    let key = keys::outbox(&message.app_id, &message.id);
    w.put(&key, &mark, Some(item.retention_secs))
}

/// Clears a message's outbox mark and records its response under its keys, in `w`'s
/// transaction.
fn put_confirmed(w: &mut Writer<'_>, item: &ConfirmedMessage) -> Result<(), StoreError> {
    w.delete(&keys::outbox(&item.app_id, &item.msg_id))?;
    let done = Claim::Done(item.response.clone());
    for name in idempotency_keys(&item.app_id, &item.keys) {
        w.put(&name, &done, Some(item.ttl_secs))?;
    }
    Ok(())
}

fn idempotency_keys(app_id: &str, keys: &[String]) -> Vec<String> {
    keys.iter().map(|k| keys::idempotency(app_id, k)).collect()
}
