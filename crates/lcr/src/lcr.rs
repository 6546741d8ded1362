//! The least-cost router: for a number, a class, a start time and the channels in use, the
//! trunks to try in order.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::class::CallClass;
use crate::csv::{CsvErrors, LineError, LineErrorKind};
use crate::money::Money;
use crate::number::E164;
use crate::operators::{OperatorName, OperatorTable};
use crate::rates::{cost_sixtieths, money_of_sixtieths, Rate, RateTable, TrunkName};
use crate::time::{LocalTime, Window};
use crate::trie::PrefixTrie;

/// Whether a trunk is a SIP provider or a gateway (GSM/PSTN) whose channels register to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkKind {
    Provider,
    Gateway,
}

impl TrunkKind {
    pub fn name(self) -> &'static str {
        match self {
            TrunkKind::Provider => "provider",
            TrunkKind::Gateway => "gateway",
        }
    }
}

/// What the router needs to know about a `[[trunk]]`; kentongan-pbx builds these from its
/// configuration (credentials and addresses stay there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkFacts {
    pub name: TrunkName,
    pub kind: TrunkKind,
    /// The mobile operator of a gateway's SIMs: calls to that operator's numbers prefer it.
    pub operator: Option<OperatorName>,
    /// `None`: no limit.
    pub max_channels: Option<u32>,
}

/// A trunk's position in the router's trunk list (the configuration order); also the index
/// into the `channels_in_use` slice handed to [`Router::route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkId(pub u16);

/// Why a router cannot be built from these rates and trunks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouterError {
    #[error("{0}")]
    Rates(CsvErrors),
    #[error("trunk `{0}` is configured twice; trunk names must be unique")]
    DuplicateTrunk(String),
    #[error("more than {max} trunks; the router indexes trunks with 16 bits", max = u16::MAX)]
    TooManyTrunks,
    #[error("trunk `{trunk}` names operator `{operator}`, which operators.csv does not list (it lists: {known}); fix the name or add its prefixes")]
    UnknownOperator {
        trunk: String,
        operator: String,
        known: String,
    },
    #[error("the emergency order names `{0}`, which is not a configured trunk")]
    UnknownEmergencyTrunk(String),
}

impl RouterError {
    /// The next step for the operator.
    pub fn hint(&self) -> &'static str {
        match self {
            RouterError::Rates(e) => e.hint(),
            RouterError::UnknownOperator { .. } => {
                "the operator names are in the second column of operators.csv"
            }
            _ => "fix the [[trunk]] tables or [lcr] emergency_order and reload",
        }
    }
}

/// One way out, in rank order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteChoice {
    pub trunk: TrunkId,
    /// The rate used (index into [`Router::rate`]); `None` for emergency calls, which are
    /// never costed.
    pub rate: Option<u32>,
    /// The cost of this call on this trunk for the expected duration.
    pub cost: Option<Money>,
    /// A gateway on the number's own operator, preferred for mobile numbers.
    pub operator_match: bool,
    /// Emergency calls only: the trunk is at its channel limit and is tried last rather than
    /// skipped (the provider may still take the call; the PBX may free a channel for it).
    pub over_limit: bool,
    cost_sixtieths: u64,
}

/// Why a trunk is not among the choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Every channel is busy.
    ChannelLimit { in_use: u32, max: u32 },
    /// No rate of this trunk covers the number at this time.
    NoRate,
}

/// A trunk left out of the choices, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub trunk: TrunkId,
    pub reason: SkipReason,
    /// The rate it would have used (for channel-limit skips).
    pub rate: Option<u32>,
}

/// The outcome of one routing decision. Reuse one with [`Router::route_into`] to decide
/// without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub choices: Vec<RouteChoice>,
    pub skipped: Vec<Skip>,
    best: Vec<HotRate>,
}

impl Decision {
    pub fn new() -> Decision {
        Decision::default()
    }
}

