//! linphonec (linphone-cli 5.1, liblinphone) registers with kentongan-pbx and calls, and is
//! called by, a baresip phone through it. Both directions of audio are asserted twice: at the
//! relay (per-direction counters in /metrics) and at the phones (each decodes the other's
//! 440 Hz tone: linphonec records what it hears, baresip's sndfile module dumps what it
//! decoded). Needs linphone-cli and baresip; run by scripts/test.
//!
//! How linphonec runs headless, with no sound card, reliably (all checked with Debian 12's
//! linphone-cli 5.1.65):
//! - `soundcard use files` makes liblinphone read the microphone from the WAV given by `play`
//!   and write the speaker to the WAV given by `record`; ALSA and PulseAudio are never opened
//!   for the call (the "could not find a suitable soundcard" messages at start are harmless).
//! - HOME is a fresh directory holding `.local/share/linphone/`. Without that directory
//!   liblinphone logs "Unable to open linphone database" and the core never starts: no SIP
//!   socket is opened and nothing registers, while the prompt still answers commands.
//! - The account has `reg_route` pointing at the PBX, so INVITEs for `sip:202@pbx.local` go to
//!   the PBX instead of a DNS lookup of `pbx.local` (which fails, and the call errors out).
//! - Commands go to linphonec's stdin through a pipe; its readline loop keeps iterating the core
//!   between lines. The test waits for linphonec's own output ("connected", "ended") and for
//!   the PBX's registration gauge, never for fixed sleeps alone.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use harness::*;

/// A running linphonec for extension `ext` (password `pw<ext>`), killed on drop.
struct Linphonec {
    child: Child,
    stdin: ChildStdin,
    dir: PathBuf,
}

