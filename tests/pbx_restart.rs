//! kentongan-pbx survives `kill -9`: registrations, finished calls (CDRs) and stored IMs are
//! all there after a restart, because every answer is sent only after its write commits.
//! Needs sipp (package sip-tester); run by scripts/test.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

#[test]
fn kill_9_loses_no_registration_or_cdr() {
    let mut pbx = Pbx::start(ports(26060));
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    pbx.add_user("203", "pw203");
    let phone_202 = ports(31060);
    assert_eq!(register(&pbx, "202", "pw202", "127.0.0.3", phone_202), 0);
    assert_eq!(register(&pbx, "203", "pw203", "127.0.0.4", ports(31060)), 0);
    // A finished call attempt: 201 calls 204, which has no phone registered.
    pbx.add_user("204", "pw204");
    let (code, out) = call_from_201(&pbx, "caller_unavailable.xml", "204", ports(31060));
    assert_eq!(code, 0, "{out}");
    assert_eq!(pbx.metric("kentongan_registrations"), 2);
    pbx.kill9();
    pbx.spawn();
    assert_eq!(pbx.metric("kentongan_registrations"), 2, "{}", pbx.log());
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    let cdr = String::from_utf8_lossy(&cdr.stdout);
    assert!(cdr.contains("\"callee\": \"204\""), "{cdr}");
    // The restored registration is usable: a call to 202 reaches its (busy) phone.
    let mut phone = sipp_phone(&pbx, "callee_busy.xml", "127.0.0.3", phone_202, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out) = call_from_201(&pbx, "caller_busy.xml", "202", ports(31060));
    assert_eq!(code, 0, "{out}");
    assert_eq!(phone.wait(Duration::from_secs(20)), 0, "{}", phone.output());
}

#[test]
fn sigterm_stops_cleanly_and_sighup_keeps_old_config_on_error() {
    let mut pbx = Pbx::start(ports(26060));
    let good = std::fs::read_to_string(&pbx.config).unwrap();
    std::fs::write(&pbx.config, "[sip]\ndomain = \"pbx.local\"\nbogus = 1\n").unwrap();
    pbx.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        pbx.log()
            .contains("reload failed; keeping the old configuration"),
        "{}",
        pbx.log()
    );
    assert!(pbx.log().contains("sip.bogus"), "{}", pbx.log());
    assert_eq!(pbx.metric("kentongan_registrations"), 0, "still serving");
    std::fs::write(&pbx.config, good).unwrap();
    pbx.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        pbx.log().contains("configuration reloaded"),
        "{}",
        pbx.log()
    );
    assert!(pbx.stop().success(), "{}", pbx.log());
}

/// `calls` lists a live call from the daemon's mirror; a `kill -9` in mid-call leaves a CDR
/// marked "interrupted" after the restart instead of losing the attempt.
#[test]
fn live_call_is_listed_and_recorded_after_a_crash() {
    let mut pbx = Pbx::start(ports(26060));
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    let phone_port = ports(31060);
    assert_eq!(register(&pbx, "202", "pw202", "127.0.0.3", phone_port), 0);
    let sink = RtpSink::start("127.0.0.3", 0);
    let _phone = sipp_phone(
        &pbx,
        "callee_answer.xml",
        "127.0.0.3",
        phone_port,
        &["-key", "rtp_sink", &sink.addr.port().to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    let inf = csv(
        &pbx,
        "caller.csv",
        &["201", "pbx.local", &auth("201", "pw201"), "202"],
    );
    let mut cmd = std::process::Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture("call_long.xml"))
        .args([
            "-inf",
            &inf,
            "-i",
            "127.0.0.2",
            "-p",
            &ports(31060).to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-d", "20000", "-timeout", "30"]);
    let _caller = Proc::spawn("sipp caller", &mut cmd, pbx.dir.join("long-caller.log"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut listed = String::new();
    while std::time::Instant::now() < deadline {
        let out = pbx.cli(&["calls"], None);
        listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if listed.contains("answered") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        listed.contains("\t201\t202\tanswered\t"),
        "calls printed: {listed:?}"
    );
    pbx.kill9();
    pbx.spawn();
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    let cdr = String::from_utf8_lossy(&cdr.stdout);
    assert!(cdr.contains("\"disposition\": \"interrupted\""), "{cdr}");
    let calls = pbx.cli(&["calls"], None);
    assert!(calls.stdout.is_empty());
}
