//! `hookline bench`: turns the command line into bench options and prints the table.

use anyhow::{bail, Context};
use hookline_bench::scenarios::Scale;
use hookline_bench::target::Services;
use hookline_bench::{BenchOptions, Target};

use crate::cli::BenchArgs;

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let all = hookline_bench::scenarios::ALL;
    if let Some(bad) = args.scenarios.iter().find(|n| !all.contains(*n)) {
        bail!(
            "--scenarios: {bad} is not a scenario ({}-{})",
            all.start(),
            all.end()
        );
    }
    for (given, scenario, flag) in [
        (args.flood_messages.is_some(), 6, "--flood-messages"),
        (args.log_messages.is_some(), 7, "--log-messages"),
        (args.drop_messages.is_some(), 8, "--drop-messages"),
        (
            args.read_fixture_messages.is_some(),
            9,
            "--read-fixture-messages",
        ),
        (
            args.read_fixture_payload_bytes.is_some(),
            9,
            "--read-fixture-payload-bytes",
        ),
    ] {
        if given && !args.scenarios.contains(&scenario) {
            bail!("{flag}: scenario {scenario} is not among --scenarios");
        }
    }
    check_log_scenarios(args)?;
    let postgres_url = postgres_url(args)?;
    let target = match (&args.url, &args.token) {
        (Some(url), Some(token)) => Target::External {
            url: url.clone(),
            token: token.clone(),
        },
        _ => Target::Spawn {
            exe: std::env::current_exe().context("locating the hookline executable")?,
            embedded: args.embedded,
        },
    };
    let env = args
        .settings
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .filter(|(key, _)| key.starts_with("HOOKLINE__"))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--set {pair}: expected HOOKLINE__SECTION__KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut scale = if args.quick {
        Scale::QUICK
    } else {
        Scale::FULL
    };
    for (value, field, flag) in [
        (
            args.flood_messages,
            &mut scale.flood_messages,
            "--flood-messages",
        ),
        (args.log_messages, &mut scale.log_messages, "--log-messages"),
        (
            args.drop_messages,
            &mut scale.drop_messages,
            "--drop-messages",
        ),
        (
            args.read_fixture_messages,
            &mut scale.read_fixture_messages,
            "--read-fixture-messages",
        ),
        (
            args.read_fixture_payload_bytes,
            &mut scale.read_fixture_payload_bytes,
            "--read-fixture-payload-bytes",
        ),
    ] {
        if let Some(value) = value {
            *field = usize::try_from(value).context(flag)?;
        }
    }
    let options = BenchOptions {
        target,
        services: Services {
            amqp_url: args.amqp_url.clone(),
            redis_url: args.redis_url.clone(),
            postgres_url,
        },
        scale,
        scenarios: args.scenarios.clone(),
        payload_bytes: args.payload_bytes,
        out_dir: args.out.clone(),
        env,
        keep_log_schema: args.keep_postgres_schema,
    };
    let report = hookline_bench::run(&options).await?;
    println!("{}", report.table());
    let mut plots = vec![
        args.out.join("latency-cdf.svg"),
        args.out.join("throughput.svg"),
    ];
    if args.scenarios.contains(&6) {
        plots.push(args.out.join(hookline_bench::plot::FLOOD_PLOT));
    }
    let plots: Vec<String> = plots.iter().map(|p| p.display().to_string()).collect();
    println!(
        "results: {}  plots: {}",
        args.out.join("results.json").display(),
        plots.join(", ")
    );
    Ok(())
}

/// The log's PostgreSQL for the bench's own RabbitMQ + Redis roles. An external server or an
/// embedded `serve` keeps its log elsewhere: `--postgres` is refused with them, and a URL
/// from the environment alone is left unused.
fn postgres_url(args: &BenchArgs) -> anyhow::Result<Option<String>> {
    let Some(url) = &args.postgres_url else {
        return Ok(None);
    };
    if !(args.embedded || args.url.is_some()) {
        return Ok(Some(url.clone()));
    }
    let from_env = std::env::var("HOOKLINE_BENCH_POSTGRES_URL").is_ok_and(|env| &env == url);
    if from_env {
        return Ok(None);
    }
    bail!("--postgres: only for the bench's own RabbitMQ + Redis roles (not with --url or --embedded)")
}

/// Scenarios 7-9 weigh and fill the bench's own RabbitMQ + Redis deployment; 8 and 9 need
/// its log on PostgreSQL.
fn check_log_scenarios(args: &BenchArgs) -> anyhow::Result<()> {
    let log_scenarios = hookline_bench::scenarios::LOG;
    if let Some(n) = args.scenarios.iter().find(|n| log_scenarios.contains(*n)) {
        if args.url.is_some() || args.embedded {
            bail!("--scenarios: {n} needs the bench's own RabbitMQ + Redis deployment (not --url or --embedded)");
        }
    }
    let postgres_only = hookline_bench::scenarios::POSTGRES_ONLY;
    if let Some(n) = args.scenarios.iter().find(|n| postgres_only.contains(*n)) {
        if args.postgres_url.is_none() {
            bail!("--scenarios: {n} needs --postgres (or HOOKLINE_BENCH_POSTGRES_URL)");
        }
    }
    Ok(())
}
