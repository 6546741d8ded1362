//! kentongan-pbx against sipp: registration with digest auth (good, wrong password, unknown
//! user answered identically), a call with RTP from a pcap and RFC 4733 DTMF checked on the
//! far side through the relay, hold/resume re-INVITEs, busy, CANCEL and unavailable.
//! Needs sipp (package sip-tester); run by scripts/test as root.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::net::UdpSocket;
use std::time::Duration;

use harness::*;

const BASE: u16 = 25060;

fn pbx_with_users() -> Pbx {
    let pbx = Pbx::start(ports(BASE));
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    pbx
}

#[test]
fn options_answers_200() {
    let pbx = Pbx::start(ports(BASE));
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKopt1;rport\r\n\
         From: <sip:probe@pbx.local>;tag=1\r\nTo: <sip:pbx.local>\r\nCall-ID: opt1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), pbx.sip()).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert!(resp.starts_with("SIP/2.0 200 OK"), "{resp}");
    assert!(resp.contains(&format!("received={}", local.ip())), "{resp}");
}

#[test]
fn register_good_and_wrong_password() {
    let pbx = pbx_with_users();
    assert_eq!(
        register(&pbx, "201", "pw201", "127.0.0.2", ports(BASE + 5000)),
        0
    );
    assert_eq!(pbx.metric("kentongan_registrations"), 1);
    let inf = csv(
        &pbx,
        "wrong.csv",
        &["202", "pbx.local", &auth("202", "not-the-password")],
    );
    let port = ports(BASE + 5000).to_string();
    let (code, out) = sipp(
        &pbx,
        "register_wrong.xml",
        &["-inf", &inf, "-i", "127.0.0.2", "-p", &port],
        Duration::from_secs(40),
    );
    assert_eq!(code, 0, "wrong password must get 401 again: {out}");
    assert_eq!(pbx.metric("kentongan_registrations"), 1);
    assert!(pbx.metric("kentongan_auth_failures_total") >= 1);
}

/// Unknown user and wrong password: same status, same headers (anti-enumeration).
#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    use kentongan_sip::auth::{respond, Challenge};
    use kentongan_sip::{HeaderName, Method, Response};
    let pbx = pbx_with_users();
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let mut n = 0;
    let mut exchange = |user: &str, auth: Option<String>| -> Response {
        n += 1;
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "REGISTER sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKe{n};rport\r\n\
             From: <sip:{user}@pbx.local>;tag=t{n}\r\nTo: <sip:{user}@pbx.local>\r\n\
             Call-ID: enum{n}\r\nCSeq: {n} REGISTER\r\nContact: <sip:{user}@{local}>\r\n\
             {auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(req.as_bytes(), pbx.sip()).unwrap();
        let mut buf = [0u8; 4096];
        let (len, _) = sock.recv_from(&mut buf).unwrap();
        Response::parse(buf[..len].to_vec()).unwrap()
    };
    let shape = |user: &str, exchange: &mut dyn FnMut(&str, Option<String>) -> Response| {
        let first = exchange(user, None);
        let ch = first
            .headers
            .get_str(&HeaderName::WwwAuthenticate)
            .map(|c| Challenge::parse(c).unwrap())
            .unwrap();
        let creds = respond(
            &ch,
            user,
            "guess",
            &Method::Register,
            "sip:pbx.local",
            "abc",
            1,
        );
        let second = exchange(user, Some(creds.to_string()));
        let names: Vec<String> = second
            .headers
            .iter()
            .map(|h| h.name.as_str().to_owned())
            .collect();
        (first.status, second.status, names, second.body.len())
    };
    let known = shape("201", &mut exchange);
    let unknown = shape("999", &mut exchange);
    assert_eq!(known.1 .0, 401);
    assert_eq!(known, unknown);
}

