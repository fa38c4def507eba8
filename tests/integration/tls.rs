//! `rediss://`: Hookline talks to a Redis that accepts TLS only, verifying its certificate
//! against the CA the operator trusts (`SSL_CERT_FILE`), and refuses one it cannot verify.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

/// A CA and a certificate for `localhost` signed by it, made with openssl.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=hookline-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "redis.key",
        "-out",
        "redis.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write san.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "redis.pem",
    ]);
}

/// A Redis listening with TLS only, stopped when dropped.
struct TlsRedis(std::process::Child);

impl TlsRedis {
    fn start(dir: &Path, port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string()])
            .args([
                "--tls-cert-file",
                "redis.pem",
                "--tls-key-file",
                "redis.key",
            ])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server with TLS");
        Self(child)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn rediss_delivers_with_a_trusted_certificate_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_certificates(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _redis = TlsRedis::start(dir.path(), port);
    let url = format!("rediss://localhost:{port}");
    eventually("the TLS port", Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;

    let ca = dir.path().join("ca.pem").display().to_string();
    let stack = Stack::new("rediss")
        .with("HOOKLINE__REDIS__URL", &url)
        .with("SSL_CERT_FILE", &ca);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("tls-app").await;
    api.create_endpoint(
        &app,
        json!({"url": receiver.url("sink", Reply::Always(200))}),
    )
    .await;
    let msg = api.send(&app, "invoice.paid", json!({"over": "tls"})).await;
    eventually("the delivery", Duration::from_secs(20), || async {
        (receiver
            .deliveries("sink")
            .iter()
            .any(|d| d.webhook_id() == msg))
        .then_some(())
    })
    .await;

    // Without the CA the certificate cannot be verified: not ready, and nothing accepted.
    let untrusted = Stack::new("rediss-untrusted").with("HOOKLINE__REDIS__URL", &url);
    let (process, _logs) = untrusted.start_capturing_logs(Role::Dispatcher, &[]).await;
    let ops = process.ops_url().await;
    // The broker connects on its own schedule; wait for it, so what is left failing is Redis.
    let failing = eventually(
        "only Redis failing",
        Duration::from_secs(20),
        || async {
            let body: serde_json::Value = reqwest::get(format!("{ops}/readyz"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let failing = body["failing"].as_object()?.clone();
            (failing.len() == 1).then_some(failing)
        },
    )
    .await;
    let reason = failing["redis"].as_str().expect("redis is the one failing");
    assert!(
        reason.to_lowercase().contains("certificate") || reason.contains("Unknown"),
        "refused for the certificate: {reason}"
    );
}
