//! OAuth2 client-credentials tokens (RFC 6749 §4.4) for endpoints whose receivers accept
//! only a bearer token from their own authorisation server.
//!
//! [`TokenCache`] is shared by every worker of a dispatcher. It keeps one token per endpoint
//! and client (keyed by endpoint id and [`OAuthClient::fingerprint`], so a changed client
//! never carries its predecessor's token) and makes at most one token request per endpoint at
//! a time: a caller that finds no fresh token while a request is in flight awaits that
//! request's answer, success or failure, instead of starting its own.
//!
//! How long a token is used: until the earlier of 30 s before it expires and 90 % of its
//! lifetime (`expires_in`), but at least half its lifetime, so a short-lived token is still
//! reused (3600 s: refreshed after 3240 s; 60 s: after 30 s; 20 s: after 10 s). The margin
//! covers clock skew and the time a delivery takes to reach the receiver. An answer without
//! `expires_in` is taken to live [`DEFAULT_LIFETIME`] (5 minutes); longer lifetimes than a
//! day are cut to a day.
//!
//! A delivery answered 401 invalidates the token it carried, but only while that token is
//! still the cached one, so a burst of 401s after one revocation costs one new token
//! ([`TokenCache::invalidate`]); the delivery is then sent once more with the fresh token.
//!
//! Tokens are [`SecretText`] and are never logged; a failed token request is described
//! without the client secret (scrubbed from the server's answer) and without the body of a
//! 2xx answer (which may hold a token in a shape we did not understand).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use hookline_core::model::Endpoint;
use hookline_core::outbound::{EndpointTls, OAuthAuthMethod, OAuthClient};
use hookline_core::outcome::{AttemptResult, TransportError};
use hookline_core::secret::SecretText;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use tokio::time::Instant;

use crate::delivery::{Dispatcher, Sent};
use crate::sender::{Exchange, Sender};

/// The lifetime assumed for a token whose answer has no `expires_in`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// A token is refreshed at least this long before it expires (unless that is less than half
/// its lifetime).
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// The longest lifetime believed.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How much of a refusing token endpoint's answer the attempt log shows.
const EXCERPT_CHARS: usize = 200;
/// Form parameters the dispatcher sets itself; `extraParams` cannot replace them.
pub const RESERVED_PARAMS: [&str; 4] = ["grant_type", "scope", "client_id", "client_secret"];

/// An access token, with the serial number that tells it from its successors in the cache.
#[derive(Debug, Clone)]
pub struct Token {
    value: Arc<SecretText>,
    serial: u64,
}

impl Token {
    /// The token itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        self.value.expose()
    }
}

/// A token endpoint's answer.
#[derive(Debug)]
pub struct Fetched {
    pub access_token: SecretText,
    /// `expires_in`, when the answer had it.
    pub lifetime: Option<Duration>,
}

/// Why no token could be had. Its text goes to the attempt log: it names the failure and
/// never holds the client secret or a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(&'static str),
    #[error("token endpoint answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("token endpoint answered {0} without a JSON token response")]
    NotJson(u16),
    #[error("token endpoint answered without an access_token")]
    NoToken,
    #[error("token endpoint answered token_type `{0}`; only bearer tokens are supported")]
    NotBearer(String),
    #[error("token endpoint answered an access_token that cannot be sent in an HTTP header")]
    Unusable,
}

impl TokenError {
    /// The `result` label of `hookline_oauth_token_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Refused { .. } => "refused",
            Self::NotJson(_) | Self::NoToken | Self::NotBearer(_) | Self::Unusable => "invalid",
        }
    }
}

type Pending = Shared<BoxFuture<'static, Result<(Token, Instant), TokenError>>>;

/// One endpoint's token and the request that is fetching its next one.
struct Slot {
    fingerprint: String,
    /// The token and when it is to be refreshed.
    cached: Option<(Token, Instant)>,
    fetching: Option<Pending>,
}

/// Tokens by endpoint, shared by a dispatcher's workers.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
    serials: AtomicU64,
}

