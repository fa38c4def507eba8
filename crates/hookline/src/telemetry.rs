//! Logging and tracing set-up. Logs go to stderr; stdout carries only the lines other
//! programs read (the addresses the process listens on).
//!
//! With `telemetry.otlp_endpoint` set, spans are also exported over OTLP/HTTP (JSON) and
//! the W3C trace context rides with each delivery task, so one trace shows the ingest
//! request, the queue wait and the HTTP attempt.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LogFormat, LogSettings, TelemetrySettings};

/// Flushes exported spans when dropped (at the end of `main`).
pub struct Telemetry(Option<SdkTracerProvider>);

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("hookline: flushing traces failed: {error}");
            }
        }
    }
}

pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    // RUST_LOG, when set, wins over the configured filter: the usual debugging habit.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=error"));
    let fmt = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = match &telemetry.otlp_endpoint {
        Some(endpoint) => Some(tracer_provider(endpoint, telemetry.sample_ratio)?),
        None => None,
    };
    let otel = provider.as_ref().map(|provider| {
        // Spans are exported whatever the log filter says; the sampler decides.
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("hookline"))
            .with_filter(EnvFilter::new(
                "hookline=info,hookline_ingest=info,hookline_dispatcher=info",
            ))
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(Telemetry(provider))
}

fn tracer_provider(endpoint: &str, sample_ratio: f64) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            sample_ratio,
        ))))
        .with_resource(Resource::builder().with_service_name("hookline").build())
        .build())
}
