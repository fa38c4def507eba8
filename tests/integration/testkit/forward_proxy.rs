//! A small real forward proxy on loopback: HTTP requests in absolute form (relayed one per
//! connection) and CONNECT tunnels, each only with the expected `Proxy-Authorization`. It
//! records every target it relayed to and the local port of every upstream connection it
//! made, so a receiver can tell whether a delivery came through it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Seen {
    /// `host:port` of each relayed request and tunnel, in order.
    targets: Vec<String>,
    upstream_ports: HashSet<u16>,
    refused: usize,
}

#[derive(Clone)]
pub struct ForwardProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ForwardProxy {
    /// Listens on `ip` (any port) and relays only requests carrying Basic `user:password`.
    pub async fn start(ip: &str, user: &str, password: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let credentials = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let shared = Arc::clone(&seen);
        let server = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let seen = Arc::clone(&shared);
                let credentials = credentials.clone();
                tokio::spawn(async move {
                    let _ = relay(client, &seen, &credentials).await;
                });
            }
        });
        Self {
            addr,
            seen,
            server: Arc::new(server),
        }
    }

    pub fn targets(&self) -> Vec<String> {
        lock(&self.seen).targets.clone()
    }

    /// Whether a connection from local port `port` was one this proxy made upstream.
    pub fn made(&self, port: u16) -> bool {
        lock(&self.seen).upstream_ports.contains(&port)
    }

    /// Requests refused for missing or wrong credentials.
    pub fn refused(&self) -> usize {
        lock(&self.seen).refused
    }
}

/// Reads a request or response head: the lines up to the blank one.
async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The head without hop-by-hop and proxy headers, closing the connection after one exchange.
fn forwarded(first: String, head: &[String]) -> String {
    let mut out = first;
    out.push_str("\r\n");
    for line in head.iter().skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "proxy-authorization" | "keep-alive"
        ) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    out
}

async fn connect(seen: &Mutex<Seen>, target: &str) -> std::io::Result<TcpStream> {
    let upstream = TcpStream::connect(target).await?;
    let port = upstream.local_addr()?.port();
    let mut seen = lock(seen);
    seen.targets.push(target.to_owned());
    seen.upstream_ports.insert(port);
    Ok(upstream)
}

async fn relay(client: TcpStream, seen: &Mutex<Seen>, credentials: &str) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let head = read_head(&mut client).await?;
    let first = head.first().cloned().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if header(&head, "proxy-authorization") != Some(credentials) {
        lock(seen).refused += 1;
        let refusal = "HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        return client.get_mut().write_all(refusal.as_bytes()).await;
    }
    if method == "CONNECT" {
        let mut upstream = connect(seen, target).await?;
        client
            .get_mut()
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        upstream.write_all(client.buffer()).await?;
        let mut client = client.into_inner();
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    let url = url::Url::parse(target).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    );
    let mut upstream = BufReader::new(connect(seen, &authority).await?);
    let path = &url[url::Position::BeforePath..];
    let version = first.rsplit(' ').next().unwrap_or("HTTP/1.1");
    let request = forwarded(format!("{method} {path} {version}"), &head);
    upstream.get_mut().write_all(request.as_bytes()).await?;
    let length: u64 = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = (&mut client).take(length);
    tokio::io::copy(&mut body, upstream.get_mut()).await?;
    let response = read_head(&mut upstream).await?;
    let status = response.first().cloned().unwrap_or_default();
    client
        .get_mut()
        .write_all(forwarded(status, &response).as_bytes())
        .await?;
    client.get_mut().write_all(upstream.buffer()).await?;
    let mut upstream = upstream.into_inner();
    tokio::io::copy(&mut upstream, client.get_mut()).await?;
    client.get_mut().shutdown().await
}
