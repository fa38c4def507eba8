//! Apps, endpoints and event types.

use async_trait::async_trait;
use hookline_core::model::{App, Endpoint, EventType};
use hookline_core::ports::{Page, PageRequest, Registry, StoreError};
use hookline_core::sealing;
use redis::AsyncCommands;

use crate::paging::{page, page_ids};
use crate::{decode, encode, unavailable, RedisStore};

#[async_trait]
impl Registry for RedisStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let mut conn = self.conn();
        if let Some(uid) = &app.uid {
            self.claim_app_uid(uid.as_str(), &app.id).await?;
        }
        // The list of apps is global and the record lives on the app's slot, so the two are
        // separate writes. The index goes first: a create that fails between them leaves an
        // id that listings skip (its record is missing), never an app that is not listed.
        let _: () = conn
            .zadd(self.keys.apps(), &app.id, 0)
            .await
            .map_err(unavailable)?;
        conn.set(self.keys.app(&app.id), encode(app)?)
            .await
            .map_err(unavailable)
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<App>, StoreError> {
        if let Some(app) = self.app_by_id(id_or_uid).await? {
            return Ok(Some(app));
        }
        match self.app_id_of_uid(id_or_uid).await? {
            Some(id) => self.app_by_id(&id).await,
            None => Ok(None),
        }
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
        if app.uid != previous.uid {
            if let Some(uid) = &app.uid {
                self.claim_app_uid(uid.as_str(), &app.id).await?;
            }
            if let Some(old) = &previous.uid {
                let _: () = conn
                    .hdel(self.keys.app_uids(), old.as_str())
                    .await
                    .map_err(unavailable)?;
            }
        }
        conn.set(self.keys.app(&app.id), encode(app)?)
            .await
            .map_err(unavailable)
    }

    async fn delete_app(&self, app: &App) -> Result<(), StoreError> {
        let mut conn = self.conn();
        // The app's own keys in one transaction on its slot, then the global index and uid.
        // Stopping between them leaves an index entry listings skip and a uid the next
        // create takes over (see `claim_app_uid`).
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
            let _: () = conn
                .hdel(self.keys.app_uids(), uid.as_str())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let mut conn = self.conn();
        if let Some(uid) = &endpoint.uid {
            self.claim_endpoint_uid(&endpoint.app_id, uid.as_str(), &endpoint.id)
                .await?;
        }
        conn.hset(
            self.keys.endpoints(&endpoint.app_id),
            &endpoint.id,
            self.encode_endpoint(endpoint)?,
        )
        .await
        .map_err(unavailable)
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
            Some(id) => self.app_with_endpoints_by_id(&id).await,
            None => Ok(None),
        }
    }

    async fn update_endpoint(
        &self,
        previous: &Endpoint,
        endpoint: &Endpoint,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        if endpoint.uid != previous.uid {
            if let Some(uid) = &endpoint.uid {
                self.claim_endpoint_uid(&endpoint.app_id, uid.as_str(), &endpoint.id)
                    .await?;
            }
            if let Some(old) = &previous.uid {
                let _: () = conn
                    .hdel(self.keys.endpoint_uids(&endpoint.app_id), old.as_str())
                    .await
                    .map_err(unavailable)?;
            }
        }
        conn.hset(
            self.keys.endpoints(&endpoint.app_id),
            &endpoint.id,
            self.encode_endpoint(endpoint)?,
        )
        .await
        .map_err(unavailable)
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

impl RedisStore {
    async fn app_by_id(&self, id: &str) -> Result<Option<App>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn.get(self.keys.app(id)).await.map_err(unavailable)?;
        body.map(|b| decode("app", &b)).transpose()
    }

    /// Takes `uid` for `app_id`. A uid left behind by a half-finished create (its app record
    /// missing) is taken over rather than blocking the name forever.
    async fn claim_app_uid(&self, uid: &str, app_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let key = self.keys.app_uids();
        if conn.hset_nx(&key, uid, app_id).await.map_err(unavailable)? {
            return Ok(());
        }
        let owner: Option<String> = conn.hget(&key, uid).await.map_err(unavailable)?;
        match owner {
            Some(owner) if owner != app_id && self.app_by_id(&owner).await?.is_some() => {
                Err(StoreError::Conflict("application uid"))
            }
            _ => conn.hset(&key, uid, app_id).await.map_err(unavailable),
        }
    }

    async fn claim_endpoint_uid(
        &self,
        app_id: &str,
        uid: &str,
        endpoint_id: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let key = self.keys.endpoint_uids(app_id);
        if conn
            .hset_nx(&key, uid, endpoint_id)
            .await
            .map_err(unavailable)?
        {
            return Ok(());
        }
        let owner: Option<String> = conn.hget(&key, uid).await.map_err(unavailable)?;
        let owner_exists = match &owner {
            Some(owner) if owner != endpoint_id => conn
                .hexists(self.keys.endpoints(app_id), owner)
                .await
                .map_err(unavailable)?,
            _ => false,
        };
        if owner_exists {
            Err(StoreError::Conflict("endpoint uid"))
        } else {
            conn.hset(&key, uid, endpoint_id).await.map_err(unavailable)
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

    /// The id of the app that holds `uid`.
    async fn app_id_of_uid(&self, uid: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        conn.hget(self.keys.app_uids(), uid)
            .await
            .map_err(unavailable)
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