impl TokenCache {
    /// The endpoint's token for the client `fingerprint` names: the cached one while it is
    /// fresh, else the answer of the request in flight, else of a new one made with `fetch`.
    pub async fn get<F, Fut>(
        &self,
        endpoint_id: &str,
        fingerprint: &str,
        fetch: F,
    ) -> Result<Token, TokenError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, TokenError>> + Send + 'static,
    {
        let pending = {
            let mut slots = self.lock();
            let slot = slot_for(&mut slots, endpoint_id, fingerprint);
            if let Some((token, refresh_at)) = &slot.cached {
                if Instant::now() < *refresh_at {
                    return Ok(token.clone());
                }
            }
            match &slot.fetching {
                Some(pending) => pending.clone(),
                None => {
                    let serial = self.serials.fetch_add(1, Ordering::Relaxed);
                    let pending = fetch()
                        .map(move |fetched| fetched.map(|fetched| fresh(fetched, serial)))
                        .boxed()
                        .shared();
                    slot.fetching = Some(pending.clone());
                    pending
                }
            }
        };
        let answer = pending.clone().await;
        self.settle(endpoint_id, fingerprint, &pending, &answer);
        answer.map(|(token, _)| token)
    }

    /// Drops `token`, which a receiver refused, unless a newer token has replaced it already.
    pub fn invalidate(&self, endpoint_id: &str, fingerprint: &str, token: &Token) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(endpoint_id) else {
            return;
        };
        let current = slot
            .cached
            .as_ref()
            .is_some_and(|(cached, _)| cached.serial == token.serial);
        if slot.fingerprint == fingerprint && current {
            slot.cached = None;
        }
    }

    /// Keeps the answer of `pending` (the first of its callers to get here does) and lets the
    /// next caller start a new request.
    fn settle(
        &self,
        endpoint_id: &str,
        fingerprint: &str,
        pending: &Pending,
        answer: &Result<(Token, Instant), TokenError>,
    ) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(endpoint_id) else {
            return;
        };
        let ours = slot.fingerprint == fingerprint
            && slot.fetching.as_ref().is_some_and(|f| f.ptr_eq(pending));
        if !ours {
            return;
        }
        slot.fetching = None;
        if let Ok(fresh) = answer {
            slot.cached = Some(fresh.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The endpoint's slot for this client; a new client replaces the slot of the old one. A new
/// slot first clears out slots with nothing fresh and nothing in flight (endpoints deleted or
/// idle), so the map holds only endpoints in use.
fn slot_for<'a>(
    slots: &'a mut HashMap<String, Slot>,
    endpoint_id: &str,
    fingerprint: &str,
) -> &'a mut Slot {
    let known = slots
        .get(endpoint_id)
        .is_some_and(|slot| slot.fingerprint == fingerprint);
    if !known {
        let now = Instant::now();
        slots.retain(|_, slot| {
            slot.fetching.is_some() || slot.cached.as_ref().is_some_and(|(_, at)| *at > now)
        });
        slots.insert(
            endpoint_id.to_owned(),
            Slot {
                fingerprint: fingerprint.to_owned(),
                cached: None,
                fetching: None,
            },
        );
    }
    slots
        .get_mut(endpoint_id)
        .unwrap_or_else(|| unreachable!("the slot was just made"))
}

/// A fetched token and when to refresh it, counted from now.
fn fresh(fetched: Fetched, serial: u64) -> (Token, Instant) {
    let lifetime = fetched
        .lifetime
        .unwrap_or(DEFAULT_LIFETIME)
        .min(MAX_LIFETIME);
    let token = Token {
        value: Arc::new(fetched.access_token),
        serial,
    };
    (token, Instant::now() + refresh_after(lifetime))
}

/// How long a token of this lifetime is used (see the module's documentation).
fn refresh_after(lifetime: Duration) -> Duration {
    let margin = lifetime.saturating_sub(EXPIRY_MARGIN);
    let most = margin.min(lifetime.mul_f64(0.9));
    most.max(lifetime / 2)
}

