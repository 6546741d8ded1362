//! Attended transfer (RFC 5589 §7, `Replaces` RFC 3891) with sipp phones. 202 is the
//! transferor: its consultation call to 203 (`attended_consult.xml`, which logs its dialog
//! with the PBX) and its call to 201 (`attended_transferor.xml`: hold, then REFER with
//! `Replaces` naming the consultation dialog). 201 and 203 answer with their media at a
//! `Keypad` each, sending 1500 Hz and 2100 Hz (PCMA). After the REFER, 201 and 203 must
//! hear each other's tone through the relay (decoded, Goertzel), 202's two calls end with
//! BYEs, and 203 hanging up ends the joined call. Needs sipp.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

const BASE: u16 = 48060;
const A_IP: &str = "127.0.0.110";
const B_IP: &str = "127.0.0.111";
const C_IP: &str = "127.0.0.112";
const D_IP: &str = "127.0.0.113";

/// A sipp client scenario run in the background from `ip:port` (`-trace_logs` into `log`).
fn sipp_client(pbx: &Pbx, scenario: &str, ip: &str, port: u16, inf: &str, log: &str) -> Proc {
    let mut cmd = Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture(scenario))
        .args(["-inf", inf, "-i", ip, "-p", &port.to_string(), "-mi", ip])
        .args(["-m", "1", "-nostdin", "-timeout", "40", "-timeout_error"])
        .args(["-trace_logs", "-log_file", log])
        .current_dir(&pbx.dir);
    Proc::spawn(
        scenario,
        &mut cmd,
        pbx.dir.join(format!("sipp-{scenario}.out")),
    )
}

