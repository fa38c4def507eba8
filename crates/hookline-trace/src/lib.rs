//! W3C trace context for delivery tasks.
//!
//! Ingest stores the `traceparent` of its request span in each task (RabbitMQ carries it in
//! the message headers too); the dispatcher makes its attempt span a child of it. With no
//! exporter configured these are cheap no-ops: the context is simply empty.

use std::collections::HashMap;

use opentelemetry::global;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` of the current span, if it belongs to a sampled trace.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace `traceparent` names (no-op for `None` or garbage).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    span.set_parent(parent);
}
