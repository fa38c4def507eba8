//! Rate limits (GCRA) as pure arithmetic over nanoseconds since the Unix epoch, so that every
//! adapter makes the same decision from the same stored state. Two limits may apply to a
//! send: its endpoint's (`rateLimit`) and its app's (`throttleRate`, shared by every endpoint
//! of the app).
//!
//! Two gates share an interval of one second / `per_second`:
//! - [`reserve`] hands out send slots one (slightly wider) interval apart: the stored state is
//!   the theoretical arrival time of the next slot. Nothing accumulates while an endpoint is
//!   idle, so there is no burst beyond one send.
//! - the last gate before a send. An endpoint's ([`admit`]) stores the last send and admits a
//!   send only a full interval after it. Slots can arrive late and bunch up; this keeps any
//!   one-second window within the limit. An app's ([`admit_early`]) is GCRA over the next
//!   send's theoretical time with a small tolerance, on an interval 5% wider than the rate,
//!   so sends that come back from the schedule unevenly late are not turned back, and still
//!   no receiver counts more than the rate in a second. [`admit_all`] asks the gates of
//!   every limit of a send at once and records the send under all of them or none.
//!
//! [`Limits`] says in which order a delivery takes its slots: its endpoint's first, then its
//! app's, each once per attempt.
//!
//! Whole milliseconds cannot express these intervals (400/s is 2.5 ms, anything above
//! 1,000/s is below 1 ms), so intervals are in nanoseconds, rounded up: a limit is never
//! exceeded by rounding.

use std::time::Duration;

use time::OffsetDateTime;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Reserved slots are spaced this much wider than the last gate (in parts per thousand).
const SLOT_SLACK_PER_MILLE: u64 = 50;
/// An app's last gate spaces sends this much wider than its `throttleRate` (in parts per
/// thousand): the rate is a promise about what the app's receivers see, and sends 5% apart
/// leave 50 ms in every second. Part of it is the gate's tolerance
/// ([`APP_GATE_TOLERANCE`]), the rest is for the delay between a send's admission and its
/// arrival, which varies (a worker waiting for a connection, the network, the receiver's own
/// scheduling): any `rate + 1` admitted sends span at least 1.05 s less the tolerance, so a
/// receiver counts at most `rate` in a second while that delay varies by at most 35 ms.
const APP_GATE_SLACK_PER_MILLE: u64 = 50;
/// How much earlier than its theoretical time an app's gate lets a send pass. A deferred
/// send comes back through the scheduler and the queue a few milliseconds late, by an amount
/// that varies; a gate without tolerance would turn back every send that came back a little
/// less late than the one before it, and each one turned back costs another such trip, in
/// which the gate's next interval goes unused.
pub const APP_GATE_TOLERANCE: Duration = Duration::from_millis(15);
/// The least an app's `throttleRate` may be; the most is `u16::MAX` (65,535/s, Svix's
/// `uint16`), whose 15,260 ns interval the gates hold exactly.
pub const MIN_THROTTLE_RATE: u16 = 1;
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

    /// One period (a second widened by `slack_per_mille`, then by `more_per_mille`) over
    /// `per_second`.
    fn widened(slack_per_mille: u64, more_per_mille: u64, per_second: u16) -> Self {
        let period = NANOS_PER_SECOND * (1000 + slack_per_mille) / 1000;
        Self::of(period * (1000 + more_per_mille) / 1000, per_second)
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

/// Whose sends a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject<'a> {
    /// One endpoint's sends (its `rateLimit`), by endpoint id.
    Endpoint(&'a str),
    /// The sends to every endpoint of the app together (the app's `throttleRate`).
    App,
}

/// One limit a send must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<'a> {
    pub subject: Subject<'a>,
    pub per_second: u16,
}

impl Limit<'_> {
    /// The last gate: an endpoint's a full interval after its last send; an app's GCRA,
    /// 5% wider than its rate, with [`APP_GATE_TOLERANCE`] (see `APP_GATE_SLACK_PER_MILLE`).
    pub fn gate(&self) -> Gate {
        match self.subject {
            Subject::Endpoint(_) => Gate::AfterLastSend(Interval::per_second(self.per_second)),
            Subject::App => Gate::Theoretical {
                interval: Interval::widened(APP_GATE_SLACK_PER_MILLE, 0, self.per_second),
                tolerance: APP_GATE_TOLERANCE,
            },
        }
    }

    /// The spacing of reserved slots: 5% wider than the gate.
    pub fn slots(&self) -> Interval {
        match self.subject {
            Subject::Endpoint(_) => Interval::reserved_slots(self.per_second),
            Subject::App => Interval::widened(
                APP_GATE_SLACK_PER_MILLE,
                SLOT_SLACK_PER_MILLE,
                self.per_second,
            ),
        }
    }
}

