//! The operator's view of the ways out, shared by the CLI (`trunk list`, `lcr explain|import`,
//! `report savings`) and the web admin's Trunks and Rates pages, so both read the same files
//! and apply the same rules. The decisions themselves are kentongan-lcr's; this module finds
//! the files the configuration names, the store's trunk state and the local clock.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use kentongan_lcr::class::CallClass;
use kentongan_lcr::config::LcrConfig;
use kentongan_lcr::csv::CsvErrors;
use kentongan_lcr::explain::{explain, Explanation};
use kentongan_lcr::lcr::{Router, TrunkKind};
use kentongan_lcr::money::Money;
use kentongan_lcr::number::NumberError;
use kentongan_lcr::operators::OperatorTable;
use kentongan_lcr::rates::{RateTable, TrunkName};
use kentongan_lcr::savings::{savings, CdrRow, SavingsReport};
use kentongan_lcr::time::{LocalTime, Weekday};

use crate::config::Config;
use crate::routing::outbound::{local_time_at, posix_offset_seconds};
use crate::store::{Store, StoreError};

/// Why a trunk or LCR view could not be made. Each says what is wrong; [`LcrError::hint`]
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LcrError {
    #[error("the configuration has no [lcr] table")]
    NoLcr,
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{path}: {errors}")]
    Csv { path: String, errors: CsvErrors },
    #[error("{message}")]
    Config { message: String, hint: &'static str },
    #[error("{number:?}: {source}")]
    Number { number: String, source: NumberError },
    #[error("cannot install {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} is not a month")]
    Month(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LcrError {
    pub fn hint(&self) -> String {
        match self {
            LcrError::NoLcr => {
                "add [lcr] with `rates = \"/etc/kentongan/rates.csv\"` and `country = \"62\"`"
                    .into()
            }
            LcrError::Read { hint, .. } | LcrError::Config { hint, .. } => (*hint).into(),
            LcrError::Csv { errors, .. } => errors.hint().into(),
            LcrError::Number { .. } => {
                "dial as a phone would: 0812…, 021…, +62…, 00… or an emergency number".into()
            }
            LcrError::Write { .. } => {
                "check that the folder of `lcr.rates` exists and is writable".into()
            }
            LcrError::Month(_) => "write it as YYYY-MM, e.g. 2026-11".into(),
            LcrError::Store(_) => "check `storage.database`".into(),
        }
    }
}

/// One configured trunk as `trunk list` shows it. No password, ever.
#[derive(Debug, Clone, Serialize)]
pub struct TrunkStatus {
    pub name: String,
    pub kind: &'static str,
    pub address: Option<String>,
    pub register: bool,
    pub username: Option<String>,
    pub max_channels: Option<u32>,
    pub operator: Option<String>,
    pub caller_id: Option<String>,
    /// What the daemon last saw of our registration to a provider: "registered",
    /// "registering", "failed" or "not registered" (no daemon has tried); a gateway's is
    /// "registered" while its device has a current registration to us, else "not
    /// registered". A provider without `register` is "unknown".
    pub state: String,
    /// The last failure (the provider's answer, a timeout), while failed. Provider-sourced.
    pub last_failure: Option<String>,
    /// Unix seconds the registration runs out at.
    pub expires_at: Option<i64>,
    /// Calls on the trunk now (in and out), as the daemon last mirrored it.
    pub channels_in_use: u32,
    /// OPTIONS keepalives: `true`/`false` once probed, `null` without `keepalive_seconds`.
    pub reachable: Option<bool>,
    /// Why it is down, while down.
    pub down_reason: Option<String>,
}

/// Every `[[trunk]]` with what the daemon last stored about it, at Unix second `now`.
pub fn trunk_status(
    config: &Config,
    store: &Store,
    now: i64,
) -> Result<Vec<TrunkStatus>, StoreError> {
    let states = store.trunk_states()?;
    let health = store.trunk_health()?;
    // A gateway's state is its device's registration to us, under the trunk's username.
    let bindings = store.bindings(now)?;
    Ok(config
        .trunks
        .iter()
        .map(|t| {
            let seen = states
                .iter()
                .find(|s| s.name == t.name.as_str())
                .filter(|_| t.register);
            let gateway = (t.kind == TrunkKind::Gateway).then(|| {
                bindings
                    .iter()
                    .filter(|b| Some(b.extension.0.as_str()) == t.username.as_deref())
                    .max_by_key(|b| b.expires_at)
            });
            let (state, last_failure, expires_at) = match (seen, gateway) {
                (_, Some(Some(b))) => ("registered".to_owned(), None, Some(b.expires_at)),
                (_, Some(None)) => ("not registered".to_owned(), None, None),
                (seen, None) => match seen {
                    None if t.register => ("not registered".to_owned(), None, None),
                    None => ("unknown".to_owned(), None, None),
                    Some(s) if s.state == "registered" && s.expires_at.is_some_and(|e| e < now) => {
                        ("expired".to_owned(), None, s.expires_at)
                    }
                    Some(s) if s.state == "failed" => {
                        ("failed".to_owned(), Some(s.detail.clone()), None)
                    }
                    Some(s) => (s.state.clone(), None, s.expires_at),
                },
            };
            let registered_from = gateway.flatten().map(|b| b.source.clone());
            let h = health.iter().find(|h| h.name == t.name.as_str());
            TrunkStatus {
                name: t.name.as_str().to_owned(),
                kind: t.kind.name(),
                address: t.address.clone().or(registered_from),
                register: t.register,
                username: t.username.clone(),
                max_channels: t.max_channels,
                operator: t.operator.as_ref().map(|o| o.as_str().to_owned()),
                caller_id: t.caller_id.clone(),
                state,
                last_failure,
                expires_at,
                channels_in_use: h.map_or(0, |h| h.channels_in_use),
                reachable: h.and_then(|h| h.reachable),
                down_reason: h
                    .filter(|h| h.reachable == Some(false))
                    .map(|h| h.detail.clone()),
            }
        })
        .collect())
}

pub fn lcr_config(config: &Config) -> Result<&LcrConfig, LcrError> {
    config.lcr.as_ref().ok_or(LcrError::NoLcr)
}

fn read(path: &Path, what: &'static str, hint: &'static str) -> Result<String, LcrError> {
    std::fs::read_to_string(path).map_err(|source| LcrError::Read {
        what,
        path: path.to_owned(),
        source,
        hint,
    })
}

fn trunk_names(config: &Config) -> Vec<TrunkName> {
    config.trunks.iter().map(|t| t.name.clone()).collect()
}

/// `lcr.operators`, or the Indonesian table built into the binary while no file is there.
fn operators(lcr: &LcrConfig) -> Result<OperatorTable, LcrError> {
    if !lcr.operators.exists() {
        return OperatorTable::indonesia().map_err(|e| LcrError::Config {
            message: format!("the built-in operators table: {e}"),
            hint: "write your own operators.csv and set `lcr.operators` to it",
        });
    }
    let text = read(
        &lcr.operators,
        "the operators file",
        "make the file readable, or delete it to use the built-in Indonesian table",
    )?;
    OperatorTable::parse(&text).map_err(|errors| LcrError::Csv {
        path: lcr.operators.display().to_string(),
        errors,
    })
}

/// Checks a rates file's text against the configured trunks, as `lcr import` does.
pub fn check_rates(config: &Config, text: &str) -> Result<RateTable, CsvErrors> {
    RateTable::parse_for_trunks(text, &trunk_names(config))
}

/// Reads a rates file; the text and the table it makes for the configured trunks.
pub fn read_rates(config: &Config, path: &Path) -> Result<(String, RateTable), LcrError> {
    let text = read(
        path,
        "the rates file",
        "load one with `kentongan-pbx lcr import rates.csv`",
    )?;
    let table = check_rates(config, &text).map_err(|errors| LcrError::Csv {
        path: path.display().to_string(),
        errors,
    })?;
    Ok((text, table))
}

/// Validates `text` as a whole and installs it as `lcr.rates` by a rename: every bad line is
/// named and nothing changes unless all are good. `source` names the input in errors.
pub fn import_rates(config: &Config, source: &str, text: &str) -> Result<RateTable, LcrError> {
    let lcr = lcr_config(config)?;
    let table = check_rates(config, text).map_err(|errors| LcrError::Csv {
        path: source.to_owned(),
        errors,
    })?;
    write_atomically(&lcr.rates, text.as_bytes()).map_err(|source| LcrError::Write {
        path: lcr.rates.clone(),
        source,
    })?;
    Ok(table)
}

pub fn router(config: &Config, lcr: &LcrConfig) -> Result<Router, LcrError> {
    let (_, rates) = read_rates(config, &lcr.rates)?;
    let emergency = lcr.emergency_trunks().map_err(|e| LcrError::Config {
        message: e.to_string(),
        hint: "fix `lcr.emergency_order`",
    })?;
    Router::new(
        &rates,
        config.trunks.iter().map(|t| t.facts()).collect(),
        operators(lcr)?,
        &emergency,
    )
    .map_err(|e| LcrError::Config {
        message: e.to_string(),
        hint: e.hint(),
    })
}

/// How `number` would be routed at `at`: what `lcr explain` prints.
pub fn explain_number(
    config: &Config,
    store: &Store,
    number: &str,
    at: LocalTime,
) -> Result<Explanation, LcrError> {
    let lcr = lcr_config(config)?;
    let router = router(config, lcr)?;
    let plan = lcr.numbering_plan().map_err(|e| LcrError::Config {
        message: e.to_string(),
        hint: "fix `lcr.country`",
    })?;
    let users = store.users()?;
    let is_extension = |d: &str| users.iter().any(|u| u.extension.0 == d);
    let idle = vec![0; config.trunks.len()];
    explain(&router, &plan, number, is_extension, at, &idle).map_err(|source| LcrError::Number {
        number: number.to_owned(),
        source,
    })
}

/// What least-cost routing saved in `month` (YYYY-MM, a local month), and how many of its
/// calls could not be priced against today's trunks.
pub fn savings_report(
    config: &Config,
    store: &Store,
    month: &str,
) -> Result<(SavingsReport, usize), LcrError> {
    let (year, mon) = parse_month(month).ok_or_else(|| LcrError::Month(month.to_owned()))?;
    let lcr = lcr_config(config)?;
    let router = router(config, lcr)?;
    let plan = lcr.numbering_plan().map_err(|e| LcrError::Config {
        message: e.to_string(),
        hint: "fix `lcr.country`",
    })?;
    let offset = local_offset_seconds();
    let (next_year, next_mon) = if mon == 12 {
        (year + 1, 1)
    } else {
        (year, mon + 1)
    };
    let local_ms = |y: i64, m: u32| (days_from_civil(y, m, 1) * 86_400 - offset) * 1000;
    let cdrs = store.outbound_cdrs_between(local_ms(year, mon), local_ms(next_year, next_mon))?;
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
    Ok((savings(&router, month, &rows), skipped))
}

/// Writes `bytes` beside `path` and renames it over: readers see the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a file name", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// "mon 10:00" → a moment of the week.
pub fn parse_at(text: &str) -> Option<LocalTime> {
    let (day, time) = text.trim().split_once(' ')?;
    let day = Weekday::from_name(&day.to_ascii_lowercase())?;
    let (h, m) = time.trim().split_once(':')?;
    LocalTime::new(day, h.parse().ok()?, m.parse().ok()?)
}

/// The appliance's UTC offset: the fixed offset of `/etc/localtime`'s POSIX rule (Indonesia
/// keeps no daylight saving time), or 0 when there is none.
pub fn local_offset_seconds() -> i64 {
    std::fs::read("/etc/localtime")
        .ok()
        .and_then(|b| posix_offset_seconds(&String::from_utf8_lossy(&b)))
        .unwrap_or(0)
}

/// Now, in the appliance's time zone.
pub fn now_local() -> Option<LocalTime> {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    local_time_at(unix + local_offset_seconds())
}

/// "2026-11" → (2026, 11).
pub fn parse_month(text: &str) -> Option<(i64, u32)> {
    let (y, m) = text.trim().split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let y: i64 = y.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    ((1970..=9999).contains(&y) && (1..=12).contains(&m)).then_some((y, m))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month) of a day counted from 1970-01-01 (Howard Hinnant's civil_from_days).
pub fn month_of_day(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_parsed_or_refused() {
        assert!(parse_at("mon 10:00").is_some());
        assert!(parse_at("Sat 21:30").is_some());
        for bad in ["monday", "mon 25:00", "xyz 10:00", "mon 10"] {
            assert!(parse_at(bad).is_none(), "{bad}");
        }
    }

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
        for (y, m) in [(1970, 1), (2024, 2), (2026, 12), (2027, 3)] {
            assert_eq!(month_of_day(days_from_civil(y, m, 1)), (y, m));
            assert_eq!(month_of_day(days_from_civil(y, m, 28)), (y, m));
        }
    }

    #[test]
    fn a_bad_import_leaves_the_installed_rates() {
        let dir = tempfile::tempdir().unwrap();
        let rates = dir.path().join("rates.csv");
        let c = Config::from_toml(&format!(
            "[sip]\ndomain = \"pbx.local\"\n[[trunk]]\nname = \"provider\"\nkind = \"provider\"\naddress = \"192.0.2.1:5060\"\n[lcr]\nrates = \"{}\"\ncountry = \"62\"\n",
            rates.display()
        ))
        .unwrap();
        let good = "provider,+62,650,0,60\n";
        import_rates(&c, "upload", good).unwrap();
        let err =
            import_rates(&c, "upload", "provider,+62,650,0,60\nnosuch,+62,1,0,60\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(std::fs::read_to_string(&rates).unwrap(), good);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
