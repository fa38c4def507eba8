//! The schema: versioned migrations, and the daily partitions made ahead and dropped behind.
//!
//! Migrations run in one transaction under an advisory lock, so several processes starting
//! at once (every ingest replica asked to migrate) apply each version exactly once, and a
//! failed migration leaves the previous version whole. Each release's migrations must keep
//! the release before it working (add first; remove only in a later release), so processes
//! of the previous release keep serving on a newer schema during a rolling upgrade; a
//! binary older than the schema only refuses to migrate it.

use deadpool_postgres::Client;
use time::{Date, OffsetDateTime, Time};

use crate::PgError;

/// One version of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every version, oldest first. Append only: a released migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "delivery_log",
        sql: include_str!("../migrations/0001_delivery_log.sql"),
    },
    Migration {
        version: 2,
        name: "read_indexes",
        sql: include_str!("../migrations/0002_read_indexes.sql"),
    },
];

/// The partitioned tables, each with the id prefix its partition key carries.
pub(crate) const PARTITIONED: &[(&str, &str)] = &[
    ("messages", "msg"),
    ("destinations", "msg"),
    ("attempts", "atmpt"),
];

/// A schema name Hookline will quote into statements: lower-case letters, digits and `_`.
pub(crate) fn check_schema_name(schema: &str) -> Result<(), PgError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(PgError::Config(format!(
            "postgres.schema {schema:?}: use 1 to 63 lower-case letters, digits and _, not starting with a digit"
        )))
    }
}

fn lock_key(schema: &str, what: &str) -> String {
    format!("hookline:{what}:{schema}")
}

/// Applies the migrations this database lacks; answers the versions it applied.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<Vec<i32>, PgError> {
    migrate_to(client, schema, i32::MAX).await
}

/// Applies the migrations up to `target` (a test starts from an older version this way).
pub(crate) async fn migrate_to(
    client: &mut Client,
    schema: &str,
    target: i32,
) -> Result<Vec<i32>, PgError> {
    let db = |e: tokio_postgres::Error| PgError::Database(crate::described(&e));
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&lock_key(schema, "migrate")],
    )
    .await
    .map_err(db)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         SET LOCAL search_path = \"{schema}\";
         CREATE TABLE IF NOT EXISTS hookline_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(db)?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM hookline_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if found > known {
        return Err(PgError::TooNew { found, known });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > found && m.version <= target)
    {
        tx.batch_execute(migration.sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO hookline_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(db)?;
        applied.push(migration.version);
    }
    tx.commit().await.map_err(db)?;
    Ok(applied)
}

/// The schema version the database is at (0: none).
pub(crate) async fn version(client: &Client) -> Result<i32, PgError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('hookline_migrations') IS NOT NULL", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| PgError::Database(crate::described(&e)))?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM hookline_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| PgError::Database(crate::described(&e)))
}

