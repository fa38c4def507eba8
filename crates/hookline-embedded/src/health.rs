//! Endpoint health (the circuit breaker and failure streak, kept on disk so a restart does
//! not forget a failing endpoint) and rate-limit slots, of endpoints and of app throttles
//! (in memory: one process sends).
//!
//! The breaker's rule is `hookline_core::breaker::Health::apply`, here as in Redis. What
//! differs: this process writes every health record, so each endpoint's circuit is also
//! kept in memory and the gate answers without reading the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::breaker::{Health, OpenRules, Results};
use hookline_core::ports::{EndpointHealth, FailureStreak, Gate, RateLimiter, StoreError};
use hookline_core::rate::{self, Admissions, Limit, Subject};
use redb::WriteTransaction;
use time::OffsetDateTime;

use crate::db::{from_unix_ms, unavailable, unix_ms, Db, Durability, RECORDS};
use crate::keys;
use crate::records::{self, Writer};
use crate::EmbeddedStore;

/// Per-endpoint state only this process needs: rate-limit slots, the circuit's probe, and
/// each circuit as last written.
#[derive(Default)]
pub(crate) struct Local {
    /// Theoretical arrival time of the next slot (GCRA, unix nanoseconds), by endpoint and
    /// by app (its throttle).
    next_slot: Mutex<HashMap<String, i64>>,
    /// Each last gate's state (unix nanoseconds): an endpoint's last send, an app's next
    /// send's theoretical time.
    last_send: Mutex<HashMap<String, i64>>,
    /// Which message holds the half-open circuit's probe, and until when, by endpoint.
    probes: Mutex<HashMap<String, (String, i64)>>,
    /// Each endpoint's circuit as its latest committed health write left it, by health key.
    circuits: Mutex<HashMap<String, Circuit>>,
    /// Numbers health writes in the order the writer thread applies them, so that answers
    /// arriving out of order never put an older circuit over a newer one.
    writes: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Circuit {
    /// The health write that left it so (0: read when the database was opened).
    write: u64,
    /// Unix ms until which it is open; 0 while closed.
    open_until_ms: i64,
}

impl Local {
    /// The circuits stored in `db`, read once when it is opened.
    pub(crate) fn load(db: &Db) -> Result<Self, StoreError> {
        let stored: Vec<(String, Health)> = db.read_blocking(|txn| {
            let table = txn.open_table(RECORDS).map_err(unavailable)?;
            records::scan_keyed(&table, keys::all_health(), crate::db::now_ms(), "health")
        })?;
        let circuits = stored
            .into_iter()
            .filter(|(_, health)| health.open_until_ms != 0)
            .map(|(key, health)| {
                let circuit = Circuit {
                    write: 0,
                    open_until_ms: health.open_until_ms,
                };
                (key, circuit)
            })
            .collect();
        Ok(Self {
            circuits: Mutex::new(circuits),
            writes: AtomicU64::new(1),
            ..Self::default()
        })
    }

    fn open_until_ms(&self, key: &str) -> i64 {
        lock(&self.circuits)
            .get(key)
            .map_or(0, |circuit| circuit.open_until_ms)
    }

