//! Blind transfer with real peers: baresip 201 (sending a 700 Hz tone) calls 202, a sipp phone
//! whose RTP goes to the test's sink, then transfers it to 203 through baresip's ctrl_tcp
//! (`transfer 203`: a REFER). 203 is another baresip, sending 1100 Hz. What reached 202 is
//! decoded 100 ms at a time: 201's tone before the transfer, 203's after it, and the PBX
//! lets 201 go (its call ends) while 202 and 203 stay connected through the relay until 203
//! hangs up. Needs baresip and sipp.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::Duration;

use harness::*;
use kentongan_media::g711::alaw_decode;

const BASE: u16 = 38060;

#[test]
fn a_blind_transfer_connects_202_to_203_and_lets_201_go() {
    need("baresip", "baresip");
    need("sipp", "sip-tester");
    let pbx = Pbx::start(ports(BASE));
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    let port = ports(BASE + 3000);
    let tone_201 = pbx.dir.join("t201.wav");
    tone_wav_hz(&tone_201, 30, 700.0);
    let tone_203 = pbx.dir.join("t203.wav");
    tone_wav_hz(&tone_203, 30, 1100.0);
    let a = baresip_phone_with(&pbx, "201", "127.0.0.38", port, &tone_201, false, "PCMA");
    let ctrl_addr = format!("127.0.0.38:{}", port + 100);
    with_ctrl_tcp(&a, &ctrl_addr);
    let c = baresip_phone_with(&pbx, "203", "127.0.0.39", port, &tone_203, false, "PCMA");
    let mut target = Proc::spawn(
        "baresip 203",
        Command::new("baresip").arg("-f").arg(&c).args(["-t", "16"]),
        pbx.dir.join("baresip-203.log"),
    );
    assert_eq!(register(&pbx, "202", "pw202", "127.0.0.37", port), 0);
    let sink = RtpSink::start("127.0.0.37", 0);
    let mut transferee = sipp_phone(
        &pbx,
        "callee_answer.xml",
        "127.0.0.37",
        port,
        &["-key", "rtp_sink", &sink.addr.port().to_string()],
    );
    pbx.wait_metric("kentongan_registrations", 2, Duration::from_secs(10));
    let mut transferor = Proc::spawn(
        "baresip 201",
        Command::new("baresip")
            .arg("-f")
            .arg(&a)
            .args(["-t", "20", "-e", "/dial 202"]),
        pbx.dir.join("baresip-201.log"),
    );
    let answered = wait_for_value(Duration::from_secs(10), 1, || {
        u64::from(sink.stats().packets > 50)
    });
    assert_eq!(
        answered,
        1,
        "no call: {}\n{}",
        transferor.output(),
        pbx.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let r = baresip_ctrl(&ctrl_addr, "transfer", "203");
    assert!(!r.contains("\"ok\":false"), "transfer: {r}");
    let log = |p: &Proc| format!("{}\npbx:\n{}", p.output(), pbx.log());
    // 203 hangs up at its -t; the PBX then ends 202's side, which ends its scenario.
    assert_eq!(
        transferee.wait(Duration::from_secs(30)),
        0,
        "202: {}",
        log(&transferee)
    );
    target.wait(Duration::from_secs(10));
    let _ = baresip_ctrl(&ctrl_addr, "quit", "");
    transferor.wait(Duration::from_secs(10));
    assert!(
        pbx.log().contains("blind transfer done"),
        "{}",
        log(&transferor)
    );
    assert!(
        transferor.output().contains("terminated"),
        "201's call did not end: {}",
        log(&transferor)
    );
    let pcm: Vec<i16> = sink.payload_bytes(8).into_iter().map(alaw_decode).collect();
    let from_201 = tone_windows(&pcm, 700.0);
    let from_203 = tone_windows(&pcm, 1100.0);
    let first_203 = from_203
        .iter()
        .position(|&d| d > -30.0)
        .unwrap_or_else(|| panic!("202 never heard 203: {from_203:?}\n{}", log(&target)));
    let before = from_201[..first_203].iter().filter(|&&d| d > -30.0).count();
    let after_201 = from_201[first_203..].iter().filter(|&&d| d > -30.0).count();
    let after_203 = from_203[first_203..].iter().filter(|&&d| d > -30.0).count();
    assert!(
        before >= 10,
        "202 did not hear 201 before the transfer: {before}"
    );
    assert!(
        after_203 >= 50,
        "202 heard 203 for only {after_203} windows"
    );
    assert!(
        after_201 <= 2,
        "201 still reached 202 after the transfer: {after_201}"
    );
    // The CDR shows 201 -> 202 until the transfer, then 203 with 202, transferred by 201.
    let out = pbx.cli(&["cdr", "list", "--json"], None);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let before = rows
        .iter()
        .find(|r| r["caller"] == "201" && r["callee"] == "202")
        .unwrap_or_else(|| panic!("no 201 -> 202 row: {rows:#?}"));
    assert_eq!(before["disposition"], "transferred", "{before}");
    let after = rows
        .iter()
        .find(|r| r["callee"] == "202" && r["caller"] == "203")
        .unwrap_or_else(|| panic!("no 203 -> 202 row: {rows:#?}"));
    assert_eq!(after["transferred_by"], "201", "{after}");
    assert_eq!(after["transfer_kind"], "blind", "{after}");
}
