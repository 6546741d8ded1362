//! rates.csv: what each trunk charges for a prefix, when; validated whole or not at all.
//!
//! `trunk,prefix,rate_per_minute,connect_fee,increment_seconds[,days,from,to]`, e.g.
//! `provider,+62,650,0,60` or `provider,+62812,300,0,1,mon-fri,18:00,08:00`. A trunk may have
//! one all-day rate and any number of non-overlapping windowed rates per prefix; a windowed
//! rate that holds at the call's start wins over the all-day one of the same prefix.

use std::collections::HashMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::csv::{self, CsvErrors, LineError, LineErrorKind};
use crate::money::Money;
use crate::time::{Days, LocalTime, Minute, Weekday, Window};

/// The name of a `[[trunk]]`, as rates.csv and CDRs refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkName(Box<str>);

impl TrunkName {
    /// A name of letters, digits, `-`, `_` or `.`.
    pub fn new(name: &str) -> Result<TrunkName, LineErrorKind> {
        csv::name("trunk", name).map(|n| TrunkName(n.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrunkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl Serialize for TrunkName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// One validated line of rates.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rate {
    /// Where it came from, for `lcr explain` and error messages.
    pub line: usize,
    pub trunk: TrunkName,
    /// The prefix digits, without `+` (empty: every number).
    #[serde(serialize_with = "plus_prefix")]
    pub prefix: String,
    pub rate_per_minute: Money,
    pub connect_fee: Money,
    pub increment_seconds: u32,
    /// `None`: all day, every day.
    pub window: Option<Window>,
}

fn plus_prefix<S: Serializer>(p: &str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("+{p}"))
}

impl Rate {
    /// Seconds billed for a call of `seconds`: rounded up to whole increments.
    pub fn billed_seconds(&self, seconds: u32) -> u64 {
        u64::from(seconds).div_ceil(u64::from(self.increment_seconds))
            * u64::from(self.increment_seconds)
    }

    /// The exact cost in sixtieths of a ten-thousandth: connect_fee·60 + billed·rate. Ranking
    /// compares these so rounding never makes two different costs look equal.
    #[inline]
    pub fn cost_sixtieths(&self, seconds: u32) -> u64 {
        cost_sixtieths(
            self.connect_fee.ten_thousandths().unsigned_abs(),
            self.rate_per_minute.ten_thousandths().unsigned_abs(),
            self.increment_seconds,
            seconds,
        )
    }

    /// connect_fee + ceil(seconds / increment) · increment · rate / 60, rounded half up to a
    /// ten-thousandth.
    pub fn cost(&self, seconds: u32) -> Money {
        money_of_sixtieths(self.cost_sixtieths(seconds))
    }

    /// Whether this rate holds for a call starting at `t`.
    #[inline]
    pub fn holds_at(&self, t: LocalTime) -> bool {
        self.window.map_or(true, |w| w.contains(t))
    }
}

/// connect·60 + ceil(seconds / increment)·increment·rate, all in ten-thousandths. u64 holds
/// it exactly for any real tariff (a rate of 10⁹ per minute over a 10-day call); beyond, it
/// saturates rather than wrapping, so an absurd rate still sorts last.
#[inline]
pub(crate) fn cost_sixtieths(connect: u64, rate: u64, increment: u32, seconds: u32) -> u64 {
    let inc = u64::from(increment.max(1));
    let billed = u64::from(seconds).div_ceil(inc) * inc;
    connect
        .saturating_mul(60)
        .saturating_add(billed.saturating_mul(rate))
}

/// Sixtieths of a ten-thousandth to money, rounded half up.
#[inline]
pub(crate) fn money_of_sixtieths(v: u64) -> Money {
    Money::from_ten_thousandths(i64::try_from(v.saturating_add(30) / 60).unwrap_or(i64::MAX))
}

/// Every rate of a valid rates file. Exists only if every line was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTable {
    rates: Vec<Rate>,
}

const HEADER: &str = "trunk,prefix,rate_per_minute,connect_fee,increment_seconds,days,from,to";
const HEADER_SHORT: &str = "trunk,prefix,rate_per_minute,connect_fee,increment_seconds";

impl RateTable {
    /// Parses and validates a whole rates file; all bad lines are reported, in line order.
    pub fn parse(text: &str) -> Result<RateTable, CsvErrors> {
        RateTable::parse_inner(text, None)
    }

