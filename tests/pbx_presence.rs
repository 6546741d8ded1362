//! Presence and BLF against sipp watchers written from RFC 4235 and RFC 3856: 201 subscribes
//! to 202's dialog state and is told idle, `early` while 202 rings, `confirmed` once it
//! answers and `terminated` after the BYE, each NOTIFY's body checked by sipp; it then
//! unsubscribes. A presence watcher of 202 is told `closed`, `open` once 202 registers, and
//! `closed` with "Do not disturb" after `dnd on 202` from the CLI. A SUBSCRIBE without credentials is challenged and one for an extension that
//! does not exist is refused, so presence does not leak to strangers. Needs sipp.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

const BASE: u16 = 37060;

fn pbx() -> Pbx {
    let pbx = Pbx::start(ports(BASE));
    for ext in ["201", "202", "203"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    pbx
}

/// Runs a sipp UAC scenario from `ext` at `ip` with the usual CSV (ext, domain, auth, target).
fn uac(pbx: &Pbx, ext: &str, ip: &str, port: u16, scenario: &str, target: &str) -> Proc {
    let inf = csv(
        pbx,
        &format!("{scenario}-{ext}.csv"),
        &[ext, "pbx.local", &auth(ext, &format!("pw{ext}")), target],
    );
    let log = pbx.dir.join(format!("sipp-{scenario}-{ext}.log"));
    let mut cmd = std::process::Command::new("sipp");
    cmd.arg(pbx.sip())
        .arg("-sf")
        .arg(fixture(scenario))
        .args(["-inf", &inf, "-i", ip, "-p", &port.to_string(), "-mi", ip])
        .args(["-mp", &(port + 1000).to_string()])
        .args(["-m", "1", "-nostdin", "-timeout", "30", "-timeout_error"])
        .current_dir(&pbx.dir);
    Proc::spawn(scenario, &mut cmd, log)
}

#[test]
fn a_blf_watcher_sees_202_ring_answer_and_hang_up() {
    need("sipp", "sip-tester");
    let pbx = pbx();
    let phone_port = ports(BASE + 3000);
    assert_eq!(register(&pbx, "202", "pw202", "127.0.0.35", phone_port), 0);
    let sink = RtpSink::start("127.0.0.35", 0);
    let mut callee = sipp_phone(
        &pbx,
        "callee_answer.xml",
        "127.0.0.35",
        phone_port,
        &["-key", "rtp_sink", &sink.addr.port().to_string()],
    );
    let mut watcher = uac(
        &pbx,
        "201",
        "127.0.0.34",
        ports(BASE + 3100),
        "blf_subscribe.xml",
        "202",
    );
    // The watcher has its first NOTIFY (idle) before the call starts.
    std::thread::sleep(Duration::from_millis(1500));
    let mut caller = uac(
        &pbx,
        "203",
        "127.0.0.36",
        ports(BASE + 3200),
        "call_caller.xml",
        "202",
    );
    let log = |p: &Proc| format!("{}\npbx:\n{}", p.output(), pbx.log());
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        0,
        "caller: {}",
        log(&caller)
    );
    assert_eq!(
        callee.wait(Duration::from_secs(20)),
        0,
        "callee: {}",
        log(&callee)
    );
    assert_eq!(
        watcher.wait(Duration::from_secs(20)),
        0,
        "watcher: {}",
        log(&watcher)
    );
}

#[test]
fn a_presence_watcher_sees_202_register_and_turn_dnd_on() {
    need("sipp", "sip-tester");
    let pbx = pbx();
    let mut watcher = uac(
        &pbx,
        "201",
        "127.0.0.34",
        ports(BASE + 3400),
        "presence_subscribe.xml",
        "202",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        register(&pbx, "202", "pw202", "127.0.0.35", ports(BASE + 3500)),
        0
    );
    std::thread::sleep(Duration::from_millis(1000));
    let out = pbx.cli(&["dnd", "on", "202"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        watcher.wait(Duration::from_secs(20)),
        0,
        "watcher: {}\npbx:\n{}",
        watcher.output(),
        pbx.log()
    );
}

#[test]
fn subscribing_needs_credentials_and_an_existing_extension() {
    need("sipp", "sip-tester");
    let pbx = pbx();
    let probe = |target: &str, password: &str, want: &str| {
        let inf = csv(
            &pbx,
            &format!("sub-{target}-{want}.csv"),
            &["201", "pbx.local", &auth("201", password), target, want],
        );
        // sipp takes no field for a response code: the expected one is written in.
        let text = std::fs::read_to_string(fixture("subscribe_refused.xml")).unwrap();
        let scenario = pbx.dir.join(format!("subscribe_refused-{want}.xml"));
        std::fs::write(&scenario, text.replace("[field4]", want)).unwrap();
        let mut cmd = std::process::Command::new("sipp");
        cmd.arg(pbx.sip())
            .arg("-sf")
            .arg(&scenario)
            .args([
                "-inf",
                &inf,
                "-i",
                "127.0.0.37",
                "-p",
                &ports(BASE + 3300).to_string(),
            ])
            .args(["-m", "1", "-nostdin", "-timeout", "30", "-timeout_error"])
            .current_dir(&pbx.dir);
        let mut p = Proc::spawn(
            "sipp",
            &mut cmd,
            pbx.dir.join(format!("sipp-sub-{want}.log")),
        );
        let code = p.wait(Duration::from_secs(20));
        (code, p.output())
    };
    let (code, out) = probe("299", "pw201", "404");
    assert_eq!(code, 0, "an unknown extension: {out}");
    let (code, out) = probe("202", "wrong", "407");
    assert_eq!(code, 0, "a wrong password: {out}");
}
