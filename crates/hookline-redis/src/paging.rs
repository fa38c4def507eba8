//! Paging over sorted sets of time-ordered ids (all scores zero, ordered lexicographically).

use crate::connection::Conn;
use hookline_core::ports::{Page, PageRequest, StoreError};

use crate::unavailable;

/// Largest page a caller may ask for.
pub const MAX_LIMIT: usize = 250;

/// Reads one page of ids from `index`, plus whether more follow.
pub async fn page_ids(
    conn: &mut Conn,
    index: &str,
    request: &PageRequest,
) -> Result<(Vec<String>, bool), StoreError> {
    let limit = request.limit.clamp(1, MAX_LIMIT);
    let mut cmd = if request.ascending {
        let mut cmd = redis::cmd("ZRANGEBYLEX");
        cmd.arg(index)
            .arg(bound(request.iterator.as_deref(), "-"))
            .arg("+");
        cmd
    } else {
        let mut cmd = redis::cmd("ZREVRANGEBYLEX");
        cmd.arg(index)
            .arg(bound(request.iterator.as_deref(), "+"))
            .arg("-");
        cmd
    };
    cmd.arg("LIMIT").arg(0).arg(limit + 1);
    let mut ids: Vec<String> = cmd.query_async(conn).await.map_err(unavailable)?;
    let more = ids.len() > limit;
    ids.truncate(limit);
    Ok((ids, more))
}

fn bound(iterator: Option<&str>, open: &str) -> String {
    match iterator {
        Some(id) => format!("({id}"),
        None => open.to_owned(),
    }
}

/// Assembles a page from decoded items; `last_id` is the id of the last index entry read,
/// which is the iterator even when that entry's record has expired.
pub fn page<T>(
    items: Vec<T>,
    last_id: Option<String>,
    more: bool,
    first_id: Option<String>,
) -> Page<T> {
    Page {
        items,
        iterator: if more { last_id } else { None },
        prev_iterator: first_id,
        done: !more,
    }
}

/// Reads and decodes the records at `keys` (one slot) in one MGET, skipping expired ones.
pub async fn read_records<T: serde::de::DeserializeOwned>(
    conn: &mut Conn,
    keys: &[String],
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let bodies: Vec<Option<String>> = redis::cmd("MGET")
        .arg(keys)
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    bodies
        .iter()
        .flatten()
        .map(|body| crate::decode(what, body))
        .collect()
}