/// Asks `client`'s token endpoint for a token, through `sender` with the endpoint's TLS
/// settings (an authorisation server behind the same private CA, or asking for the same
/// client certificate): the deliveries' address policy, proxy, timeout and response size
/// limit apply to it.
pub async fn request_token(
    sender: &Sender,
    client: &OAuthClient,
    tls: Option<&EndpointTls>,
) -> Result<Fetched, TokenError> {
    let (headers, form) = token_request(client);
    let exchange = sender
        .post(&client.token_url, tls, headers, Bytes::from(form))
        .await;
    match exchange.result {
        AttemptResult::Transport(kind) => Err(TokenError::Unreachable(transport_text(kind))),
        AttemptResult::Status(status) if (200..300).contains(&status) => {
            parse_token(status, &exchange.response_body)
        }
        AttemptResult::Status(status) => Err(TokenError::Refused {
            status,
            body: excerpt(&exchange.response_body, client),
        }),
    }
}

/// The client-credentials request: its headers and its form body.
fn token_request(client: &OAuthClient) -> (HeaderMap, String) {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if !client.scopes.is_empty() {
        form.append_pair("scope", &client.scopes.join(" "));
    }
    for (name, value) in &client.extra_params {
        if !RESERVED_PARAMS.contains(&name.as_str()) {
            form.append_pair(name, value);
        }
    }
    let secret = client.client_secret.as_ref().map_or("", SecretText::expose);
    match client.auth_method {
        OAuthAuthMethod::ClientSecretBasic => {
            headers.insert(AUTHORIZATION, basic_credentials(&client.client_id, secret));
        }
        OAuthAuthMethod::ClientSecretPost => {
            form.append_pair("client_id", &client.client_id);
            if client.client_secret.is_some() {
                form.append_pair("client_secret", secret);
            }
        }
    }
    (headers, form.finish())
}

/// HTTP Basic credentials as RFC 6749 §2.3.1 has them: id and secret each form-urlencoded
/// before they are joined and base64-encoded.
fn basic_credentials(client_id: &str, secret: &str) -> HeaderValue {
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// The token in a 2xx answer: `{access_token, token_type: bearer, expires_in?}`.
fn parse_token(status: u16, body: &str) -> Result<Fetched, TokenError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: Option<SecretText>,
        token_type: Option<String>,
        expires_in: Option<serde_json::Value>,
    }
    // serde's message may quote the answer, token and all: it is not kept.
    let answer: Answer = serde_json::from_str(body).map_err(|_| TokenError::NotJson(status))?;
    let access_token = answer
        .access_token
        .filter(|token| !token.expose().is_empty())
        .ok_or(TokenError::NoToken)?;
    // RFC 6749 §5.1 makes token_type required; anything but a bearer token would be sent
    // wrong.
    let token_type = answer.token_type.unwrap_or_default();
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::NotBearer(token_type.chars().take(40).collect()));
    }
    if HeaderValue::from_str(&format!("Bearer {}", access_token.expose())).is_err() {
        return Err(TokenError::Unusable);
    }
    Ok(Fetched {
        access_token,
        lifetime: answer.expires_in.as_ref().and_then(seconds),
    })
}

/// `expires_in` as a number of seconds, or a string of one (some servers send that).
fn seconds(value: &serde_json::Value) -> Option<Duration> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_LIFETIME.as_secs_f64())))
}

/// The first characters of a refusal, with the client secret blotted out should the server
/// have echoed it.
fn excerpt(body: &str, client: &OAuthClient) -> String {
    let mut text: String = body.chars().take(EXCERPT_CHARS).collect();
    if let Some(secret) = client.client_secret.as_ref().map(SecretText::expose) {
        if !secret.is_empty() {
            text = text.replace(secret, "[redacted]");
        }
    }
    text
}

fn transport_text(kind: TransportError) -> &'static str {
    match kind {
        TransportError::Timeout => "timed out",
        TransportError::Connect => "connection failed",
        TransportError::Tls => "TLS handshake failed",
        TransportError::Blocked => "address not allowed by the delivery address policy",
        TransportError::Reset => "connection reset",
        TransportError::CircuitOpen | TransportError::Token | TransportError::Other => {
            "the exchange failed"
        }
    }
}

