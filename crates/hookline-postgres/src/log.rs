//! [`PgLog`]: the rows of the delivery log, written a batch per statement and read with the
//! indexes of `migrations/0002_read_indexes.sql`.

use std::collections::BTreeMap;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use hookline_core::model::{Attempt, DestinationStatus, Message, MessageStatus};
use hookline_core::ports::{Page, PageRequest, SettledAttempt, StoreError};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio_postgres::NoTls;

use crate::codec::{self, Kind};
use crate::schema;
use crate::{unavailable, PgConfig, PgError};

/// A message to store with the endpoints it is pending for.
pub(crate) struct NewMessage<'a> {
    pub message: &'a Message,
    pub endpoint_ids: &'a [String],
    pub retention_secs: u64,
}

/// The delivery log on PostgreSQL: a connection pool and the schema it lives in.
#[derive(Clone)]
pub struct PgLog {
    pool: Pool,
    schema: String,
    retention_days: u64,
    days_ahead: u64,
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgLog {
    /// Sets up the pool; connects lazily, so a database that is down now does not stop the
    /// process from starting (its writes answer "unavailable" until it is back).
    pub fn connect(config: &PgConfig) -> Result<Self, PgError> {
        schema::check_schema_name(&config.schema)?;
        let mut pg = tokio_postgres::Config::from_str(config.url.expose())
            .map_err(|e| PgError::Config(format!("postgres.url does not parse: {e}")))?;
        let timeout_ms = config.statement_timeout.as_millis();
        // Custom plans: a statement prepared while today's partition was empty would keep a
        // plan that scans it (its statistics come later, from autoanalyze), and every
        // day begins with an empty partition. No JIT: the log's statements are short, and
        // compiling one costs more than running it.
        pg.options(format!(
            "-c search_path={} -c statement_timeout={timeout_ms} -c client_min_messages=warning \
             -c plan_cache_mode=force_custom_plan -c jit=off",
            config.schema
        ));
        pg.connect_timeout(config.statement_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("hookline");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.statement_timeout))
            .create_timeout(Some(config.statement_timeout))
            .recycle_timeout(Some(config.statement_timeout))
            .build()
            .map_err(|e| PgError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            schema: config.schema.clone(),
            retention_days: config.retention_days,
            days_ahead: config.days_ahead,
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    async fn admin_client(&self) -> Result<Object, PgError> {
        self.pool
            .get()
            .await
            .map_err(|e| PgError::Database(crate::described(&e)))
    }

    /// Applies the migrations the database lacks; answers the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i32>, PgError> {
        schema::migrate(&mut self.admin_client().await?, &self.schema).await
    }

    /// Applies the migrations up to `version` only (to test upgrades from it).
    pub async fn migrate_to(&self, version: i32) -> Result<Vec<i32>, PgError> {
        schema::migrate_to(&mut self.admin_client().await?, &self.schema, version).await
    }

    /// The schema version the database is at (0: none).
    pub async fn version(&self) -> Result<i32, PgError> {
        schema::version(&self.admin_client().await?).await
    }

    /// Whether the database answers and its schema has every migration this binary knows.
    /// A newer schema is fine: each release's migrations keep the release before it working,
    /// so old processes stay ready while a rolling upgrade replaces them.
    pub async fn is_ready(&self) -> bool {
        let known = schema::MIGRATIONS.last().map_or(0, |m| m.version);
        self.version().await.is_ok_and(|v| v >= known)
    }

    /// Makes the coming days' partitions and drops the days past retention; answers the
    /// partitions dropped.
    pub async fn maintain(&self, now: OffsetDateTime) -> Result<Vec<String>, PgError> {
        let mut client = self.admin_client().await?;
        schema::ensure_partitions(&mut client, &self.schema, now, self.days_ahead).await?;
        self.drop_older_than(now, self.retention_days).await
    }

    /// Drops every partition whose whole day is more than `keep_days` before `now`.
    pub async fn drop_older_than(
        &self,
        now: OffsetDateTime,
        keep_days: u64,
    ) -> Result<Vec<String>, PgError> {
        let client = self.admin_client().await?;
        let expired = schema::expired_partitions(&client, &self.schema, now, keep_days).await?;
        drop(client);
        // A day's three tables at once, each on a connection of its own: most of a drop is
        // the server deleting the files.
        let mut days: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
        for (table, name) in expired {
            let day = name.rsplit('_').next().unwrap_or_default().to_owned();
            days.entry(day).or_default().push((table, name));
        }
        let mut dropped = Vec::new();
        for (_, partitions) in days {
            let drops = partitions.iter().map(|(table, name)| async move {
                let client = self.admin_client().await?;
                schema::drop_partition(&client, &self.schema, table, name).await
            });
            futures::future::try_join_all(drops).await?;
            for (_, name) in partitions {
                tracing::info!(partition = %name, "delivery log: dropped a day past retention");
                dropped.push(name);
            }
        }
        Ok(dropped)
    }

    /// Makes the partitions of the days from `first` to `last` (fixtures, tests).
    pub async fn ensure_days(
        &self,
        first: OffsetDateTime,
        last: OffsetDateTime,
    ) -> Result<(), PgError> {
        let mut client = self.admin_client().await?;
        let days = (last.date() - first.date()).whole_days().max(0);
        let ahead = u64::try_from(days + 1).unwrap_or(0);
        let start = first + time::Duration::days(1);
        schema::ensure_partitions(&mut client, &self.schema, start, ahead).await?;
        Ok(())
    }

    /// Expunges the payloads whose own retention (`payloadRetentionPeriod`) ended before
    /// `now`; answers how many.
    pub async fn expunge_due_payloads(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = unix_ms(now);
        self.client()
            .await?
            .execute(
                "UPDATE messages SET payload = $2, payload_until = NULL
                 WHERE payload_until IS NOT NULL AND payload_until <= $1",
                &[&now, &expunged()?],
            )
            .await
            .map_err(unavailable)
    }

    /// Stores messages and their pending destinations, all in one statement (a message
    /// stored already is left as it is).
    pub(crate) async fn insert_messages(&self, items: &[NewMessage<'_>]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let keep_ms =
            i64::try_from(self.retention_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
        let mut m = MessageColumns::default();
        for item in items {
            let message = item.message;
            let retention_ms =
                i64::try_from(item.retention_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            m.app_id.push(message.app_id.as_str());
            m.id.push(message.id.as_str());
            m.event_type.push(message.event_type.as_str());
            m.endpoints.push(item.endpoint_ids.join(","));
            m.record.push(message_record(message)?);
            m.payload
                .push(codec::pack(Kind::Payload, message.payload.get())?);
            m.payload_until.push(
                (retention_ms < keep_ms)
                    .then(|| unix_ms(message.timestamp).saturating_add(retention_ms)),
            );
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO messages (app_id, id, event_type, endpoints, record, payload, payload_until)
                 SELECT a, i, t, string_to_array(e, ','), r, p, u
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[],
                             $6::bytea[], $7::int8[]) AS m(a, i, t, e, r, p, u)
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(unavailable)?;
        client
            .execute(
                &statement,
                &[
                    &m.app_id,
                    &m.id,
                    &m.event_type,
                    &m.endpoints,
                    &m.record,
                    &m.payload,
                    &m.payload_until,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Removes a message that was never accepted, with its destinations.
    pub(crate) async fn delete_message(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "WITH d AS (DELETE FROM destinations WHERE msg_id = $2 AND app_id = $1)
                 DELETE FROM messages WHERE app_id = $1 AND id = $2",
                &[&app_id, &msg_id],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn get_message(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, record, payload FROM messages WHERE app_id = $1 AND id = $2",
            )
            .await
            .map_err(unavailable)?;
        let row = client
            .query_opt(&statement, &[&app_id, &msg_id])
            .await
            .map_err(unavailable)?;
        row.map(|row| message_from(app_id, &row)).transpose()
    }

    /// One page of an app's messages in id order; `event_types`, when given, narrows it to
    /// those types on their index.
    pub(crate) async fn list_messages(
        &self,
        app_id: &str,
        request: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let select = "SELECT id, record, payload FROM messages WHERE app_id = $1";
        let rows = match request.event_types.as_deref().unwrap_or_default() {
            [] => self.page_rows(select, app_id, None, request).await?,
            // One type reads its index in id order; `= ANY` would sort what it found.
            [one] => {
                let narrow = format!("{select} AND event_type = $4");
                self.page_rows(&narrow, app_id, Some(one), request).await?
            }
            types => {
                let narrow = format!("{select} AND event_type = ANY($4)");
                self.page_rows(&narrow, app_id, Some(&types), request)
                    .await?
            }
        };
        let items = rows
            .iter()
            .map(|row| message_from(app_id, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paged(items, &rows, request.limit))
    }

    /// Reads `limit + 1` rows of `select` (whose `$1` is the app and `$4`, if any, `extra`)
    /// after the request's iterator, in the request's order.
    async fn page_rows(
        &self,
        select: &str,
        app_id: &str,
        extra: Option<&(dyn tokio_postgres::types::ToSql + Sync)>,
        request: &PageRequest,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let (cmp, order) = if request.ascending {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let after = if request.iterator.is_some() {
            format!(" AND id {cmp} $2")
        } else {
            " AND $2::text IS NULL".to_owned()
        };
        let sql = format!("{select}{after} ORDER BY id {order} LIMIT $3");
        let limit = i64::try_from(request.limit.max(1)).unwrap_or(i64::MAX) + 1;
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(unavailable)?;
        let iterator = request.iterator.as_deref();
        let result = match extra {
            Some(extra) => {
                client
                    .query(&statement, &[&app_id, &iterator, &limit, extra])
                    .await
            }
            None => {
                client
                    .query(&statement, &[&app_id, &iterator, &limit])
                    .await
            }
        };
        result.map_err(unavailable)
    }

    pub(crate) async fn expunge_payload(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE messages SET payload = $3, payload_until = NULL
                 WHERE app_id = $1 AND id = $2",
                &[&app_id, &msg_id, &expunged()?],
            )
            .await
            .map_err(unavailable)?;
        Ok(changed > 0)
    }

    pub(crate) async fn destinations(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Vec<DestinationStatus>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT e.endpoint_id, coalesce(d.status, 1::int2), coalesce(d.attempts, 0), d.next_attempt
                 FROM (SELECT unnest(endpoints) AS endpoint_id FROM messages
                       WHERE app_id = $1 AND id = $2
                       UNION
                       SELECT endpoint_id FROM destinations WHERE msg_id = $2 AND app_id = $1) e
                 LEFT JOIN destinations d
                        ON d.msg_id = $2 AND d.app_id = $1 AND d.endpoint_id = e.endpoint_id
                 ORDER BY e.endpoint_id",
            )
            .await
            .map_err(unavailable)?;
        client
            .query(&statement, &[&app_id, &msg_id])
            .await
            .map_err(unavailable)?
            .iter()
            .map(destination_from)
            .collect()
    }

    /// The state of `endpoint_id`'s destination of each message of `msg_ids` meant for it,
    /// in one statement.
    pub(crate) async fn destination_states(
        &self,
        app_id: &str,
        endpoint_id: &str,
        msg_ids: &[String],
    ) -> Result<Vec<(String, MessageStatus)>, StoreError> {
        if msg_ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT m.id, coalesce(d.status, 1::int2)
                 FROM messages m
                 LEFT JOIN destinations d
                        ON d.msg_id = m.id AND d.endpoint_id = $2 AND d.app_id = $1
                 WHERE m.app_id = $1 AND m.id = ANY($3)
                   AND ($2 = ANY(m.endpoints) OR d.status IS NOT NULL)",
            )
            .await
            .map_err(unavailable)?;
        client
            .query(&statement, &[&app_id, &endpoint_id, &msg_ids])
            .await
            .map_err(unavailable)?
            .iter()
            .map(|row| Ok((col(row, 0)?, status_from(col(row, 1)?)?)))
            .collect()
    }

    /// Records attempts and their destinations' new state, in one statement. A destination
    /// whose message is gone (past retention, its app deleted) is not brought back.
    pub(crate) async fn record_attempts(
        &self,
        attempts: &[(&Attempt, &DestinationStatus)],
    ) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        let mut a = AttemptColumns::default();
        // One state per destination: the batch's last word on it.
        let mut latest: BTreeMap<(&str, &str, &str), &DestinationStatus> = BTreeMap::new();
        for (attempt, destination) in attempts {
            a.app_id.push(attempt.app_id.as_str());
            a.id.push(attempt.id.as_str());
            a.msg_id.push(attempt.msg_id.as_str());
            a.endpoint_id.push(attempt.endpoint_id.as_str());
            a.record.push(attempt_record(attempt)?);
            latest.insert(
                (
                    attempt.app_id.as_str(),
                    attempt.msg_id.as_str(),
                    destination.endpoint_id.as_str(),
                ),
                destination,
            );
        }
        let mut d = DestinationColumns::default();
        for ((app, msg, endpoint), state) in latest {
            d.app_id.push(app);
            d.msg_id.push(msg);
            d.endpoint_id.push(endpoint);
            d.status.push(i16::from(state.status.code()));
            d.attempts
                .push(i32::try_from(state.attempts).unwrap_or(i32::MAX));
            d.next_attempt.push(state.next_attempt.map(unix_ms));
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "WITH a AS (
                    INSERT INTO attempts (app_id, id, msg_id, endpoint_id, record)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
                    ON CONFLICT DO NOTHING
                 )
                 INSERT INTO destinations (app_id, msg_id, endpoint_id, status, attempts, next_attempt)
                 SELECT d.* FROM unnest($6::text[], $7::text[], $8::text[], $9::int2[],
                                        $10::int4[], $11::int8[])
                      AS d(app_id, msg_id, endpoint_id, status, attempts, next_attempt)
                 WHERE EXISTS (SELECT 1 FROM messages m WHERE m.app_id = d.app_id AND m.id = d.msg_id)
                 ON CONFLICT (msg_id, endpoint_id) DO UPDATE
                 SET status = excluded.status, attempts = excluded.attempts,
                     next_attempt = excluded.next_attempt",
            )
            .await
            .map_err(unavailable)?;
        client
            .execute(
                &statement,
                &[
                    &a.app_id,
                    &a.id,
                    &a.msg_id,
                    &a.endpoint_id,
                    &a.record,
                    &d.app_id,
                    &d.msg_id,
                    &d.endpoint_id,
                    &d.status,
                    &d.attempts,
                    &d.next_attempt,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// [`PgLog::record_attempts`] for a dispatcher's settled batch.
    pub(crate) async fn record_settled(&self, batch: &[&SettledAttempt]) -> Result<(), StoreError> {
        let pairs: Vec<_> = batch.iter().map(|s| (&s.attempt, &s.destination)).collect();
        self.record_attempts(&pairs).await
    }

    pub(crate) async fn get_attempt(
        &self,
        app_id: &str,
        attempt_id: &str,
    ) -> Result<Option<Attempt>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, record, msg_id, endpoint_id FROM attempts WHERE id = $2 AND app_id = $1",
            )
            .await
            .map_err(unavailable)?;
        client
            .query_opt(&statement, &[&app_id, &attempt_id])
            .await
            .map_err(unavailable)?
            .map(|row| attempt_from(app_id, &row))
            .transpose()
    }

    /// Clears an attempt's response body. The record is compressed, so it is read, changed
    /// and written back in one transaction.
    pub(crate) async fn expunge_response(
        &self,
        app_id: &str,
        attempt_id: &str,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        let Some(row) = tx
            .query_opt(
                "SELECT id, record, msg_id, endpoint_id FROM attempts
                 WHERE id = $2 AND app_id = $1 FOR UPDATE",
                &[&app_id, &attempt_id],
            )
            .await
            .map_err(unavailable)?
        else {
            return Ok(false);
        };
        let mut attempt = attempt_from(app_id, &row)?;
        attempt.response = String::new();
        tx.execute(
            "UPDATE attempts SET record = $3 WHERE id = $2 AND app_id = $1",
            &[&app_id, &attempt_id, &attempt_record(&attempt)?],
        )
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    /// One page of the attempts of a message (`by` = `msg_id`) or an endpoint
    /// (`by` = `endpoint_id`).
    pub async fn attempts_by(
        &self,
        by: AttemptsBy,
        app_id: &str,
        key: &str,
        request: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        let column = match by {
            AttemptsBy::Message => "msg_id",
            AttemptsBy::Endpoint => "endpoint_id",
        };
        let select = format!(
            "SELECT id, record, msg_id, endpoint_id FROM attempts WHERE app_id = $1 AND {column} = $4"
        );
        let rows = self.page_rows(&select, app_id, Some(&key), request).await?;
        let items = rows
            .iter()
            .map(|row| attempt_from(app_id, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paged(items, &rows, request.limit))
    }

    /// Sizes of the log's tables with their indexes (bytes), for sizing figures.
    pub async fn table_bytes(&self) -> Result<BTreeMap<String, i64>, PgError> {
        let client = self.admin_client().await?;
        let mut sizes = BTreeMap::new();
        for (table, _) in schema::PARTITIONED {
            let row = client
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
                     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     JOIN pg_class p ON p.oid = i.inhparent
                     JOIN pg_namespace n ON n.oid = p.relnamespace
                     WHERE n.nspname = $1 AND p.relname = $2",
                    &[&self.schema, table],
                )
                .await
                .map_err(|e| PgError::Database(crate::described(&e)))?;
            let bytes: i64 = row
                .try_get(0)
                .map_err(|e| PgError::Database(crate::described(&e)))?;
            sizes.insert((*table).to_owned(), bytes);
        }
        Ok(sizes)
    }

    /// Drops the whole schema (tests clean up after themselves with it).
    pub async fn drop_schema(&self) -> Result<(), PgError> {
        self.admin_client()
            .await?
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await
            .map_err(|e| PgError::Database(crate::described(&e)))
    }

    /// A plain connection of the pool, for fixtures and measurements.
    pub async fn raw(&self) -> Result<Object, PgError> {
        self.admin_client().await
    }
}

/// Which index an attempt listing reads.
#[derive(Debug, Clone, Copy)]
pub enum AttemptsBy {
    Message,
    Endpoint,
}

#[derive(Default)]
struct MessageColumns<'a> {
    app_id: Vec<&'a str>,
    id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    endpoints: Vec<String>,
    record: Vec<Vec<u8>>,
    payload: Vec<Vec<u8>>,
    payload_until: Vec<Option<i64>>,
}

#[derive(Default)]
struct AttemptColumns<'a> {
    app_id: Vec<&'a str>,
    id: Vec<&'a str>,
    msg_id: Vec<&'a str>,
    endpoint_id: Vec<&'a str>,
    record: Vec<Vec<u8>>,
}

#[derive(Default)]
struct DestinationColumns<'a> {
    app_id: Vec<&'a str>,
    msg_id: Vec<&'a str>,
    endpoint_id: Vec<&'a str>,
    status: Vec<i16>,
    attempts: Vec<i32>,
    next_attempt: Vec<Option<i64>>,
}

/// A record as stored: its JSON less the fields the row's columns hold, packed.
fn stripped(
    kind: Kind,
    value: &impl serde::Serialize,
    columns: &[&str],
) -> Result<Vec<u8>, StoreError> {
    let mut value = serde_json::to_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(object) = value.as_object_mut() {
        for column in columns {
            object.remove(*column);
        }
    }
    let text = serde_json::to_string(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    codec::pack(kind, &text)
}

/// A stored record with the columns' fields put back.
fn restored<T: serde::de::DeserializeOwned>(
    what: &'static str,
    record: &[u8],
    columns: &[(&str, &str)],
) -> Result<T, StoreError> {
    let mut value: serde_json::Value = decode(what, &codec::unpack(record)?)?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: not an object")))?;
    for (name, text) in columns {
        object.insert(
            (*name).to_owned(),
            serde_json::Value::String((*text).to_owned()),
        );
    }
    // Through text, not `from_value`: a message's payload is a raw JSON value.
    decode(what, &value.to_string())
}

/// A message's record: without its id, app and payload (columns of their own). The record
/// is made from a shell without the payload, so accepting a message never parses its
/// payload into a JSON tree only to drop it.
fn message_record(message: &Message) -> Result<Vec<u8>, StoreError> {
    let shell = Message {
        id: String::new(),
        app_id: String::new(),
        event_type: message.event_type.clone(),
        event_id: message.event_id.clone(),
        channels: message.channels.clone(),
        tags: message.tags.clone(),
        payload: RawValue::from_string("null".to_owned())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        timestamp: message.timestamp,
        deliver_at: message.deliver_at,
    };
    stripped(Kind::Message, &shell, &["id", "appId", "payload"])
}

/// A message from a row of (id, record, payload).
fn message_from(app_id: &str, row: &tokio_postgres::Row) -> Result<Message, StoreError> {
    let id: &str = col(row, 0)?;
    let record: &[u8] = col(row, 1)?;
    let payload = codec::unpack(col(row, 2)?)?;
    let mut value: serde_json::Value = decode("message", &codec::unpack(record)?)?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| StoreError::Corrupt("message: not an object".into()))?;
    object.insert("id".into(), id.into());
    object.insert("appId".into(), app_id.into());
    object.insert("payload".into(), serde_json::Value::Null);
    let mut message: Message = decode("message", &value.to_string())?;
    message.payload = RawValue::from_string(payload)
        .map_err(|e| StoreError::Corrupt(format!("message payload: {e}")))?;
    Ok(message)
}

/// An attempt's record: without the ids its columns hold.
fn attempt_record(attempt: &Attempt) -> Result<Vec<u8>, StoreError> {
    stripped(
        Kind::Attempt,
        attempt,
        &["id", "appId", "msgId", "endpointId"],
    )
}

/// An attempt from a row of (id, record, msg_id, endpoint_id).
fn attempt_from(app_id: &str, row: &tokio_postgres::Row) -> Result<Attempt, StoreError> {
    restored(
        "attempt",
        col(row, 1)?,
        &[
            ("id", col(row, 0)?),
            ("appId", app_id),
            ("msgId", col(row, 2)?),
            ("endpointId", col(row, 3)?),
        ],
    )
}

/// A message's `record` and `payload` columns as this log stores them (for fixtures that
/// write rows in bulk, such as the benchmark's).
pub fn stored_message(message: &Message) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    Ok((
        message_record(message)?,
        codec::pack(Kind::Payload, message.payload.get())?,
    ))
}

/// An attempt's `record` column as this log stores it (for fixtures).
pub fn stored_attempt(attempt: &Attempt) -> Result<Vec<u8>, StoreError> {
    attempt_record(attempt)
}

/// The stored form of an expunged payload.
fn expunged() -> Result<Vec<u8>, StoreError> {
    codec::pack(Kind::Payload, "{}")
}

fn status_from(code: i16) -> Result<MessageStatus, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(MessageStatus::from_code)
        .ok_or_else(|| StoreError::Corrupt(format!("destination status {code}")))
}

fn destination_from(row: &tokio_postgres::Row) -> Result<DestinationStatus, StoreError> {
    let attempts: i32 = col(row, 2)?;
    let next: Option<i64> = col(row, 3)?;
    Ok(DestinationStatus {
        endpoint_id: col(row, 0)?,
        status: status_from(col(row, 1)?)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt: next.and_then(from_unix_ms),
    })
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A column of a row, or why it cannot be read as `T` (a schema this binary does not know).
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    at: usize,
) -> Result<T, StoreError> {
    row.try_get(at)
        .map_err(|e| StoreError::Corrupt(format!("log row column {at}: {e}")))
}

/// A page from `limit + 1` rows whose first column is the id (already read once, so it
/// reads).
fn paged<T>(mut items: Vec<T>, rows: &[tokio_postgres::Row], limit: usize) -> Page<T> {
    let limit = limit.max(1);
    let more = items.len() > limit;
    items.truncate(limit);
    let id = |at: usize| {
        rows.get(at)
            .and_then(|row| row.try_get::<_, String>(0).ok())
    };
    let last = items.len().checked_sub(1).and_then(id);
    Page {
        items,
        iterator: if more { last } else { None },
        prev_iterator: id(0),
        done: !more,
    }
}

pub(crate) fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
