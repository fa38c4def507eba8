//! The JavaScript clients the suite drives Hookline with (tests/js: the official `svix` npm
//! SDK, installed by scripts/js-env).

use std::process::Stdio;

use serde_json::Value;

use super::python::repo;

/// Runs `tests/js/<script>` with Node and `env`; `(exited 0, its last stdout line as JSON)`.
/// A script reports what it saw as one JSON line, so a failing test shows the SDK's error.
pub async fn run_js(script: &str, env: &[(&str, &str)]) -> (bool, Value) {
    let modules = repo().join("tests/js/node_modules/svix");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/js-env (scripts/test does)",
        modules.display()
    );
    let output = tokio::process::Command::new("node")
        .arg(repo().join("tests/js").join(script))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("start node");
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().unwrap_or("");
    let value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{script} printed: {text}"));
    (output.status.success(), value)
}
