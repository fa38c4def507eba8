//! Rate limiting in Redis: the decisions are `hookline_core::rate` (GCRA over nanoseconds),
//! computed here; Redis only stores each limit's state and swaps it atomically.
//!
//! Each limit (an endpoint's, or an app's over all its endpoints) has one key holding the
//! next slot's theoretical arrival time and a second holding its last gate's state (an
//! endpoint's last actual send, an app's next send's theoretical time: the final gate against
//! late slots bunching up); all of an app's keys share its hash slot. An update
//! is a compare-and-set: read the state, decide in Rust, and write only if the state is still
//! what the decision was based on; when another dispatcher changed it first, decide again
//! from the values the script hands back. Every successful write is one decision on the
//! latest state, so slots stay one interval apart across all dispatchers. The last gate of a
//! send limited twice is one compare-and-set over both keys, so the send is recorded under
//! both limits or neither.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::ports::{RateLimiter, StoreError};
use hookline_core::rate::{self, Admissions, Limit, Subject};
use redis::Script;
use time::OffsetDateTime;

use crate::{unavailable, RedisStore};

/// KEYS: the states (one slot). ARGV: each key's expected value ('' for none), then each
/// key's new value and how long to keep it (ms), in pairs.
/// Answers {'1'} when it wrote, else {'0', each key's current value} for the next try.
static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local n = #KEYS
        local current = {}
        local same = true
        for i = 1, n do
            current[i] = redis.call('GET', KEYS[i]) or ''
            if current[i] ~= ARGV[i] then same = false end
        end
        if not same then
            table.insert(current, 1, '0')
            return current
        end
        for i = 1, n do
            redis.call('SET', KEYS[i], ARGV[n + 2 * i - 1], 'PX', ARGV[n + 2 * i])
        end
        return {'1'}
        ",
    )
});

/// Each failed try means another dispatcher's decision on the same limit went through;
/// past this many the store is treated as unavailable and the task is retried.
const MAX_TRIES: usize = 64;

/// What one decision on the stored state concluded.
enum Decision<T> {
    /// Nothing to store.
    Answer(T),
    /// Store each key's value for its keep (in the order of the keys), then answer.
    Store {
        values: Vec<(i64, Duration)>,
        answer: T,
    },
}

impl RedisStore {
    /// Runs `decide` on the states at `keys` (all on one slot) until its write lands on the
    /// states it read.
    async fn decide<T: Send>(
        &self,
        keys: &[String],
        decide: impl Fn(&[Option<i64>]) -> Decision<T> + Send,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        // MGET even for one key (redis-rs's `mget` sends GET then, answered unlisted).
        let mut current: Vec<String> = redis::cmd("MGET")
            .arg(keys)
            .query_async::<Vec<Option<String>>>(&mut conn)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        for _ in 0..MAX_TRIES {
            // Unreadable state (or none) counts as none: at worst one send goes early.
            let stored: Vec<Option<i64>> = current.iter().map(|v| v.parse().ok()).collect();
            let (values, answer) = match decide(&stored) {
                Decision::Answer(answer) => return Ok(answer),
                Decision::Store { values, answer } => (values, answer),
            };
            if values.len() != keys.len() {
                return Err(StoreError::Unavailable(
                    "rate limit: a decision for other keys".into(),
                ));
            }
            let mut invocation = COMPARE_AND_SET.prepare_invoke();
            for (key, expected) in keys.iter().zip(&current) {
                invocation.key(key).arg(expected);
            }
            for (value, keep_for) in values {
                let keep_ms = u64::try_from(keep_for.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                invocation.arg(value).arg(keep_ms);
            }
            let reply: Vec<String> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match reply.split_first() {
                Some((written, _)) if written == "1" => return Ok(answer),
                Some((_, now_stored)) if now_stored.len() == keys.len() => {
                    current = now_stored.to_vec();
                }
                _ => {
                    return Err(StoreError::Unavailable(format!(
                        "rate limit: unexpected reply {reply:?}"
                    )))
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "rate limit: state changed under {MAX_TRIES} tries in a row"
        )))
    }

    /// The key of `limit`'s next slot.
    fn slot_key(&self, app_id: &str, limit: &Limit<'_>) -> String {
        match limit.subject {
            Subject::Endpoint(endpoint_id) => self.keys.rate_limit(app_id, endpoint_id),
            Subject::App => self.keys.app_rate_limit(app_id),
        }
    }

    /// The key of `limit`'s last gate: an endpoint's last send, an app's next send's
    /// theoretical time.
    fn last_send_key(&self, app_id: &str, limit: &Limit<'_>) -> String {
        match limit.subject {
            Subject::Endpoint(endpoint_id) => self.keys.rate_limit_last(app_id, endpoint_id),
            Subject::App => self.keys.app_rate_limit_last(app_id),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisStore {
    async fn admit(
        &self,
        app_id: &str,
        limits: &[Limit<'_>],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, StoreError> {
        if limits.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = limits
            .iter()
            .map(|limit| self.last_send_key(app_id, limit))
            .collect();
        let gates: Vec<_> = limits.iter().map(Limit::gate).collect();
        let now = rate::unix_nanos(now);
        self.decide(&keys, |stored| {
            let states = stored.iter().copied().zip(gates.iter().copied());
            match rate::admit_all(states, now) {
                Admissions::Wait(left) => Decision::Answer(Some(left)),
                Admissions::Admitted(values) => Decision::Store {
                    values,
                    answer: None,
                },
            }
        })
        .await
    }

    async fn reserve(
        &self,
        app_id: &str,
        limit: Limit<'_>,
        now: OffsetDateTime,
    ) -> Result<Duration, StoreError> {
        let interval = limit.slots();
        let now = rate::unix_nanos(now);
        let key = self.slot_key(app_id, &limit);
        self.decide(std::slice::from_ref(&key), |next_slot| {
            let reservation = rate::reserve(next_slot.first().copied().flatten(), now, interval);
            Decision::Store {
                values: vec![(reservation.next_slot, reservation.keep_for)],
                answer: reservation.wait,
            }
        })
        .await
    }
}
