//! Reading numbers, digit strings, dates and times aloud as sequences of prompt ids.
//!
//! Pure functions: a value in, the clips to play in order out. Nothing here reads a clock;
//! the caller hands in a [`CivilDateTime`] already in the PBX's time zone.
//!
//! The building blocks are chosen so that cardinal numbers have the *same structure* in
//! both languages and only the clip texts differ: 0–19 are one clip each (`n-11` is
//! "sebelas" / "eleven", `n-15` "lima belas" / "fifteen"), tens are `n-20` … `n-90` ("dua
//! puluh" / "twenty"), hundreds `n-100` … `n-900` ("seratus", "dua ratus" / "one hundred",
//! "two hundred"), `n-1000` is the lone thousand ("seribu" / "one thousand") and
//! `n-thousand`, `n-million`, `n-billion`, `n-trillion` ("ribu", "juta", "miliar", "triliun")
//! scale a group. So 1.234 is `n-1000 n-200 n-30 n-4` = "seribu dua ratus tiga puluh empat" =
//! "one thousand two hundred thirty four", and the Indonesian `se-` forms (sepuluh, sebelas,
//! seratus, seribu) fall out of the clip set rather than rules. Dates and times differ by
//! language: Indonesian reads "Rabu dua Desember dua ribu dua puluh enam pukul empat belas
//! tiga puluh" (24-hour clock, day before month), English "Wednesday, December second, two
//! thousand twenty six, at two thirty P M".

use crate::{Language, PromptId};

/// The largest number [`number`] reads: 999 trillion.
pub const MAX_NUMBER: u64 = 999_999_999_999_999;

/// Values that cannot be read aloud.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SayError {
    /// Above [`MAX_NUMBER`].
    #[error("{0} is too large to read aloud (the limit is 999 trillion): read it digit by digit with say::digits")]
    NumberTooLarge(u64),
    /// A character other than 0-9, `*`, `#`, `+` in a digit string.
    #[error("cannot read {ch:?} in the digit string {digits:?}: only 0-9, *, # and + are spoken")]
    BadDigit {
        /// The string handed in.
        digits: String,
        /// The offending character.
        ch: char,
    },
    /// An empty digit string.
    #[error("the digit string is empty: play vm-unknown-caller (or nothing) instead")]
    NoDigits,
    /// A date or time field out of range.
    #[error("{field} {value} is out of range for {year:04}-{month:02}: {why}")]
    BadDate {
        /// The field name (`month`, `day`, `hour`, `minute`, `year`).
        field: &'static str,
        /// The value given.
        value: u32,
        /// Year and month as given, for the message.
        year: u32,
        /// Month as given.
        month: u32,
        /// The allowed range.
        why: &'static str,
    },
}

fn block(name: String) -> PromptId {
    PromptId::block(name)
}

fn n(k: u64) -> PromptId {
    block(format!("n-{k}"))
}

/// Scale words, largest first, with the clip naming each.
const SCALES: [(u64, &str); 4] = [
    (1_000_000_000_000, "n-trillion"),
    (1_000_000_000, "n-billion"),
    (1_000_000, "n-million"),
    (1_000, "n-thousand"),
];

/// A cardinal number, e.g. 2026 → `n-2 n-thousand n-20 n-6`.
pub fn number(value: u64) -> Result<Vec<PromptId>, SayError> {
    if value > MAX_NUMBER {
        return Err(SayError::NumberTooLarge(value));
    }
    if value == 0 {
        return Ok(vec![n(0)]);
    }
    let mut out = Vec::new();
    for (scale, word) in SCALES {
        let group = value / scale % 1000;
        if group == 0 {
            continue;
        }
        if scale == 1000 && group == 1 {
            // "seribu" / "one thousand": the one scale with an Indonesian se- form.
            out.push(n(1000));
        } else {
            below_thousand(group, &mut out);
            out.push(block(word.to_string()));
        }
    }
    below_thousand(value % 1000, &mut out);
    Ok(out)
}

fn below_thousand(group: u64, out: &mut Vec<PromptId>) {
    let (hundreds, rest) = (group / 100, group % 100);
    if hundreds > 0 {
        out.push(n(hundreds * 100));
    }
    match rest {
        0 => {}
        1..=19 => out.push(n(rest)),
        _ => {
            out.push(n(rest / 10 * 10));
            if rest % 10 > 0 {
                out.push(n(rest % 10));
            }
        }
    }
}

