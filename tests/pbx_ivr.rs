//! IVR / auto-attendant with real peers and real media. A sipp caller (202) whose media is
//! this test's socket (it sends a 440 Hz tone and types RFC 4733 keys) calls the menu at 700:
//! it hears the greeting espeak-ng spoke (energy in the first seconds), presses `1` and is
//! connected to 201, a baresip phone playing 1 kHz that answers at once; the caller then hears
//! 1 kHz and 201 hears 440 Hz (both decoded and checked by frequency). Typing `201` (direct
//! dial) rings 201 too, here a sipp phone whose RTP sink echoes, so the caller hears its own
//! tone back through the bridge. With no key at all, the menu repeats `retries` times and
//! then hands the caller to `invalid` (200, a sipp phone). Menu 720's `2` leads to ring
//! group 600 (hunt: 200, who has no phone and is skipped, then 201, a baresip phone playing
//! 1 kHz): the caller hears 201 and 201 hears the caller; a group nobody can answer hands
//! the caller to its `no_answer`, a mailbox. Needs sipp, baresip and espeak-ng.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

const BASE: u16 = 46060;

fn pbx(extra: &str) -> Pbx {
    need("espeak-ng", "espeak-ng");
    // The greeting cache goes into the daemon's own folder, removed with it.
    let port = ports(BASE);
    let sounds = std::env::temp_dir()
        .join(format!("kentongan-pbx-e2e-{}-{port}", std::process::id()))
        .join("sounds");
    // `extra` may hold more keys of [[ivr]] 700, then further tables.
    let pbx = Pbx::start_with(
        port,
        &format!(
            "\n[prompts]\ndirectory = \"{}\"\nlanguage = \"en\"\n\
             [[ivr]]\nnumber = \"700\"\n\
             greeting = \"Welcome to the office. Press 1 for sales, 2 for support.\"\n\
             language = \"en\"\noptions = {{ \"1\" = \"201\", \"0\" = \"200\" }}\n\
             invalid = \"200\"\n{extra}\n",
            sounds.display()
        ),
    );
    for ext in ["200", "201", "202"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    pbx
}

/// 202 dials `dialled` with its media on `keypad`; with `hangup_after` it hangs up then
/// (`ivr_caller.xml`), else it waits for the PBX's BYE (`caller_mailbox.xml`).
fn call(pbx: &Pbx, keypad: &Keypad, dialled: &str, hangup_after: Option<Duration>) -> Proc {
    let hangup_ms = hangup_after.map_or(0, |d| d.as_millis()).to_string();
    let scenario = match hangup_after {
        Some(_) => "ivr_caller.xml",
        None => "caller_mailbox.xml",
    };
    let inf = csv(
        pbx,
        &format!("ivr-caller-{}.csv", ports(0)),
        &[
            "202",
            "pbx.local",
            &auth("202", "pw202"),
            dialled,
            "127.0.0.90",
            &keypad.port().to_string(),
            &hangup_ms,
        ],
    );
    let port = ports(BASE + 5000).to_string();
    Proc::spawn(
        "sipp caller",
        Command::new("sipp")
            .arg(pbx.sip())
            .arg("-sf")
            .arg(fixture(scenario))
            .args(["-inf", &inf, "-i", "127.0.0.90", "-p", &port])
            .args(["-m", "1", "-nostdin", "-timeout", "90", "-timeout_error"])
            .current_dir(&pbx.dir),
        pbx.dir.join(format!("sipp-ivr-caller-{port}.log")),
    )
}

/// A sipp phone for `ext` at `ip` that answers, its media an echoing RTP sink.
fn sipp_callee(pbx: &Pbx, ext: &str, ip: &str) -> (Proc, RtpSink) {
    let port = ports(BASE + 5000);
    assert_eq!(register(pbx, ext, &format!("pw{ext}"), ip, port), 0);
    let sink = RtpSink::start(ip, 0);
    let p = sipp_phone(
        pbx,
        "callee_answer.xml",
        ip,
        port,
        &["-key", "rtp_sink", &sink.addr.port().to_string()],
    );
    (p, sink)
}

/// Waits until `sink` has received `n` packets (the bridge carries media to the callee).
fn wait_packets(sink: &RtpSink, n: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let got = sink.stats().packets;
        if got >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 201 as a baresip phone playing 1 kHz and answering at once, registered.
struct TonePhone {
    proc: Proc,
    /// Its config folder (what it decoded is read from there).
    dir: std::path::PathBuf,
    /// Its control socket, for `baresip_ctrl`.
    ctrl: String,
}

fn registered_tone_phone_201(pbx: &Pbx, ip: &str) -> TonePhone {
    let wav = pbx.dir.join("tone-1k.wav");
    tone_wav_hz(&wav, 60, 1000.0);
    let dir = baresip_phone(pbx, "201", ip, ports(BASE + 5000), &wav, false);
    let ctrl = format!("{ip}:{}", ports(BASE + 5000));
    with_ctrl_tcp(&dir, &ctrl);
    let b = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-t", "60"]),
        pbx.dir.join("baresip-201.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while pbx.metric("kentongan_registrations") < 1 {
        assert!(
            Instant::now() < deadline,
            "201 never registered: {}",
            b.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    TonePhone { proc: b, dir, ctrl }
}

#[test]
fn key_1_connects_to_201_with_audio_both_ways_and_the_greeting_is_heard() {
    need("baresip", "baresip");
    let pbx = pbx("timeout_seconds = 10\nretries = 1\n");
    // 201: baresip playing 1 kHz, answering at once.
    let TonePhone { proc: b, dir, ctrl } = registered_tone_phone_201(&pbx, "127.0.0.91");

    let keypad = Keypad::start_with_tone("127.0.0.90", 440.0);
    let mut caller = call(&pbx, &keypad, "700", None);
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(2500));
    // The greeting: speech in the first seconds, and no 1 kHz (nobody is connected yet).
    let greeting = keypad.loud_seconds(0, keypad.heard_len());
    assert!(
        greeting >= 1.0,
        "greeting: {greeting} s loud in the first 2.5 s\npbx: {}",
        pbx.log()
    );
    assert!(keypad.seconds_of(0, 1000.0) < 0.3);

    keypad.press("1");
    let after = keypad.heard_len();
    std::thread::sleep(Duration::from_secs(8));
    let heard_1k = keypad.seconds_of(after, 1000.0);
    assert!(
        heard_1k >= 3.0,
        "the caller heard {heard_1k} s of 201's 1 kHz\npbx: {}\nbaresip: {}",
        pbx.log(),
        b.output()
    );
    assert!(
        pbx.metric("kentongan_ivr_calls_total{option=\"1\"}") == 1,
        "{}",
        pbx.metric("kentongan_ivr_calls_total{option=\"1\"}")
    );
    // 201 hangs up: the PBX ends the caller's side too.
    baresip_ctrl(&ctrl, "hangup", "");
    assert_eq!(
        caller.wait(Duration::from_secs(20)),
        0,
        "the caller got no BYE when 201 hung up: {}\npbx: {}",
        caller.output(),
        pbx.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(b);
    let decoded = baresip_decoded(&dir).expect("baresip decoded nothing");
    let peaks = peak_tones(&decoded, &[440.0, 1000.0]);
    assert!(
        peaks[0] > -30.0,
        "201 did not hear the caller's 440 Hz: {peaks:?}"
    );
    assert!(
        peaks[1] < peaks[0] - 10.0,
        "201 heard its own tone: {peaks:?}"
    );
}

#[test]
fn direct_dial_rings_the_extension_and_the_bridge_carries_audio() {
    let pbx = pbx("direct_dial = true\ntimeout_seconds = 10\n");
    let (mut p201, sink) = sipp_callee(&pbx, "201", "127.0.0.92");
    let keypad = Keypad::start_with_tone("127.0.0.90", 440.0);
    let mut caller = call(&pbx, &keypad, "700", Some(Duration::from_secs(12)));
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(500));
    keypad.press("201");
    let after = keypad.heard_len();
    // The inter-digit pause (2 s), "connecting you", then 201 answers.
    let got = wait_packets(&sink, 100, Duration::from_secs(15));
    assert!(got >= 100, "201 got {got} packets\npbx: {}", pbx.log());
    std::thread::sleep(Duration::from_secs(3));
    // 201's sink echoes: the caller hears its own 440 Hz back through the bridge.
    let echoed = keypad.seconds_of(after, 440.0);
    assert!(
        echoed >= 1.5,
        "the caller heard {echoed} s of its echoed tone\npbx: {}",
        pbx.log()
    );
    assert_eq!(
        pbx.metric("kentongan_ivr_calls_total{option=\"direct\"}"),
        1
    );
    // The caller hangs up: 201 gets the PBX's BYE.
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "{}",
        caller.output()
    );
    assert_eq!(
        p201.wait(Duration::from_secs(10)),
        0,
        "201 got no BYE: {}\npbx: {}",
        p201.output(),
        pbx.log()
    );
}

/// Nested menus: an option of one IVR is another IVR, whose option rings 201. The caller
/// passes through both (the second menu's metric counts its own option) and reaches 201.
#[test]
fn an_option_that_is_another_ivr_leads_through_its_menu_to_the_extension() {
    let pbx = pbx(
        "[[ivr]]\nnumber = \"740\"\ngreeting = \"Press 3 for the sales menu.\"\nlanguage = \"en\"\n\
         timeout_seconds = 10\noptions = { \"3\" = \"750\" }\n\
         [[ivr]]\nnumber = \"750\"\ngreeting = \"Sales. Press 4 for Budi.\"\nlanguage = \"en\"\n\
         timeout_seconds = 10\noptions = { \"4\" = \"201\" }\n",
    );
    // The same address as the direct-dial test, on a port of its own.
    let (mut p201, sink) = sipp_callee(&pbx, "201", "127.0.0.92");
    let keypad = Keypad::start_with_tone("127.0.0.90", 440.0);
    let mut caller = call(&pbx, &keypad, "740", Some(Duration::from_secs(16)));
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(1500));
    keypad.press("3");
    // The second menu's greeting is heard before its option is pressed; 201 has nothing yet.
    std::thread::sleep(Duration::from_millis(1500));
    let before = keypad.heard_len();
    std::thread::sleep(Duration::from_millis(1500));
    let speech = keypad.loud_seconds(before, keypad.heard_len());
    assert!(
        speech >= 0.5,
        "the second menu's greeting: {speech} s loud\npbx: {}",
        pbx.log()
    );
    assert_eq!(sink.stats().packets, 0, "201 was reached before choosing");
    keypad.press("4");
    let after = keypad.heard_len();
    let got = wait_packets(&sink, 100, Duration::from_secs(15));
    assert!(got >= 100, "201 got {got} packets\npbx: {}", pbx.log());
    std::thread::sleep(Duration::from_secs(2));
    let echoed = keypad.seconds_of(after, 440.0);
    assert!(
        echoed >= 1.0,
        "the caller heard {echoed} s of its echoed tone from 201\npbx: {}",
        pbx.log()
    );
    assert_eq!(pbx.metric("kentongan_ivr_calls_total{option=\"3\"}"), 1);
    assert_eq!(pbx.metric("kentongan_ivr_calls_total{option=\"4\"}"), 1);
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "{}",
        caller.output()
    );
    assert_eq!(
        p201.wait(Duration::from_secs(10)),
        0,
        "201 got no BYE: {}\npbx: {}",
        p201.output(),
        pbx.log()
    );
}

