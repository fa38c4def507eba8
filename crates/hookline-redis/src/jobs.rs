//! Background jobs: a job record per id and a lock per endpoint, on the app's slot.

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::model::RecoverJob;
use hookline_core::ports::{JobStore, StoreError};
use redis::{AsyncCommands, Script};

use crate::{decode, encode, unavailable, RedisStore};

/// How long finished job records are kept.
const JOB_TTL_SECS: u64 = 7 * 24 * 3600;

/// KEYS: lock, job. ARGV: job id, job JSON, lock ttl, job ttl, job key prefix.
/// Returns nil when the lock was taken, else the running job's JSON.
static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local holder = redis.call('GET', KEYS[1])
        if holder then
            local body = redis.call('GET', ARGV[5] .. holder)
            if body then return body end
        end
        redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
        redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
        return false
        ",
    )
});

/// KEYS: lock. ARGV: job id. Deletes the lock only if this job holds it.
static END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('DEL', KEYS[1])
        end
        return 1
        ",
    )
});

#[async_trait]
impl JobStore for RedisStore {
    async fn begin_recover(
        &self,
        job: &RecoverJob,
        lock_ttl_secs: u64,
    ) -> Result<Option<RecoverJob>, StoreError> {
        let mut conn = self.conn();
        let job_key = self.keys.job(&job.app_id, &job.id);
        let prefix = job_key.trim_end_matches(job.id.as_str()).to_owned();
        let running: Option<String> = BEGIN
            .key(self.keys.recover_lock(&job.app_id, &job.endpoint_id))
            .key(job_key)
            .arg(&job.id)
            .arg(encode(job)?)
            .arg(lock_ttl_secs.max(1))
            .arg(JOB_TTL_SECS)
            .arg(prefix)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        running.map(|body| decode("job", &body)).transpose()
    }

    async fn save_job(&self, job: &RecoverJob) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.set_ex(
            self.keys.job(&job.app_id, &job.id),
            encode(job)?,
            JOB_TTL_SECS,
        )
        .await
        .map_err(unavailable)
    }

    async fn get_job(&self, app_id: &str, job_id: &str) -> Result<Option<RecoverJob>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn
            .get(self.keys.job(app_id, job_id))
            .await
            .map_err(unavailable)?;
        body.map(|b| decode("job", &b)).transpose()
    }

    async fn end_recover(&self, job: &RecoverJob) -> Result<(), StoreError> {
        let mut conn = self.conn();
        END.key(self.keys.recover_lock(&job.app_id, &job.endpoint_id))
            .arg(&job.id)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
