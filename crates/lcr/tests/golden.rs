//! Golden outputs: `lcr explain` (text and JSON) for the office in `tests/golden/office.toml`,
//! `mikrotik-script`, and `report savings` over a fixed month of CDRs whose figures are also
//! checked against a hand-computed table.
//! `KENTONGAN_BLESS=1 cargo test -p kentongan-lcr --test golden` rewrites the expectations.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use kentongan_lcr::class::CallClass;
use kentongan_lcr::config::LcrConfig;
use kentongan_lcr::explain::explain;
use kentongan_lcr::lcr::{Router, TrunkFacts, TrunkKind};
use kentongan_lcr::mikrotik::{mikrotik_script, MikrotikInput};
use kentongan_lcr::money::Money;
use kentongan_lcr::number::{Dialled, NumberingPlan, E164};
use kentongan_lcr::operators::{OperatorName, OperatorTable};
use kentongan_lcr::rates::{RateTable, TrunkName};
use kentongan_lcr::savings::{savings, CdrRow};
use kentongan_lcr::time::{LocalTime, Weekday};
use serde::Deserialize;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The part of `[[trunk]]` the router needs (kentongan-pbx owns the full table).
#[derive(Deserialize)]
struct Trunk {
    name: String,
    kind: TrunkKind,
    operator: Option<String>,
    max_channels: Option<u32>,
}

#[derive(Deserialize)]
struct Office {
    lcr: LcrConfig,
    trunk: Vec<Trunk>,
}

fn office() -> (Router, NumberingPlan) {
    let office: Office =
        toml::from_str(&std::fs::read_to_string(dir().join("office.toml")).unwrap()).unwrap();
    let read = |p: &Path| std::fs::read_to_string(dir().join(p)).unwrap();
    let rates = RateTable::parse(&read(&office.lcr.rates)).unwrap();
    let operators = OperatorTable::parse(&read(&office.lcr.operators)).unwrap();
    let trunks = office
        .trunk
        .iter()
        .map(|t| TrunkFacts {
            name: TrunkName::new(&t.name).unwrap(),
            kind: t.kind,
            operator: t.operator.as_deref().map(|o| OperatorName::new(o).unwrap()),
            max_channels: t.max_channels,
        })
        .collect();
    let router = Router::new(
        &rates,
        trunks,
        operators,
        &office.lcr.emergency_trunks().unwrap(),
    )
    .unwrap();
    (router, office.lcr.numbering_plan().unwrap())
}

/// Compares `actual` with the expectation file, or rewrites it when blessing.
fn check(expected: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("KENTONGAN_BLESS").is_some() {
        std::fs::write(expected, actual).unwrap();
        return None;
    }
    match std::fs::read_to_string(expected) {
        Ok(e) if e == actual => None,
        Ok(e) => Some(format!(
            "{}:\n--- expected\n{e}\n--- actual\n{actual}",
            expected.display()
        )),
        Err(_) => Some(format!(
            "{} is missing; run with KENTONGAN_BLESS=1 to write it. Actual:\n{actual}",
            expected.display()
        )),
    }
}

fn at(d: Weekday, h: u8, m: u8) -> LocalTime {
    LocalTime::new(d, h, m).unwrap()
}

fn is_extension(d: &str) -> bool {
    d.len() == 3 && (d.starts_with('2') || d.starts_with('7'))
}

