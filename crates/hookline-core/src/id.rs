//! Prefixed identifiers that sort by creation time.
//!
//! An id is `<prefix>_<22 base62 chars>` encoding 48 bits of Unix milliseconds followed by
//! 80 random bits. Because the encoding is fixed-width and big-endian, comparing two ids of
//! the same prefix as strings compares their creation times; the Redis adapter relies on
//! this to paginate with lexicographic ranges instead of a second index.

use rand::RngCore;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Length of the base62 part of every id.
pub const BODY_LEN: usize = 22;

/// Creates a new id for `prefix` stamped with `unix_ms`.
pub fn new_id(prefix: &str, unix_ms: u64) -> String {
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    encode(prefix, unix_ms, random)
}

/// The smallest id of `prefix` created at `unix_ms`: a lower bound for time-range queries.
pub fn lower_bound(prefix: &str, unix_ms: u64) -> String {
    encode(prefix, unix_ms, [0u8; 10])
}

/// The smallest id of `prefix` created in the millisecond of `at` (the epoch for earlier
/// times).
pub fn lower_bound_at(prefix: &str, at: time::OffsetDateTime) -> String {
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    lower_bound(prefix, ms)
}

/// Reads the creation time back out of an id, if it is one of ours.
pub fn timestamp_ms(id: &str) -> Option<u64> {
    let (_, body) = id.rsplit_once('_')?;
    if body.len() != BODY_LEN {
        return None;
    }
    let mut value: u128 = 0;
    for byte in body.bytes() {
        let digit = ALPHABET.iter().position(|c| *c == byte)? as u128;
        value = value.checked_mul(62)?.checked_add(digit)?;
    }
    Some((value >> 80) as u64)
}

fn encode(prefix: &str, unix_ms: u64, random: [u8; 10]) -> String {
    let mut value: u128 = u128::from(unix_ms & 0xFFFF_FFFF_FFFF) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (8 * (9 - i));
    }
    let mut body = [b'0'; BODY_LEN];
    for slot in body.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    let mut out = String::with_capacity(prefix.len() + 1 + BODY_LEN);
    out.push_str(prefix);
    out.push('_');
    out.extend(body.iter().map(|b| *b as char));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let early = new_id("msg", 1_700_000_000_000);
        let late = new_id("msg", 1_700_000_000_001);
        assert!(early < late);
        assert_eq!(timestamp_ms(&early), Some(1_700_000_000_000));
        assert!(early.starts_with("msg_"));
        assert_eq!(early.len(), 4 + BODY_LEN);
        assert!(lower_bound("msg", 1_700_000_000_001) <= late);
        assert!(lower_bound("msg", 1_700_000_000_001) > early);
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(
            lower_bound_at("msg", at),
            lower_bound("msg", 1_700_000_000_000)
        );
    }

    #[test]
    fn foreign_ids_have_no_timestamp() {
        assert_eq!(timestamp_ms("my-uid"), None);
        assert_eq!(timestamp_ms("msg_short"), None);
    }
}