/// A `throttleRate` as an app may set it: at least [`MIN_THROTTLE_RATE`] (a rate of 0 would
/// never send); the type bounds it at 65,535.
pub fn throttle_rate(per_second: u16) -> Result<u16, InvalidRate> {
    if per_second < MIN_THROTTLE_RATE {
        return Err(InvalidRate::BelowMinimum);
    }
    Ok(per_second)
}

/// Why a rate cannot be a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRate {
    #[error("must be at least {MIN_THROTTLE_RATE} message per second")]
    BelowMinimum,
}

/// Which of its slots a deferred delivery already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub endpoint: bool,
    pub app: bool,
}

impl Held {
    /// These, and the slot of `subject`.
    pub fn with(self, subject: Subject<'_>) -> Self {
        match subject {
            Subject::Endpoint(_) => Self {
                endpoint: true,
                ..self
            },
            Subject::App => Self { app: true, ..self },
        }
    }
}

/// The limits one send passes: its endpoint's, its app's, either or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits<'a> {
    endpoint: Option<Limit<'a>>,
    app: Option<Limit<'a>>,
}

impl<'a> Limits<'a> {
    /// The limits of a send to `endpoint_id`. A rate of 0 is no limit (an endpoint's
    /// `rateLimit: 0`, and app records stored before 0 was refused).
    pub fn new(endpoint_id: &'a str, endpoint: Option<u16>, app: Option<u16>) -> Self {
        let limit = |subject, per_second: Option<u16>| {
            per_second.filter(|r| *r > 0).map(|per_second| Limit {
                subject,
                per_second,
            })
        };
        Self {
            endpoint: limit(Subject::Endpoint(endpoint_id), endpoint),
            app: limit(Subject::App, app),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.endpoint.is_none() && self.app.is_none()
    }

    /// The next slot to reserve, given those `held`; `None` once it holds every slot it
    /// needs. The endpoint's comes first: it decides when the send may go at all, and a
    /// delivery takes one of the app's slots, which every endpoint of the app shares, only
    /// once it is at its endpoint's slot. Taking the app's first would spend a shared slot
    /// while the delivery waits for its endpoint, and a backlog on one slow endpoint would
    /// push every other endpoint's sends back.
    pub fn next_reservation(&self, held: Held) -> Option<Limit<'a>> {
        match (self.endpoint, self.app) {
            (Some(endpoint), _) if !held.endpoint => Some(endpoint),
            (_, Some(app)) if !held.app => Some(app),
            _ => None,
        }
    }

    /// Every limit, for the last gate.
    pub fn all(&self) -> impl Iterator<Item = Limit<'a>> {
        self.endpoint.into_iter().chain(self.app)
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
    /// Send now; store `state` (what the gate decides the next send on) for `keep_for`.
    Admitted { state: i64, keep_for: Duration },
    /// The previous send was too recent: try again after this long.
    Wait(Duration),
}

/// Admits a send at `now` given the stored last send (`None`: nothing stored): the
/// endpoint's gate, whose state is the last send.
pub fn admit(last_send: Option<i64>, now: i64, interval: Interval) -> Admission {
    if let Some(last) = last_send {
        let earliest = last.saturating_add(interval.signed());
        if now < earliest {
            return Admission::Wait(nanos_between(now, earliest));
        }
    }
    Admission::Admitted {
        state: now,
        keep_for: Duration::from_nanos(interval.as_nanos()) + KEEP_MARGIN,
    }
}

/// Admits a send at `now` given the stored theoretical time of the next send (`None`:
/// nothing stored), up to `tolerance` before it: GCRA, the app's gate. The state it stores is
/// the next send's theoretical time, one interval after this one's (or after now, if this
/// one is late), so any `n + 1` sends it admits span at least `n` intervals less the
/// tolerance.
pub fn admit_early(
    next_send: Option<i64>,
    now: i64,
    interval: Interval,
    tolerance: Duration,
) -> Admission {
    let theoretical = next_send.unwrap_or(now);
    let tolerance = i64::try_from(tolerance.as_nanos()).unwrap_or(i64::MAX);
    let earliest = theoretical.saturating_sub(tolerance);
    if now < earliest {
        return Admission::Wait(nanos_between(now, earliest));
    }
    let state = theoretical.max(now).saturating_add(interval.signed());
    Admission::Admitted {
        state,
        keep_for: nanos_between(now, state) + KEEP_MARGIN,
    }
}

/// A limit's last gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// [`admit`]: a full interval after the stored last send.
    AfterLastSend(Interval),
    /// [`admit_early`]: GCRA on the stored theoretical time of the next send.
    Theoretical {
        interval: Interval,
        tolerance: Duration,
    },
}

