//! LCR decisions per second on a generated table: 100,000 distinct prefixes over 6 trunks,
//! about a third of them with time-of-day windows (so the table has several hundred thousand
//! rates). Prints figures, asserts nothing; `scripts/bench-lcr` pins it to one core.
//!
//! `lcr-bench [MILLION_DECISIONS] [PREFIXES]` (defaults 10 and 100000).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kentongan_lcr::class::{classify_e164, CallClass};
use kentongan_lcr::lcr::{Decision, Router, TrunkFacts, TrunkKind};
use kentongan_lcr::number::{NumberingPlan, E164};
use kentongan_lcr::operators::{OperatorName, OperatorTable};
use kentongan_lcr::rates::{RateTable, TrunkName};
use kentongan_lcr::time::{LocalTime, Weekday};

/// xorshift64*: a fixed seed keeps every run on the same table and calls.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn digits(&mut self, out: &mut String, n: usize) {
        for _ in 0..n {
            out.push(char::from(b'0' + self.below(10) as u8));
        }
    }
}

const TRUNKS: [(&str, TrunkKind, Option<&str>); 6] = [
    ("provider", TrunkKind::Provider, None),
    ("voip2", TrunkKind::Provider, None),
    ("voip3", TrunkKind::Provider, None),
    ("goip-telkomsel", TrunkKind::Gateway, Some("telkomsel")),
    ("goip-xl", TrunkKind::Gateway, Some("xl")),
    ("goip-indosat", TrunkKind::Gateway, Some("indosat")),
];

/// Country codes the international prefixes hang under, beside Indonesia's.
const COUNTRIES: [&str; 12] = [
    "1", "44", "61", "65", "60", "66", "81", "82", "86", "91", "971", "31",
];

fn prefixes(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut p = String::new();
        if rng.below(10) < 7 {
            p.push_str("62");
            // Mobile-like or area-code-like national prefixes, 2 to 7 digits deep.
            p.push(if rng.below(2) == 0 {
                '8'
            } else {
                char::from(b'2' + rng.below(6) as u8)
            });
            let extra = 1 + rng.below(6) as usize;
            rng.digits(&mut p, extra);
        } else {
            p.push_str(COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]);
            let extra = rng.below(6) as usize;
            rng.digits(&mut p, extra);
        }
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out
}

fn rates_csv(rng: &mut Rng, prefixes: &[String]) -> (String, usize) {
    let mut csv = String::with_capacity(prefixes.len() * 120);
    let mut rows = 0;
    let money = |rng: &mut Rng| format!("{}.{:02}", 100 + rng.below(3000), rng.below(100));
    for p in prefixes {
        // Each prefix on 2 or 3 distinct trunks.
        let count = 2 + rng.below(2) as usize;
        let first = rng.below(TRUNKS.len() as u64) as usize;
        for k in 0..count {
            let trunk = TRUNKS[(first + k) % TRUNKS.len()].0;
            let inc = [1, 6, 30, 60][rng.below(4) as usize];
            let (r, c) = (
                money(rng),
                if rng.below(3) == 0 {
                    money(rng)
                } else {
                    "0".to_owned()
                },
            );
            let _ = writeln!(csv, "{trunk},+{p},{r},{c},{inc}");
            rows += 1;
            if rng.below(3) == 0 {
                let (day, night, weekend) = (money(rng), money(rng), money(rng));
                let _ = writeln!(csv, "{trunk},+{p},{day},0,{inc},mon-fri,08:00,17:00");
                let _ = writeln!(csv, "{trunk},+{p},{night},0,{inc},mon-fri,17:00,08:00");
                let _ = writeln!(csv, "{trunk},+{p},{weekend},0,{inc},sat,sun,08:00,20:00");
                rows += 3;
            }
        }
    }
    (csv, rows)
}

