//! A receiver that accepts only bearer tokens its [`TokenServer`] holds valid: a real HTTP
//! server on loopback in front of a [`Receiver`]. A request without a currently valid token
//! is answered 401 and counted; the others are passed to the receiver, which records them and
//! answers as its reply says.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Router;

use super::receiver::{Receiver, Reply};
use super::token_server::TokenServer;

struct Guard {
    tokens: TokenServer,
    inner: Receiver,
    client: reqwest::Client,
    rejected: AtomicUsize,
    /// How long a refusal takes.
    refuse_after: Duration,
}

#[derive(Clone)]
pub struct BearerReceiver {
    pub base: String,
    guard: Arc<Guard>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for BearerReceiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl BearerReceiver {
    /// A receiver that trusts `tokens`' tokens.
    pub async fn start(tokens: &TokenServer) -> Self {
        Self::start_slow_to_refuse(tokens, Duration::ZERO).await
    }

    /// A receiver that trusts `tokens`' tokens and answers a refusal only after `delay`, so
    /// requests made with a token keep arriving after its first refusal has gone back.
    pub async fn start_slow_to_refuse(tokens: &TokenServer, delay: Duration) -> Self {
        let guard = Arc::new(Guard {
            tokens: tokens.clone(),
            inner: Receiver::start().await,
            client: reqwest::Client::new(),
            rejected: AtomicUsize::new(0),
            refuse_after: delay,
        });
        let app = Router::new()
            .route("/{path}", axum::routing::post(guarded))
            .with_state(Arc::clone(&guard));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind bearer receiver");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            guard,
            server: Arc::new(server),
        }
    }

    /// The URL of `path`, answering authorised requests per `reply`.
    pub fn url(&self, path: &str, reply: Reply) -> String {
        self.guard.inner.url(path, reply);
        format!("{}/{path}", self.base)
    }

    /// The receiver behind the guard: every request it has is an authorised one.
    pub fn receiver(&self) -> &Receiver {
        &self.guard.inner
    }

    /// Requests answered 401 for want of a valid token.
    pub fn rejected(&self) -> usize {
        self.guard.rejected.load(Ordering::SeqCst)
    }
}

async fn guarded(
    State(guard): State<Arc<Guard>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|token| guard.tokens.is_valid(token)) {
        guard.rejected.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(guard.refuse_after).await;
        return (StatusCode::UNAUTHORIZED, "invalid_token".to_owned());
    }
    let mut forwarded = headers.clone();
    forwarded.remove("host");
    forwarded.remove("content-length");
    let answer = guard
        .client
        .post(format!("{}/{path}", guard.inner.base))
        .headers(forwarded)
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, answer.text().await.unwrap_or_default())
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()),
    }
}
