//! Office hours: whether an `[[office_hours]]` schedule is open at a moment, and so which of
//! its targets a call goes to. The decision is a pure function of the schedule and a Unix
//! time handed in; [`load`] does the reading (the zone's offset from the system zoneinfo,
//! the holiday file), at start and reload.
//!
//! Zones with daylight saving time are followed at their standard offset only (Indonesia's
//! WIB, WITA and WIT have none); a warning says so when such a zone is named.

use std::collections::BTreeSet;
use std::path::Path;

use kentongan_lcr::time::Window;
use tracing::warn;

use super::outbound::{local_time_at, posix_offset_seconds};
use crate::config::{Config, OfficeHours};

/// The test knob: a fixed Unix time (seconds) at which every schedule is judged, instead of
/// the call's time. Only end-to-end tests set it.
pub const FIXED_TIME_ENV: &str = "KENTONGAN_OFFICE_HOURS_AT";

/// A calendar date (year, month, day).
pub type Date = (i32, u32, u32);

/// One schedule, ready to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub open: Vec<Window>,
    pub holidays: BTreeSet<Date>,
    /// Local time minus UTC, in seconds.
    pub utc_offset_s: i64,
    pub in_hours: String,
    pub after_hours: String,
}

impl Schedule {
    pub fn is_open(&self, unix_s: i64) -> bool {
        let local = unix_s + self.utc_offset_s;
        if self
            .holidays
            .contains(&civil_date(local.div_euclid(86_400)))
        {
            return false;
        }
        local_time_at(local).is_some_and(|t| self.open.iter().any(|w| w.contains(t)))
    }

    /// Where a call at `unix_s` goes.
    pub fn target_at(&self, unix_s: i64) -> &str {
        match self.is_open(unix_s) {
            true => &self.in_hours,
            false => &self.after_hours,
        }
    }
}

/// Every `[[office_hours]]` schedule, by index in `Config::office_hours`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedules {
    pub schedules: Vec<Schedule>,
    /// [`FIXED_TIME_ENV`], when set.
    pub fixed_now: Option<i64>,
}

impl Schedules {
    /// The target of schedule `i` for a call at `unix_s`.
    pub fn target(&self, i: usize, unix_s: i64) -> Option<&str> {
        let s = self.schedules.get(i)?;
        Some(s.target_at(self.fixed_now.unwrap_or(unix_s)))
    }
}

/// The date of a day counted from 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
pub fn civil_date(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// A holiday file's problem, by line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HolidayError {
    pub line: usize,
    pub message: String,
}

/// `date,name` lines (`2026-08-17,Hari Kemerdekaan`); `#` starts a comment, blank lines are
/// skipped. Every line is checked: the first bad one is the error.
pub fn parse_holidays(text: &str) -> Result<BTreeSet<Date>, HolidayError> {
    let mut out = BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| HolidayError {
            line: i + 1,
            message,
        };
        let (date, name) = line.split_once(',').ok_or_else(|| {
            err(format!(
                "{line:?} has no comma; write date,name, e.g. 2026-08-17,Hari Kemerdekaan"
            ))
        })?;
        if name.trim().is_empty() {
            return Err(err(format!("{date:?} has no name after the comma")));
        }
        out.insert(
            parse_date(date.trim())
                .ok_or_else(|| err(format!("{:?} is not a date; write YYYY-MM-DD", date.trim())))?,
        );
    }
    Ok(out)
}

fn parse_date(s: &str) -> Option<Date> {
    let mut it = s.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max = *days.get(m.checked_sub(1)? as usize)?;
    (1..=max).contains(&d).then_some((y, m, d))
}

/// The schedules of `config`, their zones and holiday files read now. What cannot be read is
/// logged with the fix: a missing zone counts as UTC, an unreadable holiday file as none.
pub fn load(config: &Config) -> Schedules {
    let schedules = config
        .office_hours
        .iter()
        .map(|h| Schedule {
            open: h.open.clone(),
            holidays: holidays_of(h),
            utc_offset_s: offset_of(h, Path::new("/usr/share/zoneinfo")),
            in_hours: h.in_hours.clone(),
            after_hours: h.after_hours.clone(),
        })
        .collect();
    let fixed_now = std::env::var(FIXED_TIME_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok());
    Schedules {
        schedules,
        fixed_now,
    }
}