/// This thread's CPU time in clock ticks (utime + stime of /proc/thread-self/stat), so that
/// time spent descheduled on a shared machine does not count; `None` where /proc lacks it.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name may hold spaces; fields after its closing parenthesis are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second for /proc times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let millions: u64 = args
        .next()
        .map_or(Ok(10), |a| a.parse())
        .context("MILLION_DECISIONS")?;
    let n_prefixes: usize = args
        .next()
        .map_or(Ok(100_000), |a| a.parse())
        .context("PREFIXES")?;
    if millions == 0 || n_prefixes == 0 {
        bail!("usage: lcr-bench [MILLION_DECISIONS ≥ 1] [PREFIXES ≥ 1]");
    }
    let mut rng = Rng(0x6b65_6e74_6f6e_6761);
    let prefixes = prefixes(&mut rng, n_prefixes);
    let (csv, rows) = rates_csv(&mut rng, &prefixes);

    let t = Instant::now();
    let rates = RateTable::parse(&csv).map_err(|e| anyhow::anyhow!("{e}"))?;
    let parse = t.elapsed();
    let trunks = TRUNKS
        .iter()
        .map(|(name, kind, op)| {
            Ok(TrunkFacts {
                name: TrunkName::new(name)?,
                kind: *kind,
                operator: op.map(OperatorName::new).transpose()?,
                max_channels: Some(30),
            })
        })
        .collect::<Result<Vec<_>, kentongan_lcr::csv::LineErrorKind>>()?;
    let t = Instant::now();
    let router = Router::new(&rates, trunks, OperatorTable::indonesia()?, &[])?;
    let build = t.elapsed();

    // Calls: numbers under the generated prefixes (and some under none), at random times.
    let plan = NumberingPlan::new("62", Some("21"))?;
    let mut calls = Vec::with_capacity(1 << 20);
    for _ in 0..(1 << 20) {
        let mut digits = if rng.below(20) == 0 {
            "62".to_owned()
        } else {
            prefixes[rng.below(prefixes.len() as u64) as usize].clone()
        };
        let tail = 12usize.saturating_sub(digits.len()).max(1);
        rng.digits(&mut digits, tail);
        let number = E164::parse(&format!("+{digits}"))?;
        let class = classify_e164(&number, &plan);
        let weekday = Weekday::ALL[rng.below(7) as usize];
        let at = LocalTime::new(weekday, rng.below(24) as u8, rng.below(60) as u8)
            .context("generated time")?;
        let seconds = 10 + rng.below(600) as u32;
        calls.push((number, class, at, seconds));
    }
    // One gateway at its channel limit, as on a busy afternoon.
    let in_use = [12, 3, 0, 30, 1, 0];

    let mut decision = Decision::new();
    let total = millions * 1_000_000;
    // Warm-up pass over the calls, untimed.
    let mut routed = 0u64;
    for (number, class, at, seconds) in &calls {
        router.route_into(number, *class, *at, *seconds, &in_use, &mut decision);
        routed += decision.choices.len() as u64;
    }
    black_box(routed);
    let cpu_start = cpu_ticks();
    let t = Instant::now();
    let mut choices = 0u64;
    let mut i = 0usize;
    for _ in 0..total {
        let (number, class, at, seconds) = &calls[i];
        router.route_into(
            black_box(number),
            *class,
            *at,
            *seconds,
            &in_use,
            &mut decision,
        );
        choices += decision.choices.len() as u64;
        i = (i + 1) & (calls.len() - 1);
    }
    let elapsed = t.elapsed();
    let cpu = cpu_start
        .zip(cpu_ticks())
        .map(|(a, b)| (b - a) as f64 / TICKS_PER_SECOND);
    black_box(choices);
    let mobile = calls.iter().filter(|c| c.1 == CallClass::Mobile).count();

    println!(
        "table       {} prefixes, {rows} rates over {} trunks, {} trie nodes",
        prefixes.len(),
        TRUNKS.len(),
        router.trie_nodes()
    );
    println!(
        "parse       {:.0} ms (rates.csv, {} KiB, validated)",
        parse.as_secs_f64() * 1e3,
        csv.len() / 1024
    );
    println!("build       {:.0} ms (router)", build.as_secs_f64() * 1e3);
    println!(
        "calls       {} distinct ({} mobile), random start times, 10-610 s",
        calls.len(),
        mobile
    );
    println!("decisions   {total} in {:.3} s", elapsed.as_secs_f64());
    println!(
        "rate        {:.0} decisions/s on one core (wall clock)",
        total as f64 / elapsed.as_secs_f64()
    );
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        println!(
            "cpu rate    {:.0} decisions/s of CPU time ({cpu:.2} s on the CPU)",
            total as f64 / cpu
        );
    }
    println!(
        "per call    {:.0} ns, {:.2} routes ranked on average",
        elapsed.as_nanos() as f64 / total as f64,
        choices as f64 / total as f64
    );
    Ok(())
}
