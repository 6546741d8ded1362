//! Per-extension call settings in the database: call forwarding (all, busy, no answer) and do
//! not disturb. The CLI (`forward`, `dnd`) writes them directly, one transaction per change; the
//! daemon writes the changes a phone makes with feature codes in its batch ([`SettingsWrite`])
//! and re-reads the table when another process has committed (`data_version`).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{Extension, Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS extension_settings (
    extension TEXT PRIMARY KEY,
    forward_all TEXT,
    forward_busy TEXT,
    forward_no_answer TEXT,
    dnd INTEGER NOT NULL DEFAULT 0,
    call_waiting_off INTEGER NOT NULL DEFAULT 0
);
";

/// Adds the `call_waiting_off` column to a table made before it existed (call waiting on).
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('extension_settings')
         WHERE name = 'call_waiting_off'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE extension_settings
             ADD COLUMN call_waiting_off INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    Ok(())
}

/// Which calls a forward takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardKind {
    /// Every call (CFU), before the phone rings.
    All,
    /// Calls the phone answers busy (486), and calls while DND is on (CFB).
    Busy,
    /// Calls unanswered after `forward_no_answer_seconds`, and calls while no phone is
    /// registered (CFNA).
    NoAnswer,
}

impl ForwardKind {
    pub const ALL: [ForwardKind; 3] = [ForwardKind::All, ForwardKind::Busy, ForwardKind::NoAnswer];

    /// `all`, `busy`, `no-answer` (the CLI's words).
    pub fn parse(s: &str) -> Option<ForwardKind> {
        match s {
            "all" => Some(ForwardKind::All),
            "busy" => Some(ForwardKind::Busy),
            "no-answer" => Some(ForwardKind::NoAnswer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ForwardKind::All => "all",
            ForwardKind::Busy => "busy",
            ForwardKind::NoAnswer => "no-answer",
        }
    }
}

impl std::fmt::Display for ForwardKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extension's stored call settings (all off when it has no row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallSettings {
    pub forward_all: Option<String>,
    pub forward_busy: Option<String>,
    pub forward_no_answer: Option<String>,
    pub dnd: bool,
    /// `*71` turned call waiting off: a call while the extension is in a call is busy.
    pub call_waiting_off: bool,
}

impl CallSettings {
    pub fn forward(&self, kind: ForwardKind) -> Option<&str> {
        match kind {
            ForwardKind::All => self.forward_all.as_deref(),
            ForwardKind::Busy => self.forward_busy.as_deref(),
            ForwardKind::NoAnswer => self.forward_no_answer.as_deref(),
        }
    }

    pub fn set_forward(&mut self, kind: ForwardKind, target: Option<String>) {
        match kind {
            ForwardKind::All => self.forward_all = target,
            ForwardKind::Busy => self.forward_busy = target,
            ForwardKind::NoAnswer => self.forward_no_answer = target,
        }
    }
}

/// A settings change the daemon makes (a phone's feature code), written in its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsWrite {
    Forward {
        extension: Extension,
        kind: ForwardKind,
        target: Option<String>,
    },
    Dnd {
        extension: Extension,
        on: bool,
    },
    CallWaiting {
        extension: Extension,
        on: bool,
    },
}