#[test]
fn no_input_repeats_the_menu_then_goes_to_invalid() {
    let pbx = pbx("timeout_seconds = 1\nretries = 1\n");
    let (mut p200, sink) = sipp_callee(&pbx, "200", "127.0.0.93");
    let keypad = Keypad::start_with_tone("127.0.0.90", 440.0);
    let mut caller = call(&pbx, &keypad, "700", Some(Duration::from_secs(25)));
    keypad.wait_answered();
    // Greeting (~4 s), 1 s, "we did not receive", greeting again, 1 s, then 200 rings.
    let got = wait_packets(&sink, 50, Duration::from_secs(30));
    assert!(got >= 50, "200 got {got} packets\npbx: {}", pbx.log());
    assert_eq!(
        pbx.metric("kentongan_ivr_calls_total{option=\"invalid\"}"),
        1
    );
    assert_eq!(
        caller.wait(Duration::from_secs(40)),
        0,
        "{}",
        caller.output()
    );
    assert_eq!(
        p200.wait(Duration::from_secs(10)),
        0,
        "200 got no BYE: {}",
        p200.output()
    );
}

/// The voicemail messages of `ext` (`voicemail list --json`).
fn messages(pbx: &Pbx, ext: &str) -> Vec<serde_json::Value> {
    let out = pbx.cli(&["voicemail", "list", ext, "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Office hours with a fixed clock (the `KENTONGAN_OFFICE_HOURS_AT` test knob): menu 710
/// sends a caller who presses nothing to `hours:kantor`, which is 201 while open and 200's
/// mailbox after hours and on a holiday from the holiday file.
#[test]
fn office_hours_send_calls_in_hours_to_201_and_otherwise_to_voicemail() {
    let holidays = std::env::temp_dir().join(format!("kentongan-ivr-holidays-{}.csv", ports(0)));
    std::fs::write(&holidays, "# test\n2026-08-17,Hari Kemerdekaan\n").unwrap();
    let extra = format!(
        "[voicemail]\nlanguage = \"en\"\nring_seconds = 5\n\
         [[ivr]]\nnumber = \"710\"\ngreeting = \"Hello.\"\ntimeout_seconds = 1\nretries = 0\n\
         invalid = \"hours:kantor\"\n\
         [[office_hours]]\nname = \"kantor\"\ntimezone = \"Asia/Jakarta\"\n\
         open = [\"mon-fri 08:00-17:00\", \"sat 08:00-12:00\"]\nholidays = \"{}\"\n\
         in_hours = \"201\"\nafter_hours = \"vm:200\"\n",
        holidays.display()
    );
    for (label, at, open) in [
        ("Thursday 10:00 WIB", 1_796_266_800i64, true),
        ("Thursday 20:00 WIB", 1_796_302_800, false),
        ("Monday 17 August 10:00 WIB", 1_786_935_600, false),
    ] {
        std::env::set_var("KENTONGAN_OFFICE_HOURS_AT", at.to_string());
        // The [[ivr]] 700 of `pbx()` is there too; 710 comes after it in the file.
        let pbx = pbx(&extra);
        std::env::remove_var("KENTONGAN_OFFICE_HOURS_AT");
        let (p201, sink) = sipp_callee(&pbx, "201", "127.0.0.94");
        let keypad = Keypad::start_with_tone("127.0.0.90", 440.0);
        let mut caller = call(&pbx, &keypad, "710", Some(Duration::from_secs(12)));
        keypad.wait_answered();
        assert_eq!(
            caller.wait(Duration::from_secs(40)),
            0,
            "{label}: {}",
            caller.output()
        );
        let got = sink.stats().packets;
        if open {
            assert!(
                got >= 100,
                "{label}: 201 got {got} packets\npbx: {}",
                pbx.log()
            );
            assert!(messages(&pbx, "200").is_empty(), "{label}");
        } else {
            assert_eq!(got, 0, "{label}: 201 was rung");
            let deadline = Instant::now() + Duration::from_secs(10);
            while messages(&pbx, "200").is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            assert_eq!(
                messages(&pbx, "200").len(),
                1,
                "{label}\npbx: {}",
                pbx.log()
            );
        }
        drop(p201);
    }
    let _ = std::fs::remove_file(&holidays);
}

#[test]
fn an_option_to_a_ring_group_hunts_to_the_member_who_answers_with_audio_both_ways() {
    need("baresip", "baresip");
    let pbx = pbx(
        "[[ivr]]\nnumber = \"720\"\ngreeting = \"Press 2 for sales.\"\nlanguage = \"en\"\n\
         timeout_seconds = 10\noptions = { \"2\" = \"600\" }\n\
         [[ring_group]]\nnumber = \"600\"\nname = \"Sales\"\nstrategy = \"hunt\"\n\
         members = [\"200\", \"201\"]\nring_seconds = 10\n",
    );
    // 201: baresip playing 1 kHz, answering at once; 200 has no phone.
    let TonePhone { proc: b, dir, ctrl } = registered_tone_phone_201(&pbx, "127.0.0.99");

    let keypad = Keypad::start_with_tone("127.0.0.90", 440.0);
    let mut caller = call(&pbx, &keypad, "720", None);
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        keypad.seconds_of(0, 1000.0) < 0.3,
        "201 heard before the choice"
    );
    keypad.press("2");
    let after = keypad.heard_len();
    std::thread::sleep(Duration::from_secs(8));
    let heard_1k = keypad.seconds_of(after, 1000.0);
    assert!(
        heard_1k >= 3.0,
        "the caller heard {heard_1k} s of 201's 1 kHz\npbx: {}\nbaresip: {}",
        pbx.log(),
        b.output()
    );
    assert_eq!(pbx.metric("kentongan_ivr_calls_total{option=\"2\"}"), 1);
    assert!(
        pbx.log().contains("IVR ring group answered"),
        "{}",
        pbx.log()
    );
    baresip_ctrl(&ctrl, "hangup", "");
    assert_eq!(
        caller.wait(Duration::from_secs(20)),
        0,
        "the caller got no BYE when 201 hung up: {}\npbx: {}",
        caller.output(),
        pbx.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(b);
    let decoded = baresip_decoded(&dir).expect("baresip decoded nothing");
    let peaks = peak_tones(&decoded, &[440.0, 1000.0]);
    assert!(
        peaks[0] > -30.0,
        "201 did not hear the caller's 440 Hz: {peaks:?}"
    );
    assert!(
        peaks[1] < peaks[0] - 10.0,
        "201 heard its own tone: {peaks:?}"
    );
}

#[test]
fn a_ring_group_nobody_answers_hands_the_menus_caller_to_its_no_answer_mailbox() {
    let pbx = pbx("[voicemail]\nlanguage = \"en\"\nring_seconds = 5\n\
         [[ivr]]\nnumber = \"730\"\ngreeting = \"Press 3.\"\nlanguage = \"en\"\n\
         timeout_seconds = 10\noptions = { \"3\" = \"610\" }\n\
         [[ring_group]]\nnumber = \"610\"\nname = \"Support\"\nmembers = [\"200\"]\n\
         ring_seconds = 5\nno_answer = \"vm:201\"\n");
    // 200 has no phone: the group has nobody to ring, and the caller's 440 Hz goes into
    // 201's mailbox until it hangs up.
    let keypad = Keypad::start_with_tone("127.0.0.90", 440.0);
    let mut caller = call(&pbx, &keypad, "730", Some(Duration::from_secs(14)));
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(1500));
    keypad.press("3");
    assert_eq!(
        caller.wait(Duration::from_secs(40)),
        0,
        "{}",
        caller.output()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while messages(&pbx, "201").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = messages(&pbx, "201");
    assert_eq!(m.len(), 1, "{m:?}\npbx: {}", pbx.log());
    assert!(m[0]["duration_ms"].as_i64().unwrap() >= 3000, "{m:?}");
    let out = pbx.dir.join("group-message.wav");
    let id = m[0]["id"].to_string();
    let play = pbx.cli(
        &[
            "voicemail",
            "play",
            "201",
            &id,
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        play.status.success(),
        "{}",
        String::from_utf8_lossy(&play.stderr)
    );
    let db = peak_tones(&out, &[440.0]);
    assert!(
        db[0] > -30.0,
        "the message does not hold the caller's 440 Hz: {db:?}"
    );
    assert_eq!(pbx.metric("kentongan_ivr_calls_total{option=\"3\"}"), 1);
}
