//! Keyed records with an optional expiry, and sorted indexes, in the `records` table.
//!
//! A record's value is its expiry (8 bytes, big-endian unix ms; 0 for never) followed by its
//! JSON body. An index entry is a record under `index ‖ \0 ‖ id` with an empty body, so an
//! index reads in id order with a key range, and ids sort by creation time.

use std::ops::Bound;

use hookline_core::ports::{Page, PageRequest, StoreError};
use redb::{ReadableTable, Table};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::db::{unavailable, EXPIRY, RECORDS};

/// Largest page a caller may ask for (the same as the Redis adapter's).
pub(crate) const MAX_LIMIT: usize = 250;

/// The `records` table opened for writing, with the expiry index beside it.
pub(crate) struct Writer<'t> {
    pub records: Table<'t, &'static str, &'static [u8]>,
    expiry: Table<'t, (u64, &'static str), ()>,
    pub now_ms: u64,
}

impl<'t> Writer<'t> {
    pub(crate) fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            records: txn.open_table(RECORDS).map_err(unavailable)?,
            expiry: txn.open_table(EXPIRY).map_err(unavailable)?,
            now_ms: crate::db::now_ms(),
        })
    }

    /// Stores `value` under `key`, to expire after `ttl_secs` (`None`: kept).
    pub(crate) fn put<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
        ttl_secs: Option<u64>,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let expires = ttl_secs.map(|secs| self.now_ms.saturating_add(secs.max(1) * 1000));
        self.put_raw(key, &body, expires)
    }

    /// Stores a body already encoded as JSON under `key`, to expire after `ttl_secs`: lets
    /// a caller encode before its operation reaches the writer thread, which every write
    /// shares.
    pub(crate) fn put_encoded(
        &mut self,
        key: &str,
        body: &[u8],
        ttl_secs: Option<u64>,
    ) -> Result<(), StoreError> {
        let expires = ttl_secs.map(|secs| self.now_ms.saturating_add(secs.max(1) * 1000));
        self.put_raw(key, body, expires)
    }

    /// Stores `value` under `key` until `expires_ms` (unix ms), or for good.
    pub(crate) fn put_until<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_raw(key, &body, Some(expires_ms.max(1)))
    }

    /// Replaces the body of a live record, keeping its expiry; `false` if it is gone.
    pub(crate) fn replace<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<bool, StoreError> {
        let expires = match self.records.get(key).map_err(unavailable)? {
            Some(stored) => match split(stored.value())? {
                (expires, _) if live(expires, self.now_ms) => expires,
                _ => return Ok(false),
            },
            None => return Ok(false),
        };
        let body = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.put_raw(key, &body, (expires != 0).then_some(expires))?;
        Ok(true)
    }

    /// Adds `id` to `index`, expiring with the record it points at.
    pub(crate) fn index(
        &mut self,
        index: &str,
        id: &str,
        ttl_secs: Option<u64>,
    ) -> Result<(), StoreError> {
        let expires = ttl_secs.map(|secs| self.now_ms.saturating_add(secs.max(1) * 1000));
        self.put_raw(&index_key(index, id), &[], expires)
    }

    pub(crate) fn unindex(&mut self, index: &str, id: &str) -> Result<(), StoreError> {
        self.delete(&index_key(index, id))
    }

    fn put_raw(&mut self, key: &str, body: &[u8], expires: Option<u64>) -> Result<(), StoreError> {
        let expires = expires.unwrap_or(0);
        let mut value = Vec::with_capacity(8 + body.len());
        value.extend_from_slice(&expires.to_be_bytes());
        value.extend_from_slice(body);
        self.records
            .insert(key, value.as_slice())
            .map_err(unavailable)?;
        if expires != 0 {
            self.expiry
                .insert((expires, key), ())
                .map_err(unavailable)?;
        }
        Ok(())
    }

    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        get(&self.records, key, self.now_ms, what)
    }

    pub(crate) fn delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.records.remove(key).map_err(unavailable)?;
        Ok(())
    }

    /// Deletes every record whose key starts with `prefix`.
    pub(crate) fn delete_prefix(&mut self, prefix: &str) -> Result<(), StoreError> {
        let end = prefix_end(prefix);
        self.records
            .retain_in(prefix..end.as_str(), |_, _| false)
            .map_err(unavailable)
    }

    /// Deletes records whose expiry has passed, at most `limit` of them; answers how many
    /// expiry entries it went through.
    pub(crate) fn expire(&mut self, limit: usize) -> Result<usize, StoreError> {
        let mut due = Vec::new();
        for entry in self
            .expiry
            .range(..(self.now_ms, ""))
            .map_err(unavailable)?
            .take(limit)
        {
            let (key, _) = entry.map_err(unavailable)?;
            let (at, name) = key.value();
            due.push((at, name.to_owned()));
        }
        for (at, key) in &due {
            self.expiry
                .remove((*at, key.as_str()))
                .map_err(unavailable)?;
            // The record may have been written again with a later expiry since.
            let expired = match self.records.get(key.as_str()).map_err(unavailable)? {
                Some(stored) => !live(split(stored.value())?.0, self.now_ms),
                None => false,
            };
            if expired {
                self.records.remove(key.as_str()).map_err(unavailable)?;
            }
        }
        Ok(due.len())
    }
}