impl Dispatcher {
    /// POSTs a delivery to an endpoint with an OAuth2 client, carrying its bearer token. A
    /// 401 drops that token and the delivery is sent once more with a fresh one; the attempt
    /// records the last exchange. No token: the attempt is a `token` failure, not sent.
    pub(crate) async fn post_authorized(
        &self,
        endpoint: &Endpoint,
        client: &OAuthClient,
        headers: HeaderMap,
        body: Bytes,
    ) -> Sent {
        let fingerprint = client.fingerprint();
        let started = std::time::Instant::now();
        let token = match self.token(endpoint, client, &fingerprint).await {
            Ok(token) => token,
            Err(error) => return self.without_token(headers, &error, started),
        };
        let sent = self
            .post_bearer(endpoint, headers.clone(), &token, body.clone())
            .await;
        if sent.exchange.result != AttemptResult::Status(401) {
            return sent;
        }
        self.tokens.invalidate(&endpoint.id, &fingerprint, &token);
        let started = std::time::Instant::now();
        match self.token(endpoint, client, &fingerprint).await {
            Ok(token) => self.post_bearer(endpoint, headers, &token, body).await,
            Err(error) => self.without_token(headers, &error, started),
        }
    }

    /// The endpoint's token, from the cache or from its token endpoint.
    async fn token(
        &self,
        endpoint: &Endpoint,
        client: &OAuthClient,
        fingerprint: &str,
    ) -> Result<Token, TokenError> {
        let sender = self.sender.clone();
        let client = client.clone();
        let tls = endpoint.tls.clone();
        let metrics = Arc::clone(&self.metrics);
        let endpoint_id = endpoint.id.clone();
        let fetch = move || async move {
            let answer = request_token(&sender, &client, tls.as_ref()).await;
            let result = answer.as_ref().map_or_else(TokenError::label, |_| "ok");
            metrics.oauth_token_request(result);
            if let Err(error) = &answer {
                tracing::warn!(%endpoint_id, %error, "OAuth2 token request failed");
            }
            answer
        };
        self.tokens.get(&endpoint.id, fingerprint, fetch).await
    }

    async fn post_bearer(
        &self,
        endpoint: &Endpoint,
        mut headers: HeaderMap,
        token: &Token,
        body: Bytes,
    ) -> Sent {
        // A token is checked to fit a header when it is fetched.
        if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        self.post(endpoint, headers, body).await
    }

