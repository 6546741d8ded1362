//! Transaction layer over a simulated network: virtual clock, latency, loss, duplicates.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kentongan_sip::transaction::{Config, Endpoint, SipEvent, TxId};
use kentongan_sip::{
    HeaderName, Message, Method, NameAddr, Request, Response, StatusCode, Transport, Uri,
};

struct Packet {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: bytes::Bytes,
}

type Fate = Box<dyn FnMut(usize, &str) -> u8>;
type Node = (SocketAddr, Endpoint, Vec<SipEvent>);

/// A tiny deterministic network. `fate(n, first_line)` decides for the n-th datagram sent:
/// 0 = drop, 1 = deliver, 2 = deliver twice.
struct Net {
    t0: Instant,
    now: Instant,
    latency: Duration,
    nodes: Vec<Node>,
    queue: Vec<Packet>,
    sent: usize,
    fate: Fate,
    /// (ms since start, from, first line) of every datagram put on the wire.
    log: Vec<(u128, SocketAddr, String)>,
}

impl Net {
    fn new(addrs: &[SocketAddr]) -> Net {
        let t0 = Instant::now();
        Net {
            t0,
            now: t0,
            latency: Duration::from_millis(10),
            nodes: addrs
                .iter()
                .enumerate()
                .map(|(i, a)| (*a, Endpoint::new(Config::new(*a, i as u64 + 1)), Vec::new()))
                .collect(),
            queue: Vec::new(),
            sent: 0,
            fate: Box::new(|_, _| 1),
            log: Vec::new(),
        }
    }

    fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    fn node(&mut self, i: usize) -> &mut Endpoint {
        &mut self.nodes[i].1
    }

    fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            let from = self.nodes[i].0;
            while let Some(t) = self.nodes[i].1.poll_transmit() {
                let line = String::from_utf8_lossy(&t.bytes)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                self.log.push((self.ms(), from, line.clone()));
                let n = self.sent;
                self.sent += 1;
                // A duplicate trails the original by 50 ms, as a real network would.
                for k in 0..(self.fate)(n, &line) {
                    self.queue.push(Packet {
                        at: self.now + self.latency + Duration::from_millis(50) * u32::from(k),
                        from,
                        to: t.to,
                        bytes: t.bytes.clone(),
                    });
                }
            }
            while let Some(e) = self.nodes[i].1.poll_event() {
                self.nodes[i].2.push(e);
            }
        }
    }

    /// Delivers what is due next and jumps the clock to the next wake-up.
    fn step(&mut self) -> bool {
        self.flush();
        let next_packet = self.queue.iter().map(|p| p.at).min();
        let next_timer = self.nodes.iter().filter_map(|n| n.1.poll_timeout()).min();
        let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        let (due, rest): (Vec<Packet>, Vec<Packet>) =
            self.queue.drain(..).partition(|p| p.at <= now);
        self.queue = rest;
        for p in due {
            if let Some(n) = self.nodes.iter_mut().find(|n| n.0 == p.to) {
                n.1.handle_datagram(now, p.from, &p.bytes);
            }
        }
        for n in &mut self.nodes {
            if n.1.poll_timeout().is_some_and(|t| t <= now) {
                n.1.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    fn run_until(&mut self, limit: Duration, mut stop: impl FnMut(&mut Net) -> bool) {
        while self.now - self.t0 < limit {
            if stop(self) || !self.step() {
                return;
            }
        }
    }

    fn take_events(&mut self, i: usize) -> Vec<SipEvent> {
        std::mem::take(&mut self.nodes[i].2)
    }

    fn sent_times(&self, from: SocketAddr, prefix: &str) -> Vec<u128> {
        self.log
            .iter()
            .filter(|(_, f, l)| *f == from && l.starts_with(prefix))
            .map(|(t, _, _)| *t)
            .collect()
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A request whose top Via (put there by the TU, as the PBX does) names `transport`. Every
/// endpoint here is configured for UDP, like the PBX's one endpoint for all its listeners:
/// reliability must follow the transaction's Via, not the endpoint.
fn request_over(ep: &mut Endpoint, transport: Transport, method: Method, to: &str) -> Request {
    let mut r = request(ep, method, to);
    let branch = ep.new_branch();
    r.headers.push_front(
        HeaderName::Via,
        format!("SIP/2.0/{transport} {A};branch={branch}"),
    );
    r
}

fn request(ep: &mut Endpoint, method: Method, to: &str) -> Request {
    let uri: Uri = format!("sip:bob@{to}").parse().unwrap();
    let mut r = Request::new(method.clone(), uri.clone());
    let mut from = NameAddr::new("sip:alice@192.0.2.1".parse().unwrap());
    from.set_tag(&ep.new_tag());
    r.headers.push(HeaderName::From, from.to_string());
    r.headers
        .push(HeaderName::To, NameAddr::new(uri).to_string());
    r.headers.push(HeaderName::CallId, ep.new_call_id());
    r.headers.push(HeaderName::CSeq, format!("1 {method}"));
    r
}

const A: &str = "192.0.2.1:5060";
const B: &str = "192.0.2.2:5060";

#[test]
fn invite_over_lossy_link_retransmits_at_t1_doublings_and_stops_on_200() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    // Drop the first three INVITEs.
    net.fate = Box::new(|_, line| {
        u8::from(!line.starts_with("INVITE") || DROPPED.with(|d| d.replace(d.get() + 1)) >= 3)
    });
    thread_local!(static DROPPED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
    let now = net.now;
    let inv = request(net.node(0), Method::Invite, B);
    let tx = net.node(0).send_request(now, addr(B), inv).unwrap();
    let mut server_tx = None;
    net.run_until(Duration::from_secs(10), |n| {
        for e in n.take_events(1) {
            if let SipEvent::Request { tx, request, .. } = e {
                assert_eq!(request.method, Method::Invite);
                server_tx = Some(tx);
                let ok = Response::for_request(&request, StatusCode::OK, Some("b1"));
                let now = n.now;
                n.node(1).respond(now, tx, ok).unwrap();
            }
        }
        false
    });
    assert!(server_tx.is_some());
    // Sent at 0, then T1=500ms, 2·T1, 4·T1 later.
    assert_eq!(net.sent_times(addr(A), "INVITE"), vec![0, 500, 1500, 3500]);
    let events = net.take_events(0);
    assert!(events.iter().any(|e| matches!(e,
        SipEvent::Response { tx: t, response } if *t == tx && response.status == StatusCode::OK)));
    assert!(!events.iter().any(|e| matches!(e, SipEvent::Timeout { .. })));
}

#[test]
fn non_invite_to_a_black_hole_times_out_after_64_t1() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    net.fate = Box::new(|_, _| 0);
    let now = net.now;
    let opt = request(net.node(0), Method::Options, B);
    let tx = net.node(0).send_request(now, addr(B), opt).unwrap();
    net.run_until(Duration::from_secs(60), |_| false);
    // Timer E doubles up to T2 = 4 s; Timer F fires at 64·T1 = 32 s.
    assert_eq!(
        net.sent_times(addr(A), "OPTIONS"),
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let events = net.take_events(0);
    assert_eq!(events[0], SipEvent::Timeout { tx });
    assert_eq!(net.ms(), 32000);
    assert_eq!(net.node(0).transactions(), 0);
}

#[test]
fn invite_rejected_ack_lost_once_server_retransmits_and_client_re_acks() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    let mut acks = 0;
    net.fate = Box::new(move |_, line| {
        if line.starts_with("ACK") {
            acks += 1;
            return u8::from(acks > 1);
        }
        1
    });
    let now = net.now;
    let inv = request(net.node(0), Method::Invite, B);
    let tx = net.node(0).send_request(now, addr(B), inv).unwrap();
    net.run_until(Duration::from_secs(40), |n| {
        for e in n.take_events(1) {
            if let SipEvent::Request { tx, request, .. } = e {
                let busy = Response::for_request(&request, StatusCode::BUSY_HERE, Some("b2"));
                let now = n.now;
                n.node(1).respond(now, tx, busy).unwrap();
            }
        }
        false
    });
    // 100 at once, 486 at 10 ms; first ACK lost; Timer G resends 486 at 510 ms; re-ACK.
    assert_eq!(net.sent_times(addr(B), "SIP/2.0 486"), vec![10, 510]);
    assert_eq!(net.sent_times(addr(A), "ACK"), vec![20, 520]);
    let events = net.take_events(0);
    let finals: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, SipEvent::Response { response, .. } if response.status.is_final()))
        .collect();
    assert_eq!(
        finals.len(),
        1,
        "the retransmitted 486 is not reported twice"
    );
    assert!(events.contains(&SipEvent::Terminated { tx }));
    assert_eq!(net.node(1).transactions(), 0);
}

#[test]
fn duplicated_requests_make_one_event_and_get_the_last_response_again() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    net.fate = Box::new(|_, line| if line.starts_with("OPTIONS") { 2 } else { 1 });
    let now = net.now;
    let opt = request(net.node(0), Method::Options, B);
    net.node(0).send_request(now, addr(B), opt).unwrap();
    let mut requests = 0;
    net.run_until(Duration::from_millis(100), |n| {
        for e in n.take_events(1) {
            if let SipEvent::Request { tx, request, .. } = e {
                requests += 1;
                let ok = Response::for_request(&request, StatusCode::OK, Some("x"));
                let now = n.now;
                n.node(1).respond(now, tx, ok).unwrap();
            }
        }
        false
    });
    assert_eq!(requests, 1);
    // Answered at 10 ms; the duplicate at 60 ms gets the same 200 again.
    assert_eq!(net.sent_times(addr(B), "SIP/2.0 200"), vec![10, 60]);
    let oks = net
        .take_events(0)
        .into_iter()
        .filter(|e| matches!(e, SipEvent::Response { .. }))
        .count();
    assert_eq!(oks, 1);
}

