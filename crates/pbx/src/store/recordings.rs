//! Call recordings: one row per stereo WAV (the call's id, when it was answered, its parties,
//! its length, the file), the files in `[recording] directory`.
//!
//! As for voicemail, a recording is listed only when complete: its file is written under a
//! `.tmp-` name, synced and renamed before its row enters the batch. Expiry deletes the rows
//! first (one statement), then their files; files that no row lists are removed too.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use serde::Serialize;

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recordings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_start ON recordings (start_ms);
";

/// A stored call recording, as `recordings list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingRow {
    pub id: i64,
    /// The call's Call-ID, as in the CDR.
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    /// Unix milliseconds: when the call was answered (the recording's start).
    pub start_ms: i64,
    pub duration_ms: i64,
    pub path: String,
    /// A call through a trunk: the trunk and the number (called out, or the DID called in),
    /// read from the call's CDR by [`Store::recordings`]; not stored with the row.
    pub trunk: Option<String>,
    pub number: Option<String>,
}

/// Writes `<dir>/<name>.wav` atomically: temporary name, fsync, rename, fsync of the folder.
pub fn write_recording(dir: &Path, name: &str, wav: &[u8]) -> io::Result<PathBuf> {
    // Names are built from numbers and extensions; anything else would be a path trick.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || name.starts_with('.')
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a recording name"),
        ));
    }
    super::voicemail::write_wav(dir, name, wav)
}

pub(super) fn insert(tx: &Connection, r: &RecordingRow) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO recordings (call_id, caller, callee, start_ms, duration_ms, path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        r.call_id,
        r.caller,
        r.callee,
        r.start_ms,
        r.duration_ms,
        r.path
    ])?;
    Ok(())
}

impl Store {
    /// Every recording, oldest first, with the trunk and number of its call's CDR (the
    /// first trunk row of that Call-ID; one pass over the CDR, not one per recording).
    pub fn recordings(&self) -> Result<Vec<RecordingRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.id, r.call_id, r.caller, r.callee, r.start_ms, r.duration_ms, r.path,
                    c.trunk, c.number
             FROM recordings r
             LEFT JOIN (SELECT call_id, trunk, number, MIN(id) FROM cdr
                        WHERE trunk IS NOT NULL GROUP BY call_id) c
               ON c.call_id = r.call_id
             ORDER BY r.start_ms, r.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(RecordingRow {
                id: r.get(0)?,
                call_id: r.get(1)?,
                caller: r.get(2)?,
                callee: r.get(3)?,
                start_ms: r.get(4)?,
                duration_ms: r.get(5)?,
                path: r.get(6)?,
                trunk: r.get(7)?,
                number: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the rows of recordings started before `before_ms`, then the WAV files in `dir`
    /// that no row lists (theirs, temporary files, files a crash left). Returns (rows, files).
    pub fn expire_recordings(
        &mut self,
        before_ms: i64,
        dir: &Path,
    ) -> Result<(usize, usize), StoreError> {
        let rows = self
            .conn
            .prepare_cached("DELETE FROM recordings WHERE start_ms < ?1")?
            .execute(params![before_ms])?;
        let kept: HashSet<PathBuf> = self
            .recordings()?
            .into_iter()
            .map(|r| PathBuf::from(r.path))
            .collect();
        let mut files = 0;
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let path = e.path();
                let wav = path.extension().is_some_and(|x| x == "wav");
                if wav && !kept.contains(&path) && fs::remove_file(&path).is_ok() {
                    files += 1;
                }
            }
        }
        Ok((rows, files))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Write;

    fn row(start_ms: i64, path: &Path) -> RecordingRow {
        RecordingRow {
            id: 0,
            call_id: format!("c{start_ms}"),
            caller: "202".into(),
            callee: "201".into(),
            start_ms,
            duration_ms: 1000,
            path: path.display().to_string(),
            trunk: None,
            number: None,
        }
    }

    #[test]
    fn rows_list_and_expire_with_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pbx.db")).unwrap();
        let rec = dir.path().join("rec");
        let old = write_recording(&rec, "1000-202-201", b"RIFFold").unwrap();
        let new = write_recording(&rec, "9000-202-201", b"RIFFnew").unwrap();
        fs::write(rec.join(".tmp-crashed.wav"), b"x").unwrap();
        s.apply(
            &[
                Write::Recording(row(1000, &old)),
                Write::Recording(row(9000, &new)),
            ],
            0,
        )
        .unwrap();
        assert_eq!(s.recordings().unwrap().len(), 2);
        assert_eq!(s.expire_recordings(5000, &rec).unwrap(), (1, 2));
        let left = s.recordings().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].call_id, "c9000");
        assert!(new.is_file() && !old.exists());
        assert!(write_recording(&rec, "../x", b"").is_err());
    }

    #[test]
    fn a_trunk_calls_recording_is_listed_with_its_cdrs_trunk_and_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pbx.db")).unwrap();
        let cdr = |call_id: &str, trunk: Option<&str>, number: Option<&str>| {
            s.conn
                .execute(
                    "INSERT INTO cdr (call_id, caller, callee, start_ms, end_ms, duration_s,
                         disposition, trunk, number, class)
                     VALUES (?1, '201', '0812', 0, 1, 1.0, 'answered', ?2, ?3, 'mobile')",
                    params![call_id, trunk, number],
                )
                .unwrap();
        };
        cdr("c1000", Some("provider"), Some("+62812"));
        // A later row of the same call (a transfer) does not double the recording.
        cdr("c1000", Some("other"), Some("+62813"));
        cdr("c9000", None, None);
        let rec = dir.path().join("rec");
        s.apply(
            &[
                Write::Recording(row(1000, &rec.join("a.wav"))),
                Write::Recording(row(9000, &rec.join("b.wav"))),
            ],
            0,
        )
        .unwrap();
        let list = s.recordings().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0].trunk.as_deref(), list[0].number.as_deref()),
            (Some("provider"), Some("+62812"))
        );
        assert_eq!(
            (list[1].trunk.as_deref(), list[1].number.as_deref()),
            (None, None)
        );
    }
}
