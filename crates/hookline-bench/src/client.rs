//! The Svix v1 operations the bench drives, over plain HTTP: any Svix-compatible server
//! given its URL and a token.

use std::time::Duration;

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("request to {path} failed: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{path} answered {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    pub fn new(base: &str, token: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.request(reqwest::Method::POST, path, body).await
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request(reqwest::Method::GET, path, &Value::Null).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.request(reqwest::Method::PATCH, path, body).await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        let request = if body.is_null() {
            request
        } else {
            request.json(body)
        };
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                path: path.to_owned(),
                source,
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ClientError::Status {
                path: path.to_owned(),
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn health(&self) -> bool {
        self.http
            .get(format!("{}/api/v1/health", self.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Creates an app; answers its id.
    pub async fn create_app(&self, name: &str) -> Result<String, ClientError> {
        let app = self.post("/api/v1/app", &json!({ "name": name })).await?;
        Ok(app["id"].as_str().unwrap_or_default().to_owned())
    }

    pub async fn create_endpoint(&self, app: &str, url: &str) -> Result<String, ClientError> {
        let endpoint = self
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                &json!({ "url": url }),
            )
            .await?;
        Ok(endpoint["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Creates an ordered (FIFO) endpoint; answers its id.
    pub async fn create_ordered_endpoint(
        &self,
        app: &str,
        url: &str,
    ) -> Result<String, ClientError> {
        let endpoint = self
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                &json!({ "url": url, "fifo": true }),
            )
            .await?;
        Ok(endpoint["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Creates a message; answers its id (the `webhook-id` of its deliveries).
    pub async fn send(&self, app: &str, body: &Value) -> Result<String, ClientError> {
        let message = self.post(&format!("/api/v1/app/{app}/msg"), body).await?;
        Ok(message["id"].as_str().unwrap_or_default().to_owned())
    }
}
