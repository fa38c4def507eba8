//! Background tasks: one record per task, an index of every task, locks (one recovery per
//! endpoint) that expire with their holder's lease, and idempotency keys; beginning a task
//! is one write transaction.

use async_trait::async_trait;
use hookline_core::model::{BackgroundTask, TaskStatus, TASK_RETENTION};
use hookline_core::ports::{BackgroundTaskStore, Page, PageRequest, StoreError, TaskStart};

use crate::db::{unavailable, Durability, RECORDS};
use crate::keys;
use crate::records::{self, Writer};
use crate::EmbeddedStore;

/// When `task`'s lease ends, in unix ms (at least 1: 0 means "never expires").
fn lease_end_ms(task: &BackgroundTask) -> u64 {
    u64::try_from(task.lease_until.unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(0)
        .max(1)
}

/// The live task the id stored under `key` names, if any.
fn named_task(w: &Writer<'_>, key: &str) -> Result<Option<BackgroundTask>, StoreError> {
    match w.get::<String>(key, "background task reference")? {
        Some(id) => w.get(&keys::background_task(&id), "background task"),
        None => Ok(None),
    }
}

/// Stores the record and indexes it, both kept for the retention period.
fn put_task(w: &mut Writer<'_>, task: &BackgroundTask) -> Result<(), StoreError> {
    let ttl = Some(TASK_RETENTION.as_secs());
    w.put(&keys::background_task(&task.id), task, ttl)?;
    w.index(keys::background_tasks(), &task.id, ttl)
}

#[async_trait]
impl BackgroundTaskStore for EmbeddedStore {
    async fn begin_task(
        &self,
        task: &BackgroundTask,
        start: &TaskStart,
    ) -> Result<Option<BackgroundTask>, StoreError> {
        let (task, start) = (task.clone(), start.clone());
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let idempotency = start
                    .idempotency_key
                    .as_deref()
                    .map(keys::background_task_idempotency);
                if let Some(key) = &idempotency {
                    if let Some(earlier) = named_task(&w, key)? {
                        return Ok(Some(earlier));
                    }
                }
                if let Some(lock) = &task.lock {
                    let lock = keys::background_task_lock(lock);
                    if let Some(holder) = named_task(&w, &lock)? {
                        return Ok(Some(holder));
                    }
                    w.put_until(&lock, &task.id, lease_end_ms(&task))?;
                }
                if let Some(key) = &idempotency {
                    w.put(key, &task.id, Some(start.idempotency_ttl_secs))?;
                }
                put_task(&mut w, &task)?;
                Ok(None)
            })
            .await
    }

    async fn save_task(&self, task: &BackgroundTask) -> Result<(), StoreError> {
        let task = task.clone();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                put_task(&mut w, &task)?;
                let Some(lock) = &task.lock else {
                    return Ok(());
                };
                let lock = keys::background_task_lock(lock);
                let holder = w.get::<String>(&lock, "background task lock")?;
                let ours = holder.as_deref() == Some(task.id.as_str());
                match task.status {
                    // Renewed, or taken back after it lapsed if nobody took it meanwhile.
                    TaskStatus::Running if ours || holder.is_none() => {
                        w.put_until(&lock, &task.id, lease_end_ms(&task))
                    }
                    TaskStatus::Finished | TaskStatus::Failed if ours => w.delete(&lock),
                    _ => Ok(()),
                }
            })
            .await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<BackgroundTask>, StoreError> {
        self.db
            .read_record(keys::background_task(task_id), "background task")
            .await
    }

    async fn list_tasks(&self, request: &PageRequest) -> Result<Page<BackgroundTask>, StoreError> {
        let request = request.clone();
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::read_page(
                    &table,
                    keys::background_tasks(),
                    &request,
                    keys::background_task,
                    "background task",
                )
            })
            .await
    }
}
