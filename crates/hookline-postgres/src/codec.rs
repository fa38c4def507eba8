//! How the log's JSON records and payloads are stored: zstd-compressed against a dictionary
//! of their common shape.
//!
//! A record of a few hundred bytes barely compresses on its own, and PostgreSQL only
//! compresses rows past about 2 kB; but most of an attempt's bytes are the same in every
//! attempt (field names, header names, the user agent). zstd with a raw-content dictionary
//! of one typical record removes those and keeps what differs. The first byte names the
//! form, so a dictionary can be replaced later without rewriting old rows: add a new form,
//! keep decoding the old ones.

use std::cell::RefCell;
use std::io::Read;
use std::sync::LazyLock;

use hookline_core::ports::StoreError;
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// Stored as written (an expunged payload, `{}`, is written this way by SQL too).
const PLAIN: u8 = 0;
/// zstd with the attempt dictionary, version 1.
const ATTEMPT_V1: u8 = 1;
/// zstd with the message dictionary, version 1.
const MESSAGE_V1: u8 = 2;
/// zstd with the payload dictionary, version 1.
const PAYLOAD_V1: u8 = 3;

const LEVEL: i32 = 3;

/// What a text is, which picks its dictionary.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Attempt,
    Message,
    Payload,
}

impl Kind {
    fn form(self) -> u8 {
        match self {
            Self::Attempt => ATTEMPT_V1,
            Self::Message => MESSAGE_V1,
            Self::Payload => PAYLOAD_V1,
        }
    }
}

/// One typical attempt record as stored (without the ids its columns hold).
const ATTEMPT_SAMPLE: &str = r#"{"attemptNumber":1,"error":null,"eventType":"invoice.paid","requestHeaders":{"content-type":"application/json","user-agent":"Hookline/0.1.0","webhook-id":"msg_0358qSCKY5GeYUX1G0WpbQ","webhook-signature":"v1,JWHJnSDocrf1I0CArL9heJwKghgZk/9ow0KdxTc9BKI=","webhook-timestamp":"1796387870"},"response":"","responseDurationMs":3,"responseHeaders":{"content-length":"0","content-type":"application/json","date":"Fri, 04 Dec 2026 12:37:50 GMT","server":"nginx"},"responseStatusCode":200,"status":"success","timestamp":"2026-12-04T12:37:50.993427832Z","triggerType":"scheduled","url":"https://"}{"attemptNumber":2,"error":{"kind":"timeout","message":"the endpoint did not answer in time"},"status":"fail","responseStatusCode":0,"triggerType":"manual","responseHeaders":{}}"#;

/// One typical message record as stored (without id, app and payload).
const MESSAGE_SAMPLE: &str = r#"{"channels":null,"eventId":null,"eventType":"invoice.paid","tags":[],"deliverAt":"2026-12-04T12:37:50.955Z","timestamp":"2026-12-04T12:37:50.955Z"}"#;

/// The keys and words webhook payloads commonly carry.
const PAYLOAD_SAMPLE: &str = r#"{"id":"","object":"event","type":"invoice.paid","event_type":"","created":1796387870,"created_at":"2026-12-04T12:37:50Z","updated_at":"2026-12-04T12:37:50Z","data":{"object":{"id":"in_","object":"invoice","customer":"cus_","customer_email":"@example.com","email":"","name":"","description":"","currency":"usd","amount":0,"amount_due":0,"amount_paid":0,"total":0,"subtotal":0,"quantity":1,"status":"paid","number":"INV-","subscription":"sub_","price":"price_","lines":[{"id":"il_","price":"price_","description":"","quantity":1,"amount":0}],"metadata":{},"livemode":false,"true":true,"null":null}}}"#;

fn sample(form: u8) -> &'static [u8] {
    match form {
        ATTEMPT_V1 => ATTEMPT_SAMPLE.as_bytes(),
        MESSAGE_V1 => MESSAGE_SAMPLE.as_bytes(),
        _ => PAYLOAD_SAMPLE.as_bytes(),
    }
}

