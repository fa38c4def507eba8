//! The outbound HTTP exchange: one POST, bounded in time and in bytes read, with every failure
//! named by its kind so the attempt log can tell a timeout from a refused connection.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookline_core::outbound::EndpointTls;
use hookline_core::outcome::{retry_after, AttemptResult, TransportError};
use hookline_core::secret::SecretText;
use hookline_net::{ProxyResolver, ResolveError, Resolver};
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

/// The sender could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The TLS backend failed to initialise.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The egress proxy's URL cannot be used (the URL itself is not repeated: it may hold a
    /// password).
    #[error("egress proxy: {0}")]
    Proxy(String),
}

/// Most clients with their own TLS settings kept at once; past it the least recently used
/// is dropped (with its pooled connections) and built again when next needed.
pub const TLS_CLIENT_CAPACITY: usize = 1024;

/// The operator's forward proxy every delivery goes through.
#[derive(Clone)]
struct EgressProxy {
    proxy: reqwest::Proxy,
    /// Its host as written, which the client's resolver lets past the policy.
    host: String,
}

impl EgressProxy {
    fn parse(url: &SecretText) -> Result<Self, SenderError> {
        let parsed = url::Url::parse(url.expose())
            .map_err(|e| SenderError::Proxy(format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SenderError::Proxy(
                "the scheme must be http or https".into(),
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(SenderError::Proxy("the URL has no host".into())),
        };
        // reqwest takes `user:password@` from the URL as the proxy's Basic credentials.
        let proxy = reqwest::Proxy::all(parsed.as_str())
            .map_err(|_| SenderError::Proxy("reqwest refuses the URL".into()))?;
        Ok(Self { proxy, host })
    }
}

/// What every client of a sender is built with, whatever its TLS settings.
#[derive(Clone)]
struct Base {
    resolver: Resolver,
    timeout: Duration,
    user_agent: String,
    proxy: Option<EgressProxy>,
}

impl Base {
    fn builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .use_rustls_tls()
            // A redirect could point anywhere, including the platform's own network; a
            // receiver that moved must have its endpoint URL updated instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(&self.user_agent)
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60));
        match &self.proxy {
            Some(egress) => builder
                .dns_resolver(Arc::new(ProxyResolver::new(
                    self.resolver.clone(),
                    &egress.host,
                )))
                .proxy(egress.proxy.clone()),
            // Without one, `HTTP(S)_PROXY` in the environment must not reroute deliveries
            // around the address policy.
            None => builder
                .dns_resolver(Arc::new(self.resolver.clone()))
                .no_proxy(),
        }
    }
}

/// The clients of endpoints with their own TLS settings, by [`EndpointTls::fingerprint`]:
/// a pooled connection made with one identity is never used for another.
struct ClientCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// Each client and the tick it was last used at.
    clients: HashMap<String, (Arc<reqwest::Client>, u64)>,
    tick: u64,
}

impl ClientCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, fingerprint: &str) -> Option<Arc<reqwest::Client>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.clients.get_mut(fingerprint).map(|(client, used)| {
            *used = tick;
            Arc::clone(client)
        })
    }

    /// Keeps `client` unless another was kept for the fingerprint meanwhile, and answers the
    /// one kept.
    fn insert(&self, fingerprint: String, client: reqwest::Client) -> Arc<reqwest::Client> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((kept, used)) = inner.clients.get_mut(&fingerprint) {
            *used = tick;
            return Arc::clone(kept);
        }
        if inner.clients.len() >= self.capacity {
            let oldest = inner
                .clients
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                inner.clients.remove(&oldest);
            }
        }
        let client = Arc::new(client);
        inner
            .clients
            .insert(fingerprint, (Arc::clone(&client), tick));
        client
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().clients.len()
    }
}

