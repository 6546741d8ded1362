//! Calls in through trunks, end to end, with the real daemon: a "provider" (baresip, and sipp
//! where only signalling matters) at a `[[trunk]]`'s address calls a `[[did]]` and extension
//! 201's phone rings; each side hears the other's tone through the relay (Goertzel on what
//! each phone decoded), and the CDR names the trunk and the DID. An INVITE from the provider
//! to a number that is no DID (an extension, an outside number) gets 404 and nothing reaches
//! the other provider; one from an address that is no trunk is challenged like a phone. A
//! sipp "GoIP" registers with its gateway trunk's account and takes the Telkomsel call; a
//! provider that stops answering OPTIONS is skipped; our registration survives a provider
//! restart.
//! Loopback addresses 127.0.0.80–89, ports from BASE.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::*;

const BASE: u16 = 56060;
const PROVIDER_IP: &str = "127.0.0.80";
const OTHER_IP: &str = "127.0.0.81";
const PHONE_IP: &str = "127.0.0.82";
const STRANGER_IP: &str = "127.0.0.83";
const GOIP_IP: &str = "127.0.0.84";
const REGISTRAR_IP: &str = "127.0.0.85";
/// A second signalling server of "provider", listed in its `match`.
const PROVIDER_SECOND_IP: &str = "127.0.0.86";

const DID: &str = "+62215550100";

struct Office {
    pbx: Pbx,
    provider_port: u16,
    other_port: u16,
    phone_port: u16,
    rates: PathBuf,
}

impl Drop for Office {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.rates);
    }
}

/// Two provider trunks; the DID is bound to "provider" and rings 201.
fn office() -> Office {
    office_with("", "", "")
}

/// [`office`] with more keys for the "provider" trunk, more trunks and rate lines.
fn office_with(provider_keys: &str, more_trunks: &str, more_rates: &str) -> Office {
    let sip_port = ports(BASE);
    let (provider_port, other_port, phone_port) = (sip_port + 5, sip_port + 6, sip_port + 7);
    let rates = std::env::temp_dir().join(format!(
        "kentongan-inbound-rates-{}-{sip_port}.csv",
        std::process::id()
    ));
    std::fs::write(
        &rates,
        format!("provider,+62,300,0,60\nother,+62,650,0,60\n{more_rates}"),
    )
    .unwrap();
    let extra = format!(
        r#"
[[trunk]]
name = "provider"
kind = "provider"
address = "{PROVIDER_IP}:{provider_port}"
max_channels = 4
{provider_keys}

[[trunk]]
name = "other"
kind = "provider"
address = "{OTHER_IP}:{other_port}"
{more_trunks}
[[did]]
number = "{DID}"
to = "201"
trunk = "provider"

[lcr]
rates = "{}"
country = "62"
area_code = "21"
"#,
        rates.display()
    );
    let pbx = Pbx::start_with(sip_port, &extra);
    pbx.add_user("201", "pw201");
    Office {
        pbx,
        provider_port,
        other_port,
        phone_port,
        rates,
    }
}

