//! The trie router against a direct reading of the rules on random tables: per trunk the
//! longest prefix whose rate holds at the start (a windowed rate beating the all-day one of
//! the same prefix), trunks at their limit skipped, operator gateways first for mobiles, then
//! the exact cost, then the configuration order.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;

use kentongan_lcr::class::CallClass;
use kentongan_lcr::lcr::{Decision, Router, TrunkFacts, TrunkKind};
use kentongan_lcr::number::E164;
use kentongan_lcr::operators::{OperatorName, OperatorTable};
use kentongan_lcr::rates::{Rate, RateTable, TrunkName};
use kentongan_lcr::time::{LocalTime, Weekday};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const TRUNKS: [(&str, TrunkKind, Option<&str>); 4] = [
    ("a", TrunkKind::Provider, None),
    ("b", TrunkKind::Provider, None),
    ("gw-tsel", TrunkKind::Gateway, Some("telkomsel")),
    ("gw-xl", TrunkKind::Gateway, Some("xl")),
];

/// Short random prefixes over few digits, so numbers hit several of them.
fn random_table(rng: &mut Rng) -> String {
    let windows = [
        "mon-fri,08:00,17:00",
        "mon-fri,17:00,08:00",
        "sat,sun,10:00,14:00",
    ];
    let mut csv = String::new();
    let mut used = std::collections::HashSet::new();
    for _ in 0..60 {
        let trunk = TRUNKS[rng.below(4) as usize].0;
        let mut p = String::from("628");
        for _ in 0..rng.below(4) {
            p.push(char::from(b'1' + rng.below(3) as u8));
        }
        let w = rng.below(4) as usize;
        if !used.insert((trunk, p.clone(), w)) {
            continue;
        }
        let rate = 100 + rng.below(50) * 10;
        let fee = rng.below(3) * 50;
        let inc = [1, 6, 60][rng.below(3) as usize];
        let _ = write!(csv, "{trunk},+{p},{rate},{fee},{inc}");
        if w < 3 {
            let _ = write!(csv, ",{}", windows[w]);
        }
        csv.push('\n');
    }
    csv
}

/// One call: number, class, start, seconds, channels in use per trunk.
struct Call<'a> {
    number: &'a E164,
    class: CallClass,
    at: LocalTime,
    seconds: u32,
    in_use: &'a [u32],
}

fn naive(
    rates: &[Rate],
    trunks: &[TrunkFacts],
    operators: &OperatorTable,
    call: &Call,
) -> Vec<(String, u64)> {
    let Call {
        number,
        class,
        at,
        seconds,
        in_use,
    } = *call;
    let op = if class == CallClass::Mobile {
        operators.lookup(number)
    } else {
        None
    };
    let mut out = Vec::new();
    for (i, t) in trunks.iter().enumerate() {
        let best = rates
            .iter()
            .filter(|r| {
                r.trunk == t.name && number.digits().starts_with(&r.prefix) && r.holds_at(at)
            })
            .max_by_key(|r| (r.prefix.len(), r.window.is_some()));
        let Some(best) = best else { continue };
        if t.max_channels.is_some_and(|m| in_use[i] >= m) {
            continue;
        }
        let op_match = op.is_some() && t.kind == TrunkKind::Gateway && t.operator.as_ref() == op;
        out.push((
            !op_match,
            best.cost_sixtieths(seconds),
            i,
            t.name.to_string(),
        ));
    }
    out.sort();
    out.into_iter().map(|(_, c, _, n)| (n, c)).collect()
}

#[test]
fn router_agrees_with_the_rules_read_directly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let operators = OperatorTable::indonesia().unwrap();
    let mut decision = Decision::new();
    let mut compared = 0;
    for _ in 0..40 {
        let table = RateTable::parse(&random_table(&mut rng)).unwrap();
        let trunks: Vec<TrunkFacts> = TRUNKS
            .iter()
            .map(|(n, k, o)| TrunkFacts {
                name: TrunkName::new(n).unwrap(),
                kind: *k,
                operator: o.map(|o| OperatorName::new(o).unwrap()),
                max_channels: Some(2),
            })
            .collect();
        let router = Router::new(&table, trunks.clone(), operators.clone(), &[]).unwrap();
        for _ in 0..200 {
            let mut digits = String::from("628");
            for _ in 0..9 {
                digits.push(char::from(b'1' + rng.below(3) as u8));
            }
            let number = E164::parse(&format!("+{digits}")).unwrap();
            let class = if rng.below(2) == 0 {
                CallClass::Mobile
            } else {
                CallClass::National
            };
            let at = LocalTime::new(Weekday::ALL[rng.below(7) as usize], rng.below(24) as u8, 0)
                .unwrap();
            let seconds = rng.below(400) as u32;
            let in_use: Vec<u32> = (0..4).map(|_| rng.below(3) as u32).collect();
            router.route_into(&number, class, at, seconds, &in_use, &mut decision);
            let got: Vec<(String, u64)> = decision
                .choices
                .iter()
                .map(|c| {
                    let r = router.rate(c.rate.unwrap());
                    (
                        router.trunk(c.trunk).name.to_string(),
                        r.cost_sixtieths(seconds),
                    )
                })
                .collect();
            let call = Call {
                number: &number,
                class,
                at,
                seconds,
                in_use: &in_use,
            };
            let want = naive(table.rates(), &trunks, &operators, &call);
            assert_eq!(
                got, want,
                "{number} {class} at {at}, {seconds} s, in use {in_use:?}"
            );
            assert_eq!(decision.choices.len() + decision.skipped.len(), 4);
            compared += got.len();
        }
    }
    assert!(
        compared > 5_000,
        "the random tables route too little: {compared}"
    );
}
