//! Local wall-clock time as the rate windows see it: a weekday and a minute of the day.
//! The PBX reads its clock and converts to local time; nothing here reads a clock.

use std::fmt;

use serde::Serialize;

/// A day of the week, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    pub fn name(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self as usize]
    }

    pub fn from_name(name: &str) -> Option<Weekday> {
        Weekday::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The day before (Monday's is Sunday).
    pub fn previous(self) -> Weekday {
        Weekday::ALL[(self as usize + 6) % 7]
    }
}

/// Minutes since local midnight, 0 ..= 1440 (1440 only as the end of a window, `24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minute(u16);

impl Minute {
    pub const MIDNIGHT: Minute = Minute(0);
    pub const END_OF_DAY: Minute = Minute(1440);

    /// `hh:mm`; `None` past 24:00.
    pub fn new(hour: u8, minute: u8) -> Option<Minute> {
        let m = u16::from(hour) * 60 + u16::from(minute);
        (minute < 60 && m <= 1440).then_some(Minute(m))
    }

    /// Parses `HH:MM` (one-digit hours allowed).
    pub fn parse(text: &str) -> Option<Minute> {
        let (h, m) = text.split_once(':')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || m.len() != 2 || !digits(m) {
            return None;
        }
        Minute::new(h.parse().ok()?, m.parse().ok()?)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Minute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for Minute {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A moment of the local week: when a call starts, as the rates see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LocalTime {
    pub weekday: Weekday,
    pub minute: Minute,
}

impl LocalTime {
    /// `None` unless `hour` < 24 and `minute` < 60.
    pub fn new(weekday: Weekday, hour: u8, minute: u8) -> Option<LocalTime> {
        (hour < 24).then_some(())?;
        Some(LocalTime {
            weekday,
            minute: Minute::new(hour, minute)?,
        })
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.weekday.name(), self.minute)
    }
}

/// A set of weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Days(u8);

impl Days {
    pub const EVERY_DAY: Days = Days(0x7f);

    pub fn contains(self, d: Weekday) -> bool {
        self.0 & (1 << d as u8) != 0
    }

    /// Parses `mon-fri`, `sat,sun`, `mon,wed-fri`, `fri-mon` (wrapping), `daily`.
    pub fn parse(text: &str) -> Option<Days> {
        if text == "daily" {
            return Some(Days::EVERY_DAY);
        }
        let mut bits = 0u8;
        for part in text.split(',') {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (Weekday::from_name(a.trim())?, Weekday::from_name(b.trim())?);
            let mut d = a;
            loop {
                bits |= 1 << d as u8;
                if d == b {
                    break;
                }
                d = Weekday::ALL[(d as usize + 1) % 7];
            }
        }
        (bits != 0).then_some(Days(bits))
    }
}

impl fmt::Display for Days {
    /// Canonical form: runs of three or more days as ranges (`mon-fri`), others as lists.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Days::EVERY_DAY {
            return f.write_str("daily");
        }
        let mut parts = Vec::new();
        let mut i = 0;
        while i < 7 {
            if !self.contains(Weekday::ALL[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < 7 && self.contains(Weekday::ALL[i + 1]) {
                i += 1;
            }
            let (a, b) = (Weekday::ALL[start].name(), Weekday::ALL[i].name());
            match i - start {
                0 => parts.push(a.to_owned()),
                1 => parts.push(format!("{a},{b}")),
                _ => parts.push(format!("{a}-{b}")),
            }
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

impl Serialize for Days {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// When a rate holds: on `days`, from `from` until before `to`. A window with `to` before
/// `from` crosses midnight, and its part after midnight belongs to the day it started on
/// (`fri 22:00-06:00` holds until Saturday 06:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Window {
    pub days: Days,
    pub from: Minute,
    pub to: Minute,
}

impl Window {
    #[inline]
    pub fn contains(&self, t: LocalTime) -> bool {
        if self.from < self.to {
            self.days.contains(t.weekday) && self.from <= t.minute && t.minute < self.to
        } else {
            (self.days.contains(t.weekday) && t.minute >= self.from)
                || (self.days.contains(t.weekday.previous()) && t.minute < self.to)
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}-{}", self.days, self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(d: Weekday, h: u8, m: u8) -> LocalTime {
        LocalTime::new(d, h, m).unwrap()
    }

    #[test]
    fn days_parse_ranges_lists_and_wraps() {
        assert_eq!(Days::parse("mon-fri").unwrap().to_string(), "mon-fri");
        assert_eq!(Days::parse("sat,sun").unwrap().to_string(), "sat,sun");
        assert_eq!(Days::parse("fri-mon").unwrap().to_string(), "mon,fri-sun");
        assert_eq!(
            Days::parse("mon,wed-fri").unwrap().to_string(),
            "mon,wed-fri"
        );
        assert_eq!(Days::parse("mon-sun"), Some(Days::EVERY_DAY));
        assert_eq!(Days::parse("daily"), Some(Days::EVERY_DAY));
        for bad in ["", "monday", "mon-", "mon;tue", "MON"] {
            assert_eq!(Days::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn minutes_parse() {
        assert_eq!(Minute::parse("08:00"), Minute::new(8, 0));
        assert_eq!(Minute::parse("8:30"), Minute::new(8, 30));
        assert_eq!(Minute::parse("24:00"), Some(Minute::END_OF_DAY));
        for bad in ["24:01", "12:60", "1200", "12:5", "-1:00", "ab:cd", ""] {
            assert_eq!(Minute::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn windows_within_a_day_and_across_midnight() {
        let office = Window {
            days: Days::parse("mon-fri").unwrap(),
            from: Minute::new(8, 0).unwrap(),
            to: Minute::new(17, 0).unwrap(),
        };
        assert!(office.contains(at(Weekday::Mon, 8, 0)));
        assert!(office.contains(at(Weekday::Fri, 16, 59)));
        assert!(!office.contains(at(Weekday::Fri, 17, 0)));
        assert!(!office.contains(at(Weekday::Sat, 10, 0)));
        let night = Window {
            days: Days::parse("fri").unwrap(),
            from: Minute::new(22, 0).unwrap(),
            to: Minute::new(6, 0).unwrap(),
        };
        assert!(night.contains(at(Weekday::Fri, 22, 0)));
        assert!(night.contains(at(Weekday::Sat, 5, 59)));
        assert!(!night.contains(at(Weekday::Sat, 6, 0)));
        assert!(!night.contains(at(Weekday::Fri, 5, 0)));
        assert!(!night.contains(at(Weekday::Sat, 23, 0)));
        let sunday_night = Window {
            days: Days::parse("sun").unwrap(),
            ..night
        };
        assert!(sunday_night.contains(at(Weekday::Mon, 1, 0)));
    }
}
