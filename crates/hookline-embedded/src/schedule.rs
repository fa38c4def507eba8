//! The retry schedule: an entry per schedule key (its task, and either its due time or its
//! lease), with the due times and the leases each indexed by time.
//!
//! The same rules as the Redis scripts: the same key is stored once; claiming moves due
//! entries under a lease with a fresh claim token, after first making expired leases due
//! again (their tokens go with them); completing acts only on the entry's current claim, and
//! forgets the entry unless it was scheduled again while its claim was in flight.

use async_trait::async_trait;
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{ClaimedTask, RetrySchedule, ScheduleClaim, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::{from_unix_ms, unavailable, unix_ms, Durability, DUE, LEASES, SCHEDULED};
use crate::records::decode;
use crate::EmbeddedStore;

#[derive(Serialize, Deserialize)]
struct Entry {
    task: DeliveryTask,
    /// Waiting to be due at this time.
    #[serde(default)]
    due_ms: Option<i64>,
    /// Claimed until this time.
    #[serde(default)]
    lease_ms: Option<i64>,
    /// The token of the claim holding the lease: only that claim may complete the entry.
    #[serde(default)]
    claim: Option<String>,
}

pub(crate) struct Tables<'t> {
    entries: Table<'t, &'static str, &'static [u8]>,
    due: Table<'t, (i64, &'static str), ()>,
    leases: Table<'t, (i64, &'static str), ()>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            entries: txn.open_table(SCHEDULED).map_err(unavailable)?,
            due: txn.open_table(DUE).map_err(unavailable)?,
            leases: txn.open_table(LEASES).map_err(unavailable)?,
        })
    }

    fn entry(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        match self.entries.get(key).map_err(unavailable)? {
            Some(body) => decode("scheduled task", body.value()).map(Some),
            None => Ok(None),
        }
    }

    fn save(&mut self, key: &str, entry: &Entry) -> Result<(), StoreError> {
        let body = crate::encode(entry)?;
        self.entries
            .insert(key, body.as_slice())
            .map_err(unavailable)?;
        Ok(())
    }

    /// The first `limit` keys of a time index up to `now_ms`.
    fn up_to(
        table: &Table<'t, (i64, &'static str), ()>,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut out = Vec::new();
        for item in table
            .range(..=(now_ms, "\u{10FFFF}"))
            .map_err(unavailable)?
            .take(limit)
        {
            let (key, _) = item.map_err(unavailable)?;
            let (at, name) = key.value();
            out.push((at, name.to_owned()));
        }
        Ok(out)
    }
}

#[async_trait]
impl RetrySchedule for EmbeddedStore {
    async fn schedule(&self, task: &DeliveryTask, due: OffsetDateTime) -> Result<(), StoreError> {
        let task = task.clone();
        let due_ms = unix_ms(due);
        // Immediate: ingest schedules `deliverAt` messages before it answers 202.
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut t = Tables::open(txn)?;
                schedule_in(&mut t, &task, due_ms)
            })
            .await
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let now_ms = unix_ms(now);
        let lease_until = now_ms.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX));
        let limit = limit.max(1);
        let batch = ScheduleClaim::batch_token(now);
        // Deferred: a lost claim leaves the task due, to be claimed again.
        self.db
            .write(Durability::Deferred, move |txn| {
                let mut t = Tables::open(txn)?;
                for (at, key) in Tables::up_to(&t.leases, now_ms, limit)? {
                    t.leases.remove((at, key.as_str())).map_err(unavailable)?;
                    if let Some(mut entry) = t.entry(&key)? {
                        entry.lease_ms = None;
                        entry.claim = None;
                        if entry.due_ms.is_none() {
                            entry.due_ms = Some(now_ms);
                            t.due
                                .insert((now_ms, key.as_str()), ())
                                .map_err(unavailable)?;
                        }
                        t.save(&key, &entry)?;
                    }
                }
                let mut claimed = Vec::new();
                for (at, key) in Tables::up_to(&t.due, now_ms, limit)? {
                    t.due.remove((at, key.as_str())).map_err(unavailable)?;
                    let Some(mut entry) = t.entry(&key)? else {
                        continue;
                    };
                    if let Some(old) = entry.lease_ms {
                        t.leases.remove((old, key.as_str())).map_err(unavailable)?;
                    }
                    let token = ScheduleClaim::claim_token(&batch, claimed.len());
                    entry.due_ms = None;
                    entry.lease_ms = Some(lease_until);
                    entry.claim = Some(token.clone());
                    t.leases
                        .insert((lease_until, key.as_str()), ())
                        .map_err(unavailable)?;
                    t.save(&key, &entry)?;
                    claimed.push(ClaimedTask {
                        claim: ScheduleClaim { key, token },
                        task: entry.task,
                    });
                }
                Ok(claimed)
            })
            .await
    }

    async fn complete(&self, claims: &[ScheduleClaim]) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        let claims = claims.to_vec();
        // Deferred: a lost completion republishes the task once more (a duplicate).
        self.db
            .write(Durability::Deferred, move |txn| {
                let mut t = Tables::open(txn)?;
                for ScheduleClaim { key, token } in &claims {
                    let Some(mut entry) = t.entry(key)? else {
                        continue;
                    };
                    if entry.claim.as_ref() != Some(token) {
                        // Its lease ran out and the key was claimed again (or is due again):
                        // that claim is not ours to forget.
                        continue;
                    }
                    entry.claim = None;
                    if let Some(at) = entry.lease_ms.take() {
                        t.leases.remove((at, key.as_str())).map_err(unavailable)?;
                    }
                    if entry.due_ms.is_some() {
                        // Scheduled again while the claim was in flight: keep it.
                        t.save(key, &entry)?;
                    } else {
                        t.entries.remove(key.as_str()).map_err(unavailable)?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        self.db
            .read(|txn| {
                let due = txn.open_table(DUE).map_err(unavailable)?;
                let first = due.first().map_err(unavailable)?;
                Ok(first.and_then(|(key, _)| from_unix_ms(key.value().0)))
            })
            .await
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        self.db
            .read(|txn| {
                txn.open_table(SCHEDULED)
                    .map_err(unavailable)?
                    .len()
                    .map_err(unavailable)
            })
            .await
    }

    async fn schedule_all(
        &self,
        tasks: &[DeliveryTask],
        due: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let tasks = tasks.to_vec();
        let due_ms = unix_ms(due);
        // One durable write transaction: every task or none, fsynced before the 202.
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut t = Tables::open(txn)?;
                for task in &tasks {
                    schedule_in(&mut t, task, due_ms)?;
                }
                Ok(())
            })
            .await
    }
}

/// Puts `task` in the schedule due at `due_ms`, keeping a lease (and its claim's token) that
/// a claim holds on its key.
pub(crate) fn schedule_in(
    t: &mut Tables<'_>,
    task: &DeliveryTask,
    due_ms: i64,
) -> Result<(), StoreError> {
    let key = task.schedule_key();
    let (lease_ms, claim) = match t.entry(&key)? {
        Some(old) => {
            if let Some(at) = old.due_ms {
                t.due.remove((at, key.as_str())).map_err(unavailable)?;
            }
            (old.lease_ms, old.claim)
        }
        None => (None, None),
    };
    t.due
        .insert((due_ms, key.as_str()), ())
        .map_err(unavailable)?;
    let entry = Entry {
        task: task.clone(),
        due_ms: Some(due_ms),
        lease_ms,
        claim,
    };
    t.save(&key, &entry)
}
