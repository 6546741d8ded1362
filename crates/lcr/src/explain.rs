//! `kentongan-pbx lcr explain NUMBER`: the whole decision for one number, as text or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::class::{classify, CallClass};
use crate::lcr::{Decision, RouteChoice, Router, SkipReason};
use crate::money::Money;
use crate::number::{Dialled, NumberError, NumberingPlan};
use crate::rates::Rate;
use crate::time::LocalTime;

/// `lcr explain` prices every route for a call of this length.
pub const EXPLAIN_SECONDS: u32 = 60;

/// The decision for one dialled number, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub dialled: String,
    /// E.164, or the digits as dialled for emergency and internal numbers.
    pub number: String,
    pub class: CallClass,
    /// The emergency service reached, for emergency numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'static str>,
    pub operator: Option<String>,
    pub at: LocalTime,
    pub seconds: u32,
    pub routes: Vec<ExplainedRoute>,
    pub not_used: Vec<NotUsed>,
    /// A sentence for calls that take no trunk, or take them in a fixed order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A trunk among the choices, in rank order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedRoute {
    pub rank: usize,
    pub trunk: String,
    pub kind: &'static str,
    /// The rate used (`None` for emergency calls).
    pub rate: Option<RateUsed>,
    pub cost: Option<Money>,
    pub why: String,
}

/// The rates.csv line a route is priced by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateUsed {
    pub line: usize,
    pub prefix: String,
    pub rate_per_minute: Money,
    pub connect_fee: Money,
    pub increment_seconds: u32,
    /// `None`: all day.
    pub window: Option<String>,
}

impl RateUsed {
    fn of(r: &Rate) -> RateUsed {
        RateUsed {
            line: r.line,
            prefix: format!("+{}", r.prefix),
            rate_per_minute: r.rate_per_minute,
            connect_fee: r.connect_fee,
            increment_seconds: r.increment_seconds,
            window: r.window.map(|w| w.to_string()),
        }
    }
}

/// A trunk left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotUsed {
    pub trunk: String,
    pub why: String,
}

/// Explains how `dialled` would be routed at `at` with `channels_in_use`, pricing a call of
/// [`EXPLAIN_SECONDS`].
pub fn explain(
    router: &Router,
    plan: &NumberingPlan,
    dialled: &str,
    is_extension: impl Fn(&str) -> bool,
    at: LocalTime,
    channels_in_use: &[u32],
) -> Result<Explanation, NumberError> {
    let d = plan.normalise(dialled, is_extension)?;
    let class = classify(&d, plan);
    let seconds = EXPLAIN_SECONDS;
    let (number, service, operator, decision, note) = match &d {
        Dialled::Emergency(e) => (
            e.digits().to_owned(),
            Some(e.service()),
            None,
            router.route_emergency(channels_in_use),
            Some("emergency: always allowed, dialled as is, in the fixed emergency order (cost is not considered)".to_owned()),
        ),
        Dialled::Internal(ext) => (
            ext.clone(),
            None,
            None,
            Decision::new(),
            Some("internal: an extension of this PBX, no trunk".to_owned()),
        ),
        Dialled::External(e) => {
            let operator = router.operators().lookup(e).map(|o| o.to_string());
            let decision = router.route(e, class, at, seconds, channels_in_use);
            let note = decision.choices.is_empty().then(|| "no trunk can carry this call now".to_owned());
            (e.to_string(), None, operator, decision, note)
        }
    };
    let routes = decision
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| ExplainedRoute {
            rank: i + 1,
            trunk: router.trunk(c.trunk).name.to_string(),
            kind: router.trunk(c.trunk).kind.name(),
            rate: c.rate.map(|r| RateUsed::of(router.rate(r))),
            cost: c.cost,
            why: why(router, class, operator.as_deref(), &decision.choices, i),
        })
        .collect();
    let not_used = decision
        .skipped
        .iter()
        .map(|s| NotUsed {
            trunk: router.trunk(s.trunk).name.to_string(),
            why: match s.reason {
                SkipReason::ChannelLimit { in_use, max } => {
                    format!("at its channel limit: {in_use} of {max} in use")
                }
                SkipReason::NoRate => format!("no rate for this number at {at}"),
            },
        })
        .collect();
    Ok(Explanation {
        dialled: dialled.to_owned(),
        number,
        class,
        service,
        operator,
        at,
        seconds,
        routes,
        not_used,
        note,
    })
}

