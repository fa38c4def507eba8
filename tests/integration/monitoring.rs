//! The dashboards and alerts of deploy/monitoring, checked offline: the rules pass
//! `promtool check rules`, their unit tests (`promtool test rules`) pass and fail when a
//! threshold moves, every metric and label value the dashboard and the rules read is one a
//! running Hookline exports, and the kustomize component renders into the production overlay.
//! A scheduler stamps its last step even when nothing is due.
//!
//! promtool and kubectl come from `scripts/monitoring-tools`; without them these tests fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use hookline_dispatcher::Outcome;
use hookline_metrics::Metrics;
use serde_json::Value;

use crate::testkit::{eventually, Role, Stack};

/// The alerts the rules must define, each with a severity, a summary and a description.
const ALERTS: [&str; 4] = [
    "HooklineOldestPendingAgeHigh",
    "HooklineDeliveryFailureRatioHigh",
    "HooklineDeadLetteredTasks",
    "HooklineSchedulerStalled",
];

/// The metric families the dashboard must show (the panels operators were promised).
const DASHBOARD_FAMILIES: [&str; 16] = [
    "hookline_messages_accepted_total",
    "hookline_deliveries_total",
    "hookline_attempt_duration_seconds_bucket",
    "hookline_end_to_end_seconds_bucket",
    "hookline_oldest_pending_age_seconds",
    "hookline_queue_ready_tasks",
    "hookline_retry_schedule_backlog",
    "hookline_in_flight_tasks",
    "hookline_open_circuits",
    "hookline_admission_waiting_requests",
    "hookline_published_tasks_total",
    "hookline_scheduler_last_step_timestamp_seconds",
    "hookline_store_retries_total",
    "hookline_redis_up",
    "hookline_redis_reconnects_total",
    "hookline_broker_reconnects",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn monitoring() -> PathBuf {
    repo().join("deploy/monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs an operator tool, failing the test (not skipping it) when the tool is missing.
fn run(tool: &str, args: &[&str], dir: &Path) -> Output {
    match std::process::Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{tool} is not installed: run scripts/monitoring-tools")
        }
        Err(e) => panic!("run {tool}: {e}"),
    }
}

fn report(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The PrometheusRule manifest.
fn rule_manifest() -> Value {
    serde_norway::from_str(&read(&monitoring().join("prometheus-rules.yaml")))
        .expect("prometheus-rules.yaml is YAML")
}

/// Every rule of a rules file's `groups`.
fn rules(spec: &Value) -> Vec<&Value> {
    spec["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules"))
        .collect()
}

/// A temporary directory holding `spec` as a Prometheus rules file named
/// `hookline-rules.yaml` (JSON is YAML) and a copy of the rules' unit tests.
fn rules_dir(spec: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("hookline-rules.yaml"),
        serde_json::to_string_pretty(spec).expect("json"),
    )
    .expect("write rules");
    std::fs::copy(
        monitoring().join("tests/alerts-test.yaml"),
        dir.path().join("alerts-test.yaml"),
    )
    .expect("copy the rules' tests");
    dir
}

