//! Voicemail to email in the database: each extension's address (`users.email`, set by
//! `user add|set … --email`) and the `email_queue` of mails still to send.
//!
//! A queue row is inserted by the same statement batch, in the same transaction, as the
//! voicemail row it announces ([`queue_for`]), so a crash either keeps both or neither: a
//! message is never mailed twice for being queued twice, nor forgotten. The sender
//! (`crate::mail`) takes due rows, and on success deletes the row; on failure it keeps it
//! with the error and the time of the next try.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{Extension, Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS email_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    voicemail_id INTEGER NOT NULL,
    mailbox TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    caller TEXT NOT NULL,
    caller_name TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    path TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT
);
";

/// Adds the `email` column to a users table made before voicemail to email.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('users') WHERE name = 'email'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE users ADD COLUMN email TEXT")?;
    }
    Ok(())
}

/// A mail waiting in the queue, as the sender and `voicemail queue` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedMail {
    pub id: i64,
    pub voicemail_id: i64,
    pub mailbox: String,
    pub to: String,
    pub caller: String,
    /// The caller's display name from SIP (untrusted text).
    pub caller_name: String,
    /// Unix milliseconds.
    pub received_ms: i64,
    pub duration_ms: i64,
    /// The message's WAV.
    pub path: String,
    /// Failed tries so far.
    pub attempts: i64,
    /// Unix milliseconds; not tried before then.
    pub next_attempt_ms: i64,
    /// Why the last try failed, for the operator.
    pub last_error: Option<String>,
}

/// Queues a mail for the voicemail row just inserted on `tx` (its id is `last_insert_rowid`),
/// to `to` (the config's address) or else the address stored for its mailbox's extension;
/// nothing when there is neither, or no such extension.
pub(super) fn queue_for(
    tx: &Connection,
    m: &super::VoicemailMessage,
    caller_name: &str,
    to: Option<&str>,
) -> Result<(), StoreError> {
    let voicemail_id = tx.last_insert_rowid();
    tx.prepare_cached(
        "INSERT INTO email_queue (voicemail_id, mailbox, to_addr, caller, caller_name,
             received_ms, duration_ms, path, next_attempt_ms)
         SELECT ?1, ?2, COALESCE(?8, email), ?3, ?4, ?5, ?6, ?7, ?5 FROM users
         WHERE extension = ?2 AND COALESCE(?8, email) IS NOT NULL AND COALESCE(?8, email) != ''",
    )?
    .execute(params![
        voicemail_id,
        m.mailbox,
        m.caller,
        caller_name,
        m.received_ms,
        m.duration_ms,
        m.path,
        to
    ])?;
    Ok(())
}

const COLUMNS: &str = "id, voicemail_id, mailbox, to_addr, caller, caller_name, received_ms,
    duration_ms, path, attempts, next_attempt_ms, last_error";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedMail> {
    Ok(QueuedMail {
        id: r.get(0)?,
        voicemail_id: r.get(1)?,
        mailbox: r.get(2)?,
        to: r.get(3)?,
        caller: r.get(4)?,
        caller_name: r.get(5)?,
        received_ms: r.get(6)?,
        duration_ms: r.get(7)?,
        path: r.get(8)?,
        attempts: r.get(9)?,
        next_attempt_ms: r.get(10)?,
        last_error: r.get(11)?,
    })
}

