//! Outbound calls: a number that is no extension or service here becomes a
//! [`super::Destination::Trunk`] carrying kentongan-lcr's ranked routes for this caller, or is
//! refused because the caller's calling rights do not cover its class.
//!
//! [`Outbound::load`] reads the files `[lcr]` names (rates, operators) and the time zone once,
//! at start and reload; deciding a call ([`Outbound::route`]) then reads nothing, so the rules
//! are tested without files. The number goes to the trunk in E.164 with its `+`
//! (`+6281234567890`), which SIP providers and GSM gateways both take; emergency numbers go as
//! dialled (`112`), as the operators route them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use kentongan_lcr::class::{classify, CallClass};
use kentongan_lcr::lcr::Router;
use kentongan_lcr::money::Money;
use kentongan_lcr::number::{Dialled, NumberingPlan};
use kentongan_lcr::operators::OperatorTable;
use kentongan_lcr::rates::{Rate, RateTable};
use kentongan_lcr::rights::{CallingRightsConfig, Denied, RightsBook};
use kentongan_lcr::time::{LocalTime, Weekday};
use tracing::warn;

use crate::config::Config;

/// How long a call is assumed to last when trunks are ranked (as `lcr explain` prices).
pub const RANKING_SECONDS: u32 = 60;

/// What outbound routing needs, loaded from the files the configuration names.
#[derive(Debug, Clone)]
pub struct Outbound {
    plan: NumberingPlan,
    router: Router,
    rights: RightsBook,
    /// East-positive seconds from UTC of the appliance's zone, for rate time windows.
    utc_offset_s: i64,
    /// Per trunk (configuration order): where a provider's INVITEs go, resolved at load.
    addresses: Vec<Option<SocketAddr>>,
}

/// A call that leaves through a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkCall {
    /// The number as the trunk gets it: `+6281234567890`, or `112` for emergency.
    pub number: String,
    pub class: CallClass,
    /// The ways out, best first; the core tries them in order.
    pub routes: Vec<Route>,
    /// The caller's `max_call_minutes`: the PBX hangs up an answered call then. Never set for
    /// emergency calls, which nobody cuts.
    pub max_call_minutes: Option<u32>,
}

/// One way out for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Index into `Config::trunks`.
    pub trunk: usize,
    /// The rate that prices the call (none for emergency calls, which are not costed).
    pub rate: Option<Rate>,
    /// Emergency calls only: the trunk was at its channel limit when the call was routed.
    pub over_limit: bool,
}

impl Route {
    /// What a call of `seconds` on this route costs.
    pub fn cost(&self, seconds: u32) -> Option<Money> {
        self.rate.as_ref().map(|r| r.cost(seconds))
    }
}

/// Why an outbound number gets no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    #[error("{number}: {denied}")]
    Rights { denied: Denied, number: String },
    #[error("no trunk can carry {number} now (every trunk is at its channel limit or has no rate for it); add a rate or a trunk")]
    NoRoute { number: String },
}

/// Why `[lcr]`'s files could not be loaded (the daemon then makes no outbound calls).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("[lcr]: {0}")]
    Config(String),
}

