//! `report savings --month YYYY-MM [--json]`: the month's answered trunk calls from the CDR,
//! each priced against the dearest route that could have carried it (kentongan-lcr's
//! `savings`), per trunk and in total. Months are the appliance's local months.

use std::io::Write as _;

use clap::Subcommand;
use kentongan_lcr::class::CallClass;
use kentongan_lcr::money::Money;
use kentongan_lcr::rates::TrunkName;
use kentongan_lcr::savings::{savings, CdrRow};
use kentongan_pbx::config::Config;
use kentongan_pbx::routing::outbound::{local_time_at, posix_offset_seconds};

use crate::trunk_cli::{lcr_config, router};
use crate::{fail, Failure};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// What least-cost routing saved in a month, per trunk.
    Savings {
        /// The month, e.g. 2026-11.
        #[arg(long)]
        month: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn report(config: &Config, command: ReportCommand) -> Result<(), Failure> {
    let ReportCommand::Savings { month, json } = command;
    let (year, mon) = parse_month(&month).ok_or_else(|| {
        fail(
            anyhow::anyhow!("--month {month:?} is not a month"),
            "write it as YYYY-MM, e.g. --month 2026-11",
        )
    })?;
    let lcr = lcr_config(config)?;
    let router = router(config, lcr)?;
    let plan = lcr
        .numbering_plan()
        .map_err(|e| fail(anyhow::anyhow!("{e}"), "fix `lcr.country`"))?;
    let offset = std::fs::read("/etc/localtime")
        .ok()
        .and_then(|b| posix_offset_seconds(&String::from_utf8_lossy(&b)))
        .unwrap_or(0);
    let (next_year, next_mon) = if mon == 12 {
        (year + 1, 1)
    } else {
        (year, mon + 1)
    };
    let local_ms = |y: i64, m: u32| (days_from_civil(y, m, 1) * 86_400 - offset) * 1000;
    let store = crate::open_store(config)?;
    let cdrs = store
        .outbound_cdrs_between(local_ms(year, mon), local_ms(next_year, next_mon))
        .map_err(|e| fail(e, "check `storage.database`"))?;
    let mut rows = Vec::new();
    let mut skipped = 0usize;
    for c in &cdrs {
        let Some(out) = &c.outbound else { continue };
        // A record whose trunk was since renamed, or whose number no longer parses, cannot
        // be priced against today's trunks: counted and reported, not guessed at.
        let row = (|| {
            Some(CdrRow {
                trunk: TrunkName::new(out.trunk.as_deref()?).ok()?,
                number: plan.normalise(&out.number, |_| false).ok()?,
                class: CallClass::ALL.into_iter().find(|k| k.name() == out.class)?,
                start: local_time_at(c.start_ms.div_euclid(1000) + offset)?,
                billed_seconds: c.duration_s.max(0.0).ceil().min(f64::from(u32::MAX)) as u32,
                cost: out.cost.unwrap_or(Money::ZERO),
            })
        })();
        match row {
            Some(r) => rows.push(r),
            None => skipped += 1,
        }
    }
    let report = savings(&router, &month, &rows);
    let mut stdout = std::io::stdout().lock();
    let text = if json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        report.to_text()
    };
    stdout
        .write_all(text.as_bytes())
        .map_err(|e| fail(e, "check where the output goes"))?;
    if skipped > 0 {
        eprintln!(
            "warning: {skipped} call(s) left out: their trunk is no [[trunk]] now, or their number or class does not parse"
        );
    }
    Ok(())
}

/// "2026-11" → (2026, 11).
fn parse_month(text: &str) -> Option<(i64, u32)> {
    let (y, m) = text.trim().split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let y: i64 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    ((1970..=9999).contains(&y) && (1..=12).contains(&m)).then_some((y, m))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_map_to_days() {
        assert_eq!(parse_month("2026-11"), Some((2026, 11)));
        assert_eq!(parse_month("2026-13"), None);
        assert_eq!(parse_month("26-11"), None);
        assert_eq!(parse_month("2026-1"), None);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // 2026-11-01 00:00 UTC is 1,793,491,200.
        assert_eq!(days_from_civil(2026, 11, 1) * 86_400, 1_793_491_200);
        assert_eq!(
            days_from_civil(2027, 1, 1) - days_from_civil(2026, 12, 1),
            31
        );
    }
}
