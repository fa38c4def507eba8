//! A tiny authoritative DNS server on loopback whose answer the test can change, to show
//! DNS rebinding: a name that is public when an endpoint is saved and loopback later.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

#[derive(Clone)]
pub struct TestDns {
    pub addr: std::net::SocketAddr,
    answer: Arc<Mutex<Ipv4Addr>>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

impl TestDns {
    /// Answers every A query with `answer` (TTL 0) and every other query with no records.
    pub async fn start(answer: Ipv4Addr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("addr");
        let answer = Arc::new(Mutex::new(answer));
        let current = Arc::clone(&answer);
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
                let ip = *current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(reply) = reply(&buf[..len], ip) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Self {
            addr,
            answer,
            server: Arc::new(server),
        }
    }

    pub fn answer_with(&self, ip: Ipv4Addr) {
        *self
            .answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ip;
    }
}

/// Builds the response to one query: header, the question echoed, and an A record when the
/// question asks for one.
fn reply(query: &[u8], ip: Ipv4Addr) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    // Walk the question name: length-prefixed labels ending in a zero byte.
    let mut at = 12;
    while *query.get(at)? != 0 {
        at += 1 + usize::from(query[at]);
    }
    let question_end = at + 5; // the zero byte, QTYPE and QCLASS
    let question = query.get(12..question_end)?;
    let qtype = u16::from_be_bytes([query[at + 1], query[at + 2]]);
    let is_a = qtype == 1;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&header[..2]); // id
    out.extend_from_slice(&[0x85, 0x80]); // response, authoritative, RD, RA, NOERROR
    out.extend_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if is_a {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}