#[test]
fn a_stateless_challenge_keeps_no_transaction_and_a_retransmission_is_challenged_again() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    // The first 401 is lost: the client's retransmission must be answered anew.
    net.fate = Box::new(|n, line| u8::from(!(line.starts_with("SIP/2.0 401") && n == 1)));
    let now = net.now;
    let reg = request(net.node(0), Method::Register, B);
    net.node(0).send_request(now, addr(B), reg).unwrap();
    let mut requests = 0;
    let mut left_behind = Vec::new();
    net.run_until(Duration::from_secs(1), |n| {
        for e in n.take_events(1) {
            if let SipEvent::Request { tx, request, .. } = e {
                requests += 1;
                let challenge =
                    Response::for_request(&request, StatusCode::UNAUTHORIZED, Some("x"));
                n.node(1).respond_stateless(tx, challenge).unwrap();
                left_behind.push(n.node(1).transactions());
            }
        }
        false
    });
    // Sent at 0, lost 401 at 10 ms, retransmitted at T1 = 500 ms, challenged again at 510.
    assert_eq!(requests, 2);
    assert_eq!(left_behind, vec![0, 0]);
    assert_eq!(net.sent_times(addr(B), "SIP/2.0 401"), vec![10, 510]);
    let challenges = net
        .take_events(0)
        .into_iter()
        .filter(|e| matches!(e, SipEvent::Response { response, .. } if response.status == StatusCode::UNAUTHORIZED))
        .count();
    assert_eq!(challenges, 1);
    // INVITE keeps its transaction for the ACK: refused.
    let now = net.now;
    let inv = request(net.node(0), Method::Invite, B);
    net.node(0).send_request(now, addr(B), inv).unwrap();
    net.run_until(Duration::from_secs(2), |n| {
        n.take_events(1).into_iter().any(|e| {
            if let SipEvent::Request { tx, request, .. } = e {
                let r = Response::for_request(&request, StatusCode::UNAUTHORIZED, Some("x"));
                assert!(n.node(1).respond_stateless(tx, r).is_err());
                return true;
            }
            false
        })
    });
}

#[test]
fn rport_and_received_are_filled_and_responses_go_to_the_source() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::new(addr(B), 7));
    let raw = b"REGISTER sip:pbx.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKnat1;rport\r\n\
To: <sip:1000@pbx.local>\r\nFrom: <sip:1000@pbx.local>;tag=a\r\n\
Call-ID: nat1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
    let public = addr("203.0.113.5:40000");
    ep.handle_datagram(t0, public, raw);
    let Some(SipEvent::Request { tx, request, .. }) = ep.poll_event() else {
        panic!("no request")
    };
    let via = request.headers.top_via().unwrap();
    assert_eq!(via.received(), Some("203.0.113.5"));
    assert_eq!(via.rport(), Some(Some(40000)));
    let resp = Response::for_request(&request, StatusCode::OK, Some("t"));
    ep.respond(t0, tx, resp).unwrap();
    let out = ep.poll_transmit().unwrap();
    assert_eq!(out.to, public);
    let Ok(Message::Response(r)) = Message::parse(out.bytes) else {
        panic!()
    };
    assert_eq!(r.headers.top_via().unwrap().rport(), Some(Some(40000)));
}

