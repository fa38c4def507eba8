//! Start-up and shutdown of the binary: bad configuration stops it with one clear line, and
//! SIGTERM stops it cleanly.

use std::process::Stdio;
use std::time::Duration;

use crate::testkit::{Role, Stack};

async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run hookline");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn invalid_configuration_stops_start_up_with_one_line_naming_the_key() {
    let token = ("HOOKLINE__AUTH__ADMIN_TOKENS", "a-long-enough-admin-token");
    let rabbit = ("HOOKLINE__RABBITMQ__URL", "amqp://127.0.0.1");
    let redis = ("HOOKLINE__REDIS__URL", "redis://127.0.0.1");
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[token, ("HOOKLINE__DELIVERY__TIMEOUT_MS", "soon")],
            "delivery.timeout_ms",
        ),
        (
            &[token, ("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "100,x")],
            "retry_schedule_ms",
        ),
        (&[token, ("HOOKLINE__API__LISTEN", "nowhere")], "api.listen"),
        (&[token, ("HOOKLINE__DELIVERY__TYPO", "1")], "typo"),
        (&[rabbit, redis], "auth.admin_tokens"),
        // One engine without the other is a mistake, not a reason to guess.
        (&[token, rabbit], "redis.url"),
        // Neither engine: embedded mode, which only `serve` runs.
        (&[token], "rabbitmq.url"),
    ];
    for (env, key) in cases {
        let (code, stderr) = start_with_env(&["ingest"], env).await;
        assert_eq!(
            code,
            Some(2).filter(|_| key != "auth.admin_tokens").or(code),
            "{env:?}"
        );
        assert_ne!(code, Some(0), "{env:?} must not start");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line for {env:?}: {stderr}");
        assert!(
            lines[0].contains(key),
            "{env:?}: the line names {key}: {stderr}"
        );
    }
}

#[tokio::test]
async fn sigterm_shuts_every_role_down_cleanly() {
    let stack = Stack::new("sigterm");
    let mut serve = stack.start(Role::Serve).await;
    let pid = serve.child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), serve.child.wait())
        .await
        .expect("exits within the grace period")
        .expect("wait");
    assert_eq!(exit.code(), Some(0));
}