/// Reads a live record and decodes it.
pub(crate) fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
    now_ms: u64,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    let Some(stored) = table.get(key).map_err(unavailable)? else {
        return Ok(None);
    };
    let (expires, body) = split(stored.value())?;
    if !live(expires, now_ms) {
        return Ok(None);
    }
    decode(what, body).map(Some)
}

/// Every live record under `prefix`, in key order.
pub(crate) fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    now_ms: u64,
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    let end = prefix_end(prefix);
    let mut out = Vec::new();
    for entry in table.range(prefix..end.as_str()).map_err(unavailable)? {
        let (_, stored) = entry.map_err(unavailable)?;
        let (expires, body) = split(stored.value())?;
        if live(expires, now_ms) {
            out.push(decode(what, body)?);
        }
    }
    Ok(out)
}

/// Every live record under `prefix` with its key, in key order.
pub(crate) fn scan_keyed<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    now_ms: u64,
    what: &'static str,
) -> Result<Vec<(String, T)>, StoreError> {
    let end = prefix_end(prefix);
    let mut out = Vec::new();
    for entry in table.range(prefix..end.as_str()).map_err(unavailable)? {
        let (key, stored) = entry.map_err(unavailable)?;
        let (expires, body) = split(stored.value())?;
        if live(expires, now_ms) {
            out.push((key.value().to_owned(), decode(what, body)?));
        }
    }
    Ok(out)
}

/// One page of ids from `index`, and whether more follow.
pub(crate) fn page_ids(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    index: &str,
    request: &PageRequest,
    now_ms: u64,
) -> Result<(Vec<String>, bool), StoreError> {
    let limit = request.limit.clamp(1, MAX_LIMIT);
    let start = index_key(index, "");
    let end = prefix_end(&start);
    let after = request.iterator.as_deref().map(|id| index_key(index, id));
    // Exclusive of the iterator's own entry, in the direction of travel.
    let (lower, upper) = match (&after, request.ascending) {
        (Some(after), true) => (
            Bound::Excluded(after.as_str()),
            Bound::Excluded(end.as_str()),
        ),
        (Some(after), false) => (
            Bound::Included(start.as_str()),
            Bound::Excluded(after.as_str()),
        ),
        (None, _) => (
            Bound::Included(start.as_str()),
            Bound::Excluded(end.as_str()),
        ),
    };
    let range = table.range::<&str>((lower, upper)).map_err(unavailable)?;
    let entries: Box<dyn Iterator<Item = _>> = if request.ascending {
        Box::new(range)
    } else {
        Box::new(range.rev())
    };
    let mut ids = Vec::with_capacity(limit + 1);
    for entry in entries {
        let (key, stored) = entry.map_err(unavailable)?;
        if live(split(stored.value())?.0, now_ms) {
            ids.push(key.value()[start.len()..].to_owned());
            if ids.len() > limit {
                break;
            }
        }
    }
    let more = ids.len() > limit;
    ids.truncate(limit);
    Ok((ids, more))
}

/// Every live id in `index`, in order.
pub(crate) fn index_ids(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    index: &str,
    now_ms: u64,
) -> Result<Vec<String>, StoreError> {
    let start = index_key(index, "");
    let end = prefix_end(&start);
    let mut ids = Vec::new();
    for entry in table
        .range(start.as_str()..end.as_str())
        .map_err(unavailable)?
    {
        let (key, stored) = entry.map_err(unavailable)?;
        if live(split(stored.value())?.0, now_ms) {
            ids.push(key.value()[start.len()..].to_owned());
        }
    }
    Ok(ids)
}

/// One page of the records that `index` lists, each found at `record_key(id)`.
pub(crate) fn read_page<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    index: &str,
    request: &PageRequest,
    record_key: impl Fn(&str) -> String,
    what: &'static str,
) -> Result<Page<T>, StoreError> {
    let now = crate::db::now_ms();
    let (ids, more) = page_ids(table, index, request, now)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        // An index entry can outlive its record by a moment: skip, as the Redis MGET does.
        items.extend(get::<T>(table, &record_key(id), now, what)?);
    }
    Ok(page(items, &ids, more))
}

/// Assembles a page; the iterator is the last id read.
fn page<T>(items: Vec<T>, ids: &[String], more: bool) -> Page<T> {
    Page {
        items,
        iterator: if more { ids.last().cloned() } else { None },
        prev_iterator: ids.first().cloned(),
        done: !more,
    }
}

pub(crate) fn index_key(index: &str, id: &str) -> String {
    format!("{index}\0{id}")
}

/// The first key after every key that starts with `prefix`.
/// The end of the key range of every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

fn live(expires: u64, now_ms: u64) -> bool {
    expires == 0 || expires > now_ms
}

fn split(value: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (head, body) = value
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt("record shorter than its header".into()))?;
    Ok((u64::from_be_bytes(*head), body))
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    body: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
