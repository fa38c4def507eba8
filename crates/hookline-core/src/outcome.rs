//! What one HTTP attempt's result means for the task.

use serde::{Deserialize, Serialize};

/// Why an attempt produced no HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportError {
    /// No response within the configured timeout.
    Timeout,
    /// The TCP connection could not be made (refused, unreachable, DNS).
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// The destination address is not allowed (SSRF protection).
    Blocked,
    /// Not attempted: the endpoint's circuit breaker is open after repeated failures.
    CircuitOpen,
    /// The receiver reset or closed the connection before its response arrived.
    Reset,
    /// The endpoint's OAuth2 token could not be had: the token endpoint failed, refused the
    /// client or answered without a token. The delivery itself was not sent.
    Token,
    /// Anything else that broke the exchange (a protocol error, a malformed response).
    Other,
}

/// What happened to an attempt, as the dispatcher reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The endpoint answered with this status code.
    Status(u16),
    /// The exchange failed before a status arrived.
    Transport(TransportError),
}

/// What the dispatcher must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: any 2xx.
    Delivered,
    /// Try again later, per the retry schedule.
    Retry,
    /// 410 Gone: the receiver asks never to be called again; disable the endpoint.
    Gone,
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date, relative to
/// `now`. Only honoured on 429 and 503, where the header means "come back later".
pub fn retry_after(
    status: u16,
    value: &str,
    now: std::time::SystemTime,
) -> Option<std::time::Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(std::time::Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Classifies an attempt: 2xx delivers, 410 disables, everything else retries.
pub fn classify(result: AttemptResult) -> Verdict {
    match result {
        AttemptResult::Status(code) if (200..300).contains(&code) => Verdict::Delivered,
        AttemptResult::Status(410) => Verdict::Gone,
        _ => Verdict::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_http_date_on_429_and_503_only() {
        use std::time::{Duration, SystemTime};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after(503, "120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after(429, "Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(500, "120", now), None);
        assert_eq!(retry_after(503, "soon", now), None);
    }

    #[test]
    fn classification_table() {
        let table = [
            (AttemptResult::Status(200), Verdict::Delivered),
            (AttemptResult::Status(204), Verdict::Delivered),
            (AttemptResult::Status(299), Verdict::Delivered),
            (AttemptResult::Status(301), Verdict::Retry),
            (AttemptResult::Status(410), Verdict::Gone),
            (AttemptResult::Status(429), Verdict::Retry),
            (AttemptResult::Status(500), Verdict::Retry),
            (
                AttemptResult::Transport(TransportError::Timeout),
                Verdict::Retry,
            ),
            (
                AttemptResult::Transport(TransportError::Blocked),
                Verdict::Retry,
            ),
        ];
        for (result, verdict) in table {
            assert_eq!(classify(result), verdict, "{result:?}");
        }
    }
}