/// A digit string read digit by digit (extensions, caller numbers, PINs): "201" → `n-2 n-0
/// n-1`; `*`, `#` and `+` have clips of their own.
pub fn digits(s: &str) -> Result<Vec<PromptId>, SayError> {
    if s.is_empty() {
        return Err(SayError::NoDigits);
    }
    s.chars()
        .map(|ch| match ch {
            '0'..='9' => Ok(n(u64::from(ch as u8 - b'0'))),
            '*' => Ok(block("key-star".to_string())),
            '#' => Ok(block("key-hash".to_string())),
            '+' => Ok(block("key-plus".to_string())),
            _ => Err(SayError::BadDigit {
                digits: s.to_string(),
                ch,
            }),
        })
        .collect()
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weekday {
    /// Senin.
    Monday,
    /// Selasa.
    Tuesday,
    /// Rabu.
    Wednesday,
    /// Kamis.
    Thursday,
    /// Jumat.
    Friday,
    /// Sabtu.
    Saturday,
    /// Minggu.
    Sunday,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    fn clip_name(self) -> &'static str {
        match self {
            Weekday::Monday => "day-monday",
            Weekday::Tuesday => "day-tuesday",
            Weekday::Wednesday => "day-wednesday",
            Weekday::Thursday => "day-thursday",
            Weekday::Friday => "day-friday",
            Weekday::Saturday => "day-saturday",
            Weekday::Sunday => "day-sunday",
        }
    }
}

const MONTHS: [&str; 12] = [
    "month-january",
    "month-february",
    "month-march",
    "month-april",
    "month-may",
    "month-june",
    "month-july",
    "month-august",
    "month-september",
    "month-october",
    "month-november",
    "month-december",
];

/// A local (civil) date and time, as the daemon computes it from its clock and time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CivilDateTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
}

