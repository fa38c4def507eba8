//! Rate limiting in Redis: the decisions are `hookline_core::rate` (GCRA over nanoseconds),
//! computed here; Redis only stores each endpoint's state and swaps it atomically.
//!
//! One key per endpoint holds the next slot's theoretical arrival time, a second the last
//! actual send (the final gate against late slots bunching up). An update is a
//! compare-and-set: read the state, decide in Rust, and write only if the state is still what
//! the decision was based on; when another dispatcher changed it first, decide again from
//! the value the script hands back. Every successful write is one decision on the latest
//! state, so slots stay one interval apart across all dispatchers.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::ports::{RateLimiter, StoreError};
use hookline_core::rate::{self, Admission, Interval};
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;

use crate::{unavailable, RedisStore};

/// KEYS: state. ARGV: expected value ('' for none), new value, keep for (ms).
/// Answers {1, ''} when it wrote, else {0, the current value} for the next try.
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = redis.call('GET', KEYS[1]) or ''
        if current ~= ARGV[1] then return {0, current} end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return {1, ''}
        ",
    )
});

/// Each failed try means another dispatcher's decision on the same endpoint went through;
/// past this many the store is treated as unavailable and the task is retried.
const MAX_TRIES: usize = 64;

/// What one decision on the stored state concluded.
enum Decision<T> {
    /// Nothing to store.
    Answer(T),
    /// Store `value` for `keep_for`, then answer.
    Store {
        value: i64,
        keep_for: Duration,
        answer: T,
    },
}

impl RedisStore {
    /// Runs `decide` on the state at `key` until its write lands on the state it read.
    async fn decide<T: Send>(
        &self,
        key: String,
        decide: impl Fn(Option<i64>) -> Decision<T> + Send,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let mut current: String = conn
            .get::<_, Option<String>>(&key)
            .await
            .map_err(unavailable)?
            .unwrap_or_default();
        for _ in 0..MAX_TRIES {
            // Unreadable state (or none) counts as none: at worst one send goes early.
            let stored = current.parse::<i64>().ok();
            let (value, keep_for, answer) = match decide(stored) {
                Decision::Answer(answer) => return Ok(answer),
                Decision::Store {
                    value,
                    keep_for,
                    answer,
                } => (value, keep_for, answer),
            };
            let keep_ms = u64::try_from(keep_for.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let (written, now_stored): (i64, String) = COMPARE_AND_SET
                .key(&key)
                .arg(&current)
                .arg(value)
                .arg(keep_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if written == 1 {
                return Ok(answer);
            }
            current = now_stored;
        }
        Err(StoreError::Unavailable(format!(
            "rate limit: state changed under {MAX_TRIES} tries in a row"
        )))
    }
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
        let interval = Interval::per_second(per_second);
        let now = rate::unix_nanos(now);
        self.decide(
            self.keys.rate_limit_last(app_id, endpoint_id),
            |last| match rate::admit(last, now, interval) {
                Admission::Wait(left) => Decision::Answer(Some(left)),
                Admission::Admitted {
                    last_send,
                    keep_for,
                } => Decision::Store {
                    value: last_send,
                    keep_for,
                    answer: None,
                },
            },
        )
        .await
    }

    async fn reserve(
        &self,
        app_id: &str,
        endpoint_id: &str,
        per_second: u16,
        now: OffsetDateTime,
    ) -> Result<Duration, StoreError> {
        let interval = Interval::reserved_slots(per_second);
        let now = rate::unix_nanos(now);
        self.decide(self.keys.rate_limit(app_id, endpoint_id), |next_slot| {
            let reservation = rate::reserve(next_slot, now, interval);
            Decision::Store {
                value: reservation.next_slot,
                keep_for: reservation.keep_for,
                answer: reservation.wait,
            }
        })
        .await
    }
}
