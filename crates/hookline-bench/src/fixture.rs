//! Days of delivery log written straight into PostgreSQL for the log scenarios (8 and 9):
//! messages, one destination and one attempt each, streamed with `COPY` into the log's
//! partitioned tables. Rows are shaped like real ones: each is a copy of the rows one real
//! delivery through the bench's own deployment left in the log, with its ids, times, event
//! type and endpoint replaced (ids made by `hookline_core::id`, so they fall in the day's
//! partitions exactly as live ones do).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use hookline_core::id;
use hookline_core::model::{Attempt, Message};
use hookline_core::names::EventTypeName;
use hookline_core::ports::PageRequest;
use hookline_postgres::{AttemptsBy, PgLog};
use indicatif::ProgressBar;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Messages per `COPY` (three statements: messages, destinations, attempts).
const CHUNK: usize = 5_000;
/// Concurrent `COPY` streams, one connection each.
const STREAMS: usize = 2;
/// An attempt is made this long after its message (its id's time).
const ATTEMPT_AFTER_MS: u64 = 40;
/// Disk a fixture message takes beyond its payload (its record, destination, attempt with
/// headers, six index entries), rounded up from a measured 2,127 B.
pub const BYTES_PER_MESSAGE_BEYOND_PAYLOAD: u64 = 2_200;
/// Free disk the bench leaves on the database's file system after a fixture, plus room
/// for the WAL written meanwhile.
pub const DISK_MARGIN_BYTES: u64 = 12 * 1024 * 1024 * 1024;

/// The rows one real delivery left in the log, as templates.
#[derive(Debug, Clone)]
pub struct Template {
    message: Message,
    attempt: Attempt,
}

