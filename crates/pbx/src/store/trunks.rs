//! What the daemon knows of its trunks' registrations, mirrored for `trunk list` (another
//! process): one row per trunk, replaced on every change.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS trunk_state (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    expires_at INTEGER,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trunk_health (
    name TEXT PRIMARY KEY,
    reachable INTEGER,
    detail TEXT NOT NULL DEFAULT '',
    channels_in_use INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
";

/// What the daemon knows of a trunk right now, beyond its registration: whether it answers
/// OPTIONS keepalives and how many calls it carries. Mirrored for `trunk list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrunkHealth {
    pub name: String,
    /// `None`: not probed (no `keepalive_seconds`, or no answer yet).
    pub reachable: Option<bool>,
    /// Why it is down (a timeout, the status it answered), empty otherwise.
    pub detail: String,
    pub channels_in_use: u32,
    pub updated_ms: i64,
}

pub(super) fn apply_health(tx: &Connection, h: &TrunkHealth) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO trunk_health (name, reachable, detail, channels_in_use, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        h.name,
        h.reachable,
        h.detail,
        h.channels_in_use,
        h.updated_ms
    ])?;
    Ok(())
}

/// One trunk's registration as last seen by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrunkState {
    pub name: String,
    /// `registering`, `registered` or `failed`.
    pub state: String,
    /// Why it failed (the provider's answer, a timeout), empty otherwise.
    pub detail: String,
    /// Unix seconds the registration runs out at, when registered.
    pub expires_at: Option<i64>,
    pub updated_ms: i64,
}

pub(super) fn apply(tx: &Connection, s: &TrunkState) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO trunk_state (name, state, detail, expires_at, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        s.name,
        s.state,
        s.detail,
        s.expires_at,
        s.updated_ms
    ])?;
    Ok(())
}

impl Store {
    /// Every trunk's keepalive state and channels in use, by name.
    pub fn trunk_health(&self) -> Result<Vec<TrunkHealth>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT name, reachable, detail, channels_in_use, updated_ms FROM trunk_health ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TrunkHealth {
                name: r.get(0)?,
                reachable: r.get(1)?,
                detail: r.get(2)?,
                channels_in_use: r.get(3)?,
                updated_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every trunk's last registration state, by name.
    pub fn trunk_states(&self) -> Result<Vec<TrunkState>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT name, state, detail, expires_at, updated_ms FROM trunk_state ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TrunkState {
                name: r.get(0)?,
                state: r.get(1)?,
                detail: r.get(2)?,
                expires_at: r.get(3)?,
                updated_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