#[test]
fn rfc2543_requests_without_branch_still_match_retransmissions() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::new(addr(B), 7));
    let raw = std::fs::read(format!(
        "{}/tests/fixtures/rfc4475/inv2543.dat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    ep.handle_datagram(t0, addr(A), &raw);
    ep.handle_datagram(t0, addr(A), &raw);
    let requests = std::iter::from_fn(|| ep.poll_event())
        .filter(|e| matches!(e, SipEvent::Request { .. }))
        .count();
    assert_eq!(requests, 1);
    // The 100 Trying went out once and again for the retransmission.
    assert_eq!(std::iter::from_fn(|| ep.poll_transmit()).count(), 2);
}

#[test]
fn cancel_matches_the_invite_and_malformed_input_is_an_event() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    let now = net.now;
    let inv = request(net.node(0), Method::Invite, B);
    let invite_tx = net.node(0).send_request(now, addr(B), inv).unwrap();
    net.step();
    let server_invite: Vec<TxId> = net
        .take_events(1)
        .into_iter()
        .filter_map(|e| match e {
            SipEvent::Request { tx, .. } => Some(tx),
            _ => None,
        })
        .collect();
    let now = net.now;
    net.node(0).cancel(now, invite_tx).unwrap();
    net.step();
    net.step();
    let cancels: Vec<Option<TxId>> = net
        .take_events(1)
        .into_iter()
        .filter_map(|e| match e {
            SipEvent::Request {
                request, cancels, ..
            } if request.method == Method::Cancel => Some(cancels),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![Some(server_invite[0])]);

    let now = net.now;
    net.node(1)
        .handle_datagram(now, addr(A), b"INVITE sip:x SIP/9.9\r\n\r\n");
    assert!(matches!(
        net.node(1).poll_event(),
        Some(SipEvent::Malformed { .. })
    ));
}

/// Answers every request that has reached node `i` with `status` (and a To tag); returns
/// the events taken and the transactions answered.
fn answer_all(n: &mut Net, i: usize, status: StatusCode) -> (Vec<SipEvent>, Vec<TxId>) {
    let events = n.take_events(i);
    let mut answered = Vec::new();
    for e in &events {
        if let SipEvent::Request { tx, request, .. } = e {
            let r = Response::for_request(request, status, Some("b1"));
            let now = n.now;
            n.node(i).respond(now, *tx, r).unwrap();
            answered.push(*tx);
        }
    }
    (events, answered)
}

#[test]
fn invite_over_tcp_is_sent_once_and_nothing_lingers() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    let now = net.now;
    let inv = request_over(net.node(0), Transport::Tcp, Method::Invite, B);
    let tx = net.node(0).send_request(now, addr(B), inv).unwrap();
    let mut client_events = Vec::new();
    net.run_until(Duration::from_secs(60), |n| {
        answer_all(n, 1, StatusCode::BUSY_HERE);
        client_events.extend(n.take_events(0));
        false
    });
    client_events.extend(net.take_events(0));
    // No Timer A, no Timer G: one INVITE, one 486, one ACK.
    assert_eq!(net.sent_times(addr(A), "INVITE"), vec![0]);
    assert_eq!(net.sent_times(addr(B), "SIP/2.0 486"), vec![10]);
    assert_eq!(net.sent_times(addr(A), "ACK"), vec![20]);
    // Timer D (client) and Timer I (server) are zero: the last event is the ACK at 30 ms,
    // not Timer D at 32 s or Timer I at T4.
    assert_eq!(net.ms(), 30);
    assert!(client_events.contains(&SipEvent::Terminated { tx }));
    assert_eq!(net.node(0).transactions(), 0);
    assert_eq!(net.node(1).transactions(), 0);
}

#[test]
fn invite_over_udp_lingers_in_timer_d_and_timer_i() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    let now = net.now;
    let inv = request(net.node(0), Method::Invite, B);
    net.node(0).send_request(now, addr(B), inv).unwrap();
    let mut server_gone = None;
    net.run_until(Duration::from_secs(60), |n| {
        answer_all(n, 1, StatusCode::BUSY_HERE);
        if server_gone.is_none() && n.ms() > 30 && n.node(1).transactions() == 0 {
            server_gone = Some(n.ms());
        }
        false
    });
    // Server: ACK at 30 ms, then Timer I = T4 = 5 s. Client: 486 at 20 ms + Timer D = 32 s.
    assert_eq!(server_gone, Some(5030));
    assert_eq!(net.ms(), 32020);
}

