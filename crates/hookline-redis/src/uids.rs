//! App uids: the global `app_uids` hash maps a uid to its app's id, but the app's record lives
//! on the app's own slot, so claiming a uid and writing the record cannot be one script.
//!
//! A claim is therefore two-phase, and every step is a compare-and-set on the uid's hash
//! field, never a read followed by a blind write:
//!
//! 1. `CLAIM` sets the field to `~<id>|<ms>` (pending, stamped with Redis's clock) only if it
//!    holds what the caller last saw (absent at first).
//! 2. The caller writes the app record.
//! 3. `SWAP` turns the pending value into the bare id (committed), only if it is still ours.
//!    If another create took the claim over meanwhile, the caller removes its record and
//!    reports a conflict, so at most one app ever holds a uid.
//!
//! A claim may be taken over only when its holder does not hold the uid: its record is
//! missing or carries another uid. A pending claim is left alone for [`PENDING_LEASE_MS`]
//! first, so a create in progress is not raced; after that it is a create that stopped
//! between steps. A committed claim whose record is gone is a delete that stopped before
//! releasing the uid. Readers resolve either form to the id and treat a missing record, or
//! one with another uid, as absent.

use std::sync::LazyLock;

use hookline_core::ports::StoreError;
use redis::Script;

use crate::{unavailable, RedisStore};

/// How long a pending claim is protected: far longer than a create takes between its claim
/// and its commit.
const PENDING_LEASE_MS: i64 = 30_000;

/// How often a create retries taking over a claim that changed under it.
const TAKEOVER_ROUNDS: usize = 3;

/// KEYS: uid hash. ARGV: uid, claiming id, expected current value ('' for absent).
/// Returns {1, new value, now} when claimed, else {0, current value, now}.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        if current ~= ARGV[3] then
            return {0, current, now}
        end
        local claim = '~' .. ARGV[2] .. '|' .. string.format('%.0f', now)
        redis.call('HSET', KEYS[1], ARGV[1], claim)
        return {1, claim, now}
        ",
    )
});

/// KEYS: uid hash. ARGV: uid, expected value, new value ('' deletes the field).
/// Returns 1 when the field holds the new value afterwards.
static SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
        if current == ARGV[3] then return 1 end
        if current ~= ARGV[2] then return 0 end
        if ARGV[3] == '' then
            redis.call('HDEL', KEYS[1], ARGV[1])
        else
            redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
        end
        return 1
        ",
    )
});

/// A uid hash value: the id it names and, while pending, when it was claimed.
pub(crate) struct UidClaim<'a> {
    pub owner: &'a str,
    pub pending_since: Option<i64>,
}

impl<'a> UidClaim<'a> {
    pub(crate) fn parse(value: &'a str) -> Self {
        match value.strip_prefix('~').and_then(|v| v.rsplit_once('|')) {
            Some((owner, at)) => Self {
                owner,
                pending_since: Some(at.parse().unwrap_or(0)),
            },
            None => Self {
                owner: value,
                pending_since: None,
            },
        }
    }
}

impl RedisStore {
    /// Claims `uid` for `app_id` (phase 1); answers the pending value to commit with
    /// [`RedisStore::commit_app_uid`], or [`StoreError::Conflict`] if another app holds it.
    pub(crate) async fn claim_app_uid(
        &self,
        uid: &str,
        app_id: &str,
    ) -> Result<String, StoreError> {
        let mut conn = self.conn();
        let key = self.keys.app_uids();
        let mut expected = String::new();
        for _ in 0..TAKEOVER_ROUNDS {
            let (claimed, current, now): (i64, String, i64) = CLAIM
                .key(&key)
                .arg(uid)
                .arg(app_id)
                .arg(&expected)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if claimed == 1 {
                return Ok(current);
            }
            let holder = UidClaim::parse(&current);
            if holder.owner == app_id {
                return Ok(current);
            }
            if holder
                .pending_since
                .is_some_and(|at| now - at < PENDING_LEASE_MS)
            {
                return Err(StoreError::Conflict("application uid"));
            }
            if self.app_holds_uid(holder.owner, uid).await? {
                if holder.pending_since.is_some() {
                    // Its create stopped after writing the record: finish it.
                    self.swap_app_uid(uid, &current, holder.owner).await?;
                }
                return Err(StoreError::Conflict("application uid"));
            }
            expected = current;
        }
        Err(StoreError::Conflict("application uid"))
    }

    /// Commits a pending claim (phase 3); `false` if it was taken over meanwhile.
    pub(crate) async fn commit_app_uid(
        &self,
        uid: &str,
        pending: &str,
        app_id: &str,
    ) -> Result<bool, StoreError> {
        self.swap_app_uid(uid, pending, app_id).await
    }

    /// Removes `uid` if `app_id` holds it (pending or committed); leaves another's claim.
    pub(crate) async fn release_app_uid(&self, uid: &str, app_id: &str) -> Result<(), StoreError> {
        let Some(current) = self.app_uid_value(uid).await? else {
            return Ok(());
        };
        if UidClaim::parse(&current).owner == app_id {
            self.swap_app_uid(uid, &current, "").await?;
        }
        Ok(())
    }

    /// The id of the app that holds `uid`, committed or pending; the caller checks the
    /// record still exists and carries the uid.
    pub(crate) async fn app_id_of_uid(&self, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .app_uid_value(uid)
            .await?
            .map(|value| UidClaim::parse(&value).owner.to_owned()))
    }

    async fn app_uid_value(&self, uid: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        redis::AsyncCommands::hget(&mut conn, self.keys.app_uids(), uid)
            .await
            .map_err(unavailable)
    }

    async fn swap_app_uid(&self, uid: &str, expected: &str, new: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let swapped: i64 = SWAP
            .key(self.keys.app_uids())
            .arg(uid)
            .arg(expected)
            .arg(new)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(swapped == 1)
    }

    /// Whether the app `id` exists and its record carries `uid`.
    async fn app_holds_uid(&self, id: &str, uid: &str) -> Result<bool, StoreError> {
        Ok(self
            .app_by_id(id)
            .await?
            .is_some_and(|app| app.uid.as_ref().is_some_and(|u| u.as_str() == uid)))
    }
}
