//! The database's schema version (`PRAGMA user_version`) and the steps that bring an older
//! database to it, so an upgraded appliance keeps every extension, CDR, message and ban, and a
//! database written by a newer Kentongan is refused instead of misread.
//!
//! Each step looks at what is there (a table, a column) before changing it, so one pass takes
//! every shape a database has had since 0.1 to the current one; version 0 is "before
//! versions", and all of those shapes. A schema change adds its step at the end of [`STEPS`]
//! and bumps [`SCHEMA_VERSION`]. The whole pass is one transaction: a failure (a full disk, a
//! kill) leaves the database as it was.

use std::path::Path;

use rusqlite::Connection;

use super::{
    cdr, conference, mail, migrate_registrations, recordings, rights, settings, trunks, voicemail,
    web, StoreError,
};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 5;

type Step = fn(&Connection) -> rusqlite::Result<()>;

/// Every step, in order. Tables first (`CREATE … IF NOT EXISTS`), then the columns and
/// rebuilds older shapes lack.
const STEPS: &[(&str, Step)] = &[
    ("core tables", |c| c.execute_batch(super::SCHEMA)),
    ("calling rights on users", rights::migrate),
    ("outbound CDR columns", cdr::migrate_cdr),
    ("registrations without rowid", migrate_registrations),
    ("conference rooms", |c| c.execute_batch(conference::SCHEMA)),
    ("extension settings", |c| c.execute_batch(settings::SCHEMA)),
    ("trunk state", |c| c.execute_batch(trunks::SCHEMA)),
    ("call waiting setting", settings::migrate),
    ("voicemail", |c| c.execute_batch(voicemail::SCHEMA)),
    ("recordings", |c| c.execute_batch(recordings::SCHEMA)),
    ("CDR caller names", web::migrate),
    // Version 2: voicemail to email.
    ("mail queue", |c| c.execute_batch(mail::SCHEMA)),
    ("email addresses of users", mail::migrate),
    // Version 3: the web admin's hang-up requests (`call_commands`, in the core tables).
    // Version 4: who transferred a call, and how.
    ("transfer CDR columns", cdr::migrate_cdr_transfer),
    // Version 5: each admin account's web page language.
    ("admin page language", web::migrate_admin_language),
];

/// The version `conn`'s database has.
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Refuses a database written by a newer build (a downgrade), before anything touches it.
pub(super) fn refuse_newer(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found = schema_version(conn).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.display().to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the database at `path` to [`SCHEMA_VERSION`], or refuses a newer one.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    refuse_newer(conn, path)?;
    let sql = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    if schema_version(conn).map_err(sql)? == SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE: a daemon and a CLI opening an old database at once migrate it once; the
    // second waits (busy_timeout), then finds it current.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
    let run = || -> rusqlite::Result<()> {
        if schema_version(conn)? >= SCHEMA_VERSION {
            return Ok(());
        }
        for (_, step) in STEPS {
            step(conn)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
    };
    match run() {
        Ok(()) => conn.execute_batch("COMMIT").map_err(sql),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(sql(e))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{Extension, Store};

    /// Databases as earlier Kentongan builds left them (their schema from git history, rows
    /// as those builds wrote them): the first daemon, and the last before the store was split
    /// per service.
    const EARLIER: &[(&str, &str)] = &[
        (
            "54f36e6 (first daemon)",
            include_str!("../../tests/schemas/54f36e6.sql"),
        ),
        (
            "1f08e76 (bans, registrations without rowid)",
            include_str!("../../tests/schemas/1f08e76.sql"),
        ),
        (
            "06db2cd (every service, no schema version)",
            include_str!("../../tests/schemas/06db2cd.sql"),
        ),
    ];

    fn db_from(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbx.db");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        (dir, path)
    }

    #[test]
    fn every_earlier_schema_opens_with_its_rows_kept() {
        for (version, sql) in EARLIER {
            let (_dir, path) = db_from(sql);
            let mut store = Store::open(&path).unwrap_or_else(|e| panic!("{version}: {e}"));
            assert_eq!(
                schema_version(&store.conn).unwrap(),
                SCHEMA_VERSION,
                "{version}"
            );
            let users = store.users().unwrap();
            assert!(
                users.iter().any(|u| u.extension.0 == "201"),
                "{version}: extension 201 lost: {users:?}"
            );
            let cdrs = store.cdrs().unwrap();
            assert!(
                cdrs.iter()
                    .any(|c| c.call_id == "call-1" && c.callee == "202"),
                "{version}: the CDR of call-1 lost: {cdrs:?}"
            );
            let bindings = store.bindings(0).unwrap();
            assert!(
                bindings
                    .iter()
                    .any(|b| b.extension == Extension("201".into())),
                "{version}: 201's registration lost"
            );
            // What the upgraded build writes lands in the migrated tables.
            store
                .apply(
                    &[crate::store::Write::Cdr(crate::store::Cdr::refused(
                        "after".into(),
                        "201".into(),
                        "0812".into(),
                        2_000,
                        "refused",
                    ))],
                    2_000,
                )
                .unwrap_or_else(|e| panic!("{version}: writing a CDR after the upgrade: {e}"));
            drop(store);
            // Opening again changes nothing and needs no step.
            let again = Store::open(&path).unwrap();
            assert_eq!(again.cdrs().unwrap().len(), cdrs.len() + 1);
        }
    }

    #[test]
    fn a_database_one_version_behind_gains_what_that_version_added() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbx.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "ALTER TABLE admins DROP COLUMN language; PRAGMA user_version = {};",
            SCHEMA_VERSION - 1
        ))
        .unwrap();
        drop(conn);
        let store = Store::open(&path).unwrap();
        let has: bool = store
            .conn
            .query_row(
                "SELECT count(*) = 1 FROM pragma_table_info('admins') WHERE name = 'language'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(has, "version {SCHEMA_VERSION}'s column was not added");
        assert_eq!(schema_version(&store.conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_from_a_newer_kentongan_is_refused_and_left_alone() {
        let (_dir, path) = db_from(&format!(
            "CREATE TABLE future (x); PRAGMA user_version = {};",
            SCHEMA_VERSION + 1
        ));
        let before = std::fs::read(&path).unwrap();
        match Store::open(&path) {
            Err(StoreError::NewerSchema {
                found, supported, ..
            }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a newer schema opened"),
        }
        let msg = Store::open(&path).err().unwrap().to_string();
        assert!(msg.contains("downgrade is refused"), "{msg}");
        assert!(
            std::fs::read(&path).unwrap() == before,
            "the newer database was changed"
        );
    }

    #[test]
    fn a_failed_step_leaves_the_old_database_as_it_was() {
        // A CDR table whose rows break the rebuild of registrations: a duplicate binding
        // the WITHOUT ROWID table's primary key refuses.
        let (_dir, path) = db_from(
            "CREATE TABLE registrations (extension TEXT, contact TEXT, source TEXT,
                 transport TEXT, expires_at INTEGER, call_id TEXT, cseq INTEGER);
             INSERT INTO registrations VALUES ('201','sip:a','x','udp',1,'c',1);
             INSERT INTO registrations VALUES ('201','sip:a','x','udp',1,'c',1);",
        );
        assert!(Store::open(&path).is_err());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), 0);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 1, "the failed pass created tables");
    }
}
