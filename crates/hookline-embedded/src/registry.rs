//! Apps, endpoints and event types. A uid is claimed in the same transaction that stores
//! its record, so unlike Redis there is no half-finished create to take over.
//!
//! Endpoints are read for every delivery and every message, and change rarely, and this
//! process makes every change: they are kept in memory as read ([`EndpointCache`]), until
//! the next change to any endpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use hookline_core::model::{App, Endpoint, EventType};
use hookline_core::ports::{Page, PageRequest, Registry, StoreError};
use hookline_core::sealing;

use crate::db::{unavailable, Durability, RECORDS};
use crate::fifo::LinesOf;
use crate::keys;
use crate::records::{self, Writer};
use crate::EmbeddedStore;

#[async_trait]
impl Registry for EmbeddedStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                if let Some(uid) = &app.uid {
                    claim_uid(
                        &mut w,
                        &keys::app_uid(uid.as_str()),
                        &app.id,
                        "application uid",
                    )?;
                }
                w.put(&keys::app(&app.id), &app, None)?;
                w.index(keys::apps(), &app.id, None)
            })
            .await
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<App>, StoreError> {
        let wanted = id_or_uid.to_owned();
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                let now = crate::db::now_ms();
                if let Some(app) = records::get(&table, &keys::app(&wanted), now, "app")? {
                    return Ok(Some(app));
                }
                match records::get::<String>(&table, &keys::app_uid(&wanted), now, "uid")? {
                    Some(id) => records::get(&table, &keys::app(&id), now, "app"),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn list_apps(&self, request: &PageRequest) -> Result<Page<App>, StoreError> {
        let request = request.clone();
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::read_page(&table, keys::apps(), &request, keys::app, "app")
            })
            .await
    }

    async fn update_app(&self, previous: &App, app: &App) -> Result<(), StoreError> {
        let (previous, app) = (previous.clone(), app.clone());
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                if app.uid != previous.uid {
                    if let Some(uid) = &app.uid {
                        claim_uid(
                            &mut w,
                            &keys::app_uid(uid.as_str()),
                            &app.id,
                            "application uid",
                        )?;
                    }
                    if let Some(old) = &previous.uid {
                        w.delete(&keys::app_uid(old.as_str()))?;
                    }
                }
                w.put(&keys::app(&app.id), &app, None)
            })
            .await
    }

    async fn delete_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        // The app's lines go in the same write: tasks of its messages find them gone.
        let app_id = app.id.clone();
        let lines = LinesOf::App(&app_id);
        let deleted = self
            .forget_lines(lines, move |txn| {
                let mut w = Writer::open(txn)?;
                w.delete(&keys::app(&app.id))?;
                w.unindex(keys::apps(), &app.id)?;
                if let Some(uid) = &app.uid {
                    w.delete(&keys::app_uid(uid.as_str()))?;
                }
                w.delete_prefix(&keys::endpoints(&app.id))?;
                w.delete_prefix(&keys::endpoint_uids(&app.id))?;
                w.delete_prefix(&records::index_key(&keys::messages(&app.id), ""))
            })
            .await;
        self.endpoints.changed();
        deleted
    }

    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        max_per_app: usize,
    ) -> Result<(), StoreError> {
        self.save_endpoint(None, endpoint, max_per_app).await
    }

    async fn get_endpoint(
        &self,
        app_id: &str,
        id_or_uid: &str,
    ) -> Result<Option<Endpoint>, StoreError> {
        let key = (app_id.to_owned(), id_or_uid.to_owned());
        let since = self.endpoints.generation();
        if let Some(endpoint) = self.endpoints.one(&key, since) {
            return Ok(Some(endpoint));
        }
        let (app, wanted) = key.clone();
        let stored = self
            .db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                let now = crate::db::now_ms();
                let by_id = keys::endpoint(&app, &wanted);
                if let Some(e) = records::get::<Endpoint>(&table, &by_id, now, "endpoint")? {
                    return Ok(Some(e));
                }
                let uid = keys::endpoint_uid(&app, &wanted);
                match records::get::<String>(&table, &uid, now, "uid")? {
                    Some(id) => records::get(&table, &keys::endpoint(&app, &id), now, "endpoint"),
                    None => Ok(None),
                }
            })
            .await?;
        let opened = stored.map(|e| self.opened(e)).transpose()?;
        if let Some(endpoint) = &opened {
            self.endpoints.keep_one(key, since, endpoint);
        }
        Ok(opened)
    }

    async fn endpoints_of_app(&self, app_id: &str) -> Result<Vec<Endpoint>, StoreError> {
        let since = self.endpoints.generation();
        if let Some(endpoints) = self.endpoints.of_app(app_id, since) {
            return Ok(endpoints);
        }
        let prefix = keys::endpoints(app_id);
        let stored: Vec<Endpoint> = self
            .db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::scan(&table, &prefix, crate::db::now_ms(), "endpoint")
            })
            .await?;
        // Keys end in the id, and ids sort by creation time: oldest first already.
        let opened = stored
            .into_iter()
            .map(|e| self.opened(e))
            .collect::<Result<Vec<_>, _>>()?;
        self.endpoints.keep_app(app_id, since, &opened);
        Ok(opened)
    }

    async fn update_endpoint(
        &self,
        previous: &Endpoint,
        endpoint: &Endpoint,
    ) -> Result<(), StoreError> {
        self.save_endpoint(Some(previous), endpoint, usize::MAX)
            .await
    }

    async fn delete_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let endpoint = endpoint.clone();
        // Its line goes in the same write: tasks of its messages find it gone.
        let (app_id, endpoint_id) = (endpoint.app_id.clone(), endpoint.id.clone());
        let line = LinesOf::Endpoint {
            app_id: &app_id,
            endpoint_id: &endpoint_id,
        };
        let deleted = self
            .forget_lines(line, move |txn| {
                let mut w = Writer::open(txn)?;
                w.delete(&keys::endpoint(&endpoint.app_id, &endpoint.id))?;
                if let Some(uid) = &endpoint.uid {
                    w.delete(&keys::endpoint_uid(&endpoint.app_id, uid.as_str()))?;
                }
                Ok(())
            })
            .await;
        self.endpoints.changed();
        deleted
    }

    async fn create_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        let event_type = event_type.clone();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let key = keys::event_type(event_type.name.as_str());
                if w.get::<EventType>(&key, "event type")?.is_some() {
                    return Err(StoreError::Conflict("event type"));
                }
                w.put(&key, &event_type, None)
            })
            .await
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>, StoreError> {
        let key = keys::event_type(name);
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::get(&table, &key, crate::db::now_ms(), "event type")
            })
            .await
    }

    async fn list_event_types(&self) -> Result<Vec<EventType>, StoreError> {
        self.db
            .read(|txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::scan(
                    &table,
                    keys::event_types(),
                    crate::db::now_ms(),
                    "event type",
                )
            })
            .await
    }

    async fn update_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        let event_type = event_type.clone();
        self.db
            .write(Durability::Immediate, move |txn| {
                Writer::open(txn)?.put(
                    &keys::event_type(event_type.name.as_str()),
                    &event_type,
                    None,
                )
            })
            .await
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool, StoreError> {
        let key = keys::event_type(name);
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let existed = w.get::<EventType>(&key, "event type")?.is_some();
                w.delete(&key)?;
                Ok(existed)
            })
            .await
    }
}

