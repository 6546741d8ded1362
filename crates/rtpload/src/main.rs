//! `rtpload`: sets up relayed calls on one or two relays (relay ports handed in, e.g. of SIP
//! calls through kentongan-pbx; and/or rtpengine over ng), sends G.711-sized packets both ways
//! at rising rates, the relays taking turns at each rate, and prints delivered packets/s, loss
//! and latency per rate and each relay's highest clean rate. See `scripts/bench-pbx`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use kentongan_rtpload::load::Generator;
use kentongan_rtpload::ng::NgClient;
use kentongan_rtpload::procfs;
use kentongan_rtpload::sweep::{Criteria, StepResult, Sweep, SweepResult};
use serde::Serialize;

#[derive(Parser)]
#[command(about = "RTP relay load generator: highest clean packets/s, loss and latency")]
struct Args {
    /// Relay ports of calls set up elsewhere (e.g. SIP calls through kentongan-pbx): both
    /// ports of every call, whitespace-separated.
    #[arg(long)]
    ports_file: Option<PathBuf>,
    /// Where those ports are.
    #[arg(long, default_value = "127.0.0.1")]
    ports_host: IpAddr,
    /// The process relaying those ports, for its CPU time and RSS.
    #[arg(long)]
    ports_pid: Option<u32>,
    #[arg(long, default_value = "kentongan-pbx")]
    ports_name: String,
    /// rtpengine's --listen-ng address: calls are set up with offer/answer and deleted at the end.
    #[arg(long)]
    rtpengine: Option<SocketAddr>,
    #[arg(long)]
    rtpengine_pid: Option<u32>,
    /// Calls to set up on rtpengine.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Address of the sockets that play every phone (one socket per relay).
    #[arg(long, default_value = "127.0.0.1:0")]
    phone: SocketAddr,
    /// Total packets/s to try (both directions together), in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,25000,50000,75000,100000,125000,150000,200000,250000,300000"
    )]
    rates: Vec<u64>,
    /// Seconds at each rate before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured at each rate.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds to wait for packets still in flight after a window.
    #[arg(long, default_value_t = 1.0)]
    drain: f64,
    /// Highest lost fraction still clean (0.001 = 0.1 %).
    #[arg(long, default_value_t = 0.001)]
    max_loss: f64,
    /// Highest p99 latency still clean, in milliseconds.
    #[arg(long, default_value_t = 3.0)]
    max_p99_ms: f64,
    /// Print the result as JSON on stdout (the table still goes to stderr).
    #[arg(long)]
    json: bool,
}

struct Target {
    name: String,
    gen: Generator,
    pid: Option<u32>,
    sweep: Sweep,
    calls: usize,
    legs_primed: usize,
    rss_kb_calls: Option<u64>,
    ng: Option<(NgClient, Vec<String>)>,
}

#[derive(Serialize)]
struct RelayReport<'a> {
    name: &'a str,
    calls: usize,
    legs: usize,
    /// Legs whose packets came back in the priming round (all of them when setup worked).
    legs_primed: usize,
    /// RSS of the relay with the calls set up, before any load, and after the sweep.
    rss_kb_calls: Option<u64>,
    rss_kb_after: Option<u64>,
    #[serde(flatten)]
    sweep: &'a SweepResult,
}

#[derive(Serialize)]
struct Report<'a> {
    criteria: Criteria,
    seconds: f64,
    relays: Vec<RelayReport<'a>>,
}

const HEADER: &str = "relay            offered   delivered     loss  p50(ms)  p99(ms)   max(ms)  \
                      relay CPU  pkt/s per core  gen.busy";

fn row(name: &str, r: &StepResult) -> String {
    let pct = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{:.0}%", c * 100.0));
    format!(
        "{name:<14} {:>9} {:>11.0} {:>8.3}% {:>8.2} {:>8.2} {:>9.2} {:>9} {:>15} {:>9}{}",
        r.offered_pps,
        r.delivered_pps,
        r.loss * 100.0,
        r.p50_us as f64 / 1000.0,
        r.p99_us as f64 / 1000.0,
        r.max_us as f64 / 1000.0,
        pct(r.relay_cpu),
        r.pps_per_core()
            .map_or("-".to_string(), |p| format!("{p:.0}")),
        format!("{:.0}%", r.generator_busy * 100.0),
        if r.generator_behind {
            format!(
                "  generator behind (stalled {} ms)",
                r.generator_max_stall_us / 1000
            )
        } else {
            String::new()
        },
    )
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        for c in e.chain().skip(1) {
            eprintln!("  caused by: {c}");
        }
        std::process::exit(1);
    }
}

fn criteria(args: &Args) -> Criteria {
    Criteria {
        max_loss: args.max_loss,
        max_p99_us: (args.max_p99_ms * 1000.0) as u64,
    }
}

