//! Parse+serialize throughput of a REGISTER and an INVITE with SDP, beside the rsip crate
//! on the same bytes in the same run. `cargo bench -p kentongan-sip` or `scripts/bench-sip`.
//!
//! `parse count <ours|rsip> <register|invite> <N>` runs exactly N parse+serialize rounds and
//! nothing else, so `scripts/bench-sip` can count instructions per message under callgrind
//! (reproducible on a loaded machine, unlike wall-clock time).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

const REGISTER: &[u8] = b"REGISTER sip:pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: \"Alice\" <sip:1000@pbx.example.com>\r\n\
From: \"Alice\" <sip:1000@pbx.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 REGISTER\r\n\
Contact: <sip:1000@192.0.2.10:5060;transport=udp>;expires=3600\r\n\
Authorization: Digest username=\"1000\", realm=\"pbx.example.com\", nonce=\"5f2a.1.9c4b\", uri=\"sip:pbx.example.com\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n\
User-Agent: Kentongan-Bench/1.0\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &[u8] = b"INVITE sip:1001@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:1001@pbx.example.com>\r\n\
From: \"Alice\" <sip:1000@pbx.example.com>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@192.0.2.10\r\n\
CSeq: 2 INVITE\r\n\
Contact: <sip:1000@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Kentongan-Bench/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 225\r\n\r\n\
v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n\
t=0 0\r\nm=audio 49170 RTP/AVP 0 8 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// Calls per second of `f` over about `window`.
fn rate(f: &mut impl FnMut(), window: Duration) -> f64 {
    let mut iters = 0u64;
    let start = Instant::now();
    while start.elapsed() < window {
        for _ in 0..200 {
            f();
        }
        iters += 200;
    }
    iters as f64 / start.elapsed().as_secs_f64()
}

/// Both parsers in short alternating rounds (the order flips every round), so a burst of
/// load from other work on the machine hits both alike. Returns the best rate of each and
/// the median of the per-round ratios.
fn compare(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64, f64) {
    const ROUNDS: usize = 9;
    const WINDOW: Duration = Duration::from_millis(120);
    for _ in 0..2_000 {
        a();
        b();
    }
    let (mut best_a, mut best_b) = (0f64, 0f64);
    let mut ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (ra, rb) = if round % 2 == 0 {
            let ra = rate(&mut a, WINDOW);
            (ra, rate(&mut b, WINDOW))
        } else {
            let rb = rate(&mut b, WINDOW);
            (rate(&mut a, WINDOW), rb)
        };
        best_a = best_a.max(ra);
        best_b = best_b.max(rb);
        ratios.push(ra / rb);
    }
    ratios.sort_by(f64::total_cmp);
    (best_a, best_b, ratios[ROUNDS / 2])
}

fn ours(msg: &'static [u8]) -> impl FnMut() {
    let buf = bytes::Bytes::from_static(msg);
    move || {
        let m = kentongan_sip::Message::parse(black_box(buf.clone())).unwrap();
        black_box(m.to_bytes());
    }
}

fn theirs(msg: &'static [u8]) -> impl FnMut() {
    move || {
        let m = rsip::SipMessage::try_from(black_box(msg)).unwrap();
        black_box(m.to_string());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("count") {
        count(&args[2..]);
        return;
    }
    // Make sure both parsers accept the messages before timing them.
    assert!(kentongan_sip::Message::parse(REGISTER).is_ok());
    assert!(kentongan_sip::Message::parse(INVITE).is_ok());
    assert!(rsip::SipMessage::try_from(REGISTER).is_ok());
    assert!(rsip::SipMessage::try_from(INVITE).is_ok());
    println!(
        "{:<12} {:>13} {:>13} {:>14} {:>12}",
        "message", "kentongan/s", "rsip/s", "ratio of best", "median ratio"
    );
    let mut worst = f64::MAX;
    for (name, msg) in [("REGISTER", REGISTER), ("INVITE+SDP", INVITE)] {
        let (a, b, median) = compare(ours(msg), theirs(msg));
        worst = worst.min(median);
        println!(
            "{name:<12} {a:>13.0} {b:>13.0} {:>13.2}x {median:>11.2}x   ({:.0} MB/s vs {:.0} MB/s)",
            a / b,
            a * msg.len() as f64 / 1e6,
            b * msg.len() as f64 / 1e6
        );
    }
    println!(
        "minimum speed-up over rsip (median of 9 alternating rounds): {worst:.2}x (target >= 2x)"
    );
}

fn count(args: &[String]) {
    let msg = match args.get(1).map(String::as_str) {
        Some("register") => REGISTER,
        Some("invite") => INVITE,
        other => panic!("unknown message {other:?}"),
    };
    let n: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let mut f: Box<dyn FnMut()> = match args.first().map(String::as_str) {
        Some("ours") => Box::new(ours(msg)),
        Some("rsip") => Box::new(theirs(msg)),
        other => panic!("unknown parser {other:?}"),
    };
    for _ in 0..n {
        f();
    }
}