/// The per-rate facts the hot path reads, kept small and together for the cache (the full
/// [`Rate`] with its strings is only read for explanations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct HotRate {
    /// Index into the router's full rates; [`NONE`] marks "no rate" in a decision's scratch.
    index: u32,
    trunk: u16,
    /// ≤ 3600, as rates.csv validation guarantees.
    increment: u16,
    window: Option<Window>,
    rate: u64,
    connect: u64,
}

impl HotRate {
    #[inline]
    fn cost_sixtieths(&self, seconds: u32) -> u64 {
        cost_sixtieths(self.connect, self.rate, u32::from(self.increment), seconds)
    }
}

const NONE: u32 = u32::MAX;

/// Ranks trunks for each call: per trunk the longest prefix whose rate holds at the call's
/// start (a windowed rate beats the all-day one of the same prefix), then for mobile numbers
/// gateways on the number's operator first, then the cheapest cost for this call, then the
/// configuration order. Trunks at their channel limit are skipped. Emergency calls ignore
/// rates and use the fixed emergency order.
#[derive(Debug, Clone)]
pub struct Router {
    trunks: Vec<TrunkFacts>,
    trunk_operator: Vec<Option<usize>>,
    emergency: Vec<TrunkId>,
    operators: OperatorTable,
    rates: Vec<Rate>,
    trie: PrefixTrie<HotRate>,
}