fn ports_target(args: &Args, file: &PathBuf) -> anyhow::Result<Target> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut legs = Vec::new();
    for w in text.split_whitespace() {
        let port: u16 = w
            .parse()
            .with_context(|| format!("{w:?} in {} is not a port", file.display()))?;
        legs.push(SocketAddr::new(args.ports_host, port));
    }
    if legs.is_empty() {
        bail!("{} lists no relay ports", file.display());
    }
    let phone = UdpSocket::bind(args.phone).context("binding the phones' socket")?;
    target(
        args,
        args.ports_name.clone(),
        phone,
        legs,
        args.ports_pid,
        None,
    )
}

fn rtpengine_target(args: &Args, server: SocketAddr) -> anyhow::Result<Target> {
    let phone = UdpSocket::bind(args.phone).context("binding the phones' socket")?;
    let phone_addr = phone.local_addr()?;
    let mut client = NgClient::connect(server)?;
    let mut legs = Vec::with_capacity(args.calls * 2);
    let mut ids = Vec::with_capacity(args.calls);
    for i in 0..args.calls {
        let id = format!("rtpload-{}-{i}", std::process::id());
        let (to_caller, to_callee) = client
            .call(&id, phone_addr)
            .with_context(|| format!("setting up call {i} on rtpengine at {server}"))?;
        legs.push(SocketAddr::new(server.ip(), to_caller));
        legs.push(SocketAddr::new(server.ip(), to_callee));
        ids.push(id);
    }
    target(
        args,
        "rtpengine".into(),
        phone,
        legs,
        args.rtpengine_pid,
        Some((client, ids)),
    )
}

fn target(
    args: &Args,
    name: String,
    phone: UdpSocket,
    legs: Vec<SocketAddr>,
    pid: Option<u32>,
    ng: Option<(NgClient, Vec<String>)>,
) -> anyhow::Result<Target> {
    let rss_kb_calls = pid.and_then(procfs::rss_kb);
    let mut gen = Generator::new(phone, &legs)?;
    let legs_primed = gen.prime(3, Duration::from_millis(300))?;
    eprintln!(
        "{name}: {} calls, {legs_primed} of {} legs relay both ways",
        legs.len() / 2,
        legs.len()
    );
    if legs_primed == 0 {
        bail!("nothing came back through {name}: its calls are not set up");
    }
    Ok(Target {
        name,
        gen,
        pid,
        sweep: Sweep::new(&args.rates, criteria(args)),
        calls: legs.len() / 2,
        legs_primed,
        rss_kb_calls,
        ng,
    })
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    if let Some(f) = &args.ports_file {
        targets.push(ports_target(&args, f)?);
    }
    if let Some(ng) = args.rtpengine {
        targets.push(rtpengine_target(&args, ng)?);
    }
    if targets.is_empty() {
        bail!("nothing to load: give --ports-file and/or --rtpengine");
    }
    eprintln!("{HEADER}");
    let mut step = 0;
    loop {
        let mut ran = false;
        for t in &mut targets {
            let Some(rate) = t.sweep.next_rate() else {
                continue;
            };
            step += 1;
            let r = t.gen.run_step(
                step,
                rate,
                Duration::from_secs_f64(args.warmup),
                Duration::from_secs_f64(args.seconds),
                Duration::from_secs_f64(args.drain),
                t.pid,
            )?;
            eprintln!("{}", row(&t.name, &r));
            t.sweep.record(r);
            ran = true;
        }
        if !ran {
            break;
        }
    }
    let mut relays = Vec::new();
    for t in &mut targets {
        let rss_kb_after = t.pid.and_then(procfs::rss_kb);
        if let Some((client, ids)) = t.ng.as_mut() {
            for id in ids.iter() {
                let _ = client.delete(id);
            }
        }
        relays.push((
            t.name.as_str(),
            t.calls,
            t.gen.legs(),
            t.legs_primed,
            t.rss_kb_calls,
            rss_kb_after,
            t.sweep.result(),
        ));
    }
    let report = Report {
        criteria: criteria(&args),
        seconds: args.seconds,
        relays: relays
            .into_iter()
            .map(
                |(name, calls, legs, legs_primed, rss_kb_calls, rss_kb_after, sweep)| RelayReport {
                    name,
                    calls,
                    legs,
                    legs_primed,
                    rss_kb_calls,
                    rss_kb_after,
                    sweep,
                },
            )
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{HEADER}")?;
    for r in &report.relays {
        for s in &r.sweep.steps {
            writeln!(out, "{}", row(r.name, s))?;
        }
    }
    for r in &report.relays {
        let bound = r.sweep.generator_limited || r.sweep.never_failed;
        writeln!(
            out,
            "{}: highest clean rate {}{} packets/s",
            r.name,
            if bound { "≥ " } else { "" },
            r.sweep.max_clean_pps
        )?;
    }
    Ok(())
}