fn cdrs(o: &Office) -> Vec<serde_json::Value> {
    let out = o.pbx.cli(&["cdr", "list", "--json"], None);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// sipp sends one INVITE from `ip:port` as caller `+6281100011` to `number`.
fn invite(o: &Office, scenario: &str, ip: &str, port: u16, number: &str) -> (i32, String) {
    let inf = csv(
        &o.pbx,
        &format!("inbound-{port}.csv"),
        &["+6281100011", number],
    );
    let port_s = port.to_string();
    let media = (40000 + (port - BASE) * 10).to_string();
    sipp(
        &o.pbx,
        scenario,
        &[
            "-inf", &inf, "-i", ip, "-p", &port_s, "-mi", ip, "-mp", &media,
        ],
        Duration::from_secs(40),
    )
}

#[test]
fn a_call_from_the_provider_to_the_did_rings_201_and_audio_flows_both_ways() {
    need("baresip", "baresip");
    let o = office();
    let phone_wav = o.pbx.dir.join("phone.wav");
    tone_wav_hz(&phone_wav, 10, 523.0);
    let phone_dir = baresip_phone_with(
        &o.pbx,
        "201",
        PHONE_IP,
        o.phone_port,
        &phone_wav,
        false,
        "PCMA",
    );
    let mut phone = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&phone_dir)
            .args(["-t", "12"]),
        o.pbx.dir.join("baresip-201.log"),
    );
    assert_eq!(
        o.pbx
            .wait_metric("kentongan_registrations", 1, Duration::from_secs(10)),
        1,
        "201 did not register: {}",
        phone.output()
    );
    // The provider: a phone that does not register, at the trunk's address, calling the DID.
    let provider_wav = o.pbx.dir.join("provider.wav");
    tone_wav_hz(&provider_wav, 10, 440.0);
    let provider_dir = baresip_phone_with(
        &o.pbx,
        "prov",
        PROVIDER_IP,
        o.provider_port,
        &provider_wav,
        false,
        "PCMA",
    );
    std::fs::write(
        provider_dir.join("accounts"),
        format!("<sip:+6281100011@{PROVIDER_IP}>;regint=0;audio_codecs=PCMA\n"),
    )
    .unwrap();
    let mut provider = Proc::spawn(
        "baresip provider",
        Command::new("baresip").arg("-f").arg(&provider_dir).args([
            "-t",
            "8",
            "-e",
            &format!("/dial sip:{DID}@{}", o.pbx.sip()),
        ]),
        o.pbx.dir.join("baresip-provider.log"),
    );
    // While the call is up it holds one of the trunk's channels, in `trunk list` and /metrics.
    let busy = wait_for_value(Duration::from_secs(6), 1, || {
        trunk_row(&o, "provider")["channels_in_use"]
            .as_u64()
            .unwrap_or(0)
    });
    assert_eq!(busy, 1, "the inbound call holds no channel");
    assert_eq!(
        o.pbx
            .metric("kentongan_trunk_channels_in_use{trunk=\"provider\"}"),
        1
    );
    let text = String::from_utf8_lossy(&o.pbx.cli(&["trunk", "list"], None).stdout).into_owned();
    assert!(text.contains("provider\tprovider\t"), "{text}");
    assert!(text.contains("\t1/4\t"), "{text}");
    provider.wait(Duration::from_secs(20));
    phone.wait(Duration::from_secs(20));
    assert_eq!(trunk_row(&o, "provider")["channels_in_use"], 0);
    let heard_by = |dir: &PathBuf, who: &Proc| {
        let wav =
            baresip_decoded(dir).unwrap_or_else(|| panic!("nothing decoded: {}", who.output()));
        peak_tones(&wav, &[440.0, 523.0])
    };
    let at_phone = heard_by(&phone_dir, &phone);
    assert!(
        at_phone[0] > -35.0,
        "201 did not hear the provider: {at_phone:?}"
    );
    assert!(
        at_phone[1] < at_phone[0] - 20.0,
        "201 heard itself: {at_phone:?}"
    );
    let at_provider = heard_by(&provider_dir, &provider);
    assert!(
        at_provider[1] > -35.0,
        "the provider did not hear 201: {at_provider:?}"
    );
    assert!(
        at_provider[0] < at_provider[1] - 20.0,
        "the provider heard itself: {at_provider:?}"
    );
    let cdr = &cdrs(&o)[0];
    assert_eq!(cdr["disposition"], "answered", "{cdr}");
    assert_eq!(cdr["caller"], "+6281100011", "{cdr}");
    assert_eq!(cdr["callee"], "201", "{cdr}");
    assert_eq!(cdr["trunk"], "provider", "{cdr}");
    assert_eq!(cdr["number"], DID, "{cdr}");
    assert_eq!(cdr["class"], "inbound", "{cdr}");
}