impl Store {
    /// Sets (`Some`) or clears (`None`) the address voicemail of `ext` is mailed to. The
    /// caller has checked the address (`config::valid_mail_address`).
    pub fn set_user_email(&self, ext: &Extension, email: Option<&str>) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE users SET email = ?2 WHERE extension = ?1",
            params![ext.0, email],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchUser(ext.0.clone()));
        }
        Ok(())
    }

    pub fn user_email(&self, ext: &Extension) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT email FROM users WHERE extension = ?1")?
            .query_row(params![ext.0], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Every queued mail, oldest first.
    pub fn mail_queue(&self) -> Result<Vec<QueuedMail>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM email_queue ORDER BY id"))?;
        let rows = st.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The oldest mail due at `now_ms`.
    pub fn next_due_mail(&self, now_ms: i64) -> Result<Option<QueuedMail>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM email_queue WHERE next_attempt_ms <= ?1
                 ORDER BY next_attempt_ms, id LIMIT 1"
            ))?
            .query_row(params![now_ms], row)
            .optional()?)
    }

    /// The relay took the mail (or it can never be sent: its message is gone): off the queue.
    pub fn mail_done(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM email_queue WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    /// A try failed: counted, its error kept, the next try at `next_attempt_ms`.
    pub fn mail_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE email_queue SET attempts = attempts + 1, last_error = ?2,
                 next_attempt_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![id, error, next_attempt_ms])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::store::{Extension, Store, VoicemailMessage, VoicemailWrite, Write};

    fn message(mailbox: &str) -> VoicemailMessage {
        VoicemailMessage {
            id: 0,
            mailbox: mailbox.into(),
            caller: "202".into(),
            received_ms: 1_000,
            duration_ms: 4_000,
            status: "new".into(),
            path: "/v/201/1.wav".into(),
        }
    }

    fn mailed(mailbox: &str) -> Write {
        Write::Voicemail(VoicemailWrite::InsertAndMail {
            message: message(mailbox),
            caller_name: "Budi\r\nBcc: x@evil".into(),
            to: None,
        })
    }

    #[test]
    fn a_mail_is_queued_with_its_message_only_for_an_extension_with_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pbx.db")).unwrap();
        for e in ["201", "202"] {
            s.add_user(&Extension(e.into()), "", "pbx.local", "pw-long-enough")
                .unwrap();
        }
        s.set_user_email(&Extension("201".into()), Some("ani@kantor.local"))
            .unwrap();
        assert!(s
            .set_user_email(&Extension("299".into()), Some("a@b.c"))
            .is_err());
        s.apply(&[mailed("201"), mailed("202")], 0).unwrap();
        let q = s.mail_queue().unwrap();
        assert_eq!(q.len(), 1, "{q:?}");
        let m = &q[0];
        let vm = s.voicemail_list("201").unwrap();
        assert_eq!(m.voicemail_id, vm[0].id);
        assert_eq!(
            (
                m.to.as_str(),
                m.caller.as_str(),
                m.attempts,
                m.next_attempt_ms
            ),
            ("ani@kantor.local", "202", 0, 1_000)
        );
        assert_eq!(m.caller_name, "Budi\r\nBcc: x@evil");
        assert_eq!(s.voicemail_list("202").unwrap().len(), 1);

        // A plain insert (no relay configured) queues nothing.
        s.apply(
            &[Write::Voicemail(VoicemailWrite::Insert(message("201")))],
            0,
        )
        .unwrap();
        assert_eq!(s.mail_queue().unwrap().len(), 1);

        assert_eq!(s.next_due_mail(999).unwrap(), None);
        assert_eq!(s.next_due_mail(1_000).unwrap().unwrap().id, m.id);
        s.mail_failed(m.id, "connection refused", 6_000).unwrap();
        assert_eq!(s.next_due_mail(5_999).unwrap(), None);
        let again = s.next_due_mail(6_000).unwrap().unwrap();
        assert_eq!(again.attempts, 1);
        assert_eq!(again.last_error.as_deref(), Some("connection refused"));
        s.mail_done(m.id).unwrap();
        assert!(s.mail_queue().unwrap().is_empty());

        s.set_user_email(&Extension("201".into()), None).unwrap();
        assert_eq!(s.user_email(&Extension("201".into())).unwrap(), None);

        // The config's address: used instead of the stored one, and without one.
        let to = |mailbox: &str| {
            Write::Voicemail(VoicemailWrite::InsertAndMail {
                message: message(mailbox),
                caller_name: String::new(),
                to: Some("budi@kantor.local".into()),
            })
        };
        s.set_user_email(&Extension("202".into()), Some("old@kantor.local"))
            .unwrap();
        s.apply(&[to("201"), to("202"), to("299")], 0).unwrap();
        let q: Vec<(String, String)> = s
            .mail_queue()
            .unwrap()
            .into_iter()
            .map(|m| (m.mailbox, m.to))
            .collect();
        assert_eq!(
            q,
            [
                ("201".into(), "budi@kantor.local".into()),
                ("202".into(), "budi@kantor.local".into())
            ]
        );
    }

    #[test]
    fn a_failed_commit_queues_no_mail() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pbx.db")).unwrap();
        s.add_user(&Extension("201".into()), "", "pbx.local", "pw-long-enough")
            .unwrap();
        s.set_user_email(&Extension("201".into()), Some("ani@kantor.local"))
            .unwrap();
        // The second write of the batch breaks the voicemail table's CHECK: the whole
        // transaction, first message and its mail included, is rolled back.
        let mut bad = message("201");
        bad.status = "broken".into();
        let r = s.apply(
            &[mailed("201"), Write::Voicemail(VoicemailWrite::Insert(bad))],
            0,
        );
        assert!(r.is_err());
        assert!(s.mail_queue().unwrap().is_empty());
        assert!(s.voicemail_list("201").unwrap().is_empty());
    }
}