/// Posts signed deliveries. Cheap to clone: the connection pools are shared.
#[derive(Clone)]
pub struct Sender {
    shared: reqwest::Client,
    base: Arc<Base>,
    clients: Arc<ClientCache>,
    resolver: Resolver,
    timeout: Duration,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("resolver", &self.resolver)
            .field("proxied", &self.base.proxy.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Every connection goes to an address `resolver` let through; with `egress_proxy`,
    /// every request goes through that proxy, its destination checked by `resolver` first.
    pub fn new(
        timeout: Duration,
        max_response_bytes: usize,
        user_agent: &str,
        resolver: Resolver,
        egress_proxy: Option<&SecretText>,
    ) -> Result<Self, SenderError> {
        let base = Base {
            resolver: resolver.clone(),
            timeout,
            user_agent: user_agent.to_owned(),
            proxy: egress_proxy.map(EgressProxy::parse).transpose()?,
        };
        let shared = base.builder().build().map_err(SenderError::Client)?;
        Ok(Self {
            shared,
            base: Arc::new(base),
            clients: Arc::new(ClientCache::new(TLS_CLIENT_CAPACITY)),
            resolver,
            timeout,
            max_response_bytes,
        })
    }

    /// The client for an endpoint's TLS settings, built on first use; why it cannot be
    /// built otherwise (the attempt log's text).
    fn client_for(&self, tls: &EndpointTls) -> Result<Arc<reqwest::Client>, String> {
        let fingerprint = tls.fingerprint();
        if let Some(client) = self.clients.get(&fingerprint) {
            return Ok(client);
        }
        let unusable =
            |problem: String| format!("tls: the endpoint's TLS settings cannot be used: {problem}");
        let builder = hookline_net::tls::configure(self.base.builder(), tls)
            .map_err(|e| unusable(format!("{}: {e}", e.field())))?;
        let client = builder
            .build()
            .map_err(|e| unusable(hookline_net::tls::chain_text(&e)))?;
        Ok(self.clients.insert(fingerprint, client))
    }

    /// Why `url` must not be contacted, if it must not: the policy refuses it, or, through
    /// the egress proxy (which resolves the name itself), its name resolves only to refused
    /// addresses or not at all.
    async fn refusal(&self, url: &str, deadline: tokio::time::Instant) -> Option<TransportError> {
        let parsed = match url::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(reason = %error, "delivery refused: the URL does not parse");
                return Some(TransportError::Blocked);
            }
        };
        let name = match self.resolver.policy().check_url(&parsed) {
            Ok(name) => name,
            Err(reason) => {
                tracing::warn!(%reason, "delivery refused by the address policy");
                return Some(TransportError::Blocked);
            }
        };
        let (Some(name), Some(_)) = (name, &self.base.proxy) else {
            // Direct connections resolve through the policy's resolver as they connect.
            return None;
        };
        match tokio::time::timeout_at(deadline, self.resolver.permitted(name)).await {
            Ok(Ok(_)) => None,
            Ok(Err(ResolveError::Blocked(reason))) => {
                tracing::warn!(%reason, "delivery refused by the address policy");
                Some(TransportError::Blocked)
            }
            Ok(Err(ResolveError::Lookup { .. })) => Some(TransportError::Connect),
            Err(_) => Some(TransportError::Timeout),
        }
    }

    /// POSTs `body` to `url` (with the endpoint's own TLS settings, if any) and reads at
    /// most the configured number of response bytes.
    pub async fn post(
        &self,
        url: &str,
        tls: Option<&EndpointTls>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Exchange {
        let started = Instant::now();
        // One deadline for the whole exchange, head and body alike, so a receiver that
        // trickles its response cannot hold a worker past the limit however often it sends.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let failed = |kind, text: String| Exchange {
            result: AttemptResult::Transport(kind),
            response_body: text,
            response_headers: BTreeMap::new(),
            duration: started.elapsed(),
            retry_after: None,
        };
        if let Some(kind) = self.refusal(url, deadline).await {
            return failed(kind, String::new());
        }
        let client = match tls.map(|tls| self.client_for(tls)) {
            None => None,
            Some(Ok(client)) => Some(client),
            Some(Err(text)) => return failed(TransportError::Tls, text),
        };
        let client = client.as_deref().unwrap_or(&self.shared);
        match self.exchange(client, url, headers, body, deadline).await {
            Ok(response) => Exchange {
                result: AttemptResult::Status(response.status),
                response_body: response.body,
                response_headers: response.headers,
                duration: started.elapsed(),
                retry_after: response.retry_after,
            },
            Err((kind, text)) => failed(kind, text),
        }
    }

    /// Sends the request and reads the response, all before `deadline`. A status that
    /// arrived in time is the answer even if the body did not (a timeout then only cuts
    /// the body short); without a status the exchange failed with the returned kind.
    async fn exchange(
        &self,
        client: &reqwest::Client,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<Response, (TransportError, String)> {
        let sent = client.post(url).headers(headers).body(body).send();
        let mut response = match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(failure(&error)),
            Err(_elapsed) => return Err((TransportError::Timeout, String::new())),
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

/// A failed exchange's kind, and for a TLS failure what went wrong, for the attempt log.
fn failure(error: &reqwest::Error) -> (TransportError, String) {
    let kind = transport_error(error);
    let text = match (kind, find_cause::<rustls::Error>(error)) {
        (TransportError::Tls, Some(tls)) => hookline_net::tls::describe_failure(tls),
        _ => String::new(),
    };
    (kind, text)
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
    use hookline_core::outbound::ClientIdentity;
    use hookline_net::testing::TestCa;
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
            None,
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
            None,
        )
        .expect("client");
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let exchange = strict
                .post(&url, None, HeaderMap::new(), Bytes::new())
                .await;
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
            .post(&url, None, HeaderMap::new(), Bytes::new())
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
            .post(&url, None, HeaderMap::new(), Bytes::new())
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
                .post(&url, None, HeaderMap::new(), Bytes::from_static(b"{}"))
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
                .post(&url, None, HeaderMap::new(), Bytes::new())
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
            .post(&url, None, HeaderMap::new(), Bytes::new())
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
            .post(&url, None, HeaderMap::new(), Bytes::new())
            .await;
        assert_eq!(exchange.result, AttemptResult::Status(302));
        assert_eq!(exchange.response_body.len(), 100);
        server.abort();
    }

    fn tls_of(ca: &TestCa, client: Option<&str>, trust_system_roots: bool) -> EndpointTls {
        EndpointTls {
            identity: client.map(|name| {
                let issued = ca.client(name);
                ClientIdentity {
                    certificate: issued.certificate,
                    key: issued.key.into(),
                }
            }),
            server_ca: Some(ca.certificate.clone()),
            trust_system_roots,
        }
    }

    #[test]
    fn clients_are_shared_by_fingerprint_and_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = TestCa::new(dir.path(), "cache-ca");
        let mut sender = sender(2_000, 16);
        sender.clients = Arc::new(ClientCache::new(2));
        let a = tls_of(&ca, Some("a"), false);
        let b = tls_of(&ca, Some("b"), false);
        let a_with_roots = EndpointTls {
            trust_system_roots: true,
            ..a.clone()
        };
        let first = sender.client_for(&a).expect("a's client");
        let again = sender.client_for(&a.clone()).expect("a's client again");
        assert!(Arc::ptr_eq(&first, &again), "one fingerprint, one client");
        let other = sender.client_for(&b).expect("b's client");
        assert!(
            !Arc::ptr_eq(&first, &other),
            "another identity, another client"
        );
        // Touch a, so b is the least recently used when a third arrives.
        sender.client_for(&a).expect("a again");
        let third = sender.client_for(&a_with_roots).expect("a third client");
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(sender.clients.len(), 2, "the bound holds");
        assert!(
            Arc::ptr_eq(&first, &sender.client_for(&a).expect("a")),
            "the recently used client stayed"
        );
        assert!(
            !Arc::ptr_eq(&other, &sender.client_for(&b).expect("b")),
            "the least recently used one was dropped and built again"
        );
    }

    #[tokio::test]
    async fn unusable_tls_settings_fail_the_attempt_as_tls_without_echoing_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = TestCa::new(dir.path(), "bad-ca");
        let (a, b) = (ca.client("a"), ca.client("b"));
        let wrong_key = EndpointTls {
            identity: Some(ClientIdentity {
                certificate: a.certificate.clone(),
                key: b.key.clone().into(),
            }),
            server_ca: None,
            trust_system_roots: false,
        };
        let garbage = EndpointTls {
            identity: Some(ClientIdentity {
                certificate: "not a certificate".into(),
                key: "not a key".into(),
            }),
            ..wrong_key.clone()
        };
        let empty_bundle = EndpointTls {
            identity: None,
            server_ca: Some("no certificates here".into()),
            trust_system_roots: false,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}/", listener.local_addr().expect("addr"));
        let key_line = b.key.lines().nth(1).expect("a base64 line").to_owned();
        for (tls, field) in [
            (wrong_key, "identity"),
            (garbage, "identity"),
            (empty_bundle, "serverCaCert"),
        ] {
            let exchange = sender(2_000, 16)
                .post(&url, Some(&tls), HeaderMap::new(), Bytes::new())
                .await;
            assert_eq!(
                exchange.result,
                AttemptResult::Transport(TransportError::Tls),
                "{field}"
            );
            let text = &exchange.response_body;
            assert!(
                text.starts_with("tls: the endpoint's TLS settings cannot be used"),
                "{text}"
            );
            assert!(!text.contains(&key_line[..16]), "{text}");
        }
        let pending = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(pending.is_err(), "nothing was sent with unusable settings");
    }

    #[tokio::test]
    async fn through_the_proxy_a_blocked_destination_never_reaches_it() {
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy_url: SecretText =
            format!("http://user:pw@{}", proxy.local_addr().expect("addr")).into();
        // The policy refuses loopback, the proxy's own address: the proxy is still usable,
        // its destinations are not.
        let strict = Sender::new(
            Duration::from_secs(2),
            16,
            "test",
            Resolver::system(AddressPolicy::default()),
            Some(&proxy_url),
        )
        .expect("client");
        for url in [
            "http://localhost:9/",
            "http://127.0.0.1:9/",
            "https://10.0.0.1/",
        ] {
            let exchange = strict.post(url, None, HeaderMap::new(), Bytes::new()).await;
            assert_eq!(
                exchange.result,
                AttemptResult::Transport(TransportError::Blocked),
                "{url}"
            );
        }
        let pending = tokio::time::timeout(Duration::from_millis(100), proxy.accept()).await;
        assert!(pending.is_err(), "the proxy was never contacted");
        assert!(!format!("{strict:?}").contains("pw"));
    }
}