#[test]
fn a_number_that_is_no_did_is_refused_and_nothing_goes_out() {
    let o = office();
    // The other provider would take any call the PBX sent out.
    let messages = o.pbx.dir.join("other-messages.log");
    let sink = RtpSink::start(OTHER_IP, 0);
    let other = sipp_phone(
        &o.pbx,
        "callee_answer.xml",
        OTHER_IP,
        o.other_port,
        &[
            "-key",
            "rtp_sink",
            &sink.addr.port().to_string(),
            "-trace_msg",
            "-message_file",
            messages.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    // An unlisted DID, an outside number (the toll-fraud attempt), an extension's number.
    for (i, number) in ["+62215550199", "081234567890", "0065123456", "201"]
        .iter()
        .enumerate()
    {
        let (code, out) = invite(
            &o,
            "inbound_unknown_did.xml",
            PROVIDER_IP,
            o.provider_port + 5 + i as u16,
            number,
        );
        assert_eq!(code, 0, "{number}: {out}");
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(other);
    let log = std::fs::read_to_string(&messages).unwrap_or_default();
    assert!(!log.contains("INVITE sip:"), "a call went out: {log}");
    assert_eq!(sink.stats().packets, 0);
    let rows = cdrs(&o);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in &rows {
        assert_eq!(r["disposition"], "refused", "{r}");
        assert_eq!(r["trunk"], "provider", "{r}");
        assert_eq!(r["class"], "inbound", "{r}");
    }
    assert_eq!(rows[1]["number"], "+6281234567890");
}

/// A provider that calls from a server other than its `address` is still the trunk when its
/// `match` lists that server: an unknown DID is refused as the trunk's call, not challenged
/// like a phone's (what a stranger's INVITE gets, tested above).
#[test]
fn a_call_from_a_provider_server_listed_in_match_is_the_trunks() {
    let o = office_with(&format!("match = [\"{PROVIDER_SECOND_IP}/32\"]"), "", "");
    let (code, out) = invite(
        &o,
        "inbound_unknown_did.xml",
        PROVIDER_SECOND_IP,
        o.provider_port + 20,
        "+62215550199",
    );
    assert_eq!(code, 0, "{out}\npbx: {}", o.pbx.log());
    let rows = cdrs(&o);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["disposition"], "refused", "{}", rows[0]);
    assert_eq!(rows[0]["trunk"], "provider", "{}", rows[0]);
}

/// A DID whose destination is an IVR menu: the PBX answers the provider's call itself and the
/// caller hears the menu's greeting (speech energy), the same as an internal caller would.
#[test]
fn a_did_to_an_ivr_is_answered_with_its_greeting() {
    need("espeak-ng", "espeak-ng");
    let port = ports(BASE + 900);
    let sounds = std::env::temp_dir()
        .join(format!(
            "kentongan-inbound-ivr-{}-{port}",
            std::process::id()
        ))
        .join("sounds");
    let o = office_with(
        "",
        &format!(
            "\n[prompts]\ndirectory = \"{}\"\nlanguage = \"en\"\n\
             [[ivr]]\nnumber = \"700\"\ngreeting = \"Welcome to the office.\"\n\
             language = \"en\"\noptions = {{ \"1\" = \"201\" }}\ninvalid = \"201\"\n\
             [[did]]\nnumber = \"+62215550199\"\nto = \"700\"\ntrunk = \"provider\"\n",
            sounds.display()
        ),
        "",
    );
    let keypad = Keypad::start(PROVIDER_IP);
    let inf = csv(
        &o.pbx,
        "inbound-ivr.csv",
        &[
            "+6281100011",
            "+62215550199",
            PROVIDER_IP,
            &keypad.port().to_string(),
            "4000",
        ],
    );
    let port_s = o.provider_port.to_string();
    let (code, out) = sipp(
        &o.pbx,
        "inbound_answered.xml",
        &["-inf", &inf, "-i", PROVIDER_IP, "-p", &port_s],
        Duration::from_secs(40),
    );
    assert_eq!(code, 0, "sipp: {out}\npbx: {}", o.pbx.log());
    let greeting = keypad.loud_seconds(0, keypad.heard_len());
    assert!(
        greeting >= 1.0,
        "greeting: {greeting} s loud\npbx: {}",
        o.pbx.log()
    );
    // The menu answered it, and its CDR still names the trunk and DID it came in on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = cdrs(&o);
        if !rows.is_empty() || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["trunk"], "provider", "{rows:?}");
    assert_eq!(rows[0]["disposition"], "answered", "{rows:?}");
    let _ = std::fs::remove_dir_all(sounds.parent().unwrap_or(&sounds));
}

#[test]
fn an_invite_from_an_address_that_is_no_trunk_is_challenged() {
    let o = office();
    let (code, out) = invite(&o, "inbound_challenged.xml", STRANGER_IP, o.phone_port, DID);
    assert_eq!(code, 0, "{out}");
    assert!(cdrs(&o).is_empty());
}

/// Extension 201 (sipp, digest) at PHONE_IP dials `number`; the call is answered and hung up.
fn dial(o: &Office, number: &str, port: u16) -> (i32, String) {
    dial_with(o, "call_caller.xml", number, port, &[])
}

/// [`dial`] with another caller scenario and more sipp arguments.
fn dial_with(o: &Office, scenario: &str, number: &str, port: u16, extra: &[&str]) -> (i32, String) {
    let inf = csv(
        &o.pbx,
        &format!("caller-{port}.csv"),
        &["201", "pbx.local", &auth("201", "pw201"), number],
    );
    let port_s = port.to_string();
    let media = (40000 + (port - BASE) * 10).to_string();
    let mut args = vec![
        "-inf", &inf, "-i", PHONE_IP, "-p", &port_s, "-mi", PHONE_IP, "-mp", &media,
    ];
    args.extend_from_slice(extra);
    sipp(&o.pbx, scenario, &args, Duration::from_secs(40))
}

/// A sipp UAS answering one call at `ip:port`, its messages logged.
fn answering(o: &Office, ip: &str, port: u16, sink: &RtpSink) -> (Proc, PathBuf) {
    let messages = o.pbx.dir.join(format!("uas-{port}-messages.log"));
    let p = sipp_phone(
        &o.pbx,
        "callee_answer.xml",
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

fn trunk_row(o: &Office, name: &str) -> serde_json::Value {
    let out = o.pbx.cli(&["trunk", "list", "--json"], None);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no trunk {name}"))
}

#[test]
fn a_goip_registers_with_the_trunk_account_and_carries_telkomsel_calls() {
    // The gateway is dearer per minute, but a Telkomsel number prefers the Telkomsel SIM.
    let o = office_with(
        "",
        "[[trunk]]\nname = \"goip-telkomsel\"\nkind = \"gateway\"\nusername = \"goip1\"\n\
         password = \"goip-pw\"\nmax_channels = 4\noperator = \"telkomsel\"\n",
        "goip-telkomsel,+62,500,0,60\n",
    );
    let goip_port = o.pbx.sip_port + 14;
    assert_eq!(trunk_row(&o, "goip-telkomsel")["state"], "not registered");
    let gauge = "kentongan_trunk_registered{trunk=\"goip-telkomsel\"}";
    assert_eq!(o.pbx.metric(gauge), 0);
    // A wrong password is refused like a phone's.
    let inf = csv(
        &o.pbx,
        "goip-wrong.csv",
        &["goip1", "pbx.local", &auth("goip1", "not-it")],
    );
    let (code, out) = sipp(
        &o.pbx,
        "register_wrong.xml",
        &["-inf", &inf, "-i", GOIP_IP, "-p", &goip_port.to_string()],
        Duration::from_secs(40),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(register(&o.pbx, "goip1", "goip-pw", GOIP_IP, goip_port), 0);
    let row = trunk_row(&o, "goip-telkomsel");
    assert_eq!(row["state"], "registered", "{row}");
    assert_eq!(row["address"], format!("{GOIP_IP}:{goip_port}"), "{row}");
    assert_eq!(o.pbx.metric(gauge), 1);
    let goip_sink = RtpSink::start(GOIP_IP, 0);
    let provider_sink = RtpSink::start(PROVIDER_IP, 0);
    let (mut goip, goip_log) = answering(&o, GOIP_IP, goip_port, &goip_sink);
    let (mut provider, provider_log) = answering(&o, PROVIDER_IP, o.provider_port, &provider_sink);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = dial(&o, "081234567890", o.phone_port);
    assert_eq!(code, 0, "Telkomsel call: {out}");
    let (code, out) = dial(&o, "081712345678", o.phone_port + 2);
    assert_eq!(code, 0, "XL call: {out}");
    assert_eq!(goip.wait(Duration::from_secs(20)), 0, "{}", goip.output());
    assert_eq!(
        provider.wait(Duration::from_secs(20)),
        0,
        "{}",
        provider.output()
    );
    let goip_seen = std::fs::read_to_string(&goip_log).unwrap();
    assert!(
        goip_seen.contains(&format!(
            "INVITE sip:+6281234567890@{GOIP_IP}:{goip_port} SIP/2.0"
        )),
        "{goip_seen}"
    );
    assert!(!goip_seen.contains("+6281712345678"), "{goip_seen}");
    let provider_seen = std::fs::read_to_string(&provider_log).unwrap();
    assert!(
        provider_seen.contains("INVITE sip:+6281712345678@"),
        "{provider_seen}"
    );
    let rows = cdrs(&o);
    assert_eq!(rows[0]["trunk"], "goip-telkomsel", "{rows:?}");
    assert_eq!(rows[1]["trunk"], "provider", "{rows:?}");
    // From the gateway's registered address, an INVITE is a trunk's (refused for an unknown
    // number, not challenged).
    let (code, out) = invite(
        &o,
        "inbound_unknown_did.xml",
        GOIP_IP,
        goip_port + 1,
        "0812999",
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_provider_that_stops_answering_keepalives_is_down_and_calls_skip_it() {
    // "provider" is the cheaper trunk, probed every second, and at first nobody is there.
    let o = office_with("keepalive_seconds = 1", "", "");
    let wait_for = |want: bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut row = trunk_row(&o, "provider");
        while row["reachable"] != want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            row = trunk_row(&o, "provider");
        }
        row
    };
    let row = wait_for(false);
    assert_eq!(row["reachable"], false, "{row}");
    assert_eq!(row["down_reason"], "no answer to OPTIONS", "{row}");
    assert_eq!(
        o.pbx
            .metric("kentongan_trunk_reachable{trunk=\"provider\"}"),
        0
    );
    let text = String::from_utf8_lossy(&o.pbx.cli(&["trunk", "list"], None).stdout).into_owned();
    assert!(text.contains("\tdown (no answer to OPTIONS)"), "{text}");
    // A national call goes straight to the dearer trunk, which has no keepalives.
    let sink = RtpSink::start(OTHER_IP, 0);
    let (mut other, _) = answering(&o, OTHER_IP, o.other_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (code, out) = dial(&o, "0227654321", o.phone_port);
    assert_eq!(code, 0, "{out}");
    assert_eq!(other.wait(Duration::from_secs(20)), 0, "{}", other.output());
    assert_eq!(cdrs(&o)[0]["trunk"], "other");
    // Not 8 s spent on the dead trunk first (the call itself lasts about 2 s).
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert!(o
        .pbx
        .log()
        .contains("trunk does not answer keepalives; next route"));
    // The provider comes back: its next answer makes it reachable again.
    let _provider = sipp_phone(
        &o.pbx,
        "keepalive_uas.xml",
        PROVIDER_IP,
        o.provider_port,
        &[],
    );
    let row = wait_for(true);
    assert_eq!(row["reachable"], true, "{row}");
    assert_eq!(
        o.pbx
            .metric("kentongan_trunk_reachable{trunk=\"provider\"}"),
        1
    );
    let text = String::from_utf8_lossy(&o.pbx.cli(&["trunk", "list"], None).stdout).into_owned();
    assert!(text.contains("\tup"), "{text}");
}

#[test]
fn our_registration_recovers_after_the_provider_restarts() {
    let registrar_port = ports(BASE + 2000);
    let o = office_with(
        "",
        &format!(
            "[[trunk]]\nname = \"reg\"\nkind = \"provider\"\naddress = \"{REGISTRAR_IP}:{registrar_port}\"\n\
             register = true\nusername = \"office1\"\npassword = \"trunk-pw-1\"\n"
        ),
        "",
    );
    let registrar = |n: u32| {
        let log = o.pbx.dir.join(format!("registrar-{n}.log"));
        sipp_phone(
            &o.pbx,
            "trunk_registrar.xml",
            REGISTRAR_IP,
            registrar_port,
            &["-trace_msg", "-message_file", log.to_str().unwrap()],
        )
    };
    // Two rounds with the first provider process (register, refresh 8 s later), then it is
    // gone: the next refresh meets nobody, and its retransmissions reach the new process,
    // which knows nothing of us and challenges afresh.
    let mut first = registrar(1);
    assert_eq!(first.wait(Duration::from_secs(30)), 0, "{}", first.output());
    std::thread::sleep(Duration::from_millis(300));
    let before = trunk_row(&o, "reg");
    assert_eq!(before["state"], "registered", "{before}");
    std::thread::sleep(Duration::from_secs(9));
    let mut second = registrar(2);
    assert_eq!(
        second.wait(Duration::from_secs(40)),
        0,
        "{}",
        second.output()
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = trunk_row(&o, "reg");
    assert_eq!(after["state"], "registered", "{after}");
    assert!(
        after["expires_at"].as_i64() > before["expires_at"].as_i64(),
        "{before} {after}"
    );
}

#[test]
fn a_second_outside_call_over_the_extensions_cap_gets_403() {
    let o = office_with(
        "",
        "\n[fraud]\nmax_outbound_calls_per_extension = 1\nmax_outbound_calls = 5\n",
        "",
    );
    let sink = RtpSink::start(PROVIDER_IP, 0);
    let (mut provider, _) = answering(&o, PROVIDER_IP, o.provider_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let long = std::thread::scope(|s| {
        let first = s.spawn(|| {
            dial_with(
                &o,
                "call_long.xml",
                "081234567890",
                o.phone_port,
                &["-d", "6000"],
            )
        });
        assert_eq!(
            o.pbx
                .wait_metric("kentongan_active_calls", 1, Duration::from_secs(10)),
            1
        );
        std::thread::sleep(Duration::from_millis(500));
        let (code, out) = dial_with(
            &o,
            "caller_forbidden.xml",
            "081234567891",
            o.phone_port + 2,
            &[],
        );
        assert_eq!(code, 0, "second call: {out}");
        first.join().unwrap()
    });
    assert_eq!(long.0, 0, "first call: {}", long.1);
    assert_eq!(
        provider.wait(Duration::from_secs(20)),
        0,
        "{}",
        provider.output()
    );
    assert_eq!(
        o.pbx
            .metric("kentongan_fraud_cap_trips_total{cap=\"outbound_calls_per_extension\"}"),
        1
    );
    let log = o.pbx.log();
    assert!(log.contains("fraud cap reached: call refused"), "{log}");
    let rows = cdrs(&o);
    let refused = rows
        .iter()
        .find(|r| r["disposition"] == "refused")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(refused["number"], "+6281234567891", "{refused}");
    // The cap counts calls in progress only: with the first call over, the next goes out.
    let (mut again, _) = answering(&o, PROVIDER_IP, o.provider_port, &sink);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = dial(&o, "081234567892", o.phone_port + 4);
    assert_eq!(code, 0, "{out}");
    assert_eq!(again.wait(Duration::from_secs(20)), 0, "{}", again.output());
}

/// One answered (or not) call record for the savings report's month.
#[allow(clippy::too_many_arguments)]
fn cdr(
    id: &str,
    start_ms: i64,
    seconds: f64,
    answered: bool,
    trunk: &str,
    number: &str,
    class: &str,
    cost: Option<i64>,
) -> kentongan_pbx::store::Write {
    use kentongan_pbx::store::{Cdr, OutboundCdr, Write};
    let mut c = Cdr::refused(id.into(), "201".into(), number.into(), start_ms, "answered");
    c.answer_ms = answered.then_some(start_ms);
    c.end_ms = start_ms + (seconds * 1000.0) as i64;
    c.duration_s = seconds;
    c.outbound = Some(OutboundCdr {
        trunk: Some(trunk.into()),
        number: number.into(),
        class: class.into(),
        cost: cost.map(|c| kentongan_lcr::money::Money::from_ten_thousandths(c * 10_000)),
    });
    Write::Cdr(c)
}

#[test]
fn report_savings_over_a_month_of_cdrs_matches_the_hand_computed_table() {
    let dir = std::env::temp_dir().join(format!("kentongan-savings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rates = dir.join("rates.csv");
    std::fs::write(
        &rates,
        "cheap,+62,300,0,60\ndear,+62,650,0,60\ndear,+65,900,0,60\ngoip,+62812,200,0,60\n",
    )
    .unwrap();
    let db = dir.join("pbx.db");
    let config = dir.join("pbx.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\ndomain = \"pbx.local\"\n[storage]\ndatabase = \"{}\"\n\
             [[trunk]]\nname = \"cheap\"\nkind = \"provider\"\naddress = \"127.0.0.1:5091\"\n\
             [[trunk]]\nname = \"dear\"\nkind = \"provider\"\naddress = \"127.0.0.1:5092\"\n\
             [[trunk]]\nname = \"goip\"\nkind = \"gateway\"\nusername = \"goip1\"\npassword = \"pw\"\n\
             [lcr]\nrates = \"{}\"\ncountry = \"62\"\narea_code = \"21\"\n",
            db.display(),
            rates.display()
        ),
    )
    .unwrap();
    // Mid-month at 10:00 UTC: no time zone moves them out of November.
    let nov = 1_794_391_200_000; // 2026-11-11 10:00 UTC
    let day = 86_400_000;
    let mut store = kentongan_pbx::store::Store::open(&db).unwrap();
    store
        .apply(
            &[
                // cheap: 90 s to a mobile, billed 2 min × 300 = 600; dear would be 1300.
                cdr(
                    "a",
                    nov,
                    90.0,
                    true,
                    "cheap",
                    "+6281234567890",
                    "mobile",
                    Some(600),
                ),
                // cheap: 30 s local, 1 min × 300 = 300; dear 650.
                cdr(
                    "b",
                    nov + day,
                    30.0,
                    true,
                    "cheap",
                    "+62215551234",
                    "local",
                    Some(300),
                ),
                // dear: 2 min to Singapore at 900 = 1800; nobody else has +65.
                cdr(
                    "c",
                    nov + 2 * day,
                    120.0,
                    true,
                    "dear",
                    "+6512345678",
                    "international",
                    Some(1800),
                ),
                // goip: 1 min to Telkomsel at 200; dear 650.
                cdr(
                    "d",
                    nov + 3 * day,
                    60.0,
                    true,
                    "goip",
                    "+6281299999999",
                    "mobile",
                    Some(200),
                ),
                // Not counted: an inbound call, an unanswered attempt, a call in October.
                cdr(
                    "e",
                    nov,
                    300.0,
                    true,
                    "cheap",
                    "+62215550100",
                    "inbound",
                    None,
                ),
                cdr(
                    "f",
                    nov,
                    0.0,
                    false,
                    "dear",
                    "+6281234567891",
                    "mobile",
                    None,
                ),
                cdr(
                    "g",
                    nov - 20 * day,
                    60.0,
                    true,
                    "cheap",
                    "+6281234567892",
                    "mobile",
                    Some(300),
                ),
            ],
            nov,
        )
        .unwrap();
    drop(store);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(pbx_binary())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value =
        serde_json::from_str(&run(&["report", "savings", "--month", "2026-11", "--json"])).unwrap();
    let line = |l: &serde_json::Value| {
        (
            l["trunk"].as_str().unwrap().to_owned(),
            l["calls"].as_u64().unwrap(),
            l["seconds"].as_u64().unwrap(),
            l["actual"].as_str().unwrap().to_owned(),
            l["most_expensive"].as_str().unwrap().to_owned(),
            l["saved"].as_str().unwrap().to_owned(),
        )
    };
    let got: Vec<_> = json["trunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(line)
        .collect();
    let want = |t: &str, c, s, a: &str, m: &str, v: &str| {
        (t.to_owned(), c, s, a.to_owned(), m.to_owned(), v.to_owned())
    };
    assert_eq!(
        got,
        vec![
            want("cheap", 2, 120, "900.00", "1950.00", "1050.00"),
            want("dear", 1, 120, "1800.00", "1800.00", "0.00"),
            want("goip", 1, 60, "200.00", "650.00", "450.00"),
        ]
    );
    assert_eq!(
        line(&json["total"]),
        want("total", 4, 300, "2900.00", "4400.00", "1500.00")
    );
    let text = run(&["report", "savings", "--month", "2026-11"]);
    assert_eq!(
        text,
        "savings by least-cost routing, 2026-11\n\
         trunk  calls  minutes   actual  most expensive    saved\n\
         cheap      2     2:00   900.00         1950.00  1050.00\n\
         dear       1     2:00  1800.00         1800.00     0.00\n\
         goip       1     1:00   200.00          650.00   450.00\n\
         -------------------------------------------------------\n\
         total      4     5:00  2900.00         4400.00  1500.00\n"
    );
    let empty: serde_json::Value =
        serde_json::from_str(&run(&["report", "savings", "--month", "2026-10", "--json"])).unwrap();
    assert_eq!(
        empty["total"]["calls"], 1,
        "October has the one call of the 22nd"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
