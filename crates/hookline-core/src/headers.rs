//! Custom headers an endpoint owner adds to every delivery, and the rules they must follow.
//!
//! Names follow the HTTP token grammar and Svix's limits; names Hookline itself sets (the
//! signature headers, framing headers) are reserved so a custom header can never forge a
//! signature or break the request.

use std::collections::BTreeMap;

/// Longest header name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Longest header value accepted.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most custom headers one endpoint may have.
pub const MAX_HEADERS: usize = 20;

const RESERVED: [&str; 14] = [
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "user-agent",
    "proxy-authorization",
    "proxy-connection",
    "expect",
];
const RESERVED_PREFIXES: [&str; 3] = ["webhook-", "svix-", "x-forwarded-"];

/// A header that breaks the rules, with the name it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("at most {MAX_HEADERS} headers")]
    TooMany,
    #[error("`{0}` is not a valid header name (letters, digits and !#$%&'*+-.^_`|~, at most {MAX_NAME_LEN})")]
    BadName(String),
    #[error("`{0}` is set by Hookline and cannot be overridden")]
    Reserved(String),
    #[error(
        "the value of `{0}` must be visible ASCII or spaces, at most {MAX_VALUE_LEN} characters"
    )]
    BadValue(String),
}

/// Checks one header; names are compared case-insensitively and stored lowercase.
pub fn check(name: &str, value: &str) -> Result<String, HeaderError> {
    let lower = name.to_ascii_lowercase();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if lower.is_empty() || lower.len() > MAX_NAME_LEN || !lower.bytes().all(token) {
        return Err(HeaderError::BadName(name.to_owned()));
    }
    if RESERVED.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        return Err(HeaderError::Reserved(name.to_owned()));
    }
    let visible = |b: u8| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b);
    if value.len() > MAX_VALUE_LEN || !value.bytes().all(visible) {
        return Err(HeaderError::BadValue(name.to_owned()));
    }
    Ok(lower)
}

/// Checks a whole set, answering it with lowercase names.
pub fn check_all(
    headers: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, HeaderError> {
    if headers.len() > MAX_HEADERS {
        return Err(HeaderError::TooMany);
    }
    headers
        .into_iter()
        .map(|(name, value)| check(&name, &value).map(|name| (name, value)))
        .collect()
}

/// What the attempt log shows in place of a sensitive header's value.
pub const REDACTED: &str = "[redacted]";

/// Whether a header's value is a credential that the attempt log must not keep: the
/// endpoint's owner set it to authenticate to their receiver, and the log is readable by
/// anyone with an app token.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization"
        || name == "cookie"
        || ["token", "secret", "password", "api-key", "apikey", "auth"]
            .iter()
            .any(|word| name.contains(word))
}

/// Request headers as the attempt log keeps them: names lowercase, credentials redacted.
pub fn redacted<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .map(|(name, value)| {
            let value = if is_sensitive(name) { REDACTED } else { value };
            (name.to_ascii_lowercase(), value.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_for_the_attempt_log() {
        let log = redacted([
            ("Authorization", "Bearer abc"),
            ("x-api-key", "k"),
            ("X-Partner-Token", "t"),
            ("webhook-signature", "v1,xyz"),
            ("x-tenant", "acme"),
        ]);
        assert_eq!(log["authorization"], REDACTED);
        assert_eq!(log["x-api-key"], REDACTED);
        assert_eq!(log["x-partner-token"], REDACTED);
        assert_eq!(log["webhook-signature"], "v1,xyz");
        assert_eq!(log["x-tenant"], "acme");
    }

    #[test]
    fn rules_for_names_and_values() {
        assert_eq!(check("X-Tenant", "acme"), Ok("x-tenant".into()));
        assert_eq!(
            check("Authorization", "Bearer abc"),
            Ok("authorization".into())
        );
        assert!(matches!(
            check("webhook-signature", "v1,x"),
            Err(HeaderError::Reserved(_))
        ));
        assert!(matches!(
            check("Svix-Id", "x"),
            Err(HeaderError::Reserved(_))
        ));
        assert!(matches!(
            check("Host", "evil"),
            Err(HeaderError::Reserved(_))
        ));
        assert!(matches!(
            check("bad name", "x"),
            Err(HeaderError::BadName(_))
        ));
        assert!(matches!(check("", "x"), Err(HeaderError::BadName(_))));
        assert!(matches!(
            check("x-a", "line\nbreak"),
            Err(HeaderError::BadValue(_))
        ));
        assert!(matches!(
            check("x-a", &"v".repeat(5000)),
            Err(HeaderError::BadValue(_))
        ));
        let many = (0..21)
            .map(|n| (format!("x-{n}"), "v".to_owned()))
            .collect();
        assert_eq!(check_all(many), Err(HeaderError::TooMany));
    }
}
