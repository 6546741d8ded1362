//! SQLite storage: users (digest HA1 only), registrations, stored IMs, CDRs, live calls and
//! firewall bans.
//!
//! One [`Store`] per process. In the daemon it is the single writer: the core loop gathers the
//! writes of one batch of packets into one transaction ([`Store::apply`]) and sends the answers
//! only after it commits, so a `kill -9` loses no acknowledged registration. WAL mode lets the
//! CLI read (and add users) while the daemon runs. Every statement is parameterized.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use kentongan_sip::auth::StoredHa1;

mod cdr;
mod conference;
mod mail;
mod migrations;
mod recordings;
mod rights;
mod settings;
mod trunks;
mod voicemail;
mod web;

use crate::admins::{Admin, AdminName, Role};
pub use cdr::{Cdr, OutboundCdr, TransferCdr};
pub use conference::{ConferenceCommand, ConferenceMemberRow, ConferenceWrite};
pub use mail::QueuedMail;
pub use migrations::SCHEMA_VERSION;
pub use recordings::{write_recording, RecordingRow};
pub use settings::{CallSettings, ForwardKind, SettingsWrite};
pub use trunks::{TrunkHealth, TrunkState};
pub use voicemail::{
    greeting_path, voicemail_root, write_message, GreetingKind, NewUserExtras, VoicemailMessage,
    VoicemailPin, VoicemailWrite,
};
pub use web::{CdrFilter, CdrOrder};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the database {path}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("extension {0} already exists")]
    UserExists(String),
    #[error("extension {0} does not exist")]
    NoSuchUser(String),
    #[error("admin account {0} already exists")]
    AdminExists(String),
    #[error("admin account {0} does not exist")]
    NoSuchAdmin(String),
    #[error("admin account {0} is the last one with the admin role; add another admin first")]
    LastAdmin(String),
    #[error(
        "the database {path} has schema version {found}, written by a newer Kentongan than this \
         one (schema {supported}): a downgrade is refused; run the newer version, or restore \
         the backup taken before the upgrade (kentongan-setup restore FILE)"
    )]
    NewerSchema {
        path: String,
        found: i64,
        supported: i64,
    },
}

/// An extension number, e.g. "201": the SIP user part and the digest username.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Extension(pub String);

impl Extension {
    /// Accepts 1–32 characters of digits, letters, '.', '-', '_'.
    pub fn parse(s: &str) -> Option<Extension> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        ok.then(|| Extension(s.to_owned()))
    }
}

impl std::fmt::Display for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user as listed; the HA1 values never leave the store except for verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub extension: Extension,
    pub name: String,
}

/// One registered contact binding, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub extension: Extension,
    /// The Contact URI as the phone wrote it.
    pub contact: String,
    /// Where the REGISTER came from (what we send to: NAT-friendly).
    pub source: String,
    pub transport: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub call_id: String,
    pub cseq: u32,
}

