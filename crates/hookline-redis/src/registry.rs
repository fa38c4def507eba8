//! Apps, endpoints and event types.

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::model::{App, Endpoint, EventType};
use hookline_core::names::Uid;
use hookline_core::ports::{Page, PageRequest, Registry, StoreError};
use hookline_core::sealing;
use redis::{AsyncCommands, Script};

use crate::paging::{page, page_ids};
use crate::{decode, encode, unavailable, RedisStore};

/// KEYS: the app's endpoints, its endpoint uids. ARGV: endpoint id, record, uid ('' none),
/// previous uid ('' none), cap (-1 for a replace). Returns "ok", "limit" (the app already has
/// `cap` endpoints) or "uid" (another endpoint holds the uid). A uid entry whose endpoint is
/// gone is taken over.
static SAVE_ENDPOINT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local id, uid, old = ARGV[1], ARGV[3], ARGV[4]
        local cap = tonumber(ARGV[5])
        if cap >= 0 and redis.call('HLEN', KEYS[1]) >= cap then
            return 'limit'
        end
        if uid ~= '' and uid ~= old then
            local owner = redis.call('HGET', KEYS[2], uid)
            if owner and owner ~= id and redis.call('HEXISTS', KEYS[1], owner) == 1 then
                return 'uid'
            end
            redis.call('HSET', KEYS[2], uid, id)
        end
        if old ~= '' and old ~= uid and redis.call('HGET', KEYS[2], old) == id then
            redis.call('HDEL', KEYS[2], old)
        end
        redis.call('HSET', KEYS[1], id, ARGV[2])
        return 'ok'
        ",
    )
});