#[test]
fn lcr_explain_golden() {
    let (router, plan) = office();
    let cases: &[(&str, &str, LocalTime, &[u32])] = &[
        (
            "mobile-telkomsel",
            "081234567890",
            at(Weekday::Mon, 10, 0),
            &[],
        ),
        (
            "mobile-telkomsel-gateway-full",
            "0812 3456 7890",
            at(Weekday::Mon, 10, 0),
            &[3, 0, 4, 0],
        ),
        (
            "mobile-axis-inside-xl",
            "0859-1234-5678",
            at(Weekday::Mon, 10, 0),
            &[],
        ),
        (
            "mobile-xl",
            "+62 859 5123 4567",
            at(Weekday::Mon, 10, 0),
            &[],
        ),
        ("national-day", "022 7654321", at(Weekday::Wed, 14, 30), &[]),
        (
            "national-night",
            "022 7654321",
            at(Weekday::Fri, 23, 15),
            &[],
        ),
        ("local", "5550100", at(Weekday::Tue, 9, 0), &[]),
        ("tollfree", "0800 1234567", at(Weekday::Tue, 9, 0), &[]),
        (
            "international",
            "0065 6123 4567",
            at(Weekday::Thu, 11, 0),
            &[],
        ),
        ("emergency", "112", at(Weekday::Sun, 3, 0), &[30]),
        ("internal", "201", at(Weekday::Mon, 10, 0), &[]),
    ];
    let mut failures = Vec::new();
    for (name, dialled, when, in_use) in cases {
        let e = explain(&router, &plan, dialled, is_extension, *when, in_use).unwrap();
        let json = serde_json::to_string_pretty(&e).unwrap() + "\n";
        failures.extend(check(
            &dir().join(format!("explain/{name}.txt")),
            &e.to_text(),
        ));
        failures.extend(check(&dir().join(format!("explain/{name}.json")), &json));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    let err = explain(
        &router,
        &plan,
        "0812-CALL-ME",
        is_extension,
        at(Weekday::Mon, 10, 0),
        &[],
    );
    assert_eq!(
        err.unwrap_err().to_string(),
        "`C` at position 5 is not a digit; a number is digits, an optional leading +, and spaces, dashes, dots or parentheses between them"
    );
}

#[test]
fn mikrotik_script_golden() {
    let office = MikrotikInput {
        pbx: Ipv4Addr::new(192, 168, 88, 10),
        sip_udp: vec![5060],
        sip_tcp: vec![5060, 5061],
        rtp: (10000, 20000),
        trusted: vec!["192.168.88.0/24".into()],
        wan_list: "WAN".into(),
    };
    let dual = MikrotikInput {
        pbx: Ipv4Addr::new(10, 20, 0, 5),
        sip_udp: vec![5060, 5080],
        sip_tcp: vec![],
        rtp: (16384, 32767),
        trusted: vec![
            "10.20.0.0/16".into(),
            "172.16.5.0/24".into(),
            "2001:db8:20::/48".into(),
        ],
        wan_list: "internet".into(),
    };
    let mut failures = Vec::new();
    for (name, input) in [("office", office), ("dual-stack", dual)] {
        let script = mikrotik_script(&input).unwrap();
        failures.extend(check(&dir().join(format!("mikrotik/{name}.rsc")), &script));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

fn cdr(
    trunk: &str,
    number: Dialled,
    class: CallClass,
    start: LocalTime,
    secs: u32,
    cost: i64,
) -> CdrRow {
    CdrRow {
        trunk: TrunkName::new(trunk).unwrap(),
        number,
        class,
        start,
        billed_seconds: secs,
        cost: Money::from_units(cost),
    }
}

fn ext(n: &str) -> Dialled {
    Dialled::External(E164::parse(n).unwrap())
}

#[test]
fn savings_match_the_hand_computed_table() {
    let (router, plan) = office();
    let emergency = plan.normalise("112", is_extension).unwrap();
    let rows = [
        // goip 700×2 = 1400; dearest: provider +628 1100×2 = 2200 (cheapvoip 150+1600 = 1750).
        cdr(
            "goip-telkomsel",
            ext("+6281234567890"),
            CallClass::Mobile,
            at(Weekday::Mon, 10, 0),
            120,
            1400,
        ),
        // cheapvoip night 150 + 90 s × 300/60 = 600; provider +62 650×2 = 1300.
        cdr(
            "cheapvoip",
            ext("+62227654321"),
            CallClass::National,
            at(Weekday::Mon, 22, 0),
            90,
            600,
        ),
        // provider +6221 250; cheapvoip day 150 + 30 s × 450/60 = 375.
        cdr(
            "provider",
            ext("+62215550100"),
            CallClass::Local,
            at(Weekday::Tue, 9, 0),
            30,
            250,
        ),
        // Emergency: no alternative, counted at its own cost.
        cdr(
            "provider",
            emergency,
            CallClass::Emergency,
            at(Weekday::Tue, 9, 5),
            30,
            0,
        ),
        // cheapvoip +65 2800 × 4 min = 11200; provider 500 + 204 s × 3500/60 = 12400.
        cdr(
            "cheapvoip",
            ext("+6561234567"),
            CallClass::International,
            at(Weekday::Wed, 14, 0),
            200,
            11200,
        ),
        // goip 700; provider +628 1100 (cheapvoip 150 + 45 s × 800/60 = 750).
        cdr(
            "goip-telkomsel",
            ext("+6285212345678"),
            CallClass::Mobile,
            at(Weekday::Sat, 10, 0),
            45,
            700,
        ),
    ];
    let report = savings(&router, "2026-11", &rows);
    let got: Vec<(&str, u64, u64, Money, Money, Money)> = report
        .trunks
        .iter()
        .chain([&report.total])
        .map(|l| {
            (
                l.trunk.as_str(),
                l.calls,
                l.seconds,
                l.actual,
                l.most_expensive,
                l.saved,
            )
        })
        .collect();
    let u = Money::from_units;
    assert_eq!(
        got,
        [
            ("cheapvoip", 2, 290, u(11_800), u(13_700), u(1_900)),
            ("goip-telkomsel", 2, 165, u(2_100), u(3_300), u(1_200)),
            ("provider", 2, 60, u(250), u(375), u(125)),
            ("total", 6, 515, u(14_150), u(17_375), u(3_225)),
        ]
    );
    let mut failures = Vec::new();
    failures.extend(check(&dir().join("savings/2026-11.txt"), &report.to_text()));
    let json = serde_json::to_string_pretty(&report).unwrap() + "\n";
    failures.extend(check(&dir().join("savings/2026-11.json"), &json));
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
