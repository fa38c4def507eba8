//! The deployment files pass their validators (no engine or cluster needed), and the
//! validators are not rubber stamps.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn compose_and_kubernetes_files_validate() {
    let output = tokio::process::Command::new(repo().join("scripts/validate-deploy"))
        .output()
        .await
        .expect("run scripts/validate-deploy");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("docker-compose.yml: valid"));
    assert!(report.contains("ok   ScaledObject/hookline-dispatcher"));
    assert!(report.contains("19 objects, 0 problems"), "{report}");
}

async fn validate(manifest: &str) -> (bool, String) {
    let python = repo().join(".venv/bin/python");
    let mut child = tokio::process::Command::new(python)
        .arg(repo().join("deploy/validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run deploy/validate.py");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(manifest.as_bytes()).await.expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn the_validator_catches_misspelled_fields_and_wrong_keda_settings() {
    let misspelled = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replica: 2
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: x, image: x}]}
"#;
    let (ok, report) = validate(misspelled).await;
    assert!(!ok, "a misspelled field must fail: {report}");
    assert!(report.contains("Deployment/broken"), "{report}");

    let amqp_scaler = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: hookline-dispatcher}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: x, image: x}]}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: s}
spec:
  scaleTargetRef: {name: hookline-dispatcher}
  triggers:
    - type: rabbitmq
      metadata: {protocol: amqp, queueName: q, mode: QueueLength, value: "5"}
      authenticationRef: {name: missing}
"#;
    let (ok, report) = validate(amqp_scaler).await;
    assert!(!ok, "{report}");
    assert!(report.contains("protocol must be http"), "{report}");
    assert!(
        report.contains("'missing' is not a TriggerAuthentication"),
        "{report}"
    );
}