#[test]
fn monitoring_rules_pass_promtool_check() {
    let manifest = rule_manifest();
    assert_eq!(manifest["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(manifest["kind"], "PrometheusRule");
    let spec = &manifest["spec"];
    let mut names = BTreeSet::new();
    for rule in rules(spec) {
        let name = rule["alert"].as_str().expect("every rule is an alert");
        names.insert(name);
        assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
        for annotation in ["summary", "description"] {
            assert!(
                rule["annotations"][annotation].is_string(),
                "{name}: {annotation}"
            );
        }
    }
    assert_eq!(names, BTreeSet::from(ALERTS));

    let dir = rules_dir(spec);
    let output = run(
        "promtool",
        &["check", "rules", "hookline-rules.yaml"],
        dir.path(),
    );
    let text = report(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn monitoring_alerts_fire_when_they_should_and_not_before() {
    let spec = rule_manifest()["spec"].clone();
    let test_rules = |spec: &Value| {
        let dir = rules_dir(spec);
        let output = run(
            "promtool",
            &["test", "rules", "alerts-test.yaml"],
            dir.path(),
        );
        (output.status.success(), report(&output))
    };
    let (ok, text) = test_rules(&spec);
    assert!(ok, "{text}");

    // The unit tests are no rubber stamp: moving any alert's threshold or delay fails them.
    let mutations = [
        ("HooklineOldestPendingAgeHigh", "expr", "> 60", "> 90"),
        ("HooklineOldestPendingAgeHigh", "for", "2m", "1m"),
        ("HooklineDeliveryFailureRatioHigh", "expr", "> 0.2", "> 0.6"),
        ("HooklineDeliveryFailureRatioHigh", "expr", ">= 10", ">= 1"),
        ("HooklineDeliveryFailureRatioHigh", "for", "5m", "4m"),
        (
            "HooklineDeadLetteredTasks",
            "expr",
            r#"lane="dead""#,
            r#"lane=~".+""#,
        ),
        ("HooklineDeadLetteredTasks", "for", "5m", "4m"),
        ("HooklineSchedulerStalled", "expr", "> 120", "> 240"),
        (
            "HooklineSchedulerStalled",
            "expr",
            "backlog) > 0",
            "backlog) >= 0",
        ),
        (
            "HooklineSchedulerStalled",
            "expr",
            "seconds > 0)",
            "seconds)",
        ),
        ("HooklineSchedulerStalled", "for", "2m", "1m"),
    ];
    for (alert, field, from, to) in mutations {
        let mut broken = spec.clone();
        let mut changed = false;
        for group in broken["groups"].as_array_mut().expect("groups") {
            for rule in group["rules"].as_array_mut().expect("rules") {
                let Some(text) = rule[field].as_str().filter(|t| t.contains(from)) else {
                    continue;
                };
                if rule["alert"] == alert {
                    rule[field] = Value::from(text.replace(from, to));
                    changed = true;
                }
            }
        }
        assert!(changed, "{alert} has no `{from}` in its {field} to change");
        let (ok, text) = test_rules(&broken);
        assert!(!ok, "{alert} with `{to}` for `{from}` passed:\n{text}");
    }
}

/// What a running Hookline exports: sample names (histograms as `_bucket`, `_sum` and
/// `_count`) and, per label, its values.
struct Exported {
    names: BTreeSet<String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    /// Read from a fresh registry's page, with every delivery outcome counted once so the
    /// labelled family renders with all its values.
    fn by_hookline() -> Self {
        let metrics = Metrics::new().expect("metrics");
        for outcome in every_outcome() {
            metrics.delivery(outcome.name());
        }
        let mut names = BTreeSet::new();
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in metrics.render().lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let series = line.rsplit_once(' ').map_or(line, |(series, _)| series);
            let (name, pairs) = series.split_once('{').unwrap_or((series, ""));
            names.insert(name.to_owned());
            for pair in pairs
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty())
            {
                let (label, value) = pair.split_once('=').expect("label=value");
                labels
                    .entry(label.to_owned())
                    .or_default()
                    .insert(value.trim_matches('"').to_owned());
            }
        }
        Self { names, labels }
    }

    /// The metrics `expr` reads, and each metric, label or label value in it that Hookline
    /// does not export.
    fn check(&self, expr: &str) -> (BTreeSet<String>, Vec<String>) {
        let reads = reads(expr);
        let mut problems = Vec::new();
        if reads.metrics.is_empty() {
            problems.push(format!("no metric in `{expr}`"));
        }
        for metric in reads.metrics.iter().filter(|m| !self.names.contains(*m)) {
            problems.push(format!("metric {metric} in `{expr}`"));
        }
        for (label, values) in reads.labels {
            let Some(known) = self.labels.get(&label) else {
                problems.push(format!("label {label} in `{expr}`"));
                continue;
            };
            for value in values.iter().filter(|v| !known.contains(*v)) {
                problems.push(format!("{label}=\"{value}\" in `{expr}`"));
            }
        }
        (reads.metrics, problems)
    }

    /// Fails naming everything in `exprs` that Hookline does not export; returns the
    /// metrics they read.
    fn assert_reads_only_exported(&self, what: &str, exprs: &[String]) -> BTreeSet<String> {
        let mut used = BTreeSet::new();
        let mut problems = Vec::new();
        for expr in exprs {
            let (metrics, found) = self.check(expr);
            used.extend(metrics);
            problems.extend(found);
        }
        assert!(
            problems.is_empty(),
            "{what} read what Hookline does not export:\n{}",
            problems.join("\n")
        );
        used
    }
}

fn every_outcome() -> [Outcome; 9] {
    let all = [
        Outcome::Succeeded,
        Outcome::RetryScheduled,
        Outcome::Exhausted,
        Outcome::ManualFailed,
        Outcome::Disabled,
        Outcome::Skipped,
        Outcome::Deferred,
        Outcome::Held,
        Outcome::Waiting,
    ];
    // A new outcome stops this compiling until it is listed above.
    for outcome in all {
        match outcome {
            Outcome::Succeeded
            | Outcome::RetryScheduled
            | Outcome::Exhausted
            | Outcome::ManualFailed
            | Outcome::Disabled
            | Outcome::Skipped
            | Outcome::Deferred
            | Outcome::Held
            | Outcome::Waiting => {}
        }
    }
    all
}

/// What one PromQL expression reads: metric names, and label matchers and groupings as
/// (label, values) with a regex matcher's `a|b|c` split into its values.
struct Reads {
    metrics: BTreeSet<String>,
    labels: Vec<(String, Vec<String>)>,
}

fn reads(expr: &str) -> Reads {
    let mut metrics = BTreeSet::new();
    let mut labels = Vec::new();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    // Metric names: identifiers outside quotes and braces that start with `hookline_`.
    let mut depth = 0usize;
    let mut in_quotes = false;
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        match c {
            '"' => in_quotes = !in_quotes,
            '{' if !in_quotes => depth += 1,
            '}' if !in_quotes => depth = depth.saturating_sub(1),
            _ => {}
        }
        if !in_quotes && depth == 0 && is_ident(c) {
            word.push(c);
        } else if word.starts_with("hookline_") {
            metrics.insert(std::mem::take(&mut word));
        } else {
            word.clear();
        }
    }
    // Matchers: `label op "value"` inside braces.
    for selector in expr.split('{').skip(1) {
        let inside = selector.split('}').next().unwrap_or_default();
        for matcher in inside.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let at = matcher
                .find(['=', '!'])
                .unwrap_or_else(|| panic!("matcher `{matcher}` in `{expr}`"));
            let (label, rest) = matcher.split_at(at);
            let regex = rest.starts_with("=~") || rest.starts_with("!~");
            let value = rest.trim_start_matches(['=', '!', '~']).trim_matches('"');
            let values = if regex {
                assert!(
                    value.split('|').all(|v| v.chars().all(is_ident)),
                    "regex matcher `{matcher}` in `{expr}`: list plain values joined by |"
                );
                value.split('|').map(str::to_owned).collect()
            } else {
                vec![value.to_owned()]
            };
            labels.push((label.trim().to_owned(), values));
        }
    }
    // Groupings: `by (a, b)`.
    for grouping in expr.replace("by(", "by (").split("by (").skip(1) {
        let inside = grouping.split(')').next().unwrap_or_default();
        for label in inside.split(',').map(str::trim).filter(|l| !l.is_empty()) {
            labels.push((label.to_owned(), Vec::new()));
        }
    }
    Reads { metrics, labels }
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            all.extend(nested);
        }
    }
    all
}

