//! Logging set-up. Logs go to stderr; stdout carries only the lines other programs read
//! (the address the API listens on).

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

pub fn init(settings: &LogSettings) {
    // RUST_LOG, when set, wins over the configured filter: the usual debugging habit.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
