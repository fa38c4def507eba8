//! TLS to the engines: `rediss://` to a Redis that accepts TLS only and `amqps://` to a
//! RabbitMQ TLS listener, each certificate verified against the CA the operator trusts
//! (`SSL_CERT_FILE`); a Redis certificate that cannot be verified is refused.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hookline_net::testing::TestCa;
use serde_json::json;

use crate::testkit::{eventually, PrivateNode, Receiver, Reply, Role, Stack};

/// A CA and a certificate for `localhost` signed by it, written to `dir` as `ca.pem`,
/// `redis.pem` and `redis.key` (the names the servers below are given).
fn make_certificates(dir: &Path) {
    let ca = TestCa::new(dir, "ca");
    let server = ca.server("redis");
    for (name, text) in [
        ("ca.pem", &ca.certificate),
        ("redis.pem", &server.certificate),
        ("redis.key", &server.key),
    ] {
        std::fs::write(dir.join(name), text).expect("write a certificate file");
    }
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
    let failing = eventually("only Redis failing", Duration::from_secs(20), || async {
        let body: serde_json::Value = reqwest::get(format!("{ops}/readyz"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let failing = body["failing"].as_object()?.clone();
        (failing.len() == 1).then_some(failing)
    })
    .await;
    let reason = failing["redis"].as_str().expect("redis is the one failing");
    assert!(
        reason.to_lowercase().contains("certificate") || reason.contains("Unknown"),
        "refused for the certificate: {reason}"
    );
}

/// `amqps://`: the same, for a RabbitMQ node that listens with TLS beside its plain port.
#[tokio::test]
async fn amqps_delivers_with_a_trusted_certificate_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    make_certificates(dir.path());
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    };
    let (port, tls_port) = (free_port(), free_port());
    let path = |file: &str| dir.path().join(file).display().to_string();
    let tls = format!(
        "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
         ssl_options.cacertfile = {}\n\
         ssl_options.certfile = {}\n\
         ssl_options.keyfile = {}\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false",
        path("ca.pem"),
        path("redis.pem"),
        path("redis.key")
    );
    let _node = PrivateNode::start_with_conf(&format!("hltls{port}"), port, &tls);
    eventually("the TLS listener", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
            .await
            .ok()
    })
    .await;

    let stack = Stack::new("amqps")
        .with(
            "HOOKLINE__RABBITMQ__URL",
            &format!("amqps://guest:guest@localhost:{tls_port}/%2f"),
        )
        .with("SSL_CERT_FILE", &path("ca.pem"));
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("amqps-app").await;
    api.create_endpoint(
        &app,
        json!({"url": receiver.url("sink", Reply::Always(200))}),
    )
    .await;
    let msg = api
        .send(&app, "invoice.paid", json!({"over": "amqps"}))
        .await;
    eventually("the delivery", Duration::from_secs(20), || async {
        (receiver
            .deliveries("sink")
            .iter()
            .any(|d| d.webhook_id() == msg))
        .then_some(())
    })
    .await;

    // Without the CA the broker's certificate cannot be verified: never connected, and the
    // log says why.
    let untrusted = Stack::new("amqps-untrusted").with(
        "HOOKLINE__RABBITMQ__URL",
        &format!("amqps://guest:guest@localhost:{tls_port}/%2f"),
    );
    let (process, logs) = untrusted.start_capturing_logs(Role::Dispatcher, &[]).await;
    eventually(
        "the refusal in the log",
        Duration::from_secs(20),
        || async {
            let logs = logs.text().to_lowercase();
            (logs.contains("certificate") || logs.contains("unknownissuer")).then_some(())
        },
    )
    .await;
    let ops = process.ops_url().await;
    let body: serde_json::Value = reqwest::get(format!("{ops}/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz JSON");
    assert!(body["failing"]["rabbitmq"].is_string(), "{body}");
}
