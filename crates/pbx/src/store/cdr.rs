//! Call detail records: one row per call attempt, written when the call ends; calls out
//! through a trunk add the trunk, the normalised number, its class and the cost. A transfer
//! ends a row for the parties before it (disposition `transferred`) and marks the call's
//! later row, and an attended transfer's consultation call, with who transferred and how.

use rusqlite::Connection;
use serde::Serialize;

use super::{Store, StoreError};

/// One call attempt, written when the call ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cdr {
    pub call_id: String,
    pub caller: String,
    /// The display name the caller's phone put in From (SIP-sourced: escape where rendered).
    pub caller_name: String,
    pub callee: String,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
    pub end_ms: i64,
    pub duration_s: f64,
    pub disposition: String,
    /// Calls to a public or emergency number: what went out where, and what it cost.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<OutboundCdr>,
    /// The call was transferred: by whom, and how.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferCdr>,
}

/// Who transferred a call and how (`blind`: REFER to a number; `attended`: REFER with
/// Replaces, the consultation call joined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferCdr {
    pub transferred_by: String,
    pub transfer_kind: String,
}

/// The trunk side of a CDR (issue 18).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundCdr {
    /// The trunk that carried (or last tried) the call; `None` when refused before any.
    pub trunk: Option<String>,
    /// The normalised number: `+6281234567890`, or an emergency number as dialled.
    pub number: String,
    /// `mobile`, `national`, `international`, `emergency`, …
    pub class: String,
    /// What the call cost on that trunk's rate (answered calls; emergency calls are free).
    pub cost: Option<kentongan_lcr::money::Money>,
}

impl Cdr {
    /// A call refused before anything rang: it starts and ends at `now_ms`.
    pub fn refused(
        call_id: String,
        caller: String,
        callee: String,
        now_ms: i64,
        disposition: &str,
    ) -> Cdr {
        Cdr {
            call_id,
            caller,
            caller_name: String::new(),
            callee,
            start_ms: now_ms,
            answer_ms: None,
            end_ms: now_ms,
            duration_s: 0.0,
            disposition: disposition.into(),
            outbound: None,
            transfer: None,
        }
    }
}

/// Adds the outbound columns (trunk, number, class, cost) to a CDR table made before trunks
/// (inside the caller's transaction: all or none).
pub(super) fn migrate_cdr(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('cdr') WHERE name = 'cost'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE cdr ADD COLUMN trunk TEXT;
             ALTER TABLE cdr ADD COLUMN number TEXT;
             ALTER TABLE cdr ADD COLUMN class TEXT;
             ALTER TABLE cdr ADD COLUMN cost INTEGER;",
        )?;
    }
    Ok(())
}

/// Adds `transferred_by` and `transfer_kind` to a CDR table made before transfers were
/// recorded (inside the caller's transaction: both or neither).
pub(super) fn migrate_cdr_transfer(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('cdr') WHERE name = 'transferred_by'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch(
            "ALTER TABLE cdr ADD COLUMN transferred_by TEXT;
             ALTER TABLE cdr ADD COLUMN transfer_kind TEXT;",
        )?;
    }
    Ok(())
}

/// The columns every CDR query selects, in [`cdr_row`]'s order.
pub(super) const CDR_COLUMNS: &str = "call_id, caller, callee, start_ms, answer_ms, end_ms, \
     duration_s, disposition, trunk, number, class, cost, caller_name, transferred_by, \
     transfer_kind";

/// One row selected with [`CDR_COLUMNS`].
pub(super) fn cdr_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Cdr> {
    Ok(Cdr {
        call_id: r.get(0)?,
        caller: r.get(1)?,
        caller_name: r.get(12)?,
        callee: r.get(2)?,
        start_ms: r.get(3)?,
        answer_ms: r.get(4)?,
        end_ms: r.get(5)?,
        duration_s: r.get(6)?,
        disposition: r.get(7)?,
        outbound: match r.get::<_, Option<String>>(9)? {
            None => None,
            Some(number) => Some(OutboundCdr {
                trunk: r.get(8)?,
                number,
                class: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
                cost: r
                    .get::<_, Option<i64>>(11)?
                    .map(kentongan_lcr::money::Money::from_ten_thousandths),
            }),
        },
        transfer: match r.get::<_, Option<String>>(13)? {
            None => None,
            Some(transferred_by) => Some(TransferCdr {
                transferred_by,
                transfer_kind: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
            }),
        },
    })
}