fn is_leap(year: u32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl CivilDateTime {
    /// Checks the fields: year 1–9999, month 1–12, day within the month (leap years
    /// included), hour 0–23, minute 0–59.
    pub fn new(
        year: u32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
    ) -> Result<CivilDateTime, SayError> {
        let bad = |field, value, why| SayError::BadDate {
            field,
            value,
            year,
            month,
            why,
        };
        if !(1..=9999).contains(&year) {
            return Err(bad("year", year, "use 1-9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(bad("month", month, "use 1-12"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(bad("day", day, "that month has no such day"));
        }
        if hour > 23 {
            return Err(bad("hour", hour, "use 0-23"));
        }
        if minute > 59 {
            return Err(bad("minute", minute, "use 0-59"));
        }
        // Each field was range-checked above, so the narrowing casts are exact.
        Ok(CivilDateTime {
            year: year as u16,
            month: month as u8,
            day: day as u8,
            hour: hour as u8,
            minute: minute as u8,
        })
    }

    /// The day of the week (proleptic Gregorian calendar).
    pub fn weekday(&self) -> Weekday {
        // Days since 1970-01-01 (a Thursday), by the era-based civil-to-days method.
        let (y, m, d) = (
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        // 1970-01-01 is index 3 (Thursday) in Monday-first order.
        let idx = (days + 3).rem_euclid(7) as usize;
        Weekday::ALL[idx]
    }
}

/// The date: "Rabu, 2 Desember 2026" → `day-wednesday d-2 month-december <2026>`; English
/// puts the month first and the day as an ordinal ("December second").
pub fn date(language: Language, dt: &CivilDateTime) -> Vec<PromptId> {
    let mut out = vec![block(dt.weekday().clip_name().to_string())];
    let day = block(format!("d-{}", dt.day));
    let month = block(MONTHS[usize::from(dt.month - 1)].to_string());
    match language {
        Language::Id => out.extend([day, month]),
        Language::En => out.extend([month, day]),
    }
    out.extend(year_clips(dt.year));
    out
}

fn year_clips(year: u16) -> Vec<PromptId> {
    // CivilDateTime keeps years below 10000, far below MAX_NUMBER.
    number(u64::from(year)).unwrap_or_default()
}

/// The time of day: Indonesian on the 24-hour clock ("pukul empat belas tiga puluh",
/// minutes below ten as "nol lima"), English on the 12-hour clock ("at two thirty P M",
/// "at two oh five P M", "at two P M").
pub fn time(language: Language, dt: &CivilDateTime) -> Vec<PromptId> {
    let at = block("t-at".to_string());
    let mut out = vec![at];
    let (hour, minute) = (u64::from(dt.hour), u64::from(dt.minute));
    match language {
        Language::Id => {
            out.extend(small(hour));
            if (1..10).contains(&minute) {
                out.push(n(0));
            }
        }
        Language::En => {
            out.extend(small(if hour % 12 == 0 { 12 } else { hour % 12 }));
            if (1..10).contains(&minute) {
                out.push(block("t-oh".to_string()));
            }
        }
    }
    if minute > 0 {
        out.extend(small(minute));
    }
    if language == Language::En {
        out.push(block(if hour < 12 { "t-am" } else { "t-pm" }.to_string()));
    }
    out
}

/// Numbers below 100 (hours, minutes).
fn small(v: u64) -> Vec<PromptId> {
    let mut out = Vec::with_capacity(2);
    below_thousand(v, &mut out);
    if out.is_empty() {
        out.push(n(0));
    }
    out
}

/// Date then time: the reading of a voicemail's "received at".
pub fn date_time(language: Language, dt: &CivilDateTime) -> Vec<PromptId> {
    let mut out = date(language, dt);
    out.extend(time(language, dt));
    out
}

/// Every clip the functions above can return; the builtin catalogue must hold them all.
pub fn building_blocks() -> Vec<PromptId> {
    let mut names: Vec<String> = Vec::new();
    names.extend((0..20).map(|k| format!("n-{k}")));
    names.extend((2..10).map(|k| format!("n-{}", k * 10)));
    names.extend((1..10).map(|k| format!("n-{}", k * 100)));
    names.push("n-1000".into());
    names.extend(SCALES.iter().map(|(_, w)| w.to_string()));
    names.extend((1..=31).map(|d| format!("d-{d}")));
    names.extend(MONTHS.iter().map(|m| m.to_string()));
    names.extend(Weekday::ALL.iter().map(|w| w.clip_name().to_string()));
    names.extend(["t-at", "t-oh", "t-am", "t-pm"].map(String::from));
    names.extend(["key-star", "key-hash", "key-plus"].map(String::from));
    names.into_iter().map(block).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Catalogue;
    use std::collections::BTreeSet;

    fn ids(seq: &[PromptId]) -> String {
        seq.iter()
            .map(PromptId::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The words a sequence speaks, from the builtin catalogue.
    fn words(lang: Language, seq: &[PromptId]) -> String {
        let cat = Catalogue::builtin().unwrap();
        seq.iter()
            .map(|id| {
                cat.get(id.as_str())
                    .unwrap_or_else(|| panic!("{id} is not in the catalogue"))
                    .text(lang)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn golden_numbers_in_both_languages() {
        let cases: &[(u64, &str, &str, &str)] = &[
            (0, "n-0", "nol", "zero"),
            (7, "n-7", "tujuh", "seven"),
            (10, "n-10", "sepuluh", "ten"),
            (11, "n-11", "sebelas", "eleven"),
            (15, "n-15", "lima belas", "fifteen"),
            (20, "n-20", "dua puluh", "twenty"),
            (21, "n-20 n-1", "dua puluh satu", "twenty one"),
            (99, "n-90 n-9", "sembilan puluh sembilan", "ninety nine"),
            (100, "n-100", "seratus", "one hundred"),
            (101, "n-100 n-1", "seratus satu", "one hundred one"),
            (
                115,
                "n-100 n-15",
                "seratus lima belas",
                "one hundred fifteen",
            ),
            (
                250,
                "n-200 n-50",
                "dua ratus lima puluh",
                "two hundred fifty",
            ),
            (1000, "n-1000", "seribu", "one thousand"),
            (
                1234,
                "n-1000 n-200 n-30 n-4",
                "seribu dua ratus tiga puluh empat",
                "one thousand two hundred thirty four",
            ),
            (
                2026,
                "n-2 n-thousand n-20 n-6",
                "dua ribu dua puluh enam",
                "two thousand twenty six",
            ),
            (11_000, "n-11 n-thousand", "sebelas ribu", "eleven thousand"),
            (
                100_000,
                "n-100 n-thousand",
                "seratus ribu",
                "one hundred thousand",
            ),
            (1_000_000, "n-1 n-million", "satu juta", "one million"),
            (
                1_001_000,
                "n-1 n-million n-1000",
                "satu juta seribu",
                "one million one thousand",
            ),
            (
                3_000_000_005,
                "n-3 n-billion n-5",
                "tiga miliar lima",
                "three billion five",
            ),
        ];
        for &(value, seq, id, en) in cases {
            let got = number(value).unwrap();
            assert_eq!(ids(&got), seq, "{value}");
            assert_eq!(words(Language::Id, &got), id, "{value} in id");
            assert_eq!(words(Language::En, &got), en, "{value} in en");
        }
        assert_eq!(
            words(Language::Id, &number(MAX_NUMBER).unwrap()),
            "sembilan ratus sembilan puluh sembilan triliun sembilan ratus sembilan puluh \
             sembilan miliar sembilan ratus sembilan puluh sembilan juta sembilan ratus \
             sembilan puluh sembilan ribu sembilan ratus sembilan puluh sembilan"
        );
        assert_eq!(
            number(MAX_NUMBER + 1),
            Err(SayError::NumberTooLarge(MAX_NUMBER + 1))
        );
    }

    #[test]
    fn golden_digits() {
        let got = digits("+6221*0#").unwrap();
        assert_eq!(ids(&got), "key-plus n-6 n-2 n-2 n-1 key-star n-0 key-hash");
        assert_eq!(
            words(Language::Id, &got),
            "plus enam dua dua satu bintang nol pagar"
        );
        assert_eq!(words(Language::En, &digits("201").unwrap()), "two zero one");
        assert_eq!(
            digits("20a"),
            Err(SayError::BadDigit {
                digits: "20a".into(),
                ch: 'a'
            })
        );
        assert_eq!(digits(""), Err(SayError::NoDigits));
    }

    #[test]
    fn golden_date_times() {
        let dt = CivilDateTime::new(2026, 12, 2, 14, 30).unwrap();
        assert_eq!(dt.weekday(), Weekday::Wednesday);
        let id = date_time(Language::Id, &dt);
        assert_eq!(
            ids(&id),
            "day-wednesday d-2 month-december n-2 n-thousand n-20 n-6 t-at n-14 n-30"
        );
        assert_eq!(
            words(Language::Id, &id),
            "Rabu dua Desember dua ribu dua puluh enam pukul empat belas tiga puluh"
        );
        let en = date_time(Language::En, &dt);
        assert_eq!(
            words(Language::En, &en),
            "Wednesday December second two thousand twenty six at two thirty P M"
        );

        let morning = CivilDateTime::new(2024, 2, 29, 8, 5).unwrap();
        assert_eq!(morning.weekday(), Weekday::Thursday);
        assert_eq!(
            words(Language::Id, &date_time(Language::Id, &morning)),
            "Kamis dua puluh sembilan Februari dua ribu dua puluh empat pukul delapan nol lima"
        );
        assert_eq!(
            words(Language::En, &date_time(Language::En, &morning)),
            "Thursday February twenty ninth two thousand twenty four at eight oh five A M"
        );
        let midnight = CivilDateTime::new(2000, 1, 1, 0, 0).unwrap();
        assert_eq!(midnight.weekday(), Weekday::Saturday);
        assert_eq!(
            words(Language::En, &time(Language::En, &midnight)),
            "at twelve A M"
        );
        assert_eq!(
            words(Language::Id, &time(Language::Id, &midnight)),
            "pukul nol"
        );
        let noon = CivilDateTime::new(1999, 12, 31, 12, 45).unwrap();
        assert_eq!(noon.weekday(), Weekday::Friday);
        assert_eq!(
            words(Language::En, &time(Language::En, &noon)),
            "at twelve forty five P M"
        );
        assert_eq!(
            words(Language::Id, &time(Language::Id, &noon)),
            "pukul dua belas empat puluh lima"
        );
    }

    #[test]
    fn bad_dates_are_rejected() {
        assert!(CivilDateTime::new(2025, 2, 29, 0, 0).is_err());
        assert!(CivilDateTime::new(1900, 2, 29, 0, 0).is_err());
        assert!(CivilDateTime::new(2000, 2, 29, 0, 0).is_ok());
        assert!(CivilDateTime::new(2026, 4, 31, 0, 0).is_err());
        assert!(CivilDateTime::new(2026, 13, 1, 0, 0).is_err());
        assert!(CivilDateTime::new(2026, 1, 1, 24, 0).is_err());
        let err = CivilDateTime::new(2026, 1, 1, 0, 60).unwrap_err();
        assert_eq!(
            err.to_string(),
            "minute 60 is out of range for 2026-01: use 0-59"
        );
    }

    #[test]
    fn every_output_is_a_building_block() {
        let blocks: BTreeSet<PromptId> = building_blocks().into_iter().collect();
        let mut seen = BTreeSet::new();
        let mut values: Vec<u64> = (0..2100).collect();
        values.extend([10_000, 999_999, 1_000_001, 45_678_901_234, MAX_NUMBER]);
        for v in values {
            seen.extend(number(v).unwrap());
        }
        seen.extend(digits("0123456789*#+").unwrap());
        for month in 1..=12 {
            for day in [1, 2, 3, 11, 21, 22, 23, 28, 29, 30, 31] {
                for (hour, minute) in [(0, 0), (9, 7), (12, 30), (23, 59)] {
                    if let Ok(dt) = CivilDateTime::new(2026, month, day, hour, minute) {
                        for lang in Language::ALL {
                            seen.extend(date_time(lang, &dt));
                        }
                    }
                }
            }
        }
        let stray: Vec<_> = seen.difference(&blocks).collect();
        assert!(
            stray.is_empty(),
            "not declared as building blocks: {stray:?}"
        );
        // And every week day shows up over one week.
        let days: BTreeSet<String> = (1..=7)
            .map(|d| {
                ids(&date(
                    Language::Id,
                    &CivilDateTime::new(2026, 6, d, 0, 0).unwrap(),
                ))
            })
            .map(|s| s.split(' ').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(days.len(), 7);
    }
}
