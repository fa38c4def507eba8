//! The Python clients the suite drives Hookline with (tests/python, in .venv).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/python-env (scripts/test does)",
        python.display()
    );
    python
}

pub async fn run_python(script: &str, env: &[(&str, &str)], stdin: Option<&str>) -> (bool, Value) {
    let mut child = tokio::process::Command::new(python())
        .arg(repo().join("tests/python").join(script))
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("python output");
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().unwrap_or("");
    let value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{script} printed: {text}"));
    (output.status.success(), value)
}

/// Verifies a delivery with the `standardwebhooks` reference library; `(verified, answer)`.
pub async fn verify_delivery(
    secret: &str,
    headers: &HashMap<String, String>,
    body: &str,
) -> (bool, Value) {
    let input = json!({"secret": secret, "headers": headers, "body": body}).to_string();
    run_python("verify_delivery.py", &[], Some(&input)).await
}