/// The Unix ms at which `day` begins (UTC).
pub(crate) fn day_start_ms(day: Date) -> i64 {
    let at = day.with_time(Time::MIDNIGHT).assume_utc();
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn bound(prefix: &str, ms: i64) -> String {
    hookline_core::id::lower_bound(prefix, u64::try_from(ms).unwrap_or(0))
}

/// The partition of `table` holding `day`.
pub(crate) fn partition_name(table: &str, day: Date) -> String {
    format!(
        "{table}_d{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The day a partition of `table` holds, read back from its name.
fn partition_day(table: &str, name: &str) -> Option<Date> {
    let digits = name.strip_prefix(table)?.strip_prefix("_d")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[0..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..8].parse().ok()?;
    Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// Makes every table's partitions from yesterday to `days_ahead` days after `now` (those
/// that exist are left alone).
pub(crate) async fn ensure_partitions(
    client: &mut Client,
    schema: &str,
    now: OffsetDateTime,
    days_ahead: u64,
) -> Result<usize, PgError> {
    let db = |e: tokio_postgres::Error| PgError::Database(crate::described(&e));
    let tx = client.transaction().await.map_err(db)?;
    // Two processes creating the same partition at once would collide on its name.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&lock_key(schema, "partitions")],
    )
    .await
    .map_err(db)?;
    let existing: Vec<String> = tx
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1",
            &[&schema],
        )
        .await
        .map_err(db)?
        .into_iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let today = now.date();
    let mut made = 0;
    let ahead = i64::try_from(days_ahead).unwrap_or(366).min(366);
    for offset in -1..=ahead {
        let day = today + time::Duration::days(offset);
        let next = day + time::Duration::days(1);
        for (table, prefix) in PARTITIONED {
            let name = partition_name(table, day);
            if existing.contains(&name) {
                continue;
            }
            let from = bound(prefix, day_start_ms(day));
            let to = bound(prefix, day_start_ms(next));
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS \"{schema}\".{name} PARTITION OF \"{schema}\".{table}
                 FOR VALUES FROM ('{from}') TO ('{to}')"
            ))
            .await
            .map_err(db)?;
            made += 1;
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(made)
}

/// The partitions of every table whose whole day is older than `keep_days` before `now`.
pub(crate) async fn expired_partitions(
    client: &Client,
    schema: &str,
    now: OffsetDateTime,
    keep_days: u64,
) -> Result<Vec<(&'static str, String)>, PgError> {
    let cutoff = now - time::Duration::days(i64::try_from(keep_days).unwrap_or(i64::MAX / 2));
    let mut expired = Vec::new();
    for (table, _) in PARTITIONED {
        let rows = client
            .query(
                "SELECT c.relname FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 JOIN pg_namespace n ON n.oid = p.relnamespace
                 WHERE n.nspname = $1 AND p.relname = $2",
                &[&schema, table],
            )
            .await
            .map_err(|e| PgError::Database(crate::described(&e)))?;
        for row in rows {
            let name: String = row
                .try_get(0)
                .map_err(|e| PgError::Database(crate::described(&e)))?;
            let Some(day) = partition_day(table, &name) else {
                continue;
            };
            let end = day + time::Duration::days(1);
            if end.with_time(Time::MIDNIGHT).assume_utc() <= cutoff {
                expired.push((*table, name));
            }
        }
    }
    Ok(expired)
}

/// Detaches a partition without blocking writes to the others, then drops it. A detach
/// interrupted earlier is finished first.
pub(crate) async fn drop_partition(
    client: &Client,
    schema: &str,
    table: &str,
    name: &str,
) -> Result<(), PgError> {
    let db = |e: tokio_postgres::Error| PgError::Database(crate::described(&e));
    let detach = format!("ALTER TABLE \"{schema}\".{table} DETACH PARTITION \"{schema}\".{name}");
    if let Err(error) = client
        .batch_execute(&format!("{detach} CONCURRENTLY"))
        .await
    {
        let pending = error
            .as_db_error()
            .is_some_and(|e| e.message().contains("pending detach"));
        if !pending {
            return Err(db(error));
        }
        client
            .batch_execute(&format!("{detach} FINALIZE"))
            .await
            .map_err(db)?;
    }
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS \"{schema}\".{name}"))
        .await
        .map_err(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_read_back_as_their_day() {
        let day = time::macros::date!(2026 - 12 - 04);
        let name = partition_name("attempts", day);
        assert_eq!(name, "attempts_d20261204");
        assert_eq!(partition_day("attempts", &name), Some(day));
        assert_eq!(partition_day("messages", &name), None);
        assert_eq!(partition_day("attempts", "attempts_d2026120"), None);
    }

    #[test]
    fn a_days_ids_fall_between_its_bounds() {
        let day = time::macros::date!(2026 - 12 - 04);
        let start = day_start_ms(day);
        let next = day_start_ms(day + time::Duration::days(1));
        let first = hookline_core::id::new_id("msg", u64::try_from(start).expect("positive"));
        let last = hookline_core::id::new_id("msg", u64::try_from(next - 1).expect("positive"));
        assert!(bound("msg", start) <= first && first < bound("msg", next));
        assert!(bound("msg", start) <= last && last < bound("msg", next));
    }

    #[test]
    fn schema_names_are_checked_before_they_are_quoted() {
        assert!(check_schema_name("hookline").is_ok());
        assert!(check_schema_name("t123_abc").is_ok());
        for bad in ["", "Hookline", "a-b", "a\"b", "1abc", &"x".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions_only_grow() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }
}
