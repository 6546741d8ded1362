//! Voicemail with real phones and real media: a baresip caller playing a 1 kHz tone calls 201,
//! which rings (a sipp phone that never answers) past `ring_seconds`; the PBX stops the
//! ringing, answers, plays the greeting (heard by the caller, decoded and checked by
//! frequency), beeps and records. `voicemail list 201 --json` then shows one new message from
//! the caller, `voicemail play` writes a WAV that holds the caller's 1 kHz and none of the
//! PBX's own prompts. A busy 201 (its phone answers 486) and an extension with no phone
//! registered reach voicemail too; `voicemail delete` removes the message and its file.
//! MWI (RFC 3842): a sipp phone subscribed to `message-summary` gets `no 0/0`, then
//! `yes 1/0` after a message, then `no` after `voicemail delete`; a registered phone that never
//! subscribed gets the same as unsolicited NOTIFYs. The mailbox at `*97`: three wrong PINs
//! (RFC 4733 keys) hang up; the right one plays the message (the caller hears the 1 kHz it
//! left), `7` deletes it and the PBX hangs up; `*98` from another phone opens the mailbox by
//! number and PIN. Needs sipp and baresip.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::*;
use kentongan_media::goertzel::{goertzel, to_db};
use kentongan_media::WavClip;

const BASE: u16 = 45060;
/// The prompts folder is empty, so each prompt is the PBX's two-tone cue (660 then 880 Hz).
const CUE: [f64; 2] = [660.0, 880.0];

fn pbx() -> Pbx {
    let sounds =
        std::env::temp_dir().join(format!("kentongan-vm-no-sounds-{}", std::process::id()));
    let pbx = Pbx::start_with(
        ports(BASE),
        &format!(
            "\n[prompts]\ndirectory = \"{}\"\n\
             [voicemail]\nenabled = true\nring_seconds = 2\nmax_message_seconds = 60\n\
             max_messages = 10\naccess = \"*97\"\nlanguage = \"en\"\n",
            sounds.display()
        ),
    );
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    pbx
}

/// A sipp phone for `ext` at `ip`, registered first.
fn phone(pbx: &Pbx, ext: &str, ip: &str, scenario: &str) -> Proc {
    let port = ports(BASE + 5000);
    assert_eq!(register(pbx, ext, &format!("pw{ext}"), ip, port), 0);
    sipp_phone(pbx, scenario, ip, port, &[])
}

/// 202 (baresip at `ip`) calls `dialled` playing 1 kHz for `secs` seconds, then hangs up;
/// returns what it heard (decoded WAV).
fn call_with_tone(pbx: &Pbx, ip: &str, dialled: &str, secs: u32) -> PathBuf {
    let wav = pbx.dir.join("tone-1k.wav");
    tone_wav_hz(&wav, 30, 1000.0);
    let dir = baresip_phone(pbx, "202", ip, ports(BASE + 5000), &wav, false);
    let mut b = Proc::spawn(
        "baresip 202",
        Command::new("baresip").arg("-f").arg(&dir).args([
            "-t",
            &secs.to_string(),
            "-e",
            &format!("/dial {dialled}"),
        ]),
        pbx.dir
            .join(format!("baresip-202-{dialled}-{}.log", ports(0))),
    );
    b.wait(Duration::from_secs(u64::from(secs) + 15));
    baresip_decoded(&dir).unwrap_or_else(|| {
        panic!(
            "baresip decoded nothing: {}\npbx: {}",
            b.output(),
            pbx.log()
        )
    })
}

/// Seconds of a WAV in which `hz` is clearly present (100 ms windows).
fn seconds_of(path: &Path, hz: f64) -> f64 {
    let bytes = std::fs::read(path).unwrap_or_default();
    let Ok(wav) = WavClip::parse(&bytes) else {
        return 0.0;
    };
    let rate = wav.rate.hz();
    let win = (rate / 10) as usize;
    let n = wav
        .to_mono()
        .chunks(win)
        .filter(|c| c.len() == win && to_db(goertzel(c, rate, hz)) > -35.0)
        .count();
    n as f64 / 10.0
}

