//! A real HTTPS receiver on loopback (rustls), optionally requiring a client certificate
//! issued by a given CA. It records, for every delivery, the client certificate its
//! connection presented, and counts the handshakes it refused.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::serve::IncomingStream;
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use hookline_net::testing::Issued;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct TlsDelivery {
    pub path: String,
    pub webhook_id: String,
    /// SHA-256 of the client certificate presented (as `openssl x509 -fingerprint -sha256`
    /// prints it), if any.
    pub client: Option<String>,
    pub peer: std::net::SocketAddr,
}

#[derive(Default)]
struct Seen {
    deliveries: Vec<TlsDelivery>,
    refused_handshakes: usize,
}

/// What a connection presented, handed to every request on it.
#[derive(Debug, Clone)]
struct Connection {
    peer: std::net::SocketAddr,
    client: Option<String>,
}

impl Connected<IncomingStream<'_, TlsListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Accepts TCP connections and completes their handshakes; a refused handshake is counted
/// and skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    seen: Arc<Mutex<Seen>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Connection;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(stream) => {
                    let client = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| fingerprint(leaf));
                    return (stream, Connection { peer, client });
                }
                Err(_) => {
                    lock(&self.seen).refused_handshakes += 1;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Connection {
            peer: self.tcp.local_addr()?,
            client: None,
        })
    }
}

fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone)]
pub struct TlsReceiver {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl TlsReceiver {
    /// Serves with `server`'s certificate; with `client_ca`, every connection must present
    /// a certificate that CA issued.
    pub async fn start(server: &Issued, client_ca: Option<&str>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(server.certificate.as_bytes())
                .collect::<Result<_, _>>()
                .expect("server certificate");
        let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes()).expect("server key");
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions");
        let config = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(cert.expect("ca certificate")).expect("ca");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        }
        .with_single_cert(chain, key)
        .expect("server config");
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            seen: Arc::clone(&seen),
        };
        let app = Router::new()
            .route("/{path}", axum::routing::post(receive))
            .with_state(Arc::clone(&seen));
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<Connection>();
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            seen,
            server: Arc::new(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    pub fn deliveries(&self, path: &str) -> Vec<TlsDelivery> {
        lock(&self.seen)
            .deliveries
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    pub fn refused_handshakes(&self) -> usize {
        lock(&self.seen).refused_handshakes
    }
}

async fn receive(
    State(seen): State<Arc<Mutex<Seen>>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    Path(path): Path<String>,
    headers: HeaderMap,
    _body: axum::body::Bytes,
) -> StatusCode {
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    lock(&seen).deliveries.push(TlsDelivery {
        path,
        webhook_id,
        client: connection.client,
        peer: connection.peer,
    });
    StatusCode::OK
}
