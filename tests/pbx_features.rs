//! Call forwarding and do not disturb with real peers: forward all set from the CLI while the
//! daemon runs (a call to 201 rings 202 instead, with audio through the relay), DND switched
//! on by a baresip phone dialling `*78` (it hears the confirmation, decoded and checked by
//! frequency, then the PBX hangs up) so the next call gets 486, and `*79` (sipp) clearing it;
//! forward on busy (201 answers 486, 202 gets the call), forward on no answer (201 rings past
//! its `forward_no_answer_seconds`, is cancelled, 202 answers), forward on unregistered, and a
//! 201 → 202 → 201 loop (set with `*72` from a phone and the CLI) refused with 482; call
//! waiting off (`*71`): a call to 201 while it is in an answered call gets 486, until `*70`.
//! `settings show 201 --json` is checked after every change, and the CLI's errors name what is
//! wrong. Needs sipp and baresip.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

const BASE: u16 = 35060;

/// A daemon with 201, 202 and 203; prompts from an empty folder, so every prompt is the
/// PBX's two-tone cue (660 Hz then 880 Hz), which the tests can recognise by frequency.
fn pbx(extra_tables: &str) -> Pbx {
    let sounds = std::env::temp_dir().join(format!("kentongan-no-sounds-{}", std::process::id()));
    let pbx = Pbx::start_with(
        ports(BASE),
        &format!(
            "\n[prompts]\ndirectory = \"{}\"\n{extra_tables}",
            sounds.display()
        ),
    );
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    pbx
}