impl Outbound {
    /// Loads `[lcr]`'s rates and operators for the configured trunks; `Ok(None)` when the
    /// configuration has no `[lcr]` or no trunk. A provider's `address` is resolved here (a
    /// name through the system resolver), so no call waits for DNS.
    pub fn load(config: &Config) -> Result<Option<Outbound>, OutboundError> {
        let Some(lcr) = &config.lcr else {
            return Ok(None);
        };
        if config.trunks.is_empty() {
            return Ok(None);
        }
        let names: Vec<_> = config.trunks.iter().map(|t| t.name.clone()).collect();
        let rates_text = read(&lcr.rates, "the rates file")?;
        let rates = RateTable::parse_for_trunks(&rates_text, &names).map_err(|e| {
            OutboundError::Invalid {
                path: lcr.rates.clone(),
                message: format!("{e}; {}", e.hint()),
            }
        })?;
        let operators = if lcr.operators.exists() {
            let text = read(&lcr.operators, "the operators file")?;
            OperatorTable::parse(&text).map_err(|e| OutboundError::Invalid {
                path: lcr.operators.clone(),
                message: format!("{e}; {}", e.hint()),
            })?
        } else {
            OperatorTable::indonesia().map_err(|e| OutboundError::Config(e.to_string()))?
        };
        let emergency = lcr
            .emergency_trunks()
            .map_err(|e| OutboundError::Config(e.to_string()))?;
        let router = Router::new(
            &rates,
            config.trunks.iter().map(|t| t.facts()).collect(),
            operators,
            &emergency,
        )
        .map_err(|e| OutboundError::Config(format!("{e}; {}", e.hint())))?;
        let plan = lcr
            .numbering_plan()
            .map_err(|e| OutboundError::Config(e.to_string()))?;
        let rights = rights_book(config).map_err(OutboundError::Config)?;
        let utc_offset_s = std::fs::read("/etc/localtime")
            .ok()
            .and_then(|b| posix_offset_seconds(&String::from_utf8_lossy(&b)))
            .unwrap_or(0);
        let addresses = config
            .trunks
            .iter()
            .map(|t| {
                let a = t.address.as_deref()?;
                let found = a.to_socket_addrs().ok().and_then(|mut it| it.next());
                if found.is_none() {
                    warn!(trunk = %t.name.as_str(), address = a, "trunk address does not resolve; calls skip this trunk");
                }
                found
            })
            .collect();
        Ok(Some(Outbound::new(
            plan,
            router,
            rights,
            utc_offset_s,
            addresses,
        )))
    }

    pub fn new(
        plan: NumberingPlan,
        router: Router,
        rights: RightsBook,
        utc_offset_s: i64,
        addresses: Vec<Option<SocketAddr>>,
    ) -> Outbound {
        Outbound {
            plan,
            router,
            rights,
            utc_offset_s,
            addresses,
        }
    }

    /// East-positive seconds from UTC of the appliance's zone (where its day begins).
    pub fn utc_offset_seconds(&self) -> i64 {
        self.utc_offset_s
    }

    /// The resolved address of provider trunk `trunk`.
    pub fn address(&self, trunk: usize) -> Option<SocketAddr> {
        self.addresses.get(trunk).copied().flatten()
    }

    /// `number` in E.164 (`+62215550100`) by the office's numbering plan, if it is a public
    /// number: how inbound DIDs and callers' numbers are compared and recorded.
    pub fn e164(&self, number: &str) -> Option<String> {
        match self.plan.normalise(number, |_| false).ok()? {
            Dialled::External(e) => Some(e.as_str().to_owned()),
            _ => None,
        }
    }

    /// Whether `dialled` is a public or emergency number (not one of ours, not malformed).
    /// `Ok(None)`: not a number for a trunk.
    pub fn route(
        &self,
        dialled: &str,
        caller_rights: Option<&str>,
        unix_s: i64,
        channels_in_use: &[u32],
    ) -> Option<Result<TrunkCall, OutboundRefusal>> {
        // Our extensions and services were matched before this is asked.
        let normalised = self.plan.normalise(dialled, |_| false).ok()?;
        let class = classify(&normalised, &self.plan);
        let number = match &normalised {
            Dialled::Emergency(e) => e.digits().to_owned(),
            Dialled::External(e) => e.as_str().to_owned(),
            Dialled::Internal(_) => return None,
        };
        let rights = self.rights.for_extension(caller_rights);
        if let Err(denied) = rights.permits(class) {
            return Some(Err(OutboundRefusal::Rights { denied, number }));
        }
        let Some(at) = local_time_at(unix_s + self.utc_offset_s) else {
            return Some(Err(OutboundRefusal::NoRoute { number }));
        };
        let decision = match &normalised {
            Dialled::External(e) => {
                self.router
                    .route(e, class, at, RANKING_SECONDS, channels_in_use)
            }
            _ => self.router.route_emergency(channels_in_use),
        };
        let routes: Vec<Route> = decision
            .choices
            .iter()
            .map(|c| Route {
                trunk: usize::from(c.trunk.0),
                rate: c.rate.map(|i| self.router.rate(i).clone()),
                over_limit: c.over_limit,
            })
            .collect();
        if routes.is_empty() {
            return Some(Err(OutboundRefusal::NoRoute { number }));
        }
        let max_call_minutes = match class {
            CallClass::Emergency => None,
            _ => rights.max_call_minutes(),
        };
        Some(Ok(TrunkCall {
            number,
            class,
            routes,
            max_call_minutes,
        }))
    }
}

