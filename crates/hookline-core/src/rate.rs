//! Per-endpoint rate limits (GCRA) as pure arithmetic over nanoseconds since the Unix epoch,
//! so that every adapter makes the same decision from the same stored state.
//!
//! Two gates share an interval of one second / `per_second`:
//! - [`reserve`] hands out send slots one (slightly wider) interval apart: the stored state is
//!   the theoretical arrival time of the next slot. Nothing accumulates while an endpoint is
//!   idle, so there is no burst beyond one send.
//! - [`admit`] is the last gate before a send: the stored state is the last send, and a send
//!   is admitted only a full interval after it. Slots can arrive late and bunch up; this keeps
//!   any one-second window within the limit.
//!
//! Whole milliseconds cannot express these intervals (400/s is 2.5 ms, anything above
//! 1,000/s is below 1 ms), so intervals are in nanoseconds, rounded up: a limit is never
//! exceeded by rounding.

use std::time::Duration;

use time::OffsetDateTime;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Reserved slots are spaced this much wider than the limit (in parts per thousand).
const SLOT_SLACK_PER_MILLE: u64 = 50;
/// Stored state outlives its last use by this much, for clocks that differ between
/// dispatchers.
const KEEP_MARGIN: Duration = Duration::from_secs(1);

/// The spacing between two sends of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    nanos: u64,
}

impl Interval {
    /// One second / `per_second`, rounded up to the nanosecond (0 counts as 1).
    pub fn per_second(per_second: u16) -> Self {
        Self::of(NANOS_PER_SECOND, per_second)
    }

    /// The spacing of reserved slots: 5% wider than the limit. Deferred sends come back
    /// through the scheduler and the queue, and the slack absorbs their jitter so a receiver
    /// never sees a second with more than it asked for.
    pub fn reserved_slots(per_second: u16) -> Self {
        Self::of(
            NANOS_PER_SECOND * (1000 + SLOT_SLACK_PER_MILLE) / 1000,
            per_second,
        )
    }

    fn of(period_nanos: u64, per_second: u16) -> Self {
        Self {
            nanos: period_nanos.div_ceil(u64::from(per_second.max(1))),
        }
    }

    pub fn as_nanos(self) -> u64 {
        self.nanos
    }

    fn signed(self) -> i64 {
        i64::try_from(self.nanos).unwrap_or(i64::MAX)
    }
}

/// A reserved slot: how long from now until it, and the state to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Zero: send now.
    pub wait: Duration,
    /// The theoretical arrival time of the slot after this one (unix nanoseconds).
    pub next_slot: i64,
    /// How long the stored state matters; after that, no state decides the same.
    pub keep_for: Duration,
}

/// Reserves the next slot at `now` given the stored next-slot time (`None`: nothing stored).
pub fn reserve(next_slot: Option<i64>, now: i64, interval: Interval) -> Reservation {
    let slot = next_slot.unwrap_or(now).max(now);
    let next_slot = slot.saturating_add(interval.signed());
    Reservation {
        wait: nanos_between(now, slot),
        next_slot,
        keep_for: nanos_between(now, next_slot) + KEEP_MARGIN,
    }
}

/// The last gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send now; store `last_send` for `keep_for`.
    Admitted { last_send: i64, keep_for: Duration },
    /// The previous send was less than an interval ago: try again after this long.
    Wait(Duration),
}

/// Admits a send at `now` given the stored last send (`None`: nothing stored).
pub fn admit(last_send: Option<i64>, now: i64, interval: Interval) -> Admission {
    if let Some(last) = last_send {
        let earliest = last.saturating_add(interval.signed());
        if now < earliest {
            return Admission::Wait(nanos_between(now, earliest));
        }
    }
    Admission::Admitted {
        last_send: now,
        keep_for: Duration::from_nanos(interval.as_nanos()) + KEEP_MARGIN,
    }
}

