//! Voicemail to email against a real SMTP server (Python's aiosmtpd, Debian's
//! python3-aiosmtpd, run by tests/fixtures/pbx/smtp_sink.py on loopback). A baresip caller
//! with a display name plays a 1 kHz tone into the mailbox of 201, which has no phone
//! registered and an address set with `user set 201 --email`; the mail that arrives names
//! the caller in its subject and carries the message as an `audio/wav` attachment that
//! decodes to the caller's 1 kHz (Goertzel). With the relay down the mail waits in
//! `voicemail queue` with the relay's error and arrives once the server is started.
//! The mailbox options (`*97`, then `0`): `1` records the unavailable greeting (a sipp caller
//! sending 1 kHz), which the next caller hears instead of the generated one; `5` changes the
//! PIN, after which the old PIN fails and the new one plays the messages (RFC 4733 keys
//! throughout). `2` records the busy greeting and `3` the name, each with its own tone: a
//! caller of the busy extension hears the busy one, a caller nobody answers hears the name
//! (read by the generated greeting) and never the busy one.
//! STARTTLS (`?tls=starttls`) and smtps:// are tested against aiosmtpd with a CA and a relay
//! certificate made by openssl for the run (`smtp_ca`); a CA that did not sign the relay's
//! certificate keeps the mail queued. The address comes from `[[extension_settings]] email`.
//! Needs baresip, sipp, openssl and python3-aiosmtpd.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use kentongan_media::goertzel::{goertzel, to_db};
use kentongan_media::WavClip;

const BASE: u16 = 47060;
/// The interpreter Debian's python3-aiosmtpd is installed for (a python3 earlier on PATH may
/// be another one).
const PYTHON: &str = "/usr/bin/python3";

fn need_aiosmtpd() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{PYTHON} cannot import aiosmtpd: install it with `apt-get install python3-aiosmtpd`"
    );
}

/// A real SMTP server on `ip:port`, keeping each mail in `dir` (see smtp_sink.py).
fn smtp_sink(pbx: &Pbx, ip: &str, port: u16, dir: &Path) -> Proc {
    smtp_sink_tls(pbx, ip, port, dir, &[])
}

