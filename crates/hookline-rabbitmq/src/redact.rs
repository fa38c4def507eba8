//! Keeps credentials out of logs and errors.

/// `url` with its userinfo (`user:password@`) replaced by `***@`, for logs and errors.
///
/// Works on any `scheme://authority/...` string without parsing it, so even a URL the AMQP
/// parser refuses is shown safely.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL at all: it may still hold a secret, so show nothing of it.
        return "<unparseable url>".to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    match authority.rfind('@') {
        Some(at) => format!(
            "{}***@{}",
            &url[..authority_start],
            &url[authority_start + at + 1..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_userinfo_only() {
        let cases = [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://***@127.0.0.1:5672/%2f",
            ),
            (
                "amqps://u:p@w@host/vh?heartbeat=10",
                "amqps://***@host/vh?heartbeat=10",
            ),
            ("amqp://127.0.0.1:5672", "amqp://127.0.0.1:5672"),
            ("amqp://host/path@notuser", "amqp://host/path@notuser"),
            ("user:pass@host", "<unparseable url>"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }
}