fn why(
    router: &Router,
    class: CallClass,
    operator: Option<&str>,
    choices: &[RouteChoice],
    i: usize,
) -> String {
    let c = &choices[i];
    if class == CallClass::Emergency {
        return if c.over_limit {
            "emergency order; at its channel limit, so tried after the free trunks".to_owned()
        } else {
            "emergency order".to_owned()
        };
    }
    let op = operator.unwrap_or("?");
    if c.operator_match {
        return format!("gateway on {op}, the number's operator: preferred for mobile numbers");
    }
    let after_operator = i > 0 && choices[i - 1].operator_match;
    if i == 0 || after_operator {
        let base = format!("cheapest for a {EXPLAIN_SECONDS} s call");
        return if after_operator {
            format!("{base} among trunks not on {op}")
        } else {
            base
        };
    }
    let prev = &choices[i - 1];
    match (c.cost, prev.cost) {
        (Some(a), Some(b)) if a == b => format!(
            "same cost as #{i}, after {} in configuration order",
            router.trunk(prev.trunk).name
        ),
        (Some(a), Some(b)) => format!("{} more than #{i}", a.saturating_sub(b)),
        _ => String::new(),
    }
}

impl Explanation {
    /// The human-readable form `lcr explain` prints.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "dialled   {}", self.dialled);
        let _ = writeln!(s, "number    {}", self.number);
        let _ = match self.service {
            Some(service) => writeln!(s, "class     {} ({service})", self.class),
            None => writeln!(s, "class     {}", self.class),
        };
        let _ = writeln!(s, "operator  {}", self.operator.as_deref().unwrap_or("-"));
        let _ = if matches!(self.class, CallClass::Emergency | CallClass::Internal) {
            writeln!(s, "at        {}", self.at)
        } else {
            writeln!(
                s,
                "at        {}, costs for a {} s call",
                self.at, self.seconds
            )
        };
        if let Some(note) = &self.note {
            let _ = writeln!(s, "note      {note}");
        }
        if !self.routes.is_empty() && self.routes.iter().all(|r| r.rate.is_none()) {
            // Emergency: no rates, only the order.
            let _ = writeln!(s, "routes");
            let w = self.routes.iter().map(|r| r.trunk.len()).max().unwrap_or(0);
            for r in &self.routes {
                let _ = writeln!(s, "  {}  {:w$}  {}", r.rank, r.trunk, r.why);
            }
        } else if !self.routes.is_empty() {
            let rows: Vec<[String; 8]> = self
                .routes
                .iter()
                .map(|r| {
                    let rate = r.rate.as_ref();
                    let money = |m: Option<Money>| m.map_or("-".to_owned(), |m| m.to_string());
                    [
                        r.rank.to_string(),
                        r.trunk.clone(),
                        rate.map_or("-".to_owned(), |r| {
                            format!("{} (line {})", r.prefix, r.line)
                        }),
                        rate.map_or("-".to_owned(), |r| {
                            r.window.clone().unwrap_or_else(|| "all day".to_owned())
                        }),
                        money(rate.map(|r| r.rate_per_minute)),
                        money(rate.map(|r| r.connect_fee)),
                        rate.map_or("-".to_owned(), |r| format!("{}s", r.increment_seconds)),
                        money(r.cost),
                    ]
                })
                .collect();
            let head = [
                "#", "trunk", "prefix", "when", "per min", "connect", "step", "cost",
            ];
            let mut width = head.map(str::len);
            for row in &rows {
                for (w, cell) in width.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |s: &mut String, cells: &[String; 8], why: &str| {
                let mut out = String::from(" ");
                for (i, cell) in cells.iter().enumerate() {
                    let pad = width[i] - cell.chars().count();
                    // Numbers right-aligned, names left.
                    if matches!(i, 0 | 4 | 5 | 6 | 7) {
                        out.push_str(&" ".repeat(pad + 1));
                        out.push_str(cell);
                    } else {
                        out.push(' ');
                        out.push_str(cell);
                        out.push_str(&" ".repeat(pad));
                    }
                    out.push(' ');
                }
                out.push(' ');
                out.push_str(why);
                let _ = writeln!(s, "{}", out.trim_end());
            };
            let _ = writeln!(s, "routes");
            line(&mut s, &head.map(str::to_owned), "why");
            for (row, r) in rows.iter().zip(&self.routes) {
                line(&mut s, row, &r.why);
            }
        }
        if !self.not_used.is_empty() {
            let _ = writeln!(s, "not used");
            let w = self
                .not_used
                .iter()
                .map(|n| n.trunk.len())
                .max()
                .unwrap_or(0);
            for n in &self.not_used {
                let _ = writeln!(s, "  {:w$}  {}", n.trunk, n.why);
            }
        }
        s
    }
}
