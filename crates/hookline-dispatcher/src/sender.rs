//! The outbound HTTP exchange: one POST, bounded in time and in bytes read, with every failure
//! named by its kind so the attempt log can tell a timeout from a refused connection.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookline_core::outcome::{retry_after, AttemptResult, TransportError};
use hookline_net::{ResolveError, Resolver};
use reqwest::header::HeaderMap;

/// What came back from one POST.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub result: AttemptResult,
    /// The first bytes of the response body, lossily decoded as UTF-8.
    pub response_body: String,
    /// The response's headers (the first [`MAX_RESPONSE_HEADERS`]), for the attempt log.
    pub response_headers: BTreeMap<String, String>,
    pub duration: Duration,
    /// The wait a 429 or 503 asked for with `Retry-After`.
    pub retry_after: Option<Duration>,
}

/// At most this many response headers are kept per attempt.
pub const MAX_RESPONSE_HEADERS: usize = 64;

/// What came back when a response arrived.
struct Response {
    status: u16,
    body: String,
    headers: BTreeMap<String, String>,
    retry_after: Option<Duration>,
}

/// The client could not be built (the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct SenderError(#[source] reqwest::Error);

/// Posts signed deliveries. Cheap to clone: the connection pool is shared.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    resolver: Resolver,
    timeout: Duration,
    max_response_bytes: usize,
}

impl Sender {
    /// Every connection goes to an address `resolver` let through.
    pub fn new(
        timeout: Duration,
        max_response_bytes: usize,
        user_agent: &str,
        resolver: Resolver,
    ) -> Result<Self, SenderError> {
        let client = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(resolver.clone()))
            // A redirect could point anywhere, including the platform's own network; a receiver
            // that moved must have its endpoint URL updated instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(SenderError)?;
        Ok(Self {
            client,
            resolver,
            timeout,
            max_response_bytes,
        })
    }

    /// POSTs `body` to `url` and reads at most the configured number of response bytes.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> Exchange {
        let started = Instant::now();
        // Literal IP hosts never reach the resolver, so the policy is applied to them here.
        let refused = match url::Url::parse(url) {
            Ok(parsed) => self
                .resolver
                .policy()
                .check_url(&parsed)
                .err()
                .map(|e| e.to_string()),
            Err(error) => Some(error.to_string()),
        };
        if let Some(reason) = refused {
            tracing::warn!(%reason, "delivery refused by the address policy");
            return Exchange {
                result: AttemptResult::Transport(TransportError::Blocked),
                response_body: String::new(),
                response_headers: BTreeMap::new(),
                duration: started.elapsed(),
                retry_after: None,
            };
        }
        // One deadline for the whole exchange, head and body alike, so a receiver that
        // trickles its response cannot hold a worker past the limit however often it sends.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let outcome = self.exchange(url, headers, body, deadline).await;
        let failed = |kind| Exchange {
            result: AttemptResult::Transport(kind),
            response_body: String::new(),
            response_headers: BTreeMap::new(),
            duration: started.elapsed(),
            retry_after: None,
        };
        match outcome {
            Ok(response) => Exchange {
                result: AttemptResult::Status(response.status),
                response_body: response.body,
                response_headers: response.headers,
                duration: started.elapsed(),
                retry_after: response.retry_after,
            },
            Err(kind) => failed(kind),
        }
    }

    /// Sends the request and reads the response, all before `deadline`. A status that
    /// arrived in time is the answer even if the body did not (a timeout then only cuts
    /// the body short); without a status the exchange failed with the returned kind.
    async fn exchange(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<Response, TransportError> {
        let sent = self.client.post(url).headers(headers).body(body).send();
        let mut response = match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(transport_error(&error)),
            Err(_elapsed) => return Err(TransportError::Timeout),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(status, v, std::time::SystemTime::now()));
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            if let Some(seen) = headers.get_mut(name.as_str()) {
                seen.push_str(", ");
                seen.push_str(&value);
            } else if headers.len() < MAX_RESPONSE_HEADERS {
                headers.insert(name.as_str().to_owned(), value.into_owned());
            }
        }
        let mut kept = Vec::new();
        while kept.len() < self.max_response_bytes {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    let room = self.max_response_bytes - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(Ok(None)) => break,
                // The status already arrived: a body cut short, by the receiver or by the
                // deadline, does not change the verdict.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&kept).into_owned(),
            headers,
            retry_after,
        })
    }
}

/// Names a failed exchange: timeout, connect, TLS or other.
fn transport_error(error: &reqwest::Error) -> TransportError {
    if error.is_timeout() {
        return TransportError::Timeout;
    }
    if let Some(resolve) = find_cause::<ResolveError>(error) {
        return match resolve {
            ResolveError::Blocked(_) => TransportError::Blocked,
            ResolveError::Lookup { .. } => TransportError::Connect,
        };
    }
    if caused_by_tls(error) {
        return TransportError::Tls;
    }
    if error.is_connect() {
        return TransportError::Connect;
    }
    if reset_by_peer(error) {
        return TransportError::Reset;
    }
    TransportError::Other
}

/// Whether the receiver dropped the connection after it was made: an RST, or the socket
/// closed before a whole response (hyper reports that as an incomplete message).
fn reset_by_peer(error: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    let io_reset = find_cause::<std::io::Error>(error).is_some_and(|io| {
        matches!(
            io.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
        )
    });
    io_reset || chain_mentions(error, "connection closed before message completed")
}

