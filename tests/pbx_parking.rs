//! Call parking with real peers: baresip 201 (1500 Hz) calls baresip 202 (1100 Hz) and
//! transfers it to 70 through ctrl_tcp (`/transfer 70`, a REFER). 202 is parked in slot 71
//! and hears music on hold (the built-in tune's notes, found by frequency), 201 hears the slot
//! said (with no prompt files, each digit is the PBX's two-tone cue) and is let go; `calls`
//! lists the parked call. Baresip 203 (1300 Hz) dials 71 and is connected to 202: each hears
//! the other's tone, and a sipp BLF watcher of slot 71 sees it lit while 202 waits. With `timeout_seconds = 5` and nobody retrieving, the PBX rings 201 back
//! and 201 hears 202 again. Needs baresip.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::*;
use kentongan_pbx::media::moh::TUNE_NOTES;

// The same range as pbx_groups.rs (this task's); test binaries run one after another.
const BASE: u16 = 39060;

fn pbx(extra: &str) -> Pbx {
    let empty = std::env::temp_dir().join(format!("kentongan-park-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let pbx = Pbx::start_with(
        ports(BASE),
        &format!(
            "\n[prompts]\ndirectory = \"{d}\"\n[music_on_hold]\ndirectory = \"{d}\"\n{extra}",
            d = empty.display()
        ),
    );
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    pbx
}

fn tone(pbx: &Pbx, name: &str, hz: f64) -> PathBuf {
    let p = pbx.dir.join(name);
    tone_wav_hz(&p, 40, hz);
    p
}

fn baresip(pbx: &Pbx, dir: &Path, name: &str, args: &[&str]) -> Proc {
    Proc::spawn(
        name,
        Command::new("baresip").arg("-f").arg(dir).args(args),
        pbx.dir.join(format!("{}.log", name.replace(' ', "-"))),
    )
}

fn wait_log(pbx: &Pbx, what: &str, secs: u64) {
    let seen = wait_for_value(Duration::from_secs(secs), 1, || {
        u64::from(pbx.log().contains(what))
    });
    assert_eq!(seen, 1, "no {what:?} in the log:\n{}", pbx.log());
}

/// Every recording a baresip phone made (one per call).
fn decoded_all(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .collect()
}

/// 201 (with ctrl_tcp) calls 202 and parks it; returns the phones and 201's ctrl address.
fn park_202(pbx: &Pbx) -> (Proc, Proc, PathBuf, PathBuf) {
    need("baresip", "baresip");
    let port = ports(BASE + 3000);
    let t201 = tone(pbx, "t201.wav", 1500.0);
    let t202 = tone(pbx, "t202.wav", 1100.0);
    let d202 = baresip_phone_with(pbx, "202", "127.0.0.72", port, &t202, false, "PCMA");
    let b202 = baresip(pbx, &d202, "baresip 202", &["-t", "30"]);
    let d201 = baresip_phone_with(pbx, "201", "127.0.0.71", port, &t201, false, "PCMA");
    let ctrl = format!("127.0.0.71:{}", port + 100);
    with_ctrl_tcp(&d201, &ctrl);
    pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10));
    let b201 = baresip(pbx, &d201, "baresip 201", &["-t", "30", "-e", "/dial 202"]);
    wait_log(pbx, "call answered", 15);
    std::thread::sleep(Duration::from_secs(2));
    let r = baresip_ctrl(&ctrl, "transfer", "70");
    assert!(!r.contains("\"ok\":false"), "transfer: {r}");
    wait_log(pbx, "call parked", 10);
    (b201, b202, d201, d202)
}

/// A sipp BLF watcher (authenticated as 203) of parking slot 71: `park_slot_subscribe.xml`.
fn slot_watcher(pbx: &Pbx) -> Proc {
    need("sipp", "sip-tester");
    let inf = csv(
        pbx,
        "watch-71.csv",
        &["203", "pbx.local", &auth("203", "pw203"), "71"],
    );
    let port = ports(BASE + 3000) + 200;
    let mut cmd = Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture("park_slot_subscribe.xml"))
        .args(["-inf", &inf, "-i", "127.0.0.78", "-p", &port.to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "90", "-timeout_error"])
        .current_dir(&pbx.dir);
    Proc::spawn("slot watcher", &mut cmd, pbx.dir.join("sipp-watch-71.log"))
}