impl Gate {
    /// This gate's answer at `now` on its stored state.
    pub fn admit(self, stored: Option<i64>, now: i64) -> Admission {
        match self {
            Self::AfterLastSend(interval) => admit(stored, now, interval),
            Self::Theoretical {
                interval,
                tolerance,
            } => admit_early(stored, now, interval, tolerance),
        }
    }
}

/// What the last gates of all a send's limits decided together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admissions {
    /// Send now; store each limit's state (in the order given) for its keep.
    Admitted(Vec<(i64, Duration)>),
    /// A limit turns the send back: try again after this long (the longest wait). Nothing
    /// is stored.
    Wait(Duration),
}

/// The last gates of several limits at once, given each one's stored state: admitted only
/// when every one admits, and then each stores its new state; otherwise none stores
/// anything and the wait is the longest. A send one limit turns back thus never uses up
/// another limit's interval.
pub fn admit_all(states: impl IntoIterator<Item = (Option<i64>, Gate)>, now: i64) -> Admissions {
    let mut admitted = Vec::new();
    let mut wait = Duration::ZERO;
    for (stored, gate) in states {
        match gate.admit(stored, now) {
            Admission::Admitted { state, keep_for } => admitted.push((state, keep_for)),
            Admission::Wait(left) => wait = wait.max(left),
        }
    }
    if wait.is_zero() {
        Admissions::Admitted(admitted)
    } else {
        Admissions::Wait(wait)
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
            if let Admission::Admitted { state, .. } = admit(last, now, interval) {
                last = Some(state);
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
            Admission::Admitted { state, .. } if state == START + 500_000
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
    fn an_apps_gate_is_five_percent_wider_than_its_rate_and_its_slots_five_percent_more() {
        let app = Limit {
            subject: Subject::App,
            per_second: 50,
        };
        assert_eq!(
            app.gate(),
            Gate::Theoretical {
                interval: Interval { nanos: 21_000_000 },
                tolerance: APP_GATE_TOLERANCE,
            }
        );
        assert_eq!(app.slots().as_nanos(), 22_050_000);
        let endpoint = Limit {
            subject: Subject::Endpoint("ep_1"),
            per_second: 50,
        };
        assert_eq!(
            endpoint.gate(),
            Gate::AfterLastSend(Interval::per_second(50))
        );
        assert_eq!(endpoint.slots(), Interval::reserved_slots(50));
        let fastest = Limit {
            subject: Subject::App,
            per_second: u16::MAX,
        };
        assert!(
            matches!(fastest.gate(), Gate::Theoretical { interval, .. } if interval.as_nanos() == 16_022),
            "1.05 s / 65,535, rounded up"
        );
    }

    #[test]
    fn an_apps_gate_lets_a_send_pass_up_to_its_tolerance_early() {
        let interval = Interval::per_second(50); // 20 ms
        let tolerance = Duration::from_millis(15);
        let early = START - 15_000_000;
        assert_eq!(
            admit_early(Some(START), early, interval, tolerance),
            Admission::Admitted {
                state: START + 20_000_000,
                keep_for: Duration::from_millis(35) + KEEP_MARGIN
            },
            "the next send's time moves one interval on from the theoretical time"
        );
        assert_eq!(
            admit_early(Some(START), early - 1, interval, tolerance),
            Admission::Wait(Duration::from_nanos(1))
        );
        let late = START + 100_000_000;
        assert!(
            matches!(
                admit_early(Some(START), late, interval, tolerance),
                Admission::Admitted { state, .. } if state == late + 20_000_000
            ),
            "a late send earns no burst"
        );
        assert!(matches!(
            admit_early(None, START, interval, tolerance),
            Admission::Admitted { state, .. } if state == START + 20_000_000
        ));
    }

    /// Sends asked for at pseudo-random moments (bursts, pauses, every spacing): the
    /// answers of `gate`, as the times it admitted.
    fn admitted_by(gate: Gate, seconds: i64) -> Vec<i64> {
        let mut state = None;
        let mut sent = Vec::new();
        let mut now = START;
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        while now < START + seconds * SECOND {
            if let Admission::Admitted { state: next, .. } = gate.admit(state, now) {
                state = Some(next);
                sent.push(now);
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly steps below a millisecond, now and then a pause of up to 60 ms.
            let step = if seed.is_multiple_of(16) {
                seed % 60_000_000
            } else {
                seed % 700_000
            };
            now += i64::try_from(step).unwrap_or(0) + 1;
        }
        sent
    }

    /// What a receiver of an app throttled at `per_second` can count: any `per_second + 1`
    /// sends the app's gate admits span at least 1.035 s (1.05 s less the tolerance), so a
    /// receiver counts at most `per_second` in any second while the delay between admission
    /// and arrival varies by at most 35 ms.
    #[test]
    fn an_app_throttle_holds_at_the_receiver_with_35_ms_of_uneven_delay() {
        for per_second in [1u16, 3, 50, 400, 2_000] {
            let gate = Limit {
                subject: Subject::App,
                per_second,
            }
            .gate();
            let sent = admitted_by(gate, 4);
            let n = usize::from(per_second);
            assert!(busiest_second(&sent) <= n, "{per_second}/s at the sender");
            for run in sent.windows(n + 1) {
                let span = run[n] - run[0];
                assert!(
                    span >= SECOND + 35_000_000,
                    "{per_second}/s: {} sends within {span} ns",
                    n + 1
                );
            }
        }
    }

    /// Asked for without pause, an app's gate admits about 1 / 1.05 of its rate: at 50/s, a
    /// send, one a tolerance early (6 ms later), then one every 21 ms: 49 in the first
    /// second, 48 in any later one.
    #[test]
    fn an_apps_gate_admits_close_to_its_rate() {
        let gate = Limit {
            subject: Subject::App,
            per_second: 50,
        }
        .gate();
        let mut state = None;
        let mut sent = Vec::new();
        let mut now = START;
        while now < START + 3 * SECOND {
            if let Admission::Admitted { state: next, .. } = gate.admit(state, now) {
                state = Some(next);
                sent.push(now);
            }
            now += 10_000;
        }
        assert_eq!(busiest_second(&sent), 49);
        assert_eq!(busiest_second(&sent[2..]), 48);
    }

    #[test]
    fn admit_all_records_the_send_under_every_limit_or_none() {
        let tight = Gate::AfterLastSend(Interval::per_second(10)); // 100 ms
        let loose = Gate::Theoretical {
            interval: Interval::per_second(1_000), // 1 ms
            tolerance: Duration::ZERO,
        };
        let both = admit_all(
            [(Some(START), tight), (Some(START), loose)],
            START + 5_000_000,
        );
        assert_eq!(both, Admissions::Wait(Duration::from_millis(95)));
        let later = START + 100_000_000;
        assert_eq!(
            admit_all([(Some(START), tight), (None, loose)], later),
            Admissions::Admitted(vec![
                (later, Duration::from_millis(100) + KEEP_MARGIN),
                (later + 1_000_000, Duration::from_millis(1) + KEEP_MARGIN),
            ]),
            "each limit stores its own state"
        );
        // The longest wait of several.
        assert_eq!(
            admit_all(
                [(Some(START + 1_000_000), loose), (Some(START), tight)],
                START + 500_000
            ),
            Admissions::Wait(Duration::from_nanos(99_500_000))
        );
        assert_eq!(admit_all([], START), Admissions::Admitted(Vec::new()));
    }

    #[test]
    fn a_delivery_takes_its_endpoint_slot_then_its_app_slot_each_once() {
        let both = Limits::new("ep_1", Some(10), Some(50));
        let endpoint = Limit {
            subject: Subject::Endpoint("ep_1"),
            per_second: 10,
        };
        let app = Limit {
            subject: Subject::App,
            per_second: 50,
        };
        let none = Held::default();
        assert_eq!(both.next_reservation(none), Some(endpoint));
        let at_endpoint_slot = none.with(endpoint.subject);
        assert_eq!(both.next_reservation(at_endpoint_slot), Some(app));
        let holding_both = at_endpoint_slot.with(app.subject);
        assert_eq!(both.next_reservation(holding_both), None, "asks no more");
        assert_eq!(both.all().collect::<Vec<_>>(), [endpoint, app]);

        let app_only = Limits::new("ep_1", None, Some(50));
        assert_eq!(app_only.next_reservation(none), Some(app));
        assert_eq!(app_only.next_reservation(none.with(app.subject)), None);
        assert_eq!(app_only.all().collect::<Vec<_>>(), [app]);

        let endpoint_only = Limits::new("ep_1", Some(10), Some(0));
        assert_eq!(endpoint_only.next_reservation(none), Some(endpoint));
        assert_eq!(endpoint_only.next_reservation(at_endpoint_slot), None);

        assert!(
            Limits::new("ep_1", Some(0), None).is_empty(),
            "0 is no limit"
        );
        assert!(!both.is_empty());
    }

    #[test]
    fn a_throttle_rate_is_at_least_one() {
        assert_eq!(throttle_rate(0), Err(InvalidRate::BelowMinimum));
        assert_eq!(throttle_rate(1), Ok(1));
        assert_eq!(throttle_rate(u16::MAX), Ok(u16::MAX));
        assert_eq!(
            InvalidRate::BelowMinimum.to_string(),
            "must be at least 1 message per second"
        );
    }

    #[test]
    fn unix_nanos_saturates() {
        assert_eq!(unix_nanos(OffsetDateTime::UNIX_EPOCH), 0);
        let far = OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 400);
        assert_eq!(unix_nanos(far), i64::MAX);
    }
}
