//! From what was sent and what arrived to figures: latency percentiles, throughput, a CDF
//! and a timeline. Sends and arrivals are matched by `webhook-id` (the message id).

use std::collections::HashMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::Sent;
use crate::receiver::Arrival;

/// Deliveries matched to their messages.
#[derive(Debug, Default)]
pub struct Matched {
    /// End-to-end latency of each first delivery (message, path), in microseconds.
    pub latencies_us: Vec<u64>,
    /// Deliveries of a (message, path) after its first.
    pub duplicates: u64,
    /// Arrivals that match no sent message (should be none).
    pub unknown: u64,
    /// First due send and last first-delivery, since the epoch.
    pub first_due: Duration,
    pub last_arrival: Duration,
    /// Arrival times of first deliveries, since the epoch, for the timeline.
    pub arrival_times: Vec<Duration>,
}

impl Matched {
    pub fn deliveries(&self) -> usize {
        self.latencies_us.len()
    }

    /// First deliveries per second, from the first due send to the last delivery.
    pub fn per_second(&self) -> f64 {
        let span = self
            .last_arrival
            .saturating_sub(self.first_due)
            .as_secs_f64();
        if span <= 0.0 {
            return 0.0;
        }
        self.deliveries() as f64 / span
    }
}

/// Matches arrivals on `paths` (all when `None`) to sent messages.
pub fn match_arrivals(sent: &[Sent], arrivals: &[Arrival], paths: Option<&[String]>) -> Matched {
    let due: HashMap<&str, Duration> = sent.iter().map(|s| (s.msg_id.as_str(), s.due)).collect();
    let mut seen: HashMap<(&str, &str), ()> = HashMap::with_capacity(arrivals.len());
    let mut matched = Matched {
        first_due: sent.iter().map(|s| s.due).min().unwrap_or_default(),
        ..Matched::default()
    };
    for arrival in arrivals {
        if paths.is_some_and(|p| !p.contains(&arrival.path)) {
            continue;
        }
        let Some(sent_at) = due.get(arrival.msg_id.as_str()) else {
            matched.unknown += 1;
            continue;
        };
        if seen
            .insert((arrival.msg_id.as_str(), arrival.path.as_str()), ())
            .is_some()
        {
            matched.duplicates += 1;
            continue;
        }
        let latency = arrival.at.saturating_sub(*sent_at);
        matched
            .latencies_us
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        matched.last_arrival = matched.last_arrival.max(arrival.at);
        matched.arrival_times.push(arrival.at);
    }
    matched
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn latency(latencies_us: &[u64]) -> Latency {
    let Ok(mut histogram) = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3) else {
        return Latency::default();
    };
    for &value in latencies_us {
        let _ = histogram.record(value.clamp(1, 3_600_000_000));
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        count: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p90_ms: ms(histogram.value_at_quantile(0.90)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
    }
}

/// (latency in ms, fraction of deliveries at or below it), for a CDF plot.
pub fn cdf(latencies_us: &[u64]) -> Vec<(f64, f64)> {
    let mut sorted = latencies_us.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let steps = 400.min(n);
    (1..=steps)
        .map(|i| {
            let index = (i * n / steps).saturating_sub(1);
            (sorted[index] as f64 / 1000.0, (index + 1) as f64 / n as f64)
        })
        .collect()
}

/// Deliveries per second in `bucket`-long slices, as (seconds since the first, rate).
pub fn timeline(arrival_times: &[Duration], bucket: Duration) -> Vec<(f64, f64)> {
    let Some(first) = arrival_times.iter().min().copied() else {
        return Vec::new();
    };
    let width = bucket.as_secs_f64();
    let mut counts: Vec<u64> = Vec::new();
    for at in arrival_times {
        let slot = ((at.saturating_sub(first)).as_secs_f64() / width) as usize;
        if counts.len() <= slot {
            counts.resize(slot + 1, 0);
        }
        counts[slot] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| (i as f64 * width, *c as f64 / width))
        .collect()
}
