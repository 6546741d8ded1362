//! What the web admin reads: bans by address, counted and filtered CDRs. Filters are bound
//! parameters; the sort column comes from [`CdrOrder`], whose every value maps to a fixed
//! column name here, so no request text ever becomes SQL.

use rusqlite::{params, params_from_iter, types::Value, Connection};

use super::{Cdr, Store, StoreError};

/// The sort orders a CDR list may have (the web's allow-list, in SQL terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CdrOrder {
    #[default]
    Start,
    Caller,
    Callee,
    Duration,
    Disposition,
}

impl CdrOrder {
    fn column(self) -> &'static str {
        match self {
            CdrOrder::Start => "start_ms",
            CdrOrder::Caller => "caller",
            CdrOrder::Callee => "callee",
            CdrOrder::Duration => "duration_s",
            CdrOrder::Disposition => "disposition",
        }
    }
}

/// Exact-match filters and one page of a CDR list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrFilter {
    /// Caller or callee.
    pub extension: Option<String>,
    pub disposition: Option<String>,
    pub order: CdrOrder,
    pub descending: bool,
    pub offset: u32,
    pub limit: u32,
}

/// Adds `cdr.caller_name` to databases made before it existed.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('cdr') WHERE name = 'caller_name'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE cdr ADD COLUMN caller_name TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

/// Version 5: the web page language each admin account last chose (NULL: the default).
pub(super) fn migrate_admin_language(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('admins') WHERE name = 'language'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE admins ADD COLUMN language TEXT")?;
    }
    Ok(())
}

