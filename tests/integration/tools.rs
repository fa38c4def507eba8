//! The terminal tools: `hookline listen` verifies and prints deliveries, `hookline send`
//! creates a message, `hookline recover` shows progress and the summary on a terminal.

use std::time::Duration;

use serde_json::json;

use crate::testkit::listen::Listener;
use crate::testkit::process::TOKEN;
use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[apply(backends)]
#[tokio::test]
async fn listen_prints_verified_deliveries_that_send_created(#[case] backend: Backend) {
    let stack = Stack::on(backend, "listen");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let base = hookline.api_url.clone().expect("url");
    let listen = Listener::start(SECRET).await;

    let app = api.create_app("listen-app").await;
    let url = format!("{}/hooks", listen.address);
    api.create_endpoint(&app, json!({"url": url, "secret": SECRET}))
        .await;
    // A second endpoint signs with another secret: the listener must reject it.
    api.create_endpoint(&app, json!({"url": format!("{url}/other")}))
        .await;

    let sent = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["send", "--app", &app, "--event-type", "invoice.paid"])
        .args(["--payload", r#"{"invoice": 42}"#])
        .env("HOOKLINE_URL", &base)
        .env("HOOKLINE_TOKEN", TOKEN)
        .output()
        .await
        .expect("hookline send");
    let said = String::from_utf8_lossy(&sent.stdout).into_owned();
    assert!(
        sent.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let msg = said
        .split_whitespace()
        .find(|w| w.starts_with("msg_"))
        .expect("the message id")
        .to_owned();

    let output = eventually(
        "the listener to print both deliveries",
        Duration::from_secs(20),
        || {
            let lines = listen.lines();
            let msg = msg.clone();
            async move {
                let verified = lines
                    .iter()
                    .any(|l| l == &format!("verified {msg} (14 bytes)"));
                let rejected = lines
                    .iter()
                    .any(|l| l.starts_with(&format!("REJECTED {msg}")));
                // The payload comes on the lines after "verified": wait for it too, or the
                // check below races the reader.
                let payload = lines.iter().any(|l| l.contains("\"invoice\": 42"));
                (verified && rejected && payload).then_some(lines.join("\n"))
            }
        },
    )
    .await;
    let verified_at = output
        .lines()
        .position(|l| l == format!("verified {msg} (14 bytes)"))
        .expect("the verified line");
    assert!(
        output
            .lines()
            .skip(verified_at)
            .any(|l| l.contains("\"invoice\": 42")),
        "the payload is printed after its delivery: {output}"
    );
    drop(listen);
}

#[apply(backends)]
#[tokio::test]
async fn recover_on_a_terminal_shows_progress_and_the_summary(#[case] backend: Backend) {
    const MESSAGES: usize = 20;
    let stack = Stack::on(backend, "clirecover")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        // The refused endpoint's circuit opens and holds most messages; a short open period
        // gives them up within seconds.
        .with("HOOKLINE__DELIVERY__CIRCUIT_OPEN_MS", "1000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let base = hookline.api_url.clone().expect("url");
    let app = api.create_app("cli-recover-app").await;
    let port = free_port();
    let endpoint = api
        .create_endpoint(
            &app,
            json!({"url": format!("http://127.0.0.1:{port}/back")}),
        )
        .await;
    let mut msgs = Vec::new();
    for n in 0..MESSAGES {
        msgs.push(api.send(&app, "order.created", json!({"n": n})).await);
    }
    for msg in &msgs {
        eventually("the message to fail", Duration::from_secs(30), || async {
            let d = api.destination(&app, msg, &endpoint).await?;
            (d["status"] == 2).then_some(())
        })
        .await;
    }
    let receiver = Receiver::start_on(port).await;
    receiver.url("back", Reply::Always(200));

    // `script` gives the command a real terminal, as a person would have.
    let command = format!(
        "{} recover --app {app} --endpoint {endpoint} --since 1h",
        env!("CARGO_BIN_EXE_hookline")
    );
    let output = tokio::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("HOOKLINE_URL", &base)
        .env("HOOKLINE_TOKEN", TOKEN)
        .output()
        .await
        .expect("script");
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{screen}");
    assert!(
        screen.contains("resent"),
        "a progress bar was drawn: {screen}"
    );
    assert!(
        screen.contains(&format!(
            "succeeded {MESSAGES} / failed 0 / connection errors 0 / total {MESSAGES}"
        )),
        "{screen}"
    );
    assert_eq!(receiver.count("back"), MESSAGES);
}