#[async_trait]
impl Registry for RedisStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let claim = match &app.uid {
            Some(uid) => Some((
                uid.as_str(),
                self.claim_app_uid(uid.as_str(), &app.id).await?,
            )),
            None => None,
        };
        let written = self.write_new_app(app).await;
        let Some((uid, pending)) = claim else {
            return written;
        };
        if let Err(error) = written {
            // Best effort: a claim left behind is taken over once its lease ends.
            let _ = self.release_app_uid(uid, &app.id).await;
            return Err(error);
        }
        if self.commit_app_uid(uid, &pending, &app.id).await? {
            return Ok(());
        }
        // Another create took the claim over while this one stalled: it owns the uid.
        self.remove_app_record(&app.id).await?;
        Err(StoreError::Conflict("application uid"))
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<App>, StoreError> {
        if let Some(app) = self.app_by_id(id_or_uid).await? {
            return Ok(Some(app));
        }
        let Some(id) = self.app_id_of_uid(id_or_uid).await? else {
            return Ok(None);
        };
        // A uid left by a create or delete that stopped halfway names no app.
        Ok(self
            .app_by_id(&id)
            .await?
            .filter(|app| carries_uid(app, id_or_uid)))
    }

    async fn list_apps(&self, request: &PageRequest) -> Result<Page<App>, StoreError> {
        let mut conn = self.conn();
        let (ids, more) = page_ids(&mut conn, &self.keys.apps(), request).await?;
        if ids.is_empty() {
            // An empty pipeline is an error to Redis ("empty command").
            return Ok(page(Vec::new(), None, false, None));
        }
        // App records live on different cluster slots, so neither one MGET nor one pipeline
        // can read them; concurrent GETs share the multiplexed connection instead.
        let reads = ids.iter().map(|id| {
            let mut conn = self.conn();
            let key = self.keys.app(id);
            async move { conn.get::<_, Option<String>>(key).await }
        });
        let bodies = futures::future::try_join_all(reads)
            .await
            .map_err(unavailable)?;
        let mut apps = Vec::with_capacity(bodies.len());
        for body in bodies.into_iter().flatten() {
            apps.push(decode::<App>("app", &body)?);
        }
        Ok(page(apps, ids.last().cloned(), more, ids.first().cloned()))
    }

    async fn update_app(&self, previous: &App, app: &App) -> Result<(), StoreError> {
        let mut conn = self.conn();
        if app.uid == previous.uid {
            return conn
                .set(self.keys.app(&app.id), encode(app)?)
                .await
                .map_err(unavailable);
        }
        // The new uid is claimed before the record names it and the old one released after,
        // so a reader never finds the record under a uid another app holds.
        let claim = match &app.uid {
            Some(uid) => Some((
                uid.as_str(),
                self.claim_app_uid(uid.as_str(), &app.id).await?,
            )),
            None => None,
        };
        let _: () = conn
            .set(self.keys.app(&app.id), encode(app)?)
            .await
            .map_err(unavailable)?;
        if let Some((uid, pending)) = claim {
            if !self.commit_app_uid(uid, &pending, &app.id).await? {
                let _: () = conn
                    .set(self.keys.app(&app.id), encode(previous)?)
                    .await
                    .map_err(unavailable)?;
                return Err(StoreError::Conflict("application uid"));
            }
        }
        if let Some(old) = &previous.uid {
            self.release_app_uid(old.as_str(), &app.id).await?;
        }
        Ok(())
    }

    async fn delete_app(&self, app: &App) -> Result<(), StoreError> {
        let mut conn = self.conn();
        // The app's own keys in one transaction on its slot, then the global index and uid.
        // Stopping between them leaves an index entry listings skip and a uid that names no
        // record, which readers ignore and the next create takes over (see `uids.rs`).
        redis::pipe()
            .atomic()
            .del(self.keys.app(&app.id))
            .ignore()
            .del(self.keys.endpoints(&app.id))
            .ignore()
            .del(self.keys.endpoint_uids(&app.id))
            .ignore()
            .del(self.keys.messages(&app.id))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        let _: () = conn
            .zrem(self.keys.apps(), &app.id)
            .await
            .map_err(unavailable)?;
        if let Some(uid) = &app.uid {
            self.release_app_uid(uid.as_str(), &app.id).await?;
        }
        Ok(())
    }

    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        max_per_app: usize,
    ) -> Result<(), StoreError> {
        self.save_endpoint(None, endpoint, Some(max_per_app)).await
    }

    async fn get_endpoint(
        &self,
        app_id: &str,
        id_or_uid: &str,
    ) -> Result<Option<Endpoint>, StoreError> {
        let mut conn = self.conn();
        let key = self.keys.endpoints(app_id);
        let body: Option<String> = conn.hget(&key, id_or_uid).await.map_err(unavailable)?;
        let body = match body {
            Some(body) => Some(body),
            None => {
                let id: Option<String> = conn
                    .hget(self.keys.endpoint_uids(app_id), id_or_uid)
                    .await
                    .map_err(unavailable)?;
                match id {
                    Some(id) => conn.hget(&key, id).await.map_err(unavailable)?,
                    None => None,
                }
            }
        };
        body.map(|b| self.decode_endpoint(&b)).transpose()
    }

    async fn endpoints_of_app(&self, app_id: &str) -> Result<Vec<Endpoint>, StoreError> {
        let mut conn = self.conn();
        let bodies: Vec<String> = conn
            .hvals(self.keys.endpoints(app_id))
            .await
            .map_err(unavailable)?;
        self.endpoints_from(&bodies)
    }

    /// One round trip when the app is named by id (the app and its endpoints share a slot);
    /// a uid costs one more.
    async fn app_with_endpoints(
        &self,
        id_or_uid: &str,
    ) -> Result<Option<(App, Vec<Endpoint>)>, StoreError> {
        if let Some(found) = self.app_with_endpoints_by_id(id_or_uid).await? {
            return Ok(Some(found));
        }
        match self.app_id_of_uid(id_or_uid).await? {
            Some(id) => Ok(self
                .app_with_endpoints_by_id(&id)
                .await?
                .filter(|(app, _)| carries_uid(app, id_or_uid))),
            None => Ok(None),
        }
    }

    async fn update_endpoint(
        &self,
        previous: &Endpoint,
        endpoint: &Endpoint,
    ) -> Result<(), StoreError> {
        self.save_endpoint(previous.uid.as_ref(), endpoint, None)
            .await
    }

    async fn delete_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(self.keys.endpoints(&endpoint.app_id), &endpoint.id)
            .ignore();
        if let Some(uid) = &endpoint.uid {
            pipe.hdel(self.keys.endpoint_uids(&endpoint.app_id), uid.as_str())
                .ignore();
        }
        self.forget_line(&mut pipe, &endpoint.app_id, &endpoint.id);
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn create_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let created: bool = conn
            .hset_nx(
                self.keys.event_types(),
                event_type.name.as_str(),
                encode(event_type)?,
            )
            .await
            .map_err(unavailable)?;
        if created {
            Ok(())
        } else {
            Err(StoreError::Conflict("event type"))
        }
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn
            .hget(self.keys.event_types(), name)
            .await
            .map_err(unavailable)?;
        body.map(|b| decode("event type", &b)).transpose()
    }

    async fn list_event_types(&self) -> Result<Vec<EventType>, StoreError> {
        let mut types: Vec<EventType> = self
            .hash_records(&self.keys.event_types(), "event type")
            .await?;
        types.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(types)
    }

    async fn update_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.hset(
            self.keys.event_types(),
            event_type.name.as_str(),
            encode(event_type)?,
        )
        .await
        .map_err(unavailable)
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let removed: u32 = conn
            .hdel(self.keys.event_types(), name)
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }
}

