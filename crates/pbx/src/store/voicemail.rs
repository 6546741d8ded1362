//! Voicemail in the database and on disk: one row per message (mailbox, caller, time,
//! duration, new/old, file), the WAV files under `<database dir>/voicemail/<mailbox>/`, and
//! the hashed mailbox PINs.
//!
//! A message is never listed half-written: its WAV is written under a `.tmp-` name, synced
//! and renamed ([`write_message`]) before its row goes into the daemon's batch, and the row
//! is one INSERT in that batch's transaction. A `kill -9` in between leaves a file without a
//! row, or a temporary file, which [`Store::clean_voicemail_dir`] removes at the next start.
//! Deleting goes the other way round: the row first, then the file.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS voicemail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox TEXT NOT NULL,
    caller TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('new', 'old')),
    path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS voicemail_mailbox ON voicemail (mailbox);
CREATE TABLE IF NOT EXISTS voicemail_pins (
    extension TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
";

pub(super) const TMP_PREFIX: &str = ".tmp-";

/// A greeting the mailbox owner records from the mailbox options: what callers hear when the
/// owner does not answer or is busy, and the owner's name, which the generated greetings read
/// in place of the extension's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GreetingKind {
    Unavailable,
    Busy,
    Name,
}

impl GreetingKind {
    pub const ALL: [GreetingKind; 3] = [
        GreetingKind::Unavailable,
        GreetingKind::Busy,
        GreetingKind::Name,
    ];

    /// The file name (without `.wav`) beside the mailbox's messages. Message names are
    /// `<unix ms>-<leg>`, so they never clash with these.
    pub fn file_stem(self) -> &'static str {
        match self {
            GreetingKind::Unavailable => "greeting-unavailable",
            GreetingKind::Busy => "greeting-busy",
            GreetingKind::Name => "greeting-name",
        }
    }
}

/// Where `mailbox`'s recorded greeting of `kind` is (whether or not one was recorded).
pub fn greeting_path(root: &Path, mailbox: &str, kind: GreetingKind) -> PathBuf {
    root.join(mailbox).join(format!("{}.wav", kind.file_stem()))
}

/// A mailbox PIN as typed on a keypad: 4 to 16 digits. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct VoicemailPin(String);

impl VoicemailPin {
    pub fn parse(s: &str) -> Option<VoicemailPin> {
        ((4..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| VoicemailPin(s.to_owned()))
    }

    /// Its argon2id hash, the only form that is stored.
    pub fn hash(&self) -> Result<String, crate::admins::AdminError> {
        crate::admins::hash_secret(&self.0)
    }

    /// Whether `typed` matches a stored hash.
    pub fn verify(hash: &str, typed: &str) -> bool {
        crate::admins::verify_password(hash, typed)
    }
}

impl std::fmt::Debug for VoicemailPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoicemailPin(****)")
    }
}

/// What `user add` stores with a new extension besides its password.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewUserExtras<'a> {
    /// The mailbox PIN's argon2id hash.
    pub pin_hash: Option<&'a str>,
    /// A `[[calling_rights]]` name.
    pub rights: Option<&'a str>,
    /// Where voicemail is mailed (already checked).
    pub email: Option<&'a str>,
}

/// A stored message, as `voicemail list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoicemailMessage {
    pub id: i64,
    pub mailbox: String,
    /// The caller's extension or number, as the PBX knew it.
    pub caller: String,
    /// Unix milliseconds.
    pub received_ms: i64,
    pub duration_ms: i64,
    /// `new` until listened to in the mailbox, then `old`.
    pub status: String,
    pub path: String,
}

/// A change to the voicemail table, batched with the daemon's other writes.
#[derive(Debug, Clone)]
pub enum VoicemailWrite {
    /// A message whose file is already in place (`id` is ignored: the database numbers it).
    Insert(VoicemailMessage),
    /// As `Insert`, and a mail queued in the same transaction when the mailbox's extension
    /// has an address (`[voicemail] smtp` is set). `caller_name` is the SIP display name;
    /// `to`, the address `[[extension_settings]] email` gives, used instead of the one
    /// `user set --email` stored.
    InsertAndMail {
        message: VoicemailMessage,
        caller_name: String,
        to: Option<String>,
    },
    MarkOld(i64),
    Delete(i64),
    /// A PIN changed by phone: the extension and the new PIN's argon2id hash.
    SetPin {
        extension: String,
        hash: String,
    },
}

/// Where messages live: `voicemail/` next to the database.
pub fn voicemail_root(database: &Path) -> PathBuf {
    database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("voicemail")
}