/// A stored instant message waiting for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub sender: String,
    pub recipient: Extension,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A call in progress, as mirrored for `kentongan-pbx calls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveCall {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
    pub state: String,
}

/// A write the daemon batches into one transaction.
#[derive(Debug, Clone)]
pub enum Write {
    UpsertBinding(Binding),
    RemoveBinding {
        extension: Extension,
        contact: String,
    },
    RemoveBindings(Extension),
    ExpireBindings {
        now: i64,
    },
    StoreMessage(StoredMessage),
    DeleteMessage(i64),
    Cdr(Cdr),
    LiveCall(LiveCall),
    EndLiveCall(String),
    Ban(StoredBan),
    /// Conference rooms' live state, mirrored for `kentongan-pbx conference list`.
    Conference(ConferenceWrite),
    /// A phone changed its forwarding or DND with a feature code.
    Settings(SettingsWrite),
    /// A trunk's outbound registration changed state.
    TrunkState(TrunkState),
    /// A trunk's keepalive state or channels in use changed.
    TrunkHealth(TrunkHealth),
    /// A voicemail message stored (its file already in place), listened to, or deleted.
    Voicemail(VoicemailWrite),
    /// A call recording stored (its file already in place).
    Recording(RecordingRow),
}

/// A source banned by the firewall, as stored (re-applied at boot and after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredBan {
    /// An IPv4 or IPv6 address.
    pub addr: String,
    pub reason: String,
    /// Unix seconds.
    pub banned_at: i64,
    pub expires_at: i64,
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    extension TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    realm TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (recipient);
CREATE TABLE IF NOT EXISTS cdr (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    answer_ms INTEGER,
    end_ms INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    disposition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bans (
    addr TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    banned_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live_calls (
    call_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    answer_ms INTEGER,
    state TEXT NOT NULL
);
-- Hang-ups the web admin asked for, by a live call's Call-ID; the daemon takes them.
CREATE TABLE IF NOT EXISTS call_commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS admins (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
    created INTEGER NOT NULL
);
";

/// Bindings, keyed by what they are looked up and replaced by. WITHOUT ROWID: a refresh
/// (the commonest write a PBX makes) then updates one b-tree, not a table and its index.
const REGISTRATIONS: &str = "
CREATE TABLE IF NOT EXISTS registrations (
    extension TEXT NOT NULL,
    contact TEXT NOT NULL,
    source TEXT NOT NULL,
    transport TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    PRIMARY KEY (extension, contact)
) WITHOUT ROWID;
";

/// The database handle.
pub struct Store {
    conn: Connection,
}

/// Creates the registrations table, or rebuilds one made before it was WITHOUT ROWID
/// (0.1 databases), keeping every binding (inside the caller's transaction).
pub(super) fn migrate_registrations(conn: &Connection) -> rusqlite::Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'registrations'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match sql {
        None => conn.execute_batch(REGISTRATIONS),
        Some(sql) if sql.to_ascii_uppercase().contains("WITHOUT ROWID") => Ok(()),
        Some(_) => conn.execute_batch(&format!(
            "ALTER TABLE registrations RENAME TO registrations_rowid;
             {REGISTRATIONS}
             INSERT INTO registrations
                 SELECT extension, contact, source, transport, expires_at, call_id, cseq
                 FROM registrations_rowid;
             DROP TABLE registrations_rowid;"
        )),
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` in WAL mode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // Before anything writes to it: a newer build's database is left exactly as it is.
        migrations::refuse_newer(&conn, path)?;
        // WAL + synchronous=NORMAL: a committed transaction survives a process crash
        // (kill -9); only a power loss can take the last commits.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        migrations::migrate(&conn, path)?;
        Ok(Store { conn })
    }

    /// Leaves WAL checkpoints to [`checkpoint_loop`] (another connection, another thread), so
    /// the daemon's writer never waits for the fsync a checkpoint does.
    pub fn disable_autocheckpoint(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    // ---- admin accounts (web admin and `admin` CLI) ----

    /// Adds an admin account with an argon2id PHC `hash` (see [`crate::admins::AdminPassword`]).
    pub fn add_admin(
        &self,
        name: &AdminName,
        hash: &str,
        role: Role,
        created: i64,
    ) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO admins (name, hash, role, created) VALUES (?1, ?2, ?3, ?4)",
            params![name.as_str(), hash, role.as_str(), created],
        )?;
        if n == 0 {
            return Err(StoreError::AdminExists(name.to_string()));
        }
        Ok(())
    }

    /// Replaces an account's hash.
    pub fn set_admin_hash(&self, name: &AdminName, hash: &str) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE admins SET hash = ?2 WHERE name = ?1",
            params![name.as_str(), hash],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchAdmin(name.to_string()));
        }
        Ok(())
    }

    /// Removes an account; the last `admin`-role account stays, so the box is never left
    /// without someone who can manage accounts.
    pub fn remove_admin(&self, name: &AdminName) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let role: Option<String> = tx
            .query_row(
                "SELECT role FROM admins WHERE name = ?1",
                params![name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match role.as_deref() {
            None => return Err(StoreError::NoSuchAdmin(name.to_string())),
            Some("admin") => {
                let admins: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM admins WHERE role = 'admin'",
                    [],
                    |r| r.get(0),
                )?;
                if admins <= 1 {
                    return Err(StoreError::LastAdmin(name.to_string()));
                }
            }
            Some(_) => {}
        }
        tx.execute("DELETE FROM admins WHERE name = ?1", params![name.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Every account, by name; hashes are not read.
    pub fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, created FROM admins ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role, created) = row?;
            // Rows that break the rules (only possible by editing the database by hand) are
            // skipped rather than trusted.
            if let (Ok(name), Ok(role)) = (AdminName::parse(&name), Role::parse(&role)) {
                out.push(Admin {
                    name,
                    role,
                    created,
                });
            }
        }
        Ok(out)
    }

    pub fn admin_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM admins", [], |r| r.get(0))?)
    }

    /// The web page language an account chose (`id`, `en`), if it ever did.
    pub fn admin_language(&self, name: &AdminName) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT language FROM admins WHERE name = ?1",
                params![name.as_str()],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Remembers an account's web page language (the caller checked the code).
    pub fn set_admin_language(&self, name: &AdminName, language: &str) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE admins SET language = ?2 WHERE name = ?1",
            params![name.as_str(), language],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchAdmin(name.to_string()));
        }
        Ok(())
    }

    /// An account's role and PHC hash, for login.
    pub fn admin_credentials(
        &self,
        name: &AdminName,
    ) -> Result<Option<(Role, String)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT role, hash FROM admins WHERE name = ?1",
                params![name.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(role, hash)| Role::parse(&role).ok().map(|r| (r, hash))))
    }

    // ---- users ----

    /// Adds a user; only the HA1 values derived from `password` are stored.
    pub fn add_user(
        &self,
        ext: &Extension,
        name: &str,
        realm: &str,
        password: &str,
    ) -> Result<(), StoreError> {
        let ha1 = StoredHa1::from_password(&ext.0, realm, password);
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO users (extension, name, ha1_md5, ha1_sha256, realm)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                ext.0,
                name,
                ha1.md5.unwrap_or_default(),
                ha1.sha256.unwrap_or_default(),
                realm
            ],
        )?;
        if n == 0 {
            return Err(StoreError::UserExists(ext.0.clone()));
        }
        Ok(())
    }

    pub fn remove_user(&self, ext: &Extension) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM users WHERE extension = ?1", params![ext.0])?;
        if n == 0 {
            return Err(StoreError::NoSuchUser(ext.0.clone()));
        }
        self.conn.execute(
            "DELETE FROM registrations WHERE extension = ?1",
            params![ext.0],
        )?;
        self.conn.execute(
            "DELETE FROM extension_settings WHERE extension = ?1",
            params![ext.0],
        )?;
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT extension, name FROM users ORDER BY extension")?;
        let rows = st.query_map([], |r| {
            Ok(User {
                extension: Extension(r.get(0)?),
                name: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored HA1 of `ext` for `realm`; `None` for an unknown user (or another realm).
    pub fn ha1(&self, ext: &str, realm: &str) -> Result<Option<StoredHa1>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT ha1_md5, ha1_sha256 FROM users WHERE extension = ?1 AND realm = ?2",
        )?;
        Ok(st
            .query_row(params![ext, realm], |r| {
                Ok(StoredHa1 {
                    md5: Some(r.get(0)?),
                    sha256: Some(r.get(1)?),
                })
            })
            .optional()?)
    }

    /// The display name of `ext`, if the user exists.
    pub fn user_name(&self, ext: &Extension) -> Result<Option<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name FROM users WHERE extension = ?1")?;
        Ok(st.query_row(params![ext.0], |r| r.get(0)).optional()?)
    }

    pub fn user_exists(&self, ext: &str) -> Result<bool, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM users WHERE extension = ?1")?;
        Ok(st.exists(params![ext])?)
    }

    // ---- registrations, messages ----

    /// Bindings that have not expired at `now` (unix seconds).
    pub fn bindings(&self, now: i64) -> Result<Vec<Binding>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT extension, contact, source, transport, expires_at, call_id, cseq
             FROM registrations WHERE expires_at > ?1 ORDER BY extension, contact",
        )?;
        let rows = st.query_map(params![now], |r| {
            Ok(Binding {
                extension: Extension(r.get(0)?),
                contact: r.get(1)?,
                source: r.get(2)?,
                transport: r.get(3)?,
                expires_at: r.get(4)?,
                call_id: r.get(5)?,
                cseq: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every stored message, oldest first (the daemon keeps a copy in memory).
    pub fn messages(&self) -> Result<Vec<StoredMessage>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, sender, recipient, content_type, body FROM messages ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(StoredMessage {
                id: r.get(0)?,
                sender: r.get(1)?,
                recipient: Extension(r.get(2)?),
                content_type: r.get(3)?,
                body: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Applies a batch of writes in one transaction.
    pub fn apply(&mut self, writes: &[Write], now_ms: i64) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        // BEGIN and COMMIT as cached statements: rusqlite's transaction() parses them again for
        // every batch, a visible cost when a registration storm commits thousands a second.
        self.conn.prepare_cached("BEGIN")?.execute([])?;
        let done = self
            .write_all(writes, now_ms)
            .and_then(|()| Ok(self.conn.prepare_cached("COMMIT")?.execute([]).map(drop)?));
        if done.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }

    fn write_all(&self, writes: &[Write], now_ms: i64) -> Result<(), StoreError> {
        let tx = &self.conn;
        for w in writes {
            match w {
                Write::UpsertBinding(b) => {
                    tx.prepare_cached(
                        "INSERT INTO registrations
                         (extension, contact, source, transport, expires_at, call_id, cseq)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (extension, contact) DO UPDATE SET
                         source = excluded.source, transport = excluded.transport,
                         expires_at = excluded.expires_at, call_id = excluded.call_id,
                         cseq = excluded.cseq",
                    )?
                    .execute(params![
                        b.extension.0,
                        b.contact,
                        b.source,
                        b.transport,
                        b.expires_at,
                        b.call_id,
                        b.cseq
                    ])?;
                }
                Write::RemoveBinding { extension, contact } => {
                    tx.prepare_cached(
                        "DELETE FROM registrations WHERE extension = ?1 AND contact = ?2",
                    )?
                    .execute(params![extension.0, contact])?;
                }
                Write::RemoveBindings(ext) => {
                    tx.prepare_cached("DELETE FROM registrations WHERE extension = ?1")?
                        .execute(params![ext.0])?;
                }
                Write::ExpireBindings { now } => {
                    tx.prepare_cached("DELETE FROM registrations WHERE expires_at <= ?1")?
                        .execute(params![now])?;
                }
                Write::StoreMessage(m) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO messages
                         (id, sender, recipient, content_type, body, created_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        m.id,
                        m.sender,
                        m.recipient.0,
                        m.content_type,
                        m.body,
                        now_ms
                    ])?;
                }
                Write::DeleteMessage(id) => {
                    tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                        .execute(params![id])?;
                }
                Write::Cdr(c) => {
                    tx.prepare_cached(
                        "INSERT INTO cdr (call_id, caller, callee, start_ms, answer_ms, end_ms,
                         duration_s, disposition, trunk, number, class, cost, caller_name,
                         transferred_by, transfer_kind)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                         ?15)",
                    )?
                    .execute(params![
                        c.call_id,
                        c.caller,
                        c.callee,
                        c.start_ms,
                        c.answer_ms,
                        c.end_ms,
                        c.duration_s,
                        c.disposition,
                        c.outbound.as_ref().and_then(|o| o.trunk.as_deref()),
                        c.outbound.as_ref().map(|o| o.number.as_str()),
                        c.outbound.as_ref().map(|o| o.class.as_str()),
                        c.outbound
                            .as_ref()
                            .and_then(|o| o.cost)
                            .map(|m| m.ten_thousandths()),
                        c.caller_name,
                        c.transfer.as_ref().map(|t| t.transferred_by.as_str()),
                        c.transfer.as_ref().map(|t| t.transfer_kind.as_str()),
                    ])?;
                }
                Write::LiveCall(l) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO live_calls
                         (call_id, caller, callee, start_ms, answer_ms, state)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        l.call_id,
                        l.caller,
                        l.callee,
                        l.start_ms,
                        l.answer_ms,
                        l.state
                    ])?;
                }
                Write::EndLiveCall(id) => {
                    tx.prepare_cached("DELETE FROM live_calls WHERE call_id = ?1")?
                        .execute(params![id])?;
                }
                Write::Ban(b) => Store::upsert_ban(tx, b)?,
                Write::Conference(c) => conference::apply(tx, c)?,
                Write::Settings(w) => settings::apply(tx, w)?,
                Write::TrunkState(t) => trunks::apply(tx, t)?,
                Write::TrunkHealth(h) => trunks::apply_health(tx, h)?,
                Write::Voicemail(w) => voicemail::apply(tx, w)?,
                Write::Recording(r) => recordings::insert(tx, r)?,
            }
        }
        Ok(())
    }

    // ---- bans ----

    fn upsert_ban(conn: &Connection, b: &StoredBan) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT INTO bans (addr, reason, banned_at, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (addr) DO UPDATE SET reason = excluded.reason,
             banned_at = excluded.banned_at, expires_at = excluded.expires_at",
        )?
        .execute(params![b.addr, b.reason, b.banned_at, b.expires_at])?;
        Ok(())
    }

    /// Records a ban (an operator's `ban add`).
    pub fn add_ban(&self, ban: &StoredBan) -> Result<(), StoreError> {
        Store::upsert_ban(&self.conn, ban)
    }

    /// Bans still in force at `now` (unix seconds), oldest first; expired rows are deleted.
    pub fn bans(&self, now: i64) -> Result<Vec<StoredBan>, StoreError> {
        self.conn
            .prepare_cached("DELETE FROM bans WHERE expires_at <= ?1")?
            .execute(params![now])?;
        let mut st = self.conn.prepare_cached(
            "SELECT addr, reason, banned_at, expires_at FROM bans ORDER BY banned_at, addr",
        )?;
        let rows = st.query_map([], |r| {
            Ok(StoredBan {
                addr: r.get(0)?,
                reason: r.get(1)?,
                banned_at: r.get(2)?,
                expires_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a ban; false if `addr` had none.
    pub fn remove_ban(&self, addr: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM bans WHERE addr = ?1")?
            .execute(params![addr])?
            > 0)
    }

    /// SQLite's `data_version`: it changes when another connection (the CLI's `ban remove`)
    /// commits, so the daemon re-reads bans only when someone else touched the database.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?)
    }

    /// The highest message id in use (ids are assigned by the daemon, the single writer).
    pub fn max_message_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM messages", [], |r| {
                r.get(0)
            })?)
    }

    /// Calls left live by a previous run died with it (crash, power loss): each becomes a CDR
    /// with disposition "interrupted", ended at `now_ms`, so no attempt goes unrecorded.
    pub fn recover_live_calls(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO cdr (call_id, caller, callee, start_ms, answer_ms, end_ms, duration_s,
             disposition)
             SELECT call_id, caller, callee, start_ms, answer_ms, ?1,
                    CASE WHEN answer_ms IS NULL THEN 0.0
                         ELSE MAX(?1 - answer_ms, 0) / 1000.0 END,
                    'interrupted'
             FROM live_calls",
            params![now_ms],
        )?;
        tx.execute("DELETE FROM live_calls", [])?;
        tx.commit()?;
        Ok(n)
    }

    pub fn live_calls(&self) -> Result<Vec<LiveCall>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT call_id, caller, callee, start_ms, answer_ms, state FROM live_calls
             ORDER BY start_ms",
        )?;
        let rows = st.query_map([], |r| {
            Ok(LiveCall {
                call_id: r.get(0)?,
                caller: r.get(1)?,
                callee: r.get(2)?,
                start_ms: r.get(3)?,
                answer_ms: r.get(4)?,
                state: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Runs passive WAL checkpoints every `every` on its own connection, forever (a daemon helper
/// thread). Passive checkpoints never block the writer.
pub fn checkpoint_loop(path: &Path, every: Duration) {
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "checkpoint thread could not open the database");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_millis(100));
    loop {
        std::thread::sleep(every);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "kentongan-pbx-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pbx.db");
        (Store::open(&path).unwrap(), dir)
    }

    #[test]
    fn users_store_ha1_only() {
        let (s, dir) = temp_store();
        let ext = Extension::parse("201").unwrap();
        s.add_user(&ext, "Front desk", "pbx.local", "s3cret-pw")
            .unwrap();
        assert!(matches!(
            s.add_user(&ext, "x", "pbx.local", "y"),
            Err(StoreError::UserExists(_))
        ));
        let ha1 = s.ha1("201", "pbx.local").unwrap().unwrap();
        assert_eq!(
            ha1,
            StoredHa1::from_password("201", "pbx.local", "s3cret-pw")
        );
        assert!(s.ha1("202", "pbx.local").unwrap().is_none());
        drop(s);
        let raw = std::fs::read(dir.join("pbx.db")).unwrap();
        let wal = std::fs::read(dir.join("pbx.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(9).any(|w| w == b"s3cret-pw"));
        }
    }

    #[test]
    fn admins_hash_only_and_last_admin_stays() {
        use crate::admins::{verify_password, AdminPassword};
        let (s, dir) = temp_store();
        assert_eq!(s.admin_count().unwrap(), 0);
        let root = AdminName::parse("admin").unwrap();
        let op = AdminName::parse("siti").unwrap();
        let pw = AdminPassword::new(&root, "kopi tubruk di pagi hari").unwrap();
        s.add_admin(&root, &pw.hash().unwrap(), Role::Admin, 7)
            .unwrap();
        assert!(matches!(
            s.add_admin(&root, "x", Role::Admin, 8),
            Err(StoreError::AdminExists(_))
        ));
        s.add_admin(&op, &pw.hash().unwrap(), Role::Operator, 9)
            .unwrap();
        let names: Vec<_> = s
            .admins()
            .unwrap()
            .into_iter()
            .map(|a| (a.name.to_string(), a.role))
            .collect();
        assert_eq!(
            names,
            vec![
                ("admin".into(), Role::Admin),
                ("siti".into(), Role::Operator)
            ]
        );
        let (role, hash) = s.admin_credentials(&root).unwrap().unwrap();
        assert_eq!(role, Role::Admin);
        assert!(verify_password(&hash, "kopi tubruk di pagi hari"));
        assert!(matches!(
            s.remove_admin(&root),
            Err(StoreError::LastAdmin(_))
        ));
        s.remove_admin(&op).unwrap();
        assert!(matches!(
            s.remove_admin(&op),
            Err(StoreError::NoSuchAdmin(_))
        ));
        let new = AdminPassword::new(&root, "teh manis hangat sore").unwrap();
        s.set_admin_hash(&root, &new.hash().unwrap()).unwrap();
        let (_, hash) = s.admin_credentials(&root).unwrap().unwrap();
        assert!(verify_password(&hash, "teh manis hangat sore"));
        assert!(!verify_password(&hash, "kopi tubruk di pagi hari"));
        assert_eq!(s.admin_language(&root).unwrap(), None, "never chosen");
        s.set_admin_language(&root, "en").unwrap();
        assert_eq!(s.admin_language(&root).unwrap().as_deref(), Some("en"));
        assert!(matches!(
            s.set_admin_language(&op, "id"),
            Err(StoreError::NoSuchAdmin(_))
        ));
        drop(s);
        let raw = std::fs::read(dir.join("pbx.db")).unwrap();
        let wal = std::fs::read(dir.join("pbx.db-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(10).any(|w| w == b"kopi tubru"));
        }
    }

    #[test]
    fn bans_persist_expire_and_signal_other_connections() {
        let (mut s, dir) = temp_store();
        let other = Store::open(&dir.join("pbx.db")).unwrap();
        let v0 = s.data_version().unwrap();
        let ban = |addr: &str, until| StoredBan {
            addr: addr.into(),
            reason: "scanner".into(),
            banned_at: 10,
            expires_at: until,
        };
        s.apply(&[Write::Ban(ban("203.0.113.1", 100))], 0).unwrap();
        // Our own commits do not change our data_version…
        assert_eq!(s.data_version().unwrap(), v0);
        other.add_ban(&ban("2001:db8::1", 50)).unwrap();
        // …another connection's do.
        assert_ne!(s.data_version().unwrap(), v0);
        assert_eq!(s.bans(20).unwrap().len(), 2);
        assert_eq!(s.bans(60).unwrap(), vec![ban("203.0.113.1", 100)]);
        assert!(other.remove_ban("203.0.113.1").unwrap());
        assert!(!other.remove_ban("203.0.113.1").unwrap());
        assert!(s.bans(0).unwrap().is_empty());
    }

    #[test]
    fn bindings_batch_and_expire() {
        let (mut s, _dir) = temp_store();
        let b = |c: &str, exp| {
            Write::UpsertBinding(Binding {
                extension: Extension("201".into()),
                contact: c.into(),
                source: "127.0.0.1:5062".into(),
                transport: "udp".into(),
                expires_at: exp,
                call_id: "x".into(),
                cseq: 1,
            })
        };
        s.apply(&[b("sip:201@a", 100), b("sip:201@b", 200)], 0)
            .unwrap();
        assert_eq!(s.bindings(50).unwrap().len(), 2);
        s.apply(&[Write::ExpireBindings { now: 150 }], 0).unwrap();
        assert_eq!(s.bindings(0).unwrap().len(), 1);
    }

    #[test]
    fn bindings_of_a_rowid_table_survive_its_rebuild() {
        let (s, dir) = temp_store();
        drop(s);
        let path = dir.join("pbx.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE registrations;
             CREATE TABLE registrations (
                 extension TEXT NOT NULL, contact TEXT NOT NULL, source TEXT NOT NULL,
                 transport TEXT NOT NULL, expires_at INTEGER NOT NULL, call_id TEXT NOT NULL,
                 cseq INTEGER NOT NULL, PRIMARY KEY (extension, contact));
             INSERT INTO registrations VALUES
                 ('201', 'sip:201@a', '127.0.0.1:5062', 'udp', 100, 'c1', 7),
                 ('202', 'sip:202@b', '[::1]:5064', 'tcp', 200, 'c2', 9);
             PRAGMA user_version = 0;",
        )
        .unwrap();
        drop(conn);
        for _ in 0..2 {
            let s = Store::open(&path).unwrap();
            let mut got = s.bindings(0).unwrap();
            got.sort_by(|a, b| a.contact.cmp(&b.contact));
            let got: Vec<_> = got
                .iter()
                .map(|b| {
                    (
                        b.extension.0.as_str(),
                        b.contact.as_str(),
                        b.expires_at,
                        b.cseq,
                    )
                })
                .collect();
            assert_eq!(
                got,
                [("201", "sip:201@a", 100, 7), ("202", "sip:202@b", 200, 9)]
            );
            let sql: String = s
                .conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = 'registrations'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        }
    }
}