impl EmbeddedStore {
    /// Creates or replaces an endpoint, moving its uid claim when the uid changed. A create
    /// counts the app's endpoints against `max_per_app` in the same write transaction.
    async fn save_endpoint(
        &self,
        previous: Option<&Endpoint>,
        endpoint: &Endpoint,
        max_per_app: usize,
    ) -> Result<(), StoreError> {
        let stored = sealing::seal_endpoint(self.main_key.as_ref(), endpoint)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let old_uid = previous.and_then(|p| p.uid.clone());
        let creating = previous.is_none();
        let saved = self
            .db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let app = stored.app_id.clone();
                if creating {
                    let prefix = keys::endpoints(&app);
                    let count = records::scan::<serde::de::IgnoredAny>(
                        &w.records, &prefix, w.now_ms, "endpoint",
                    )?
                    .len();
                    if count >= max_per_app {
                        return Err(StoreError::LimitReached {
                            what: "endpoints",
                            max: max_per_app,
                        });
                    }
                }
                if stored.uid != old_uid {
                    if let Some(uid) = &stored.uid {
                        let key = keys::endpoint_uid(&app, uid.as_str());
                        claim_uid(&mut w, &key, &stored.id, "endpoint uid")?;
                    }
                    if let Some(old) = &old_uid {
                        w.delete(&keys::endpoint_uid(&app, old.as_str()))?;
                    }
                }
                w.put(&keys::endpoint(&app, &stored.id), &stored, None)
            })
            .await;
        self.endpoints.changed();
        saved
    }

    /// The endpoint with its secrets opened.
    fn opened(&self, endpoint: Endpoint) -> Result<Endpoint, StoreError> {
        let id = endpoint.id.clone();
        sealing::open_endpoint(self.main_key.as_ref(), endpoint)
            .map_err(|e| StoreError::Corrupt(format!("endpoint {id}: {e}")))
    }
}

