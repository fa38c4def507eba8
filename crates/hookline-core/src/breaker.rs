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

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

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
