//! Conference rooms with real phones: three baresip members, each playing its own tone (one of
//! them on Opus), each must hear the other two and not itself; what they hear is decoded by
//! baresip and checked by frequency (Goertzel). PIN entry is driven by sipp with RFC 4733
//! events from pcaps: three wrong PINs hang up, the right one joins. The CLI lists, mutes and
//! kicks members of the running daemon.
//! Needs baresip and sipp; run by scripts/test.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use kentongan_media::goertzel::{goertzel, to_db};
use kentongan_media::WavClip;

const ROOMS: &str = "\n[[conference]]\nnumber = \"800\"\nname = \"Ruang Rapat\"\n\
                     [[conference]]\nnumber = \"801\"\nname = \"Direksi\"\npin = \"56\"\n";

/// Power (dB) of each frequency in a decoded WAV, over `from`..`to` seconds.
fn tones(path: &Path, from: f64, to: f64, freqs: &[f64]) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let Ok(wav) = WavClip::parse(&bytes) else {
        return vec![f64::NEG_INFINITY; freqs.len()];
    };
    let rate = wav.rate.hz();
    let mono = wav.to_mono();
    let a = ((from * f64::from(rate)) as usize).min(mono.len());
    let b = ((to * f64::from(rate)) as usize).min(mono.len());
    freqs
        .iter()
        .map(|f| to_db(goertzel(&mono[a..b], rate, *f)))
        .collect()
}

