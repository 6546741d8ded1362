//! Call recording with real phones: 201 is listed in `[recording] extensions`; 202 (baresip
//! playing 1 kHz) calls 201 (baresip playing 440 Hz), they talk for a few seconds and 202
//! hangs up. `recordings list --json` then shows one recording with the call's parties and
//! Call-ID (the CDR's), and its file is a stereo WAV whose left channel holds the caller's
//! 1 kHz and right channel the callee's 440 Hz, each without the other (decoded and checked
//! by frequency per channel). The phones still hear each other while recorded. A call that
//! an IVR menu bridged to 201 is recorded the same way.
//! Calls through a trunk are recorded too: 201 calling out through a sipp "provider" at
//! 127.0.0.97, and the provider calling 201 on a DID; each side's audio is a test keypad
//! with its own tone, `recordings list` names the trunk and the number (dialled out, or the
//! DID called in), and each tone is in its own channel of the WAV.
//! Needs baresip and sipp.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use kentongan_media::goertzel::{goertzel, to_db};
use kentongan_media::WavClip;

const BASE: u16 = 46560;

/// The loudest 100 ms of `hz` in one channel of interleaved stereo 8 kHz samples (dB).
fn peak(samples: &[i16], channel: usize, hz: f64) -> f64 {
    let mono: Vec<i16> = samples.iter().skip(channel).step_by(2).copied().collect();
    mono.chunks(800)
        .filter(|c| c.len() == 800)
        .map(|c| to_db(goertzel(c, 8000, hz)))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// 202 (1 kHz) dials `dialled`, which leads to 201 (440 Hz, recorded), talks, hangs up;
/// the recording is checked channel by channel.
fn recorded_call(dialled: &str, extra: &str) {
    need("baresip", "baresip");
    let rec_dir = std::env::temp_dir().join(format!("kentongan-rec-{}", ports(0)));
    let port = ports(BASE);
    let sounds = std::env::temp_dir()
        .join(format!("kentongan-pbx-e2e-{}-{port}", std::process::id()))
        .join("sounds");
    let pbx = Pbx::start_with(
        port,
        &format!(
            "\n[prompts]\ndirectory = \"{}\"\n\
             [recording]\nextensions = [\"201\"]\ndirectory = \"{}\"\nkeep_days = 90\n{extra}",
            sounds.display(),
            rec_dir.display()
        ),
    );
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    let port = ports(BASE + 3000);
    let (low, high) = (pbx.dir.join("440.wav"), pbx.dir.join("1k.wav"));
    tone_wav_hz(&low, 30, 440.0);
    tone_wav_hz(&high, 30, 1000.0);
    let callee_dir = baresip_phone(&pbx, "201", "127.0.0.95", port, &low, false);
    let caller_dir = baresip_phone(&pbx, "202", "127.0.0.96", port, &high, false);
    let ctrl = format!("127.0.0.96:{}", ports(BASE + 3000));
    with_ctrl_tcp(&caller_dir, &ctrl);
    let callee = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&callee_dir)
            .args(["-t", "40"]),
        pbx.dir.join("baresip-201.log"),
    );
    assert_eq!(
        pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10)),
        1,
        "201 did not register: {}",
        callee.output()
    );
    let caller = Proc::spawn(
        "baresip 202",
        Command::new("baresip").arg("-f").arg(&caller_dir).args([
            "-t",
            "40",
            "-e",
            &format!("/dial {dialled}"),
        ]),
        pbx.dir.join("baresip-202.log"),
    );
    std::thread::sleep(Duration::from_secs(if dialled == "201" { 9 } else { 14 }));
    baresip_ctrl(&ctrl, "hangup", "");

    let deadline = Instant::now() + Duration::from_secs(15);
    let list = loop {
        let out = pbx.cli(&["recordings", "list", "--json"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        if !list.is_empty() || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        list.len(),
        1,
        "{list:?}\npbx: {}\ncaller: {}",
        pbx.log(),
        caller.output()
    );
    let r = &list[0];
    assert_eq!(r["caller"], "202");
    assert_eq!(r["callee"], "201");
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    let cdr = String::from_utf8_lossy(&cdr.stdout);
    assert!(
        cdr.contains(r["call_id"].as_str().unwrap()),
        "the recording's call id is not the CDR's: {cdr}"
    );
    assert!(r["duration_ms"].as_i64().unwrap() >= 4000, "{r}");
    assert_eq!(pbx.metric("kentongan_recordings_total"), 1);

    let wav = WavClip::parse(&std::fs::read(r["path"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(wav.channels, 2);
    let (l1k, l440) = (peak(&wav.samples, 0, 1000.0), peak(&wav.samples, 0, 440.0));
    let (r1k, r440) = (peak(&wav.samples, 1, 1000.0), peak(&wav.samples, 1, 440.0));
    assert!(
        l1k > -30.0 && l440 < l1k - 15.0,
        "left (caller): 1 kHz {l1k} dB, 440 Hz {l440} dB"
    );
    assert!(
        r440 > -30.0 && r1k < r440 - 15.0,
        "right (callee): 440 Hz {r440} dB, 1 kHz {r1k} dB"
    );

    // The phones heard each other through the recording bridge.
    drop(callee);
    drop(caller);
    let heard = |dir: &std::path::Path, hz: f64| {
        baresip_decoded(dir).map_or(f64::NEG_INFINITY, |p| peak_tones(&p, &[hz])[0])
    };
    assert!(heard(&callee_dir, 1000.0) > -30.0, "201 did not hear 202");
    assert!(heard(&caller_dir, 440.0) > -30.0, "202 did not hear 201");
    let _ = std::fs::remove_dir_all(&rec_dir);
}

#[test]
fn a_recorded_call_leaves_a_stereo_wav_with_one_side_per_channel() {
    recorded_call("201", "");
}

/// The same through an IVR menu whose caller, pressing nothing, is handed to 201.
#[test]
fn a_call_an_ivr_bridged_to_201_is_recorded_too() {
    recorded_call(
        "700",
        "[[ivr]]\nnumber = \"700\"\ngreeting = \"Hello.\"\nlanguage = \"en\"\n\
         timeout_seconds = 1\nretries = 0\ninvalid = \"201\"\n",
    );
}

const TRUNK_IP: &str = "127.0.0.97";
const PHONE_IP: &str = "127.0.0.98";
const DID: &str = "+62215550100";

/// A daemon recording 201's calls, with a provider trunk at TRUNK_IP and a DID ringing 201.
struct TrunkOffice {
    pbx: Pbx,
    trunk_port: u16,
    phone_port: u16,
    dir: PathBuf,
}

impl Drop for TrunkOffice {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn trunk_office() -> TrunkOffice {
    let port = ports(BASE);
    let (trunk_port, phone_port) = (port + 5, port + 6);
    let dir =
        std::env::temp_dir().join(format!("kentongan-rec-trunk-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rates = dir.join("rates.csv");
    std::fs::write(&rates, "provider,+62,300,0,60\n").unwrap();
    let pbx = Pbx::start_with(
        port,
        &format!(
            r#"
[recording]
extensions = ["201"]
directory = "{}"
keep_days = 90

[[trunk]]
name = "provider"
kind = "provider"
address = "{TRUNK_IP}:{trunk_port}"
caller_id = "{DID}"

[[did]]
number = "{DID}"
to = "201"
trunk = "provider"

[lcr]
rates = "{}"
country = "62"
area_code = "21"
"#,
            dir.join("recordings").display(),
            rates.display()
        ),
    );
    pbx.add_user("201", "pw201");
    TrunkOffice {
        pbx,
        trunk_port,
        phone_port,
        dir,
    }
}

/// sipp at `ip:port` running `scenario` with `inf`, its -trace_logs in `log`.
fn sipp_client(pbx: &Pbx, scenario: &str, ip: &str, port: u16, inf: &str, log: &Path) -> Proc {
    let mut cmd = Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture(scenario))
        .args(["-inf", inf, "-i", ip, "-p", &port.to_string(), "-mi", ip])
        .args(["-m", "1", "-nostdin", "-timeout", "40", "-timeout_error"])
        .arg("-trace_logs")
        .arg("-log_file")
        .arg(log)
        .current_dir(&pbx.dir);
    Proc::spawn(scenario, &mut cmd, pbx.dir.join(format!("sipp-{port}.out")))
}

/// The PBX's media port in the answer the sipp client logged ("PBX m=audio N").
fn answered_media_port(log: &Path, client: &Proc) -> std::net::SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(p) = text
            .lines()
            .find_map(|l| l.strip_prefix("PBX m=audio "))
            .and_then(|p| p.trim().parse::<u16>().ok())
        {
            return std::net::SocketAddr::from(([127, 0, 0, 1], p));
        }
        assert!(Instant::now() < deadline, "no answer: {}", client.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one recording, once listed, after the call ended.
fn the_recording(pbx: &Pbx) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = pbx.cli(&["recordings", "list", "--json"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        if !list.is_empty() {
            assert_eq!(list.len(), 1, "{list:?}");
            return list[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no recording\npbx: {}",
            pbx.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Left (caller) holds `left_hz` and not `right_hz`, right (callee) the other way round.
fn one_tone_per_channel(r: &serde_json::Value, left_hz: f64, right_hz: f64) {
    let wav = WavClip::parse(&std::fs::read(r["path"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(wav.channels, 2);
    let (ll, lr) = (
        peak(&wav.samples, 0, left_hz),
        peak(&wav.samples, 0, right_hz),
    );
    let (rr, rl) = (
        peak(&wav.samples, 1, right_hz),
        peak(&wav.samples, 1, left_hz),
    );
    assert!(
        ll > -30.0 && lr < ll - 15.0,
        "left (caller): {left_hz} Hz {ll} dB, {right_hz} Hz {lr} dB"
    );
    assert!(
        rr > -30.0 && rl < rr - 15.0,
        "right (callee): {right_hz} Hz {rr} dB, {left_hz} Hz {rl} dB"
    );
}

#[test]
fn a_call_out_through_a_trunk_is_recorded_with_the_trunk_and_number() {
    need("sipp", "sip-tester");
    let o = trunk_office();
    // The provider answers with its media on a keypad sending 440 Hz.
    let far = Keypad::start_with_tone(TRUNK_IP, 440.0);
    let mut provider = sipp_phone(
        &o.pbx,
        "callee_answer.xml",
        TRUNK_IP,
        o.trunk_port,
        &["-key", "rtp_sink", &far.port().to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    // 201 (1 kHz) dials a mobile number and hangs up after 6 s.
    let phone = Keypad::start_with_tone(PHONE_IP, 1000.0);
    let inf = csv(
        &o.pbx,
        "out.csv",
        &[
            "201",
            "pbx.local",
            &auth("201", "pw201"),
            "081234567890",
            PHONE_IP,
            &phone.port().to_string(),
            "6000",
        ],
    );
    let log = o.pbx.dir.join("out-caller.log");
    let mut caller = sipp_client(
        &o.pbx,
        "caller_media_hangup.xml",
        PHONE_IP,
        o.phone_port,
        &inf,
        &log,
    );
    phone.aim(answered_media_port(&log, &caller));
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "{}\npbx: {}",
        caller.output(),
        o.pbx.log()
    );
    assert_eq!(
        provider.wait(Duration::from_secs(10)),
        0,
        "{}",
        provider.output()
    );

    let r = the_recording(&o.pbx);
    assert_eq!(r["caller"], "201", "{r}");
    assert_eq!(r["callee"], "081234567890", "{r}");
    assert_eq!(r["trunk"], "provider", "{r}");
    assert_eq!(r["number"], "+6281234567890", "{r}");
    assert!(r["duration_ms"].as_i64().unwrap() >= 4000, "{r}");
    one_tone_per_channel(&r, 1000.0, 440.0);
    // Both ends heard each other through the recording bridge.
    assert!(
        phone.seconds_of(0, 440.0) >= 3.0,
        "201 did not hear the far end"
    );
    assert!(
        far.seconds_of(0, 1000.0) >= 3.0,
        "the far end did not hear 201"
    );
    let text = o.pbx.cli(&["recordings", "list"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("\tprovider\t+6281234567890\t"), "{text}");
}

#[test]
fn a_call_in_on_a_did_to_201_is_recorded_with_the_trunk_and_did() {
    need("sipp", "sip-tester");
    let o = trunk_office();
    // 201 answers with its media on a keypad sending 440 Hz.
    assert_eq!(register(&o.pbx, "201", "pw201", PHONE_IP, o.phone_port), 0);
    let near = Keypad::start_with_tone(PHONE_IP, 440.0);
    let mut phone = sipp_phone(
        &o.pbx,
        "callee_answer.xml",
        PHONE_IP,
        o.phone_port,
        &["-key", "rtp_sink", &near.port().to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    // The provider's caller (1 kHz) calls the DID and hangs up after 6 s.
    let far = Keypad::start_with_tone(TRUNK_IP, 1000.0);
    let inf = csv(
        &o.pbx,
        "in.csv",
        &[
            "+6281100011",
            DID,
            TRUNK_IP,
            &far.port().to_string(),
            "6000",
        ],
    );
    let log = o.pbx.dir.join("in-provider.log");
    let mut provider = sipp_client(
        &o.pbx,
        "inbound_answered.xml",
        TRUNK_IP,
        o.trunk_port,
        &inf,
        &log,
    );
    far.aim(answered_media_port(&log, &provider));
    assert_eq!(
        provider.wait(Duration::from_secs(30)),
        0,
        "{}\npbx: {}",
        provider.output(),
        o.pbx.log()
    );
    assert_eq!(phone.wait(Duration::from_secs(10)), 0, "{}", phone.output());

    let r = the_recording(&o.pbx);
    assert_eq!(r["callee"], "201", "{r}");
    assert!(r["caller"].as_str().unwrap().ends_with("81100011"), "{r}");
    assert_eq!(r["trunk"], "provider", "{r}");
    assert_eq!(r["number"], DID, "{r}");
    assert!(r["duration_ms"].as_i64().unwrap() >= 4000, "{r}");
    one_tone_per_channel(&r, 1000.0, 440.0);
    assert!(
        near.seconds_of(0, 1000.0) >= 3.0,
        "201 did not hear the caller"
    );
    assert!(
        far.seconds_of(0, 440.0) >= 3.0,
        "the caller did not hear 201"
    );
}
