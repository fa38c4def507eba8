//! A small API client for the terminal commands.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cli::ApiArgs;

pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(args: &ApiArgs) -> Self {
        Self {
            base: args.url.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request; a non-2xx answer becomes an error with the API's `detail`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            let detail = match &value["detail"] {
                Value::String(detail) => detail.clone(),
                Value::Null => value.to_string(),
                other => other.to_string(),
            };
            bail!("{status}: {detail}");
        }
        Ok(value)
    }
}
