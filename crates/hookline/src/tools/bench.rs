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
    if args.flood_messages.is_some() && !args.scenarios.contains(&6) {
        bail!("--flood-messages: scenario 6 is not among --scenarios");
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
    let mut scale = if args.quick {
        Scale::QUICK
    } else {
        Scale::FULL
    };
    if let Some(messages) = args.flood_messages {
        scale.flood_messages = usize::try_from(messages).context("--flood-messages")?;
    }
    let options = BenchOptions {
        target,
        services: Services {
            amqp_url: args.amqp_url.clone(),
            redis_url: args.redis_url.clone(),
        },
        scale,
        scenarios: args.scenarios.clone(),
        payload_bytes: args.payload_bytes,
        out_dir: args.out.clone(),
        env,
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