#[test]
fn monitoring_dashboard_and_rules_read_only_exported_metrics() {
    let exported = Exported::by_hookline();
    assert!(exported
        .names
        .contains("hookline_attempt_duration_seconds_bucket"));
    assert!(exported.labels["outcome"].contains("retry_scheduled"));

    let text = read(&monitoring().join("grafana-dashboard.json"));
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64().expect("schemaVersion") >= 36);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    assert!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a `datasource` variable of Prometheus data sources"
    );

    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        let id = panel["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} ({title}) is not unique");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let used = exported.assert_reads_only_exported("the dashboard's queries", &exprs);
    let missing: Vec<_> = DASHBOARD_FAMILIES
        .iter()
        .filter(|family| !used.contains(**family))
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");

    // Every query is PromQL promtool parses (as a recording rule; Grafana's interval
    // variable made a duration).
    let recording = serde_json::json!({"groups": [{
        "name": "dashboard",
        "rules": exprs.iter().enumerate().map(|(n, expr)| serde_json::json!({
            "record": format!("hookline_dashboard:query_{n}"),
            "expr": expr.replace("$__rate_interval", "5m"),
        })).collect::<Vec<_>>(),
    }]});
    let dir = rules_dir(&recording);
    let output = run(
        "promtool",
        &["check", "rules", "--lint=none", "hookline-rules.yaml"],
        dir.path(),
    );
    assert!(output.status.success(), "{}", report(&output));

    let rule_exprs: Vec<String> = rules(&rule_manifest()["spec"])
        .iter()
        .map(|rule| rule["expr"].as_str().expect("expr").to_owned())
        .collect();
    exported.assert_reads_only_exported("the alert rules", &rule_exprs);

    // The ConfigMap carries the same dashboard, labelled for Grafana's sidecar.
    let config_map: Value = serde_norway::from_str(&read(
        &monitoring().join("grafana-dashboard-configmap.yaml"),
    ))
    .expect("the ConfigMap is YAML");
    assert_eq!(config_map["kind"], "ConfigMap");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let embedded: Value = serde_json::from_str(
        config_map["data"]["hookline.json"]
            .as_str()
            .expect("data.hookline.json"),
    )
    .expect("the ConfigMap's dashboard is JSON");
    assert!(
        embedded == dashboard,
        "grafana-dashboard-configmap.yaml's data.hookline.json differs from grafana-dashboard.json: copy the file into it"
    );
}