/// Endpoints as read from the database, each valid while no endpoint changed since it was
/// read. A change counts once its write has returned (whether it committed or failed), so a
/// read that began before it is never kept past it, and every read after it is fresh.
#[derive(Default)]
pub(crate) struct EndpointCache {
    /// Counts changes to endpoints.
    generation: AtomicU64,
    /// By (app id, endpoint id or uid), with the generation it was read in.
    one: Mutex<HashMap<(String, String), (u64, Endpoint)>>,
    /// Each app's endpoints, by app id, with the generation they were read in.
    of_app: Mutex<HashMap<String, (u64, Vec<Endpoint>)>>,
}

/// The most entries of either kind kept; past it they are all dropped and read again.
const MAX_CACHED: usize = 10_000;

impl EndpointCache {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn one(&self, key: &(String, String), since: u64) -> Option<Endpoint> {
        let one = self.one.lock().unwrap_or_else(PoisonError::into_inner);
        one.get(key)
            .filter(|(read_in, _)| *read_in == since)
            .map(|(_, endpoint)| endpoint.clone())
    }

    fn of_app(&self, app_id: &str, since: u64) -> Option<Vec<Endpoint>> {
        let of_app = self.of_app.lock().unwrap_or_else(PoisonError::into_inner);
        of_app
            .get(app_id)
            .filter(|(read_in, _)| *read_in == since)
            .map(|(_, endpoints)| endpoints.clone())
    }

    /// Keeps what was read in generation `since`, unless an endpoint changed meanwhile.
    fn keep_one(&self, key: (String, String), since: u64, endpoint: &Endpoint) {
        let mut one = self.one.lock().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != since {
            return;
        }
        if one.len() >= MAX_CACHED {
            one.clear();
        }
        one.insert(key, (since, endpoint.clone()));
    }

    fn keep_app(&self, app_id: &str, since: u64, endpoints: &[Endpoint]) {
        let mut of_app = self.of_app.lock().unwrap_or_else(PoisonError::into_inner);
        if self.generation() != since {
            return;
        }
        if of_app.len() >= MAX_CACHED {
            of_app.clear();
        }
        of_app.insert(app_id.to_owned(), (since, endpoints.to_vec()));
    }
}

/// Takes the uid at `key` for `id`, unless another record holds it.
fn claim_uid(
    w: &mut Writer<'_>,
    key: &str,
    id: &str,
    what: &'static str,
) -> Result<(), StoreError> {
    match w.get::<String>(key, "uid")? {
        Some(owner) if owner != id => Err(StoreError::Conflict(what)),
        _ => w.put(key, id, None),
    }
}
