//! Endpoint health (the circuit breaker and failure streak, kept on disk so a restart does
//! not forget a failing endpoint) and rate-limit slots (in memory: one process sends).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::ports::{EndpointHealth, FailureStreak, Gate, RateLimiter, StoreError};
use hookline_core::rate::{self, Admission, Interval};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::{from_unix_ms, unavailable, unix_ms, Durability, RECORDS};
use crate::keys;
use crate::records::{self, Writer};
use crate::EmbeddedStore;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Streak {
    consecutive: u32,
    failing_since_ms: i64,
    /// 0 while the circuit is closed.
    open_until_ms: i64,
    /// The last success, while it is recent enough to keep the circuit closed.
    #[serde(default)]
    last_success_ms: i64,
}

/// In-memory per-endpoint timing: rate-limit slots and the circuit's probe.
#[derive(Default)]
pub(crate) struct RateSlots {
    /// Theoretical arrival time of the next slot (GCRA, unix nanoseconds), by endpoint.
    next_slot: Mutex<HashMap<String, i64>>,
    /// When the last send was admitted (unix nanoseconds), by endpoint.
    last_send: Mutex<HashMap<String, i64>>,
    /// Which message holds the half-open circuit's probe, and until when, by endpoint.
    probes: Mutex<HashMap<String, (String, i64)>>,
}

#[async_trait]
impl EndpointHealth for EmbeddedStore {
    async fn gate(
        &self,
        app_id: &str,
        endpoint_id: &str,
        msg_id: &str,
        now: OffsetDateTime,
        probe_ttl: Duration,
    ) -> Result<Gate, StoreError> {
        let key = keys::health(app_id, endpoint_id);
        let read_key = key.clone();
        let streak: Option<Streak> = self
            .db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::get(&table, &read_key, crate::db::now_ms(), "endpoint health")
            })
            .await?;
        let open_until = streak.map_or(0, |s| s.open_until_ms);
        if open_until == 0 {
            return Ok(Gate::Closed);
        }
        let now_ms = unix_ms(now);
        let ttl = i64::try_from(probe_ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut probes = self
            .limits
            .probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lease = probes.get(&key).filter(|(_, until)| *until > now_ms);
        let open = |until_ms: i64| Gate::Open {
            until: from_unix_ms(until_ms).unwrap_or(now),
        };
        match lease {
            Some((holder, _)) if holder == msg_id => {}
            _ if now_ms < open_until => return Ok(open(open_until)),
            Some((_, until)) => return Ok(open(*until)),
            None => {}
        }
        probes.insert(key, (msg_id.to_owned(), now_ms.saturating_add(ttl)));
        Ok(Gate::Probe)
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
        let key = keys::health(app_id, endpoint_id);
        let now_ms = unix_ms(now);
        let open_ms = i64::try_from(open_for.as_millis()).unwrap_or(i64::MAX);
        let write_key = key.clone();
        // Deferred: circuit state is advice; losing its last change in a crash is harmless.
        let streak = self
            .db
            .write(Durability::Deferred, move |txn| {
                let mut w = Writer::open(txn)?;
                if success {
                    // Only the success is kept, for the open period it vouches for.
                    let streak = Streak {
                        last_success_ms: now_ms,
                        ..Streak::default()
                    };
                    let expires = u64::try_from(now_ms.saturating_add(open_ms)).unwrap_or(0);
                    w.put_until(&write_key, &streak, expires)?;
                    return Ok(streak);
                }
                let mut streak = w
                    .get::<Streak>(&write_key, "endpoint health")?
                    .unwrap_or_default();
                streak.consecutive = streak.consecutive.saturating_add(1);
                if streak.failing_since_ms == 0 {
                    streak.failing_since_ms = now_ms;
                }
                let alive = streak.last_success_ms > 0
                    && now_ms.saturating_sub(streak.last_success_ms) < open_ms;
                if streak.consecutive >= threshold.max(1) && !alive {
                    streak.open_until_ms = now_ms.saturating_add(open_ms);
                }
                w.put(&write_key, &streak, None)?;
                Ok(streak)
            })
            .await?;
        let mut probes = self
            .limits
            .probes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if success {
            probes.remove(&key);
        } else if streak.open_until_ms != 0 {
            // The probing message keeps its lease for the new open period, so its own
            // retries may try again while every other task is held.
            if let Some((_, until)) = probes.get_mut(&key).filter(|(_, u)| *u > now_ms) {
                *until = now_ms.saturating_add(open_ms);
            }
        }
        Ok(FailureStreak {
            consecutive: streak.consecutive,
            failing_since: (streak.failing_since_ms > 0)
                .then(|| from_unix_ms(streak.failing_since_ms))
                .flatten(),
        })
    }

    async fn open_circuits(&self) -> Result<u64, StoreError> {
        self.db
            .read(|txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                let all: Vec<Streak> =
                    records::scan(&table, keys::all_health(), crate::db::now_ms(), "health")?;
                Ok(all.iter().filter(|s| s.open_until_ms != 0).count() as u64)
            })
            .await
    }
}

#[async_trait]
impl RateLimiter for EmbeddedStore {
    async fn reserve(
        &self,
        app_id: &str,
        endpoint_id: &str,
        per_second: u16,
        now: OffsetDateTime,
    ) -> Result<Duration, StoreError> {
        // The same decision as the Redis adapter's, on state held under one lock.
        let mut next = self
            .limits
            .next_slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = keys::health(app_id, endpoint_id);
        let reservation = rate::reserve(
            next.get(&key).copied(),
            rate::unix_nanos(now),
            Interval::reserved_slots(per_second),
        );
        next.insert(key, reservation.next_slot);
        Ok(reservation.wait)
    }

    async fn admit(
        &self,
        app_id: &str,
        endpoint_id: &str,
        per_second: u16,
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, StoreError> {
        let mut last = self
            .limits
            .last_send
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = keys::health(app_id, endpoint_id);
        match rate::admit(
            last.get(&key).copied(),
            rate::unix_nanos(now),
            Interval::per_second(per_second),
        ) {
            Admission::Wait(left) => Ok(Some(left)),
            Admission::Admitted { last_send, .. } => {
                last.insert(key, last_send);
                Ok(None)
            }
        }
    }
}