/// As [`smtp_sink`], with smtp_sink.py's TLS arguments (`starttls|implicit CERT KEY`).
fn smtp_sink_tls(pbx: &Pbx, ip: &str, port: u16, dir: &Path, tls: &[&Path]) -> Proc {
    let p = Proc::spawn(
        "smtp sink",
        Command::new(PYTHON)
            .arg(fixture("smtp_sink.py"))
            .args([ip, &port.to_string()])
            .arg(dir)
            .args(tls),
        pbx.dir.join(format!("smtp-{port}.log")),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the SMTP server did not start: {}",
            p.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p
}

/// A daemon with voicemail in `language`; with `smtp`, mailing to that relay. The prompts
/// folder is empty, so each prompt is the PBX's two-tone cue (660 then 880 Hz).
fn pbx_with(smtp: Option<&str>, language: &str) -> Pbx {
    let mail = smtp.map_or(String::new(), |s| {
        format!("smtp = \"{s}\"\nfrom = \"pbx@kantor.local\"\n")
    });
    pbx_toml(&mail, language, "")
}

/// As [`pbx_with`], with `mail` (lines of `[voicemail]`) and `tail` (tables after it) as given.
fn pbx_toml(mail: &str, language: &str, tail: &str) -> Pbx {
    let sounds =
        std::env::temp_dir().join(format!("kentongan-vmmail-no-sounds-{}", std::process::id()));
    let pbx = Pbx::start_with(
        ports(BASE),
        &format!(
            "\n[prompts]\ndirectory = \"{}\"\n\
             [voicemail]\nenabled = true\nring_seconds = 2\nmax_message_seconds = 60\n\
             language = \"{language}\"\n{mail}{tail}",
            sounds.display()
        ),
    );
    for ext in ["201", "202"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    pbx
}

fn pbx(smtp: &str, language: &str) -> Pbx {
    let pbx = pbx_with(Some(smtp), language);
    let out = pbx.cli(&["user", "set", "201", "--email", "ani@kantor.local"], None);
    assert!(
        out.status.success(),
        "user set --email: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pbx
}

/// 202 ("Budi Santoso", baresip at `ip`) calls 201, which has no phone registered, so its
/// mailbox answers at once; it plays 1 kHz for `secs` seconds, then hangs up.
fn leave_tone_message(pbx: &Pbx, ip: &str, secs: u32) {
    let wav = pbx.dir.join("tone-1k.wav");
    tone_wav_hz(&wav, 30, 1000.0);
    let dir = baresip_phone(pbx, "202", ip, ports(BASE + 5000), &wav, false);
    let accounts = dir.join("accounts");
    let line = std::fs::read_to_string(&accounts).unwrap();
    std::fs::write(&accounts, format!("\"Budi Santoso\" {line}")).unwrap();
    let mut b = Proc::spawn(
        "baresip 202",
        Command::new("baresip").arg("-f").arg(&dir).args([
            "-t",
            &secs.to_string(),
            "-e",
            "/dial 201",
        ]),
        pbx.dir.join(format!("baresip-202-{}.log", ports(0))),
    );
    b.wait(Duration::from_secs(u64::from(secs) + 15));
}

fn queue(pbx: &Pbx) -> Vec<serde_json::Value> {
    let out = pbx.cli(&["voicemail", "queue", "--json"], None);
    assert!(
        out.status.success(),
        "voicemail queue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits (generously) for the sink's first mail; returns its summary.
fn wait_for_mail(pbx: &Pbx, dir: &Path, within: Duration) -> serde_json::Value {
    let path = dir.join("1.json");
    let deadline = Instant::now() + within;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "no mail arrived; queue: {:?}\npbx: {}",
            queue(pbx),
            pbx.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
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

/// The mail's one attachment is an `audio/wav` WAV holding the caller's 1 kHz.
fn attachment_holds_the_tone(mail: &serde_json::Value, dir: &Path) -> PathBuf {
    let atts = mail["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 1, "{mail}");
    assert_eq!(atts[0]["content_type"], "audio/wav", "{mail}");
    let name = atts[0]["filename"].as_str().unwrap();
    assert!(
        name.starts_with("voicemail-201-") && name.ends_with(".wav"),
        "{mail}"
    );
    let wav = dir.join(atts[0]["file"].as_str().unwrap());
    let db = peak_tones(&wav, &[1000.0]);
    assert!(db[0] > -30.0, "1 kHz missing from the attached WAV: {db:?}");
    let secs = seconds_of(&wav, 1000.0);
    assert!(secs >= 3.0, "only {secs} s of 1 kHz in the attached WAV");
    wav
}

#[test]
fn a_message_is_mailed_with_the_wav_and_the_callers_name() {
    need("baresip", "baresip");
    need_aiosmtpd();
    let port = ports(BASE + 3000);
    let pbx = pbx(&format!("smtp://127.0.0.100:{port}"), "en");
    let mails = pbx.dir.join("mail");
    let _sink = smtp_sink(&pbx, "127.0.0.100", port, &mails);

    leave_tone_message(&pbx, "127.0.0.101", 8);
    let mail = wait_for_mail(&pbx, &mails, Duration::from_secs(60));
    assert_eq!(mail["envelope_to"], serde_json::json!(["ani@kantor.local"]));
    assert_eq!(mail["envelope_from"], "pbx@kantor.local");
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("Voicemail from Budi Santoso (202), 0:0"),
        "{mail}"
    );
    let body = mail["body"].as_str().unwrap();
    assert!(
        body.contains("mailbox 201") && body.contains("Budi Santoso (202)"),
        "{body}"
    );
    let wav = attachment_holds_the_tone(&mail, &mails);
    // The attachment is the stored message, byte for byte.
    let stored: Vec<serde_json::Value> = serde_json::from_slice(
        &pbx.cli(&["voicemail", "list", "201", "--json"], None)
            .stdout,
    )
    .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        std::fs::read(stored[0]["path"].as_str().unwrap()).unwrap(),
        std::fs::read(&wav).unwrap()
    );
    // Delivered mail leaves the queue.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !queue(&pbx).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", queue(&pbx));
        std::thread::sleep(Duration::from_millis(250));
    }

    // The address is checked, and `none` stops the mailing.
    let out = pbx.cli(&["user", "set", "201", "--email", "ani at kantor"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"ani at kantor\" is not a plain mail address") && err.contains("hint:"),
        "{err}"
    );
    let out = pbx.cli(&["user", "set", "299", "--email", "x@kantor.local"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(pbx
        .cli(&["user", "set", "201", "--email", "none"], None)
        .status
        .success());
}

#[test]
fn with_the_relay_down_the_mail_waits_and_arrives_once_it_is_back() {
    need("baresip", "baresip");
    need_aiosmtpd();
    let port = ports(BASE + 3000);
    let pbx = pbx(&format!("smtp://127.0.0.102:{port}"), "id");

    leave_tone_message(&pbx, "127.0.0.103", 8);
    // Nothing listens yet: the mail stays queued with the relay's error.
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let q = queue(&pbx);
        if q.first().is_some_and(|m| !m["last_error"].is_null()) {
            break q;
        }
        assert!(
            Instant::now() < deadline,
            "no failed try queued: {q:?}\npbx: {}",
            pbx.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["to"], "ani@kantor.local");
    let err = waiting[0]["last_error"].as_str().unwrap();
    assert!(err.contains(&format!("127.0.0.102:{port}")), "{err}");
    let text = pbx.cli(&["voicemail", "queue"], None);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("ani@kantor.local"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    let mails = pbx.dir.join("mail");
    let _sink = smtp_sink(&pbx, "127.0.0.102", port, &mails);
    let mail = wait_for_mail(&pbx, &mails, Duration::from_secs(120));
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("Pesan suara dari Budi Santoso (202)"),
        "{mail}"
    );
    assert!(
        mail["body"].as_str().unwrap().contains("kotak suara 201"),
        "{mail}"
    );
    attachment_holds_the_tone(&mail, &mails);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !queue(&pbx).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", queue(&pbx));
        std::thread::sleep(Duration::from_millis(250));
    }
    // Sent once: the only mail the server has.
    assert!(!mails.join("2.json").exists());
}

/// `ext` dials `dialled` from sipp at `ip`, its media on `keypad`.
fn call_menu(
    pbx: &Pbx,
    keypad: &Keypad,
    ext: &str,
    password: &str,
    dialled: &str,
    ip: &str,
) -> Proc {
    let inf = csv(
        pbx,
        &format!("menu-{}.csv", ports(0)),
        &[
            ext,
            "pbx.local",
            &auth(ext, password),
            dialled,
            ip,
            &keypad.port().to_string(),
        ],
    );
    let port = ports(BASE + 5000).to_string();
    Proc::spawn(
        "sipp menu",
        Command::new("sipp")
            .arg(pbx.sip())
            .arg("-sf")
            .arg(fixture("caller_mailbox.xml"))
            .args(["-inf", &inf, "-i", ip, "-p", &port])
            .args(["-m", "1", "-nostdin", "-timeout", "90", "-timeout_error"])
            .current_dir(&pbx.dir),
        pbx.dir.join(format!("sipp-menu-{port}.log")),
    )
}

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn mailbox_options_record_a_greeting_callers_hear_and_change_the_pin() {
    need("sipp", "sip-tester");
    let pbx = pbx_with(None, "en");
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

    // 204 in its (empty) mailbox: PIN, 0 options, 1 records ~4 s of its 1 kHz, # ends it;
    // 5 changes the PIN to 1357 (typed twice), * hangs up.
    let keypad = Keypad::start_with_tone("127.0.0.104", 1000.0);
    let mut caller = call_menu(
        &pbx,
        &keypad,
        "204",
        "pw204-long-enough",
        "*97",
        "127.0.0.104",
    );
    keypad.wait_answered();
    pause(800);
    keypad.press("4821#");
    pause(2000);
    keypad.press("0");
    pause(1000);
    keypad.press("1");
    pause(5000);
    keypad.press("#");
    pause(1500);
    keypad.press("5");
    pause(1000);
    keypad.press("1357#");
    pause(1000);
    keypad.press("1357#");
    pause(2000);
    keypad.press("*");
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "no BYE after *: {}\npbx: {}",
        caller.output(),
        pbx.log()
    );
    let greeting = pbx.dir.join("voicemail/204/greeting-unavailable.wav");
    let secs = seconds_of(&greeting, 1000.0);
    assert!(
        (2.5..=6.0).contains(&secs),
        "{secs} s of 1 kHz in the recorded greeting\npbx: {}",
        pbx.log()
    );
    assert!(
        pbx.log().contains("voicemail PIN changed by phone"),
        "{}",
        pbx.log()
    );

    // 201 calls 204 (no phone registered): the recorded greeting plays, then the beep; it
    // leaves ~3 s of 1 kHz and ends with #.
    let keypad = Keypad::start_with_tone("127.0.0.105", 1000.0);
    let mut caller = call_menu(&pbx, &keypad, "201", "pw201", "204", "127.0.0.105");
    keypad.wait_answered();
    pause(6500);
    let heard = keypad.seconds_of(0, 1000.0);
    assert!(
        heard >= 2.5,
        "the caller heard {heard} s of the recorded 1 kHz greeting\npbx: {}",
        pbx.log()
    );
    pause(3000);
    keypad.press("#");
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "no BYE after the message: {}",
        caller.output()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = pbx.cli(&["voicemail", "list", "204", "--json"], None);
        let l: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        if l.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{l:?}\npbx: {}", pbx.log());
        pause(200);
    }

    // The old PIN no longer opens the mailbox; the new one plays the message's 1 kHz.
    let keypad = Keypad::start("127.0.0.106");
    let mut caller = call_menu(
        &pbx,
        &keypad,
        "204",
        "pw204-long-enough",
        "*97",
        "127.0.0.106",
    );
    keypad.wait_answered();
    pause(800);
    keypad.press("4821#");
    pause(3000);
    let before = keypad.heard_len();
    assert!(
        keypad.seconds_of(0, 1000.0) < 0.5,
        "the old PIN played the message"
    );
    keypad.press("1357#");
    pause(9000);
    let tone = keypad.seconds_of(before, 1000.0);
    assert!(
        tone >= 2.0,
        "{tone} s of the message heard after the new PIN\npbx: {}",
        pbx.log()
    );
    keypad.press("*");
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "{}",
        caller.output()
    );
}

/// 205 records a greeting from its mailbox options (`option`: `2` busy, `3` name) while its
/// keypad sends `hz`; returns the greeting's file.
fn record_greeting(pbx: &Pbx, option: &str, hz: f64) -> PathBuf {
    let keypad = Keypad::start_with_tone("127.0.0.107", hz);
    let mut caller = call_menu(
        pbx,
        &keypad,
        "205",
        "pw205-long-enough",
        "*97",
        "127.0.0.107",
    );
    keypad.wait_answered();
    pause(800);
    keypad.press("4821#");
    pause(2000);
    keypad.press("0");
    pause(1000);
    keypad.press(option);
    pause(5000);
    keypad.press("#");
    pause(1500);
    keypad.press("*");
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "no BYE after *: {}\npbx: {}",
        caller.output(),
        pbx.log()
    );
    let stem = if option == "2" { "busy" } else { "name" };
    let path = pbx.dir.join(format!("voicemail/205/greeting-{stem}.wav"));
    let secs = seconds_of(&path, hz);
    assert!(
        (2.5..=6.0).contains(&secs),
        "{secs} s of {hz} Hz in the recorded {stem} greeting\npbx: {}",
        pbx.log()
    );
    path
}

/// 201 calls 205 and listens for 6.5 s; returns seconds of (`busy_hz`, `name_hz`) heard.
fn greeting_heard(pbx: &Pbx, busy_hz: f64, name_hz: f64) -> (f64, f64) {
    let keypad = Keypad::start("127.0.0.109");
    let mut caller = call_menu(pbx, &keypad, "201", "pw201", "205", "127.0.0.109");
    keypad.wait_answered();
    pause(6500);
    let heard = (keypad.seconds_of(0, busy_hz), keypad.seconds_of(0, name_hz));
    keypad.press("#");
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "no BYE after the message: {}",
        caller.output()
    );
    heard
}