    /// The attempt of a delivery that was not sent for want of a token.
    fn without_token(
        &self,
        headers: HeaderMap,
        error: &TokenError,
        started: std::time::Instant,
    ) -> Sent {
        Sent {
            request_headers: self.logged_headers(&headers),
            exchange: Exchange {
                result: AttemptResult::Transport(TransportError::Token),
                response_body: error.to_string(),
                response_headers: std::collections::BTreeMap::new(),
                duration: started.elapsed(),
                retry_after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A fetch that counts its calls, takes a moment, and answers a token named by its call.
    fn counting(
        calls: &Arc<AtomicUsize>,
        lifetime: Option<Duration>,
    ) -> impl FnOnce() -> BoxFuture<'static, Result<Fetched, TokenError>> {
        let calls = Arc::clone(calls);
        move || {
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(Fetched {
                    access_token: format!("token-{n}").into(),
                    lifetime,
                })
            }
            .boxed()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_token_request() {
        let cache = TokenCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let gets = (0..50).map(|_| cache.get("ep_1", "fp", counting(&calls, None)));
        let tokens = futures::future::join_all(gets).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for token in tokens {
            assert_eq!(token.expect("token").expose(), "token-1");
        }
        // And the next caller finds it cached.
        let again = cache.get("ep_1", "fp", counting(&calls, None)).await;
        assert_eq!(again.expect("token").expose(), "token-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_request_is_shared_then_forgotten() {
        let cache = TokenCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = || {
            let calls = Arc::clone(&calls);
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<Fetched, _>(TokenError::Unreachable("connection failed"))
            }
        };
        let gets = (0..10).map(|_| cache.get("ep_1", "fp", failing()));
        let answers = futures::future::join_all(gets).await;
        assert!(answers.iter().all(Result::is_err));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let token = cache.get("ep_1", "fp", counting(&calls, None)).await;
        assert_eq!(token.expect("token").expose(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_refetched_shortly_before_it_expires() {
        let cache = TokenCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let lifetime = Some(Duration::from_secs(60));
        let get = || cache.get("ep_1", "fp", counting(&calls, lifetime));
        assert_eq!(get().await.expect("token").expose(), "token-1");
        // 60 s: used for 30 s (30 s before expiry, earlier than 90 %).
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(get().await.expect("token").expose(), "token-1");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(get().await.expect("token").expose(), "token-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn without_expires_in_a_token_lives_five_minutes() {
        let cache = TokenCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let get = || cache.get("ep_1", "fp", counting(&calls, None));
        get().await.expect("token");
        tokio::time::advance(Duration::from_secs(269)).await;
        get().await.expect("token");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        get().await.expect("token");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn invalidating_a_stale_token_keeps_the_newer_one() {
        let cache = TokenCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let get = || cache.get("ep_1", "fp", counting(&calls, None));
        let first = get().await.expect("token");
        cache.invalidate("ep_1", "fp", &first);
        let second = get().await.expect("token");
        assert_eq!(second.expose(), "token-2");
        // A late 401 to a delivery that carried the first token.
        cache.invalidate("ep_1", "fp", &first);
        assert_eq!(get().await.expect("token").expose(), "token-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        cache.invalidate("ep_1", "fp", &second);
        assert_eq!(get().await.expect("token").expose(), "token-3");
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_client_gets_its_own_token() {
        let cache = TokenCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let old = cache.get("ep_1", "old", counting(&calls, None)).await;
        let new = cache.get("ep_1", "new", counting(&calls, None)).await;
        assert_eq!(old.expect("token").expose(), "token-1");
        assert_eq!(new.expect("token").expose(), "token-2");
        let other = cache.get("ep_2", "new", counting(&calls, None)).await;
        assert_eq!(other.expect("token").expose(), "token-3");
    }

    #[test]
    fn refresh_times() {
        let secs = Duration::from_secs;
        assert_eq!(refresh_after(secs(3600)), secs(3240));
        assert_eq!(refresh_after(secs(300)), secs(270));
        assert_eq!(refresh_after(secs(60)), secs(30));
        assert_eq!(refresh_after(secs(20)), secs(10));
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_answers_are_checked() {
        let ok = parse_token(
            200,
            r#"{"access_token":"abc","token_type":"Bearer","expires_in":"60"}"#,
        )
        .expect("token");
        assert_eq!(ok.access_token.expose(), "abc");
        assert_eq!(ok.lifetime, Some(Duration::from_secs(60)));
        let no_expiry = parse_token(200, r#"{"access_token":"abc","token_type":"bearer"}"#);
        assert_eq!(no_expiry.expect("token").lifetime, None);
        let cases = [
            (
                "access_token=abc&token_type=bearer",
                "without a JSON token response",
            ),
            (r#"{"token_type":"bearer"}"#, "without an access_token"),
            (
                r#"{"access_token":"","token_type":"bearer"}"#,
                "without an access_token",
            ),
            (
                r#"{"access_token":"abc","token_type":"mac"}"#,
                "token_type `mac`",
            ),
            (r#"{"access_token":"abc"}"#, "token_type ``"),
            (
                r#"{"access_token":"a\nb","token_type":"bearer"}"#,
                "cannot be sent",
            ),
            (
                r#"{"access_token":7,"token_type":"bearer"}"#,
                "without a JSON token response",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_token(200, body).expect_err(body).to_string();
            assert!(error.contains(expected), "{body}: {error}");
            assert!(!error.contains("abc"), "{error}");
        }
    }

    /// A token server on loopback that records each request's headers and form.
    async fn token_server(
        answer: (u16, &'static str),
    ) -> (
        String,
        Arc<Mutex<Vec<(HeaderMap, String)>>>,
        tokio::task::JoinHandle<()>,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let record = Arc::clone(&record);
                async move {
                    let mut kept = HeaderMap::new();
                    for (name, value) in &headers {
                        kept.insert(name.clone(), value.clone());
                    }
                    record.lock().expect("lock").push((kept, body));
                    let status = axum::http::StatusCode::from_u16(answer.0).expect("status");
                    (status, answer.1)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/token", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, seen, server)
    }

    fn sender() -> Sender {
        let allowed = hookline_core::address::AddressPolicy::parse_allowed(&["127.0.0.0/8".into()])
            .expect("cidr");
        let policy = hookline_core::address::AddressPolicy::new(allowed, false);
        Sender::new(
            Duration::from_secs(5),
            4096,
            "test",
            hookline_net::Resolver::system(policy),
            None,
        )
        .expect("sender")
    }

    fn client(url: &str, auth_method: OAuthAuthMethod) -> OAuthClient {
        OAuthClient {
            token_url: url.to_owned(),
            client_id: "hook line:1".into(),
            client_secret: Some("s3cr+t/&=".into()),
            auth_method,
            scopes: vec!["webhooks.write".into(), "audit".into()],
            extra_params: BTreeMap::from([
                ("audience".to_owned(), "https://api.example".to_owned()),
                ("grant_type".to_owned(), "password".to_owned()),
            ]),
        }
    }

    #[tokio::test]
    async fn the_token_request_carries_the_client_credentials() {
        let body = r#"{"access_token":"tok-1","token_type":"bearer","expires_in":120}"#;
        let (url, seen, server) = token_server((200, body)).await;
        for method in [
            OAuthAuthMethod::ClientSecretBasic,
            OAuthAuthMethod::ClientSecretPost,
        ] {
            let fetched = request_token(&sender(), &client(&url, method), None)
                .await
                .expect("token");
            assert_eq!(fetched.access_token.expose(), "tok-1");
            assert_eq!(fetched.lifetime, Some(Duration::from_secs(120)));
        }
        let seen = seen.lock().expect("lock").clone();
        let form = |body: &str| -> BTreeMap<String, String> {
            url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect()
        };
        let (basic_headers, basic_body) = &seen[0];
        assert_eq!(
            basic_headers[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        // RFC 6749 §2.3.1: each part form-urlencoded, then base64.
        let expected =
            base64::engine::general_purpose::STANDARD.encode("hook+line%3A1:s3cr%2Bt%2F%26%3D");
        assert_eq!(
            basic_headers[AUTHORIZATION],
            format!("Basic {expected}").as_str()
        );
        let basic = form(basic_body);
        assert_eq!(basic["grant_type"], "client_credentials");
        assert_eq!(basic["scope"], "webhooks.write audit");
        assert_eq!(basic["audience"], "https://api.example");
        assert!(!basic.contains_key("client_secret"));
        let (post_headers, post_body) = &seen[1];
        assert!(post_headers.get(AUTHORIZATION).is_none());
        let post = form(post_body);
        assert_eq!(post["client_id"], "hook line:1");
        assert_eq!(post["client_secret"], "s3cr+t/&=");
        assert_eq!(post["grant_type"], "client_credentials");
        server.abort();
    }

    #[tokio::test]
    async fn a_refusal_is_described_without_the_secret() {
        let (url, _, server) =
            token_server((401, r#"{"error":"invalid_client","got":"s3cr+t/&="}"#)).await;
        let error = request_token(
            &sender(),
            &client(&url, OAuthAuthMethod::ClientSecretPost),
            None,
        )
        .await
        .expect_err("refused");
        let text = error.to_string();
        assert!(text.starts_with("token endpoint answered 401: "), "{text}");
        assert!(text.contains("invalid_client"), "{text}");
        assert!(!text.contains("s3cr+t"), "{text}");
        assert_eq!(error.label(), "refused");
        server.abort();
        let unreachable = request_token(
            &sender(),
            &client(
                "http://127.0.0.1:1/token",
                OAuthAuthMethod::ClientSecretBasic,
            ),
            None,
        )
        .await
        .expect_err("unreachable");
        assert_eq!(
            unreachable.to_string(),
            "token endpoint unreachable: connection failed"
        );
    }
}
