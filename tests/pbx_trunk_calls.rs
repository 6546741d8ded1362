//! Calls out through trunks, end to end: an extension (sipp, digest-authenticated) dials a
//! public number and the real daemon sends it to one of two sipp "providers" on loopback with
//! different rates. The cheaper takes it; a 503 fails over to the other; a trunk at
//! `max_channels` is skipped; a 407 is answered with the trunk's credentials; a number the
//! caller's rights do not cover gets 403 with nothing sent out; 112 always goes out. A baresip
//! phone calling out hears its tone come back from the trunk side (Goertzel on what it decoded).
//! An extension given `--rights` with international calls reaches +65. A `register = true`
//! trunk registers to a sipp registrar that checks the digest, refreshes before expiry, and a
//! wrong password shows as failed in `trunk list` and `/metrics`.
//! Loopback addresses 127.0.0.50–59, ports from BASE.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::*;

const BASE: u16 = 55060;
const CALLER_IP: &str = "127.0.0.50";
const CHEAP_IP: &str = "127.0.0.51";
const DEAR_IP: &str = "127.0.0.52";

/// The cheaper trunk (300 a minute) and the dearer one (650), both taking +62; only the
/// dearer has an international rate.
const RATES: &str = "\
cheap,+62,300,0,60
dear,+62,650,0,60
dear,+65,900,0,60
";

struct Office {
    pbx: Pbx,
    cheap_port: u16,
    dear_port: u16,
    caller_port: u16,
    rates: PathBuf,
}

impl Office {
    fn registrar_port(&self) -> u16 {
        self.pbx.sip_port + 10
    }
}

impl Drop for Office {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rates);
    }
}

fn office(cheap_max_channels: u32) -> Office {
    office_with(cheap_max_channels, |_| String::new())
}

/// [`office`] with more `[[trunk]]` tables, written for the office's registrar port (the
/// first SIP port above the caller's).
fn office_with(cheap_max_channels: u32, more: impl Fn(u16) -> String) -> Office {
    let sip_port = ports(BASE);
    let (cheap_port, dear_port, caller_port) = (sip_port + 5, sip_port + 6, sip_port + 7);
    let rates = std::env::temp_dir().join(format!(
        "kentongan-trunk-rates-{}-{sip_port}.csv",
        std::process::id()
    ));
    std::fs::write(&rates, RATES).unwrap();
    let extra = format!(
        r#"
[[trunk]]
name = "cheap"
kind = "provider"
address = "{CHEAP_IP}:{cheap_port}"
username = "office1"
password = "trunk-pw-1"
max_channels = {cheap_max_channels}
caller_id = "+62215550100"

[[trunk]]
name = "dear"
kind = "provider"
address = "{DEAR_IP}:{dear_port}"
caller_id = "+62215550199"
{}
[lcr]
rates = "{}"
country = "62"
area_code = "21"
"#,
        more(sip_port + 10),
        rates.display()
    );
    let pbx = Pbx::start_with(sip_port, &extra);
    pbx.add_user("201", "pw201");
    Office {
        pbx,
        cheap_port,
        dear_port,
        caller_port,
        rates,
    }
}

/// A provider answering with `scenario`, its messages logged for the test to read; RTP it is
/// sent goes to `sink`.
fn provider(o: &Office, scenario: &str, ip: &str, port: u16, sink: &RtpSink) -> (Proc, PathBuf) {
    let messages = o.pbx.dir.join(format!("provider-{port}-messages.log"));
    let p = sipp_phone(
        &o.pbx,
        scenario,
        ip,
        port,
        &[
            "-key",
            "rtp_sink",
            &sink.addr.port().to_string(),
            "-trace_msg",
            "-message_file",
            messages.to_str().unwrap(),
        ],
    );
    (p, messages)
}

