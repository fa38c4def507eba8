//! Hookline's metrics, one typed set per process, rendered in the Prometheus text format at
//! `/metrics` on every role.
//!
//! Names follow `hookline_<what>_<unit>` with `_total` for counters; labels are bounded
//! (outcomes, never ids), so cardinality cannot grow with tenants. Histograms have explicit
//! buckets so they render as histograms, not summaries.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// The `lane` values of `hookline_queue_ready_tasks`: the two delivery queues and the
/// dead-letter queue.
pub const QUEUE_LANES: [&str; 3] = ["fast", "bulk", "dead"];
/// The `lane` values of `hookline_published_tasks_total`: tasks are published to the delivery
/// queues only, never straight to the dead-letter queue.
pub const PUBLISH_LANES: [&str; 2] = ["fast", "bulk"];
/// The `result` values of `hookline_oauth_token_requests_total`.
pub const TOKEN_RESULTS: [&str; 4] = ["ok", "unreachable", "refused", "invalid"];

/// Buckets for one HTTP attempt, in seconds: 1 ms to 30 s.
const ATTEMPT_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets for accept-to-delivery, in seconds: 1 ms to 1 hour.
const END_TO_END_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 60.0, 600.0,
    3600.0,
];

/// Every metric Hookline exports.
pub struct Metrics {
    registry: Registry,
    /// Messages answered 202 (new ones, not idempotent repeats).
    pub messages_accepted: IntCounter,
    /// Delivery tasks settled, by outcome.
    pub deliveries: IntCounterVec,
    /// Duration of HTTP attempts.
    pub attempt_duration: Histogram,
    /// From a message's acceptance to its successful delivery.
    pub end_to_end: Histogram,
    /// Deliveries currently in flight in this process.
    pub in_flight: IntGauge,
    /// Tasks waiting in the retry schedule (due or not, and under lease).
    pub schedule_backlog: IntGauge,
    /// Attempts skipped because the endpoint's circuit was open.
    pub circuit_open_skips: IntCounter,
    /// Tasks sent back to the schedule because their endpoint had its most attempts in flight.
    pub busy_endpoint_deferrals: IntCounter,
    /// Times this process re-established its broker connection.
    pub broker_reconnects: IntGauge,
    /// Times Redis became reachable again after this process saw it fail.
    pub redis_reconnects: IntCounter,
    /// 1 while this process's last Redis ping succeeded, else 0.
    pub redis_up: IntGauge,
    /// Endpoints whose circuit breaker is open (shared state, read from the store).
    pub open_circuits: IntGauge,
    /// Deliveries whose outcome could not be stored and were tried again.
    pub store_retries: IntCounter,
    /// Age in seconds of the oldest task this dispatcher took from the delivery queue in the
    /// last second: how long deliveries wait in the queue, the number tenant fairness keeps
    /// low for every app while one app floods.
    pub oldest_pending_age: Gauge,
    /// Tasks ready in the delivery queues, by `lane` (one of [`QUEUE_LANES`]; `dead` is the
    /// dead-letter queue). Every lane starts at 0 so a lane never seen is not a gap.
    pub queue_ready: IntGaugeVec,
    /// Tasks published to the delivery queues, by `lane` (one of [`PUBLISH_LANES`]).
    pub published_tasks: IntCounterVec,
    /// API requests waiting for their app's fair share of the intake.
    pub admission_waiting: IntGauge,
    /// Unix time in seconds of this scheduler's last successful step, whether or not it found
    /// anything due; 0 in a process that runs no scheduler. `time()` minus it is how long the
    /// retry schedule has gone unserved.
    pub scheduler_last_step: Gauge,
    /// OAuth2 token requests to endpoints' authorisation servers, by `result` (one of
    /// [`TOKEN_RESULTS`]).
    pub oauth_token_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let messages_accepted = IntCounter::with_opts(Opts::new(
            "hookline_messages_accepted_total",
            "Messages accepted (answered 202).",
        ))?;
        let deliveries = IntCounterVec::new(
            Opts::new(
                "hookline_deliveries_total",
                "Delivery tasks settled, by outcome.",
            ),
            &["outcome"],
        )?;
        let attempt_duration = Histogram::with_opts(
            HistogramOpts::new(
                "hookline_attempt_duration_seconds",
                "Duration of one HTTP delivery attempt.",
            )
            .buckets(ATTEMPT_BUCKETS.to_vec()),
        )?;
        let end_to_end = Histogram::with_opts(
            HistogramOpts::new(
                "hookline_end_to_end_seconds",
                "From a message's acceptance to its successful delivery.",
            )
            .buckets(END_TO_END_BUCKETS.to_vec()),
        )?;
        let in_flight = IntGauge::with_opts(Opts::new(
            "hookline_in_flight_tasks",
            "Deliveries in flight in this process.",
        ))?;
        let schedule_backlog = IntGauge::with_opts(Opts::new(
            "hookline_retry_schedule_backlog",
            "Tasks waiting in the retry schedule.",
        ))?;
        let circuit_open_skips = IntCounter::with_opts(Opts::new(
            "hookline_circuit_open_skips_total",
            "Attempts skipped because the endpoint's circuit was open.",
        ))?;
        registry.register(Box::new(messages_accepted.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(attempt_duration.clone()))?;
        registry.register(Box::new(end_to_end.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(schedule_backlog.clone()))?;
        let broker_reconnects = IntGauge::with_opts(Opts::new(
            "hookline_broker_reconnects",
            "Times this process re-established its RabbitMQ connection.",
        ))?;
        registry.register(Box::new(circuit_open_skips.clone()))?;
        let busy_endpoint_deferrals = IntCounter::with_opts(Opts::new(
            "hookline_busy_endpoint_deferrals_total",
            "Tasks put back in the schedule because their endpoint had its most attempts in flight.",
        ))?;
        registry.register(Box::new(busy_endpoint_deferrals.clone()))?;
        registry.register(Box::new(broker_reconnects.clone()))?;
        let redis_reconnects = IntCounter::with_opts(Opts::new(
            "hookline_redis_reconnects_total",
            "Times Redis answered again after failing this process's health ping.",
        ))?;
        registry.register(Box::new(redis_reconnects.clone()))?;
        let redis_up = IntGauge::with_opts(Opts::new(
            "hookline_redis_up",
            "1 while this process's last Redis ping succeeded.",
        ))?;
        registry.register(Box::new(redis_up.clone()))?;
        let open_circuits = IntGauge::with_opts(Opts::new(
            "hookline_open_circuits",
            "Endpoints whose circuit breaker is open.",
        ))?;
        registry.register(Box::new(open_circuits.clone()))?;
        let store_retries = IntCounter::with_opts(Opts::new(
            "hookline_store_retries_total",
            "Deliveries tried again because their outcome could not be stored.",
        ))?;
        registry.register(Box::new(store_retries.clone()))?;
        let oldest_pending_age = Gauge::with_opts(Opts::new(
            "hookline_oldest_pending_age_seconds",
            "Age of the oldest task this dispatcher took from the delivery queue in the last second (how long deliveries wait in the queue).",
        ))?;
        registry.register(Box::new(oldest_pending_age.clone()))?;
        let queue_ready = IntGaugeVec::new(
            Opts::new(
                "hookline_queue_ready_tasks",
                "Tasks ready in the delivery queues, by lane; `dead` is the dead-letter queue.",
            ),
            &["lane"],
        )?;
        // Creating each lane's series up front makes it render as 0 before anything sets it.
        for lane in QUEUE_LANES {
            queue_ready.with_label_values(&[lane]);
        }
        registry.register(Box::new(queue_ready.clone()))?;
        let published_tasks = IntCounterVec::new(
            Opts::new(
                "hookline_published_tasks_total",
                "Tasks published to the delivery queues, by lane.",
            ),
            &["lane"],
        )?;
        for lane in PUBLISH_LANES {
            published_tasks.with_label_values(&[lane]);
        }
        registry.register(Box::new(published_tasks.clone()))?;
        let admission_waiting = IntGauge::with_opts(Opts::new(
            "hookline_admission_waiting_requests",
            "API requests waiting for their app's fair share of the intake.",
        ))?;
        registry.register(Box::new(admission_waiting.clone()))?;
        let scheduler_last_step = Gauge::with_opts(Opts::new(
            "hookline_scheduler_last_step_timestamp_seconds",
            "Unix time of the scheduler's last successful step, whether or not it found tasks due.",
        ))?;
        registry.register(Box::new(scheduler_last_step.clone()))?;
        let oauth_token_requests = IntCounterVec::new(
            Opts::new(
                "hookline_oauth_token_requests_total",
                "OAuth2 token requests to endpoints' authorisation servers, by result: ok, unreachable, refused (non-2xx) or invalid (no usable bearer token in the answer).",
            ),
            &["result"],
        )?;
        for result in TOKEN_RESULTS {
            oauth_token_requests.with_label_values(&[result]);
        }
        registry.register(Box::new(oauth_token_requests.clone()))?;
        Ok(Self {
            registry,
            messages_accepted,
            deliveries,
            attempt_duration,
            end_to_end,
            in_flight,
            schedule_backlog,
            circuit_open_skips,
            busy_endpoint_deferrals,
            broker_reconnects,
            redis_reconnects,
            redis_up,
            open_circuits,
            store_retries,
            oldest_pending_age,
            queue_ready,
            published_tasks,
            admission_waiting,
            scheduler_last_step,
            oauth_token_requests,
        })
    }

    /// Counts a settled task under `outcome` (a fixed, small set of names).
    pub fn delivery(&self, outcome: &str) {
        self.deliveries.with_label_values(&[outcome]).inc();
    }

    /// Counts a token request under `result` (one of [`TOKEN_RESULTS`]).
    pub fn oauth_token_request(&self, result: &str) {
        self.oauth_token_requests.with_label_values(&[result]).inc();
    }

    pub fn attempt_took(&self, duration: Duration) {
        self.attempt_duration.observe(duration.as_secs_f64());
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let metrics = Metrics::new().unwrap();
        metrics.messages_accepted.inc();
        metrics.delivery("succeeded");
        metrics.delivery("succeeded");
        metrics.attempt_took(Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains("hookline_messages_accepted_total 1"));
        assert!(text.contains(r#"hookline_deliveries_total{outcome="succeeded"} 2"#));
        assert!(text.contains(r#"hookline_attempt_duration_seconds_bucket{le="0.005"} 1"#));
        assert!(text.contains("# TYPE hookline_attempt_duration_seconds histogram"));

        // Every lane is there from the start, at 0, before anything sets it.
        for lane in QUEUE_LANES {
            let series = format!(r#"hookline_queue_ready_tasks{{lane="{lane}"}} 0"#);
            assert!(text.contains(&series), "{text}");
        }
        for lane in PUBLISH_LANES {
            let series = format!(r#"hookline_published_tasks_total{{lane="{lane}"}} 0"#);
            assert!(text.contains(&series), "{text}");
        }
        assert!(text.contains("hookline_scheduler_last_step_timestamp_seconds 0"));

        metrics.oldest_pending_age.set(61.5);
        metrics.queue_ready.with_label_values(&["dead"]).set(3);
        metrics
            .published_tasks
            .with_label_values(&["bulk"])
            .inc_by(2);
        metrics.admission_waiting.set(4);
        metrics.scheduler_last_step.set(1_700_000_000.25);
        let text = metrics.render();
        assert!(text.contains("# TYPE hookline_oldest_pending_age_seconds gauge"));
        assert!(text.contains("hookline_oldest_pending_age_seconds 61.5"));
        assert!(text.contains(r#"hookline_queue_ready_tasks{lane="dead"} 3"#));
        assert!(text.contains(r#"hookline_queue_ready_tasks{lane="fast"} 0"#));
        assert!(text.contains("# TYPE hookline_published_tasks_total counter"));
        assert!(text.contains(r#"hookline_published_tasks_total{lane="bulk"} 2"#));
        assert!(text.contains("hookline_admission_waiting_requests 4"));
        assert!(text.contains("hookline_scheduler_last_step_timestamp_seconds 1700000000.25"));
    }
}