impl Store {
    /// Whether `addr` has a ban in force at `now` (unix seconds). Read-only.
    pub fn is_banned(&self, addr: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM bans WHERE addr = ?1 AND expires_at > ?2")?
            .exists(params![addr, now])?)
    }

    /// How many calls started at or after `since_ms` (unix milliseconds).
    pub fn cdr_count_since(&self, since_ms: i64) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM cdr WHERE start_ms >= ?1",
            params![since_ms],
            |r| r.get(0),
        )?)
    }

    /// Calls that started at or after `since_ms`, per day: (days since 1970-01-01 in the
    /// zone `offset_ms` east of UTC, count), in day order, days without calls left out.
    pub fn cdr_calls_per_day(
        &self,
        since_ms: i64,
        offset_ms: i64,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT (start_ms + ?2) / 86400000 AS day, COUNT(*) FROM cdr
             WHERE start_ms >= ?1 GROUP BY day ORDER BY day",
        )?;
        let rows = st.query_map(params![since_ms, offset_ms], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Asks the daemon to hang up the live call `call_id`; false when no such call is live.
    pub fn request_hangup(&self, call_id: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO call_commands (call_id)
             SELECT call_id FROM live_calls WHERE call_id = ?1",
            params![call_id],
        )?;
        Ok(n > 0)
    }

    /// The hang-ups asked for since the last call, removed as they are read (one statement,
    /// so a request is carried out once).
    pub fn take_call_commands(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("DELETE FROM call_commands RETURNING call_id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One page of CDRs matching `f`, and how many match in all.
    pub fn cdr_page(&self, f: &CdrFilter) -> Result<(Vec<Cdr>, u64), StoreError> {
        let mut clauses = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        if let Some(e) = &f.extension {
            args.push(Value::Text(e.clone()));
            clauses.push(format!("(caller = ?{n} OR callee = ?{n})", n = args.len()));
        }
        if let Some(d) = &f.disposition {
            args.push(Value::Text(d.clone()));
            clauses.push(format!("disposition = ?{}", args.len()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let total: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM cdr {filter}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let dir = if f.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {} FROM cdr {filter} ORDER BY {} {dir}, id {dir} LIMIT {} OFFSET {}",
            super::cdr::CDR_COLUMNS,
            f.order.column(),
            f.limit,
            f.offset
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args.iter()), super::cdr::cdr_row)?;
        Ok((rows.collect::<Result<_, _>>()?, total.max(0) as u64))
    }

    /// The dispositions that occur in the CDR, sorted.
    pub fn cdr_dispositions(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT disposition FROM cdr ORDER BY disposition")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Write;

    fn cdr(caller: &str, callee: &str, start_ms: i64, disposition: &str) -> Cdr {
        Cdr {
            caller_name: format!("<b>{caller}</b>"),
            ..Cdr::refused(
                "c".into(),
                caller.into(),
                callee.into(),
                start_ms,
                disposition,
            )
        }
    }

    #[test]
    fn a_hang_up_is_asked_for_live_calls_only_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pbx.db")).unwrap();
        assert!(!s.request_hangup("call-1").unwrap());
        s.apply(
            &[Write::LiveCall(crate::store::LiveCall {
                call_id: "call-1".into(),
                caller: "201".into(),
                callee: "202".into(),
                start_ms: 1,
                answer_ms: Some(2),
                state: "answered".into(),
            })],
            3,
        )
        .unwrap();
        assert!(!s.request_hangup("x' OR 1=1--").unwrap());
        assert!(s.request_hangup("call-1").unwrap());
        assert_eq!(s.take_call_commands().unwrap(), ["call-1"]);
        assert!(s.take_call_commands().unwrap().is_empty());
    }

    #[test]
    fn calls_per_day_group_in_the_zone() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pbx.db")).unwrap();
        let day = 86_400_000;
        // 23:30 UTC is the next day at UTC+7.
        let late = 10 * day + 23 * 3_600_000 + 1_800_000;
        let writes: Vec<Write> = [late, late + 60_000, 12 * day, 2 * day]
            .into_iter()
            .map(|t| Write::Cdr(cdr("201", "202", t, "answered")))
            .collect();
        s.apply(&writes, 0).unwrap();
        assert_eq!(s.cdr_calls_per_day(5 * day, 0).unwrap(), [(10, 2), (12, 1)]);
        assert_eq!(
            s.cdr_calls_per_day(5 * day, 7 * 3_600_000).unwrap(),
            [(11, 2), (12, 1)]
        );
    }

    #[test]
    fn filters_sort_and_page_are_parameters() {
        let dir = std::env::temp_dir().join(format!("kentongan-web-cdr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Store::open(&dir.join("pbx.db")).unwrap();
        let writes: Vec<Write> = (0..7)
            .map(|i| {
                Write::Cdr(cdr(
                    if i % 2 == 0 { "201" } else { "202" },
                    "203",
                    1000 * i,
                    if i < 3 { "answered" } else { "busy" },
                ))
            })
            .collect();
        s.apply(&writes, 0).unwrap();
        let page = |f: CdrFilter| s.cdr_page(&CdrFilter { limit: 50, ..f }).unwrap();
        let (rows, total) = page(CdrFilter {
            extension: Some("201".into()),
            ..CdrFilter::default()
        });
        assert_eq!((rows.len(), total), (4, 4));
        assert_eq!(rows[0].caller_name, "<b>201</b>");
        let (rows, total) = page(CdrFilter {
            disposition: Some("busy".into()),
            extension: Some("202".into()),
            order: CdrOrder::Start,
            descending: true,
            ..CdrFilter::default()
        });
        assert_eq!(total, 2);
        assert_eq!(rows[0].start_ms, 5000);
        let (rows, total) = page(CdrFilter {
            extension: Some("201' OR '1'='1".into()),
            ..CdrFilter::default()
        });
        assert_eq!((rows.len(), total), (0, 0));
        let (rows, total) = s
            .cdr_page(&CdrFilter {
                limit: 3,
                offset: 6,
                ..CdrFilter::default()
            })
            .unwrap();
        assert_eq!((rows.len(), total), (1, 7));
        assert_eq!(s.cdr_count_since(4000).unwrap(), 3);
        assert_eq!(s.cdr_dispositions().unwrap(), vec!["answered", "busy"]);
    }
}
