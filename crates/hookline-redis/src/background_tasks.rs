//! Background tasks: one record per task, an index of every task, locks (one recovery per
//! endpoint) that expire with their holder's lease, and idempotency keys. Every key shares
//! the `{bgtask}` hash tag, so beginning a task is one script on one slot.

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::id;
use hookline_core::model::{BackgroundTask, TaskStatus, TASK_ID_PREFIX, TASK_RETENTION};
use hookline_core::ports::{BackgroundTaskStore, Page, PageRequest, StoreError, TaskStart};
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;

use crate::paging::{page, page_ids, read_records};
use crate::{decode, encode, unavailable, RedisStore};

/// KEYS: record, index, lock, idempotency key.
/// ARGV: id, JSON, record ttl (s), lease left (ms), locked (0/1), keyed (0/1), key ttl (s),
/// record key prefix, oldest id kept in the index.
/// Returns nil when the task was stored, else the JSON of the task that answers instead.
static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if ARGV[6] == '1' then
            local earlier = redis.call('GET', KEYS[4])
            if earlier then
                local body = redis.call('GET', ARGV[8] .. earlier)
                if body then return body end
            end
        end
        if ARGV[5] == '1' then
            local holder = redis.call('GET', KEYS[3])
            if holder then
                local body = redis.call('GET', ARGV[8] .. holder)
                if body then return body end
            end
            redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4])
        end
        if ARGV[6] == '1' then
            redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[7])
        end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        redis.call('ZADD', KEYS[2], 0, ARGV[1])
        redis.call('ZREMRANGEBYLEX', KEYS[2], '-', '(' .. ARGV[9])
        return false
        ",
    )
});

/// KEYS: record, lock. ARGV: id, JSON, record ttl (s), locked (0/1), running (0/1), lease
/// left (ms). A running task renews its lock (taking it back if it lapsed and nobody took
/// it); an ended one releases it. A lock another task holds is left alone.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        if ARGV[4] == '1' then
            local holder = redis.call('GET', KEYS[2])
            if ARGV[5] == '1' and (not holder or holder == ARGV[1]) then
                redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[6])
            elseif ARGV[5] ~= '1' and holder == ARGV[1] then
                redis.call('DEL', KEYS[2])
            end
        end
        return 1
        ",
    )
});

impl RedisStore {
    /// The lock key of `task`, or (when it has none) its record key, which no script
    /// treats as a lock: scripts take a fixed number of keys.
    fn lock_key(&self, task: &BackgroundTask) -> String {
        match &task.lock {
            Some(lock) => self.keys.background_task_lock(lock),
            None => self.keys.background_task(&task.id),
        }
    }
}

/// Milliseconds of the task's lease still to run (at least one, as `PX` requires).
fn lease_left_ms(task: &BackgroundTask) -> i64 {
    let left = (task.lease_until - OffsetDateTime::now_utc()).whole_milliseconds();
    i64::try_from(left).unwrap_or(i64::MAX).max(1)
}

fn flag(on: bool) -> &'static str {
    if on {
        "1"
    } else {
        "0"
    }
}

#[async_trait]
impl BackgroundTaskStore for RedisStore {
    async fn begin_task(
        &self,
        task: &BackgroundTask,
        start: &TaskStart,
    ) -> Result<Option<BackgroundTask>, StoreError> {
        let mut conn = self.conn();
        let record = self.keys.background_task(&task.id);
        let prefix = record.trim_end_matches(task.id.as_str()).to_owned();
        let idempotency = match &start.idempotency_key {
            Some(key) => self.keys.background_task_idempotency(key),
            None => record.clone(),
        };
        let oldest_kept =
            id::lower_bound_at(TASK_ID_PREFIX, OffsetDateTime::now_utc() - TASK_RETENTION);
        let answer: Option<String> = BEGIN
            .key(&record)
            .key(self.keys.background_tasks())
            .key(self.lock_key(task))
            .key(idempotency)
            .arg(&task.id)
            .arg(encode(task)?)
            .arg(TASK_RETENTION.as_secs())
            .arg(lease_left_ms(task))
            .arg(flag(task.lock.is_some()))
            .arg(flag(start.idempotency_key.is_some()))
            .arg(start.idempotency_ttl_secs.max(1))
            .arg(prefix)
            .arg(oldest_kept)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        answer
            .map(|body| decode("background task", &body))
            .transpose()
    }

    async fn save_task(&self, task: &BackgroundTask) -> Result<(), StoreError> {
        let mut conn = self.conn();
        SAVE.key(self.keys.background_task(&task.id))
            .key(self.lock_key(task))
            .arg(&task.id)
            .arg(encode(task)?)
            .arg(TASK_RETENTION.as_secs())
            .arg(flag(task.lock.is_some()))
            .arg(flag(task.status == TaskStatus::Running))
            .arg(lease_left_ms(task))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<BackgroundTask>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn
            .get(self.keys.background_task(task_id))
            .await
            .map_err(unavailable)?;
        body.map(|b| decode("background task", &b)).transpose()
    }

    async fn list_tasks(&self, request: &PageRequest) -> Result<Page<BackgroundTask>, StoreError> {
        let mut conn = self.conn();
        let (ids, more) = page_ids(&mut conn, &self.keys.background_tasks(), request).await?;
        let keys: Vec<String> = ids.iter().map(|id| self.keys.background_task(id)).collect();
        let tasks = read_records(&mut conn, &keys, "background task").await?;
        Ok(page(tasks, ids.last().cloned(), more, ids.first().cloned()))
    }
}