impl Template {
    /// The message `msg_id` and its attempt to `endpoint_id`, once both are in the log.
    pub async fn read(
        log: &PgLog,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<Self>, String> {
        let Some(message) = log
            .get_message(app_id, msg_id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let page = PageRequest {
            limit: 10,
            iterator: None,
            ascending: true,
            event_types: None,
        };
        let attempts = log
            .attempts_by(AttemptsBy::Message, app_id, msg_id, &page)
            .await
            .map_err(|e| e.to_string())?;
        Ok(attempts
            .items
            .into_iter()
            .find(|a| a.endpoint_id == endpoint_id)
            .map(|attempt| Self { message, attempt }))
    }
}

/// What to write: `messages` messages of `app_id`, evenly spread over
/// `[from_ms, from_ms + span_ms)`, each to one endpoint (in turn) with one of the event
/// types (at random), delivered at the first attempt.
#[derive(Debug, Clone)]
pub struct Spec {
    pub app_id: String,
    /// Endpoint ids and URLs.
    pub endpoints: Vec<(String, String)>,
    pub event_types: Vec<String>,
    pub messages: usize,
    pub from_ms: u64,
    pub span_ms: u64,
    /// The payload as stored (minified JSON).
    pub payload: String,
}

impl Spec {
    /// When message `i` was created (Unix ms).
    pub fn created_ms(&self, i: usize) -> u64 {
        let offset = (i as u128 * u128::from(self.span_ms)) / self.messages.max(1) as u128;
        self.from_ms + u64::try_from(offset).unwrap_or(0)
    }
}

/// The bytes `messages` fixture messages of `payload_bytes` will take, roughly.
pub fn estimate_bytes(messages: usize, payload_bytes: usize) -> u64 {
    messages as u64 * (payload_bytes as u64 + BYTES_PER_MESSAGE_BEYOND_PAYLOAD)
}

/// Free bytes on the file system of the database's data directory, when the database is
/// on this machine and says where that is (`None` otherwise: the check is skipped).
pub async fn free_disk(log: &PgLog) -> Option<u64> {
    let client = log.raw().await.ok()?;
    let dir: String = client
        .query_one("SHOW data_directory", &[])
        .await
        .ok()?
        .get(0);
    let out = std::process::Command::new("df")
        .args(["-Pk", &dir])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Refuses a fixture that would leave less than [`DISK_MARGIN_BYTES`] free.
pub async fn check_disk(log: &PgLog, estimate: u64, what: &str) -> Result<Option<u64>, String> {
    let Some(free) = free_disk(log).await else {
        eprintln!(
            "{what}: the database's free disk is unknown (not on this machine?); ~{} MB to write",
            estimate / 1_000_000
        );
        return Ok(None);
    };
    if free < estimate.saturating_add(DISK_MARGIN_BYTES) {
        return Err(format!(
            "{what}: ~{} MB would leave less than {} GB of the {} MB free on the database's disk; ask for fewer messages or a smaller payload",
            estimate / 1_000_000,
            DISK_MARGIN_BYTES / 1_000_000_000,
            free / 1_000_000
        ));
    }
    Ok(Some(free))
}

/// How a fixture went in.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub messages: usize,
    pub seconds: f64,
}

/// Writes the fixture (its days' partitions must exist: `PgLog::ensure_days`).
pub async fn load(
    log: &PgLog,
    spec: &Spec,
    template: &Template,
    bar: &ProgressBar,
) -> Result<Loaded, String> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let chunks = spec.messages.div_ceil(CHUNK);
    let spec = Arc::new(spec.clone());
    let template = Arc::new(template.clone());
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let (log, spec, template, next, bar) = (
            log.clone(),
            spec.clone(),
            template.clone(),
            next.clone(),
            bar.clone(),
        );
        streams.push(tokio::spawn(async move {
            let client = log.raw().await.map_err(|e| e.to_string())?;
            loop {
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks {
                    return Ok::<(), String>(());
                }
                let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(spec.messages);
                let count = range.len();
                let (spec2, template2) = (spec.clone(), template.clone());
                let rows = tokio::task::spawn_blocking(move || encode(&spec2, &template2, range))
                    .await
                    .map_err(|e| e.to_string())??;
                rows.copy(&client).await?;
                bar.inc(count as u64);
            }
        }));
    }
    for stream in streams {
        stream.await.map_err(|e| e.to_string())??;
    }
    Ok(Loaded {
        messages: spec.messages,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `VACUUM (ANALYZE)` of the log's tables, as autovacuum would have left days-old
/// partitions (statistics for the planner, visibility maps for index-only scans); answers
/// how long it took.
pub async fn vacuum(log: &PgLog) -> Result<Duration, String> {
    let started = Instant::now();
    let client = log.raw().await.map_err(|e| e.to_string())?;
    client
        .batch_execute("VACUUM (ANALYZE) messages, destinations, attempts")
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// One chunk's rows in `COPY`'s text format.
struct Rows {
    messages: Vec<u8>,
    destinations: Vec<u8>,
    attempts: Vec<u8>,
}

impl Rows {
    async fn copy(self, client: &tokio_postgres::Client) -> Result<(), String> {
        for (sql, data) in [
            (
                "COPY messages (app_id, id, event_type, endpoints, record, payload, payload_until) FROM STDIN",
                self.messages,
            ),
            (
                "COPY destinations (app_id, msg_id, endpoint_id, status, attempts, next_attempt) FROM STDIN",
                self.destinations,
            ),
            (
                "COPY attempts (app_id, id, msg_id, endpoint_id, record) FROM STDIN",
                self.attempts,
            ),
        ] {
            let sink = client
                .copy_in::<_, Bytes>(sql)
                .await
                .map_err(|e| e.to_string())?;
            futures::pin_mut!(sink);
            sink.send(Bytes::from(data))
                .await
                .map_err(|e| e.to_string())?;
            sink.as_mut().finish().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn encode(spec: &Spec, template: &Template, range: Range<usize>) -> Result<Rows, String> {
    let mut rows = Rows {
        messages: Vec::with_capacity(range.len() * (spec.payload.len() * 2 + 400)),
        destinations: Vec::with_capacity(range.len() * 120),
        attempts: Vec::with_capacity(range.len() * 800),
    };
    let app = escape(&spec.app_id);
    let mut message = template.message.clone();
    message.app_id.clone_from(&spec.app_id);
    message.payload = serde_json::value::RawValue::from_string(spec.payload.clone())
        .map_err(|e| format!("fixture payload: {e}"))?;
    let mut payload = None;
    for i in range {
        let at = spec.created_ms(i);
        let msg_id = id::new_id("msg", at);
        let attempt_id = id::new_id("atmpt", at + ATTEMPT_AFTER_MS);
        let (endpoint_id, url) = &spec.endpoints[i % spec.endpoints.len().max(1)];
        let event_type = &spec.event_types[rand::random_range(0..spec.event_types.len().max(1))];
        message.id.clone_from(&msg_id);
        message.timestamp = at_ms(i128::from(at) * 1_000_000);
        message.event_type =
            EventTypeName::parse(event_type.as_str()).map_err(|e| format!("event type: {e}"))?;
        let attempt = attempt_of(
            template,
            &attempt_id,
            &msg_id,
            endpoint_id,
            url,
            at,
            event_type,
        );
        let (record, packed_payload) =
            hookline_postgres::stored_message(&message).map_err(|e| e.to_string())?;
        // Every fixture message has the same payload: packed once.
        let payload = payload.get_or_insert_with(|| bytea(&packed_payload));
        push_row(
            &mut rows.messages,
            &[
                &app,
                &msg_id,
                &escape(event_type),
                &format!("{{{}}}", escape(endpoint_id)),
                &bytea(&record),
                payload,
                "\\N",
            ],
        );
        push_row(
            &mut rows.destinations,
            &[&app, &msg_id, &escape(endpoint_id), "0", "1", "\\N"],
        );
        let attempt_record =
            hookline_postgres::stored_attempt(&attempt).map_err(|e| e.to_string())?;
        push_row(
            &mut rows.attempts,
            &[
                &app,
                &attempt_id,
                &msg_id,
                &escape(endpoint_id),
                &bytea(&attempt_record),
            ],
        );
    }
    Ok(rows)
}

/// A `bytea` value in `COPY`'s text format (hex, its backslash escaped).
fn bytea(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(3 + bytes.len() * 2);
    text.push_str("\\\\x");
    for byte in bytes {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

fn at_ms(nanos: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `ms` (Unix) as RFC 3339, as the records show times.
pub fn rfc3339(ms: u64) -> String {
    rfc3339_nanos(i128::from(ms) * 1_000_000)
}

fn rfc3339_nanos(nanos: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn attempt_of(
    template: &Template,
    attempt_id: &str,
    msg_id: &str,
    endpoint_id: &str,
    url: &str,
    at: u64,
    event_type: &str,
) -> Attempt {
    let mut attempt = template.attempt.clone();
    attempt.id = attempt_id.to_owned();
    attempt.msg_id = msg_id.to_owned();
    attempt.endpoint_id = endpoint_id.to_owned();
    attempt.url = url.to_owned();
    // Nanoseconds, as a dispatcher's clock writes them.
    attempt.timestamp =
        at_ms(i128::from(at + ATTEMPT_AFTER_MS) * 1_000_000 + rand::random_range(1..1_000_000));
    event_type.clone_into(&mut attempt.event_type);
    attempt
        .request_headers
        .insert("webhook-id".into(), msg_id.to_owned());
    attempt
}

fn push_row(out: &mut Vec<u8>, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        out.extend_from_slice(field.as_bytes());
    }
    out.push(b'\n');
}

/// A value in `COPY`'s text format.
fn escape(text: &str) -> String {
    if !text.contains(['\\', '\t', '\n', '\r']) {
        return text.to_owned();
    }
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_is_hex_with_its_backslash_escaped_for_copy() {
        assert_eq!(bytea(&[0, 0x7b, 0xff]), "\\\\x007bff");
    }

    #[test]
    fn text_fields_are_escaped_for_copy() {
        assert_eq!(escape("a\tb\\c"), "a\\tb\\\\c");
        assert_eq!(escape("plain"), "plain");
    }
}