fn list(pbx: &Pbx, ext: &str) -> Vec<serde_json::Value> {
    let out = pbx.cli(&["voicemail", "list", ext, "--json"], None);
    assert!(
        out.status.success(),
        "voicemail list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until `ext`'s mailbox has `n` messages (the daemon stores one as the call ends).
fn wait_for_messages(pbx: &Pbx, ext: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let l = list(pbx, ext);
        if l.len() >= n || std::time::Instant::now() > deadline {
            assert_eq!(l.len(), n, "{l:?}\npbx: {}", pbx.log());
            return l;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `voicemail play` of message `m` into a file; returns its path.
fn play(pbx: &Pbx, ext: &str, m: &serde_json::Value) -> PathBuf {
    let out_wav = pbx.dir.join(format!("played-{ext}-{}.wav", m["id"]));
    let id = m["id"].to_string();
    let out = pbx.cli(
        &[
            "voicemail",
            "play",
            ext,
            &id,
            "--out",
            &out_wav.display().to_string(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "voicemail play: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_wav
}

/// The stored message holds the caller's 1 kHz for about `secs` and none of the greeting.
fn holds_the_callers_tone(path: &Path, secs: f64) {
    let db = peak_tones(path, &[1000.0, CUE[0], CUE[1]]);
    assert!(db[0] > -30.0, "1 kHz missing from the message: {db:?}");
    assert!(
        db[1] < -45.0 && db[2] < -45.0,
        "the greeting was recorded into the message: {db:?}"
    );
    let tone = seconds_of(path, 1000.0);
    assert!(
        tone >= secs - 1.5 && tone <= secs + 1.5,
        "{tone} s of tone in the message, expected about {secs}"
    );
}

#[test]
fn an_unanswered_call_leaves_a_message_that_holds_the_callers_tone() {
    need("baresip", "baresip");
    let mut pbx = pbx();
    let mut p201 = phone(&pbx, "201", "127.0.0.40", "callee_cancel.xml");
    // Rings 2 s, greeting (six cues of 350 ms) and beep ~2.5 s, then the message until the
    // caller hangs up at 10 s: about 5.5 s of tone.
    let heard = call_with_tone(&pbx, "127.0.0.41", "201", 10);
    assert_eq!(
        p201.wait(Duration::from_secs(10)),
        0,
        "201 was not cancelled: {}",
        p201.output()
    );
    // The caller heard the greeting.
    let db = peak_tones(&heard, &CUE);
    assert!(db[0] > -35.0 && db[1] > -35.0, "greeting not heard: {db:?}");
    let msgs = wait_for_messages(&pbx, "201", 1);
    let m = &msgs[0];
    assert_eq!(m["caller"], "202", "{m}");
    assert_eq!(m["status"], "new", "{m}");
    let ms = m["duration_ms"].as_i64().unwrap();
    assert!((4000..=7500).contains(&ms), "{m}");
    let played = play(&pbx, "201", m);
    holds_the_callers_tone(&played, ms as f64 / 1000.0);
    // The file lives next to the database, and nothing half-written is left beside it.
    let path = PathBuf::from(m["path"].as_str().unwrap());
    assert!(path.starts_with(pbx.dir.join("voicemail/201")), "{m}");
    let names: Vec<String> = std::fs::read_dir(pbx.dir.join("voicemail/201"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        pbx.wait_metric("kentongan_voicemails_total", 1, Duration::from_secs(5)),
        1
    );
    assert_eq!(pbx.metric("kentongan_voicemail_messages_waiting"), 1);

    // kill -9 with what a crash mid-write leaves (a temporary file; a file renamed but whose
    // row was never committed): the message survives, the leftovers are gone at start.
    let dir = pbx.dir.join("voicemail/201");
    std::fs::write(dir.join(".tmp-999-9.wav"), b"RIFF half").unwrap();
    std::fs::write(dir.join("999-8.wav"), b"RIFF unlisted").unwrap();
    pbx.kill9();
    pbx.spawn();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "leftovers not removed at start: {names:?}");
    assert_eq!(
        list(&pbx, "201"),
        msgs,
        "the message changed across kill -9"
    );
    assert_eq!(pbx.metric("kentongan_voicemail_messages_waiting"), 1);

    // Delete: the row and the file go.
    let id = m["id"].to_string();
    let out = pbx.cli(&["voicemail", "delete", "201", &id], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(list(&pbx, "201").is_empty());
    assert!(!path.exists());
    assert_eq!(
        pbx.wait_metric(
            "kentongan_voicemail_messages_waiting",
            0,
            Duration::from_secs(5)
        ),
        0
    );
    let out = pbx.cli(&["voicemail", "delete", "201", &id], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no message") && err.contains("hint:"),
        "{err}"
    );
    let rows = pbx.cli(&["cdr", "list", "--json"], None);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&rows.stdout).unwrap();
    assert!(
        rows.iter().any(|r| r["caller"] == "202"
            && r["callee"] == "201"
            && r["disposition"] == "answered"),
        "{rows:?}"
    );
}

#[test]
fn busy_and_unregistered_extensions_reach_voicemail_too() {
    need("baresip", "baresip");
    let pbx = pbx();
    let mut p201 = phone(&pbx, "201", "127.0.0.42", "callee_busy.xml");
    let heard = call_with_tone(&pbx, "127.0.0.43", "201", 8);
    assert_eq!(p201.wait(Duration::from_secs(10)), 0, "{}", p201.output());
    // Busy greeting (one cue) and the beep: the caller heard the cue.
    let db = peak_tones(&heard, &CUE);
    assert!(db[0] > -35.0 && db[1] > -35.0, "greeting not heard: {db:?}");
    let msgs = wait_for_messages(&pbx, "201", 1);
    holds_the_callers_tone(
        &play(&pbx, "201", &msgs[0]),
        msgs[0]["duration_ms"].as_f64().unwrap() / 1000.0,
    );

    // 203 has never registered a phone: straight to its mailbox, no ringing.
    let _ = call_with_tone(&pbx, "127.0.0.44", "203", 8);
    let msgs = wait_for_messages(&pbx, "203", 1);
    let ms = msgs[0]["duration_ms"].as_i64().unwrap();
    // No ring time: a longer message than after 2 s of ringing (8 s − ~2.5 s greeting).
    assert!((4000..=6500).contains(&ms), "{:?}", msgs[0]);
    holds_the_callers_tone(&play(&pbx, "203", &msgs[0]), ms as f64 / 1000.0);
    assert_eq!(
        list(&pbx, "201").len(),
        1,
        "203's message went to its own box"
    );
}

#[test]
fn voicemail_cli_names_what_is_wrong() {
    let pbx = pbx();
    let out = pbx.cli(
        &["voicemail", "play", "201", "7", "--out", "/tmp/x.wav"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mailbox 201 has no message 7") && err.contains("voicemail list 201"),
        "{err}"
    );
    assert!(list(&pbx, "201").is_empty());

    // A PIN is stored hashed, never as typed; a bad one adds nothing.
    let out = pbx.cli(
        &[
            "user",
            "add",
            "204",
            "--password-stdin",
            "--voicemail-pin-stdin",
        ],
        Some("pw204-long-enough\n48213579\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut bytes = Vec::new();
    for f in ["pbx.db", "pbx.db-wal"] {
        bytes.extend(std::fs::read(pbx.dir.join(f)).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("48213579"),
        "the PIN is in the database as typed"
    );
    assert!(text.contains("$argon2id$"), "no PIN hash stored");
    let out = pbx.cli(
        &[
            "user",
            "add",
            "205",
            "--password-stdin",
            "--voicemail-pin-stdin",
        ],
        Some("pw205-long-enough\n12ab\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("4 to 16 digits") && err.contains("hint:"),
        "{err}"
    );
    let users = pbx.cli(&["user", "list"], None);
    let users = String::from_utf8_lossy(&users.stdout);
    assert!(users.contains("204") && !users.contains("205"), "{users}");
}

#[test]
fn message_waiting_is_notified_to_subscribers_and_registered_phones() {
    need("baresip", "baresip");
    let pbx = pbx();
    // 203 takes no calls (DND → busy → voicemail), so its phone only ever gets NOTIFYs.
    let out = pbx.cli(&["dnd", "on", "203"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 201 subscribes (and never registers: its calls go straight to voicemail).
    let inf = csv(
        &pbx,
        "mwi-201.csv",
        &["201", "pbx.local", &auth("201", "pw201")],
    );
    let port = ports(BASE + 5000).to_string();
    let mut sub = Proc::spawn(
        "sipp mwi 201",
        Command::new("sipp")
            .arg(pbx.sip())
            .arg("-sf")
            .arg(fixture("mwi_subscribe.xml"))
            .args(["-inf", &inf, "-i", "127.0.0.45", "-p", &port])
            .args(["-m", "1", "-nostdin", "-timeout", "120", "-timeout_error"])
            .current_dir(&pbx.dir),
        pbx.dir.join("sipp-mwi-201.log"),
    );
    std::thread::sleep(Duration::from_secs(1));
    call_with_tone(&pbx, "127.0.0.47", "201", 6);
    let m201 = wait_for_messages(&pbx, "201", 1);
    let p203_port = ports(BASE + 5000);
    assert_eq!(register(&pbx, "203", "pw203", "127.0.0.46", p203_port), 0);
    let mut p203 = sipp_phone(&pbx, "mwi_unsolicited.xml", "127.0.0.46", p203_port, &[]);
    call_with_tone(&pbx, "127.0.0.48", "203", 6);
    let m203 = wait_for_messages(&pbx, "203", 1);
    assert_eq!(
        p203.wait(Duration::from_secs(10)),
        0,
        "203's phone got no `yes 1/0`: {}\npbx: {}",
        p203.output(),
        pbx.log()
    );
    // A phone registering anew (a restart, another port) is told at once.
    let again = ports(BASE + 5000);
    assert_eq!(register(&pbx, "203", "pw203", "127.0.0.46", again), 0);
    let mut restarted = sipp_phone(&pbx, "mwi_unsolicited.xml", "127.0.0.46", again, &[]);
    assert_eq!(
        restarted.wait(Duration::from_secs(15)),
        0,
        "203's re-registered phone got no `yes 1/0`: {}\npbx: {}",
        restarted.output(),
        pbx.log()
    );
    let mut p203 = sipp_phone(
        &pbx,
        "mwi_unsolicited_none.xml",
        "127.0.0.46",
        p203_port,
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    for (ext, m) in [("201", &m201[0]), ("203", &m203[0])] {
        let out = pbx.cli(&["voicemail", "delete", ext, &m["id"].to_string()], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        sub.wait(Duration::from_secs(20)),
        0,
        "201's subscription: {}\npbx: {}",
        sub.output(),
        pbx.log()
    );
    assert_eq!(
        p203.wait(Duration::from_secs(20)),
        0,
        "203's phone got no `no 0/0`: {}\npbx: {}",
        p203.output(),
        pbx.log()
    );
}

/// 204 (password pw204-long-enough, PIN 4821) dials `*97` with its media on `keypad`.
fn call_mailbox(pbx: &Pbx, keypad: &Keypad) -> Proc {
    call_menu(pbx, keypad, "204", "pw204-long-enough", "*97")
}

/// `ext` dials `dialled` (a mailbox menu) with its media on `keypad`.
fn call_menu(pbx: &Pbx, keypad: &Keypad, ext: &str, password: &str, dialled: &str) -> Proc {
    let inf = csv(
        pbx,
        &format!("mailbox-{}.csv", ports(0)),
        &[
            ext,
            "pbx.local",
            &auth(ext, password),
            dialled,
            "127.0.0.49",
            &keypad.port().to_string(),
        ],
    );
    let port = ports(BASE + 5000).to_string();
    Proc::spawn(
        "sipp *97",
        Command::new("sipp")
            .arg(pbx.sip())
            .arg("-sf")
            .arg(fixture("caller_mailbox.xml"))
            .args(["-inf", &inf, "-i", "127.0.0.49", "-p", &port])
            .args(["-m", "1", "-nostdin", "-timeout", "90", "-timeout_error"])
            .current_dir(&pbx.dir),
        pbx.dir.join(format!("sipp-mailbox-{port}.log")),
    )
}

#[test]
fn star_97_with_the_pin_plays_the_message_and_7_deletes_it_three_wrong_pins_hang_up() {
    need("baresip", "baresip");
    let pbx = pbx();
    let out = pbx.cli(
        &[
            "user",
            "add",
            "204",
            "--password-stdin",
            "--voicemail-pin-stdin",
        ],
        Some("pw204-long-enough\n4821\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 204 has no phone registered: 202's call goes straight to its mailbox.
    call_with_tone(&pbx, "127.0.0.47", "204", 7);
    let msgs = wait_for_messages(&pbx, "204", 1);
    let path = PathBuf::from(msgs[0]["path"].as_str().unwrap());

    // Three wrong PINs: the PBX hangs up, the message stays.
    let keypad = Keypad::start("127.0.0.49");
    let mut caller = call_mailbox(&pbx, &keypad);
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(800));
    for wrong in ["1111#", "4822#", "48210#"] {
        keypad.press(wrong);
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "no BYE after three wrong PINs: {}\npbx: {}",
        caller.output(),
        pbx.log()
    );
    assert!(
        keypad.seconds_of(0, 1000.0) < 0.5,
        "a message played without the PIN"
    );
    assert_eq!(list(&pbx, "204").len(), 1);

    // *98 from another phone: the mailbox number, then its PIN; the message plays, * leaves.
    let keypad = Keypad::start("127.0.0.49");
    let mut caller = call_menu(&pbx, &keypad, "201", "pw201", "*98");
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(800));
    keypad.press("204#");
    std::thread::sleep(Duration::from_millis(600));
    keypad.press("4821#");
    let after_pin = keypad.heard_len();
    std::thread::sleep(Duration::from_secs(9));
    let tone = keypad.seconds_of(after_pin, 1000.0);
    assert!(
        tone >= 2.5,
        "*98: {tone} s of the message heard\npbx: {}",
        pbx.log()
    );
    keypad.press("*");
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "*98: no BYE after *: {}",
        caller.output()
    );
    assert_eq!(
        list(&pbx, "204")[0]["status"],
        "new",
        "* changed the message"
    );

    // The right PIN: the message plays (the caller hears its 1 kHz), 7 deletes it.
    let keypad = Keypad::start("127.0.0.49");
    let mut caller = call_mailbox(&pbx, &keypad);
    keypad.wait_answered();
    std::thread::sleep(Duration::from_millis(800));
    keypad.press("4821#");
    let after_pin = keypad.heard_len();
    // "You have 1 new 0 old, message from 2 0 2" (nine cues), then the message.
    std::thread::sleep(Duration::from_secs(9));
    let tone = keypad.seconds_of(after_pin, 1000.0);
    let expected = msgs[0]["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        tone >= expected - 1.5,
        "{tone} s of the message's 1 kHz heard, expected about {expected}\npbx: {}",
        pbx.log()
    );
    keypad.press("7");
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "no BYE after the last message: {}\npbx: {}",
        caller.output(),
        pbx.log()
    );
    assert!(list(&pbx, "204").is_empty());
    assert!(!path.exists(), "the deleted message's file is still there");
}
