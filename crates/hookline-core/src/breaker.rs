//! What the dispatcher does with a task whose endpoint's circuit is open: hold it, without
//! spending an attempt, until the circuit may be tried again, or give it up once it has
//! been held too long. Pure, so the rules are tested without a clock or a store.

use std::time::Duration;

use time::OffsetDateTime;

use crate::retry::RetryPolicy;

/// The shortest hold, so a task whose circuit is still open after its open period (another
/// dispatcher's probe is in flight) does not spin through the schedule.
pub const MIN_HOLD: Duration = Duration::from_millis(250);

/// The default bound on how long a task may be held: the retry schedule's span (a message
/// is never given up sooner than its schedule would have ended anyway), and at least two
/// open periods (so at least one probe comes after a task's first hold).
pub fn default_max_hold(retry: &RetryPolicy, open_for: Duration) -> Duration {
    retry.span().max(open_for.saturating_mul(2))
}

/// The breaker's settings that decide a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRules {
    /// How long a circuit stays open; held tasks come back spread over half of it.
    pub open_for: Duration,
    /// How long a task may be held (since its first hold after its last real attempt)
    /// before its message is given up.
    pub max_hold: Duration,
}

/// What becomes of a task that met an open circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Back into the retry schedule, due at `due`, same attempt number; `held_since` rides
    /// in the task.
    Until {
        due: OffsetDateTime,
        held_since: OffsetDateTime,
    },
    /// Held longer than `max_hold`: the message is given up for this endpoint.
    GiveUp { held_since: OffsetDateTime },
}

impl HoldRules {
    /// Decides a hold. `until` is when the circuit may be probed (in the past when another
    /// delivery holds the probe); `held_since` is when this task was first held (`None` on
    /// its first hold); `unit` is a uniform random number in `0.0..1.0` that spreads the
    /// held tasks over half the open period, so a recovering receiver does not get them
    /// all at once. A hold never runs past the task's give-up time, so a message is given
    /// up on time.
    pub fn decide(
        &self,
        until: OffsetDateTime,
        held_since: Option<OffsetDateTime>,
        now: OffsetDateTime,
        unit: f64,
    ) -> Hold {
        let held_since = held_since.unwrap_or(now);
        let give_up_at = held_since + self.max_hold;
        if now >= give_up_at {
            return Hold::GiveUp { held_since };
        }
        let start = until.max(now + MIN_HOLD);
        // Spread within what is left before the give-up time, so a bound that cuts the
        // spread short does not bunch the tasks at it.
        let due = match Duration::try_from(give_up_at - start) {
            Ok(left) if !left.is_zero() => {
                start + (self.open_for / 2).min(left).mul_f64(unit.clamp(0.0, 1.0))
            }
            _ => give_up_at,
        };
        Hold::Until { due, held_since }
    }

    /// Like [`Self::decide`] with a fresh random spread.
    pub fn decide_random(
        &self,
        until: OffsetDateTime,
        held_since: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Hold {
        self.decide(until, held_since, now, rand::random::<f64>())
    }
}

/// The results of consecutive attempts on one endpoint, folded: what a batch of attempts
/// tells the breaker in one write instead of one write per attempt. Every success counts
/// (a run that skipped successes let a healthy endpoint's failures pile up into an open
/// circuit); only their latest time matters, because a success ends the streak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Results {
    /// The latest success, if any.
    pub last_success: Option<OffsetDateTime>,
    /// Failures after the latest success (all of them without one).
    pub failures: u32,
    /// The first and the last of those failures.
    pub first_failure: Option<OffsetDateTime>,
    pub last_failure: Option<OffsetDateTime>,
}

impl Results {
    /// Adds the next attempt's result, in the order the attempts ended.
    pub fn push(&mut self, success: bool, at: OffsetDateTime) {
        if success {
            *self = Self {
                last_success: Some(at),
                ..Self::default()
            };
        } else {
            self.failures = self.failures.saturating_add(1);
            self.first_failure.get_or_insert(at);
            self.last_failure = Some(at);
        }
    }
}

/// An endpoint's stored health: its failure streak and its circuit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub consecutive: u32,
    /// Unix ms of the streak's first failure; 0 without a streak.
    pub failing_since_ms: i64,
    /// Unix ms until which the circuit is open; 0 while closed.
    pub open_until_ms: i64,
    /// The latest success, while it is recent enough to vouch for the endpoint.
    #[serde(default)]
    pub last_success_ms: i64,
}

/// The breaker's settings that decide when a circuit opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRules {
    /// Consecutive failures that open the circuit.
    pub threshold: u32,
    /// How long it stays open; also how long a success vouches for a flaky endpoint.
    pub open_for: Duration,
}

impl Health {
    /// Applies a run of results. A success clears the streak and closes the circuit; the
    /// `threshold`-th consecutive failure after it opens the circuit for `open_for` from that
    /// failure, unless a success within `open_for` before it shows the endpoint alive (a
    /// flaky endpoint's failures are retried, not held). The Redis store's script applies
    /// the same rule.
    pub fn apply(self, results: &Results, rules: OpenRules) -> Self {
        let mut health = match results.last_success {
            Some(at) => Self {
                last_success_ms: unix_ms(at),
                ..Self::default()
            },
            None => self,
        };
        let Some(last) = results.last_failure.filter(|_| results.failures > 0) else {
            return health;
        };
        health.consecutive = health.consecutive.saturating_add(results.failures);
        if health.failing_since_ms == 0 {
            health.failing_since_ms = results.first_failure.map_or(unix_ms(last), unix_ms);
        }
        let open_ms = i64::try_from(rules.open_for.as_millis()).unwrap_or(i64::MAX);
        let last_ms = unix_ms(last);
        let alive =
            health.last_success_ms > 0 && last_ms.saturating_sub(health.last_success_ms) < open_ms;
        if health.consecutive >= rules.threshold.max(1) && !alive {
            health.open_until_ms = last_ms.saturating_add(open_ms);
        }
        health
    }