/// Nanoseconds since the Unix epoch of `at`, saturating (the range ends in 2262).
pub fn unix_nanos(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// `to - from` as a duration, zero when `to` is not after `from`.
fn nanos_between(from: i64, to: i64) -> Duration {
    Duration::from_nanos(u64::try_from(to.saturating_sub(from)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;
    const START: i64 = 1_700_000_000 * SECOND;

    /// Asks the last gate at every `step_nanos` for `seconds` and answers the admitted times.
    fn admitted(per_second: u16, step_nanos: i64, seconds: i64) -> Vec<i64> {
        let interval = Interval::per_second(per_second);
        let mut last = None;
        let mut sent = Vec::new();
        let mut now = START;
        while now < START + seconds * SECOND {
            if let Admission::Admitted { last_send, .. } = admit(last, now, interval) {
                last = Some(last_send);
                sent.push(now);
            }
            now += step_nanos;
        }
        sent
    }

    /// The most sends in any window [t, t + 1 s) that starts at a send.
    fn busiest_second(sent: &[i64]) -> usize {
        let mut most = 0;
        let mut end = 0;
        for (start, at) in sent.iter().enumerate() {
            while end < sent.len() && sent[end] < at + SECOND {
                end += 1;
            }
            most = most.max(end - start);
        }
        most
    }

    #[test]
    fn intervals_are_exact_or_rounded_up() {
        let cases = [
            (1, 1_000_000_000),
            (400, 2_500_000),
            (1_000, 1_000_000),
            (2_000, 500_000),
            (3, 333_333_334),
            (65_535, 15_260),
            (0, 1_000_000_000),
        ];
        for (per_second, nanos) in cases {
            assert_eq!(
                Interval::per_second(per_second).as_nanos(),
                nanos,
                "{per_second}/s"
            );
        }
        assert_eq!(Interval::reserved_slots(400).as_nanos(), 2_625_000);
    }

    #[test]
    fn the_last_gate_keeps_every_second_within_the_limit() {
        // (limit, clock step): steps finer than the interval, and not dividing it evenly.
        let cases = [
            (400, 70_000),
            (400, 250_000),
            (2_000, 30_000),
            (65_535, 1_000),
        ];
        for (per_second, step) in cases {
            let sent = admitted(per_second, step, 3);
            let busiest = busiest_second(&sent);
            assert!(
                busiest <= usize::from(per_second),
                "{per_second}/s: {busiest} in one second"
            );
            // Limited, but not far below the limit either.
            let floor = usize::from(per_second) * 95 / 100;
            assert!(
                busiest >= floor,
                "{per_second}/s: only {busiest} in one second"
            );
        }
    }

    #[test]
    fn four_hundred_a_second_admits_four_hundred_not_five_hundred() {
        let sent = admitted(400, 250_000, 1);
        assert_eq!(sent.len(), 400);
        assert_eq!(busiest_second(&admitted(400, 250_000, 4)), 400);
    }

    #[test]
    fn the_last_gate_says_how_long_is_left() {
        let interval = Interval::per_second(2_000);
        assert_eq!(
            admit(Some(START), START + 200_000, interval),
            Admission::Wait(Duration::from_nanos(300_000))
        );
        assert!(matches!(
            admit(Some(START), START + 500_000, interval),
            Admission::Admitted { last_send, .. } if last_send == START + 500_000
        ));
        assert!(matches!(
            admit(None, START, interval),
            Admission::Admitted { .. }
        ));
    }

    #[test]
    fn slots_are_handed_out_one_interval_apart() {
        for per_second in [400u16, 2_000, 65_535] {
            let interval = Interval::reserved_slots(per_second);
            let mut stored = None;
            let mut waits = Vec::new();
            for _ in 0..1_000 {
                let reservation = reserve(stored, START, interval);
                stored = Some(reservation.next_slot);
                waits.push(reservation.wait);
            }
            for (n, wait) in waits.iter().enumerate() {
                let expected = interval.as_nanos() * u64::try_from(n).unwrap_or(0);
                assert_eq!(
                    *wait,
                    Duration::from_nanos(expected),
                    "{per_second}/s slot {n}"
                );
            }
            let within_a_second = waits
                .iter()
                .filter(|w| **w < Duration::from_secs(1))
                .count();
            assert!(within_a_second <= usize::from(per_second));
        }
    }

    #[test]
    fn an_idle_endpoint_gets_no_burst() {
        let interval = Interval::reserved_slots(400);
        let first = reserve(None, START, interval);
        assert_eq!(first.wait, Duration::ZERO);
        // Long idle: the stored slot is in the past, yet only one send goes now.
        let later = START + 10 * SECOND;
        let after_idle = reserve(Some(first.next_slot), later, interval);
        assert_eq!(after_idle.wait, Duration::ZERO);
        let next = reserve(Some(after_idle.next_slot), later, interval);
        assert_eq!(next.wait, Duration::from_nanos(interval.as_nanos()));
        assert_eq!(
            next.keep_for,
            Duration::from_nanos(2 * interval.as_nanos()) + KEEP_MARGIN
        );
    }

    #[test]
    fn unix_nanos_saturates() {
        assert_eq!(unix_nanos(OffsetDateTime::UNIX_EPOCH), 0);
        let far = OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 400);
        assert_eq!(unix_nanos(far), i64::MAX);
    }
}
