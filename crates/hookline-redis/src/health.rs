//! Endpoint health: a hash per endpoint with the failure streak and the circuit's open-until
//! time, and a probe key held by the one delivery trying a half-open circuit.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::ports::{EndpointHealth, FailureStreak, Gate, StoreError};
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;

use crate::{unavailable, RedisStore};

/// KEYS: health, probe. ARGV: now_ms, probe_ttl_ms, msg_id.
/// Returns {0 closed | 1 open | 2 probe, until_ms}: for an open circuit, when it may be
/// tried (the open period's end, or the probe lease's when another message holds it).
static GATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
        if open_until == 0 then return {0, 0} end
        local now = tonumber(ARGV[1])
        if redis.call('GET', KEYS[2]) == ARGV[3] then
            redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
            return {2, open_until}
        end
        if now < open_until then return {1, open_until} end
        if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then return {2, open_until} end
        local left = redis.call('PTTL', KEYS[2])
        if left < 0 then left = 0 end
        return {1, now + left}
        ",
    )
});

/// KEYS: health, probe. ARGV: success (1/0), now_ms, threshold, open_ms.
/// Returns {consecutive, failing_since_ms (0 when none), 1 if a success closed an opened
/// circuit, 1 if the circuit is open}.
/// A success leaves only `last_success`, expiring with the open period it vouches for; a
/// failure makes the hash persistent again so a streak never expires halfway.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local now = tonumber(ARGV[2])
        local open_ms = tonumber(ARGV[4])
        if ARGV[1] == '1' then
            local was_opened = redis.call('HEXISTS', KEYS[1], 'open_until')
            redis.call('DEL', KEYS[1], KEYS[2])
            redis.call('HSET', KEYS[1], 'last_success', now)
            redis.call('PEXPIRE', KEYS[1], math.max(open_ms, 1))
            return {0, 0, was_opened, 0}
        end
        redis.call('PERSIST', KEYS[1])
        local consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
        local since = tonumber(redis.call('HGET', KEYS[1], 'failing_since') or '0')
        if since == 0 then
            since = now
            redis.call('HSET', KEYS[1], 'failing_since', now)
        end
        local last_success = tonumber(redis.call('HGET', KEYS[1], 'last_success') or '0')
        local alive = last_success > 0 and now - last_success < open_ms
        if consecutive >= tonumber(ARGV[3]) and not alive then
            redis.call('HSET', KEYS[1], 'open_until', now + open_ms)
            redis.call('PEXPIRE', KEYS[2], math.max(open_ms, 1))
        end
        local open = redis.call('HEXISTS', KEYS[1], 'open_until')
        return {consecutive, since, 0, open}
        ",
    )
});

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl EndpointHealth for RedisStore {
    async fn open_circuits(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        conn.scard(self.keys.open_circuits())
            .await
            .map_err(unavailable)
    }

    async fn gate(
        &self,
        app_id: &str,
        endpoint_id: &str,
        msg_id: &str,
        now: OffsetDateTime,
        probe_ttl: Duration,
    ) -> Result<Gate, StoreError> {
        let mut conn = self.conn();
        let (state, until_ms): (i64, i64) = GATE
            .key(self.keys.health(app_id, endpoint_id))
            .key(self.keys.health_probe(app_id, endpoint_id))
            .arg(unix_ms(now))
            .arg(millis(probe_ttl).max(1))
            .arg(msg_id)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match state {
            0 => Gate::Closed,
            2 => Gate::Probe,
            _ => Gate::Open {
                until: OffsetDateTime::from_unix_timestamp_nanos(i128::from(until_ms) * 1_000_000)
                    .unwrap_or(now),
            },
        })
    }

    async fn record(
        &self,
        app_id: &str,
        endpoint_id: &str,
        success: bool,
        now: OffsetDateTime,
        threshold: u32,
        open_for: Duration,
    ) -> Result<FailureStreak, StoreError> {
        let mut conn = self.conn();
        let (consecutive, since_ms, closed_opened, open): (i64, i64, i64, i64) = RECORD
            .key(self.keys.health(app_id, endpoint_id))
            .key(self.keys.health_probe(app_id, endpoint_id))
            .arg(if success { 1 } else { 0 })
            .arg(unix_ms(now))
            .arg(threshold.max(1))
            .arg(millis(open_for))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        // The set of open circuits is global (another hash slot), so it is kept beside the
        // script rather than in it; it only feeds a gauge. An endpoint is in it exactly when
        // its hash has `open_until`, so most successes have nothing to remove.
        let member = format!("{app_id}:{endpoint_id}");
        let open_circuits = self.keys.open_circuits();
        if closed_opened == 1 {
            let _: () = conn
                .srem(&open_circuits, &member)
                .await
                .map_err(unavailable)?;
        } else if open == 1 {
            let _: () = conn
                .sadd(&open_circuits, &member)
                .await
                .map_err(unavailable)?;
        }
        Ok(FailureStreak {
            consecutive: u32::try_from(consecutive).unwrap_or(u32::MAX),
            failing_since: (since_ms > 0)
                .then(|| {
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(since_ms) * 1_000_000).ok()
                })
                .flatten(),
        })
    }
}
