//! Redis commands per delivery, from the server's own counters (`INFO commandstats`), so the
//! figure covers every role that talks to Redis, whatever client it uses.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Calls per command since the server started. `None` when Redis cannot be asked (the
/// figure is then left out rather than guessed).
pub async fn command_calls(redis_url: &str) -> Option<BTreeMap<String, u64>> {
    let client = redis::Client::open(redis_url).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .ok()?;
    Some(parse_commandstats(&info))
}

/// `cmdstat_evalsha:calls=12,usec=…` lines as `{"evalsha": 12}`.
pub fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Commands per delivery between two readings, in total and by command (busiest first in
/// the report). `INFO` itself is the bench asking, not Hookline working: left out.
pub fn per_delivery(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    deliveries: usize,
) -> Option<Value> {
    if deliveries == 0 {
        return None;
    }
    let by_command: BTreeMap<&str, f64> = after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, calls)| {
            let added = calls.saturating_sub(before.get(name).copied().unwrap_or(0));
            (added > 0).then(|| (name.as_str(), added as f64 / deliveries as f64))
        })
        .collect();
    let total: f64 = by_command.values().sum();
    Some(json!({"perDelivery": total, "byCommand": by_command}))
}

/// "6.02 (evalsha 4.00, hset 1.01, …)", busiest first.
pub fn line(figure: &Value) -> Option<String> {
    let total = figure["perDelivery"].as_f64()?;
    let mut parts: Vec<(&String, f64)> = figure["byCommand"]
        .as_object()?
        .iter()
        .filter_map(|(name, per)| Some((name, per.as_f64()?)))
        // Background commands (the scheduler's polls, health checks) round to nothing.
        .filter(|(_, per)| *per >= 0.005)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = parts
        .iter()
        .map(|(name, per)| format!("{name} {per:.2}"))
        .collect();
    Some(format!("{total:.2} ({})", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_commands_calls_per_delivery_without_the_benchs_own_info() {
        let before = parse_commandstats(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\ncmdstat_info:calls=1,usec=1\r\n",
        );
        let after = parse_commandstats(
            "cmdstat_evalsha:calls=2010,usec=9\r\ncmdstat_hset:calls=1000,usec=1\r\ncmdstat_ping:calls=1,usec=1\r\ncmdstat_info:calls=2,usec=1\r\n",
        );
        assert_eq!(before["evalsha"], 10);
        let figure = per_delivery(&before, &after, 1000).expect("a figure");
        let total = figure["perDelivery"].as_f64().expect("a number");
        assert!((total - 3.001).abs() < 1e-9, "{total}");
        assert_eq!(figure["byCommand"]["evalsha"], 2.0);
        assert!(figure["byCommand"].get("info").is_none());
        assert_eq!(
            line(&figure).as_deref(),
            Some("3.00 (evalsha 2.00, hset 1.00)")
        );
        assert!(per_delivery(&before, &after, 0).is_none());
    }
}
