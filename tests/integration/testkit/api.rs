//! A small client for the Svix-shaped API, answering raw JSON so tests check the wire form.

use reqwest::StatusCode;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    /// Any request; answers the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request reaches the API");
        let status = response.status();
        let text = response.text().await.expect("response body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body {status}: {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// POST expecting `expected`; answers the body.
    pub async fn post(&self, path: &str, body: Value, expected: StatusCode) -> Value {
        let (status, answer) = self
            .call(reqwest::Method::POST, path, Some(&body), &[])
            .await;
        assert_eq!(status, expected, "POST {path}: {answer}");
        answer
    }

    pub async fn create_app(&self, uid: &str) -> String {
        let app = self
            .post(
                "/api/v1/app",
                json!({"name": uid, "uid": uid}),
                StatusCode::CREATED,
            )
            .await;
        app["id"].as_str().expect("app id").to_owned()
    }

    /// Creates an endpoint; answers its id.
    pub async fn create_endpoint(&self, app: &str, body: Value) -> String {
        let endpoint = self
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                body,
                StatusCode::CREATED,
            )
            .await;
        endpoint["id"].as_str().expect("endpoint id").to_owned()
    }

    pub async fn endpoint_secret(&self, app: &str, endpoint: &str) -> String {
        let secret = self
            .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}/secret"))
            .await;
        secret["key"].as_str().expect("secret key").to_owned()
    }

    /// Creates a message expecting 202; answers its id.
    pub async fn send(&self, app: &str, event_type: &str, payload: Value) -> String {
        let message = self
            .post(
                &format!("/api/v1/app/{app}/msg"),
                json!({"eventType": event_type, "payload": payload}),
                StatusCode::ACCEPTED,
            )
            .await;
        message["id"].as_str().expect("message id").to_owned()
    }

    /// Creates `count` messages (payload `{"n": i}`), 50 at a time; answers their ids.
    pub async fn send_many(&self, app: &str, event_type: &str, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for batch in (0..count).collect::<Vec<_>>().chunks(50) {
            let sends = batch
                .iter()
                .map(|n| self.send(app, event_type, json!({ "n": n })));
            ids.extend(futures::future::join_all(sends).await);
        }
        ids
    }

    /// Attempts of a message, oldest first.
    pub async fn attempts_of_message(&self, app: &str, msg: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/api/v1/app/{app}/attempt/msg/{msg}?limit=250"))
            .await;
        let mut items = page["data"].as_array().expect("data").clone();
        // The API lists newest first, as Svix does.
        items.reverse();
        items
    }

    /// The delivery state of `msg` for `endpoint`, as the destinations listing shows it.
    pub async fn destination(&self, app: &str, msg: &str, endpoint: &str) -> Option<Value> {
        let page = self
            .get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint"))
            .await;
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|d| d["id"] == endpoint)
            .cloned()
    }
}
