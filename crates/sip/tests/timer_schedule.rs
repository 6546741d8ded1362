//! The timer schedule stays exact with many lingering transactions: `poll_timeout` is the
//! earliest armed timer, `handle_timeout` fires exactly the due ones. (Regression: both used
//! to scan every transaction, so a registrar with 64*T1 of lingering REGISTER transactions
//! spent its time in timer bookkeeping.)
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kentongan_sip::transaction::{Config, Endpoint, SipEvent};
use kentongan_sip::{Response, StatusCode};

#[test]
fn many_lingering_transactions_expire_in_order() {
    let local = "192.0.2.1:5060".parse().unwrap();
    let mut ep = Endpoint::new(Config::new(local, 7));
    let t0 = Instant::now();
    let n = 20_000u32;
    for i in 0..n {
        let now = t0 + Duration::from_millis(u64::from(i));
        let req = format!(
            "REGISTER sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK{i}\r\n\
             From: <sip:1@pbx.local>;tag=a\r\nTo: <sip:1@pbx.local>\r\nCall-ID: c{i}\r\n\
             CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
        );
        ep.handle_datagram(now, "192.0.2.9:5060".parse().unwrap(), req.as_bytes());
        // (The previous transaction's Terminated comes first: it ended for the TU when its
        // final response went out.)
        let request_event =
            std::iter::from_fn(|| ep.poll_event()).find(|e| matches!(e, SipEvent::Request { .. }));
        let Some(SipEvent::Request { tx, request, .. }) = request_event else {
            panic!("no request event");
        };
        ep.respond(
            now,
            tx,
            Response::for_request(&request, StatusCode::OK, Some("t")),
        )
        .unwrap();
    }
    while ep.poll_transmit().is_some() {}
    assert_eq!(ep.transactions(), n as usize);
    // Timer J (64*T1 = 32 s) of the first transaction is the next wake-up.
    let j = Duration::from_secs(32);
    assert_eq!(ep.poll_timeout(), Some(t0 + j));
    // Half-way through the arrivals' window, exactly the first half has gone.
    ep.handle_timeout(t0 + j + Duration::from_millis(u64::from(n / 2 - 1)));
    assert_eq!(ep.transactions(), (n / 2) as usize);
    assert_eq!(
        ep.poll_timeout(),
        Some(t0 + j + Duration::from_millis(u64::from(n / 2)))
    );
    ep.handle_timeout(t0 + j + Duration::from_secs(60));
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.poll_timeout(), None);
}
