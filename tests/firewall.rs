//! Firewall and abuse protection, end to end, in network namespaces: a "pbx" host running the
//! real daemon behind the ruleset `kentongan-pbx firewall apply` loads, and "office",
//! "attacker" and "admin" hosts on their own veth links. The attacks are real tools: sipvicious
//! (svmap, svwar, svcrack) and a sipp INVITE flood. Needs root (namespaces, nftables).
#![allow(clippy::unwrap_used)]

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{metric_in, need, pbx_binary, wait_for_value, Proc};

const PBX_OFFICE: &str = "10.77.1.1";
const OFFICE: &str = "10.77.1.2";
const PBX_ATTACKER: &str = "10.77.2.1";
const ATTACKER: &str = "10.77.2.2";
const PBX_ADMIN: &str = "10.77.3.1";
const ADMIN: &str = "10.77.3.2";

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Four hosts: pbx in the middle, one veth link (and subnet) to each of the others, whose
/// default route is the pbx. Deleted, with everything running in them, on drop.
struct Lab {
    tag: String,
    dir: PathBuf,
    procs: Vec<Proc>,
    pbx: Option<Proc>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        need("ip", "iproute2");
        need("nft", "nftables");
        let lab = Lab {
            tag: tag.to_owned(),
            dir: std::env::temp_dir().join(format!("kentongan-fw-{tag}-{}", std::process::id())),
            procs: Vec::new(),
            pbx: None,
        };
        lab.teardown();
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(&lab.dir).unwrap();
        for host in ["pbx", "office", "attacker", "admin"] {
            ok(Command::new("ip").args(["netns", "add", &lab.ns(host)]));
            ok(Command::new("ip").args(["-n", &lab.ns(host), "link", "set", "lo", "up"]));
        }
        for (host, short, subnet) in [("office", "o", 1), ("attacker", "a", 2), ("admin", "m", 3)] {
            let (near, far) = (format!("{tag}p{short}"), format!("{tag}{short}p"));
            ok(Command::new("ip").args([
                "link",
                "add",
                &near,
                "netns",
                &lab.ns("pbx"),
                "type",
                "veth",
                "peer",
                "name",
                &far,
                "netns",
                &lab.ns(host),
            ]));
            let (p, h) = (format!("10.77.{subnet}.1"), format!("10.77.{subnet}.2"));
            ok(Command::new("ip").args([
                "-n",
                &lab.ns("pbx"),
                "addr",
                "add",
                &format!("{p}/24"),
                "dev",
                &near,
            ]));
            ok(Command::new("ip").args([
                "-n",
                &lab.ns(host),
                "addr",
                "add",
                &format!("{h}/24"),
                "dev",
                &far,
            ]));
            ok(Command::new("ip").args(["-n", &lab.ns("pbx"), "link", "set", &near, "up"]));
            ok(Command::new("ip").args(["-n", &lab.ns(host), "link", "set", &far, "up"]));
            ok(Command::new("ip").args([
                "-n",
                &lab.ns(host),
                "route",
                "add",
                "default",
                "via",
                &p,
            ]));
        }
        lab
    }

    fn ns(&self, host: &str) -> String {
        format!("kt{}-{host}", self.tag)
    }

    /// A command run on `host`.
    fn on(&self, host: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(host), program]);
        c
    }

    fn config(&self) -> PathBuf {
        self.dir.join("pbx.toml")
    }

    /// Writes the PBX config, loads the firewall in the pbx host, adds 201 and 202.
    fn setup_pbx(&mut self, extra: &str) {
        std::fs::write(
            self.config(),
            format!(
                "[sip]\ndomain = \"pbx.local\"\nlisten = [\"udp:0.0.0.0:5060\", \"tcp:0.0.0.0:5060\"]\n\
                 # sipvicious knows only MD5: offering it lets svcrack really try passwords.\n\
                 auth_algorithms = [\"MD5\"]\n\
                 [rtp]\nports = \"30000-30999\"\n[storage]\ndatabase = \"{}\"\n\
                 [metrics]\nlisten = \"{PBX_ADMIN}:9160\"\n\
                 [firewall]\ntrusted = [\"10.77.3.0/24\"]\nban_after_failures = 5\n\
                 ban_window_seconds = 60\nban_seconds = 3600\n{extra}",
                self.dir.join("pbx.db").display()
            ),
        )
        .unwrap();
        let out = self.pbx_cli(&["firewall", "apply"]);
        assert!(
            out.status.success(),
            "firewall apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (ext, pw) in [("201", "pw201"), ("202", "pw202")] {
            let out = self.pbx_cli_stdin(
                &["user", "add", ext, "--password-stdin"],
                &format!("{pw}\n"),
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.start_pbx();
    }

    fn start_pbx(&mut self) {
        let mut cmd = self.on("pbx", pbx_binary().to_str().unwrap());
        cmd.arg("--config")
            .arg(self.config())
            .env("KENTONGAN_LOG", "info");
        let log = self.dir.join(format!("daemon-{}.log", self.procs.len()));
        self.pbx = Some(Proc::spawn("kentongan-pbx", &mut cmd, log));
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.try_metrics().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "kentongan-pbx did not start in the pbx namespace:\n{}",
            self.pbx_log()
        );
    }

    fn kill_pbx(&mut self) {
        self.pbx = None;
    }

    fn pbx_log(&self) -> String {
        self.pbx.as_ref().map(Proc::output).unwrap_or_default()
    }

    fn pbx_cli(&self, args: &[&str]) -> Output {
        run(self
            .on("pbx", pbx_binary().to_str().unwrap())
            .arg("--config")
            .arg(self.config())
            .args(args))
    }

    fn pbx_cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .on("pbx", pbx_binary().to_str().unwrap())
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ban_list(&self) -> String {
        let out = self.pbx_cli(&["ban", "list"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `/metrics`, fetched from the trusted admin host (the only one the firewall lets in).
    fn try_metrics(&self) -> Option<String> {
        self.metrics_from("admin")
    }

    fn metrics_from(&self, host: &str) -> Option<String> {
        let out = run(self.on(host, "python3").args([
            "-c",
            &format!(
                "import urllib.request; print(urllib.request.urlopen('http://{PBX_ADMIN}:9160/metrics', timeout=3).read().decode())"
            ),
        ]));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn metric(&self, name: &str) -> u64 {
        metric_in(&self.try_metrics().unwrap_or_default(), name)
    }

    fn wait_metric(&self, name: &str, want: u64, within: Duration) -> u64 {
        wait_for_value(within, want, || self.metric(name))
    }

    /// sipp on `host` against the PBX's address on that host's link; returns exit code, output.
    fn sipp(&self, host: &str, scenario: &str, args: &[&str], limit: Duration) -> (i32, String) {
        need("sipp", "sip-tester");
        let log = self.dir.join(format!("sipp-{host}-{}.log", unique()));
        let mut p = Proc::spawn("sipp", &mut self.sipp_cmd(host, scenario, args), log);
        let code = p.wait(limit);
        (code, p.output())
    }

    fn sipp_cmd(&self, host: &str, scenario: &str, args: &[&str]) -> Command {
        let (pbx, me) = addrs(host);
        let mut c = self.on(host, "sipp");
        c.arg(format!("{pbx}:5060"))
            .arg("-sf")
            .arg(fixture(scenario))
            .args(["-i", me, "-nostdin", "-timeout_error"])
            .args(args)
            .current_dir(&self.dir);
        c
    }

    fn csv(&self, fields: &[&str]) -> String {
        let path = self.dir.join(format!("inf-{}.csv", unique()));
        std::fs::write(&path, format!("SEQUENTIAL\n{};\n", fields.join(";"))).unwrap();
        path.display().to_string()
    }

    /// One REGISTER with digest auth of `ext` from `host`; true on 200.
    fn register(&self, host: &str, ext: &str, password: &str, port: u16) -> bool {
        let inf = self.csv(&[
            ext,
            "pbx.local",
            &format!("[authentication username={ext} password={password}]"),
        ]);
        let (code, out) = self.sipp(
            host,
            "../pbx/register.xml",
            &[
                "-inf",
                &inf,
                "-p",
                &port.to_string(),
                "-m",
                "1",
                "-timeout",
                "15",
            ],
            Duration::from_secs(60),
        );
        if code != 0 {
            eprintln!("register {ext} from {host}: sipp exit {code}\n{out}");
        }
        code == 0
    }

    /// `count` REGISTERs of `ext` with a wrong password from `host` (each: 401, wrong
    /// credentials, 401); true if sipp saw every answer.
    fn wrong_passwords(&self, host: &str, ext: &str, count: u32) -> bool {
        let inf = self.csv(&[
            ext,
            "pbx.local",
            &format!("[authentication username={ext} password=not-{ext}]"),
        ]);
        let (code, _) = self.sipp(
            host,
            "../pbx/register_wrong.xml",
            &[
                "-inf",
                &inf,
                "-p",
                "0",
                "-m",
                &count.to_string(),
                "-l",
                "1",
                "-timeout",
                "10",
            ],
            Duration::from_secs(60),
        );
        code == 0
    }

    fn kernel_set(&self, set: &str) -> String {
        ok(self
            .on("pbx", "nft")
            .args(["list", "set", "inet", "kentongan", set]))
    }

    fn kernel_counter(&self, name: &str) -> u64 {
        let text = ok(self
            .on("pbx", "nft")
            .args(["list", "counter", "inet", "kentongan", name]));
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count in {text}"))
    }

    fn teardown(&self) {
        for host in ["pbx", "office", "attacker", "admin"] {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.ns(host)])
                .output();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- kentongan-pbx log:\n{}", self.pbx_log());
        }
        self.pbx = None;
        self.procs.clear();
        self.teardown();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn addrs(host: &str) -> (&'static str, &'static str) {
    match host {
        "office" => (PBX_OFFICE, OFFICE),
        "attacker" => (PBX_ATTACKER, ATTACKER),
        "admin" => (PBX_ADMIN, ADMIN),
        other => panic!("no such host {other}"),
    }
}

fn fixture(name: &str) -> PathBuf {
    harness::root().join("tests/fixtures/firewall").join(name)
}

fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// The office registers 201 again and again while an attack runs; counts the outcomes.
struct OfficeLoop {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u32, u32)>>,
}

impl OfficeLoop {
    fn start(lab: &Lab) -> OfficeLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let inf = lab.csv(&[
            "201",
            "pbx.local",
            "[authentication username=201 password=pw201]",
        ]);
        let mut cmd = lab.sipp_cmd(
            "office",
            "../pbx/register.xml",
            &["-inf", &inf, "-p", "5070", "-m", "1", "-timeout", "15"],
        );
        let dir = lab.dir.clone();
        let thread = std::thread::spawn(move || {
            let (mut good, mut bad) = (0, 0);
            while !flag.load(Ordering::SeqCst) {
                let log = dir.join(format!("office-{}.log", unique()));
                let mut p = Proc::spawn("office sipp", &mut cmd, log);
                if p.wait(Duration::from_secs(60)) == 0 {
                    good += 1;
                } else {
                    eprintln!("office registration failed:\n{}", p.output());
                    bad += 1;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (good, bad)
        });
        OfficeLoop {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u32, u32) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for OfficeLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn sipvicious(lab: &Lab, tool: &str, args: &[&str]) -> String {
    need(tool, "sipvicious");
    let out = run(Command::new("timeout")
        .args(["120", "ip", "netns", "exec", &lab.ns("attacker"), tool])
        .args(args));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// After `ban remove`, the daemon follows within a second or so (it watches the database).
fn lift(lab: &Lab, addr: &str) {
    let out = lab.pbx_cli(&["ban", "remove", addr]);
    assert!(
        out.status.success(),
        "ban remove: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lab.wait_metric("kentongan_bans_active", 0, Duration::from_secs(5)),
        0
    );
}

#[test]
fn scanners_find_nothing_and_a_password_guesser_is_banned_while_the_office_works() {
    let mut lab = Lab::new("s");
    lab.setup_pbx("");
    assert!(lab.register("office", "201", "pw201", 5070));
    let office = OfficeLoop::start(&lab);

    // svmap: the scanner's OPTIONS go unanswered, so it finds no SIP device, and is banned.
    let out = sipvicious(&lab, "svmap", &[PBX_ATTACKER]);
    assert!(
        !out.contains(&format!("{PBX_ATTACKER}:5060")),
        "svmap found the PBX:\n{out}"
    );
    assert!(
        lab.ban_list().contains(&format!("{ATTACKER}\t")),
        "{}",
        lab.ban_list()
    );
    assert!(lab
        .ban_list()
        .contains("scanner User-Agent \"friendly-scanner\""));
    assert!(lab.kernel_set("banned4").contains(ATTACKER));
    lift(&lab, ATTACKER);

    // svwar: no extension found (201 and 202 exist in the range).
    let out = sipvicious(
        &lab,
        "svwar",
        &["-e200-210", "-m", "REGISTER", PBX_ATTACKER],
    );
    assert!(
        !out.contains("| 201") && !out.contains("| 202"),
        "svwar found extensions:\n{out}"
    );
    assert!(lab.ban_list().contains(ATTACKER));
    lift(&lab, ATTACKER);

    // svcrack as shipped: banned at its first packet, before a single guess.
    let failures_before = lab.metric("kentongan_auth_failures_total");
    let out = sipvicious(&lab, "svcrack", &["-u201", "-r1-100", PBX_ATTACKER]);
    assert!(!out.contains("pw201"), "{out}");
    assert_eq!(lab.metric("kentongan_auth_failures_total"), failures_before);
    assert!(lab.metric("kentongan_bans_total{reason=\"scanner\"}") >= 3);
    lift(&lab, ATTACKER);

    // svcrack disguised as a softphone: its failed logins give it away after 5 guesses, and
    // the kernel drops the rest of its guesses.
    let dropped_before = lab.kernel_counter("banned_drops");
    let out = run(Command::new("timeout")
        .args([
            "120",
            "ip",
            "netns",
            "exec",
            &lab.ns("attacker"),
            "env",
            "PYTHONPATH=/usr/share/sipvicious",
            "python3",
        ])
        .arg(fixture("svcrack_disguised.py"))
        .args(["-u201", "-r1-100", PBX_ATTACKER]));
    let out =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.contains("pw201"), "svcrack found the password:\n{out}");
    let list = lab.ban_list();
    assert!(
        list.contains(&format!("{ATTACKER}\t"))
            && list.contains("5 authentication failures in 60s"),
        "{list}"
    );
    assert_eq!(
        lab.metric("kentongan_auth_failures_total"),
        failures_before + 5
    );
    assert_eq!(lab.metric("kentongan_bans_total{reason=\"auth\"}"), 1);
    let dropped = lab.kernel_counter("banned_drops") - dropped_before;
    assert!(dropped > 0, "the banned guesser's packets were not dropped");
    let metrics = lab.try_metrics().unwrap();
    assert!(
        metrics.contains("kentongan_firewall_dropped_packets_total{rule=\"banned\"}"),
        "{metrics}"
    );

    let (good, bad) = office.finish();
    assert_eq!(bad, 0, "the office failed to register during the attacks");
    assert!(good >= 3, "the office registered only {good} times");
    // The office is not trusted and still works; the admin port is for trusted hosts only.
    assert!(
        lab.metrics_from("office").is_none(),
        "metrics reachable from an untrusted host"
    );
    assert!(!lab.ban_list().contains(OFFICE));
}

#[test]
fn an_invite_flood_is_cut_off_and_office_calls_go_through() {
    let mut lab = Lab::new("f");
    lab.setup_pbx("sip_rate_limit = 200\n");
    assert!(lab.register("office", "202", "pw202", 5090));
    let callee = Proc::spawn(
        "office callee",
        &mut lab.sipp_cmd(
            "office",
            "../pbx/bench_callee.xml",
            &["-p", "5090", "-mi", OFFICE],
        ),
        lab.dir.join("callee.log"),
    );
    let inf = lab.csv(&[
        "201",
        "pbx.local",
        "[authentication username=201 password=pw201]",
        "202",
    ]);
    // The office: 100 calls at 5 per second, each held 200 ms.
    let mut caller = Proc::spawn(
        "office caller",
        &mut lab.sipp_cmd(
            "office",
            "../pbx/bench_call.xml",
            &[
                "-inf", &inf, "-p", "0", "-mi", OFFICE, "-r", "5", "-m", "100", "-d", "200",
                "-timeout", "90",
            ],
        ),
        lab.dir.join("caller.log"),
    );
    std::thread::sleep(Duration::from_secs(3));
    // The attacker: 500 INVITEs per second for 8 seconds, a hundred times the office's rate.
    let (_, flood) = lab.sipp(
        "attacker",
        "flood_invite.xml",
        &["-p", "0", "-r", "500", "-m", "4000", "-timeout", "20"],
        Duration::from_secs(60),
    );
    let code = caller.wait(Duration::from_secs(120));
    let out = caller.output();
    let succeeded = sipp_count(&out, "Successful call");
    assert!(
        succeeded >= 99,
        "only {succeeded} of 100 office calls succeeded during the flood (sipp exit {code}):\n{out}"
    );
    drop(callee);
    assert!(
        lab.kernel_counter("flood_drops") > 0,
        "the flood limit never fired:\n{flood}"
    );
    assert!(
        lab.kernel_set("banned4").contains(ATTACKER),
        "the flooder is not banned"
    );
    let list = lab.ban_list();
    assert!(
        list.contains(ATTACKER) && list.contains("SIP flood"),
        "{list}"
    );
    assert!(!list.contains(OFFICE), "the office was banned:\n{list}");
}

#[test]
fn bans_survive_restarts_and_reboots_and_ban_remove_lifts_them() {
    let mut lab = Lab::new("r");
    lab.setup_pbx("");
    // The trusted admin host can fail as often as it likes.
    assert!(lab.wrong_passwords("admin", "201", 10));
    assert!(lab.register("admin", "201", "pw201", 5070));
    // The attacker fails five times and is banned.
    assert!(lab.wrong_passwords("attacker", "202", 5));
    let list = lab.ban_list();
    assert!(list.contains(ATTACKER) && !list.contains(ADMIN), "{list}");
    assert!(
        !lab.register("attacker", "202", "pw202", 5070),
        "a banned source registered"
    );

    // kill -9 and start again: the ban is still there, in the daemon and the kernel.
    lab.kill_pbx();
    lab.start_pbx();
    assert_eq!(lab.metric("kentongan_bans_active"), 1);
    assert!(lab.ban_list().contains(ATTACKER));
    // A reboot: the kernel's sets are gone until `firewall apply` re-adds the stored bans.
    ok(lab
        .on("pbx", "nft")
        .args(["delete", "table", "inet", "kentongan"]));
    let out = lab.pbx_cli(&["firewall", "apply"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 stored bans re-applied"));
    assert!(lab.kernel_set("banned4").contains(ATTACKER));
    assert!(
        !lab.register("attacker", "202", "pw202", 5070),
        "a banned source registered"
    );

    lift(&lab, ATTACKER);
    assert!(!lab.kernel_set("banned4").contains(ATTACKER));
    assert!(
        lab.register("attacker", "202", "pw202", 5070),
        "still blocked after ban remove"
    );
    assert!(!lab.ban_list().contains(ATTACKER));
}

/// A counter from sipp's final statistics screen, e.g. "Successful call".
fn sipp_count(out: &str, row: &str) -> u64 {
    out.lines()
        .rev()
        .find(|l| l.contains(row))
        .and_then(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .rfind(|s| !s.is_empty())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_broken_config_locks_the_host_down_instead_of_leaving_it_open() {
    let mut lab = Lab::new("l");
    lab.setup_pbx("");
    lab.kill_pbx();
    let good = std::fs::read_to_string(lab.config()).unwrap();
    std::fs::write(
        lab.config(),
        good.replace(
            "trusted = [\"10.77.3.0/24\"]",
            "trusted = [\"10.77.3.9/24\"]",
        ),
    )
    .unwrap();
    let out = lab.pbx_cli(&["firewall", "apply", "--lockdown-on-error"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("firewall.trusted[0]") && err.contains("10.77.3.0/24"),
        "{err}"
    );
    assert!(err.contains("lockdown firewall was loaded"), "{err}");
    let rules = ok(lab
        .on("pbx", "nft")
        .args(["list", "table", "inet", "kentongan"]));
    assert!(rules.contains("policy drop"), "{rules}");
    assert!(
        !rules.contains("dport 5060"),
        "the lockdown ruleset opens SIP:\n{rules}"
    );
    // Without the flag a bad config changes nothing: the lockdown stays as it was.
    let out = lab.pbx_cli(&["firewall", "apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("lockdown"));
    std::fs::write(lab.config(), good).unwrap();
    let out = lab.pbx_cli(&["firewall", "apply"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = ok(lab
        .on("pbx", "nft")
        .args(["list", "table", "inet", "kentongan"]));
    assert!(rules.contains("udp dport 5060 accept"), "{rules}");
}