/// Extension 201 at CALLER_IP dials `number` with caller scenario `scenario`.
fn dial(o: &Office, scenario: &str, number: &str, port: u16, extra: &[&str]) -> (i32, String) {
    let inf = csv(
        &o.pbx,
        &format!("caller-{port}.csv"),
        &["201", "pbx.local", &auth("201", "pw201"), number],
    );
    let port_s = port.to_string();
    // sipp takes the media port and the few above it: ten apart for each SIP port.
    let media = (40000 + (port - BASE) * 10).to_string();
    let mut args = vec![
        "-inf", &inf, "-i", CALLER_IP, "-p", &port_s, "-mi", CALLER_IP, "-mp", &media,
    ];
    args.extend_from_slice(extra);
    sipp(&o.pbx, scenario, &args, Duration::from_secs(40))
}

fn cdrs(o: &Office) -> Vec<serde_json::Value> {
    let out = o.pbx.cli(&["cdr", "list", "--json"], None);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_answered_on(cdr: &serde_json::Value, trunk: &str, number: &str, cost: &str) {
    assert_eq!(cdr["disposition"], "answered", "{cdr}");
    assert_eq!(cdr["trunk"], trunk, "{cdr}");
    assert_eq!(cdr["number"], number, "{cdr}");
    assert_eq!(cdr["class"], "mobile", "{cdr}");
    // A few seconds, billed by the minute.
    assert_eq!(cdr["cost"], cost, "{cdr}");
}

/// The provider got the call's audio from the relay (not from the phone).
fn assert_media_through_relay(sink: &RtpSink) {
    let stats = sink.stats();
    assert!(
        stats.by_payload_type.get(&8).copied().unwrap_or(0) >= 20,
        "{stats:?}"
    );
    assert!(
        stats
            .sources
            .iter()
            .all(|s| s.ip().to_string() == "127.0.0.1"),
        "{stats:?}"
    );
}

#[test]
fn a_mobile_call_goes_out_on_the_cheaper_trunk() {
    let o = office(4);
    assert_eq!(
        register(&o.pbx, "201", "pw201", CALLER_IP, o.caller_port),
        0
    );
    let sink = RtpSink::start(CHEAP_IP, 0);
    let (mut cheap, messages) = provider(&o, "callee_answer.xml", CHEAP_IP, o.cheap_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = dial(&o, "call_caller.xml", "081234567890", o.caller_port, &[]);
    assert_eq!(code, 0, "caller: {out}");
    assert_eq!(cheap.wait(Duration::from_secs(20)), 0, "{}", cheap.output());
    let log = std::fs::read_to_string(&messages).unwrap();
    // E.164 to the trunk, with the trunk's caller ID in From and P-Asserted-Identity.
    assert!(
        log.contains(&format!(
            "INVITE sip:+6281234567890@{CHEAP_IP}:{} SIP/2.0",
            o.cheap_port
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "P-Asserted-Identity: <sip:+62215550100@{CHEAP_IP}>"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("From: <sip:+62215550100@{CHEAP_IP}>;tag=")),
        "{log}"
    );
    assert_media_through_relay(&sink);
    assert_eq!(
        o.pbx
            .wait_metric("kentongan_active_calls", 0, Duration::from_secs(5)),
        0
    );
    let cdrs = cdrs(&o);
    assert_answered_on(&cdrs[0], "cheap", "+6281234567890", "300.00");
    let text = o.pbx.cli(&["cdr", "list"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("\tanswered\tcheap\t+6281234567890\tmobile\t300.00\t-\t-\n"),
        "{text}"
    );
}

#[test]
fn a_softphone_calling_out_hears_the_trunk_side_audio() {
    need("baresip", "baresip");
    let o = office(4);
    // The provider sends back every RTP packet it gets: 201's 523 Hz tone crosses the relay to
    // the trunk and back, and 201's phone decodes it.
    let sink = RtpSink::start(CHEAP_IP, 0);
    let (mut cheap, _) = provider(&o, "callee_answer.xml", CHEAP_IP, o.cheap_port, &sink);
    let wav = o.pbx.dir.join("mic.wav");
    tone_wav_hz(&wav, 10, 523.0);
    let dir = baresip_phone_with(&o.pbx, "201", CALLER_IP, o.caller_port, &wav, false, "PCMA");
    let mut phone = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-t", "7", "-e", "/dial 081234567890"]),
        o.pbx.dir.join("baresip-201.log"),
    );
    phone.wait(Duration::from_secs(20));
    assert_eq!(cheap.wait(Duration::from_secs(20)), 0, "{}", cheap.output());
    assert_media_through_relay(&sink);
    let heard =
        baresip_decoded(&dir).unwrap_or_else(|| panic!("nothing decoded: {}", phone.output()));
    let db = peak_tones(&heard, &[523.0, 1000.0]);
    assert!(db[0] > -35.0, "the tone did not come back: {db:?}");
    assert!(db[1] < db[0] - 20.0, "not a clean tone: {db:?}");
    assert_answered_on(&cdrs(&o)[0], "cheap", "+6281234567890", "300.00");
}

#[test]
fn a_503_from_the_cheaper_trunk_fails_over_to_the_other() {
    let o = office(4);
    let sink = RtpSink::start(DEAR_IP, 0);
    let idle = RtpSink::start(CHEAP_IP, 0);
    let (mut cheap, _) = provider(&o, "trunk_503.xml", CHEAP_IP, o.cheap_port, &idle);
    let (mut dear, messages) = provider(&o, "callee_answer.xml", DEAR_IP, o.dear_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = dial(&o, "call_caller.xml", "081234567890", o.caller_port, &[]);
    assert_eq!(code, 0, "caller: {out}");
    assert_eq!(cheap.wait(Duration::from_secs(20)), 0, "{}", cheap.output());
    assert_eq!(dear.wait(Duration::from_secs(20)), 0, "{}", dear.output());
    let log = std::fs::read_to_string(&messages).unwrap();
    assert!(
        log.contains(&format!(
            "P-Asserted-Identity: <sip:+62215550199@{DEAR_IP}>"
        )),
        "{log}"
    );
    assert_media_through_relay(&sink);
    let cdrs = cdrs(&o);
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    assert_answered_on(&cdrs[0], "dear", "+6281234567890", "650.00");
}

#[test]
fn a_trunk_that_never_answers_is_given_up_after_8_seconds() {
    let o = office(4);
    // The cheaper "provider" takes packets and says nothing.
    let silent = UdpSocket::bind((CHEAP_IP, o.cheap_port)).unwrap();
    let sink = RtpSink::start(DEAR_IP, 0);
    let (mut dear, _) = provider(&o, "callee_answer.xml", DEAR_IP, o.dear_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (code, out) = dial(&o, "call_caller.xml", "081234567890", o.caller_port, &[]);
    assert_eq!(code, 0, "caller: {out}");
    assert!(started.elapsed() >= Duration::from_secs(8), "{out}");
    assert_eq!(dear.wait(Duration::from_secs(20)), 0, "{}", dear.output());
    silent
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = silent
        .recv_from(&mut buf)
        .expect("the INVITE reached the silent trunk");
    assert!(buf[..n].starts_with(b"INVITE sip:+6281234567890@"));
    assert_media_through_relay(&sink);
    assert_answered_on(&cdrs(&o)[0], "dear", "+6281234567890", "650.00");
}

#[test]
fn at_its_channel_limit_the_next_call_takes_the_other_trunk() {
    let o = office(1);
    let cheap_sink = RtpSink::start(CHEAP_IP, 0);
    let dear_sink = RtpSink::start(DEAR_IP, 0);
    let (mut cheap, _) = provider(&o, "callee_answer.xml", CHEAP_IP, o.cheap_port, &cheap_sink);
    let (mut dear, _) = provider(&o, "callee_answer.xml", DEAR_IP, o.dear_port, &dear_sink);
    std::thread::sleep(Duration::from_millis(300));
    // The first call holds the cheap trunk's one channel for 8 s.
    let long = std::thread::scope(|s| {
        let first = s.spawn(|| {
            dial(
                &o,
                "call_long.xml",
                "081234567890",
                o.caller_port,
                &["-d", "8000"],
            )
        });
        assert_eq!(
            o.pbx
                .wait_metric("kentongan_active_calls", 1, Duration::from_secs(10)),
            1
        );
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            o.pbx
                .metric("kentongan_trunk_channels_in_use{trunk=\"cheap\"}"),
            1
        );
        let (code, out) = dial(
            &o,
            "call_caller.xml",
            "081234567891",
            o.caller_port + 2,
            &[],
        );
        assert_eq!(code, 0, "second caller: {out}");
        first.join().unwrap()
    });
    assert_eq!(long.0, 0, "first caller: {}", long.1);
    assert_eq!(cheap.wait(Duration::from_secs(20)), 0, "{}", cheap.output());
    assert_eq!(dear.wait(Duration::from_secs(20)), 0, "{}", dear.output());
    assert_media_through_relay(&dear_sink);
    let cdrs = cdrs(&o);
    let on = |number: &str| {
        cdrs.iter()
            .find(|c| c["number"] == number)
            .unwrap_or_else(|| panic!("no CDR for {number}: {cdrs:?}"))
            .clone()
    };
    assert_eq!(on("+6281234567891")["trunk"], "dear");
    assert_eq!(on("+6281234567890")["trunk"], "cheap");
    for trunk in ["cheap", "dear"] {
        let name = format!("kentongan_trunk_channels_in_use{{trunk=\"{trunk}\"}}");
        assert_eq!(
            o.pbx.wait_metric(&name, 0, Duration::from_secs(5)),
            0,
            "{name}"
        );
    }
}

/// The `name="value"` (or bare `name=value`) parameters of a Digest header line.
fn digest_params(line: &str) -> std::collections::HashMap<String, String> {
    let rest = line.split_once("Digest ").map_or("", |(_, r)| r);
    rest.split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// MD5 by Python's hashlib: a digest implementation other than ours.
fn md5_hex(text: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.md5(sys.argv[1].encode()).hexdigest())",
            text,
        ])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn challenged_call(scenario: &str) -> (Office, String) {
    let o = office(4);
    let sink = RtpSink::start(CHEAP_IP, 0);
    let (mut cheap, messages) = provider(&o, scenario, CHEAP_IP, o.cheap_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = dial(&o, "call_caller.xml", "081234567890", o.caller_port, &[]);
    assert_eq!(code, 0, "caller: {out}");
    assert_eq!(cheap.wait(Duration::from_secs(20)), 0, "{}", cheap.output());
    let log = std::fs::read_to_string(&messages).unwrap();
    assert!(
        !log.contains("trunk-pw-1"),
        "the password itself went out: {log}"
    );
    assert!(
        !o.pbx.log().contains("trunk-pw-1"),
        "the password was logged"
    );
    assert_media_through_relay(&sink);
    assert_answered_on(&cdrs(&o)[0], "cheap", "+6281234567890", "300.00");
    (o, log)
}

#[test]
fn a_trunk_that_answers_401_gets_an_invite_its_digest_check_accepts() {
    // sipp's verifyauth (its own MD5 digest code) decides whether the call is answered.
    let (_o, log) = challenged_call("trunk_auth.xml");
    assert!(
        log.contains("Authorization: Digest username=\"office1\", realm=\"provider.test\""),
        "{log}"
    );
}

#[test]
fn a_trunk_that_challenges_with_407_gets_proxy_authorization() {
    let (o, log) = challenged_call("trunk_proxy_auth.xml");
    let line = log
        .lines()
        .find(|l| l.starts_with("Proxy-Authorization: Digest "))
        .unwrap_or_else(|| panic!("no Proxy-Authorization: {log}"));
    let p = digest_params(line);
    assert_eq!(p["username"], "office1", "{line}");
    assert_eq!(p["realm"], "provider.test", "{line}");
    assert_eq!(p["nonce"], "7f3a9c21d04b", "{line}");
    assert_eq!(p["qop"], "auth", "{line}");
    assert_eq!(
        p["uri"],
        format!("sip:+6281234567890@{CHEAP_IP}:{}", o.cheap_port)
    );
    // RFC 2617 §3.2.2.1 with qop=auth, computed independently.
    let ha1 = md5_hex("office1:provider.test:trunk-pw-1");
    let ha2 = md5_hex(&format!("INVITE:{}", p["uri"]));
    let want = md5_hex(&format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        p["nonce"], p["nc"], p["cnonce"]
    ));
    assert_eq!(p["response"], want, "{line}");
    // The INVITE sent again is a new transaction of the same dialog attempt: CSeq 2.
    assert!(log.contains("CSeq: 2 INVITE"), "{log}");
}

#[test]
fn international_without_rights_gets_403_and_nothing_goes_out() {
    let o = office(4);
    let cheap = UdpSocket::bind((CHEAP_IP, o.cheap_port)).unwrap();
    let dear = UdpSocket::bind((DEAR_IP, o.dear_port)).unwrap();
    let messages = o.pbx.dir.join("caller-messages.log");
    let (code, out) = dial(
        &o,
        "caller_forbidden.xml",
        "006512345678",
        o.caller_port,
        &["-trace_msg", "-message_file", messages.to_str().unwrap()],
    );
    assert_eq!(code, 0, "caller: {out}");
    let log = std::fs::read_to_string(&messages).unwrap();
    assert!(
        log.contains("SIP/2.0 403 Forbidden: international calls not allowed for this extension"),
        "{log}"
    );
    for s in [&cheap, &dear] {
        s.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let mut buf = [0u8; 2048];
        assert!(s.recv_from(&mut buf).is_err(), "a trunk got a packet");
    }
    let cdrs = cdrs(&o);
    assert_eq!(cdrs[0]["disposition"], "refused", "{cdrs:?}");
    assert_eq!(cdrs[0]["class"], "international", "{cdrs:?}");
    assert_eq!(cdrs[0]["number"], "+6512345678", "{cdrs:?}");
}

#[test]
fn an_emergency_call_always_goes_out() {
    let o = office(4);
    let sink = RtpSink::start(CHEAP_IP, 0);
    let (mut cheap, messages) = provider(&o, "callee_answer.xml", CHEAP_IP, o.cheap_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = dial(&o, "call_caller.xml", "112", o.caller_port, &[]);
    assert_eq!(code, 0, "caller: {out}");
    assert_eq!(cheap.wait(Duration::from_secs(20)), 0, "{}", cheap.output());
    let log = std::fs::read_to_string(&messages).unwrap();
    assert!(
        log.contains(&format!(
            "INVITE sip:112@{CHEAP_IP}:{} SIP/2.0",
            o.cheap_port
        )),
        "{log}"
    );
    assert_media_through_relay(&sink);
    let cdrs = cdrs(&o);
    assert_eq!(cdrs[0]["class"], "emergency", "{cdrs:?}");
    assert_eq!(cdrs[0]["trunk"], "cheap", "{cdrs:?}");
    assert!(cdrs[0]["cost"].is_null(), "{cdrs:?}");
}

const REGISTRAR_IP: &str = "127.0.0.53";

fn registering_trunk(password: &'static str) -> impl Fn(u16) -> String {
    move |port| {
        format!(
            r#"
[[trunk]]
name = "reg"
kind = "provider"
address = "{REGISTRAR_IP}:{port}"
register = true
username = "office1"
password = "{password}"
"#
        )
    }
}

fn trunk_row(o: &Office, name: &str) -> serde_json::Value {
    let out = o.pbx.cli(&["trunk", "list", "--json"], None);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no trunk {name}"))
}

/// An office whose "reg" trunk registers to a sipp registrar (started just after the daemon:
/// the REGISTER's retransmissions reach it).
fn with_registrar(password: &'static str) -> (Office, Proc) {
    let o = office_with(4, registering_trunk(password));
    let sink = RtpSink::start(REGISTRAR_IP, 0);
    let (p, _) = provider(
        &o,
        "trunk_registrar.xml",
        REGISTRAR_IP,
        o.registrar_port(),
        &sink,
    );
    (o, p)
}

#[test]
fn a_provider_trunk_registers_with_digest_and_refreshes_before_expiry() {
    let (o, mut registrar) = with_registrar("trunk-pw-1");
    // Both rounds (the registration, then its refresh 8 s later) pass sipp's digest check.
    assert_eq!(
        registrar.wait(Duration::from_secs(30)),
        0,
        "{}",
        registrar.output()
    );
    std::thread::sleep(Duration::from_millis(300));
    let row = trunk_row(&o, "reg");
    assert_eq!(row["state"], "registered", "{row}");
    assert!(row["expires_at"].as_i64().is_some(), "{row}");
    let text = o.pbx.cli(&["trunk", "list"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("\tregistered (expires in "), "{text}");
    assert_eq!(o.pbx.metric("kentongan_trunk_registered{trunk=\"reg\"}"), 1);
    assert!(!text.contains("trunk-pw-1") && !o.pbx.log().contains("trunk-pw-1"));
}

#[test]
fn a_wrong_trunk_password_shows_as_a_failure_in_trunk_list() {
    let (o, _registrar) = with_registrar("not-the-password");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut row = trunk_row(&o, "reg");
    while row["state"] != "failed" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        row = trunk_row(&o, "reg");
    }
    assert_eq!(row["state"], "failed", "{row}");
    let why = row["last_failure"].as_str().unwrap_or("");
    assert!(why.starts_with("403 Wrong Password"), "{row}");
    assert!(why.contains("check them in [[trunk]]"), "{row}");
    let text = o.pbx.cli(&["trunk", "list"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("\tfailed (403 Wrong Password"), "{text}");
    assert_eq!(o.pbx.metric("kentongan_trunk_registered{trunk=\"reg\"}"), 0);
}

#[test]
fn an_extension_given_international_rights_calls_abroad() {
    let o = office_with(4, |_| {
        "\n[[calling_rights]]\nname = \"direksi\"\nallow = [\"international\", \"mobile\"]\n"
            .to_owned()
    });
    let bad = o.pbx.cli(&["user", "set", "201", "--rights", "bos"], None);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("no calling rights named \"bos\""), "{err}");
    assert!(err.contains("default, direksi"), "{err}");
    let set = o
        .pbx
        .cli(&["user", "set", "201", "--rights", "direksi"], None);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let sink = RtpSink::start(DEAR_IP, 0);
    let (mut dear, messages) = provider(&o, "callee_answer.xml", DEAR_IP, o.dear_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = dial(&o, "call_caller.xml", "006512345678", o.caller_port, &[]);
    assert_eq!(code, 0, "caller: {out}");
    assert_eq!(dear.wait(Duration::from_secs(20)), 0, "{}", dear.output());
    let log = std::fs::read_to_string(&messages).unwrap();
    assert!(
        log.contains(&format!(
            "INVITE sip:+6512345678@{DEAR_IP}:{} SIP/2.0",
            o.dear_port
        )),
        "{log}"
    );
    assert_media_through_relay(&sink);
    let cdr = &cdrs(&o)[0];
    assert_eq!(cdr["class"], "international", "{cdr}");
    assert_eq!(cdr["trunk"], "dear", "{cdr}");
    assert_eq!(cdr["cost"], "900.00", "{cdr}");
    // Back to the default rights: refused again.
    let reset = o
        .pbx
        .cli(&["user", "set", "201", "--rights", "default"], None);
    assert!(reset.status.success());
    let (code, out) = dial(
        &o,
        "caller_forbidden.xml",
        "006512345678",
        o.caller_port + 2,
        &[],
    );
    assert_eq!(code, 0, "caller: {out}");
}
