//! A real OAuth2 authorisation server on loopback for the client-credentials grant
//! (RFC 6749 §4.4): it authenticates its one client by HTTP Basic or by the form body, issues
//! random bearer tokens with `expires_in`, and counts the token requests it gets. A test can
//! revoke the tokens issued so far, and take the server down (503) and bring it back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::json;

struct Inner {
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    down: bool,
    /// Requests to the token endpoint, answered or refused.
    requests: usize,
    /// Tokens issued and not revoked, with when each expires.
    valid: HashMap<String, Instant>,
    issued: Vec<String>,
    /// The form of the last request.
    last_form: BTreeMap<String, String>,
}

/// The authorisation server; clones are the same server.
#[derive(Clone)]
pub struct TokenServer {
    /// The token endpoint's URL.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl TokenServer {
    /// A server whose one client is `client_id` with `client_secret`, issuing tokens that
    /// live `lifetime`.
    pub async fn start(client_id: &str, client_secret: &str, lifetime: Duration) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime,
            down: false,
            requests: 0,
            valid: HashMap::new(),
            issued: Vec::new(),
            last_form: BTreeMap::new(),
        }));
        let app = Router::new()
            .route("/oauth/token", axum::routing::post(token))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind token server");
        let url = format!(
            "http://{}/oauth/token",
            listener.local_addr().expect("addr")
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            inner,
            server: Arc::new(server),
        }
    }

    /// Requests to the token endpoint so far, whatever their answer.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.lock().issued.len()
    }

    /// Every token issued so far, revoked or not.
    pub fn all_issued(&self) -> Vec<String> {
        self.lock().issued.clone()
    }

    /// Whether `token` was issued here, is not revoked and has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        self.lock()
            .valid
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    /// Revokes every token issued so far; answers how many were valid.
    pub fn revoke_all(&self) -> usize {
        let mut inner = self.lock();
        let revoked = inner.valid.len();
        inner.valid.clear();
        revoked
    }

    /// While down, every token request is answered 503.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// The form parameters of the last token request.
    pub fn last_form(&self) -> BTreeMap<String, String> {
        self.lock().last_form.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// RFC 6749 §5.2's error shape.
fn error(status: StatusCode, code: &str) -> Response {
    (status, axum::Json(json!({ "error": code }))).into_response()
}

async fn token(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut inner = inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    inner.requests += 1;
    inner.last_form = form.clone();
    if inner.down {
        return error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let (id, secret) = match basic_credentials(&headers) {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if id != inner.client_id || secret != inner.client_secret {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let access_token = hex(&bytes);
    let expires = Instant::now() + inner.lifetime;
    inner.valid.insert(access_token.clone(), expires);
    inner.issued.push(access_token.clone());
    let answer = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": inner.lifetime.as_secs(),
    });
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// The client id and secret of an HTTP Basic header, each form-urldecoded (RFC 6749
/// §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |part: &str| -> String {
        url::form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