fn settings(pbx: &Pbx, ext: &str) -> serde_json::Value {
    let out = pbx.cli(&["settings", "show", ext, "--json"], None);
    assert!(
        out.status.success(),
        "settings show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cli_ok(pbx: &Pbx, args: &[&str]) {
    let out = pbx.cli(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ext` (password pw<ext>) at 127.0.0.2 dials `dialled` with a sipp caller scenario.
fn call(pbx: &Pbx, ext: &str, scenario: &str, dialled: &str) -> (i32, String) {
    let inf = csv(
        pbx,
        &format!("call-{ext}-{}.csv", ports(0)),
        &[ext, "pbx.local", &auth(ext, &format!("pw{ext}")), dialled],
    );
    let port = ports(BASE + 5000).to_string();
    let media = (ports(BASE + 6000) + 1000).to_string();
    sipp(
        pbx,
        scenario,
        &[
            "-inf",
            &inf,
            "-i",
            "127.0.0.2",
            "-p",
            &port,
            "-mi",
            "127.0.0.2",
            "-mp",
            &media,
        ],
        Duration::from_secs(40),
    )
}

/// A sipp phone for `ext` at `ip`, registered first; returns it and the RTP sink it answers
/// with (for `callee_answer.xml`).
fn phone(pbx: &Pbx, ext: &str, ip: &str, scenario: &str) -> (Proc, RtpSink) {
    let port = ports(BASE + 5000);
    assert_eq!(register(pbx, ext, &format!("pw{ext}"), ip, port), 0);
    let sink = RtpSink::start(ip, 0);
    let p = sipp_phone(
        pbx,
        scenario,
        ip,
        port,
        &["-key", "rtp_sink", &sink.addr.port().to_string()],
    );
    (p, sink)
}

/// Waits for a sipp phone's scenario to end, and fails with its output unless it passed.
fn ended_ok(phone: &mut Proc, who: &str) {
    assert_eq!(
        phone.wait(Duration::from_secs(20)),
        0,
        "{who}: {}",
        phone.output()
    );
}

fn cdr(pbx: &Pbx) -> Vec<serde_json::Value> {
    let out = pbx.cli(&["cdr", "list", "--json"], None);
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
}

#[test]
fn forward_all_from_the_cli_sends_a_call_for_201_to_202() {
    let pbx = pbx("");
    let (mut p202, sink) = phone(&pbx, "202", "127.0.0.4", "callee_answer.xml");
    cli_ok(&pbx, &["forward", "set", "201", "all", "202"]);
    let s = settings(&pbx, "201");
    assert_eq!(s["forward_all"], "202", "{s}");
    assert_eq!(s["forward_busy"], serde_json::Value::Null, "{s}");
    // The running daemon follows the CLI within a second.
    std::thread::sleep(Duration::from_millis(1200));
    let (code, out) = call(&pbx, "203", "call_caller.xml", "201");
    assert_eq!(code, 0, "caller: {out}\npbx: {}", pbx.log());
    ended_ok(&mut p202, "202");
    // The caller's audio reached 202's phone through the relay.
    let stats = sink.stats();
    assert!(
        stats.by_payload_type.get(&8).copied().unwrap_or(0) >= 20,
        "{stats:?}"
    );
    let rows = cdr(&pbx);
    assert!(
        rows.iter()
            .any(|r| r["callee"] == "202" && r["disposition"] == "answered"),
        "{rows:?}"
    );
    cli_ok(&pbx, &["forward", "clear", "201", "all"]);
    assert_eq!(
        settings(&pbx, "201")["forward_all"],
        serde_json::Value::Null
    );
    // Cleared: 201 itself is called again (and has no phone: 480).
    std::thread::sleep(Duration::from_millis(1200));
    let (code, out) = call(&pbx, "203", "caller_unavailable.xml", "201");
    assert_eq!(code, 0, "caller: {out}");
}

#[test]
fn dnd_by_feature_code_makes_calls_busy_until_79() {
    need("baresip", "baresip");
    let pbx = pbx("");
    // 201 is a baresip phone: it dials *78, hears the confirmation, and is hung up on.
    let wav = pbx.dir.join("mic.wav");
    tone_wav_hz(&wav, 10, 300.0);
    let dir = baresip_phone(&pbx, "201", "127.0.0.3", ports(BASE + 5000), &wav, false);
    let started = Instant::now();
    let mut b = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-t", "8", "-e", "/dial *78"]),
        pbx.dir.join("baresip-201.log"),
    );
    // The setting is stored as soon as the PBX answered the code.
    let deadline = Instant::now() + Duration::from_secs(8);
    while settings(&pbx, "201")["dnd"] != true && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        settings(&pbx, "201")["dnd"],
        true,
        "{}\n{}",
        b.output(),
        pbx.log()
    );
    b.wait(Duration::from_secs(20));
    // The PBX ended the call itself, long before baresip's 8 s.
    let rows = cdr(&pbx);
    let code_row = rows
        .iter()
        .find(|r| r["callee"] == "*78")
        .unwrap_or_else(|| panic!("no CDR for *78: {rows:?}\n{}", b.output()));
    assert_eq!(code_row["disposition"], "answered", "{code_row}");
    assert!(
        code_row["duration_s"].as_f64().unwrap_or(99.0) < 4.0,
        "the PBX did not hang up: {code_row}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // What 201 heard: the confirmation cue (660 Hz, 880 Hz), not its own 300 Hz nor silence.
    let heard = baresip_decoded(&dir).unwrap_or_else(|| panic!("nothing decoded: {}", b.output()));
    let db = peak_tones(&heard, &[660.0, 880.0, 300.0]);
    assert!(
        db[0] > -35.0 && db[1] > -35.0,
        "no confirmation heard: {db:?}"
    );
    assert!(db[2] < -45.0, "201 hears itself: {db:?}");
    // A call to 201 is now busy, without ringing any phone.
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = call(&pbx, "203", "caller_busy.xml", "201");
    assert_eq!(code, 0, "caller expected 486: {out}\npbx: {}", pbx.log());
    // *79 (from sipp) clears it: answered, confirmed, hung up by the PBX.
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*79");
    assert_eq!(code, 0, "*79: {out}\npbx: {}", pbx.log());
    assert_eq!(settings(&pbx, "201")["dnd"], false);
    // No longer busy: 201's phone is gone, so the call is unavailable (480), not 486.
    let (code, out) = call(&pbx, "203", "caller_unavailable.xml", "201");
    assert_eq!(code, 0, "caller expected 480: {out}");
}

/// `*43` from baresip playing `hz`: what it hears back, as dB at `hz` and at `other`.
fn echo_heard(pbx: &Pbx, ip: &str, port: u16, hz: f64, other: f64) -> (f64, f64) {
    let wav = pbx.dir.join(format!("echo-{hz}.wav"));
    tone_wav_hz(&wav, 10, hz);
    let dir = baresip_phone(pbx, "201", ip, port, &wav, false);
    let mut b = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-t", "6", "-e", "/dial *43"]),
        pbx.dir.join(format!("baresip-echo-{hz}.log")),
    );
    b.wait(Duration::from_secs(20));
    let heard = baresip_decoded(&dir).unwrap_or_else(|| panic!("nothing decoded: {}", b.output()));
    let db = peak_tones(&heard, &[hz, other]);
    (db[0], db[1])
}

#[test]
fn star_43_echo_test_sends_the_callers_own_audio_back() {
    need("baresip", "baresip");
    let pbx = pbx("");
    // Two calls with different tones: each hears its own, so it is an echo, not a fixed sound.
    let (own, other) = echo_heard(&pbx, "127.0.0.3", ports(BASE + 5100), 700.0, 1100.0);
    assert!(own > -35.0, "700 Hz not echoed: {own:.1} dB");
    assert!(
        other < -45.0,
        "1100 Hz heard without being sent: {other:.1} dB"
    );
    let (own, other) = echo_heard(&pbx, "127.0.0.5", ports(BASE + 5200), 1100.0, 700.0);
    assert!(own > -35.0, "1100 Hz not echoed: {own:.1} dB");
    assert!(
        other < -45.0,
        "700 Hz heard without being sent: {other:.1} dB"
    );
    let rows = cdr(&pbx);
    assert!(
        rows.iter()
            .filter(|r| r["callee"] == "*43" && r["disposition"] == "answered")
            .count()
            == 2,
        "{rows:?}"
    );
}

#[test]
fn forward_on_busy_takes_the_call_to_202() {
    let pbx = pbx("");
    let (mut p201, _s1) = phone(&pbx, "201", "127.0.0.3", "callee_busy.xml");
    let (mut p202, sink) = phone(&pbx, "202", "127.0.0.4", "callee_answer.xml");
    cli_ok(&pbx, &["forward", "set", "201", "busy", "202"]);
    assert_eq!(settings(&pbx, "201")["forward_busy"], "202");
    std::thread::sleep(Duration::from_millis(1200));
    let (code, out) = call(&pbx, "203", "call_caller.xml", "201");
    assert_eq!(code, 0, "caller: {out}\npbx: {}", pbx.log());
    ended_ok(&mut p201, "201");
    ended_ok(&mut p202, "202");
    let stats = sink.stats();
    assert!(
        stats.by_payload_type.get(&8).copied().unwrap_or(0) >= 20,
        "{stats:?}"
    );
}

#[test]
fn forward_on_no_answer_after_the_timeout_and_when_unregistered() {
    let pbx = pbx("\n[[extension_settings]]\nnumber = \"201\"\nforward_no_answer_seconds = 2\n");
    // Set from a phone: *52202.
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*52202");
    assert_eq!(code, 0, "*52202: {out}\npbx: {}", pbx.log());
    let s = settings(&pbx, "201");
    assert_eq!(s["forward_no_answer"], "202", "{s}");
    assert_eq!(s["forward_no_answer_seconds"], 2, "{s}");
    // Unregistered 201: straight to 202.
    let (mut p202, sink) = phone(&pbx, "202", "127.0.0.4", "callee_answer.xml");
    let (code, out) = call(&pbx, "203", "call_caller.xml", "201");
    assert_eq!(code, 0, "caller: {out}\npbx: {}", pbx.log());
    ended_ok(&mut p202, "202");
    assert!(sink.stats().packets >= 20);
    // Registered 201 rings, nobody answers: cancelled after 2 s, and 202 answers.
    let (mut p201, _s1) = phone(&pbx, "201", "127.0.0.3", "callee_cancel.xml");
    let (mut p202, sink) = phone(&pbx, "202", "127.0.0.4", "callee_answer.xml");
    let started = Instant::now();
    let (code, out) = call(&pbx, "203", "call_caller.xml", "201");
    assert_eq!(code, 0, "caller: {out}\npbx: {}", pbx.log());
    ended_ok(&mut p201, "201 not cancelled");
    ended_ok(&mut p202, "202");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(sink.stats().by_payload_type.get(&8).copied().unwrap_or(0) >= 20);
    // *53 clears it.
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*53");
    assert_eq!(code, 0, "*53: {out}");
    assert_eq!(
        settings(&pbx, "201")["forward_no_answer"],
        serde_json::Value::Null
    );
}

#[test]
fn a_forward_loop_201_202_201_is_refused_with_482() {
    let pbx = pbx("");
    // 201 forwards to 202 from its phone (*72202), 202 back to 201 from the CLI.
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*72202");
    assert_eq!(code, 0, "*72202: {out}\npbx: {}", pbx.log());
    assert_eq!(settings(&pbx, "201")["forward_all"], "202");
    cli_ok(&pbx, &["forward", "set", "202", "all", "201"]);
    assert_eq!(settings(&pbx, "202")["forward_all"], "201");
    std::thread::sleep(Duration::from_millis(1200));
    let (code, out) = call(&pbx, "203", "caller_loop.xml", "201");
    assert_eq!(code, 0, "caller expected 482: {out}\npbx: {}", pbx.log());
    assert!(pbx.log().contains("forwarding loop"), "{}", pbx.log());
    // One failed attempt, no INVITE sent to anyone.
    let rows = cdr(&pbx);
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r["disposition"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    // A bad number from the phone changes nothing.
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*72999");
    assert_eq!(code, 0, "*72999: {out}");
    assert_eq!(settings(&pbx, "201")["forward_all"], "202");
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*73");
    assert_eq!(code, 0, "*73: {out}");
    assert_eq!(
        settings(&pbx, "201")["forward_all"],
        serde_json::Value::Null
    );
    // The busy forward from the phone: *90202 on, *91 off.
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*90202");
    assert_eq!(code, 0, "*90202: {out}");
    assert_eq!(settings(&pbx, "201")["forward_busy"], "202");
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*91");
    assert_eq!(code, 0, "*91: {out}");
    assert_eq!(
        settings(&pbx, "201")["forward_busy"],
        serde_json::Value::Null
    );
}

#[test]
fn the_cli_names_what_is_wrong() {
    let pbx = pbx("");
    let err = |args: &[&str]| {
        let out = pbx.cli(args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err(&["forward", "set", "299", "all", "202"]);
    assert!(
        e.contains("extension 299 does not exist") && e.contains("hint:"),
        "{e}"
    );
    let e = err(&["forward", "set", "201", "all", "999"]);
    assert!(e.contains("\"999\" is not an extension of this PBX"), "{e}");
    let e = err(&["forward", "set", "201", "sometimes", "202"]);
    assert!(e.contains("is not a kind of forward"), "{e}");
    let e = err(&["forward", "set", "201", "busy", "201"]);
    assert!(e.contains("cannot forward to itself"), "{e}");
    let e = err(&["dnd", "maybe", "201"]);
    assert!(e.contains("neither on nor off"), "{e}");
    let e = err(&["settings", "show", "299"]);
    assert!(e.contains("extension 299 does not exist"), "{e}");
    // Nothing was stored by the refused commands.
    let s = settings(&pbx, "201");
    assert_eq!(s["forward_all"], serde_json::Value::Null, "{s}");
    assert_eq!(s["forward_busy"], serde_json::Value::Null, "{s}");
    assert_eq!(s["dnd"], false, "{s}");
    assert_eq!(s["forward_no_answer_seconds"], 20, "{s}");
}

#[test]
fn call_waiting_off_by_star_71_makes_a_second_call_busy_until_star_70() {
    let pbx = pbx("");
    let (mut p201, _sink) = phone(&pbx, "201", "127.0.0.3", "callee_answer.xml");
    assert_eq!(settings(&pbx, "201")["call_waiting"], true, "on by default");
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*71");
    assert_eq!(code, 0, "*71: {out}\npbx: {}", pbx.log());
    assert_eq!(settings(&pbx, "201")["call_waiting"], false);
    // 202 calls 201, which answers and stays in the call for a while.
    let inf = csv(
        &pbx,
        "long-caller.csv",
        &["202", "pbx.local", &auth("202", "pw202"), "201"],
    );
    let mut cmd = Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture("call_long.xml"))
        .args(["-inf", &inf, "-i", "127.0.0.2"])
        .args(["-p", &ports(BASE + 5100).to_string()])
        .args(["-mi", "127.0.0.2", "-mp", &ports(BASE + 6500).to_string()])
        .args(["-m", "1", "-nostdin", "-d", "6000", "-timeout", "30"]);
    let mut first = Proc::spawn("sipp 202", &mut cmd, pbx.dir.join("long-caller.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut listed = String::new();
    while !listed.contains("answered") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        listed = String::from_utf8_lossy(&pbx.cli(&["calls"], None).stdout).into_owned();
    }
    assert!(
        listed.contains("\t202\t201\tanswered\t"),
        "calls: {listed:?}"
    );
    // A second call while 201 is in a call: 486, and 201's phone never sees it (its sipp
    // scenario would fail on a second INVITE).
    let (code, out) = call(&pbx, "203", "caller_busy.xml", "201");
    assert_eq!(code, 0, "caller expected 486: {out}\npbx: {}", pbx.log());
    assert_eq!(first.wait(Duration::from_secs(20)), 0, "{}", first.output());
    ended_ok(&mut p201, "201");
    let busy = cdr(&pbx);
    assert!(
        busy.iter()
            .any(|r| r["caller"] == "203" && r["disposition"] == "busy"),
        "{busy:?}"
    );
    // *70 turns it back on.
    let (code, out) = call(&pbx, "201", "caller_feature.xml", "*70");
    assert_eq!(code, 0, "*70: {out}");
    assert_eq!(settings(&pbx, "201")["call_waiting"], true);
}
