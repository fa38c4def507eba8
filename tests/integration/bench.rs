//! A seconds-long smoke run of `hookline bench`: it starts its own roles, measures the raw
//! ceiling, runs all six scenarios (the default), prints the ratios and writes results and plots. The
//! figures of so short a run mean little; that every scenario delivered everything does.

use serde_json::Value;

use crate::testkit::process::{amqp_url, postgres_url, redis_url};
use crate::testkit::Backend;

/// `hookline bench --quick` on the local RabbitMQ and Redis, with `args` after.
fn quick_bench(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    command
        .args([
            "bench",
            "--quick",
            "--amqp-url",
            &amqp_url(),
            "--redis-url",
            &redis_url(),
        ])
        .args(args);
    command
}

/// A results directory of this test process's own, named for the run.
fn out_dir(run: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hookline-bench-smoke-{run}-{}", std::process::id()))
}

/// The `results.json` a run wrote into `out`.
fn results_in(out: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
        .expect("results are JSON")
}

/// Runs `command` with `--out out` and answers what it printed, failing the test (with its
/// output) unless it succeeded.
async fn run_to_success(mut command: tokio::process::Command, out: &std::path::Path) -> String {
    let output = command
        .arg("--out")
        .arg(out)
        .output()
        .await
        .expect("hookline bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::embedded(Backend::Embedded)]
#[tokio::test]
async fn a_quick_bench_run_prints_ratios_and_writes_results_and_plots(#[case] backend: Backend) {
    let out = out_dir(&format!("{backend:?}"));
    let mut command = quick_bench(&[]);
    let engine = match backend {
        Backend::Embedded => {
            command.arg("--embedded");
            "embedded"
        }
        Backend::RabbitRedis | Backend::Clusters => "rabbitmq+redis",
    };
    let stdout = run_to_success(command, &out).await;
    assert!(stdout.contains("raw ceiling: RabbitMQ"), "{stdout}");
    assert!(stdout.contains("of the RabbitMQ ceiling"), "{stdout}");
    assert!(stdout.contains("peak RSS after scenario 1"), "{stdout}");
    assert!(stdout.contains("CPU per delivery, in µs"), "{stdout}");

    let results = results_in(&out);
    assert_eq!(results["engine"], engine, "{results}");
    assert!(
        results["ceiling"]["rabbitmq_per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{results}"
    );
    let scenarios = results["scenarios"].as_array().expect("scenarios");
    let mut ids: Vec<u64> = scenarios.iter().filter_map(|s| s["id"].as_u64()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    for scenario in scenarios {
        assert!(
            scenario["expected_deliveries"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{scenario}"
        );
        assert_eq!(
            scenario["deliveries"], scenario["expected_deliveries"],
            "{scenario}"
        );
        assert_eq!(scenario["rejected"], 0, "{scenario}");
        if scenario["id"] == 4 {
            assert!(
                scenario["details"]["retriesWaiting"]
                    .as_u64()
                    .is_some_and(|n| n > 0),
                "the backlog was filled: {scenario}"
            );
        }
        if scenario["id"] == 6 {
            let details = &scenario["details"];
            for part in ["flood", "quiet"] {
                assert!(
                    details[part]["sent"].as_u64().is_some_and(|n| n > 0),
                    "the {part} apps sent: {scenario}"
                );
                assert_eq!(details[part]["lost"], 0, "{scenario}");
            }
            assert!(
                details["baselineLatency"]["count"]
                    .as_u64()
                    .is_some_and(|n| n > 0)
                    && scenario["latency"]["count"].as_u64().is_some_and(|n| n > 0),
                "quiet deliveries before and during the flood: {scenario}"
            );
            assert!(
                details["ratioToScenario1"].as_f64().is_some(),
                "scenario 1 ran, so the flood's rate compares with it: {scenario}"
            );
        }
    }
    assert!(
        stdout.contains("backlog statistics during scenario 6"),
        "{stdout}"
    );
    for plot in ["latency-cdf.svg", "throughput.svg", "flood-latency.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).expect("plot written");
        assert!(
            svg.contains("<svg") && svg.contains("polyline"),
            "{plot} holds a drawn line"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn a_bench_asked_for_an_unknown_scenario_says_which() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["bench", "--scenarios", "1,11"])
        .output()
        .await
        .expect("hookline bench runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--scenarios: 11"), "{stderr}");
}

#[tokio::test]
async fn the_log_scenarios_are_refused_where_they_cannot_run() {
    for (args, expected) in [
        (vec!["--scenarios", "8"], "--scenarios: 8 needs --postgres"),
        (
            vec!["--scenarios", "7", "--embedded"],
            "--scenarios: 7 needs the bench's own RabbitMQ + Redis deployment",
        ),
        (
            vec!["--scenarios", "1", "--log-messages", "10"],
            "--log-messages: scenario 7 is not among --scenarios",
        ),
        (
            vec!["--embedded", "--postgres", "postgres://127.0.0.1/x"],
            "--postgres: only for the bench's own RabbitMQ + Redis roles",
        ),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("bench")
            .args(&args)
            .env_remove("HOOKLINE_BENCH_POSTGRES_URL")
            .output()
            .await
            .expect("hookline bench runs");
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // A URL in the environment does not stand in the way of an embedded run: the only
    // complaint is the scenario that does not exist.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["bench", "--embedded", "--scenarios", "11"])
        .env("HOOKLINE_BENCH_POSTGRES_URL", "postgres://127.0.0.1/x")
        .output()
        .await
        .expect("hookline bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--scenarios: 11"), "{stderr}");
}

/// Scenario 10 at its quick size on both deployments: one ordered endpoint's line drains
/// completely, and scenario 1's rerun beside other apps' ordered endpoints delivers
/// everything and compares itself with scenario 1.
#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::embedded(Backend::Embedded)]
#[tokio::test]
async fn a_quick_bench_run_of_the_ordered_scenario_drains_its_line(#[case] backend: Backend) {
    let out = out_dir(&format!("ordered-{backend:?}"));
    let mut command = quick_bench(&["--scenarios", "1,10"]);
    if backend == Backend::Embedded {
        command.arg("--embedded");
    }
    run_to_success(command, &out).await;
    let results = results_in(&out);
    let ordered = results["scenarios"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == 10))
        .expect("scenario 10 ran");
    assert_eq!(
        ordered["deliveries"], ordered["expected_deliveries"],
        "{ordered}"
    );
    let details = &ordered["details"];
    assert_eq!(
        details["orderedMessages"], 100,
        "the whole line drained: {ordered}"
    );
    assert!(
        details["orderedPerSecond"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
            && details["ratioToScenario1"]
                .as_f64()
                .is_some_and(|r| r > 0.0),
        "{ordered}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Scenarios 1 and 5 with the log on PostgreSQL, and the log's own scenarios 7-9 at their
/// quick sizes (1,000 messages weighed, a 10,000-message day dropped, 20,000 messages read):
/// each delivers everything, reports its figures, and the bench's schema is gone after.
#[tokio::test]
async fn a_quick_bench_run_with_the_log_on_postgres_reports_the_log_scenarios() {
    let out = out_dir("postgres");
    let command = quick_bench(&["--scenarios", "1,5,7,8,9", "--postgres", &postgres_url()]);
    let stdout = run_to_success(command, &out).await;
    for line in [
        "delivery log in postgres",
        "log sizing (scenario 7, log in postgres)",
        "PostgreSQL (tables with their indexes)",
        "retention drop (scenario 8)",
        "log reads (scenario 9)",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let results = results_in(&out);
    assert_eq!(results["log"], "postgres", "{results}");
    let scenarios = results["scenarios"].as_array().expect("scenarios");
    let ids: Vec<u64> = scenarios.iter().filter_map(|s| s["id"].as_u64()).collect();
    assert_eq!(ids, [1, 5, 7, 8, 9]);
    let scenario = |id: u64| scenarios.iter().find(|s| s["id"] == id).expect("ran");
    for s in scenarios {
        assert_eq!(s["deliveries"], s["expected_deliveries"], "{s}");
        assert_eq!(s["rejected"], 0, "{s}");
    }
    let sizing = &scenario(7)["details"];
    assert_eq!(sizing["settled"], true, "{sizing}");
    assert!(
        sizing["postgres"]["bytesPerMessage"]
            .as_f64()
            .is_some_and(|b| b > 1024.0),
        "every message's 1 KiB payload is in the log: {sizing}"
    );
    let dropped = &scenario(8)["details"];
    assert_eq!(
        dropped["rowsPastRetention"]["messages"], 10_000,
        "{dropped}"
    );
    assert!(
        dropped["rowsLeftAfterDrop"]
            .as_object()
            .is_some_and(|t| t.values().all(|n| n == 0)),
        "{dropped}"
    );
    assert!(dropped["dropMs"].as_f64().is_some(), "{dropped}");
    let reads = &scenario(9)["details"]["queries"];
    for query in reads.as_array().expect("queries") {
        assert_eq!(query["failures"], 0, "{query}");
        assert!(
            query["meanItems"].as_f64().is_some_and(|n| n > 0.0),
            "every read finds fixture rows: {query}"
        );
    }
    let schema = results["logSchema"]
        .as_str()
        .expect("the log's schema is named");
    let left = std::process::Command::new("psql")
        .args(["-d", &postgres_url(), "-Atc"])
        .arg(format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"
        ))
        .output()
        .expect("psql runs");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "0",
        "the bench dropped its schema {schema}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test]
async fn a_flood_size_is_refused_without_scenario_6_or_when_zero() {
    for (args, expected) in [
        (
            ["--scenarios", "1,5", "--flood-messages", "100"],
            "--flood-messages: scenario 6 is not among --scenarios",
        ),
        (
            ["--scenarios", "6", "--flood-messages", "0"],
            "--flood-messages",
        ),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("bench")
            .args(args)
            .output()
            .await
            .expect("hookline bench runs");
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// docs/benchmarks.md records a run: the machine and command, plots and raw results that
/// exist, and a scenario-1 figure that is the one in those results (so the text and the
/// files cannot drift apart unnoticed).
#[test]
fn the_recorded_run_in_the_docs_matches_its_files() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let text = std::fs::read_to_string(docs.join("benchmarks.md")).expect("benchmarks.md");
    let latest = text
        .split("## The latest run")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a 'The latest run' section");
    assert!(latest.contains("Machine:"), "the machine is named");
    assert!(
        latest.contains("Command: `target/release/hookline bench`"),
        "the command is given"
    );
    for link in [
        "benchmarks/results.json",
        "benchmarks/latency-cdf.svg",
        "benchmarks/throughput.svg",
    ] {
        assert!(text.contains(&format!("]({link})")), "{link} is linked");
        assert!(docs.join(link).is_file(), "{link} exists");
    }
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(docs.join("benchmarks/results.json")).expect("results.json"),
    )
    .expect("results.json is JSON");
    let ids: Vec<u64> = results["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter_map(|s| s["id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 5, "every scenario recorded: {ids:?}");
    let scenario_1 = results["scenarios"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == 1))
        .and_then(|s| s["per_second"].as_f64())
        .expect("scenario 1's rate");
    let rounded = format!("{:.0}", scenario_1);
    let with_comma = match rounded.len() {
        4..=6 => format!(
            "{},{}",
            &rounded[..rounded.len() - 3],
            &rounded[rounded.len() - 3..]
        ),
        _ => rounded,
    };
    assert!(
        latest.contains(&format!("{with_comma} deliveries/s")),
        "the table's scenario 1 is results.json's {with_comma}/s"
    );
}
