//! The results: a table for the terminal and `results.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::scenarios::ScenarioResult;

/// Peak RSS allowed per role at scenario 1.
pub const RSS_TARGET_MIB: f64 = 150.0;

#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// Confirmed publishes plus acked consumes of persistent messages on a quorum queue.
    pub rabbitmq_per_second: f64,
    /// Loopback POSTs to the bench receiver.
    pub http_per_second: f64,
    /// One message at a time: publish, confirm, arrival at a consumer.
    pub rabbitmq_round_trip: crate::stats::Latency,
    /// CPU by process while the RabbitMQ ceiling was measured, in cores.
    pub cores_used: BTreeMap<String, f64>,
    /// CPU by process while the HTTP ceiling was measured (the bench is client and receiver).
    pub http_cores_used: BTreeMap<String, f64>,
}

/// Where scenario 1's CPU goes per delivery, in µs, against what the ceiling's own parts cost
/// in the same run. Every delivery passes through one broker trip (publish, confirm,
/// consume, ack) and two loopback HTTP exchanges (the create request, the webhook), so their
/// cost measured alone is a floor no implementation on these libraries can go below.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPerDelivery {
    /// The RabbitMQ ceiling's CPU (broker and client) per message.
    pub broker_trip: f64,
    /// The HTTP ceiling's CPU (client and server) per request.
    pub http_exchange: f64,
    /// All watched processes' CPU in scenario 1 per delivery.
    pub scenario_1: f64,
    /// The CPU per delivery that would reach `share` of the RabbitMQ ceiling on `cores`.
    pub budget_at_target: f64,
}

impl CpuPerDelivery {
    pub fn new(
        ceiling: &Ceiling,
        scenario_1_cores: &BTreeMap<String, f64>,
        scenario_1_per_second: f64,
        cores: usize,
        share: f64,
    ) -> Option<Self> {
        let micros = |used: &BTreeMap<String, f64>, rate: f64| {
            (rate > 0.0).then(|| used.values().sum::<f64>() * 1e6 / rate)
        };
        let target_rate = share * ceiling.rabbitmq_per_second;
        Some(Self {
            broker_trip: micros(&ceiling.cores_used, ceiling.rabbitmq_per_second)?,
            http_exchange: micros(&ceiling.http_cores_used, ceiling.http_per_second)?,
            scenario_1: micros(scenario_1_cores, scenario_1_per_second)?,
            budget_at_target: (target_rate > 0.0).then(|| cores as f64 * 1e6 / target_rate)?,
        })
    }

    /// The parts every delivery needs: one broker trip and two HTTP exchanges.
    pub fn floor(&self) -> f64 {
        self.broker_trip + 2.0 * self.http_exchange
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub target: String,
    /// `rabbitmq+redis`, `embedded` or `external`.
    pub engine: String,
    /// Where the spawned deployment keeps its delivery log: `redis`, `postgres` or
    /// `embedded`; `null` for an external server.
    pub log: Option<String>,
    /// The PostgreSQL schema the log was in (dropped after the run).
    pub log_schema: Option<String>,
    pub spawned: bool,
    pub payload_bytes: usize,
    pub machine: String,
    pub ceiling: Ceiling,
    pub peak_rss_mib: BTreeMap<String, f64>,
    pub scenarios: Vec<ScenarioResult>,
}

/// CPU model, cores and memory, from /proc.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: f64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    format!("{model}, {cores} cores, {memory:.0} GiB")
}