fn offset_of(h: &OfficeHours, zoneinfo: &Path) -> i64 {
    let path = zoneinfo.join(&h.timezone);
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            warn!(office_hours = %h.name, zone = %h.timezone, path = %path.display(), error = %e, "time zone not found; judging office hours in UTC (install tzdata, or fix `timezone`)");
            return 0;
        }
    };
    let rule = text
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or("");
    if rule.contains(',') {
        warn!(office_hours = %h.name, zone = %h.timezone, "this zone has daylight saving time; office hours follow its standard offset only");
    }
    posix_offset_seconds(&text).unwrap_or_else(|| {
        warn!(office_hours = %h.name, zone = %h.timezone, "time zone file has no rule; judging office hours in UTC");
        0
    })
}

fn holidays_of(h: &OfficeHours) -> BTreeSet<Date> {
    let Some(path) = &h.holidays else {
        return BTreeSet::new();
    };
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_holidays(&t).map_err(|e| e.to_string()));
    parsed.unwrap_or_else(|e| {
        warn!(office_hours = %h.name, path = %path.display(), error = %e, "holiday file not used; fix it (date,name lines) and reload");
        BTreeSet::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_window;

    /// Unix seconds of a Jakarta (UTC+7) local time.
    fn wib(y: i32, m: u32, d: u32, hh: i64, mm: i64) -> i64 {
        let mut days = 0i64;
        // Count days to the date from 1970-01-01 by walking civil_date (small ranges only).
        while civil_date(days) != (y, m, d) {
            days += 1;
        }
        days * 86_400 + hh * 3600 + mm * 60 - 7 * 3600
    }

    fn kantor() -> Schedule {
        Schedule {
            open: vec![
                parse_window("mon-fri 08:00-17:00").unwrap(),
                parse_window("sat 08:00-12:00").unwrap(),
            ],
            holidays: parse_holidays("# national\n2026-08-17,Hari Kemerdekaan\n\n").unwrap(),
            utc_offset_s: 7 * 3600,
            in_hours: "700".into(),
            after_hours: "vm:200".into(),
        }
    }

    #[test]
    fn in_hours_after_hours_weekends_and_holidays() {
        let k = kantor();
        // Thursday 2026-12-03.
        assert_eq!(k.target_at(wib(2026, 12, 3, 9, 0)), "700");
        assert_eq!(k.target_at(wib(2026, 12, 3, 8, 0)), "700");
        assert_eq!(k.target_at(wib(2026, 12, 3, 7, 59)), "vm:200");
        assert_eq!(k.target_at(wib(2026, 12, 3, 17, 0)), "vm:200");
        // Saturday morning open, afternoon closed; Sunday closed.
        assert_eq!(k.target_at(wib(2026, 12, 5, 11, 59)), "700");
        assert_eq!(k.target_at(wib(2026, 12, 5, 12, 0)), "vm:200");
        assert_eq!(k.target_at(wib(2026, 12, 6, 10, 0)), "vm:200");
        // Monday 2026-08-17 is a holiday: closed all day.
        assert_eq!(k.target_at(wib(2026, 8, 17, 10, 0)), "vm:200");
        assert_eq!(k.target_at(wib(2026, 8, 18, 10, 0)), "700");
        // The zone matters: 09:00 in Jakarta is 02:00 UTC, closed if judged in UTC.
        let utc = Schedule {
            utc_offset_s: 0,
            ..kantor()
        };
        assert_eq!(utc.target_at(wib(2026, 12, 3, 9, 0)), "vm:200");
        // The test knob fixes the time for every call.
        let s = Schedules {
            schedules: vec![kantor()],
            fixed_now: Some(wib(2026, 12, 6, 10, 0)),
        };
        assert_eq!(s.target(0, wib(2026, 12, 3, 9, 0)), Some("vm:200"));
        assert_eq!(s.target(1, 0), None);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(20_454), (2026, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }

    #[test]
    fn holiday_files_are_checked_line_by_line() {
        for (text, line, expect) in [
            ("2026-01-01,Tahun Baru\n2026-13-01,X\n", 2, "is not a date"),
            ("2026-02-30,X\n", 1, "is not a date"),
            ("2026-01-01\n", 1, "has no comma"),
            ("\n# c\n2026-01-01,  \n", 3, "has no name"),
            ("26-01-01,X\n", 1, "is not a date"),
        ] {
            let e = parse_holidays(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(expect), "{e}");
        }
        assert!(parse_holidays("2028-02-29,Leap\n").is_ok());
    }

    #[test]
    fn the_shipped_holiday_file_is_valid_and_has_2026s_national_holidays() {
        let text = include_str!("../../../../overlays/pbx/etc/kentongan/holidays.csv");
        let days = parse_holidays(text).unwrap();
        assert_eq!(days.len(), 17, "SKB 2026 lists 17 national holidays");
        assert!(days.contains(&(2026, 8, 17)));
        assert!(days.iter().all(|d| d.0 == 2026));
    }
}
