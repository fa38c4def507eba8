//! docs/compatibility.md read as data: one row per operation.

use std::fmt;

/// What Hookline does with an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Supported,
    Partly,
    NotSupported,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub method: String,
    pub path: String,
    /// The SDK methods cell, as written (`py:message.create` `js:message.create`).
    pub sdk: String,
    pub status: Status,
    /// 1-based line in the file, for messages.
    pub line: usize,
}

impl Row {
    /// Served (supported or partly).
    pub fn served(&self) -> bool {
        self.status != Status::NotSupported
    }

    /// The operation's key: method and path with parameter names left out.
    pub fn key(&self) -> (String, String) {
        (self.method.clone(), shape(&self.path))
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (docs/compatibility.md line {}, {:?})",
            self.method, self.path, self.line, self.status
        )
    }
}

/// A path with every `{name}` written `{}`, so `{msg_id}` and `{message_id}` compare equal.
pub fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for ch in path.chars() {
        match ch {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(ch),
        }
    }
    out
}

/// Every row of every `| Method | Path | SDK methods | Status | Notes |` table in `text`.
pub fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let Some(inner) = line
            .trim()
            .strip_prefix('|')
            .and_then(|l| l.strip_suffix('|'))
        else {
            continue;
        };
        let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
        if cells
            .first()
            .is_some_and(|c| *c == "Method" || c.starts_with("---"))
        {
            continue;
        }
        let [method, path, sdk, status, _notes] = cells[..] else {
            return Err(format!(
                "line {line_no}: a row has 5 cells (method, path, SDK methods, status, notes): {line}"
            ));
        };
        let status = match status {
            "supported" => Status::Supported,
            "partly" => Status::Partly,
            "not supported" => Status::NotSupported,
            other => {
                return Err(format!(
                    "line {line_no}: status `{other}` is none of supported, partly, not supported"
                ))
            }
        };
        let path = path.trim_matches('`');
        if !path.starts_with('/') || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "line {line_no}: `{method} {path}` is not a method and a path"
            ));
        }
        rows.push(Row {
            method: method.to_owned(),
            path: path.to_owned(),
            sdk: sdk.to_owned(),
            status,
            line: line_no,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_and_bad_ones_named() {
        let text = "| Method | Path | SDK methods | Status | Notes |\n|---|---|---|---|---|\n\
            | GET | `/api/v1/app/{app_id}` | `py:application.get` | supported | |\n\
            | POST | `/api/v1/stream` | — | not supported | Streaming. |\n";
        let rows = parse(text).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].key(),
            ("GET".to_owned(), "/api/v1/app/{}".to_owned())
        );
        assert!(rows[0].served() && !rows[1].served());
        assert!(parse("| GET | `/x` | — | maybe | |").is_err());
    }
}