    /// When the streak began, if there is one.
    pub fn failing_since(&self) -> Option<OffsetDateTime> {
        (self.failing_since_ms > 0)
            .then(|| from_unix_ms(self.failing_since_ms))
            .flatten()
    }
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn at(ms: u64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    const OPEN: OpenRules = OpenRules {
        threshold: 3,
        open_for: Duration::from_secs(30),
    };

    #[test]
    fn a_folded_run_keeps_only_the_failures_after_its_last_success() {
        let mut run = Results::default();
        for (ms, ok) in [(1, false), (2, false), (3, true), (4, false), (5, false)] {
            run.push(ok, at(ms));
        }
        assert_eq!(run.last_success, Some(at(3)));
        assert_eq!(run.failures, 2);
        assert_eq!(run.first_failure, Some(at(4)));
        let health = Health {
            consecutive: 9,
            failing_since_ms: 1,
            ..Health::default()
        }
        .apply(&run, OPEN);
        assert_eq!(health.consecutive, 2, "the success ended the old streak");
        assert_eq!(health.failing_since_ms, 4);
        assert_eq!(health.open_until_ms, 0);
    }

    #[test]
    fn failures_past_the_threshold_open_unless_a_recent_success_vouches() {
        let mut run = Results::default();
        for ms in [100_000, 100_001, 100_002] {
            run.push(false, at(ms));
        }
        let opened = Health::default().apply(&run, OPEN);
        assert_eq!(opened.open_until_ms, 130_002);
        assert_eq!(opened.failing_since(), Some(at(100_000)));
        let flaky = Health {
            last_success_ms: 90_000,
            ..Health::default()
        }
        .apply(&run, OPEN);
        assert_eq!(flaky.consecutive, 3);
        assert_eq!(flaky.open_until_ms, 0, "alive within the open period");
        let mut healed = Results::default();
        healed.push(true, at(200_000));
        let closed = opened.apply(&healed, OPEN);
        assert_eq!(
            closed,
            Health {
                last_success_ms: 200_000,
                ..Health::default()
            }
        );
    }

    #[test]
    fn folding_equals_applying_one_result_at_a_time() {
        let results = [
            false, true, false, false, false, false, true, false, false, false,
        ];
        let mut folded = Results::default();
        let mut one_by_one = Health::default();
        for (i, ok) in results.into_iter().enumerate() {
            let when = at(1_000 + i as u64 * 40_000);
            folded.push(ok, when);
            let mut single = Results::default();
            single.push(ok, when);
            one_by_one = one_by_one.apply(&single, OPEN);
        }
        let batch = Health::default().apply(&folded, OPEN);
        assert_eq!(batch.consecutive, one_by_one.consecutive);
        assert_eq!(batch.failing_since_ms, one_by_one.failing_since_ms);
        assert_eq!(batch.open_until_ms, one_by_one.open_until_ms);
    }

    fn rules() -> HoldRules {
        HoldRules {
            open_for: 30 * SECOND,
            max_hold: 60 * SECOND,
        }
    }

    #[test]
    fn the_default_bound_covers_the_schedule_and_two_open_periods() {
        let short = RetryPolicy::new(vec![SECOND / 5, SECOND * 2 / 5, SECOND * 4 / 5], 0.1);
        assert_eq!(default_max_hold(&short, 30 * SECOND), 60 * SECOND);
        let long = RetryPolicy::default();
        assert_eq!(
            default_max_hold(&long, 30 * SECOND),
            Duration::from_millis(crate::retry::DEFAULT_DELAYS_MS.iter().sum())
        );
    }

    #[test]
    fn a_first_hold_waits_for_the_probe_time_plus_a_spread() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let until = now + 30 * SECOND;
        let table = [(0.0, 30_000), (0.5, 37_500), (0.999_999, 44_999)];
        for (unit, due_ms) in table {
            let hold = rules().decide(until, None, now, unit);
            let due = now + Duration::from_millis(due_ms);
            let Hold::Until {
                due: got,
                held_since,
            } = hold
            else {
                panic!("held: {hold:?}");
            };
            assert_eq!(held_since, now);
            assert!(
                (got - due).abs() < time::Duration::milliseconds(1),
                "{unit}: {got}"
            );
        }
    }

    #[test]
    fn a_probe_time_in_the_past_holds_at_least_the_minimum() {
        let now = OffsetDateTime::UNIX_EPOCH + 100 * SECOND;
        let hold = rules().decide(now - 5 * SECOND, Some(now - SECOND), now, 0.0);
        assert_eq!(
            hold,
            Hold::Until {
                due: now + MIN_HOLD,
                held_since: now - SECOND
            }
        );
    }

    #[test]
    fn a_task_held_past_the_bound_is_given_up_and_never_held_beyond_it() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let rules = rules();
        // Due no later than the give-up time, however far the probe is.
        let hold = rules.decide(start + 600 * SECOND, Some(start), start + 50 * SECOND, 0.5);
        assert_eq!(
            hold,
            Hold::Until {
                due: start + 60 * SECOND,
                held_since: start
            }
        );
        let hold = rules.decide(start + 90 * SECOND, Some(start), start + 60 * SECOND, 0.5);
        assert_eq!(hold, Hold::GiveUp { held_since: start });
    }
}