/// Whether `app`'s record names `uid` as its uid.
fn carries_uid(app: &App, uid: &str) -> bool {
    app.uid.as_ref().is_some_and(|u| u.as_str() == uid)
}

impl RedisStore {
    pub(crate) async fn app_by_id(&self, id: &str) -> Result<Option<App>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn.get(self.keys.app(id)).await.map_err(unavailable)?;
        body.map(|b| decode("app", &b)).transpose()
    }

    /// The index entry, then the record: a create that stops between them leaves an id that
    /// listings skip (its record is missing), never an app that is not listed.
    async fn write_new_app(&self, app: &App) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: () = conn
            .zadd(self.keys.apps(), &app.id, 0)
            .await
            .map_err(unavailable)?;
        conn.set(self.keys.app(&app.id), encode(app)?)
            .await
            .map_err(unavailable)
    }

    /// Undoes [`RedisStore::write_new_app`]: the record first, so the index entry left by a
    /// stop between the two is one listings skip.
    async fn remove_app_record(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: () = conn.del(self.keys.app(id)).await.map_err(unavailable)?;
        conn.zrem(self.keys.apps(), id).await.map_err(unavailable)
    }

    /// Creates (under the cap `max_per_app`) or replaces (no cap) an endpoint: the cap, the
    /// uid and the record in one script, as they all live on the app's slot.
    async fn save_endpoint(
        &self,
        old_uid: Option<&Uid>,
        endpoint: &Endpoint,
        max_per_app: Option<usize>,
    ) -> Result<(), StoreError> {
        let cap = max_per_app.map_or(-1, |max| i64::try_from(max).unwrap_or(i64::MAX));
        let mut conn = self.conn();
        let outcome: String = SAVE_ENDPOINT
            .key(self.keys.endpoints(&endpoint.app_id))
            .key(self.keys.endpoint_uids(&endpoint.app_id))
            .arg(&endpoint.id)
            .arg(self.encode_endpoint(endpoint)?)
            .arg(endpoint.uid.as_ref().map_or("", Uid::as_str))
            .arg(old_uid.map_or("", Uid::as_str))
            .arg(cap)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match outcome.as_str() {
            "uid" => Err(StoreError::Conflict("endpoint uid")),
            "limit" => Err(StoreError::LimitReached {
                what: "endpoints",
                max: max_per_app.unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }
}

impl RedisStore {
    /// The stored form of an endpoint: its secret sealed when a main key is configured.
    fn encode_endpoint(&self, endpoint: &Endpoint) -> Result<String, StoreError> {
        let stored = sealing::seal_endpoint(self.main_key.as_ref(), endpoint)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        encode(&stored)
    }

    fn decode_endpoint(&self, body: &str) -> Result<Endpoint, StoreError> {
        self.opened(decode::<Endpoint>("endpoint", body)?)
    }

    /// The app and its endpoints in one pipelined round trip (they share the app's slot).
    async fn app_with_endpoints_by_id(
        &self,
        id: &str,
    ) -> Result<Option<(App, Vec<Endpoint>)>, StoreError> {
        let mut conn = self.conn();
        let (app, endpoints): (Option<String>, Vec<String>) = redis::pipe()
            .get(self.keys.app(id))
            .hvals(self.keys.endpoints(id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(app) = app else {
            return Ok(None);
        };
        Ok(Some((
            decode("app", &app)?,
            self.endpoints_from(&endpoints)?,
        )))
    }

    /// Endpoint records as stored in an app's hash, opened, oldest first.
    fn endpoints_from(&self, bodies: &[String]) -> Result<Vec<Endpoint>, StoreError> {
        let mut endpoints = bodies
            .iter()
            .map(|body| self.opened(decode("endpoint", body)?))
            .collect::<Result<Vec<_>, _>>()?;
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(endpoints)
    }

    /// The endpoint with its secret opened.
    fn opened(&self, endpoint: Endpoint) -> Result<Endpoint, StoreError> {
        let id = endpoint.id.clone();
        sealing::open_endpoint(self.main_key.as_ref(), endpoint)
            .map_err(|e| StoreError::Corrupt(format!("endpoint {id}: {e}")))
    }

    /// Every record stored as a value of the hash at `key`.
    async fn hash_records<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.conn();
        let bodies: Vec<String> = conn.hvals(key).await.map_err(unavailable)?;
        bodies.iter().map(|b| decode::<T>(what, b)).collect()
    }
}