fn read(path: &Path, what: &'static str) -> Result<String, OutboundError> {
    std::fs::read_to_string(path).map_err(|source| OutboundError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The configuration's `[[calling_rights]]` (already checked) as kentongan-lcr's book.
fn rights_book(config: &Config) -> Result<RightsBook, String> {
    let mut raw = Vec::new();
    for r in &config.calling_rights {
        let allow = r
            .allow
            .iter()
            .map(|c| c.parse::<CallClass>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        raw.push(CallingRightsConfig {
            name: r.name.clone(),
            allow,
            max_call_minutes: r.max_call_minutes,
        });
    }
    RightsBook::new(&raw).map_err(|e| e.to_string())
}

/// The moment of the week of a local Unix time.
pub fn local_time_at(local_unix: i64) -> Option<LocalTime> {
    let days = local_unix.div_euclid(86_400);
    let secs = local_unix.rem_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = Weekday::ALL[((days + 3).rem_euclid(7)) as usize];
    LocalTime::new(weekday, (secs / 3600) as u8, ((secs % 3600) / 60) as u8)
}

/// The UTC offset of a TZif file's footer rule, e.g. `WIB-7` or `<+07>-7` → +25200 s
/// (Indonesia keeps no daylight saving time, so the fixed part is the offset).
pub fn posix_offset_seconds(tzif: &str) -> Option<i64> {
    let rule = tzif.trim_end_matches('\n').rsplit('\n').next()?.trim();
    let rest = if let Some(r) = rule.strip_prefix('<') {
        r.split_once('>')?.1
    } else {
        rule.trim_start_matches(|c: char| c.is_ascii_alphabetic())
    };
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '+' || c == '-' || c == ':'))
        .unwrap_or(rest.len());
    let spec = &rest[..end];
    if spec.is_empty() {
        return None;
    }
    let (sign, digits) = match spec.as_bytes()[0] {
        b'-' => (1, &spec[1..]),
        b'+' => (-1, &spec[1..]),
        _ => (-1, spec),
    };
    let mut parts = digits.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    // POSIX offsets are west-positive: "WIB-7" is seven hours east of UTC.
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: &str = "\
cheap,+62,300,0,60
dear,+62,650,0,60
dear,+65,900,0,60
";

    fn outbound(extra: &str) -> Outbound {
        let config = Config::from_toml(&format!(
            "[sip]\ndomain = \"pbx.local\"\n\
             [[trunk]]\nname = \"dear\"\nkind = \"provider\"\naddress = \"127.0.0.1:5091\"\ncaller_id = \"+62215550100\"\n\
             [[trunk]]\nname = \"cheap\"\nkind = \"provider\"\naddress = \"127.0.0.1:5092\"\nmax_channels = 1\n\
             [lcr]\ncountry = \"62\"\n{extra}"
        ))
        .unwrap();
        let lcr = config.lcr.as_ref().unwrap();
        let names: Vec<_> = config.trunks.iter().map(|t| t.name.clone()).collect();
        let rates = RateTable::parse_for_trunks(RATES, &names).unwrap();
        let router = Router::new(
            &rates,
            config.trunks.iter().map(|t| t.facts()).collect(),
            OperatorTable::indonesia().unwrap(),
            &lcr.emergency_trunks().unwrap(),
        )
        .unwrap();
        Outbound::new(
            lcr.numbering_plan().unwrap(),
            router,
            rights_book(&config).unwrap(),
            7 * 3600,
            vec![None, None],
        )
    }

    #[test]
    fn a_mobile_number_goes_cheapest_first_in_e164() {
        let o = outbound("");
        let call = o.route("081234567890", None, 0, &[0, 0]).unwrap().unwrap();
        assert_eq!(call.number, "+6281234567890");
        assert_eq!(call.class, CallClass::Mobile);
        let order: Vec<usize> = call.routes.iter().map(|r| r.trunk).collect();
        assert_eq!(order, vec![1, 0]);
        assert_eq!(call.routes[0].cost(60), Some(Money::from_units(300)));
        assert_eq!(call.routes[1].cost(90), Some(Money::from_units(1300)));
    }

    #[test]
    fn a_trunk_at_its_channel_limit_is_left_out() {
        let o = outbound("");
        let call = o.route("081234567890", None, 0, &[0, 1]).unwrap().unwrap();
        let order: Vec<usize> = call.routes.iter().map(|r| r.trunk).collect();
        assert_eq!(order, vec![0]);
    }

    #[test]
    fn international_needs_rights_and_emergency_never_does() {
        let o = outbound(
            "[[calling_rights]]\nname = \"direksi\"\nallow = [\"international\", \"mobile\"]\nmax_call_minutes = 60\n",
        );
        let refused = o.route("006512345678", None, 0, &[0, 0]).unwrap();
        match refused {
            Err(OutboundRefusal::Rights { denied, number }) => {
                assert_eq!(denied.class, CallClass::International);
                assert_eq!(denied.rights, "default");
                assert_eq!(number, "+6512345678");
            }
            other => panic!("{other:?}"),
        }
        let allowed = o
            .route("006512345678", Some("direksi"), 0, &[0, 0])
            .unwrap()
            .unwrap();
        assert_eq!(allowed.number, "+6512345678");
        assert_eq!(allowed.max_call_minutes, Some(60));
        assert_eq!(allowed.routes.len(), 1);
        let emergency = o
            .route("112", Some("direksi"), 0, &[1, 1])
            .unwrap()
            .unwrap();
        assert_eq!(
            emergency.max_call_minutes, None,
            "an emergency call is never cut"
        );
        assert_eq!(emergency.number, "112");
        assert_eq!(emergency.class, CallClass::Emergency);
        // Never costed, never refused for a busy count: every trunk, in configuration order.
        assert_eq!(emergency.routes.len(), 2);
        assert!(emergency.routes.iter().all(|r| r.rate.is_none()));
    }

    #[test]
    fn no_rate_means_no_route_and_garbage_is_no_number() {
        let o = outbound("");
        assert!(matches!(
            o.route("+4930123456", Some("x"), 0, &[0, 0]),
            Some(Err(OutboundRefusal::Rights { .. }))
        ));
        let book = "[[calling_rights]]\nname = \"all\"\nallow = [\"international\"]\n";
        let o = outbound(book);
        assert!(matches!(
            o.route("+4930123456", Some("all"), 0, &[0, 0]),
            Some(Err(OutboundRefusal::NoRoute { .. }))
        ));
        assert!(o.route("abc", None, 0, &[0, 0]).is_none());
    }

    #[test]
    fn tz_rules_give_east_positive_offsets() {
        assert_eq!(posix_offset_seconds("TZif…\nWIB-7\n"), Some(7 * 3600));
        assert_eq!(posix_offset_seconds("TZif…\n<+07>-7\n"), Some(7 * 3600));
        assert_eq!(posix_offset_seconds("TZif…\nWITA-8\n"), Some(8 * 3600));
        assert_eq!(posix_offset_seconds("TZif…\nUTC0\n"), Some(0));
        assert_eq!(
            posix_offset_seconds("TZif…\nIST-5:30\n"),
            Some(5 * 3600 + 1800)
        );
        assert_eq!(
            posix_offset_seconds("TZif…\nEST5EDT,M3.2.0,M11.1.0\n"),
            Some(-5 * 3600)
        );
    }

    #[test]
    fn unix_time_becomes_a_moment_of_the_week() {
        // 2026-12-03 is a Thursday; 10:15 UTC.
        assert_eq!(
            local_time_at(1796292900),
            LocalTime::new(Weekday::Thu, 10, 15)
        );
        assert_eq!(local_time_at(0).map(|t| t.weekday), Some(Weekday::Thu));
    }
}