#[test]
fn non_invite_over_tcp_to_a_black_hole_is_sent_once_and_times_out_at_64_t1() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    net.fate = Box::new(|_, _| 0);
    let now = net.now;
    let opt = request_over(net.node(0), Transport::Tcp, Method::Options, B);
    let tx = net.node(0).send_request(now, addr(B), opt).unwrap();
    net.run_until(Duration::from_secs(60), |_| false);
    // No Timer E; Timer F still fires at 64·T1.
    assert_eq!(net.sent_times(addr(A), "OPTIONS"), vec![0]);
    assert_eq!(net.take_events(0)[0], SipEvent::Timeout { tx });
    assert_eq!(net.ms(), 32000);
}

#[test]
fn non_invite_over_tcp_ends_on_both_sides_at_once() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    let now = net.now;
    let opt = request_over(net.node(0), Transport::Tls, Method::Options, B);
    net.node(0).send_request(now, addr(B), opt).unwrap();
    net.run_until(Duration::from_secs(60), |n| {
        answer_all(n, 1, StatusCode::OK);
        false
    });
    // Timer J (server) and Timer K (client) are zero: done when the 200 arrives.
    assert_eq!(net.ms(), 20);
    assert_eq!(net.node(0).transactions(), 0);
    assert_eq!(net.node(1).transactions(), 0);
}

#[test]
fn lost_ack_over_udp_fires_timer_h_and_tells_the_tu() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    net.fate = Box::new(|_, line| u8::from(!line.starts_with("ACK")));
    let now = net.now;
    let inv = request(net.node(0), Method::Invite, B);
    net.node(0).send_request(now, addr(B), inv).unwrap();
    let mut server_tx = Vec::new();
    let mut server_events = Vec::new();
    net.run_until(Duration::from_secs(60), |n| {
        let (events, answered) = answer_all(n, 1, StatusCode::BUSY_HERE);
        server_events.extend(events);
        server_tx.extend(answered);
        false
    });
    // Timer G: T1, doubling up to T2; the client re-ACKs each (and each ACK is lost).
    assert_eq!(
        net.sent_times(addr(B), "SIP/2.0 486"),
        vec![10, 510, 1510, 3510, 7510, 11510, 15510, 19510, 23510, 27510, 31510]
    );
    // Timer H at 64·T1 after the 486: a transaction failure for the TU, then the end.
    let tx = server_tx[0];
    let timeout = server_events
        .iter()
        .position(|e| *e == SipEvent::Timeout { tx });
    let end = server_events
        .iter()
        .position(|e| *e == SipEvent::Terminated { tx });
    assert!(timeout.is_some() && timeout < end, "{server_events:?}");
}

#[test]
fn lost_ack_over_tcp_is_not_retransmitted_for_and_timer_h_still_fires() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    net.fate = Box::new(|_, line| u8::from(!line.starts_with("ACK")));
    let now = net.now;
    let inv = request_over(net.node(0), Transport::Tcp, Method::Invite, B);
    net.node(0).send_request(now, addr(B), inv).unwrap();
    let mut server_tx = Vec::new();
    let mut server_events = Vec::new();
    net.run_until(Duration::from_secs(60), |n| {
        let (events, answered) = answer_all(n, 1, StatusCode::BUSY_HERE);
        server_events.extend(events);
        server_tx.extend(answered);
        false
    });
    assert_eq!(net.sent_times(addr(B), "SIP/2.0 486"), vec![10]);
    assert!(server_events.contains(&SipEvent::Timeout { tx: server_tx[0] }));
    assert_eq!(net.ms(), 32010);
}

#[test]
fn ringing_longer_than_64_t1_does_not_time_out() {
    let mut net = Net::new(&[addr(A), addr(B)]);
    let now = net.now;
    let inv = request(net.node(0), Method::Invite, B);
    let tx = net.node(0).send_request(now, addr(B), inv).unwrap();
    let mut ringing = Vec::new();
    net.run_until(Duration::from_secs(1), |n| {
        ringing.extend(answer_all(n, 1, StatusCode::RINGING).0);
        false
    });
    let mut client_events = net.take_events(0);
    // Nothing is due any more (before the fix, Timer B was, at 32 s). The callee answers
    // after a minute of ringing.
    assert_eq!(net.node(0).poll_timeout(), None);
    net.now = net.t0 + Duration::from_secs(60);
    let Some(SipEvent::Request {
        tx: server_tx,
        request,
        ..
    }) = ringing.first()
    else {
        panic!("no INVITE arrived")
    };
    let ok = Response::for_request(request, StatusCode::OK, Some("b1"));
    let now = net.now;
    net.node(1).respond(now, *server_tx, ok).unwrap();
    net.run_until(Duration::from_secs(61), |_| false);
    client_events.extend(net.take_events(0));
    // The 180 stopped Timer A, and Timer B with it (it runs in Calling only).
    assert_eq!(net.sent_times(addr(A), "INVITE"), vec![0]);
    assert!(
        !client_events.contains(&SipEvent::Timeout { tx }),
        "{client_events:?}"
    );
    assert!(client_events.iter().any(|e| matches!(e,
        SipEvent::Response { tx: t, response } if *t == tx && response.status == StatusCode::OK)));
}