impl Router {
    /// Builds the router. `emergency_order` names the trunks emergency calls try, in order;
    /// empty means every trunk in configuration order. Every rate must name a configured
    /// trunk; all that do not are reported by line.
    pub fn new(
        rates: &RateTable,
        trunks: Vec<TrunkFacts>,
        operators: OperatorTable,
        emergency_order: &[TrunkName],
    ) -> Result<Router, RouterError> {
        if trunks.len() > usize::from(u16::MAX) {
            return Err(RouterError::TooManyTrunks);
        }
        let mut index: HashMap<&TrunkName, u16> = HashMap::new();
        for (i, t) in trunks.iter().enumerate() {
            if index.insert(&t.name, i as u16).is_some() {
                return Err(RouterError::DuplicateTrunk(t.name.to_string()));
            }
        }
        let mut trunk_operator = Vec::with_capacity(trunks.len());
        for t in &trunks {
            trunk_operator.push(match &t.operator {
                None => None,
                Some(op) => Some(
                    operators
                        .operators()
                        .iter()
                        .position(|o| o == op)
                        .ok_or_else(|| RouterError::UnknownOperator {
                            trunk: t.name.to_string(),
                            operator: op.to_string(),
                            known: operators
                                .operators()
                                .iter()
                                .map(|o| o.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        })?,
                ),
            });
        }
        let mut emergency = Vec::new();
        for name in emergency_order {
            let id = index
                .get(name)
                .ok_or_else(|| RouterError::UnknownEmergencyTrunk(name.to_string()))?;
            emergency.push(TrunkId(*id));
        }
        if emergency.is_empty() {
            emergency = (0..trunks.len() as u16).map(TrunkId).collect();
        }
        let mut errors = Vec::new();
        let mut hot = Vec::with_capacity(rates.rates().len());
        for r in rates.rates() {
            match index.get(&r.trunk) {
                Some(&trunk) => hot.push(HotRate {
                    index: hot.len() as u32,
                    trunk,
                    increment: u16::try_from(r.increment_seconds).unwrap_or(u16::MAX),
                    window: r.window,
                    rate: r.rate_per_minute.ten_thousandths().unsigned_abs(),
                    connect: r.connect_fee.ten_thousandths().unsigned_abs(),
                }),
                None => errors.push(LineError {
                    line: r.line,
                    kind: LineErrorKind::UnknownTrunk(r.trunk.to_string()),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(RouterError::Rates(CsvErrors {
                what: "rates",
                errors,
            }));
        }
        let all = rates.rates().to_vec();
        // All-day rates first within a prefix: the walk lets a later (windowed) match win.
        hot.sort_by_key(|h| h.window.is_some());
        let trie = PrefixTrie::build(
            hot.into_iter()
                .map(|h| (all[h.index as usize].prefix.as_bytes().to_vec(), h)),
        );
        Ok(Router {
            trunks,
            trunk_operator,
            emergency,
            operators,
            rates: all,
            trie,
        })
    }

    /// The trunks, in configuration order ([`TrunkId`] indexes this).
    pub fn trunks(&self) -> &[TrunkFacts] {
        &self.trunks
    }

    pub fn trunk(&self, id: TrunkId) -> &TrunkFacts {
        &self.trunks[usize::from(id.0)]
    }

    /// The trunk called `name`.
    pub fn trunk_id(&self, name: &str) -> Option<TrunkId> {
        self.trunks
            .iter()
            .position(|t| t.name.as_str() == name)
            .map(|i| TrunkId(i as u16))
    }

    /// A rate by the index a [`RouteChoice`] carries.
    pub fn rate(&self, index: u32) -> &Rate {
        &self.rates[index as usize]
    }

    pub fn operators(&self) -> &OperatorTable {
        &self.operators
    }

    /// Digit-trie nodes behind the rate lookup (for the benchmark's report).
    pub fn trie_nodes(&self) -> usize {
        self.trie.node_count()
    }

    /// Ranks the trunks for a call; see [`Router::route_into`].
    pub fn route(
        &self,
        number: &E164,
        class: CallClass,
        at: LocalTime,
        expected_seconds: u32,
        channels_in_use: &[u32],
    ) -> Decision {
        let mut d = Decision::new();
        self.route_into(number, class, at, expected_seconds, channels_in_use, &mut d);
        d
    }

    /// Ranks the trunks for a call of `expected_seconds` to `number` starting at `at`, into
    /// `out` (cleared first; its buffers are reused). `channels_in_use[i]` is the number of
    /// calls on trunk `TrunkId(i)` now (missing entries count as 0). Internal calls get no
    /// choice; emergency calls get [`Router::route_emergency`].
    pub fn route_into(
        &self,
        number: &E164,
        class: CallClass,
        at: LocalTime,
        expected_seconds: u32,
        channels_in_use: &[u32],
        out: &mut Decision,
    ) {
        match class {
            CallClass::Emergency => return self.route_emergency_into(channels_in_use, out),
            CallClass::Internal => {
                out.choices.clear();
                out.skipped.clear();
                return;
            }
            _ => {}
        }
        out.choices.clear();
        out.skipped.clear();
        self.best_per_trunk(number, at, &mut out.best);
        let number_operator = if class == CallClass::Mobile {
            self.operators.lookup_index(number)
        } else {
            None
        };
        for (t, h) in out.best.iter().enumerate() {
            let trunk = TrunkId(t as u16);
            let rate = h.index;
            if rate == NONE {
                out.skipped.push(Skip {
                    trunk,
                    reason: SkipReason::NoRate,
                    rate: None,
                });
                continue;
            }
            if let Some(reason) = self.at_limit(t, channels_in_use) {
                out.skipped.push(Skip {
                    trunk,
                    reason,
                    rate: Some(rate),
                });
                continue;
            }
            let facts = &self.trunks[t];
            let sixtieths = h.cost_sixtieths(expected_seconds);
            let operator_match = number_operator.is_some()
                && facts.kind == TrunkKind::Gateway
                && self.trunk_operator[t] == number_operator;
            out.choices.push(RouteChoice {
                trunk,
                rate: Some(rate),
                cost: Some(money_of_sixtieths(sixtieths)),
                operator_match,
                over_limit: false,
                cost_sixtieths: sixtieths,
            });
        }
        out.choices
            .sort_unstable_by_key(|c| (!c.operator_match, c.cost_sixtieths, c.trunk));
    }

    /// The fixed emergency order, never by cost. Trunks at their channel limit are not
    /// skipped but tried last, in the same order: an emergency call is never refused for a
    /// busy count.
    pub fn route_emergency(&self, channels_in_use: &[u32]) -> Decision {
        let mut d = Decision::new();
        self.route_emergency_into(channels_in_use, &mut d);
        d
    }

    fn route_emergency_into(&self, channels_in_use: &[u32], out: &mut Decision) {
        out.choices.clear();
        out.skipped.clear();
        for &trunk in &self.emergency {
            out.choices.push(RouteChoice {
                trunk,
                rate: None,
                cost: None,
                operator_match: false,
                over_limit: self
                    .at_limit(usize::from(trunk.0), channels_in_use)
                    .is_some(),
                cost_sixtieths: 0,
            });
        }
        // Stable: the fixed order holds within the free and within the full trunks.
        out.choices.sort_by_key(|c| c.over_limit);
    }

    /// Per trunk, the rate of its longest prefix of `number` that holds at `at`.
    #[inline]
    fn best_per_trunk(&self, number: &E164, at: LocalTime, best: &mut Vec<HotRate>) {
        best.clear();
        best.resize(
            self.trunks.len(),
            HotRate {
                index: NONE,
                ..HotRate::default()
            },
        );
        self.trie.walk(number.digits().as_bytes(), |_, rates| {
            for h in rates {
                if h.window.map_or(true, |w| w.contains(at)) {
                    best[usize::from(h.trunk)] = *h;
                }
            }
        });
    }

    fn at_limit(&self, t: usize, channels_in_use: &[u32]) -> Option<SkipReason> {
        let max = self.trunks[t].max_channels?;
        let in_use = channels_in_use.get(t).copied().unwrap_or(0);
        (in_use >= max).then_some(SkipReason::ChannelLimit { in_use, max })
    }

    /// The most expensive cost any trunk with a rate holding at `at` would have charged for
    /// `seconds` to `number` (channel limits ignored): what `report savings` compares with.
    pub fn most_expensive(&self, number: &E164, at: LocalTime, seconds: u32) -> Option<Money> {
        let mut best = Vec::new();
        self.best_per_trunk(number, at, &mut best);
        best.into_iter()
            .filter(|h| h.index != NONE)
            .map(|h| h.cost_sixtieths(seconds))
            .max()
            .map(money_of_sixtieths)
    }
}

impl fmt::Display for TrunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Weekday;

    pub(crate) fn trunk(
        name: &str,
        kind: TrunkKind,
        op: Option<&str>,
        max: Option<u32>,
    ) -> TrunkFacts {
        TrunkFacts {
            name: TrunkName::new(name).unwrap(),
            kind,
            operator: op.map(|o| OperatorName::new(o).unwrap()),
            max_channels: max,
        }
    }

    fn router(rates: &str) -> Router {
        let trunks = vec![
            trunk("provider", TrunkKind::Provider, None, Some(30)),
            trunk("cheapvoip", TrunkKind::Provider, None, Some(10)),
            trunk(
                "goip-telkomsel",
                TrunkKind::Gateway,
                Some("telkomsel"),
                Some(4),
            ),
        ];
        Router::new(
            &RateTable::parse(rates).unwrap(),
            trunks,
            OperatorTable::indonesia().unwrap(),
            &[],
        )
        .unwrap()
    }

    const RATES: &str = "\
provider,+62,650,0,60
provider,+628,900,0,60
cheapvoip,+62,400,200,60
cheapvoip,+62,300,200,60,mon-fri,18:00,08:00
goip-telkomsel,+62811,950,0,60
goip-telkomsel,+62812,950,0,60
goip-telkomsel,+62813,950,0,60
";

    fn e(n: &str) -> E164 {
        E164::parse(n).unwrap()
    }

    fn at(d: Weekday, h: u8) -> LocalTime {
        LocalTime::new(d, h, 0).unwrap()
    }

    fn names(r: &Router, d: &Decision) -> Vec<String> {
        d.choices
            .iter()
            .map(|c| r.trunk(c.trunk).name.to_string())
            .collect()
    }

    #[test]
    fn cheapest_for_this_call_wins_and_the_connect_fee_counts() {
        let r = router(RATES);
        let national = e("+62227654321");
        // 60 s: provider 650, cheapvoip 200 + 400 = 600.
        let d = r.route(
            &national,
            CallClass::National,
            at(Weekday::Mon, 10),
            60,
            &[],
        );
        assert_eq!(names(&r, &d), ["cheapvoip", "provider"]);
        assert_eq!(d.choices[0].cost, Some(Money::from_units(600)));
        // 10 s still bills a whole 60 s increment on both: the same order.
        let short = r.route(
            &national,
            CallClass::National,
            at(Weekday::Mon, 10),
            10,
            &[],
        );
        assert_eq!(names(&r, &short), ["cheapvoip", "provider"]);
        // Connect fees decide short calls when per-minute rates are close.
        let r2 = router("provider,+62,650,0,1\ncheapvoip,+62,600,100,1\n");
        let d = r2.route(
            &national,
            CallClass::National,
            at(Weekday::Mon, 10),
            60,
            &[],
        );
        assert_eq!(names(&r2, &d), ["provider", "cheapvoip"]);
        let d = r2.route(
            &national,
            CallClass::National,
            at(Weekday::Mon, 10),
            600,
            &[],
        );
        assert_eq!(names(&r2, &d), ["cheapvoip", "provider"]);
        assert_eq!(d.skipped.len(), 1, "the gateway has no rate");
        assert_eq!(d.skipped[0].reason, SkipReason::NoRate);
    }

    #[test]
    fn windows_apply_at_the_start_time() {
        let r = router(RATES);
        let national = e("+62227654321");
        let day = r.route(
            &national,
            CallClass::National,
            at(Weekday::Mon, 10),
            60,
            &[],
        );
        let night = r.route(
            &national,
            CallClass::National,
            at(Weekday::Mon, 22),
            60,
            &[],
        );
        assert_eq!(day.choices[0].cost, Some(Money::from_units(600)));
        assert_eq!(night.choices[0].cost, Some(Money::from_units(500)));
        assert_eq!(r.rate(night.choices[0].rate.unwrap()).line, 4);
        // Friday's night window runs into Saturday morning.
        let sat = r.route(&national, CallClass::National, at(Weekday::Sat, 7), 60, &[]);
        assert_eq!(sat.choices[0].cost, Some(Money::from_units(500)));
        let sat_late = r.route(&national, CallClass::National, at(Weekday::Sat, 9), 60, &[]);
        assert_eq!(sat_late.choices[0].cost, Some(Money::from_units(600)));
    }

    #[test]
    fn longest_prefix_per_trunk_and_operator_gateway_first_for_mobiles() {
        let r = router(RATES);
        let tsel = e("+6281234567890");
        let d = r.route(&tsel, CallClass::Mobile, at(Weekday::Mon, 10), 60, &[]);
        // The gateway is dearer here, but it is on the number's operator.
        assert_eq!(names(&r, &d), ["goip-telkomsel", "cheapvoip", "provider"]);
        assert!(d.choices[0].operator_match);
        // provider's +628 (900), not its +62 (650).
        assert_eq!(d.choices[2].cost, Some(Money::from_units(900)));
        let xl = e("+6281712345678");
        let d = r.route(&xl, CallClass::Mobile, at(Weekday::Mon, 10), 60, &[]);
        assert_eq!(names(&r, &d), ["cheapvoip", "provider"]);
        // Classified national (not mobile), no operator preference applies.
        let d = r.route(&tsel, CallClass::National, at(Weekday::Mon, 10), 60, &[]);
        assert_eq!(names(&r, &d), ["cheapvoip", "provider", "goip-telkomsel"]);
    }

    #[test]
    fn trunks_at_their_channel_limit_are_skipped() {
        let r = router(RATES);
        let tsel = e("+6281234567890");
        let d = r.route(
            &tsel,
            CallClass::Mobile,
            at(Weekday::Mon, 10),
            60,
            &[0, 10, 4],
        );
        assert_eq!(names(&r, &d), ["provider"]);
        assert_eq!(
            d.skipped
                .iter()
                .map(|s| (s.trunk.0, s.reason))
                .collect::<Vec<_>>(),
            [
                (
                    1,
                    SkipReason::ChannelLimit {
                        in_use: 10,
                        max: 10
                    }
                ),
                (2, SkipReason::ChannelLimit { in_use: 4, max: 4 })
            ]
        );
        let d = r.route(
            &tsel,
            CallClass::Mobile,
            at(Weekday::Mon, 10),
            60,
            &[0, 9, 3],
        );
        assert_eq!(d.choices.len(), 3);
    }

    #[test]
    fn emergency_uses_the_fixed_order_never_cost() {
        let trunks = vec![
            trunk("provider", TrunkKind::Provider, None, Some(1)),
            trunk("cheapvoip", TrunkKind::Provider, None, None),
            trunk(
                "goip-telkomsel",
                TrunkKind::Gateway,
                Some("telkomsel"),
                Some(4),
            ),
        ];
        let order = [
            TrunkName::new("goip-telkomsel").unwrap(),
            TrunkName::new("provider").unwrap(),
        ];
        let r = Router::new(
            &RateTable::parse(RATES).unwrap(),
            trunks,
            OperatorTable::indonesia().unwrap(),
            &order,
        )
        .unwrap();
        let d = r.route_emergency(&[]);
        assert_eq!(names(&r, &d), ["goip-telkomsel", "provider"]);
        assert!(d.choices.iter().all(|c| c.cost.is_none()));
        // A full trunk is tried last, never dropped.
        let d = r.route_emergency(&[1]);
        assert_eq!(names(&r, &d), ["goip-telkomsel", "provider"]);
        assert!(!d.choices[0].over_limit && d.choices[1].over_limit);
        let d = r.route_emergency(&[0, 0, 4]);
        assert_eq!(names(&r, &d), ["provider", "goip-telkomsel"]);
        assert!(d.skipped.is_empty());
        // The default order is the configuration order.
        let d = router(RATES).route_emergency(&[]);
        assert_eq!(d.choices.len(), 3);
        assert_eq!(d.choices[0].trunk, TrunkId(0));
    }

    #[test]
    fn internal_calls_never_get_a_trunk() {
        let r = router(RATES);
        let d = r.route(
            &e("+62215550100"),
            CallClass::Internal,
            at(Weekday::Mon, 10),
            60,
            &[],
        );
        assert!(d.choices.is_empty() && d.skipped.is_empty());
    }

    #[test]
    fn bad_trunk_references_are_reported_by_line() {
        let rates =
            RateTable::parse("provider,+62,1,0,1\nnope,+62,1,0,1\nnada,+6,1,0,1\n").unwrap();
        let trunks = vec![trunk("provider", TrunkKind::Provider, None, None)];
        let err = Router::new(
            &rates,
            trunks.clone(),
            OperatorTable::indonesia().unwrap(),
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 error(s) in the rates file\n\
             line 2: trunk `nope` is not a configured [[trunk]]; add it to the configuration or fix the name\n\
             line 3: trunk `nada` is not a configured [[trunk]]; add it to the configuration or fix the name"
        );
        let mut bad_op = trunks.clone();
        bad_op[0].operator = Some(OperatorName::new("telkomsell").unwrap());
        let rates = RateTable::parse("provider,+62,1,0,1\n").unwrap();
        let err =
            Router::new(&rates, bad_op, OperatorTable::indonesia().unwrap(), &[]).unwrap_err();
        assert!(err.to_string().contains("operator `telkomsell`"), "{err}");
        let twice = vec![trunks[0].clone(), trunks[0].clone()];
        assert!(matches!(
            Router::new(&rates, twice, OperatorTable::indonesia().unwrap(), &[]),
            Err(RouterError::DuplicateTrunk(_))
        ));
    }

    #[test]
    fn most_expensive_ignores_channels_and_takes_each_trunks_longest_prefix() {
        let r = router(RATES);
        let worst = r.most_expensive(&e("+6281234567890"), at(Weekday::Mon, 10), 60);
        assert_eq!(worst, Some(Money::from_units(950)));
        assert_eq!(
            r.most_expensive(&e("+6561234567"), at(Weekday::Mon, 10), 60),
            None
        );
    }
}
