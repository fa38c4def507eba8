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
use hookline_postgres::PgLog;
use indicatif::ProgressBar;
use serde_json::Value;
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
    message_record: String,
    msg_id: String,
    msg_timestamp: String,
    msg_event_type: String,
    attempt_record: String,
    attempt_id: String,
    attempt_timestamp: String,
    endpoint_id: String,
    url: String,
}

impl Template {
    /// The message `msg_id` and its attempt to `endpoint_id`, once both are in the log.
    pub async fn read(
        log: &PgLog,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<Self>, String> {
        let client = log.raw().await.map_err(|e| e.to_string())?;
        let message = client
            .query_opt(
                "SELECT record FROM messages WHERE app_id = $1 AND id = $2",
                &[&app_id, &msg_id],
            )
            .await
            .map_err(|e| e.to_string())?;
        let attempt = client
            .query_opt(
                "SELECT record FROM attempts WHERE app_id = $1 AND msg_id = $2 AND endpoint_id = $3
                 ORDER BY id LIMIT 1",
                &[&app_id, &msg_id, &endpoint_id],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (Some(message), Some(attempt)) = (message, attempt) else {
            return Ok(None);
        };
        Self::from_records(message.get(0), attempt.get(0)).map(Some)
    }

    fn from_records(message_record: String, attempt_record: String) -> Result<Self, String> {
        let message: Value = serde_json::from_str(&message_record).map_err(|e| e.to_string())?;
        let attempt: Value = serde_json::from_str(&attempt_record).map_err(|e| e.to_string())?;
        let field = |value: &Value, name: &str| {
            value[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("a logged record without {name}"))
        };
        Ok(Self {
            msg_id: field(&message, "id")?,
            msg_timestamp: field(&message, "timestamp")?,
            msg_event_type: field(&message, "eventType")?,
            attempt_id: field(&attempt, "id")?,
            attempt_timestamp: field(&attempt, "timestamp")?,
            endpoint_id: field(&attempt, "endpointId")?,
            url: field(&attempt, "url")?,
            message_record,
            attempt_record,
        })
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
                    .map_err(|e| e.to_string())?;
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
                "COPY messages (app_id, id, event_type, record, payload, payload_until) FROM STDIN",
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

fn encode(spec: &Spec, template: &Template, range: Range<usize>) -> Rows {
    let mut rows = Rows {
        messages: Vec::with_capacity(range.len() * (spec.payload.len() + 400)),
        destinations: Vec::with_capacity(range.len() * 120),
        attempts: Vec::with_capacity(range.len() * (template.attempt_record.len() + 120)),
    };
    let payload = escape(&spec.payload);
    let app = escape(&spec.app_id);
    for i in range {
        let at = spec.created_ms(i);
        let msg_id = id::new_id("msg", at);
        let attempt_id = id::new_id("atmpt", at + ATTEMPT_AFTER_MS);
        let (endpoint_id, url) = &spec.endpoints[i % spec.endpoints.len().max(1)];
        let event_type = &spec.event_types[rand::random_range(0..spec.event_types.len().max(1))];
        let message = message_record(template, &msg_id, at, event_type);
        let attempt = attempt_record(
            template,
            &attempt_id,
            &msg_id,
            endpoint_id,
            url,
            at,
            event_type,
        );
        push_row(
            &mut rows.messages,
            &[
                &app,
                &msg_id,
                &escape(event_type),
                &escape(&message),
                &payload,
                "\\N",
            ],
        );
        push_row(
            &mut rows.destinations,
            &[&app, &msg_id, &escape(endpoint_id), "0", "1", "\\N"],
        );
        push_row(
            &mut rows.attempts,
            &[
                &app,
                &attempt_id,
                &msg_id,
                &escape(endpoint_id),
                &escape(&attempt),
            ],
        );
    }
    rows
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

fn message_record(template: &Template, msg_id: &str, at: u64, event_type: &str) -> String {
    template
        .message_record
        .replace(&template.msg_id, msg_id)
        .replace(
            &format!("\"timestamp\":\"{}\"", template.msg_timestamp),
            &format!("\"timestamp\":\"{}\"", rfc3339(at)),
        )
        .replace(
            &format!("\"eventType\":\"{}\"", template.msg_event_type),
            &format!("\"eventType\":\"{event_type}\""),
        )
}

fn attempt_record(
    template: &Template,
    attempt_id: &str,
    msg_id: &str,
    endpoint_id: &str,
    url: &str,
    at: u64,
    event_type: &str,
) -> String {
    template
        .attempt_record
        .replace(&template.attempt_id, attempt_id)
        .replace(&template.msg_id, msg_id)
        .replace(&template.endpoint_id, endpoint_id)
        .replace(&format!("\"{}\"", template.url), &format!("\"{url}\""))
        .replace(
            &format!("\"timestamp\":\"{}\"", template.attempt_timestamp),
            // Nanoseconds, as a dispatcher's clock writes them.
            &format!(
                "\"timestamp\":\"{}\"",
                rfc3339_nanos(
                    i128::from(at + ATTEMPT_AFTER_MS) * 1_000_000
                        + rand::random_range(1..1_000_000)
                )
            ),
        )
        .replace(
            &format!("\"eventType\":\"{}\"", template.msg_event_type),
            &format!("\"eventType\":\"{event_type}\""),
        )
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
    use hookline_core::model::{Attempt, Message};

    fn template() -> Template {
        let message = r#"{"appId":"app_T","channels":null,"eventId":null,"eventType":"bench.event","id":"msg_0358qbkWhyer9cE9t47bI6","payload":null,"timestamp":"2026-12-04T12:44:07.608Z"}"#;
        let attempt = r#"{"id":"atmpt_0358qbkXfuLJGS0PFH2qJH","appId":"app_T","msgId":"msg_0358qbkWhyer9cE9t47bI6","endpointId":"ep_0358qbkWf3IQvCyK2e3xOP","url":"http://127.0.0.1:38417/s9-9","attemptNumber":1,"status":"success","responseStatusCode":200,"response":"","responseDurationMs":1,"error":null,"triggerType":"scheduled","timestamp":"2026-12-04T12:44:07.617052297Z","eventType":"bench.event","requestHeaders":{"content-type":"application/json","webhook-id":"msg_0358qbkWhyer9cE9t47bI6"},"responseHeaders":{"content-length":"0"}}"#;
        Template::from_records(message.into(), attempt.into()).expect("a template")
    }

    fn lines(data: &[u8]) -> Vec<Vec<String>> {
        String::from_utf8_lossy(data)
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn fixture_rows_are_the_templates_with_their_own_ids_times_types_and_endpoints() {
        let from_ms = 1_796_000_000_000;
        let spec = Spec {
            app_id: "app_T".into(),
            endpoints: vec![
                ("ep_A".into(), "http://h/a".into()),
                ("ep_B".into(), "http://h/b".into()),
            ],
            event_types: vec!["t.one".into()],
            messages: 4,
            from_ms,
            span_ms: 86_400_000,
            payload: r#"{"data":"a\tb"}"#.into(),
        };
        let rows = encode(&spec, &template(), 0..4);
        let (messages, destinations, attempts) = (
            lines(&rows.messages),
            lines(&rows.destinations),
            lines(&rows.attempts),
        );
        assert_eq!(
            (messages.len(), destinations.len(), attempts.len()),
            (4, 4, 4)
        );
        for (i, ((m, d), a)) in messages
            .iter()
            .zip(&destinations)
            .zip(&attempts)
            .enumerate()
        {
            let at = spec.created_ms(i);
            assert_eq!(m.len(), 6);
            assert_eq!(m[4], r#"{"data":"a\\tb"}"#, "escaped for COPY");
            assert_eq!(m[5], "\\N");
            let message: Message = serde_json::from_str(&m[3]).expect("a Message");
            assert_eq!(message.id, m[1]);
            assert_eq!(id::timestamp_ms(&message.id), Some(at));
            assert_eq!(message.event_type.as_str(), "t.one");
            assert_eq!(
                u64::try_from(message.timestamp.unix_timestamp_nanos() / 1_000_000).ok(),
                Some(at)
            );
            let attempt: Attempt = serde_json::from_str(&a[4]).expect("an Attempt");
            assert_eq!(
                (attempt.id.as_str(), attempt.msg_id.as_str()),
                (a[1].as_str(), m[1].as_str())
            );
            assert_eq!(attempt.endpoint_id, spec.endpoints[i % 2].0);
            assert_eq!(attempt.url, spec.endpoints[i % 2].1);
            assert_eq!(attempt.request_headers["webhook-id"], message.id);
            assert_eq!(id::timestamp_ms(&attempt.id), Some(at + ATTEMPT_AFTER_MS));
            assert_eq!(
                d,
                &vec![
                    m[0].clone(),
                    m[1].clone(),
                    a[3].clone(),
                    "0".into(),
                    "1".into(),
                    "\\N".into()
                ]
            );
        }
        assert!(
            messages.windows(2).all(|w| w[0][1] < w[1][1]),
            "ids in time order"
        );
        assert!(
            spec.created_ms(4) - from_ms == spec.span_ms,
            "spread over the span"
        );
    }
}