/// An RFC 2543 request: no magic cookie in the branch, so it is matched by Request-URI,
/// To tag, From tag, Call-ID, CSeq and top Via (RFC 3261 §17.2.3).
fn rfc2543(method: &str, ruri: &str, to_tag: Option<&str>, cseq: &str) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP old.example.com;branch=1234\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: legacy1@old.example.com\r\n\
         CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn legacy_invite(ep: &mut Endpoint, t0: Instant, status: StatusCode, tag: &str) -> TxId {
    ep.handle_datagram(
        t0,
        addr(A),
        &rfc2543("INVITE", "sip:bob@example.com", None, "7 INVITE"),
    );
    let Some(SipEvent::Request { tx, request, .. }) = ep.poll_event() else {
        panic!("no request")
    };
    let r = Response::for_request(&request, status, Some(tag));
    ep.respond(t0, tx, r).unwrap();
    while ep.poll_transmit().is_some() {}
    tx
}

#[test]
fn rfc2543_ack_for_a_non_2xx_is_absorbed_by_the_invite_transaction() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::new(addr(B), 7));
    let tx = legacy_invite(&mut ep, t0, StatusCode::BUSY_HERE, "t486");
    // The ACK carries the To tag of the 486.
    let ack = rfc2543("ACK", "sip:bob@example.com", Some("t486"), "7 ACK");
    ep.handle_datagram(t0 + Duration::from_millis(100), addr(A), &ack);
    assert_eq!(ep.poll_event(), None, "the ACK is not passed to the TU");
    // Confirmed: Timer G no longer resends the 486; Timer I (T4) ends the transaction.
    ep.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(ep.poll_transmit(), None);
    ep.handle_timeout(t0 + Duration::from_millis(5100));
    assert_eq!(ep.poll_event(), Some(SipEvent::Terminated { tx }));
    assert_eq!(ep.transactions(), 0);
}

#[test]
fn rfc2543_ack_for_a_2xx_goes_to_the_tu() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::new(addr(B), 7));
    legacy_invite(&mut ep, t0, StatusCode::OK, "t200");
    let ack = rfc2543("ACK", "sip:bob@example.com", Some("t200"), "7 ACK");
    ep.handle_datagram(t0 + Duration::from_millis(100), addr(A), &ack);
    assert!(
        matches!(ep.poll_event(), Some(SipEvent::Ack { .. })),
        "the ACK for a 2xx belongs to the dialog, not to the INVITE transaction"
    );
}

#[test]
fn rfc2543_matching_looks_at_request_uri_and_to_tag() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::new(addr(B), 7));
    for raw in [
        rfc2543("OPTIONS", "sip:bob@example.com", None, "9 OPTIONS"),
        rfc2543("OPTIONS", "sip:bob@example.com", None, "9 OPTIONS"), // retransmission
        rfc2543("OPTIONS", "sip:carol@example.com", None, "9 OPTIONS"),
        rfc2543("OPTIONS", "sip:bob@example.com", Some("x"), "9 OPTIONS"),
    ] {
        ep.handle_datagram(t0, addr(A), &raw);
    }
    let requests = std::iter::from_fn(|| ep.poll_event())
        .filter(|e| matches!(e, SipEvent::Request { .. }))
        .count();
    assert_eq!(requests, 3);
}

#[test]
fn rfc2543_cancel_finds_its_invite() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(Config::new(addr(B), 7));
    ep.handle_datagram(
        t0,
        addr(A),
        &rfc2543("INVITE", "sip:bob@example.com", None, "7 INVITE"),
    );
    let Some(SipEvent::Request { tx: invite, .. }) = ep.poll_event() else {
        panic!("no request")
    };
    ep.handle_datagram(
        t0,
        addr(A),
        &rfc2543("CANCEL", "sip:bob@example.com", None, "7 CANCEL"),
    );
    let Some(SipEvent::Request { cancels, .. }) = ep.poll_event() else {
        panic!("no CANCEL")
    };
    assert_eq!(cancels, Some(invite));
}