impl Linphonec {
    fn start(pbx: &Pbx, ext: &str, sip_port: u16, rtp_port: u16) -> Linphonec {
        need("linphonec", "linphone-cli");
        let dir = pbx.dir.join(format!("linphone-{ext}"));
        std::fs::create_dir_all(dir.join("home/.local/share/linphone")).unwrap();
        let proxy = format!("<sip:{};transport=udp>", pbx.sip());
        let route = format!("<sip:{};transport=udp;lr>", pbx.sip());
        std::fs::write(
            dir.join("linphonerc"),
            format!(
                "[sip]\nsip_port={sip_port}\nsip_tcp_port=0\nsip_tls_port=0\ndefault_proxy=0\n\
                 [rtp]\naudio_rtp_port={rtp_port}\nvideo_rtp_port={}\n\
                 [sound]\nechocancellation=0\n\
                 [video]\ncapture=0\ndisplay=0\nautomatically_initiate=0\nautomatically_accept=0\n\
                 [proxy_0]\nreg_proxy={proxy}\nreg_route={route}\n\
                 reg_identity=sip:{ext}@pbx.local\nreg_expires=600\nreg_sendregister=1\npublish=0\n\
                 [auth_info_0]\nusername={ext}\npasswd=pw{ext}\nrealm=pbx.local\n\
                 domain=pbx.local\n",
                rtp_port + 2
            ),
        )
        .unwrap();
        let console = std::fs::File::create(dir.join("console.log")).unwrap();
        let mut child = Command::new("linphonec")
            .arg("-c")
            .arg(dir.join("linphonerc"))
            .args(["-d", "5", "-l"])
            .arg(dir.join("liblinphone.log"))
            .env("HOME", dir.join("home"))
            .stdin(Stdio::piped())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("could not start linphonec");
        let stdin = child.stdin.take().unwrap();
        Linphonec { child, stdin, dir }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Plays `wav` as the microphone and records what is heard to `record`.
    fn use_files(&mut self, wav: &Path, record: &Path) {
        self.send("soundcard use files");
        self.send(&format!("play {}", wav.display()));
        self.send(&format!("record {}", record.display()));
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// Waits until the console shows `text`.
    fn wait_for(&self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.console().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn quit(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }

    /// The console and the end of liblinphone's own log, for failure messages.
    fn report(&self) -> String {
        let lib = std::fs::read_to_string(self.dir.join("liblinphone.log")).unwrap_or_default();
        let tail: Vec<&str> = lib.lines().rev().take(60).collect();
        format!(
            "linphonec console:\n{}\n--- liblinphone.log (last lines):\n{}",
            self.console(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Linphonec {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// Both phones heard the other's tone: more than two seconds of ~440 Hz audio each.
fn assert_tone(what: &str, path: Option<&Path>, context: &dyn Fn() -> String) {
    let h = path.map(heard).unwrap_or_default();
    assert!(
        h.loud_secs > 2.0 && (800.0..960.0).contains(&h.crossings_per_sec),
        "{what} did not hear the 440 Hz tone: {h:?} in {path:?}\n{}",
        context()
    );
}

struct Setup {
    pbx: Pbx,
    wav: PathBuf,
    baresip_dir: PathBuf,
    phone_port: u16,
}

fn setup() -> Setup {
    need("baresip", "baresip");
    need("linphonec", "linphone-cli");
    let pbx = Pbx::start(ports(33060));
    pbx.add_user("202", "pw202");
    pbx.add_user("204", "pw204");
    let wav = pbx.dir.join("tone.wav");
    tone_wav(&wav, 30);
    let phone_port = pbx.sip_port + 5;
    let baresip_dir = baresip_phone(&pbx, "202", "127.0.0.6", phone_port, &wav, false);
    Setup {
        pbx,
        wav,
        baresip_dir,
        phone_port,
    }
}

#[test]
fn linphonec_calls_baresip_through_the_relay_both_ways() {
    let s = setup();
    let pbx = &s.pbx;
    let baresip = Proc::spawn(
        "baresip 202",
        Command::new("baresip")
            .arg("-f")
            .arg(&s.baresip_dir)
            .args(["-t", "40"]),
        pbx.dir.join("baresip-202.log"),
    );
    assert_eq!(
        pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(10)),
        1,
        "baresip 202 did not register:\n{}",
        baresip.output()
    );
    let mut lp = Linphonec::start(pbx, "204", s.phone_port + 1, pbx.sip_port + 10);
    let record = lp.dir.join("heard.wav");
    lp.use_files(&s.wav, &record);
    assert_eq!(
        pbx.wait_metric("kentongan_registrations", 2, Duration::from_secs(15)),
        2,
        "linphonec 204 did not register:\n{}",
        lp.report()
    );
    lp.send("call sip:202@pbx.local");
    assert!(
        lp.wait_for("connected", Duration::from_secs(15)),
        "the call was not answered:\n{}\nbaresip:\n{}",
        lp.report(),
        baresip.output()
    );
    // About 50 packets/s each way once the call is up.
    std::thread::sleep(Duration::from_secs(5));
    lp.send("terminate");
    assert!(
        lp.wait_for("ended", Duration::from_secs(10)),
        "{}",
        lp.report()
    );
    lp.quit();
    let context = || format!("{}\nbaresip:\n{}", lp.report(), baresip.output());
    assert_audio_both_ways(&s, &record, "caller", &context);
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    let cdr = String::from_utf8_lossy(&cdr.stdout);
    assert!(
        cdr.contains("\"answered\"") && cdr.contains("\"204\""),
        "{cdr}"
    );
}

#[test]
fn baresip_calls_linphonec_through_the_relay_both_ways() {
    let s = setup();
    let pbx = &s.pbx;
    let mut lp = Linphonec::start(pbx, "204", s.phone_port + 1, pbx.sip_port + 10);
    let record = lp.dir.join("heard.wav");
    lp.use_files(&s.wav, &record);
    lp.send("autoanswer enable");
    assert_eq!(
        pbx.wait_metric("kentongan_registrations", 1, Duration::from_secs(15)),
        1,
        "linphonec 204 did not register:\n{}",
        lp.report()
    );
    // baresip registers, dials 204, and quits after 10 s (hanging up).
    let mut baresip = Proc::spawn(
        "baresip 202",
        Command::new("baresip")
            .arg("-f")
            .arg(&s.baresip_dir)
            .args(["-t", "10", "-e", "/dial 204"]),
        pbx.dir.join("baresip-202.log"),
    );
    assert!(
        lp.wait_for("connected", Duration::from_secs(15)),
        "linphonec did not answer:\n{}\nbaresip:\n{}",
        lp.report(),
        baresip.output()
    );
    baresip.wait(Duration::from_secs(30));
    assert!(
        lp.wait_for("ended", Duration::from_secs(10)),
        "{}",
        lp.report()
    );
    lp.quit();
    let context = || format!("{}\nbaresip:\n{}", lp.report(), baresip.output());
    assert_audio_both_ways(&s, &record, "callee", &context);
}

/// More than 100 relayed audio packets each way, and each phone heard the other's tone;
/// `linphonec_role` is "caller" or "callee" (baresip has the other role).
fn assert_audio_both_ways(
    s: &Setup,
    linphonec_heard: &Path,
    linphonec_role: &str,
    context: &dyn Fn() -> String,
) {
    let baresip_role = if linphonec_role == "caller" {
        "callee"
    } else {
        "caller"
    };
    assert!(relayed(&s.pbx, "audio", "to_callee") > 100, "{}", context());
    assert!(relayed(&s.pbx, "audio", "to_caller") > 100, "{}", context());
    assert_tone(
        &format!("linphonec ({linphonec_role})"),
        Some(linphonec_heard),
        context,
    );
    assert_tone(
        &format!("baresip ({baresip_role})"),
        baresip_decoded(&s.baresip_dir).as_deref(),
        context,
    );
}
