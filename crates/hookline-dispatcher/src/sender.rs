//! The outbound HTTP exchange: one POST, bounded in time and in bytes read, with every failure
//! named by its kind so the attempt log can tell a timeout from a refused connection.

use std::error::Error as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookline_core::outcome::{AttemptResult, TransportError};
use reqwest::header::HeaderMap;

/// What came back from one POST.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub result: AttemptResult,
    /// The first bytes of the response body, lossily decoded as UTF-8.
    pub response_body: String,
    pub duration: Duration,
}

/// The client could not be built (the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct SenderError(#[source] reqwest::Error);

/// Posts signed deliveries. Cheap to clone: the connection pool is shared.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    timeout: Duration,
    max_response_bytes: usize,
}

impl Sender {
    pub fn new(
        timeout: Duration,
        max_response_bytes: usize,
        user_agent: &str,
    ) -> Result<Self, SenderError> {
        let client = reqwest::Client::builder()
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
            timeout,
            max_response_bytes,
        })
    }

    /// POSTs `body` to `url` and reads at most the configured number of response bytes.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> Exchange {
        let started = Instant::now();
        // reqwest's timeout covers the headers; this one also bounds the body read, so a
        // receiver that trickles its response cannot hold a worker past the limit.
        let outcome = tokio::time::timeout(self.timeout, self.exchange(url, headers, body)).await;
        let (result, response_body) = match outcome {
            Ok(Ok((status, text))) => (AttemptResult::Status(status), text),
            Ok(Err(error)) => (
                AttemptResult::Transport(transport_error(&error)),
                String::new(),
            ),
            Err(_elapsed) => (
                AttemptResult::Transport(TransportError::Timeout),
                String::new(),
            ),
        };
        Exchange {
            result,
            response_body,
            duration: started.elapsed(),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(u16, String), reqwest::Error> {
        let mut response = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let mut kept = Vec::new();
        while kept.len() < self.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_response_bytes - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                // The status already arrived: a body cut short does not change the verdict.
                Err(_) => break,
            }
        }
        Ok((status, String::from_utf8_lossy(&kept).into_owned()))
    }
}

/// Names a failed exchange: timeout, connect, TLS or other.
fn transport_error(error: &reqwest::Error) -> TransportError {
    if error.is_timeout() {
        return TransportError::Timeout;
    }
    if caused_by_tls(error) {
        return TransportError::Tls;
    }
    if error.is_connect() {
        return TransportError::Connect;
    }
    TransportError::Other
}

fn caused_by_tls(error: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() {
            return true;
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
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn sender(timeout_ms: u64, max: usize) -> Sender {
        Sender::new(Duration::from_millis(timeout_ms), max, "test").expect("client")
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
