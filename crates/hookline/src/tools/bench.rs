//! `hookline bench`: turns the command line into bench options and prints the table.

use anyhow::{bail, Context};
use hookline_bench::scenarios::Scale;
use hookline_bench::target::Services;
use hookline_bench::{BenchOptions, Target};

use crate::cli::BenchArgs;

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Some(bad) = args.scenarios.iter().find(|n| !(1..=5).contains(*n)) {
        bail!("--scenarios: {bad} is not a scenario (1-5)");
    }
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
    let options = BenchOptions {
        target,
        services: Services {
            amqp_url: args.amqp_url.clone(),
            redis_url: args.redis_url.clone(),
        },
        scale: if args.quick {
            Scale::QUICK
        } else {
            Scale::FULL
        },
        scenarios: args.scenarios.clone(),
        payload_bytes: args.payload_bytes,
        out_dir: args.out.clone(),
        env,
    };
    let report = hookline_bench::run(&options).await?;
    println!("{}", report.table());
    println!(
        "results: {}  plots: {}, {}",
        args.out.join("results.json").display(),
        args.out.join("latency-cdf.svg").display(),
        args.out.join("throughput.svg").display()
    );
    Ok(())
}