/// The value after `key` in the consultation's `DIALOG ...` log line, once it is there.
fn dialog_field(line: &str, key: &str) -> String {
    let start = line.find(key).map(|i| i + key.len()).unwrap_or(line.len());
    line[start..]
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Listens for `listen`, then asserts each phone heard the other's tone for at least `min_s`
/// seconds: `(phone, its extension, the tone it should hear)`. Returns what each heard.
fn hear_each_other(
    pbx: &Pbx,
    x: (&Keypad, &str, f64),
    y: (&Keypad, &str, f64),
    listen: Duration,
    min_s: f64,
) -> (f64, f64) {
    let (x_from, y_from) = (x.0.heard_len(), y.0.heard_len());
    std::thread::sleep(listen);
    let x_heard = x.0.seconds_of(x_from, x.2);
    let y_heard = y.0.seconds_of(y_from, y.2);
    assert!(
        x_heard >= min_s,
        "{} heard {} for {x_heard} s\n{}",
        x.1,
        y.1,
        pbx.log()
    );
    assert!(
        y_heard >= min_s,
        "{} heard {} for {y_heard} s\n{}",
        y.1,
        x.1,
        pbx.log()
    );
    (x_heard, y_heard)
}

#[test]
fn an_attended_transfer_joins_201_and_203_through_the_relay() {
    need("sipp", "sip-tester");
    let pbx = Pbx::start(ports(BASE));
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    let port = ports(BASE + 3000);
    let a = Keypad::start_with_tone(A_IP, 1500.0);
    let c = Keypad::start_with_tone(C_IP, 2100.0);
    assert_eq!(register(&pbx, "201", "pw201", A_IP, port), 0);
    assert_eq!(register(&pbx, "203", "pw203", C_IP, port), 0);
    let mut transferee = sipp_phone(
        &pbx,
        "callee_answer.xml",
        A_IP,
        port,
        &["-key", "rtp_sink", &a.port().to_string()],
    );
    let mut target = sipp_phone(
        &pbx,
        "callee_hangup.xml",
        C_IP,
        port,
        &["-key", "rtp_sink", &c.port().to_string(), "-d", "14000"],
    );
    pbx.wait_metric("kentongan_registrations", 2, Duration::from_secs(10));
    let log = |p: &Proc| format!("{}\npbx:\n{}", p.output(), pbx.log());

    // Call 2 first, so its dialog is known when call 1's REFER is written.
    let inf = csv(
        &pbx,
        "consult.csv",
        &["202", "pbx.local", &auth("202", "pw202"), "203"],
    );
    let consult_log = pbx.dir.join("consult.log");
    let mut consult = sipp_client(
        &pbx,
        "attended_consult.xml",
        B_IP,
        port + 1,
        &inf,
        &consult_log.display().to_string(),
    );
    let (call_id, to_tag, from_tag) = logged_dialog(&consult_log, &consult, &pbx);
    // A URI header value: its '@' escaped.
    let call_id = call_id.replace('@', "%40");

    let inf = csv(
        &pbx,
        "transferor.csv",
        &[
            "202",
            "pbx.local",
            &auth("202", "pw202"),
            "201",
            "203",
            &call_id,
            &to_tag,
            &from_tag,
        ],
    );
    let mut transferor = sipp_client(
        &pbx,
        "attended_transferor.xml",
        B_IP,
        port + 2,
        &inf,
        &pbx.dir.join("transferor.log").display().to_string(),
    );
    assert_eq!(
        transferor.wait(Duration::from_secs(30)),
        0,
        "202 (call 1): {}",
        log(&transferor)
    );
    assert_eq!(
        consult.wait(Duration::from_secs(10)),
        0,
        "202 (call 2): {}",
        log(&consult)
    );
    assert!(
        pbx.log().contains("attended transfer done"),
        "{}",
        pbx.log()
    );
    let (a_hears_c, _) = hear_each_other(
        &pbx,
        (&a, "201", 2100.0),
        (&c, "203", 1500.0),
        Duration::from_secs(4),
        3.0,
    );
    assert!(
        pbx.log().contains("the held phone resumed"),
        "201 was not re-INVITEd off hold: {}",
        pbx.log()
    );
    // Before the transfer 201 heard music on hold, never 203.
    assert!(
        a.seconds_of(0, 2100.0) - a_hears_c < 0.5,
        "201 heard 203 too early"
    );

    // 203 hangs up: the PBX ends 201's side too.
    assert_eq!(
        target.wait(Duration::from_secs(30)),
        0,
        "203: {}",
        log(&target)
    );
    assert_eq!(
        transferee.wait(Duration::from_secs(10)),
        0,
        "201: {}",
        log(&transferee)
    );
    // The CDR: 202's consultation call, 202 -> 201 until the transfer, then 203 with 201.
    let rows = cdr_rows(&pbx);
    let row = |caller: &str, callee: &str| {
        rows.iter()
            .find(|r| r["caller"] == caller && r["callee"] == callee)
            .unwrap_or_else(|| panic!("no {caller} -> {callee} row: {rows:#?}"))
    };
    let consult = row("202", "203");
    assert_eq!(consult["disposition"], "answered", "{consult}");
    assert_eq!(consult["transferred_by"], "202", "{consult}");
    let before = row("202", "201");
    assert_eq!(before["disposition"], "transferred", "{before}");
    assert!(before.get("transferred_by").is_none(), "{before}");
    let joined = row("203", "201");
    assert_eq!(joined["disposition"], "answered", "{joined}");
    assert_eq!(joined["transferred_by"], "202", "{joined}");
    assert_eq!(joined["transfer_kind"], "attended", "{joined}");
    assert_eq!(joined["call_id"], before["call_id"], "one call, two rows");
}

/// `cdr list --json`, parsed.
fn cdr_rows(pbx: &Pbx) -> Vec<serde_json::Value> {
    let out = pbx.cli(&["cdr", "list", "--json"], None);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cdr list --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
#[test]
fn a_refer_replacing_an_unknown_dialog_is_told_481() {
    need("sipp", "sip-tester");
    let pbx = Pbx::start(ports(BASE));
    for ext in ["201", "202"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    let port = ports(BASE + 3000);
    let a = Keypad::start_with_tone(A_IP, 1500.0);
    assert_eq!(register(&pbx, "201", "pw201", A_IP, port), 0);
    let mut transferee = sipp_phone(
        &pbx,
        "callee_answer.xml",
        A_IP,
        port,
        &["-key", "rtp_sink", &a.port().to_string()],
    );
    pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10));
    let inf = csv(
        &pbx,
        "transferor.csv",
        &[
            "202",
            "pbx.local",
            &auth("202", "pw202"),
            "201",
            "203",
            "no-such-call%40127.0.0.111",
            "x",
            "y",
        ],
    );
    let mut transferor = sipp_client(
        &pbx,
        "attended_refused.xml",
        B_IP,
        port + 2,
        &inf,
        &pbx.dir.join("refused.log").display().to_string(),
    );
    let log = |p: &Proc| format!("{}\npbx:\n{}", p.output(), pbx.log());
    assert_eq!(
        transferor.wait(Duration::from_secs(30)),
        0,
        "202: {}",
        log(&transferor)
    );
    assert_eq!(
        transferee.wait(Duration::from_secs(10)),
        0,
        "201: {}",
        log(&transferee)
    );
    assert!(
        pbx.log().contains("attended transfer refused"),
        "{}",
        pbx.log()
    );
}

/// Waits for the `DIALOG ...` line a scenario logs with `-trace_logs`: (Call-ID, To tag,
/// From tag) of its dialog with the PBX.
fn logged_dialog(path: &std::path::Path, who: &Proc, pbx: &Pbx) -> (String, String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("DIALOG CID=")) {
            let ids = (
                dialog_field(l, "CID="),
                dialog_field(l, "TOtag="),
                dialog_field(l, "FROMtag="),
            );
            assert!(!ids.1.is_empty() && !ids.2.is_empty(), "{l}");
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "no call: {}\npbx:\n{}",
            who.output(),
            pbx.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_invite_with_replaces_takes_over_a_leg_and_an_unknown_one_gets_481() {
    need("sipp", "sip-tester");
    let pbx = Pbx::start(ports(BASE));
    for ext in ["201", "202", "204"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    let port = ports(BASE + 3000);
    let a = Keypad::start_with_tone(A_IP, 1500.0);
    let d = Keypad::start_with_tone(D_IP, 2100.0);
    assert_eq!(register(&pbx, "201", "pw201", A_IP, port), 0);
    let mut callee = sipp_phone(
        &pbx,
        "callee_answer.xml",
        A_IP,
        port,
        &["-key", "rtp_sink", &a.port().to_string()],
    );
    pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10));
    let log = |p: &Proc| format!("{}\npbx:\n{}", p.output(), pbx.log());
    let inf = csv(
        &pbx,
        "replaced.csv",
        &["202", "pbx.local", &auth("202", "pw202"), "201"],
    );
    let replaced_log = pbx.dir.join("replaced.log");
    let mut replaced = sipp_client(
        &pbx,
        "replaced_caller.xml",
        B_IP,
        port + 1,
        &inf,
        &replaced_log.display().to_string(),
    );
    let (call_id, to_tag, from_tag) = logged_dialog(&replaced_log, &replaced, &pbx);

    // A made-up dialog first: 481, and the call goes on.
    let inf = csv(
        &pbx,
        "unknown.csv",
        &[
            "204",
            "pbx.local",
            &auth("204", "pw204"),
            "201",
            &call_id,
            "not-our-tag",
            &from_tag,
            D_IP,
        ],
    );
    let (code, out) = sipp(
        &pbx,
        "replacing_unknown.xml",
        &[
            "-inf",
            &inf,
            "-i",
            D_IP,
            "-p",
            &(port + 2).to_string(),
            "-key",
            "rtp_sink",
            &d.port().to_string(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "204 (unknown dialog): {out}\npbx:\n{}", pbx.log());

    let inf = csv(
        &pbx,
        "replacing.csv",
        &[
            "204",
            "pbx.local",
            &auth("204", "pw204"),
            "201",
            &call_id,
            &to_tag,
            &from_tag,
            D_IP,
        ],
    );
    let mut cmd = Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture("replacing_invite.xml"))
        .args(["-inf", &inf, "-i", D_IP, "-p", &(port + 3).to_string()])
        .args(["-key", "rtp_sink", &d.port().to_string(), "-d", "6000"])
        .args(["-m", "1", "-nostdin", "-timeout", "40", "-timeout_error"])
        .current_dir(&pbx.dir);
    let mut replacing = Proc::spawn("sipp 204", &mut cmd, pbx.dir.join("sipp-replacing.out"));
    // 202's leg is replaced: the PBX hangs it up.
    assert_eq!(
        replaced.wait(Duration::from_secs(20)),
        0,
        "202: {}",
        log(&replaced)
    );
    assert!(
        pbx.log().contains("a leg of the call was replaced"),
        "{}",
        pbx.log()
    );
    hear_each_other(
        &pbx,
        (&a, "201", 2100.0),
        (&d, "204", 1500.0),
        Duration::from_secs(3),
        2.0,
    );
    // 204 hangs up at its -d: the PBX ends 201's side.
    assert_eq!(
        replacing.wait(Duration::from_secs(20)),
        0,
        "204: {}",
        log(&replacing)
    );
    assert_eq!(
        callee.wait(Duration::from_secs(10)),
        0,
        "201: {}",
        log(&callee)
    );
}

#[test]
fn in_call_codes_record_with_star_one_and_transfer_with_hash_hash() {
    need("sipp", "sip-tester");
    const CALLER_IP: &str = "127.0.0.114";
    const CALLEE_IP: &str = "127.0.0.115";
    const TARGET_IP: &str = "127.0.0.116";
    let rec_dir = std::env::temp_dir().join(format!("kentongan-incall-rec-{}", ports(0)));
    let pbx = Pbx::start_with(
        ports(BASE),
        &format!(
            "\n[features]\nin_call = true\n[recording]\ndirectory = \"{}\"\n",
            rec_dir.display()
        ),
    );
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    let port = ports(BASE + 3000);
    let a = Keypad::start_with_tone(CALLER_IP, 1500.0);
    let b = Keypad::start_with_tone(TARGET_IP, 900.0);
    let c = Keypad::start_with_tone(CALLEE_IP, 2100.0);
    assert_eq!(register(&pbx, "203", "pw203", CALLEE_IP, port), 0);
    assert_eq!(register(&pbx, "202", "pw202", TARGET_IP, port), 0);
    let _callee = sipp_phone(
        &pbx,
        "callee_answer.xml",
        CALLEE_IP,
        port,
        &["-key", "rtp_sink", &c.port().to_string()],
    );
    let _target = sipp_phone(
        &pbx,
        "callee_answer.xml",
        TARGET_IP,
        port,
        &["-key", "rtp_sink", &b.port().to_string()],
    );
    pbx.wait_metric("kentongan_registrations", 2, Duration::from_secs(10));
    let inf = csv(
        &pbx,
        "incall.csv",
        &[
            "201",
            "pbx.local",
            &auth("201", "pw201"),
            "203",
            CALLER_IP,
            &a.port().to_string(),
        ],
    );
    let caller_log = pbx.dir.join("incall.log");
    let mut caller = sipp_client(
        &pbx,
        "incall_caller.xml",
        CALLER_IP,
        port + 1,
        &inf,
        &caller_log.display().to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let media_port: u16 = loop {
        let text = std::fs::read_to_string(&caller_log).unwrap_or_default();
        if let Some(p) = text
            .lines()
            .find_map(|l| l.strip_prefix("PBX m=audio "))
            .and_then(|p| p.trim().parse().ok())
        {
            break p;
        }
        assert!(Instant::now() < deadline, "no call: {}", caller.output());
        std::thread::sleep(Duration::from_millis(100));
    };
    a.aim(std::net::SocketAddr::from(([127, 0, 0, 1], media_port)));
    std::thread::sleep(Duration::from_secs(1));
    // *1: recording on; *1 again: off, and the recording is written.
    a.press("*1");
    std::thread::sleep(Duration::from_secs(2));
    a.press("*1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let recordings = loop {
        let out = pbx.cli(&["recordings", "list", "--json"], None);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if !list.is_empty() || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(recordings.len(), 1, "{recordings:?}\n{}", pbx.log());
    assert_eq!(recordings[0]["caller"], "201", "{recordings:?}");

    // ##202#: 203 is transferred to 202 and 201 is let go. 201's keypad goes on sending
    // after its BYE, as a late phone would: the relay must keep it away from 202.
    a.press("##202#");
    assert_eq!(
        caller.wait(Duration::from_secs(15)),
        0,
        "201: {}",
        caller.output()
    );
    assert!(pbx.log().contains("blind transfer done"), "{}", pbx.log());
    let c_from = c.heard_len();
    std::thread::sleep(Duration::from_secs(3));
    let b_hears_c = b.seconds_of(0, 2100.0);
    let c_hears_b = c.seconds_of(c_from, 900.0);
    assert!(
        b_hears_c >= 2.0,
        "202 heard 203 for {b_hears_c} s\n{}",
        pbx.log()
    );
    assert!(
        c_hears_b >= 2.0,
        "203 heard 202 for {c_hears_b} s\n{}",
        pbx.log()
    );
    let rows = cdr_rows(&pbx);
    assert!(
        rows.iter()
            .any(|r| r["caller"] == "201" && r["disposition"] == "transferred"),
        "{rows:#?}"
    );
    let _ = std::fs::remove_dir_all(&rec_dir);
}

/// `*2` + number tests: 201 (`incall_caller.xml`, tone 1500 Hz) calls 202, whose media is a
/// keypad (900 Hz) that types the code; 203 (2100 Hz) is the target. Each phone is a sipp
/// UAS or UAC for signalling, its audio the test's (decoded, Goertzel).
struct StarTwo {
    pbx: Pbx,
    a: Keypad,
    b: Keypad,
    c: Keypad,
    caller: Proc,
    transferor: Proc,
    target: Proc,
}

const STAR2_A: &str = "127.0.0.117";
const STAR2_B: &str = "127.0.0.118";
const STAR2_C: &str = "127.0.0.119";

/// Sets up 201 -> 202 answered with audio both ways. 202 hangs up `b_ms` after answering;
/// 203 runs `c_scenario` (with `-d c_ms`).
fn star_two_call(b_ms: u32, c_scenario: &str, c_ms: u32) -> StarTwo {
    need("sipp", "sip-tester");
    let pbx = Pbx::start_with(ports(BASE), "\n[features]\nin_call = true\n");
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    let port = ports(BASE + 3000);
    let a = Keypad::start_with_tone(STAR2_A, 1500.0);
    let b = Keypad::start_with_tone(STAR2_B, 900.0);
    let c = Keypad::start_with_tone(STAR2_C, 2100.0);
    assert_eq!(register(&pbx, "202", "pw202", STAR2_B, port), 0);
    assert_eq!(register(&pbx, "203", "pw203", STAR2_C, port), 0);
    let transferor = sipp_phone(
        &pbx,
        "callee_hangup.xml",
        STAR2_B,
        port,
        &[
            "-key",
            "rtp_sink",
            &b.port().to_string(),
            "-d",
            &b_ms.to_string(),
        ],
    );
    let target = sipp_phone(
        &pbx,
        c_scenario,
        STAR2_C,
        port,
        &[
            "-key",
            "rtp_sink",
            &c.port().to_string(),
            "-d",
            &c_ms.to_string(),
        ],
    );
    pbx.wait_metric("kentongan_registrations", 2, Duration::from_secs(10));
    let inf = csv(
        &pbx,
        "star2.csv",
        &[
            "201",
            "pbx.local",
            &auth("201", "pw201"),
            "202",
            STAR2_A,
            &a.port().to_string(),
        ],
    );
    let caller_log = pbx.dir.join("star2.log");
    let caller = sipp_client(
        &pbx,
        "incall_caller.xml",
        STAR2_A,
        port + 1,
        &inf,
        &caller_log.display().to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let media_port: u16 = loop {
        let text = std::fs::read_to_string(&caller_log).unwrap_or_default();
        if let Some(p) = text
            .lines()
            .find_map(|l| l.strip_prefix("PBX m=audio "))
            .and_then(|p| p.trim().parse().ok())
        {
            break p;
        }
        assert!(Instant::now() < deadline, "no call: {}", caller.output());
        std::thread::sleep(Duration::from_millis(100));
    };
    a.aim(std::net::SocketAddr::from(([127, 0, 0, 1], media_port)));
    b.wait_answered();
    StarTwo {
        pbx,
        a,
        b,
        c,
        caller,
        transferor,
        target,
    }
}

fn wait_log(pbx: &Pbx, line: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !pbx.log().contains(line) {
        assert!(Instant::now() < deadline, "no {line:?}:\n{}", pbx.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn star_two_consults_the_target_and_joins_it_when_the_transferor_hangs_up() {
    // 202 hangs up 7 s after answering; 203 hangs up 10 s after it answers.
    let mut t = star_two_call(7000, "callee_hangup.xml", 10000);
    let (a, b, c) = (&t.a, &t.b, &t.c);
    std::thread::sleep(Duration::from_millis(500));
    t.b.press("*2203#");
    wait_log(
        &t.pbx,
        "the target answered; consulting",
        Duration::from_secs(5),
    );
    let (a0, b0, c0) = (a.heard_len(), b.heard_len(), c.heard_len());
    std::thread::sleep(Duration::from_millis(2500));
    let b_hears_c = b.seconds_of(b0, 2100.0);
    let c_hears_b = c.seconds_of(c0, 900.0);
    assert!(
        b_hears_c >= 1.5,
        "202 heard 203 for {b_hears_c} s\n{}",
        t.pbx.log()
    );
    assert!(
        c_hears_b >= 1.5,
        "203 heard 202 for {c_hears_b} s\n{}",
        t.pbx.log()
    );
    // 201 is on hold: music, neither 202 nor 203.
    let a_hears_b = a.seconds_of(a0, 900.0);
    let a_hears_c = a.seconds_of(a0, 2100.0);
    assert!(
        a_hears_b < 0.5 && a_hears_c < 0.5,
        "201 on hold heard 202 for {a_hears_b} s, 203 for {a_hears_c} s"
    );
    assert!(
        a.loud_seconds(a0, a.heard_len()) >= 1.0,
        "201 heard no music on hold"
    );

    // 202 hangs up: 201 and 203 are joined.
    assert_eq!(
        t.transferor.wait(Duration::from_secs(15)),
        0,
        "202: {}",
        t.transferor.output()
    );
    wait_log(
        &t.pbx,
        "attended transfer by keys done",
        Duration::from_secs(5),
    );
    hear_each_other(
        &t.pbx,
        (a, "201", 2100.0),
        (c, "203", 1500.0),
        Duration::from_secs(3),
        2.0,
    );

    // 203 hangs up: 201 gets the BYE.
    assert_eq!(
        t.target.wait(Duration::from_secs(20)),
        0,
        "203: {}",
        t.target.output()
    );
    assert_eq!(
        t.caller.wait(Duration::from_secs(10)),
        0,
        "201: {}",
        t.caller.output()
    );
    let rows = cdr_rows(&t.pbx);
    let row = |caller: &str, callee: &str| {
        rows.iter()
            .find(|r| r["caller"] == caller && r["callee"] == callee)
            .unwrap_or_else(|| panic!("no {caller} -> {callee} row: {rows:#?}"))
    };
    let before = row("201", "202");
    assert_eq!(before["disposition"], "transferred", "{before}");
    let consult = row("202", "203");
    assert_eq!(consult["disposition"], "answered", "{consult}");
    assert_eq!(consult["transferred_by"], "202", "{consult}");
    let joined = row("201", "203");
    assert_eq!(joined["disposition"], "answered", "{joined}");
    assert_eq!(joined["transferred_by"], "202", "{joined}");
    assert_eq!(joined["transfer_kind"], "attended", "{joined}");
    assert_eq!(joined["call_id"], before["call_id"], "one call, two rows");
}

#[test]
fn star_two_to_a_busy_target_gives_the_transferor_its_call_back() {
    // 202 hangs up 8 s after answering; 203 answers 486.
    let mut t = star_two_call(8000, "callee_busy.xml", 0);
    let (a, b) = (&t.a, &t.b);
    std::thread::sleep(Duration::from_millis(500));
    b.press("*2203#");
    wait_log(&t.pbx, "back to the held party", Duration::from_secs(5));
    assert_eq!(
        t.target.wait(Duration::from_secs(10)),
        0,
        "203: {}",
        t.target.output()
    );
    hear_each_other(
        &t.pbx,
        (a, "201", 900.0),
        (b, "202", 1500.0),
        Duration::from_millis(2500),
        1.5,
    );
    // 202 hangs up as in any call, and 201 gets the BYE.
    assert_eq!(
        t.transferor.wait(Duration::from_secs(15)),
        0,
        "202: {}",
        t.transferor.output()
    );
    assert_eq!(
        t.caller.wait(Duration::from_secs(10)),
        0,
        "201: {}",
        t.caller.output()
    );
    let rows = cdr_rows(&t.pbx);
    assert!(
        rows.iter()
            .any(|r| r["caller"] == "202" && r["callee"] == "203" && r["disposition"] == "busy"),
        "{rows:#?}"
    );
    let call = rows
        .iter()
        .find(|r| r["caller"] == "201" && r["callee"] == "202")
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(call["disposition"], "answered", "{call}");
    assert!(call.get("transferred_by").is_none(), "{call}");
}
