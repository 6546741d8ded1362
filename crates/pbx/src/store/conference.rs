//! Conference rooms in the database: the daemon mirrors who is in which room (for
//! `conference list`), and the CLI leaves commands (kick, mute, lock) for the daemon, which
//! picks them up within a second and deletes each once done.

use rusqlite::{params, Connection};
use serde::Serialize;

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conference_members (
    member INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    extension TEXT NOT NULL,
    admin INTEGER NOT NULL,
    muted INTEGER NOT NULL,
    talking INTEGER NOT NULL,
    joined_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conference_rooms (
    room TEXT PRIMARY KEY,
    locked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conference_commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    action TEXT NOT NULL,
    member INTEGER
);
";

/// A member as `conference list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConferenceMemberRow {
    /// The member's number within the daemon's run (what `kick`/`mute` take).
    pub member: i64,
    pub room: String,
    pub extension: String,
    pub admin: bool,
    pub muted: bool,
    pub talking: bool,
    pub joined_ms: i64,
}

/// A change to the mirrored conference state.
#[derive(Debug, Clone)]
pub enum ConferenceWrite {
    Member(ConferenceMemberRow),
    MemberLeft(i64),
    Room {
        room: String,
        locked: bool,
    },
    /// A CLI command the daemon has carried out.
    CommandDone(i64),
    /// At start: members of a previous run are gone, their rooms unlocked.
    Reset,
}

/// A command left by `kentongan-pbx conference kick|mute|lock|unlock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceCommand {
    pub id: i64,
    pub room: String,
    pub action: String,
    pub member: Option<i64>,
}

pub(super) fn apply(tx: &Connection, w: &ConferenceWrite) -> Result<(), StoreError> {
    match w {
        ConferenceWrite::Member(m) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO conference_members
                 (member, room, extension, admin, muted, talking, joined_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                m.member,
                m.room,
                m.extension,
                m.admin,
                m.muted,
                m.talking,
                m.joined_ms
            ])?;
        }
        ConferenceWrite::MemberLeft(id) => {
            tx.prepare_cached("DELETE FROM conference_members WHERE member = ?1")?
                .execute(params![id])?;
        }
        ConferenceWrite::Room { room, locked } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO conference_rooms (room, locked) VALUES (?1, ?2)",
            )?
            .execute(params![room, locked])?;
        }
        ConferenceWrite::CommandDone(id) => {
            tx.prepare_cached("DELETE FROM conference_commands WHERE id = ?1")?
                .execute(params![id])?;
        }
        ConferenceWrite::Reset => {
            tx.execute_batch("DELETE FROM conference_members; DELETE FROM conference_rooms;")?;
        }
    }
    Ok(())
}

impl Store {
    pub fn conference_members(&self) -> Result<Vec<ConferenceMemberRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT member, room, extension, admin, muted, talking, joined_ms
             FROM conference_members ORDER BY room, joined_ms, member",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ConferenceMemberRow {
                member: r.get(0)?,
                room: r.get(1)?,
                extension: r.get(2)?,
                admin: r.get(3)?,
                muted: r.get(4)?,
                talking: r.get(5)?,
                joined_ms: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rooms an admin or the CLI has locked.
    pub fn locked_rooms(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT room FROM conference_rooms WHERE locked ORDER BY room")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Leaves a command for the daemon; returns its id.
    pub fn add_conference_command(
        &self,
        room: &str,
        action: &str,
        member: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO conference_commands (room, action, member) VALUES (?1, ?2, ?3)",
            params![room, action, member],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn conference_commands(&self) -> Result<Vec<ConferenceCommand>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id, room, action, member FROM conference_commands ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(ConferenceCommand {
                id: r.get(0)?,
                room: r.get(1)?,
                action: r.get(2)?,
                member: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether the daemon has carried out (and so deleted) a command.
    pub fn conference_command_pending(&self, id: i64) -> Result<bool, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM conference_commands WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
}
