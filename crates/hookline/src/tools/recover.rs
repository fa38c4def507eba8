//! `hookline recover`: start an endpoint recovery and follow it to its summary.

use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::Client;
use crate::cli::ApiArgs;

pub async fn run(
    api: &ApiArgs,
    app: &str,
    endpoint: &str,
    since: &str,
    until: Option<&str>,
) -> anyhow::Result<()> {
    let since = parse_time(since, OffsetDateTime::now_utc())?;
    let mut body = json!({"since": since.format(&Rfc3339)?});
    if let Some(until) = until {
        body["until"] = json!(parse_time(until, OffsetDateTime::now_utc())?.format(&Rfc3339)?);
    }
    let client = Client::new(api);
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/recover");
    let started = client
        .call(reqwest::Method::POST, &path, Some(&body), &[])
        .await?;
    let id = started["id"]
        .as_str()
        .context("the API answered no recovery id")?;
    println!(
        "recovering {endpoint} since {} (job {id})",
        since.format(&Rfc3339)?
    );

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} resent  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let summary = loop {
        let status = client
            .call(reqwest::Method::GET, &format!("{path}/{id}"), None, &[])
            .await?;
        let count = |field: &str| status["data"][field].as_u64().unwrap_or(0);
        bar.set_length(count("messagesSent"));
        bar.set_position(count("messagesSent").saturating_sub(count("outstanding")));
        bar.set_message(format!(
            "{} ok, {} failed, {} connection errors",
            count("succeeded"),
            count("failed"),
            count("connectionErrors")
        ));
        match status["status"].as_str() {
            Some("running") => tokio::time::sleep(Duration::from_millis(250)).await,
            Some("finished") => break status,
            other => {
                bar.abandon();
                let reason = status["data"]["error"]
                    .as_str()
                    .unwrap_or("no reason given");
                bail!(
                    "the recovery ended as {}: {reason}",
                    other.unwrap_or("unknown")
                );
            }
        }
    };
    bar.finish();
    println!("{}", summary_line(&summary));
    Ok(())
}

/// The one line a person reads at the end, from the finished task.
pub fn summary_line(summary: &Value) -> String {
    let count = |field: &str| summary["data"][field].as_u64().unwrap_or(0);
    format!(
        "succeeded {} / failed {} / connection errors {} / total {}",
        count("succeeded"),
        count("failed"),
        count("connectionErrors"),
        count("messagesSent")
    )
}

/// An RFC 3339 time, or a span back from `now` such as `90m`, `6h` or `2d`.
pub fn parse_time(text: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number
        .parse()
        .with_context(|| format!("`{text}` is neither an RFC 3339 time nor a span like 6h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("`{text}`: a span ends in s, m, h or d"),
    };
    Ok(now - Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_spans() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(100_000);
        assert_eq!(
            parse_time("6h", now).unwrap(),
            now - Duration::from_secs(6 * 3600)
        );
        assert_eq!(
            parse_time("1970-01-01T00:00:10Z", now).unwrap(),
            OffsetDateTime::UNIX_EPOCH + Duration::from_secs(10)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5w", now).is_err());
    }

    #[test]
    fn summary_names_every_count() {
        let summary = json!({"data": {"succeeded": 498, "failed": 1, "connectionErrors": 1, "messagesSent": 500}});
        assert_eq!(
            summary_line(&summary),
            "succeeded 498 / failed 1 / connection errors 1 / total 500"
        );
    }
}