fn members(pbx: &harness::Pbx) -> serde_json::Value {
    let out = pbx.cli(&["conference", "list", "--json"], None);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn room_members(pbx: &harness::Pbx, room: &str) -> Vec<serde_json::Value> {
    members(pbx)
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["number"] == room)
        .flat_map(|r| r["members"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn wait_members(
    pbx: &harness::Pbx,
    room: &str,
    n: usize,
    within: Duration,
) -> Vec<serde_json::Value> {
    let end = Instant::now() + within;
    loop {
        let m = room_members(pbx, room);
        if m.len() == n || Instant::now() > end {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_baresip_members_each_hear_the_two_others_and_never_themselves() {
    need("baresip", "baresip");
    let pbx = harness::Pbx::start_with(ports(28400), ROOMS);
    let phones = [
        ("201", "127.0.0.11", 400.0, "PCMU"),
        ("202", "127.0.0.12", 700.0, "PCMU"),
        ("203", "127.0.0.13", 1100.0, "opus"),
    ];
    let port = ports(28400 + 3000);
    let mut procs = Vec::new();
    let mut dirs = Vec::new();
    for (ext, ip, hz, codec) in phones {
        pbx.add_user(ext, &format!("pw{ext}"));
        let wav = pbx.dir.join(format!("tone-{ext}.wav"));
        tone_wav_hz(&wav, 30, hz);
        let dir = baresip_phone_with(&pbx, ext, ip, port, &wav, false, codec);
        procs.push(Proc::spawn(
            &format!("baresip {ext}"),
            Command::new("baresip")
                .arg("-f")
                .arg(&dir)
                .args(["-t", "14", "-e", "/dial 800"]),
            pbx.dir.join(format!("baresip-{ext}.log")),
        ));
        dirs.push(dir);
    }
    let logs = |procs: &[Proc]| {
        procs
            .iter()
            .map(|p| p.output())
            .collect::<Vec<_>>()
            .join("\n----\n")
            + &format!("\n---- pbx\n{}", pbx.log())
    };
    let inside = wait_members(&pbx, "800", 3, Duration::from_secs(10));
    assert_eq!(inside.len(), 3, "{}", logs(&procs));
    // Talk detection: every member plays a tone, so every one is talking.
    std::thread::sleep(Duration::from_secs(2));
    let inside = room_members(&pbx, "800");
    assert!(
        inside.iter().all(|m| m["talking"] == true),
        "talking: {inside:?}"
    );
    assert!(pbx.metric("kentongan_conference_members") == 3);
    // The CLI mutes 202 for the rest of the call: its 700 Hz must leave the others' mix.
    let m202 = inside
        .iter()
        .find(|m| m["extension"] == "202")
        .and_then(|m| m["member"].as_i64())
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let muted_at = Instant::now();
    let out = pbx.cli(&["conference", "mute", "800", &m202.to_string()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        room_members(&pbx, "800")
            .iter()
            .find(|m| m["extension"] == "202")
            .map(|m| m["muted"].clone()),
        Some(serde_json::Value::Bool(true))
    );
    let _ = muted_at;
    for p in &mut procs {
        p.wait(Duration::from_secs(30));
    }
    let freqs: Vec<f64> = phones.iter().map(|p| p.2).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let wav = baresip_decoded(dir)
            .unwrap_or_else(|| panic!("{} decoded nothing: {}", phones[i].0, logs(&procs)));
        // While all three talk (seconds 2 to 4 of the call): the two others, not itself.
        let before = tones(&wav, 2.0, 4.0, &freqs);
        for (j, db) in before.iter().enumerate() {
            let what = format!(
                "{} hears {} Hz at {db:.1} dB (all: {before:?})",
                phones[i].0, freqs[j]
            );
            if i == j {
                assert!(*db < -45.0, "its own tone: {what}");
            } else {
                assert!(*db > -35.0, "missing: {what}\n{}", logs(&procs));
            }
        }
        // After the mute (the last two seconds): 202's tone is gone for the others.
        let clip = std::fs::read(&wav)
            .ok()
            .and_then(|b| WavClip::parse(&b).ok());
        let secs = clip.map_or(0.0, |c| c.duration_ms() as f64 / 1000.0);
        let after = tones(&wav, secs - 2.5, secs - 0.5, &freqs);
        if i != 1 {
            assert!(
                after[1] < -45.0,
                "{} still hears muted 202: {after:?}",
                phones[i].0
            );
            let other = if i == 0 { 2 } else { 0 };
            assert!(
                after[other] > -35.0,
                "{} lost the unmuted member: {after:?}",
                phones[i].0
            );
        } else {
            assert!(
                after[0] > -35.0 && after[2] > -35.0,
                "muted 202 still hears the room: {after:?}"
            );
        }
    }
    assert!(wait_members(&pbx, "800", 0, Duration::from_secs(5)).is_empty());
    let cdr = String::from_utf8_lossy(&pbx.cli(&["cdr", "list"], None).stdout).to_string();
    assert_eq!(cdr.matches("\t800\t").count(), 3, "{cdr}");
}

#[test]
fn sipp_three_wrong_pins_is_hung_up_and_the_right_pin_joins() {
    need("sipp", "sip-tester");
    let pbx = harness::Pbx::start_with(ports(28400), ROOMS);
    pbx.add_user("201", "pw201");
    let port = ports(28400 + 3000);
    // Three wrong PINs: the room says goodbye and hangs up (the scenario waits for our BYE).
    let (code, out) = call_from_201(&pbx, "conference_pin_wrong.xml", "801", port);
    assert_eq!(code, 0, "sipp: {out}\npbx: {}", pbx.log());
    assert!(room_members(&pbx, "801").is_empty());
    // The right PIN joins: the member shows up while the call lasts.
    let inf = csv(
        &pbx,
        "right.csv",
        &["201", "pbx.local", &auth("201", "pw201"), "801"],
    );
    let mut cmd = Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture("conference_pin_right.xml"))
        .args(["-m", "1", "-nostdin", "-timeout", "30", "-timeout_error"])
        .args([
            "-inf",
            &inf,
            "-i",
            "127.0.0.2",
            "-p",
            &ports(28400 + 3000).to_string(),
        ])
        .current_dir(&pbx.dir);
    let mut sipp = Proc::spawn("sipp right pin", &mut cmd, pbx.dir.join("sipp-right.log"));
    let inside = wait_members(&pbx, "801", 1, Duration::from_secs(8));
    assert_eq!(
        inside.len(),
        1,
        "sipp: {}\npbx: {}",
        sipp.output(),
        pbx.log()
    );
    assert_eq!(inside[0]["extension"], "201");
    assert_eq!(sipp.wait(Duration::from_secs(30)), 0, "{}", sipp.output());
    assert!(wait_members(&pbx, "801", 0, Duration::from_secs(5)).is_empty());
}

#[test]
fn the_cli_kicks_locks_and_refuses_what_does_not_exist() {
    need("baresip", "baresip");
    let pbx = harness::Pbx::start_with(ports(28400), ROOMS);
    pbx.add_user("201", "pw201");
    let wav = pbx.dir.join("tone.wav");
    tone_wav(&wav, 20);
    let dir = baresip_phone(&pbx, "201", "127.0.0.11", ports(28400 + 3000), &wav, false);
    let mut phone = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .args(["-t", "12", "-e", "/dial 800"]),
        pbx.dir.join("baresip-201.log"),
    );
    let inside = wait_members(&pbx, "800", 1, Duration::from_secs(10));
    assert_eq!(inside.len(), 1, "{}\n{}", phone.output(), pbx.log());
    let member = inside[0]["member"].as_i64().unwrap().to_string();
    let bad = pbx.cli(&["conference", "kick", "899", &member], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("there is no conference room \"899\""));
    let bad = pbx.cli(&["conference", "kick", "800", "99999"], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("room 800 has no member 99999"));
    let ok = pbx.cli(&["conference", "lock", "800"], None);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let list = members(&pbx);
    assert_eq!(list[0]["locked"], true, "{list}");
    let ok = pbx.cli(&["conference", "kick", "800", &member], None);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Hung up by the room: the phone's call ends long before its 12 s.
    assert!(wait_members(&pbx, "800", 0, Duration::from_secs(8)).is_empty());
    phone.wait(Duration::from_secs(20));
    let cdr = String::from_utf8_lossy(&pbx.cli(&["cdr", "list"], None).stdout).to_string();
    assert!(cdr.contains("\t800\t"), "{cdr}");
    let text = String::from_utf8_lossy(&pbx.cli(&["conference", "list"], None).stdout).to_string();
    assert!(text.contains("800\tRuang Rapat\t0/50 members"), "{text}");
}
