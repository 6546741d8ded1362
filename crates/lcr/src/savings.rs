//! `report savings --month`: what least-cost routing saved against the dearest route that
//! could have carried each call.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::class::CallClass;
use crate::lcr::Router;
use crate::money::Money;
use crate::number::Dialled;
use crate::rates::TrunkName;
use crate::time::LocalTime;

/// One call record as the report needs it; kentongan-pbx selects the month's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrRow {
    pub trunk: TrunkName,
    /// The normalised number (emergency and internal numbers as dialled).
    pub number: Dialled,
    pub class: CallClass,
    /// The local time the call started.
    pub start: LocalTime,
    /// Answered seconds (before any increment rounding).
    pub billed_seconds: u32,
    /// What the CDR recorded for the call.
    pub cost: Money,
}

/// One trunk's (or the total's) line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavingsLine {
    pub trunk: String,
    pub calls: u64,
    pub seconds: u64,
    /// What the calls cost.
    pub actual: Money,
    /// What they would have cost, each on the dearest trunk with a rate for it then.
    pub most_expensive: Money,
    pub saved: Money,
}

impl SavingsLine {
    fn new(trunk: &str) -> SavingsLine {
        SavingsLine {
            trunk: trunk.to_owned(),
            calls: 0,
            seconds: 0,
            actual: Money::ZERO,
            most_expensive: Money::ZERO,
            saved: Money::ZERO,
        }
    }

    fn add(&mut self, seconds: u32, actual: Money, worst: Money) {
        self.calls += 1;
        self.seconds += u64::from(seconds);
        self.actual = self.actual.saturating_add(actual);
        self.most_expensive = self.most_expensive.saturating_add(worst);
        self.saved = self.most_expensive.saturating_sub(self.actual);
    }
}

/// The month's report: per trunk (by name) and the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavingsReport {
    pub month: String,
    pub trunks: Vec<SavingsLine>,
    pub total: SavingsLine,
}

/// Compares each call's recorded cost with the dearest route that could have carried it:
/// every trunk with a rate for its number at its start time, channel limits ignored, its
/// own trunk included (so nothing is "saved" on a call no other trunk could carry).
/// Emergency and internal calls have no alternatives and count at their own cost.
pub fn savings(router: &Router, month: &str, rows: &[CdrRow]) -> SavingsReport {
    let mut trunks: BTreeMap<&str, SavingsLine> = BTreeMap::new();
    let mut total = SavingsLine::new("total");
    for row in rows {
        let worst = match (&row.number, row.class) {
            (_, CallClass::Emergency | CallClass::Internal) => row.cost,
            (Dialled::External(number), _) => router
                .most_expensive(number, row.start, row.billed_seconds)
                .map_or(row.cost, |w| w.max(row.cost)),
            _ => row.cost,
        };
        trunks
            .entry(row.trunk.as_str())
            .or_insert_with(|| SavingsLine::new(row.trunk.as_str()))
            .add(row.billed_seconds, row.cost, worst);
        total.add(row.billed_seconds, row.cost, worst);
    }
    SavingsReport {
        month: month.to_owned(),
        trunks: trunks.into_values().collect(),
        total,
    }
}

impl SavingsReport {
    /// The table `report savings` prints.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "savings by least-cost routing, {}", self.month);
        let head = [
            "trunk",
            "calls",
            "minutes",
            "actual",
            "most expensive",
            "saved",
        ];
        let row = |l: &SavingsLine| {
            [
                l.trunk.clone(),
                l.calls.to_string(),
                format!("{}:{:02}", l.seconds / 60, l.seconds % 60),
                l.actual.to_string(),
                l.most_expensive.to_string(),
                l.saved.to_string(),
            ]
        };
        let mut rows: Vec<[String; 6]> = self.trunks.iter().map(row).collect();
        rows.push(row(&self.total));
        let mut width = head.map(str::len);
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let rule = "-".repeat(width.iter().sum::<usize>() + 2 * (width.len() - 1));
        let line = |cells: &[String; 6]| {
            let mut line = format!("{:<w$}", cells[0], w = width[0]);
            for (c, w) in cells.iter().zip(width).skip(1) {
                let _ = write!(line, "  {c:>w$}");
            }
            line
        };
        let _ = writeln!(s, "{}", line(&head.map(str::to_owned)));
        let last = rows.len() - 1;
        for (i, r) in rows.iter().enumerate() {
            if i == last {
                let _ = writeln!(s, "{rule}");
            }
            let _ = writeln!(s, "{}", line(r));
        }
        s
    }
}