impl Store {
    /// Answered calls out through a trunk that started in `[from_ms, to_ms)`, in order: what
    /// `report savings` prices.
    pub fn outbound_cdrs_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Cdr>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CDR_COLUMNS} FROM cdr
             WHERE trunk IS NOT NULL AND answer_ms IS NOT NULL AND class IS NOT NULL
               AND class != 'inbound' AND start_ms >= ?1 AND start_ms < ?2
             ORDER BY start_ms, id"
        ))?;
        let rows = st.query_map(rusqlite::params![from_ms, to_ms], cdr_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Seconds of international calls that started at or after `since_ms`, by `caller` if
    /// given (the `[fraud]` minute caps).
    pub fn international_seconds_since(
        &self,
        since_ms: i64,
        caller: Option<&str>,
    ) -> Result<f64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(duration_s), 0) FROM cdr
             WHERE class = 'international' AND start_ms >= ?1 AND (?2 IS NULL OR caller = ?2)",
            rusqlite::params![since_ms, caller],
            |r| r.get(0),
        )?)
    }

    pub fn cdrs(&self) -> Result<Vec<Cdr>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {CDR_COLUMNS} FROM cdr ORDER BY id"))?;
        let rows = st.query_map([], cdr_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Write;
    use kentongan_lcr::money::Money;

    #[test]
    fn a_cdr_table_from_before_trunks_gains_the_outbound_and_transfer_columns_and_keeps_its_rows() {
        let dir = std::env::temp_dir().join(format!("kentongan-pbx-cdr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pbx.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE cdr (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL,
                    caller TEXT NOT NULL, callee TEXT NOT NULL, start_ms INTEGER NOT NULL,
                    answer_ms INTEGER, end_ms INTEGER NOT NULL, duration_s REAL NOT NULL,
                    disposition TEXT NOT NULL);
                 INSERT INTO cdr (call_id, caller, callee, start_ms, end_ms, duration_s,
                    disposition) VALUES ('old', '201', '202', 1, 2, 0.0, 'busy');",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let out = Cdr {
            call_id: "new".into(),
            caller: "201".into(),
            caller_name: "Budi".into(),
            callee: "081234567890".into(),
            start_ms: 10,
            answer_ms: Some(11),
            end_ms: 70_011,
            duration_s: 70.0,
            disposition: "answered".into(),
            outbound: Some(OutboundCdr {
                trunk: Some("cheap".into()),
                number: "+6281234567890".into(),
                class: "mobile".into(),
                cost: Some(Money::from_units(600)),
            }),
            transfer: None,
        };
        store.apply(&[Write::Cdr(out.clone())], 0).unwrap();
        let rows = store.cdrs().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].call_id, "old");
        assert_eq!(rows[0].outbound, None);
        assert_eq!(rows[1], out);
        let json = serde_json::to_value(&rows[1]).unwrap();
        assert_eq!(json["trunk"], "cheap");
        assert_eq!(json["cost"], "600.00");
        assert!(serde_json::to_value(&rows[0])
            .unwrap()
            .get("trunk")
            .is_none());
        let moved = Cdr {
            call_id: "t".into(),
            transfer: Some(TransferCdr {
                transferred_by: "202".into(),
                transfer_kind: "attended".into(),
            }),
            ..Cdr::refused("t".into(), "201".into(), "203".into(), 5, "answered")
        };
        store.apply(&[Write::Cdr(moved.clone())], 0).unwrap();
        let rows = store.cdrs().unwrap();
        assert_eq!(rows[2], moved);
        assert!(rows[0].transfer.is_none());
        let json = serde_json::to_value(&rows[2]).unwrap();
        assert_eq!(json["transferred_by"], "202");
        assert_eq!(json["transfer_kind"], "attended");
        drop(store);
        // Opening again does not migrate twice.
        Store::open(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