    /// [`RateTable::parse`], also reporting every line whose trunk is not one of `trunks`
    /// (what `lcr import` checks against the configuration before it swaps tables).
    pub fn parse_for_trunks(text: &str, trunks: &[TrunkName]) -> Result<RateTable, CsvErrors> {
        RateTable::parse_inner(text, Some(trunks))
    }

    fn parse_inner(text: &str, trunks: Option<&[TrunkName]>) -> Result<RateTable, CsvErrors> {
        let mut errors = Vec::new();
        let mut records = csv::records(text, HEADER, &mut errors);
        if records
            .first()
            .is_some_and(|(_, f)| f.join(",") == HEADER_SHORT)
        {
            records.remove(0);
        }
        let mut rates = Vec::with_capacity(records.len());
        for (line, fields) in records {
            match parse_line(line, &fields) {
                Ok(r) => rates.push(r),
                Err(kind) => errors.push(LineError { line, kind }),
            }
        }
        check_conflicts(&rates, &mut errors);
        if let Some(known) = trunks {
            for r in rates.iter().filter(|r| !known.contains(&r.trunk)) {
                errors.push(LineError {
                    line: r.line,
                    kind: LineErrorKind::UnknownTrunk(r.trunk.to_string()),
                });
            }
        }
        if !errors.is_empty() || rates.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(CsvErrors {
                what: "rates",
                errors,
            });
        }
        Ok(RateTable { rates })
    }

    /// The rates in file order.
    pub fn rates(&self) -> &[Rate] {
        &self.rates
    }

    /// The trunk names the file mentions, in order of first mention.
    pub fn trunks(&self) -> Vec<&TrunkName> {
        let mut out: Vec<&TrunkName> = Vec::new();
        for r in &self.rates {
            if !out.contains(&&r.trunk) {
                out.push(&r.trunk);
            }
        }
        out
    }
}

fn parse_line(line: usize, f: &[String]) -> Result<Rate, LineErrorKind> {
    // `sat,sun` unquoted spreads the days over several fields: they are all between the
    // fifth field and the last two.
    if f.len() != 5 && f.len() < 8 {
        if f.len() > 5 {
            return Err(LineErrorKind::PartialWindow);
        }
        return Err(LineErrorKind::FieldCount {
            expected: "5 fields (trunk,prefix,rate_per_minute,connect_fee,increment_seconds) or 8 (…,days,from,to)",
            found: f.len(),
        });
    }
    let trunk = TrunkName::new(&f[0])?;
    let prefix = csv::prefix(&f[1], 0)?;
    let money = |field: &'static str, v: &str| {
        Money::parse(v).ok_or_else(|| LineErrorKind::Decimal {
            field,
            value: v.to_owned(),
        })
    };
    let rate_per_minute = money("rate_per_minute", &f[2])?;
    let connect_fee = money("connect_fee", &f[3])?;
    let increment_seconds = f[4]
        .parse::<u32>()
        .ok()
        .filter(|i| (1..=3600).contains(i))
        .ok_or_else(|| LineErrorKind::Increment(f[4].clone()))?;
    let window = if f.len() == 5 {
        None
    } else {
        let days = f[5..f.len() - 2].join(",");
        let (from, to) = (&f[f.len() - 2], &f[f.len() - 1]);
        if days.trim_matches(',').is_empty() && from.is_empty() && to.is_empty() {
            None
        } else if days.trim_matches(',').is_empty() || from.is_empty() || to.is_empty() {
            return Err(LineErrorKind::PartialWindow);
        } else {
            let days = Days::parse(&days).ok_or(LineErrorKind::Days(days))?;
            let time = |field: &'static str, v: &str| {
                Minute::parse(v).ok_or_else(|| LineErrorKind::Time {
                    field,
                    value: v.to_owned(),
                })
            };
            let (from, to) = (time("from", from)?, time("to", to)?);
            if from == to {
                return Err(LineErrorKind::EmptyWindow(from.to_string()));
            }
            if from == Minute::END_OF_DAY {
                return Err(LineErrorKind::FromEndOfDay);
            }
            Some(Window { days, from, to })
        }
    };
    Ok(Rate {
        line,
        trunk,
        prefix,
        rate_per_minute,
        connect_fee,
        increment_seconds,
        window,
    })
}

