//! Endpoint health: a hash per endpoint with the failure streak and the circuit's open-until
//! time, and a probe key held by the one delivery trying a half-open circuit.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::breaker::{OpenRules, Results};
use hookline_core::ports::{
    EndpointHealth, FailureStreak, Gate, HealthReport, Settlement, StoreError,
};
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
        // One result is a batch of one: the rule and its script are the batch's.
        let mut results = Results::default();
        results.push(success, now);
        let report = HealthReport {
            app_id: app_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            results,
        };
        let rules = OpenRules {
            threshold,
            open_for,
        };
        let after = self.settle(&[], &[report], rules).await?;
        let health = after.first().map(|a| a.health).unwrap_or_default();
        Ok(FailureStreak {
            consecutive: health.consecutive,
            failing_since: health.failing_since(),
        })
    }
}