fn call_scenario(scenario: &str, expect_dtmf: bool, caller_extra: &[&str]) {
    let pbx = pbx_with_users();
    let phone_port = ports(BASE + 5000);
    assert_eq!(register(&pbx, "202", "pw202", "127.0.0.3", phone_port), 0);
    let sink = RtpSink::start("127.0.0.3", 0);
    let mut phone = sipp_phone(
        &pbx,
        "callee_answer.xml",
        "127.0.0.3",
        phone_port,
        &["-key", "rtp_sink", &sink.addr.port().to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    let inf = csv(
        &pbx,
        "caller.csv",
        &["201", "pbx.local", &auth("201", "pw201"), "202"],
    );
    let media_port = (ports(BASE + 6000) + 1000).to_string();
    let caller_port = ports(BASE + 5000).to_string();
    let mut args = vec![
        "-inf",
        &inf,
        "-i",
        "127.0.0.2",
        "-p",
        &caller_port,
        "-mi",
        "127.0.0.2",
        "-mp",
        &media_port,
    ];
    args.extend_from_slice(caller_extra);
    let (code, out) = sipp(&pbx, scenario, &args, Duration::from_secs(40));
    assert_eq!(code, 0, "caller scenario failed: {out}");
    assert_eq!(
        phone.wait(Duration::from_secs(20)),
        0,
        "callee: {}",
        phone.output()
    );
    let stats = sink.stats();
    // The pcap's PCMA packets reached the callee, from the relay (not from the caller).
    assert!(
        stats.by_payload_type.get(&8).copied().unwrap_or(0) >= 20,
        "{stats:?}"
    );
    if expect_dtmf {
        assert!(
            stats.by_payload_type.get(&101).copied().unwrap_or(0) >= 3,
            "{stats:?}"
        );
    }
    assert!(
        stats
            .sources
            .iter()
            .all(|s| s.ip().to_string() == "127.0.0.1"),
        "{stats:?}"
    );
    // Every packet the sink echoed came back through the relay too, except while on hold:
    // then the music reached the sink from the media engine, and its echo went back there.
    let music = pbx.metric("kentongan_engine_packets_total{direction=\"out\"}");
    assert!(pbx.metric("kentongan_rtp_packets_total") + 2 * music >= 2 * stats.packets - 5);
    if scenario == "call_hold.xml" {
        assert!(music > 20, "no music on hold reached the callee: {stats:?}");
    }
    assert_eq!(
        pbx.wait_metric("kentongan_active_calls", 0, Duration::from_secs(5)),
        0
    );
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    let cdr = String::from_utf8_lossy(&cdr.stdout);
    assert!(cdr.contains("\"disposition\": \"answered\""), "{cdr}");
}

#[test]
fn call_with_rtp_and_dtmf_through_relay() {
    call_scenario("call_caller.xml", true, &[]);
}

#[test]
fn call_hold_and_resume() {
    call_scenario("call_hold.xml", false, &[]);
}

fn failing_call(callee_scenario: Option<&str>, caller_scenario: &str, disposition: &str) {
    failing_call_on(
        pbx_with_users(),
        callee_scenario,
        caller_scenario,
        disposition,
    );
}

fn failing_call_on(
    pbx: Pbx,
    callee_scenario: Option<&str>,
    caller_scenario: &str,
    disposition: &str,
) {
    let phone_port = ports(BASE + 5000);
    let mut phone = callee_scenario.map(|s| {
        assert_eq!(register(&pbx, "202", "pw202", "127.0.0.3", phone_port), 0);
        sipp_phone(&pbx, s, "127.0.0.3", phone_port, &[])
    });
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = call_from_201(&pbx, caller_scenario, "202", ports(BASE + 5000));
    assert_eq!(code, 0, "caller scenario failed: {out}");
    if let Some(p) = phone.as_mut() {
        assert_eq!(p.wait(Duration::from_secs(20)), 0, "callee: {}", p.output());
    }
    assert_eq!(
        pbx.wait_metric("kentongan_active_calls", 0, Duration::from_secs(5)),
        0
    );
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    let cdr = String::from_utf8_lossy(&cdr.stdout);
    assert!(
        cdr.contains(&format!("\"disposition\": \"{disposition}\"")),
        "{cdr}"
    );
}

#[test]
fn busy_callee_gives_486() {
    failing_call(Some("callee_busy.xml"), "caller_busy.xml", "busy");
}

#[test]
fn a_call_nobody_answers_gets_480_after_the_no_answer_timeout() {
    let pbx = Pbx::start_with(ports(BASE), "no_answer_seconds = 3");
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    // The callee rings until CANCELled: the PBX must cancel it and answer the caller 480.
    failing_call_on(
        pbx,
        Some("callee_cancel.xml"),
        "caller_noanswer.xml",
        "no-answer",
    );
}

#[test]
fn cancel_while_ringing() {
    failing_call(Some("callee_cancel.xml"), "caller_cancel.xml", "cancelled");
}

#[test]
fn unregistered_callee_gives_480() {
    failing_call(None, "caller_unavailable.xml", "unavailable");
}

/// A caller on TCP (sipp `-t t1`) reaches a phone on UDP; REGISTER over TCP works too.
#[test]
fn tcp_caller_to_udp_phone() {
    call_scenario("call_caller.xml", true, &["-t", "t1"]);
}

#[test]
fn register_over_tcp() {
    let pbx = pbx_with_users();
    let inf = csv(
        &pbx,
        "tcp.csv",
        &["201", "pbx.local", &auth("201", "pw201")],
    );
    let port = ports(BASE + 5000).to_string();
    let (code, out) = sipp(
        &pbx,
        "register.xml",
        &["-inf", &inf, "-i", "127.0.0.2", "-p", &port, "-t", "t1"],
        Duration::from_secs(40),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(pbx.metric("kentongan_registrations"), 1);
}

/// A source banned while connected loses its TCP connection (its packets are dropped from
/// then on anyway; an open connection would still hold a socket and a task for it).
#[test]
fn a_banned_source_loses_its_tcp_connection() {
    use std::io::{Read, Write};
    let pbx = Pbx::start(ports(BASE));
    let mut conn = std::net::TcpStream::connect(pbx.sip()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = conn.local_addr().unwrap();
    let options = |branch: &str, agent: &str| {
        format!(
            "OPTIONS sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{branch}\r\n\
             From: <sip:probe@pbx.local>;tag=1\r\nTo: <sip:pbx.local>\r\nCall-ID: {branch}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nUser-Agent: {agent}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    conn.write_all(options("tcp1", "Zoiper").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
    // A scanner's User-Agent is banned at its first packet.
    conn.write_all(options("tcp2", "friendly-scanner").as_bytes())
        .unwrap();
    match conn.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the banned source's connection is still open: {other:?}"),
    }
    assert_eq!(pbx.metric("kentongan_bans_total{reason=\"scanner\"}"), 1);
}

/// SIP over TLS with the certificate made at first start: OPTIONS answered through openssl.
#[test]
fn options_over_tls_with_generated_certificate() {
    need("openssl", "openssl");
    let pbx = Pbx::start(ports(BASE));
    assert!(pbx.dir.join("tls-cert.pem").is_file());
    let log = pbx.dir.join("openssl.log");
    let mut cmd = std::process::Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &pbx.tls(),
        "-quiet",
        "-verify_quiet",
    ])
    .stdin(std::process::Stdio::piped());
    let f = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let req = "OPTIONS sip:pbx.local;transport=tls SIP/2.0\r\n\
               Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls1;rport\r\n\
               From: <sip:probe@pbx.local>;tag=1\r\nTo: <sip:pbx.local>\r\nCall-ID: tls1\r\n\
               CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    use std::io::Write as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(req.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut out = String::new();
    while std::time::Instant::now() < deadline {
        out = std::fs::read_to_string(&log).unwrap_or_default();
        if out.contains("SIP/2.0 200 OK") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.contains("SIP/2.0 200 OK"), "{out}");
}

/// IPv6: a phone on [::1] registers (sipp) and OPTIONS is answered with received=::1.
#[test]
fn ipv6_register_and_options() {
    let pbx = pbx_with_users();
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKv6;rport\r\n\
         From: <sip:probe@pbx.local>;tag=1\r\nTo: <sip:pbx.local>\r\nCall-ID: v6\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), ("::1", pbx.sip_port)).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let resp = String::from_utf8_lossy(&buf[..n]);
    assert!(resp.starts_with("SIP/2.0 200 OK"), "{resp}");
    assert!(resp.contains("received=::1"), "{resp}");
    let inf = csv(&pbx, "v6.csv", &["201", "pbx.local", &auth("201", "pw201")]);
    let target = format!("[::1]:{}", pbx.sip_port);
    let port = ports(BASE + 5000).to_string();
    let log = pbx.dir.join("sipp-v6.log");
    let mut cmd = std::process::Command::new("sipp");
    cmd.arg(&target)
        .arg("-sf")
        .arg(fixture("register.xml"))
        .args(["-inf", &inf, "-i", "::1", "-p", &port])
        .args(["-m", "1", "-nostdin", "-timeout", "30", "-timeout_error"])
        .current_dir(&pbx.dir);
    let mut p = Proc::spawn("sipp v6", &mut cmd, log);
    assert_eq!(p.wait(Duration::from_secs(40)), 0, "{}", p.output());
    assert_eq!(pbx.metric("kentongan_registrations"), 1);
}
