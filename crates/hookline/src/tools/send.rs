//! `hookline send`: create one message.

use anyhow::Context;
use serde_json::{json, Value};

use super::client::Client;
use crate::cli::ApiArgs;

pub async fn run(
    api: &ApiArgs,
    app: &str,
    event_type: &str,
    payload: &str,
    idempotency_key: Option<&str>,
) -> anyhow::Result<()> {
    let payload: Value = serde_json::from_str(payload).context("--payload is not JSON")?;
    let body = json!({"eventType": event_type, "payload": payload});
    let headers: Vec<(&str, &str)> = idempotency_key
        .map(|key| ("idempotency-key", key))
        .into_iter()
        .collect();
    let message = Client::new(api)
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(&body),
            &headers,
        )
        .await?;
    println!(
        "accepted {} ({event_type})",
        message["id"].as_str().unwrap_or("?")
    );
    Ok(())
}