#[test]
fn monitoring_expression_check_sees_typos() {
    let exported = Exported::by_hookline();
    let problems = |expr: &str| exported.check(expr).1;
    let fine =
        r#"sum by (outcome) (rate(hookline_deliveries_total{outcome=~"succeeded|held"}[5m]))"#;
    assert_eq!(problems(fine), Vec::<String>::new());
    for typo in [
        "max(hookline_oldest_pending_age_second)",
        r#"sum(rate(hookline_deliveries_total{outcome="succeded"}[5m]))"#,
        r#"max(hookline_queue_ready_tasks{lane="slow"})"#,
        "sum by (endpoint) (hookline_in_flight_tasks)",
        "vector(1)",
    ] {
        assert_eq!(problems(typo).len(), 1, "{typo}");
    }
}

#[test]
fn monitoring_component_renders_into_the_production_overlay() {
    // The lines the production overlay documents, in an overlay of that overlay: what an
    // operator who uncomments them gets.
    let production = repo().join("deploy/kubernetes/overlays/production");
    let documented = read(&production.join("kustomization.yaml"));
    let component = "../../../monitoring";
    for line in ["# components:", &format!("#   - {component}")] {
        assert!(
            documented.lines().any(|l| l == line),
            "overlays/production/kustomization.yaml lacks `{line}`"
        );
    }
    let resolved = production.join(component).canonicalize().expect("the path");
    assert_eq!(
        resolved,
        monitoring().canonicalize().expect("deploy/monitoring")
    );

    let overlay = tempfile::tempdir().expect("temp overlay");
    // kustomize takes only relative paths.
    let up = "../".repeat(
        overlay
            .path()
            .canonicalize()
            .expect("temp")
            .components()
            .count()
            - 1,
    );
    let absolute = |path: PathBuf| {
        let path = path.canonicalize().expect("path");
        format!("{up}{}", path.display().to_string().trim_start_matches('/'))
    };
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
        absolute(production.clone()),
        absolute(monitoring()),
    );
    std::fs::write(overlay.path().join("kustomization.yaml"), kustomization).expect("write");
    let output = run("kubectl", &["kustomize", "."], overlay.path());
    assert!(output.status.success(), "{}", report(&output));

    let rendered = String::from_utf8_lossy(&output.stdout);
    let mut objects = BTreeMap::new();
    for document in serde_norway::Deserializer::from_str(&rendered) {
        let object: Value = serde::Deserialize::deserialize(document).expect("an object");
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        objects.insert(format!("{kind}/{name}"), object);
    }
    let listed: Vec<_> = objects.keys().cloned().collect();
    for key in [
        "PodMonitor/hookline",
        "PrometheusRule/hookline",
        "ConfigMap/hookline-grafana-dashboard",
        "Deployment/hookline-scheduler",
    ] {
        let object = objects
            .get(key)
            .unwrap_or_else(|| panic!("{key} not rendered; got {listed:?}"));
        assert_eq!(object["metadata"]["namespace"], "hookline", "{key}");
    }
    // The production overlay's own changes still apply.
    assert_eq!(
        objects["Deployment/hookline-scheduler"]["spec"]["replicas"],
        2
    );
    let selector = &objects["PodMonitor/hookline"]["spec"]["selector"]["matchLabels"];
    let port = &objects["PodMonitor/hookline"]["spec"]["podMetricsEndpoints"][0]["port"];
    // Every role's pods carry the label the monitor selects and the port it scrapes.
    for role in ["ingest", "dispatcher", "scheduler"] {
        let pod = &objects[&format!("Deployment/hookline-{role}")]["spec"]["template"];
        for (label, value) in selector.as_object().expect("matchLabels") {
            assert_eq!(&pod["metadata"]["labels"][label], value, "{role}");
        }
        let ports = pod["spec"]["containers"][0]["ports"]
            .as_array()
            .expect("ports");
        assert!(
            ports.iter().any(|p| &p["name"] == port),
            "{role}: no port {port}"
        );
    }
}

/// The value of an unlabelled sample in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn monitoring_scheduler_stamps_every_step_even_with_nothing_due() {
    let stack = Stack::new("last-step");
    let started = unix_seconds();
    let scheduler = stack.start(Role::Scheduler).await;
    let metrics = format!("{}/metrics", scheduler.ops_url().await);
    let last_step = || async {
        let page = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
        sample(&page, "hookline_scheduler_last_step_timestamp_seconds")
    };
    let first = eventually("a first step", Duration::from_secs(20), || async {
        last_step().await.filter(|t| *t >= started)
    })
    .await;
    assert!(first <= unix_seconds(), "{first} is in the future");
    // The schedule is empty: later steps find nothing due and still move the stamp.
    eventually("a later step", Duration::from_secs(10), || async {
        last_step().await.filter(|t| *t > first)
    })
    .await;
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}