    /// Takes in a committed health write: the circuit for the gate, and the probe. A success
    /// ends the probe; a failure that leaves the circuit open lets a live probe keep its
    /// lease for the new open period, so the probing message's own retries may try again
    /// while every other task is held.
    fn written(&self, write: &HealthWrite, done: Written, open_ms: i64) {
        let health = done.health;
        {
            let mut circuits = lock(&self.circuits);
            let newer = circuits
                .get(&write.key)
                .is_none_or(|known| known.write < done.write);
            if newer {
                let circuit = Circuit {
                    write: done.write,
                    open_until_ms: health.open_until_ms,
                };
                circuits.insert(write.key.clone(), circuit);
            }
        }
        let mut probes = lock(&self.probes);
        if write.results.last_success.is_some() {
            probes.remove(&write.key);
        } else if health.open_until_ms != 0 {
            if let Some(failed_ms) = write.results.last_failure.map(unix_ms) {
                if let Some((_, until)) = probes.get_mut(&write.key).filter(|(_, u)| *u > failed_ms)
                {
                    *until = failed_ms.saturating_add(open_ms);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One endpoint's results, to apply to its stored health.
#[derive(Debug, Clone)]
pub(crate) struct HealthWrite {
    pub key: String,
    pub results: Results,
}

/// A health as one write stored it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub health: Health,
    write: u64,
}

/// Health writes for one write job: applied in the writer's transaction, then taken in
/// once committed.
pub(crate) struct HealthWrites {
    writes: Arc<Vec<HealthWrite>>,
    rules: OpenRules,
    local: Arc<Local>,
}

impl HealthWrites {
    pub(crate) fn new(writes: Vec<HealthWrite>, rules: OpenRules, local: &Arc<Local>) -> Self {
        Self {
            writes: Arc::new(writes),
            rules,
            local: Arc::clone(local),
        }
    }

    /// The part that goes into the write job.
    pub(crate) fn job(&self) -> Self {
        Self {
            writes: Arc::clone(&self.writes),
            rules: self.rules,
            local: Arc::clone(&self.local),
        }
    }

    /// Applies every endpoint's results to its stored health, in order; in the writer's
    /// transaction.
    pub(crate) fn apply(&self, txn: &WriteTransaction) -> Result<Vec<Written>, StoreError> {
        let mut w = Writer::open(txn)?;
        self.writes
            .iter()
            .map(|write| {
                let health = store(&mut w, write, self.rules)?;
                let write = self.local.writes.fetch_add(1, Ordering::Relaxed);
                Ok(Written { health, write })
            })
            .collect()
    }

    /// Takes in what the committed job wrote, answering each endpoint's health in order.
    pub(crate) fn committed(&self, written: &[Written]) -> Vec<Health> {
        let open_ms = millis(self.rules.open_for);
        self.writes
            .iter()
            .zip(written)
            .map(|(write, done)| {
                self.local.written(write, *done, open_ms);
                done.health
            })
            .collect()
    }
}

/// Applies `write`'s results to the stored health and stores the outcome. A health that is
/// only a success expires when it stops vouching for the endpoint; a streak is kept until a
/// success ends it.
fn store(w: &mut Writer<'_>, write: &HealthWrite, rules: OpenRules) -> Result<Health, StoreError> {
    let stored = w
        .get::<Health>(&write.key, "endpoint health")?
        .unwrap_or_default();
    let health = stored.apply(&write.results, rules);
    if health == stored {
        return Ok(health);
    }
    if health.consecutive == 0 && health.open_until_ms == 0 {
        let vouches_until = health
            .last_success_ms
            .saturating_add(millis(rules.open_for));
        w.put_until(
            &write.key,
            &health,
            u64::try_from(vouches_until).unwrap_or(0),
        )?;
    } else {
        w.put(&write.key, &health, None)?;
    }
    Ok(health)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
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
        let open_until = self.local.open_until_ms(&key);
        if open_until == 0 {
            return Ok(Gate::Closed);
        }
        let now_ms = unix_ms(now);
        let ttl = millis(probe_ttl).max(1);
        let mut probes = lock(&self.local.probes);
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

    /// One result through the same rule and write as a settled batch's.
    async fn record(
        &self,
        app_id: &str,
        endpoint_id: &str,
        success: bool,
        now: OffsetDateTime,
        threshold: u32,
        open_for: Duration,
    ) -> Result<FailureStreak, StoreError> {
        let mut results = Results::default();
        results.push(success, now);
        let key = keys::health(app_id, endpoint_id);
        let rules = OpenRules {
            threshold,
            open_for,
        };
        let writes = HealthWrites::new(vec![HealthWrite { key, results }], rules, &self.local);
        let job = writes.job();
        // Deferred: circuit state is advice; losing its last change in a crash is harmless.
        let written = self
            .db
            .write(Durability::Deferred, move |txn| job.apply(txn))
            .await?;
        let health = writes.committed(&written).pop().unwrap_or_default();
        Ok(FailureStreak {
            consecutive: health.consecutive,
            failing_since: health.failing_since(),
        })
    }

    async fn open_circuits(&self) -> Result<u64, StoreError> {
        let circuits = lock(&self.local.circuits);
        let open = circuits.values().filter(|c| c.open_until_ms != 0).count();
        Ok(u64::try_from(open).unwrap_or(u64::MAX))
    }
}

/// The in-memory key of a limit's state: the endpoint's health key, or the app's record key
/// for the app's throttle (distinct namespaces, so the two never meet).
fn rate_key(app_id: &str, limit: &Limit<'_>) -> String {
    match limit.subject {
        Subject::Endpoint(endpoint_id) => keys::health(app_id, endpoint_id),
        Subject::App => keys::app(app_id),
    }
}

#[async_trait]
impl RateLimiter for EmbeddedStore {
    async fn reserve(
        &self,
        app_id: &str,
        limit: Limit<'_>,
        now: OffsetDateTime,
    ) -> Result<Duration, StoreError> {
        // The same decision as the Redis adapter's, on state held under one lock.
        let mut next = self
            .local
            .next_slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = rate_key(app_id, &limit);
        let reservation = rate::reserve(
            next.get(&key).copied(),
            rate::unix_nanos(now),
            limit.slots(),
        );
        next.insert(key, reservation.next_slot);
        Ok(reservation.wait)
    }

    async fn admit(
        &self,
        app_id: &str,
        limits: &[Limit<'_>],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, StoreError> {
        let mut last = self
            .local
            .last_send
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let keys: Vec<String> = limits.iter().map(|l| rate_key(app_id, l)).collect();
        let states = keys
            .iter()
            .zip(limits)
            .map(|(key, limit)| (last.get(key).copied(), limit.gate()));
        match rate::admit_all(states, rate::unix_nanos(now)) {
            Admissions::Wait(left) => Ok(Some(left)),
            Admissions::Admitted(states) => {
                for (key, (state, _)) in keys.into_iter().zip(states) {
                    last.insert(key, state);
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record stored before health had its own type (no `last_success_ms`) still reads,
    /// both when the database opens and under a write.
    #[tokio::test]
    async fn health_stored_in_the_earlier_format_still_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("test.redb")).expect("open");
        let key = keys::health("app_1", "ep_1");
        let earlier = r#"{"consecutive":3,"failing_since_ms":1000,"open_until_ms":31000}"#;
        let put_key = key.clone();
        db.write(Durability::Immediate, move |txn| {
            Writer::open(txn)?.put_encoded(&put_key, earlier.as_bytes(), None)
        })
        .await
        .expect("write");
        let local = Arc::new(Local::load(&db).expect("load"));
        assert_eq!(local.open_until_ms(&key), 31_000);
        let mut results = Results::default();
        results.push(false, OffsetDateTime::UNIX_EPOCH + Duration::from_secs(40));
        let rules = OpenRules {
            threshold: 3,
            open_for: Duration::from_secs(30),
        };
        let writes = HealthWrites::new(vec![HealthWrite { key, results }], rules, &local);
        let job = writes.job();
        let written = db
            .write(Durability::Deferred, move |txn| job.apply(txn))
            .await
            .expect("apply");
        let health = writes.committed(&written);
        let expected = Health {
            consecutive: 4,
            failing_since_ms: 1000,
            open_until_ms: 70_000,
            last_success_ms: 0,
        };
        assert_eq!(health, [expected]);
    }
}