static ENCODERS: LazyLock<[EncoderDictionary<'static>; 3]> = LazyLock::new(|| {
    [ATTEMPT_V1, MESSAGE_V1, PAYLOAD_V1].map(|form| EncoderDictionary::copy(sample(form), LEVEL))
});

static DECODERS: LazyLock<[DecoderDictionary<'static>; 3]> = LazyLock::new(|| {
    [ATTEMPT_V1, MESSAGE_V1, PAYLOAD_V1].map(|form| DecoderDictionary::copy(sample(form)))
});

fn slot(form: u8) -> usize {
    usize::from(form.saturating_sub(ATTEMPT_V1)).min(2)
}

thread_local! {
    // A compression context is worth keeping: making one costs more than compressing a
    // record.
    static COMPRESSORS: RefCell<Vec<Option<zstd::bulk::Compressor<'static>>>> =
        RefCell::new(vec![None, None, None]);
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

/// `text` in its stored form.
pub(crate) fn pack(kind: Kind, text: &str) -> Result<Vec<u8>, StoreError> {
    let form = kind.form();
    let compressed = COMPRESSORS.with(|cell| {
        let mut compressors = cell.borrow_mut();
        let entry = &mut compressors[slot(form)];
        if entry.is_none() {
            let dictionary = &ENCODERS[slot(form)];
            *entry = Some(
                zstd::bulk::Compressor::with_prepared_dictionary(dictionary)
                    .map_err(|e| corrupt("compressor", e))?,
            );
        }
        match entry.as_mut() {
            Some(compressor) => compressor
                .compress(text.as_bytes())
                .map_err(|e| corrupt("compressing a record", e)),
            None => Err(corrupt("compressor", "missing")),
        }
    })?;
    let mut stored = Vec::with_capacity(compressed.len() + 1);
    if compressed.len() < text.len() {
        stored.push(form);
        stored.extend_from_slice(&compressed);
    } else {
        stored.push(PLAIN);
        stored.extend_from_slice(text.as_bytes());
    }
    Ok(stored)
}

/// The text of a stored record.
pub(crate) fn unpack(stored: &[u8]) -> Result<String, StoreError> {
    let Some((&form, body)) = stored.split_first() else {
        return Err(corrupt("a stored record", "empty"));
    };
    if form == PLAIN {
        return String::from_utf8(body.to_vec()).map_err(|e| corrupt("a stored record", e));
    }
    if !matches!(form, ATTEMPT_V1 | MESSAGE_V1 | PAYLOAD_V1) {
        return Err(corrupt("a stored record", format!("unknown form {form}")));
    }
    let mut text = String::new();
    zstd::stream::Decoder::with_prepared_dictionary(body, &DECODERS[slot(form)])
        .and_then(|mut decoder| decoder.read_to_string(&mut text))
        .map_err(|e| corrupt("decompressing a record", e))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_written_and_shrinks() {
        let attempt = ATTEMPT_SAMPLE.replace("msg_0358qSCKY5GeYUX1G0WpbQ", "msg_other");
        // Records are mostly their shape, which the dictionary holds; a payload is mostly
        // its own data.
        let payload = r#"{"id":"in_1","amount":12,"currency":"eur"}"#;
        for (kind, text, at_most) in [
            (Kind::Attempt, attempt.as_str(), attempt.len() / 2),
            (Kind::Message, MESSAGE_SAMPLE, MESSAGE_SAMPLE.len() / 2),
            (Kind::Payload, payload, payload.len() - 1),
        ] {
            let stored = pack(kind, text).expect("pack");
            assert_eq!(unpack(&stored).expect("unpack"), text);
            assert!(
                stored.len() <= at_most,
                "{kind:?}: {} of {}",
                stored.len(),
                text.len()
            );
        }
    }

    #[test]
    fn what_does_not_compress_is_stored_plain() {
        let stored = pack(Kind::Payload, "{}").expect("pack");
        assert_eq!(stored, b"\x00{}");
        assert_eq!(unpack(&stored).expect("unpack"), "{}");
        assert!(unpack(&[9, 1, 2]).is_err());
        assert!(unpack(&[]).is_err());
    }
}