#[test]
fn a_parked_call_hears_music_and_is_retrieved_from_another_phone() {
    let pbx = pbx("");
    // The slot's BLF key: free, then lit while 202 waits, then free after the retrieval.
    let mut watcher = slot_watcher(&pbx);
    std::thread::sleep(Duration::from_millis(1500));
    let (mut b201, mut b202, d201, d202) = park_202(&pbx);
    assert!(pbx.log().contains("slot=71"), "{}", pbx.log());
    let out = pbx.cli(&["calls"], None);
    let calls = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(calls.contains("parked in 71 by 201"), "calls: {calls}");
    // 202 waits with music; 201 hears "7", "1" and is let go.
    std::thread::sleep(Duration::from_secs(5));
    let port = ports(BASE + 3000);
    let t203 = tone(&pbx, "t203.wav", 1300.0);
    let d203 = baresip_phone_with(&pbx, "203", "127.0.0.73", port, &t203, false, "PCMA");
    let mut b203 = baresip(&pbx, &d203, "baresip 203", &["-t", "7", "-e", "/dial 71"]);
    wait_log(&pbx, "parked call retrieved", 15);
    b203.wait(Duration::from_secs(30));
    b202.wait(Duration::from_secs(40));
    b201.wait(Duration::from_secs(40));
    assert_eq!(
        watcher.wait(Duration::from_secs(30)),
        0,
        "the slot's BLF watcher: {}\npbx: {}",
        watcher.output(),
        pbx.log()
    );
    let heard = |d: &Path, f: &[f64]| {
        let p = baresip_decoded(d).unwrap_or_else(|| panic!("nothing decoded in {}", d.display()));
        peak_tones(&p, f)
    };
    let p201 = heard(&d201, &[660.0, 880.0, 1100.0]);
    assert!(
        p201[0] > -35.0 && p201[1] > -35.0,
        "201 did not hear the slot: {p201:?}"
    );
    assert!(
        p201[2] > -35.0,
        "201 did not hear 202 before parking: {p201:?}"
    );
    let notes = [TUNE_NOTES[0], TUNE_NOTES[2]];
    let p202 = heard(&d202, &[1500.0, notes[0], notes[1], 1300.0]);
    assert!(p202[0] > -35.0, "202 did not hear 201: {p202:?}");
    assert!(
        p202[1] > -35.0 || p202[2] > -35.0,
        "202 heard no music while parked: {p202:?}"
    );
    assert!(
        p202[3] > -35.0,
        "202 did not hear 203 after the retrieval: {p202:?}"
    );
    let p203 = heard(&d203, &[1100.0]);
    assert!(p203[0] > -35.0, "203 did not hear 202: {p203:?}");
    // The call's record ends with the phone that took it from the slot.
    let out = pbx.cli(&["cdr", "list", "--json"], None);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        rows.iter().any(|r| r["caller"] == "203"
            && r["callee"] == "202"
            && r["disposition"] == "answered"),
        "{rows:?}"
    );
}

#[test]
fn a_parked_call_rings_back_the_parker_after_the_timeout() {
    let pbx = pbx("[parking]\nslots = \"71-72\"\ntimeout_seconds = 5\n");
    let (mut b201, mut b202, d201, _d202) = park_202(&pbx);
    wait_log(&pbx, "ringing back the parker", 15);
    wait_log(&pbx, "blind transfer done", 10);
    b202.wait(Duration::from_secs(40));
    b201.wait(Duration::from_secs(40));
    // Two calls at 201: the one it made and the ring-back; in both it heard 202.
    let files = decoded_all(&d201);
    let with_202 = files
        .iter()
        .filter(|f| peak_tones(f, &[1100.0])[0] > -35.0)
        .count();
    assert!(
        with_202 >= 2,
        "201 heard 202 in {with_202} of {} calls",
        files.len()
    );
}

#[test]
fn a_parked_party_that_holds_and_resumes_is_answered_by_the_pbx() {
    need("baresip", "baresip");
    let pbx = pbx("");
    let port = ports(BASE + 3000);
    let t201 = tone(&pbx, "t201.wav", 1500.0);
    let d201 = baresip_phone_with(&pbx, "201", "127.0.0.71", port, &t201, false, "PCMA");
    let ctrl = format!("127.0.0.71:{}", port + 100);
    with_ctrl_tcp(&d201, &ctrl);
    let mut b201 = baresip(&pbx, &d201, "baresip 201", &["-t", "20"]);
    pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10));
    // 202 (sipp) calls 201, which parks it at once; 202's hold and resume re-INVITEs come
    // while it is parked, after 201 has been let go.
    let inf = csv(
        &pbx,
        "call-202.csv",
        &["202", "pbx.local", &auth("202", "pw202"), "201"],
    );
    let sip_port = ports(BASE + 5000).to_string();
    let media = (ports(BASE + 6000) + 1000).to_string();
    let args: Vec<String> = [
        "-inf",
        &inf,
        "-i",
        "127.0.0.72",
        "-p",
        &sip_port,
        "-mi",
        "127.0.0.72",
        "-mp",
        &media,
    ]
    .map(str::to_owned)
    .to_vec();
    let sip = pbx.sip();
    let dir = pbx.dir.clone();
    let caller = std::thread::spawn(move || {
        let out = Command::new("sipp")
            .arg(sip)
            .arg("-sf")
            .arg(fixture("call_hold.xml"))
            .args(["-m", "1", "-nostdin", "-timeout", "30", "-timeout_error"])
            .args(&args)
            .current_dir(dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    });
    wait_log(&pbx, "call answered", 15);
    let r = baresip_ctrl(&ctrl, "transfer", "70");
    assert!(!r.contains("\"ok\":false"), "transfer: {r}");
    let (code, out) = caller.join().unwrap();
    assert_eq!(code, Some(0), "202: {out}\npbx: {}", pbx.log());
    assert!(
        pbx.log()
            .contains("re-INVITE from a parked party answered by the PBX"),
        "{}",
        pbx.log()
    );
    b201.wait(Duration::from_secs(40));
}
