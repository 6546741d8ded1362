//! Parse+serialize throughput of a REGISTER and an INVITE with SDP, beside the rsip crate
//! on the same bytes in the same run. `cargo bench -p kentongan-sip` or `scripts/bench-sip`.
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

fn measure(mut f: impl FnMut()) -> f64 {
    for _ in 0..2_000 {
        f();
    }
    let mut iters = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(700) {
        for _ in 0..500 {
            f();
        }
        iters += 500;
    }
    iters as f64 / start.elapsed().as_secs_f64()
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
    // Make sure both parsers accept the messages before timing them.
    assert!(kentongan_sip::Message::parse(REGISTER).is_ok());
    assert!(kentongan_sip::Message::parse(INVITE).is_ok());
    assert!(rsip::SipMessage::try_from(REGISTER).is_ok());
    assert!(rsip::SipMessage::try_from(INVITE).is_ok());
    println!(
        "{:<16} {:>14} {:>14} {:>8}",
        "message", "kentongan/s", "rsip/s", "ratio"
    );
    let mut worst = f64::MAX;
    for (name, msg) in [("REGISTER", REGISTER), ("INVITE+SDP", INVITE)] {
        let a = measure(ours(msg));
        let b = measure(theirs(msg));
        worst = worst.min(a / b);
        println!(
            "{name:<16} {a:>14.0} {b:>14.0} {:>7.2}x   ({:.0} MB/s vs {:.0} MB/s)",
            a / b,
            a * msg.len() as f64 / 1e6,
            b * msg.len() as f64 / 1e6
        );
    }
    println!("minimum speed-up over rsip: {worst:.2}x (target >= 2x)");
}
