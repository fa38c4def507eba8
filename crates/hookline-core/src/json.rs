//! The payload minifier: Hookline stores and delivers each payload byte for byte as it was
//! minified once at ingest, so signatures computed by any receiver match.

/// Removes insignificant whitespace from `json`, which must already be valid JSON.
///
/// Works on the text rather than re-serialising a parsed value so that number precision,
/// key order and string escapes survive exactly as the producer wrote them.
pub fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in json.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !matches!(ch, ' ' | '\n' | '\r' | '\t') {
            out.push(ch);
        }
    }
    out
}

/// Depth of the deepest object or array nesting in valid JSON text.
pub fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for byte in json.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings_numbers_and_order() {
        let cases = [
            ("{ \"b\": 1, \"a\" : [1, 2 ,3] }", "{\"b\":1,\"a\":[1,2,3]}"),
            ("{\"s\": \"a b \\\" c\"}", "{\"s\":\"a b \\\" c\"}"),
            (
                "{\"n\": 1.50000000000000000001e3}",
                "{\"n\":1.50000000000000000001e3}",
            ),
            ("\n\t{ }\r\n", "{}"),
            (
                "{\"k\": \"back\\\\\" , \"x\" : 1}",
                "{\"k\":\"back\\\\\",\"x\":1}",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(minify(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth("{\"a\":[{\"b\":\"[[[\"}]}"), 3);
        assert_eq!(nesting_depth("1"), 0);
    }
}