pub(super) fn apply(tx: &Connection, w: &SettingsWrite) -> Result<(), StoreError> {
    match w {
        SettingsWrite::Forward {
            extension,
            kind,
            target,
        } => {
            let sql = match kind {
                ForwardKind::All => {
                    "INSERT INTO extension_settings (extension, forward_all) VALUES (?1, ?2)
                     ON CONFLICT (extension) DO UPDATE SET forward_all = excluded.forward_all"
                }
                ForwardKind::Busy => {
                    "INSERT INTO extension_settings (extension, forward_busy) VALUES (?1, ?2)
                     ON CONFLICT (extension) DO UPDATE SET forward_busy = excluded.forward_busy"
                }
                ForwardKind::NoAnswer => {
                    "INSERT INTO extension_settings (extension, forward_no_answer) VALUES (?1, ?2)
                     ON CONFLICT (extension) DO UPDATE
                     SET forward_no_answer = excluded.forward_no_answer"
                }
            };
            tx.prepare_cached(sql)?
                .execute(params![extension.0, target])?;
        }
        SettingsWrite::Dnd { extension, on } => {
            tx.prepare_cached(
                "INSERT INTO extension_settings (extension, dnd) VALUES (?1, ?2)
                 ON CONFLICT (extension) DO UPDATE SET dnd = excluded.dnd",
            )?
            .execute(params![extension.0, on])?;
        }
        SettingsWrite::CallWaiting { extension, on } => {
            tx.prepare_cached(
                "INSERT INTO extension_settings (extension, call_waiting_off) VALUES (?1, ?2)
                 ON CONFLICT (extension) DO UPDATE SET call_waiting_off = excluded.call_waiting_off",
            )?
            .execute(params![extension.0, !on])?;
        }
    }
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallSettings> {
    Ok(CallSettings {
        forward_all: r.get(0)?,
        forward_busy: r.get(1)?,
        forward_no_answer: r.get(2)?,
        dnd: r.get(3)?,
        call_waiting_off: r.get(4)?,
    })
}

impl Store {
    /// One extension's settings (defaults when it has none stored).
    pub fn call_settings(&self, ext: &Extension) -> Result<CallSettings, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT forward_all, forward_busy, forward_no_answer, dnd, call_waiting_off
                 FROM extension_settings WHERE extension = ?1",
            )?
            .query_row(params![ext.0], row)
            .optional()?
            .unwrap_or_default())
    }

    /// Every stored extension's settings (the daemon's copy).
    pub fn all_call_settings(&self) -> Result<HashMap<Extension, CallSettings>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT forward_all, forward_busy, forward_no_answer, dnd, call_waiting_off, extension
             FROM extension_settings",
        )?;
        let rows = st.query_map([], |r| Ok((Extension(r.get(5)?), row(r)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Applies one change in its own transaction (the CLI's `forward` and `dnd`).
    pub fn change_settings(&mut self, w: &SettingsWrite) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        apply(&tx, w)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_persist_and_default_to_off() {
        let dir = std::env::temp_dir().join(format!("kentongan-settings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pbx.db");
        let mut s = Store::open(&path).unwrap();
        let ext = Extension("201".into());
        assert_eq!(s.call_settings(&ext).unwrap(), CallSettings::default());
        let v0 = Store::open(&path).unwrap();
        let before = v0.data_version().unwrap();
        s.change_settings(&SettingsWrite::Forward {
            extension: ext.clone(),
            kind: ForwardKind::Busy,
            target: Some("202".into()),
        })
        .unwrap();
        s.change_settings(&SettingsWrite::Dnd {
            extension: ext.clone(),
            on: true,
        })
        .unwrap();
        // Another connection (the daemon) sees that something changed.
        assert_ne!(v0.data_version().unwrap(), before);
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let got = s.call_settings(&ext).unwrap();
        assert_eq!(got.forward(ForwardKind::Busy), Some("202"));
        assert_eq!(got.forward(ForwardKind::All), None);
        assert!(got.dnd);
        s.change_settings(&SettingsWrite::Forward {
            extension: ext.clone(),
            kind: ForwardKind::Busy,
            target: None,
        })
        .unwrap();
        let all = s.all_call_settings().unwrap();
        assert_eq!(
            all.get(&ext),
            Some(&CallSettings {
                dnd: true,
                ..CallSettings::default()
            })
        );
        // A hostile number is data, never SQL.
        s.change_settings(&SettingsWrite::Forward {
            extension: Extension("x'); DROP TABLE users; --".into()),
            kind: ForwardKind::All,
            target: Some("1".into()),
        })
        .unwrap();
        assert!(s.users().is_ok());
    }

    #[test]
    fn call_waiting_persists_and_old_tables_gain_the_column() {
        let dir = std::env::temp_dir().join(format!("kentongan-cw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pbx.db");
        // A table from before call waiting, with a row.
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE extension_settings (extension TEXT PRIMARY KEY, forward_all TEXT,
             forward_busy TEXT, forward_no_answer TEXT, dnd INTEGER NOT NULL DEFAULT 0);
             INSERT INTO extension_settings (extension, dnd) VALUES ('201', 1);",
        )
        .unwrap();
        drop(old);
        let mut s = Store::open(&path).unwrap();
        let ext = Extension("201".into());
        let got = s.call_settings(&ext).unwrap();
        assert!(got.dnd && !got.call_waiting_off);
        s.change_settings(&SettingsWrite::CallWaiting {
            extension: ext.clone(),
            on: false,
        })
        .unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert!(s.call_settings(&ext).unwrap().call_waiting_off);
        s.change_settings(&SettingsWrite::CallWaiting {
            extension: ext.clone(),
            on: true,
        })
        .unwrap();
        assert!(!s.all_call_settings().unwrap()[&ext].call_waiting_off);
    }

    #[test]
    fn kinds_read_as_the_cli_writes_them() {
        for k in ForwardKind::ALL {
            assert_eq!(ForwardKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ForwardKind::parse("noanswer"), None);
    }
}