#[test]
fn the_busy_greeting_plays_when_busy_and_the_name_is_read_when_unanswered() {
    need("sipp", "sip-tester");
    const BUSY_HZ: f64 = 1200.0;
    const NAME_HZ: f64 = 1800.0;
    let pbx = pbx_with(None, "en");
    let out = pbx.cli(
        &[
            "user",
            "add",
            "205",
            "--password-stdin",
            "--voicemail-pin-stdin",
        ],
        Some("pw205-long-enough\n4821\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    record_greeting(&pbx, "2", BUSY_HZ);
    record_greeting(&pbx, "3", NAME_HZ);

    // No phone registered (unavailable): the generated greeting reads the recorded name.
    let (busy, name) = greeting_heard(&pbx, BUSY_HZ, NAME_HZ);
    assert!(
        name >= 2.5 && busy < 0.3,
        "unanswered: {name} s of the name, {busy} s of the busy greeting\npbx: {}",
        pbx.log()
    );

    // 205's phone answers busy: the caller hears the busy greeting, not the name.
    let port = ports(BASE + 5000);
    assert_eq!(
        register(&pbx, "205", "pw205-long-enough", "127.0.0.108", port),
        0
    );
    let mut phone = sipp_phone(&pbx, "callee_busy.xml", "127.0.0.108", port, &[]);
    let (busy, name) = greeting_heard(&pbx, BUSY_HZ, NAME_HZ);
    assert_eq!(phone.wait(Duration::from_secs(10)), 0, "{}", phone.output());
    assert!(
        busy >= 2.5 && name < 0.3,
        "busy: {busy} s of the busy greeting, {name} s of the name\npbx: {}",
        pbx.log()
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority made for this run (`<name>-ca.pem`) and, signed by it, a server
/// certificate for `ip` (`<name>.pem`, key `<name>.key`). Returns (CA, certificate, key).
fn make_certificates(dir: &Path, name: &str, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    need("openssl", "openssl");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    let ca_subject = format!("/CN=Kentongan test CA {name}");
    let mut args = vec!["req", "-x509", "-days", "2", "-subj", &ca_subject];
    args.extend(ec);
    args.extend(["-keyout", &ca_key, "-out", &ca]);
    openssl(dir, &args);
    let (csr, key, cert) = (
        format!("{name}.csr"),
        format!("{name}.key"),
        format!("{name}.pem"),
    );
    let subject = format!("/CN={ip}");
    let mut args = vec!["req", "-subj", &subject];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(dir, &args);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName = IP:{ip}\nbasicConstraints = CA:FALSE\n\
             extendedKeyUsage = serverAuth\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// A daemon mailing through `smtp` with `smtp_ca`; 201's address is given only by
/// `[[extension_settings]]` (`user set --email` stores another, which the file overrides).
fn tls_pbx(smtp: &str, ca: &Path) -> Pbx {
    let pbx = pbx_toml(
        &format!(
            "smtp = \"{smtp}\"\nsmtp_ca = \"{}\"\nfrom = \"pbx@kantor.local\"\n",
            ca.display()
        ),
        "en",
        "[[extension_settings]]\nnumber = \"201\"\nemail = \"ani.kantor@kantor.local\"\n",
    );
    let out = pbx.cli(&["user", "set", "201", "--email", "old@kantor.local"], None);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mailed to ani.kantor@kantor.local"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pbx
}

#[test]
fn starttls_to_a_relay_with_a_certificate_of_smtp_ca_and_the_address_from_extension_settings() {
    need("baresip", "baresip");
    need_aiosmtpd();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(certs.path(), "relay", "127.0.0.100");
    let port = ports(BASE + 3000);
    let pbx = tls_pbx(&format!("smtp://127.0.0.100:{port}?tls=starttls"), &ca);
    let mails = pbx.dir.join("mail");
    // The relay refuses mail before STARTTLS.
    let _sink = smtp_sink_tls(
        &pbx,
        "127.0.0.100",
        port,
        &mails,
        &[Path::new("starttls"), &cert, &key],
    );

    leave_tone_message(&pbx, "127.0.0.101", 8);
    let mail = wait_for_mail(&pbx, &mails, Duration::from_secs(60));
    assert_eq!(mail["tls"], "starttls", "{mail}");
    assert_eq!(
        mail["envelope_to"],
        serde_json::json!(["ani.kantor@kantor.local"])
    );
    attachment_holds_the_tone(&mail, &mails);
}

#[test]
fn smtps_checks_the_relay_certificate_against_smtp_ca() {
    need("baresip", "baresip");
    need_aiosmtpd();
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(certs.path(), "relay", "127.0.0.102");
    let (other_ca, _, _) = make_certificates(certs.path(), "other", "127.0.0.102");
    let implicit = [Path::new("implicit"), &cert, &key];

    // A CA that did not sign the relay's certificate: nothing is sent, the mail waits with
    // the reason.
    let port = ports(BASE + 3000);
    let pbx = tls_pbx(&format!("smtps://127.0.0.102:{port}"), &other_ca);
    let mails = pbx.dir.join("mail");
    let _sink = smtp_sink_tls(&pbx, "127.0.0.102", port, &mails, &implicit);
    leave_tone_message(&pbx, "127.0.0.103", 6);
    let deadline = Instant::now() + Duration::from_secs(60);
    let err = loop {
        if let Some(e) = queue(&pbx)
            .first()
            .and_then(|m| m["last_error"].as_str().map(str::to_owned))
        {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no failed try\npbx: {}",
            pbx.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(
        !mails.join("1.json").exists(),
        "mailed to an unchecked relay"
    );
    drop(pbx);

    // The CA that signed it: TLS from the first byte, and the mail arrives.
    let port = ports(BASE + 3000);
    let pbx = tls_pbx(&format!("smtps://127.0.0.102:{port}"), &ca);
    let mails = pbx.dir.join("mail");
    let _sink = smtp_sink_tls(&pbx, "127.0.0.102", port, &mails, &implicit);
    leave_tone_message(&pbx, "127.0.0.103", 8);
    let mail = wait_for_mail(&pbx, &mails, Duration::from_secs(60));
    assert_eq!(mail["tls"], "implicit", "{mail}");
    assert_eq!(
        mail["envelope_to"],
        serde_json::json!(["ani.kantor@kantor.local"])
    );
    attachment_holds_the_tone(&mail, &mails);
}
