//! The retry schedule: a sorted set of due times, a hash of task bodies, a sorted set of
//! leases for claimed tasks and a hash of each claimed key's current claim token. A scheduler
//! that dies between claim and publish loses nothing: its lease runs out and the next claim
//! makes the task due again.

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{ClaimedTask, RetrySchedule, ScheduleClaim, StoreError};
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;

use crate::{decode, encode, unavailable, RedisStore};

/// KEYS: due, leases, tasks, claims. ARGV: now_ms, lease_until_ms, limit, batch token.
/// Returns a flat list key1, token1, body1, key2, ... Each claim's token (the batch token and
/// its position) is recorded in `claims`; an expired lease loses its token with its lease.
static CLAIM_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
        for _, key in ipairs(expired) do
            redis.call('ZREM', KEYS[2], key)
            redis.call('HDEL', KEYS[4], key)
            redis.call('ZADD', KEYS[1], ARGV[1], key)
        end
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
        local out = {}
        local claimed = 0
        for _, key in ipairs(due) do
            redis.call('ZREM', KEYS[1], key)
            local body = redis.call('HGET', KEYS[3], key)
            if body then
                local token = ARGV[4] .. ':' .. claimed
                claimed = claimed + 1
                redis.call('ZADD', KEYS[2], ARGV[2], key)
                redis.call('HSET', KEYS[4], key, token)
                out[#out + 1] = key
                out[#out + 1] = token
                out[#out + 1] = body
            end
        end
        return out
        ",
    )
});

/// KEYS: due, leases, tasks, claims. ARGV: key1, token1, key2, token2, ...
/// Only the key's current claim completes: a claim whose lease ran out and was taken over
/// holds an old token and changes nothing. A key scheduled again while its claim was in
/// flight (a deferral of the attempt the claim carried) is back in `due`: its lease goes,
/// but its body must stay for the next claim.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        for i = 1, #ARGV - 1, 2 do
            local key = ARGV[i]
            if redis.call('HGET', KEYS[4], key) == ARGV[i + 1] then
                redis.call('HDEL', KEYS[4], key)
                redis.call('ZREM', KEYS[2], key)
                if not redis.call('ZSCORE', KEYS[1], key) then
                    redis.call('HDEL', KEYS[3], key)
                end
            end
        end
        return 1
        ",
    )
});

#[async_trait]
impl RetrySchedule for RedisStore {
    async fn schedule(&self, task: &DeliveryTask, due: OffsetDateTime) -> Result<(), StoreError> {
        self.schedule_all(std::slice::from_ref(task), due).await
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let mut conn = self.conn();
        let now_ms = unix_ms(now);
        let flat: Vec<String> = CLAIM_DUE
            .key(self.keys.schedule_due())
            .key(self.keys.schedule_leases())
            .key(self.keys.schedule_tasks())
            .key(self.keys.schedule_claims())
            .arg(now_ms)
            .arg(now_ms.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX)))
            .arg(limit.max(1))
            .arg(ScheduleClaim::batch_token(now))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut claimed = Vec::with_capacity(flat.len() / 3);
        for triple in flat.chunks_exact(3) {
            claimed.push(ClaimedTask {
                claim: ScheduleClaim {
                    key: triple[0].clone(),
                    token: triple[1].clone(),
                },
                task: decode("scheduled task", &triple[2])?,
            });
        }
        Ok(claimed)
    }

    async fn complete(&self, claims: &[ScheduleClaim]) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let mut invocation = COMPLETE.key(self.keys.schedule_due());
        invocation
            .key(self.keys.schedule_leases())
            .key(self.keys.schedule_tasks())
            .key(self.keys.schedule_claims());
        for claim in claims {
            invocation.arg(&claim.key).arg(&claim.token);
        }
        invocation
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let mut conn = self.conn();
        let first: Vec<(String, i64)> = conn
            .zrange_withscores(self.keys.schedule_due(), 0, 0)
            .await
            .map_err(unavailable)?;
        Ok(first.first().and_then(|(_, ms)| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000).ok()
        }))
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        conn.hlen(self.keys.schedule_tasks())
            .await
            .map_err(unavailable)
    }

    async fn schedule_all(
        &self,
        tasks: &[DeliveryTask],
        due: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        // One MULTI on the `{sched}` slot: every task or none.
        let mut pipe = redis::pipe();
        pipe.atomic();
        let due_ms = unix_ms(due);
        for task in tasks {
            let key = task.schedule_key();
            pipe.hset(self.keys.schedule_tasks(), &key, encode(task)?)
                .ignore()
                .zadd(self.keys.schedule_due(), &key, due_ms)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }
}

fn unix_ms(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
