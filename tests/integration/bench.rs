//! A seconds-long smoke run of `hookline bench`: it starts its own roles, measures the raw
//! ceiling, runs all five scenarios, prints the ratios and writes results and plots. The
//! figures of so short a run mean little; that every scenario delivered everything does.

use serde_json::Value;

use crate::testkit::process::{amqp_url, redis_url};
use crate::testkit::Backend;

#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::embedded(Backend::Embedded)]
#[tokio::test]
async fn a_quick_bench_run_prints_ratios_and_writes_results_and_plots(#[case] backend: Backend) {
    let out = std::env::temp_dir().join(format!(
        "hookline-bench-smoke-{}-{backend:?}",
        std::process::id()
    ));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    command.args([
        "bench",
        "--quick",
        "--amqp-url",
        &amqp_url(),
        "--redis-url",
        &redis_url(),
    ]);
    let engine = match backend {
        Backend::Embedded => {
            command.arg("--embedded");
            "embedded"
        }
        Backend::RabbitRedis | Backend::Clusters => "rabbitmq+redis",
    };
    let output = command
        .arg("--out")
        .arg(&out)
        .output()
        .await
        .expect("hookline bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("raw ceiling: RabbitMQ"), "{stdout}");
    assert!(stdout.contains("of the RabbitMQ ceiling"), "{stdout}");
    assert!(stdout.contains("peak RSS after scenario 1"), "{stdout}");
    assert!(stdout.contains("CPU per delivery, in µs"), "{stdout}");

    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json"))
            .expect("results are JSON");
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
    assert_eq!(ids, [1, 2, 3, 4, 5]);
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
    }
    for plot in ["latency-cdf.svg", "throughput.svg"] {
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
        .args(["bench", "--scenarios", "1,7"])
        .output()
        .await
        .expect("hookline bench runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--scenarios: 7"), "{stderr}");
}
