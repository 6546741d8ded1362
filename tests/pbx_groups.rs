//! Ring groups with real peers. Ringall: a baresip caller (700 Hz) dials group 600, whose three
//! members ring at once; 202 (baresip, 1100 Hz, answers at once) takes it, so the sipp phones
//! of 201 and 203 see a CANCEL, and each side hears the other's tone through the relay (decoded
//! and checked by frequency). Hunt: 201 is on DND and never rung, 202 and 203 ring in turn for
//! `ring_seconds` each and are cancelled, then the call reaches the group's `no_answer` (204,
//! which answers; the caller's audio reaches its sink). A config naming an unknown member fails
//! `check-config` with the key and the fix. Memoryhunt keeps 201 ringing while it adds 202;
//! random rings each member once. Pickup: `*8` and `**201` answer a call ringing at 201
//! (tones both ways), nothing ringing is 480. A group nobody answers with `no_answer =
//! "vm:203"` plays the greeting and leaves the message in 203's mailbox. Needs sipp and baresip.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::Duration;

use harness::*;

const BASE: u16 = 39060;

fn pbx(extra_tables: &str) -> Pbx {
    let pbx = Pbx::start_with(ports(BASE), &format!("\n{extra_tables}"));
    for ext in ["201", "202", "203", "204", "205"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    pbx
}

fn cli_ok(pbx: &Pbx, args: &[&str]) {
    let out = pbx.cli(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sipp phone for `ext` at `ip`, registered first; the RTP sink it answers with (for
/// `callee_answer.xml`).
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

fn ended_ok(phone: &mut Proc, who: &str, pbx: &Pbx) {
    assert_eq!(
        phone.wait(Duration::from_secs(40)),
        0,
        "{who}: {}\npbx: {}",
        phone.output(),
        pbx.log()
    );
}

fn cdr(pbx: &Pbx) -> Vec<serde_json::Value> {
    let out = pbx.cli(&["cdr", "list", "--json"], None);
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
}

#[test]
fn ringall_answered_by_the_second_member_cancels_the_others_and_relays_audio() {
    need("baresip", "baresip");
    let pbx = pbx(
        "[[ring_group]]\nnumber = \"600\"\nname = \"Sales\"\nstrategy = \"ringall\"\n\
         members = [\"201\", \"202\", \"203\"]\nring_seconds = 20\n",
    );
    let (mut p201, _s201) = phone(&pbx, "201", "127.0.0.71", "callee_cancel.xml");
    let (mut p203, _s203) = phone(&pbx, "203", "127.0.0.73", "callee_cancel.xml");
    let port = ports(BASE + 3000);
    let tone_caller = pbx.dir.join("t204.wav");
    tone_wav_hz(&tone_caller, 30, 700.0);
    let tone_202 = pbx.dir.join("t202.wav");
    tone_wav_hz(&tone_202, 30, 1100.0);
    let member = baresip_phone(&pbx, "202", "127.0.0.72", port, &tone_202, false);
    let mut b202 = Proc::spawn(
        "baresip 202",
        Command::new("baresip")
            .arg("-f")
            .arg(&member)
            .args(["-t", "14"]),
        pbx.dir.join("baresip-202.log"),
    );
    pbx.wait_metric("kentongan_registrations", 3, Duration::from_secs(10));
    let caller = baresip_phone(&pbx, "204", "127.0.0.70", port, &tone_caller, false);
    let mut b204 = Proc::spawn(
        "baresip 204",
        Command::new("baresip")
            .arg("-f")
            .arg(&caller)
            .args(["-t", "8", "-e", "/dial 600"]),
        pbx.dir.join("baresip-204.log"),
    );
    // 201 and 203 rang and were CANCELled when 202 answered.
    ended_ok(&mut p201, "201", &pbx);
    ended_ok(&mut p203, "203", &pbx);
    b204.wait(Duration::from_secs(30));
    b202.wait(Duration::from_secs(30));
    let heard_by_caller = baresip_decoded(&caller)
        .unwrap_or_else(|| panic!("caller decoded nothing: {}", b204.output()));
    let heard_by_202 = baresip_decoded(&member)
        .unwrap_or_else(|| panic!("202 decoded nothing: {}", b202.output()));
    let c = peak_tones(&heard_by_caller, &[1100.0, 700.0]);
    let m = peak_tones(&heard_by_202, &[700.0, 1100.0]);
    assert!(c[0] > -35.0, "caller did not hear 202's 1100 Hz: {c:?}");
    assert!(m[0] > -35.0, "202 did not hear the caller's 700 Hz: {m:?}");
    let rows = cdr(&pbx);
    assert!(
        rows.iter().any(|r| r["caller"] == "204"
            && r["callee"] == "202"
            && r["disposition"] == "answered"),
        "{rows:?}"
    );
}

#[test]
fn hunt_skips_a_dnd_member_rings_in_order_then_reaches_no_answer() {
    let pbx = pbx(
        "[[ring_group]]\nnumber = \"610\"\nname = \"Support\"\nstrategy = \"hunt\"\n\
         members = [\"201\", \"202\", \"203\"]\nring_seconds = 2\nno_answer = \"204\"\n",
    );
    cli_ok(&pbx, &["dnd", "on", "201"]);
    // 201 would answer if it were rung: its scenario must still be waiting at the end.
    let (p201, s201) = phone(&pbx, "201", "127.0.0.71", "callee_answer.xml");
    let (mut p202, _s202) = phone(&pbx, "202", "127.0.0.72", "callee_cancel.xml");
    let (mut p203, _s203) = phone(&pbx, "203", "127.0.0.73", "callee_cancel.xml");
    let (mut p204, s204) = phone(&pbx, "204", "127.0.0.74", "callee_answer.xml");
    std::thread::sleep(Duration::from_millis(1200));
    let inf = csv(
        &pbx,
        "call-205.csv",
        &["205", "pbx.local", &auth("205", "pw205"), "610"],
    );
    let port = ports(BASE + 5000).to_string();
    let media = (ports(BASE + 6000) + 1000).to_string();
    let (code, out) = sipp(
        &pbx,
        "call_caller.xml",
        &[
            "-inf",
            &inf,
            "-i",
            "127.0.0.75",
            "-p",
            &port,
            "-mi",
            "127.0.0.75",
            "-mp",
            &media,
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "caller: {out}\npbx: {}", pbx.log());
    ended_ok(&mut p202, "202", &pbx);
    ended_ok(&mut p203, "203", &pbx);
    ended_ok(&mut p204, "204", &pbx);
    let log = pbx.log();
    let rang = |m: &str| {
        log.find(&format!("members=[\"{m}\"]"))
            .unwrap_or_else(|| panic!("{m} not rung by the group:\n{log}"))
    };
    assert!(rang("202") < rang("203"), "hunt order wrong:\n{log}");
    assert!(
        !log.contains("members=[\"201\"]"),
        "201 (DND) was rung:\n{log}"
    );
    // 201's phone would have answered with media to its sink.
    assert_eq!(s201.stats().packets, 0);
    drop(p201);
    let stats = s204.stats();
    assert!(
        stats.by_payload_type.get(&8).copied().unwrap_or(0) >= 20,
        "the caller's audio did not reach 204: {stats:?}"
    );
    let rows = cdr(&pbx);
    assert!(
        rows.iter().any(|r| r["caller"] == "205"
            && r["callee"] == "204"
            && r["disposition"] == "answered"),
        "{rows:?}"
    );
}

#[test]
fn check_config_names_an_unknown_member_and_the_fix() {
    let pbx = pbx("[[ring_group]]\nnumber = \"620\"\nmembers = [\"201\", \"209\"]\n");
    let out = pbx.cli(&["check-config"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "`ring_group[0].members` lists 209, which is no extension; add it with `user add 209`"
        ),
        "{err}"
    );
    // The daemon runs regardless and still rings the members that exist.
    assert!(pbx.log().contains("ring_group[0].members"), "{}", pbx.log());
}

/// A baresip caller (204 at .76, 700 Hz) calls 201 (a sipp phone that rings until CANCELled);
/// once it rings, baresip `picker` (1100 Hz) dials `code`. Returns what caller and picker
/// heard, as dB of the other's tone.
fn picked_up(code: &str, picker: &str, picker_ip: &str) -> (f64, f64) {
    need("baresip", "baresip");
    let pbx = pbx(
        "[[extension_settings]]\nnumber = \"201\"\npickup_group = \"sales\"\n\
         [[extension_settings]]\nnumber = \"202\"\npickup_group = \"sales\"\n",
    );
    let (mut p201, _s201) = phone(&pbx, "201", "127.0.0.71", "callee_cancel.xml");
    let port = ports(BASE + 3000);
    let tone_caller = pbx.dir.join("t204.wav");
    tone_wav_hz(&tone_caller, 30, 700.0);
    let tone_picker = pbx.dir.join("tpick.wav");
    tone_wav_hz(&tone_picker, 30, 1100.0);
    let caller = baresip_phone(&pbx, "204", "127.0.0.76", port, &tone_caller, false);
    let mut b204 = Proc::spawn(
        "baresip 204",
        Command::new("baresip")
            .arg("-f")
            .arg(&caller)
            .args(["-t", "14", "-e", "/dial 201"]),
        pbx.dir.join("baresip-204.log"),
    );
    let ringing = wait_for_value(Duration::from_secs(10), 1, || {
        u64::from(pbx.log().contains("call ringing"))
    });
    assert_eq!(
        ringing,
        1,
        "201 never rang: {}\n{}",
        b204.output(),
        pbx.log()
    );
    let dir = baresip_phone(&pbx, picker, picker_ip, port, &tone_picker, false);
    let mut b = Proc::spawn(
        "baresip picker",
        Command::new("baresip").arg("-f").arg(&dir).args([
            "-t",
            "7",
            "-e",
            &format!("/dial {code}"),
        ]),
        pbx.dir.join("baresip-picker.log"),
    );
    // 201 stops ringing: its phone sees the CANCEL.
    ended_ok(&mut p201, "201", &pbx);
    b.wait(Duration::from_secs(30));
    b204.wait(Duration::from_secs(30));
    assert!(pbx.log().contains("call picked up"), "{}", pbx.log());
    let rows = cdr(&pbx);
    assert!(
        rows.iter().any(|r| r["caller"] == "204"
            && r["callee"] == picker
            && r["disposition"] == "answered"),
        "{rows:?}"
    );
    let heard_by_caller = baresip_decoded(&caller)
        .unwrap_or_else(|| panic!("caller decoded nothing: {}", b204.output()));
    let heard_by_picker =
        baresip_decoded(&dir).unwrap_or_else(|| panic!("picker decoded nothing: {}", b.output()));
    (
        peak_tones(&heard_by_caller, &[1100.0])[0],
        peak_tones(&heard_by_picker, &[700.0])[0],
    )
}

#[test]
fn star_8_picks_up_a_call_ringing_in_my_pickup_group() {
    let (caller, picker) = picked_up("*8", "202", "127.0.0.72");
    assert!(
        caller > -35.0,
        "caller did not hear the picker: {caller:.1} dB"
    );
    assert!(
        picker > -35.0,
        "picker did not hear the caller: {picker:.1} dB"
    );
}

#[test]
fn star_star_extension_picks_up_the_call_ringing_there() {
    // 203 is in no pickup group: directed pickup needs none.
    let (caller, picker) = picked_up("**201", "203", "127.0.0.73");
    assert!(
        caller > -35.0,
        "caller did not hear the picker: {caller:.1} dB"
    );
    assert!(
        picker > -35.0,
        "picker did not hear the caller: {picker:.1} dB"
    );
}

#[test]
fn pickup_with_nothing_ringing_fails_with_a_reason() {
    let pbx = pbx("[[extension_settings]]\nnumber = \"202\"\npickup_group = \"sales\"\n");
    let port = ports(BASE + 5000).to_string();
    for (who, code) in [("202", "*8"), ("203", "**201")] {
        let inf = csv(
            &pbx,
            &format!("pick-{who}.csv"),
            &[who, "pbx.local", &auth(who, &format!("pw{who}")), code],
        );
        let (status, out) = sipp(
            &pbx,
            "caller_unavailable.xml",
            &["-inf", &inf, "-i", "127.0.0.77", "-p", &port],
            Duration::from_secs(40),
        );
        assert_eq!(status, 0, "{code}: expected 480: {out}\npbx: {}", pbx.log());
    }
    assert!(
        pbx.log().contains("pickup: nothing ringing"),
        "{}",
        pbx.log()
    );
}

/// Waits for a ringing sipp phone to be CANCELled; when that was.
fn cancelled_at(p: &mut Proc, who: &str, pbx: &Pbx) -> std::time::Instant {
    ended_ok(p, who, pbx);
    std::time::Instant::now()
}

#[test]
fn memoryhunt_keeps_earlier_members_ringing_and_random_rings_each_once() {
    let pbx = pbx(
        "[[ring_group]]\nnumber = \"630\"\nstrategy = \"memoryhunt\"\n\
         members = [\"201\", \"202\"]\nring_seconds = 3\n\
         [[ring_group]]\nnumber = \"640\"\nstrategy = \"random\"\n\
         members = [\"201\", \"202\", \"203\"]\nring_seconds = 2\n",
    );
    let (mut p201, _a) = phone(&pbx, "201", "127.0.0.71", "callee_cancel.xml");
    let (mut p202, _b) = phone(&pbx, "202", "127.0.0.72", "callee_cancel.xml");
    std::thread::sleep(Duration::from_millis(1200));
    let port = ports(BASE + 5000).to_string();
    let inf = csv(
        &pbx,
        "call-mh.csv",
        &["205", "pbx.local", &auth("205", "pw205"), "630"],
    );
    let start = std::time::Instant::now();
    let caller = std::thread::spawn({
        let args = ["-inf", &inf, "-i", "127.0.0.75", "-p", &port].map(str::to_owned);
        let pbx_sip = pbx.sip();
        let dir = pbx.dir.clone();
        move || {
            let out = Command::new("sipp")
                .arg(pbx_sip)
                .arg("-sf")
                .arg(fixture("caller_unavailable.xml"))
                .args(["-m", "1", "-nostdin", "-timeout", "30", "-timeout_error"])
                .args(&args)
                .current_dir(dir)
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    });
    // 201 rings through both steps (3 s + 3 s): hunt would have cancelled it after 3 s.
    let t201 = cancelled_at(&mut p201, "201", &pbx);
    let t202 = cancelled_at(&mut p202, "202", &pbx);
    let (code, out) = caller.join().unwrap();
    assert_eq!(
        code,
        Some(0),
        "caller expected 480 at the end: {out}\npbx: {}",
        pbx.log()
    );
    let rang_for = t201.duration_since(start);
    assert!(
        rang_for >= Duration::from_secs(5),
        "201 cancelled after {rang_for:?}"
    );
    assert!(t202.duration_since(start) >= Duration::from_secs(5));
    let log = pbx.log();
    assert!(log.contains("group=630 members=[\"202\"]"), "{log}");
    // Random: each of the three rings once, then 480.
    let (mut p201, _a) = phone(&pbx, "201", "127.0.0.71", "callee_cancel.xml");
    let (mut p202, _b) = phone(&pbx, "202", "127.0.0.72", "callee_cancel.xml");
    let (mut p203, _c) = phone(&pbx, "203", "127.0.0.73", "callee_cancel.xml");
    std::thread::sleep(Duration::from_millis(1200));
    let inf = csv(
        &pbx,
        "call-rnd.csv",
        &["205", "pbx.local", &auth("205", "pw205"), "640"],
    );
    let (code, out) = sipp(
        &pbx,
        "caller_unavailable.xml",
        &["-inf", &inf, "-i", "127.0.0.75", "-p", &port],
        Duration::from_secs(40),
    );
    assert_eq!(code, 0, "random: {out}\npbx: {}", pbx.log());
    for (p, who) in [(&mut p201, "201"), (&mut p202, "202"), (&mut p203, "203")] {
        ended_ok(p, who, &pbx);
    }
}

#[test]
fn a_group_nobody_answers_goes_to_its_vm_mailbox() {
    need("baresip", "baresip");
    let empty = pbx_dir_empty();
    let pbx = pbx(&format!(
        "[prompts]\ndirectory = \"{}\"\n\
         [voicemail]\nenabled = true\nring_seconds = 30\nmax_message_seconds = 60\n\
         [[ring_group]]\nnumber = \"650\"\nstrategy = \"ringall\"\nmembers = [\"201\", \"202\"]\n\
         ring_seconds = 2\nno_answer = \"vm:203\"\n",
        empty.display()
    ));
    let (mut p201, _a) = phone(&pbx, "201", "127.0.0.71", "callee_cancel.xml");
    let (mut p202, _b) = phone(&pbx, "202", "127.0.0.72", "callee_cancel.xml");
    let wav = pbx.dir.join("t1k.wav");
    tone_wav_hz(&wav, 30, 1000.0);
    let dir = baresip_phone(&pbx, "204", "127.0.0.76", ports(BASE + 3000), &wav, false);
    let mut b = Proc::spawn(
        "baresip 204",
        Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-t", "10", "-e", "/dial 650"]),
        pbx.dir.join("baresip-204-vm.log"),
    );
    ended_ok(&mut p201, "201", &pbx);
    ended_ok(&mut p202, "202", &pbx);
    b.wait(Duration::from_secs(30));
    // The caller heard the greeting (each prompt is the two-tone cue without prompt files).
    let heard = baresip_decoded(&dir).unwrap_or_else(|| panic!("nothing decoded: {}", b.output()));
    let db = peak_tones(&heard, &[660.0, 880.0]);
    assert!(db[0] > -35.0 && db[1] > -35.0, "no greeting heard: {db:?}");
    let mut messages = serde_json::Value::Null;
    for _ in 0..50 {
        let out = pbx.cli(&["voicemail", "list", "203", "--json"], None);
        messages = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if messages.as_array().is_some_and(|m| !m.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = messages.as_array().cloned().unwrap_or_default();
    assert_eq!(
        list.len(),
        1,
        "203's mailbox: {messages}\npbx: {}",
        pbx.log()
    );
    assert!(list[0].to_string().contains("204"), "{messages}");
}

fn pbx_dir_empty() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kentongan-groups-empty-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