impl Report {
    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nHookline bench — {} on {}{} ({})",
            self.target,
            self.engine,
            self.log
                .as_deref()
                .map_or(String::new(), |log| format!(", delivery log in {log}")),
            self.machine
        );
        let _ = writeln!(
            out,
            "raw ceiling: RabbitMQ {:.0} msg/s (confirmed publish + ack, quorum, {} B persistent), loopback HTTP {:.0} req/s",
            self.ceiling.rabbitmq_per_second, self.payload_bytes, self.ceiling.http_per_second
        );
        let _ = writeln!(
            out,
            "CPU during the RabbitMQ ceiling, in cores: {}",
            cores_line(&self.ceiling.cores_used)
        );
        let trip = &self.ceiling.rabbitmq_round_trip;
        let _ = writeln!(
            out,
            "broker round trip (publish → confirm → consumer, one at a time): p50 {:.1} ms, p99 {:.1} ms",
            trip.p50_ms, trip.p99_ms
        );
        let _ = writeln!(
            out,
            "\n{:<44} {:>9} {:>9} {:>9} {:>9}  {:<58} {:<32} met",
            "scenario", "deliv.", "deliv./s", "p50 ms", "p99 ms", "figure", "target"
        );
        for s in &self.scenarios {
            let _ = writeln!(
                out,
                "{:<44} {:>9} {:>9.0} {:>9.1} {:>9.1}  {:<58} {:<32} {}",
                format!("{} {}", s.id, s.name),
                format!("{}/{}", s.deliveries, s.expected_deliveries),
                s.per_second,
                s.latency.p50_ms,
                s.latency.p99_ms,
                s.figure,
                s.target,
                if s.met { "yes" } else { "NO" }
            );
            if s.duplicates > 0 || s.rejected > 0 {
                let _ = writeln!(
                    out,
                    "{:<44} duplicates {}, rejected sends {}",
                    "", s.duplicates, s.rejected
                );
            }
        }
        if let Some(s) = self.scenarios.iter().find(|s| s.id == 6) {
            let _ = writeln!(
                out,
                "\nbacklog statistics during scenario 6: {}",
                crate::flood::backlog_line(&s.details)
            );
        }
        for s in &self.scenarios {
            let lines = match s.id {
                7 => crate::pglog::sizing_lines(&s.details),
                8 => vec![
                    crate::pglog::drop_line(&s.details),
                    crate::pglog::drop_statements_line(&s.details),
                ],
                9 => crate::pglog::reads_lines(&s.details),
                _ => continue,
            };
            let _ = writeln!(out);
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
        let scenario_1 = self.scenarios.iter().find(|s| s.id == 1);
        if let Some((s, cores)) = scenario_1.and_then(|s| {
            let cores =
                serde_json::from_value::<BTreeMap<String, f64>>(s.details["coresUsed"].clone());
            Some((s, cores.ok()?))
        }) {
            let _ = writeln!(
                out,
                "\nCPU during scenario 1, in cores: {}",
                cores_line(&cores)
            );
            let available = std::thread::available_parallelism().map_or(0, |n| n.get());
            let share = crate::scenarios::THROUGHPUT_TARGET;
            if let Some(cpu) =
                CpuPerDelivery::new(&self.ceiling, &cores, s.per_second, available, share)
            {
                let _ = writeln!(
                    out,
                    "CPU per delivery, in µs: scenario 1 used {:.0}; one broker trip {:.0} and two HTTP exchanges 2×{:.0} measured alone make a floor of {:.0}; {share:.2} of the ceiling on {available} cores allows {:.0}",
                    cpu.scenario_1,
                    cpu.broker_trip,
                    cpu.http_exchange,
                    cpu.floor(),
                    cpu.budget_at_target,
                );
            }
        }
        for (id, target) in REDIS_COMMANDS_TARGET {
            let figure = self
                .scenarios
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| crate::redis_stats::line(&s.details["redisCommands"]));
            if let Some(figure) = figure {
                let _ = writeln!(
                    out,
                    "Redis commands per delivery, scenario {id}: {figure}; target ≤ {target:.1}"
                );
            }
        }
        if !self.peak_rss_mib.is_empty() {
            let roles: Vec<String> = self
                .peak_rss_mib
                .iter()
                .map(|(role, mib)| format!("{role} {mib:.0} MiB"))
                .collect();
            let met = self.peak_rss_mib.values().all(|m| *m < RSS_TARGET_MIB);
            let _ = writeln!(
                out,
                "\npeak RSS after scenario 1: {} (target < {RSS_TARGET_MIB:.0} MiB each: {})",
                roles.join(", "),
                if met { "yes" } else { "NO" }
            );
        }
        out
    }
}

/// Redis commands per delivery each scenario should stay within (`INFO commandstats`):
/// scenario 1 (one endpoint) and scenario 2 (ten endpoints per message).
const REDIS_COMMANDS_TARGET: [(u8, f64); 2] = [(1, 1.0), (2, 0.5)];

/// "rabbitmq 0.50, dispatcher 0.47, … (total 1.86 of 2)", busiest first.
fn cores_line(cores: &BTreeMap<String, f64>) -> String {
    let mut used: Vec<(&String, &f64)> = cores.iter().collect();
    used.sort_by(|a, b| b.1.total_cmp(a.1));
    let total: f64 = cores.values().sum();
    let parts: Vec<String> = used.iter().map(|(n, c)| format!("{n} {c:.2}")).collect();
    let available = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{} (total {total:.2} of {available})", parts.join(", "))
}

pub fn write(report: &Report, dir: &Path) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("results.json"), json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    #[test]
    fn cpu_per_delivery_divides_each_runs_cores_by_its_rate() {
        let ceiling = Ceiling {
            rabbitmq_per_second: 10_000.0,
            http_per_second: 40_000.0,
            rabbitmq_round_trip: crate::stats::latency(&[1_000]),
            cores_used: cores(&[("rabbitmq", 0.8), ("bench", 0.8)]),
            http_cores_used: cores(&[("bench", 1.6)]),
        };
        let scenario = cores(&[("dispatcher", 0.5), ("rabbitmq", 0.5), ("ingest", 0.5)]);
        let cpu = CpuPerDelivery::new(&ceiling, &scenario, 2_500.0, 2, 0.6).expect("figures");
        assert_eq!(cpu.broker_trip, 160.0);
        assert_eq!(cpu.http_exchange, 40.0);
        assert_eq!(cpu.floor(), 240.0);
        assert_eq!(cpu.scenario_1, 600.0);
        // 0.6 × 10,000/s on 2 cores: 2,000,000 µs / 6,000.
        assert!((cpu.budget_at_target - 333.33).abs() < 0.01);
        assert_eq!(
            CpuPerDelivery::new(&ceiling, &scenario, 0.0, 2, 0.6),
            None,
            "no deliveries, no figure"
        );
    }
}