/// Whether any error in `error`'s chain says `text`: for causes whose types are private to
/// the HTTP stack.
fn chain_mentions(error: &reqwest::Error, text: &str) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(cause) = next {
        if cause.to_string().contains(text) {
            return true;
        }
        next = cause.source();
    }
    false
}

fn caused_by_tls(error: &reqwest::Error) -> bool {
    find_cause::<rustls::Error>(error).is_some()
}

/// The first error of type `E` in `error`'s chain.
fn find_cause<E: std::error::Error + 'static>(error: &reqwest::Error) -> Option<&E> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<E>() {
            return Some(found);
        }
        // `io::Error::source` skips the error it wraps, and rustls errors arrive wrapped in
        // one or two io::Errors, so descend through `get_ref` instead.
        next = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::address::AddressPolicy;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn loopback_allowed() -> Resolver {
        let allowed = AddressPolicy::parse_allowed(&["127.0.0.0/8".into()]).expect("cidr");
        Resolver::system(AddressPolicy::new(allowed, false))
    }

    fn sender(timeout_ms: u64, max: usize) -> Sender {
        Sender::new(
            Duration::from_millis(timeout_ms),
            max,
            "test",
            loopback_allowed(),
        )
        .expect("client")
    }

    #[tokio::test]
    async fn internal_destinations_are_blocked_before_connecting() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let strict = Sender::new(
            Duration::from_secs(2),
            16,
            "test",
            Resolver::system(AddressPolicy::default()),
        )
        .expect("client");
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let exchange = strict.post(&url, HeaderMap::new(), Bytes::new()).await;
            assert_eq!(
                exchange.result,
                AttemptResult::Transport(TransportError::Blocked),
                "{url}"
            );
        }
        // Nothing connected: the listener has no pending connection.
        let pending = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(pending.is_err(), "a blocked delivery must not connect");
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // Bind then drop to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let exchange = sender(2_000, 16)
            .post(&url, HeaderMap::new(), Bytes::new())
            .await;
        assert_eq!(
            exchange.result,
            AttemptResult::Transport(TransportError::Connect)
        );
    }

    #[tokio::test]
    async fn silent_server_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            // Keep the connection open and say nothing.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let exchange = sender(300, 16)
            .post(&url, HeaderMap::new(), Bytes::new())
            .await;
        assert_eq!(
            exchange.result,
            AttemptResult::Transport(TransportError::Timeout)
        );
        assert!(exchange.duration < Duration::from_secs(3));
        hold.abort();
    }

    #[tokio::test]
    async fn a_connection_reset_or_closed_before_the_response_is_a_reset() {
        for linger in [Some(Duration::ZERO), None] {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("http://{}/", listener.local_addr().expect("addr"));
            let serve = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                // SO_LINGER 0 sends an RST (and does not block on drop, the reason tokio
                // deprecates it); without it the socket just closes.
                #[allow(deprecated)]
                socket.set_linger(linger).expect("linger");
                drop(socket);
            });
            let exchange = sender(2_000, 16)
                .post(&url, HeaderMap::new(), Bytes::from_static(b"{}"))
                .await;
            assert_eq!(
                exchange.result,
                AttemptResult::Transport(TransportError::Reset),
                "linger {linger:?}"
            );
            serve.abort();
        }
    }

    #[tokio::test]
    async fn a_trickled_response_ends_at_the_deadline() {
        // The head one byte at a time: no status by the deadline, a timeout.
        // The head at once and the body one byte at a time: the status, the body cut short.
        for (trickle_head, expected) in [
            (true, AttemptResult::Transport(TransportError::Timeout)),
            (false, AttemptResult::Status(200)),
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("http://{}/", listener.local_addr().expect("addr"));
            let serve = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
                if !trickle_head {
                    let _ = socket.write_all(head).await;
                }
                let bytes = if trickle_head {
                    &head[..]
                } else {
                    &[b't'; 100][..]
                };
                for byte in bytes {
                    if socket.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            let exchange = sender(450, 1_000)
                .post(&url, HeaderMap::new(), Bytes::new())
                .await;
            assert_eq!(exchange.result, expected, "trickle head: {trickle_head}");
            assert!(
                (Duration::from_millis(450)..Duration::from_millis(900))
                    .contains(&exchange.duration),
                "{:?}",
                exchange.duration
            );
            if !trickle_head {
                assert!((1..10).contains(&exchange.response_body.len()));
            }
            serve.abort();
        }
    }

    #[tokio::test]
    async fn tls_to_a_plain_server_is_a_tls_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let serve = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 512];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let url = format!("https://127.0.0.1:{port}/");
        let exchange = sender(2_000, 16)
            .post(&url, HeaderMap::new(), Bytes::new())
            .await;
        assert_eq!(
            exchange.result,
            AttemptResult::Transport(TransportError::Tls)
        );
        serve.abort();
    }

    #[tokio::test]
    async fn response_body_is_cut_at_the_limit_and_redirects_are_not_followed() {
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://127.0.0.1:1/elsewhere")],
                    "x".repeat(1000),
                )
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let exchange = sender(2_000, 100)
            .post(&url, HeaderMap::new(), Bytes::new())
            .await;
        assert_eq!(exchange.result, AttemptResult::Status(302));
        assert_eq!(exchange.response_body.len(), 100);
        server.abort();
    }
}