/// The minutes of the week a window covers, as half-open intervals of week minutes
/// (Monday 00:00 = 0); Sunday's part after midnight wraps to Monday.
fn week_intervals(w: &Window) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(14);
    for d in Weekday::ALL.into_iter().filter(|d| w.days.contains(*d)) {
        let base = d as usize * 1440;
        let (from, to) = (usize::from(w.from.get()), usize::from(w.to.get()));
        if from < to {
            out.push((base + from, base + to));
        } else {
            out.push((base + from, base + 1440));
            let next = (d as usize + 1) % 7 * 1440;
            if to > 0 {
                out.push((next, next + to));
            }
        }
    }
    out
}

/// The first week minute two interval lists share, if any.
fn first_common(a: &[(usize, usize)], b: &[(usize, usize)]) -> Option<usize> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| (x.0.max(y.0), x.1.min(y.1))))
        .filter(|(s, e)| s < e)
        .map(|(s, _)| s)
        .min()
}

fn check_conflicts(rates: &[Rate], errors: &mut Vec<LineError>) {
    let mut groups: HashMap<(&TrunkName, &str), Vec<&Rate>> = HashMap::new();
    for r in rates {
        groups
            .entry((&r.trunk, r.prefix.as_str()))
            .or_default()
            .push(r);
    }
    for group in groups.values().filter(|g| g.len() > 1) {
        let mut all_day: Option<&Rate> = None;
        let mut windowed: Vec<(&Rate, Vec<(usize, usize)>)> = Vec::new();
        for r in group {
            match &r.window {
                None => match all_day {
                    Some(first) => errors.push(LineError {
                        line: r.line,
                        kind: LineErrorKind::DuplicateRate {
                            trunk: r.trunk.to_string(),
                            prefix: format!("+{}", r.prefix),
                            first_line: first.line,
                        },
                    }),
                    None => all_day = Some(r),
                },
                Some(w) => {
                    let mine = week_intervals(w);
                    let clash = windowed.iter().find_map(|(other, theirs)| {
                        Some((other.line, first_common(&mine, theirs)?))
                    });
                    if let Some((other_line, m)) = clash {
                        let at = LocalTime {
                            weekday: Weekday::ALL[m / 1440],
                            minute: Minute::new((m % 1440 / 60) as u8, (m % 60) as u8)
                                .unwrap_or(Minute::MIDNIGHT),
                        };
                        errors.push(LineError {
                            line: r.line,
                            kind: LineErrorKind::Overlap {
                                other_line,
                                at: at.to_string(),
                            },
                        });
                    }
                    windowed.push((r, mine));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_day_and_windowed_rates() {
        let text = "\
# rates
trunk,prefix,rate_per_minute,connect_fee,increment_seconds,days,from,to
provider,+62,650,0,60
provider,+62812,300.5,100,1,mon-fri,18:00,08:00
provider,+62812,250,0,1,sat,sun,08:00,18:00
\"goip-telkomsel\",+62812,150,0,60,,,
";
        let t = RateTable::parse(text).unwrap();
        let r = t.rates();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].prefix, "62");
        assert_eq!(r[0].window, None);
        assert_eq!(r[1].rate_per_minute, Money::parse("300.5").unwrap());
        assert_eq!(r[1].window.unwrap().to_string(), "mon-fri 18:00-08:00");
        assert_eq!(r[2].window.unwrap().to_string(), "sat,sun 08:00-18:00");
        assert_eq!(r[3].trunk.as_str(), "goip-telkomsel");
        assert_eq!(r[3].window, None);
        let names: Vec<&str> = t.trunks().iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["provider", "goip-telkomsel"]);
    }

    #[test]
    fn cost_rounds_up_to_the_increment_exactly() {
        let t = RateTable::parse("p,+62,650,100,60\nq,+62,650.5,0,1\nr,+62,1,0,6\n").unwrap();
        let [per_minute, per_second, six] = t.rates() else {
            panic!()
        };
        assert_eq!(per_minute.cost(0), Money::from_units(100));
        assert_eq!(per_minute.cost(1), Money::from_units(750));
        assert_eq!(per_minute.cost(60), Money::from_units(750));
        assert_eq!(per_minute.cost(61), Money::from_units(1400));
        // 650.5 per minute, 45 s billed by the second: 487.875.
        assert_eq!(per_second.cost(45).to_string(), "487.875");
        // 1 per minute in 6 s steps: 7 s bills 12 s = 0.2.
        assert_eq!(six.cost(7).to_string(), "0.20");
        // 1/60 of a ten-thousandth is kept exactly in the ranking value.
        assert_eq!(six.cost_sixtieths(7), 12 * 10_000);
    }

    #[test]
    fn every_bad_line_is_reported_and_nothing_is_loaded() {
        let text = "\
provider,+62,650,0,60
provider,62,650,0,60
provider,+62,650,0,0
provider,+62,6.50.0,0,60
provider,+62,650,-1,60
provider,+62,650,0,60,mon-fri
provider,+62,650,0,60,monday,08:00,17:00
provider,+62,650,0,60,mon,08:00,25:00
provider,+62,650,0,60,mon,08:00,08:00
bad name,+62,650,0,60
provider,+62
provider,+62,650,0,60
provider,+62,600,0,60,mon-fri,08:00,17:00
provider,+62,500,0,60,fri,16:00,09:00
";
        let err = RateTable::parse(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "12 error(s) in the rates file
line 2: prefix must start with + and digits, found `62`
line 3: increment_seconds must be ≥ 1 (whole seconds, at most 3600), found `0`
line 4: rate_per_minute must be a decimal number ≥ 0 with at most 4 decimal places (e.g. 650 or 0.25), found `6.50.0`
line 5: connect_fee must be a decimal number ≥ 0 with at most 4 decimal places (e.g. 650 or 0.25), found `-1`
line 6: days, from and to go together: give all three or none
line 7: days must be day names (mon … sun), ranges like mon-fri or lists like sat,sun; found `monday`
line 8: to must be a time HH:MM from 00:00 to 24:00, found `25:00`
line 9: from and to are both 08:00; leave days,from,to empty for a rate that holds all day
line 10: trunk must be a name of letters, digits, `-`, `_` or `.`, found `bad name`
line 11: expected 5 fields (trunk,prefix,rate_per_minute,connect_fee,increment_seconds) or 8 (…,days,from,to), found 2 fields
line 12: trunk provider already has an all-day rate for +62 on line 1
line 14: its time window overlaps line 13 (same trunk and prefix; both cover fri 16:00)"
        );
        assert_eq!(err.errors.len(), 12);
    }

    #[test]
    fn windows_that_only_touch_do_not_overlap() {
        let text = "\
p,+62,600,0,60,mon-fri,08:00,17:00
p,+62,300,0,60,mon-fri,17:00,08:00
p,+62,200,0,60,sat,sun,08:00,17:00
";
        assert!(RateTable::parse(text).is_ok());
        let clash = "p,+62,300,0,60,sun,17:00,08:00\np,+62,200,0,60,mon,07:00,09:00\n";
        let err = RateTable::parse(clash).unwrap_err();
        assert_eq!(
            err.errors[0].to_string(),
            "line 2: its time window overlaps line 1 (same trunk and prefix; both cover mon 07:00)"
        );
    }

    #[test]
    fn import_checks_trunk_names_with_the_other_errors() {
        let known = [TrunkName::new("provider").unwrap()];
        let text = "provider,+62,650,0,60\nprovidr,+62,650,0,60\nprovider,+62,1,0,0\n";
        let err = RateTable::parse_for_trunks(text, &known).unwrap_err();
        let lines: Vec<String> = err.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "line 2: trunk `providr` is not a configured [[trunk]]; add it to the configuration or fix the name",
                "line 3: increment_seconds must be ≥ 1 (whole seconds, at most 3600), found `0`",
            ]
        );
        assert!(RateTable::parse_for_trunks("provider,+62,650,0,60\n", &known).is_ok());
    }

    #[test]
    fn a_window_cannot_start_at_the_end_of_the_day() {
        let err = RateTable::parse("p,+62,1,0,1,mon,24:00,06:00\n").unwrap_err();
        assert_eq!(err.errors[0].kind, LineErrorKind::FromEndOfDay);
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let err = RateTable::parse("# nothing yet\n").unwrap_err();
        assert_eq!(err.to_string(), "the rates file has no records");
    }
}
