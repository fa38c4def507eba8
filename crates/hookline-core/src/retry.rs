//! The retry schedule: how long to wait after a failed attempt before the next one.

use std::time::Duration;

/// Default delays after attempts 1..=7: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_DELAYS_MS: [u64; 7] = [
    5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

/// Delays between attempts plus proportional jitter; `delays.len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(
            DEFAULT_DELAYS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            0.1,
        )
    }
}

impl RetryPolicy {
    /// `jitter` is a fraction: 0.1 spreads each delay uniformly over ±10%. It is clamped to
    /// `0.0..=1.0` so a delay never goes negative.
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Self {
        Self {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// Total attempts a task gets, the first included.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).map_or(u32::MAX, |n| n.saturating_add(1))
    }

    /// The wait after attempt number `failed_attempt` (1-based) failed, or `None` when it was
    /// the last. `unit` is a uniform random number in `0.0..1.0`, passed in so the policy stays
    /// deterministic under test.
    pub fn delay_after(&self, failed_attempt: u32, unit: f64) -> Option<Duration> {
        let index = usize::try_from(failed_attempt.checked_sub(1)?).ok()?;
        let base = *self.delays.get(index)?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor))
    }

    /// The longest wait in the schedule (the cap for a receiver's `Retry-After`).
    pub fn max_delay(&self) -> Duration {
        self.delays.iter().copied().max().unwrap_or_default()
    }

    /// The schedule's nominal length: every delay added up, from the first attempt to the
    /// last.
    pub fn span(&self) -> Duration {
        self.delays.iter().sum()
    }

    /// Like [`Self::delay_after`] with a fresh random jitter.
    pub fn delay_after_random(&self, failed_attempt: u32) -> Option<Duration> {
        self.delay_after(failed_attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_gives_eight_attempts() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts(), 8);
        assert_eq!(policy.delay_after(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(
            policy.delay_after(7, 0.5),
            Some(Duration::from_secs(36_000))
        );
        assert_eq!(policy.delay_after(8, 0.5), None);
        assert_eq!(policy.delay_after(0, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let policy = RetryPolicy::default();
        let table = [(0.0, 4_500), (1.0, 5_500), (0.25, 4_750)];
        for (unit, expected_ms) in table {
            let delay = policy.delay_after(1, unit).map(|d| d.as_millis());
            assert_eq!(delay, Some(expected_ms), "unit {unit}");
        }
    }

    #[test]
    fn jitter_is_clamped() {
        let policy = RetryPolicy::new(vec![Duration::from_millis(100)], 5.0);
        assert_eq!(policy.delay_after(1, 0.0), Some(Duration::ZERO));
    }
}
