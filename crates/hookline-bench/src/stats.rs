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
    timeline_from(arrival_times, first, bucket)
}

/// Deliveries per second in `bucket`-long slices from `origin` (slices before the first
/// arrival count zero), as (seconds since `origin`, rate).
pub fn timeline_from(
    arrival_times: &[Duration],
    origin: Duration,
    bucket: Duration,
) -> Vec<(f64, f64)> {
    let first = origin;
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

/// Latency percentiles of the points falling in one time slice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyBin {
    /// The slice's start, in seconds on the caller's axis.
    pub t: f64,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// (time in seconds, latency in µs) points in `width`-second slices from `origin`, each
/// slice with its p50 and p99; slices with no point are left out (the plot leaves a gap).
pub fn latency_bins(points: &[(f64, u64)], origin: f64, width: f64) -> Vec<LatencyBin> {
    let mut slices: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    for &(t, us) in points {
        let slot = ((t - origin).max(0.0) / width) as u64;
        slices.entry(slot).or_default().push(us);
    }
    slices
        .into_iter()
        .map(|(slot, values)| {
            let figures = latency(&values);
            LatencyBin {
                t: origin + slot as f64 * width,
                count: values.len(),
                p50_ms: figures.p50_ms,
                p99_ms: figures.p99_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bins_slice_points_by_time_and_skip_empty_slices() {
        // Values under 2,048 µs, which the histogram holds exactly.
        let points = [(0.1, 1_000), (0.4, 1_500), (1.2, 1_200), (0.0, 500)];
        let bins = latency_bins(&points, 0.0, 0.5);
        assert_eq!(
            bins.len(),
            2,
            "the empty slice at 0.5 s is left out: {bins:?}"
        );
        assert_eq!((bins[0].t, bins[0].count), (0.0, 3));
        assert_eq!((bins[0].p50_ms, bins[0].p99_ms), (1.0, 1.5));
        assert_eq!((bins[1].t, bins[1].count), (1.0, 1));
        assert_eq!(bins[1].p99_ms, 1.2);
    }
}