/// Writes a message's WAV into `<root>/<mailbox>/<name>.wav` atomically: temporary name,
/// fsync, rename, fsync of the folder. Returns the final path.
pub fn write_message(root: &Path, mailbox: &str, name: &str, wav: &[u8]) -> io::Result<PathBuf> {
    // Mailboxes are extension numbers (digits); anything else would be a path trick.
    if mailbox.is_empty() || !mailbox.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{mailbox:?} is not a mailbox name"),
        ));
    }
    write_wav(&root.join(mailbox), name, wav)
}

/// Writes `<dir>/<name>.wav` atomically: under a [`TMP_PREFIX`] name, fsync, rename, fsync of
/// the folder; a failure leaves no temporary file. Voicemail and call recordings both use it.
pub(super) fn write_wav(dir: &Path, name: &str, wav: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{TMP_PREFIX}{name}.wav"));
    let path = dir.join(format!("{name}.wav"));
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(wav)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(path)
}

fn insert(tx: &Connection, m: &VoicemailMessage) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO voicemail (mailbox, caller, received_ms, duration_ms, status, path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        m.mailbox,
        m.caller,
        m.received_ms,
        m.duration_ms,
        m.status,
        m.path
    ])?;
    Ok(())
}

pub(super) fn apply(tx: &Connection, w: &VoicemailWrite) -> Result<(), StoreError> {
    match w {
        VoicemailWrite::Insert(m) => insert(tx, m)?,
        VoicemailWrite::InsertAndMail {
            message,
            caller_name,
            to,
        } => {
            insert(tx, message)?;
            super::mail::queue_for(tx, message, caller_name, to.as_deref())?;
        }
        VoicemailWrite::MarkOld(id) => {
            tx.prepare_cached("UPDATE voicemail SET status = 'old' WHERE id = ?1")?
                .execute(params![id])?;
        }
        VoicemailWrite::Delete(id) => {
            tx.prepare_cached("DELETE FROM voicemail WHERE id = ?1")?
                .execute(params![id])?;
        }
        VoicemailWrite::SetPin { extension, hash } => {
            tx.prepare_cached(
                "INSERT INTO voicemail_pins (extension, hash) VALUES (?1, ?2)
                 ON CONFLICT (extension) DO UPDATE SET hash = excluded.hash",
            )?
            .execute(params![extension, hash])?;
        }
    }
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VoicemailMessage> {
    Ok(VoicemailMessage {
        id: r.get(0)?,
        mailbox: r.get(1)?,
        caller: r.get(2)?,
        received_ms: r.get(3)?,
        duration_ms: r.get(4)?,
        status: r.get(5)?,
        path: r.get(6)?,
    })
}

const COLUMNS: &str = "id, mailbox, caller, received_ms, duration_ms, status, path";

impl Store {
    /// A mailbox's messages, oldest first.
    pub fn voicemail_list(&self, mailbox: &str) -> Result<Vec<VoicemailMessage>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM voicemail WHERE mailbox = ?1 ORDER BY received_ms, id"
        ))?;
        let rows = st.query_map(params![mailbox], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn voicemail_message(
        &self,
        mailbox: &str,
        id: i64,
    ) -> Result<Option<VoicemailMessage>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM voicemail WHERE mailbox = ?1 AND id = ?2"
            ))?
            .query_row(params![mailbox, id], row)
            .optional()?)
    }

    /// A message by id alone (the daemon's own lookups).
    pub fn voicemail_by_id(&self, id: i64) -> Result<Option<VoicemailMessage>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM voicemail WHERE id = ?1"))?
            .query_row(params![id], row)
            .optional()?)
    }

    /// (new, old) messages in a mailbox.
    pub fn voicemail_counts(&self, mailbox: &str) -> Result<(u32, u32), StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(status = 'new'), 0), COALESCE(SUM(status = 'old'), 0)
             FROM voicemail WHERE mailbox = ?1",
            )?
            .query_row(params![mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    /// Every mailbox with messages and its (new, old) counts.
    pub fn voicemail_all_counts(&self) -> Result<Vec<(String, u32, u32)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT mailbox, SUM(status = 'new'), SUM(status = 'old')
             FROM voicemail GROUP BY mailbox",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a message: its row (committed), then its file. False if there was none.
    pub fn delete_voicemail(&self, mailbox: &str, id: i64) -> Result<bool, StoreError> {
        let Some(m) = self.voicemail_message(mailbox, id)? else {
            return Ok(false);
        };
        self.conn.execute(
            "DELETE FROM voicemail WHERE mailbox = ?1 AND id = ?2",
            params![mailbox, id],
        )?;
        // A file left by a crash here has no row; the daemon's start removes it.
        let _ = fs::remove_file(&m.path);
        Ok(true)
    }

    /// At the daemon's start: removes temporary files and files no row lists (a crash
    /// between rename and commit) under `root`. Returns how many were removed.
    pub fn clean_voicemail_dir(&self, root: &Path) -> Result<usize, StoreError> {
        let listed: std::collections::HashSet<PathBuf> = {
            let mut st = self.conn.prepare("SELECT path FROM voicemail")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(PathBuf::from)
                .collect()
        };
        let mut removed = 0;
        let Ok(boxes) = fs::read_dir(root) else {
            return Ok(0);
        };
        for dir in boxes.flatten() {
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for f in files.flatten() {
                let path = f.path();
                let name = f.file_name();
                let tmp = name.to_string_lossy().starts_with(TMP_PREFIX);
                // A recorded greeting has no row, and is kept.
                let mailbox = dir.file_name().to_string_lossy().into_owned();
                let wav = path.extension().is_some_and(|e| e == "wav")
                    && !GreetingKind::ALL
                        .iter()
                        .any(|k| path == greeting_path(root, &mailbox, *k));
                if (tmp || (wav && !listed.contains(&path))) && fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Sets (or replaces) an extension's mailbox PIN, as an argon2id PHC hash.
    pub fn set_voicemail_pin(&self, ext: &str, hash: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO voicemail_pins (extension, hash) VALUES (?1, ?2)
             ON CONFLICT (extension) DO UPDATE SET hash = excluded.hash",
            params![ext, hash],
        )?;
        Ok(())
    }

    /// `add_user` and the mailbox PIN's hash in one transaction: both or neither.
    pub fn add_user_with_pin(
        &self,
        ext: &super::Extension,
        name: &str,
        realm: &str,
        password: &str,
        pin_hash: &str,
    ) -> Result<(), StoreError> {
        self.add_user_with(
            ext,
            name,
            realm,
            password,
            &NewUserExtras {
                pin_hash: Some(pin_hash),
                ..NewUserExtras::default()
            },
        )
    }

    /// `add_user` with what `user add` may give besides (PIN hash, calling rights, mail
    /// address), all in one transaction: everything or nothing.
    pub fn add_user_with(
        &self,
        ext: &super::Extension,
        name: &str,
        realm: &str,
        password: &str,
        extras: &NewUserExtras<'_>,
    ) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let done = self
            .add_user(ext, name, realm, password)
            .and_then(|()| match extras.pin_hash {
                Some(h) => self.set_voicemail_pin(&ext.0, h),
                None => Ok(()),
            })
            .and_then(|()| match extras.rights {
                Some(r) => self.set_user_rights(ext, Some(r)),
                None => Ok(()),
            })
            .and_then(|()| match extras.email {
                Some(e) => self.set_user_email(ext, Some(e)),
                None => Ok(()),
            })
            .and_then(|()| Ok(self.conn.execute_batch("COMMIT")?));
        if done.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }

    pub fn voicemail_pin_hash(&self, ext: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT hash FROM voicemail_pins WHERE extension = ?1")?
            .query_row(params![ext], |r| r.get(0))
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::Write;

    fn msg(mailbox: &str, path: &Path, at: i64) -> VoicemailMessage {
        VoicemailMessage {
            id: 0,
            mailbox: mailbox.into(),
            caller: "202".into(),
            received_ms: at,
            duration_ms: 3000,
            status: "new".into(),
            path: path.display().to_string(),
        }
    }

    #[test]
    fn a_message_is_listed_counted_marked_and_deleted_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pbx.db");
        let mut s = Store::open(&db).unwrap();
        let root = voicemail_root(&db);
        assert_eq!(root, dir.path().join("voicemail"));
        let path = write_message(&root, "201", "1000-1", b"RIFF....").unwrap();
        assert_eq!(path, root.join("201/1000-1.wav"));
        assert!(!root.join("201/.tmp-1000-1.wav").exists());
        s.apply(
            &[Write::Voicemail(VoicemailWrite::Insert(msg(
                "201", &path, 1000,
            )))],
            0,
        )
        .unwrap();
        let list = s.voicemail_list("201").unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].caller, "202");
        assert_eq!(s.voicemail_counts("201").unwrap(), (1, 0));
        assert_eq!(s.voicemail_counts("202").unwrap(), (0, 0));
        s.apply(&[Write::Voicemail(VoicemailWrite::MarkOld(list[0].id))], 0)
            .unwrap();
        assert_eq!(s.voicemail_counts("201").unwrap(), (0, 1));
        assert_eq!(
            s.voicemail_all_counts().unwrap(),
            vec![("201".into(), 0, 1)]
        );
        // Another mailbox's id is not this one's.
        assert!(!s.delete_voicemail("202", list[0].id).unwrap());
        assert!(s.delete_voicemail("201", list[0].id).unwrap());
        assert!(!path.exists());
        assert!(s.voicemail_list("201").unwrap().is_empty());
    }

    #[test]
    fn start_removes_temporary_and_unlisted_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pbx.db");
        let mut s = Store::open(&db).unwrap();
        let root = voicemail_root(&db);
        let kept = write_message(&root, "201", "1", b"a").unwrap();
        let unlisted = write_message(&root, "201", "2", b"b").unwrap();
        let tmp = root.join("201/.tmp-3.wav");
        fs::write(&tmp, b"half").unwrap();
        let greeting = write_message(&root, "201", "greeting-unavailable", b"g").unwrap();
        assert_eq!(
            greeting,
            greeting_path(&root, "201", GreetingKind::Unavailable)
        );
        let busy = write_message(&root, "201", GreetingKind::Busy.file_stem(), b"b").unwrap();
        let name = write_message(&root, "201", GreetingKind::Name.file_stem(), b"n").unwrap();
        let half_greeting = root.join(format!("201/{TMP_PREFIX}greeting-busy.wav"));
        fs::write(&half_greeting, b"half").unwrap();
        s.apply(
            &[Write::Voicemail(VoicemailWrite::Insert(msg(
                "201", &kept, 1,
            )))],
            0,
        )
        .unwrap();
        assert_eq!(s.clean_voicemail_dir(&root).unwrap(), 3);
        assert!(kept.exists());
        assert!(greeting.exists() && busy.exists() && name.exists());
        assert!(!half_greeting.exists());
        assert!(!unlisted.exists());
        assert!(!tmp.exists());
        assert_eq!(s.clean_voicemail_dir(&dir.path().join("none")).unwrap(), 0);
    }

    #[test]
    fn mailbox_names_cannot_leave_the_voicemail_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_message(dir.path(), "../etc", "x", b"a").is_err());
        assert!(write_message(dir.path(), "", "x", b"a").is_err());
    }

    #[test]
    fn a_pin_is_digits_and_only_its_hash_verifies() {
        for bad in ["", "123", "12a4", "12345678901234567", "1234 "] {
            assert!(VoicemailPin::parse(bad).is_none(), "{bad:?}");
        }
        let pin = VoicemailPin::parse("4821").unwrap();
        assert_eq!(format!("{pin:?}"), "VoicemailPin(****)");
        let hash = pin.hash().unwrap();
        assert!(hash.starts_with("$argon2id$") && !hash.contains("4821"));
        assert!(VoicemailPin::verify(&hash, "4821"));
        assert!(!VoicemailPin::verify(&hash, "4822"));
    }

    #[test]
    fn pins_are_stored_as_given_hashes_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("pbx.db")).unwrap();
        assert_eq!(s.voicemail_pin_hash("201").unwrap(), None);
        s.set_voicemail_pin("201", "$argon2id$a").unwrap();
        // A user that exists already: neither it nor the PIN changes.
        let ext = crate::store::Extension("202".into());
        s.add_user_with_pin(&ext, "", "pbx.local", "pw-202-long", "$argon2id$c")
            .unwrap();
        assert!(s
            .add_user_with_pin(&ext, "", "pbx.local", "pw", "$argon2id$d")
            .is_err());
        assert_eq!(
            s.voicemail_pin_hash("202").unwrap().as_deref(),
            Some("$argon2id$c")
        );
        s.set_voicemail_pin("201", "$argon2id$b").unwrap();
        assert_eq!(
            s.voicemail_pin_hash("201").unwrap().as_deref(),
            Some("$argon2id$b")
        );
        // Changed by phone, in the daemon's batch.
        let mut s = s;
        s.apply(
            &[Write::Voicemail(VoicemailWrite::SetPin {
                extension: "201".into(),
                hash: "$argon2id$e".into(),
            })],
            0,
        )
        .unwrap();
        assert_eq!(
            s.voicemail_pin_hash("201").unwrap().as_deref(),
            Some("$argon2id$e")
        );
    }
}
