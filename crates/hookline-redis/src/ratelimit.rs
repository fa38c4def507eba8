//! GCRA rate limiting in Redis: one key per endpoint holds the theoretical arrival time.
//! Every reservation advances it by the emission interval, so slots are handed out one
//! interval apart across all dispatchers, and nobody polls. A second key records the last
//! actual send, the final gate against late slots bunching up.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::ports::{RateLimiter, StoreError};
use redis::Script;
use time::OffsetDateTime;

use crate::{unavailable, RedisStore};

/// KEYS: tat. ARGV: now_ms, interval_ms. Returns the wait in ms before the reserved slot.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local now = tonumber(ARGV[1])
        local interval = tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
        local slot = math.max(tat, now)
        redis.call('SET', KEYS[1], slot + interval, 'PX', slot + interval - now + 1000)
        return slot - now
        ",
    )
});

/// KEYS: last. ARGV: now_ms, interval_ms. 0 when admitted (and recorded), else the ms left.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local now = tonumber(ARGV[1])
        local interval = tonumber(ARGV[2])
        local last = tonumber(redis.call('GET', KEYS[1]) or '0')
        if now - last < interval then return interval - (now - last) end
        redis.call('SET', KEYS[1], now, 'PX', interval + 1000)
        return 0
        ",
    )
});

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateLimiter for RedisStore {
    async fn admit(
        &self,
        app_id: &str,
        endpoint_id: &str,
        per_second: u16,
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, StoreError> {
        let interval_ms = 1000 / u64::from(per_second.max(1));
        let mut conn = self.conn();
        let left_ms: i64 = ADMIT
            .key(self.keys.rate_limit_last(app_id, endpoint_id))
            .arg(unix_ms(now))
            .arg(interval_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((left_ms > 0).then(|| Duration::from_millis(u64::try_from(left_ms).unwrap_or(0))))
    }

    async fn reserve(
        &self,
        app_id: &str,
        endpoint_id: &str,
        per_second: u16,
        now: OffsetDateTime,
    ) -> Result<Duration, StoreError> {
        // Slots are spaced 5% wider than the limit: deferred attempts come back through the
        // scheduler and the queue, and the slack absorbs their jitter so a receiver never
        // sees a second with more than it asked for.
        let interval_ms = 1050 / u64::from(per_second.max(1));
        let now_ms = unix_ms(now);
        let mut conn = self.conn();
        let wait_ms: i64 = RESERVE
            .key(self.keys.rate_limit(app_id, endpoint_id))
            .arg(now_ms)
            .arg(interval_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)))
    }
}
