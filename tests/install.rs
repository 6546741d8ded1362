//! The installer end to end under QEMU (issue 8), once with SeaBIOS and once with OVMF with
//! Secure Boot enforced (Microsoft's keys enrolled, as PC servers ship):
//!
//! 1. a blank 4 GiB disk and a small FAT volume labelled `KENTONGAN` holding an `answer.toml`
//!    with random passwords are made on the host (mkfs.vfat, mtools: nothing is mounted);
//! 2. the appliance ISO boots with both attached, the unattended install runs, and the guest
//!    powers itself off;
//! 3. the disk alone boots the installed system: it passes the appliance's boot checks with
//!    the answer's host name and SIP domain, booted from its ext4 root under the same
//!    firmware, has the static address and route, and extension 201 registers over the
//!    forwarded UDP port with the answer's password (and not with a wrong one);
//! 4. neither password appears in the serial logs of both boots, the installed system's
//!    journal (runtime and persistent, every field) or anywhere in the disk image's bytes.
//!
//! BIOS boots the ISO as a CD and reads the answer from a second virtio disk; UEFI boots the
//! ISO as a USB stick through shim and reads the answer from another USB stick, and both the
//! live system and the installed disk (shim installed by `grub-install --uefi-secure-boot`)
//! must run with Secure Boot on. Each run keeps its evidence
//! under `$KENTONGAN_OUT/install-test/<firmware>-<unix time>/` (`install/serial.log`,
//! `disk/serial.log`, QEMU's logs); the disk images are deleted when the run passes.
//!
//! Needs root, QEMU (qemu-system-x86, ovmf), dosfstools, mtools and fdisk; run by
//! `scripts/test` after the ISO is built (`KENTONGAN_ISO`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kentongan_e2e::{appliance_iso, out_dir, run};
use kentongan_setup::facts::{Disk as FactDisk, Facts, Nic};
use kentongan_setup::tui::untranslated;
use kentongan_setup::validate::{password_weakness, Language};
use kentongan_setup::{validate, Answer};
use kentongan_sip::Response;
use kentongan_vmtest::checks::{firmware_checks, run_checks, ApplianceFacts, Check, CheckFailure};
use kentongan_vmtest::sip_probe::{ProbeError, SipProbe};
use kentongan_vmtest::{
    Disk, DiskBus, DiskFormat, Firmware, Forward, Key, Machine, MachineConfig, Media, Proto,
    VmError,
};

#[path = "fixtures/install/upgrade.rs"]
mod upgrade;
#[path = "fixtures/install/wizard.rs"]
mod wizard;

/// The target disk: the smallest the installer accepts, sparse on the host.
const DISK_BYTES: u64 = 4 << 30;
/// Partitioning, copying the system, the initrd and GRUB twice, under KVM (the harness
/// stretches it ×4 under TCG). Measured under TCG on a 2-core host: 410 s, 700 s when the
/// host was busy compiling; update-initramfs alone takes 4-7 minutes of that.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(360);
/// Until the guest agent answers, under KVM (×4 under TCG): the appliance's usual boot
/// timeout plus room for a loaded CI host; the installed system's initrd has every driver.
const BOOT: Duration = Duration::from_secs(90);
const DOMAIN: &str = "kantor.local";
const EXTENSION: &str = "201";
const SERIAL_TAIL: usize = 40;

/// The two passwords of the answer file, made for this run.
struct Secrets {
    admin: String,
    extension: String,
}

impl Secrets {
    fn new(hostname: &str) -> Secrets {
        Secrets {
            admin: password(&[EXTENSION, hostname]),
            extension: password(&[EXTENSION, hostname]),
        }
    }

    fn all(&self) -> [(&'static str, &str); 2] {
        [
            ("the admin password", &self.admin),
            ("extension 201's password", &self.extension),
        ]
    }

    /// Which of the passwords occur in `bytes`.
    fn found_in(&self, bytes: &[u8]) -> Vec<&'static str> {
        self.all()
            .into_iter()
            .filter(|(_, pw)| contains(bytes, pw.as_bytes()))
            .map(|(what, _)| what)
            .collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// 20 random letters and digits with a `.` in the middle, that the installer's own strength
/// rule accepts.
fn password(related: &[&str]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    loop {
        let mut bytes = [0u8; 20];
        let mut f = std::fs::File::open("/dev/urandom").unwrap();
        std::io::Read::read_exact(&mut f, &mut bytes).unwrap();
        let mut pw: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        pw.insert(10, '.');
        if password_weakness(&pw, related).is_none() {
            return pw;
        }
    }
}

fn answer_toml(hostname: &str, secrets: &Secrets) -> String {
    format!(
        r#"language = "en"
hostname = "{hostname}"
domain = "{DOMAIN}"
timezone = "Asia/Jakarta"
admin_password = "{admin}"
[network]
mode = "static"
address = "10.0.2.15/24"
gateway = "10.0.2.2"
dns = ["10.0.2.3"]
[disk]
target = "auto"
wipe = true
[firewall]
trusted = ["10.0.2.0/24"]
[[extension]]
number = "{EXTENSION}"
name = "Front desk"
password = "{ext}"
"#,
        admin = secrets.admin,
        ext = secrets.extension,
    )
}

/// Checks the answer against the machine the VM will be, so a mistake here fails in a
/// second instead of after a boot.
fn check_answer(text: &str) {
    let facts = Facts {
        disks: vec![
            FactDisk {
                path: "/dev/vda".into(),
                size_bytes: DISK_BYTES,
                ..FactDisk::default()
            },
            FactDisk {
                path: "/dev/sdb".into(),
                size_bytes: 8 << 20,
                removable: true,
                fstype: Some("vfat".into()),
                label: Some("KENTONGAN".into()),
                ..FactDisk::default()
            },
        ],
        nics: vec![Nic {
            name: "ens3".into(),
            mac: "52:54:00:12:34:56".into(),
        }],
        timezones: ["Asia/Jakarta".to_owned()].into_iter().collect(),
    };
    let answer = Answer::parse(text).unwrap_or_else(|p| panic!("answer.toml does not parse: {p}"));
    let plan = validate(&answer, &facts).unwrap_or_else(|p| panic!("answer.toml is invalid: {p}"));
    assert_eq!(
        plan.disk.device, "/dev/vda",
        "auto must pick the blank disk"
    );
}

/// A FAT image labelled KENTONGAN holding `answer.toml`, made without mounting anything.
fn answer_volume(path: &Path, answer: &str) {
    let _ = std::fs::remove_file(path);
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "KENTONGAN"])
        .arg(path)
        .arg("8192"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("answer.toml");
    std::fs::write(&file, answer).unwrap();
    run(Command::new("mcopy")
        .arg("-i")
        .arg(path)
        .arg(&file)
        .arg("::answer.toml"));
}

/// A failure: which step, what went wrong, the hint and the end of the serial log.
fn fail(test: &str, step: &str, m: &Machine, error: &dyn std::fmt::Display, hint: &str) -> ! {
    let screen = m.run_dir().join("screen.png");
    let screen = match m.screendump(&screen) {
        Ok(()) => format!("\nscreendump: {}", screen.display()),
        Err(_) => String::new(),
    };
    panic!(
        "{test}: step `{step}` failed: {error}\nhint: {hint}{screen}\n\
         last {SERIAL_TAIL} lines of {}:\n{}",
        m.serial_log().display(),
        m.serial_tail(SERIAL_TAIL)
    );
}

fn vm_fail(test: &str, step: &str, m: &Machine, error: VmError) -> ! {
    fail(test, step, m, &error, error.hint())
}

/// Runs `command` in the guest and returns its stdout, or fails the step.
fn guest(test: &str, step: &str, m: &mut Machine, command: &str) -> String {
    match m.succeed(command) {
        Ok(out) => out,
        Err(e) => vm_fail(test, step, m, e),
    }
}

/// The partition names of a disk image, from `sfdisk --json` (works on plain files).
fn partition_names(image: &Path) -> Vec<String> {
    let json = run(Command::new("sfdisk").arg("--json").arg(image));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Which passwords occur anywhere in the bytes of `image` (grep stops at the first match and
/// treats NUL bytes as line ends, so a sparse 4 GiB image is scanned in seconds).
fn secrets_in_file(image: &Path, secrets: &Secrets) -> Vec<&'static str> {
    secrets
        .all()
        .into_iter()
        .filter(|(_, pw)| {
            let status = Command::new("grep")
                .args(["-q", "-F", "--binary-files=binary", "-e", pw])
                .arg(image)
                .status()
                .unwrap_or_else(|e| panic!("cannot run grep: {e}"));
            assert!(
                status.code() != Some(2),
                "grep could not read {}",
                image.display()
            );
            status.success()
        })
        .map(|(what, _)| what)
        .collect()
}

/// The guest agent keeps the first 4 MiB of a command's output.
const AGENT_OUTPUT_LIMIT: usize = 4 << 20;

/// Everything a guest command prints, fetched gzip'ed and base64'd so that a large journal
/// fits the agent's output limit; decoded on the host. Fails when the command prints nothing.
fn fetch_compressed(test: &str, step: &str, m: &mut Machine, command: &str) -> Vec<u8> {
    let encoded = guest(
        test,
        step,
        m,
        &format!("({command}) | gzip -1 | base64 -w0"),
    );
    if encoded.len() >= AGENT_OUTPUT_LIMIT {
        fail(
            test,
            step,
            m,
            &format!("`{command}` printed too much to fetch"),
            "raise the agent's MAX_OUTPUT",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b64");
    std::fs::write(&file, encoded.trim()).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("base64 -d \"$0\" | gzip -dc")
        .arg(&file)
        .output()
        .unwrap();
    if !out.status.success() || out.stdout.is_empty() {
        fail(
            test,
            step,
            m,
            &format!("`{command}` printed nothing usable"),
            "run it by hand in the guest",
        );
    }
    out.stdout
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Installs from the ISO, boots the disk alone and checks everything; prints how long the
/// install (ISO boot until power off) and the installed system's checks took.
fn install_and_boot(test: &str, firmware: Firmware, iso_media: Media, installer: Installer) {
    let iso = appliance_iso();
    let dir = out_dir().join(format!("install-test/{test}-{}", unix_time()));
    std::fs::create_dir_all(&dir).unwrap();
    let hostname = format!("pbx-{test}");
    let mut secrets = Secrets::new(&hostname);

    let target = dir.join("target.img");
    let blank = Disk::create_blank(&target, DISK_BYTES).unwrap();

    // 1. The live ISO with the blank disk (and the answer volume): install, power off.
    let mut cfg = MachineConfig::new(&iso, dir.join("install"));
    cfg.firmware = firmware;
    cfg.media = iso_media;
    cfg.extra_disks = vec![blank];
    let answer_img = match installer {
        Installer::Answer(bus) => {
            let answer = answer_toml(&hostname, &secrets);
            check_answer(&answer);
            let answer_img = dir.join("answer.img");
            answer_volume(&answer_img, &answer);
            let answer_disk = Disk::new(&answer_img, DiskFormat::Raw);
            cfg.extra_disks.push(match bus {
                DiskBus::Usb => answer_disk.usb(),
                DiskBus::Virtio => answer_disk,
            });
            // The installer's journal reaches the serial log (see below): its failure ends
            // the wait.
            cfg.fatal_serial.extend([
                r"kentongan-setup-auto\.service: Failed with result".to_owned(),
                r"unattended install from the KENTONGAN answer volume was skipped".to_owned(),
            ]);
            Some(answer_img)
        }
        Installer::Wizard => None,
    };
    let started = Instant::now();
    let mut m = Machine::start(cfg).unwrap_or_else(|e| panic!("{e}\nhint: {}", e.hint()));
    let step = "live system up (guest agent answers)";
    if let Err(e) = m.wait_for_agent(BOOT) {
        vm_fail(test, step, &m, e);
    }
    let agent_up = started.elapsed();
    if firmware == Firmware::UefiSecureBoot {
        // The live system from the USB stick, through shim, with Secure Boot enforced.
        if let Err(CheckFailure { check, error }) =
            run_checks(&mut m, &[Check::SecureBoot], BOOT, |_, _| {})
        {
            vm_fail(test, &format!("live system: {check}"), &m, error);
        }
    }
    // The live system's console is tty1; copy its whole journal (from the start of the boot,
    // then following) to the serial port, so the log shows the installer's steps and the
    // secret scan covers what the live system logged. Only once the serial getty has shown
    // its prompt: agetty hangs the port up when it starts, which ends any earlier writer.
    if let Err(e) = m.wait_for_serial(r"(?m)^\S+ login: ", BOOT) {
        vm_fail(test, "serial login prompt of the live system", &m, e);
    }
    guest(
        test,
        "copy the live journal to the serial port",
        &mut m,
        "systemd-run --quiet --unit=vmtest-journal-to-serial \
         sh -c 'exec journalctl -b -f -n all -o short-monotonic >/dev/ttyS0'",
    );
    match installer {
        Installer::Answer(_) => answer_volume_starts_the_install(test, &mut m),
        Installer::Wizard => {
            secrets.extension = wizard_install(test, &mut m, &dir, &hostname, &secrets.admin)
        }
    }
    let step = "install, then power off";
    if let Err(e) = m.wait_for_shutdown(INSTALL_TIMEOUT) {
        // Still up (a timeout, or the installer failed): what is it doing?
        let state = m
            .execute(
                "systemctl status --no-pager -n 0 kentongan-setup-auto.service \
                 kentongan-setup-tui.service 2>&1; \
                 ps -e -o pid,etime,time,args --forest 2>&1 | grep -v ' \\[' | tail -n 25",
            )
            .map(|(_, out)| format!("\nin the guest:\n{out}"))
            .unwrap_or_default();
        fail(test, step, &m, &format!("{e}{state}"), e.hint());
    }
    let install_took = started.elapsed();
    let install_serial = std::fs::read(m.serial_log()).unwrap_or_default();
    let install_serial_path = m.serial_log().to_owned();
    drop(m);
    eprintln!(
        "{test}: live agent up after {}s, installed and powered off after {}s",
        agent_up.as_secs(),
        install_took.as_secs()
    );
    let names = partition_names(&target);
    assert_eq!(
        names,
        ["bios-boot", "KENTONGAN-ESP", "KENTONGAN-ROOT"],
        "{test}: the installed disk's partitions (KENTONGAN-INCOMPLETE means the install did \
         not finish); serial log: {}",
        install_serial_path.display()
    );

    // 2. The disk alone: the installed system.
    let mut cfg = MachineConfig::from_disk(Disk::new(&target, DiskFormat::Raw), dir.join("disk"));
    cfg.firmware = firmware;
    let facts = ApplianceFacts {
        hostname: hostname.clone(),
        sip_domain: DOMAIN.into(),
        ..ApplianceFacts::default()
    };
    // QEMU's user network makes the host's packets come from 10.0.2.2, inside the answer's
    // trusted network, and trusted sources are never banned: the scanner-ban check does not
    // apply here. That the network is trusted is checked below instead.
    let checks: Vec<Check> = firmware_checks(&facts, firmware)
        .into_iter()
        .filter(|c| !matches!(c, Check::ScannerBanned { .. }))
        .collect();
    cfg.forwards = checks.iter().flat_map(|c| c.forwards()).collect();
    if !cfg
        .forwards
        .iter()
        .any(|f| f.proto == Proto::Udp && f.guest_port == facts.sip_port)
    {
        cfg.forwards
            .push(Forward::to_guest(Proto::Udp, facts.sip_port));
    }
    let started = Instant::now();
    let mut m = Machine::start(cfg).unwrap_or_else(|e| panic!("{e}\nhint: {}", e.hint()));
    let result = run_checks(&mut m, &checks, BOOT, |check, r| {
        eprintln!(
            "{test}: installed system: {:>16} {} after {}s",
            check.name(),
            if r.is_ok() { "passed" } else { "FAILED" },
            started.elapsed().as_secs()
        );
    });
    if let Err(CheckFailure { check, error }) = result {
        vm_fail(
            test,
            &format!("installed system: appliance check `{check}`"),
            &m,
            error,
        );
    }

    let step = "booted the installed system, not the live one";
    let cmdline = guest(test, step, &mut m, "cat /proc/cmdline");
    let root_fs = guest(test, step, &mut m, "findmnt -n -o FSTYPE /");
    if cmdline.contains("boot=live") || root_fs.trim() != "ext4" {
        fail(
            test,
            step,
            &m,
            &format!(
                "kernel command line `{}`, / is `{}`",
                cmdline.trim(),
                root_fs.trim()
            ),
            "the firmware booted something other than the installed disk",
        );
    }
    // §6: the installer placed the image's prebuilt initrd (built without live-boot) instead
    // of running update-initramfs; the unattended install logs its choice.
    let step = "the installed system boots the image's prebuilt initrd";
    let initrd = guest(
        test,
        step,
        &mut m,
        "test ! -e /usr/lib/kentongan/installed-initrd && test -s /boot/initrd.img-$(uname -r) \
         && echo placed",
    );
    let chose = contains(&install_serial, b"Chose the image's prebuilt initrd for ");
    if initrd.trim() != "placed" || (matches!(installer, Installer::Answer(_)) && !chose) {
        fail(
            test,
            step,
            &m,
            &format!(
                "in the guest: `{}`; install log names the prebuilt initrd: {chose}",
                initrd.trim()
            ),
            "see `Chose` in install/serial.log and crates/setup/src/install/initrd.rs",
        );
    }
    let step = "booted by the expected firmware";
    let efi = m
        .execute("test -d /sys/firmware/efi")
        .unwrap_or_else(|e| vm_fail(test, step, &m, e))
        .0
        == 0;
    if efi != (firmware != Firmware::Bios) {
        fail(
            test,
            step,
            &m,
            &format!("/sys/firmware/efi exists: {efi}, firmware {firmware:?}"),
            "check which GRUB the firmware started",
        );
    }

    let step = "static address from the answer";
    let addrs = guest(test, step, &mut m, "ip -4 -o addr show scope global");
    let routes = guest(test, step, &mut m, "ip -4 route show default");
    if !addrs.contains("inet 10.0.2.15/24 ") || !routes.contains("via 10.0.2.2 ") {
        fail(
            test,
            step,
            &m,
            &format!("`ip -4 addr`: {addrs:?}; default route: {routes:?}"),
            "look at /etc/systemd/network/10-kentongan.network and `networkctl status`",
        );
    }

    let step = "the answer's trusted network is in the firewall";
    let trusted = guest(
        test,
        step,
        &mut m,
        &format!("nft list set {} trusted4", facts.nft_table),
    );
    if !trusted.contains("10.0.2.0/24") {
        fail(
            test,
            step,
            &m,
            &format!("the trusted4 set holds: {}", trusted.trim()),
            "look for `[firewall] trusted` in /etc/kentongan/pbx.toml",
        );
    }

    let step = "kentongan-pbx is active";
    let state = m
        .execute("systemctl is-active kentongan-pbx.service")
        .unwrap_or_else(|e| vm_fail(test, step, &m, e))
        .1;
    if state.trim() != "active" {
        fail(
            test,
            step,
            &m,
            &format!("kentongan-pbx.service is {}", state.trim()),
            "journalctl -u kentongan-pbx",
        );
    }

    let step = "the live-only installer is gone and the install is marked done";
    guest(
        test,
        step,
        &mut m,
        "test -e /var/lib/kentongan/setup-done && ! test -e /etc/systemd/system/kentongan-setup-auto.service",
    );
    let step = "root's password is stored as a SHA-512 crypt hash";
    let hash = guest(
        test,
        step,
        &mut m,
        "awk -F: '$1 == \"root\" { print $2 }' /etc/shadow",
    );
    if !hash.starts_with("$6$") {
        fail(
            test,
            step,
            &m,
            &"root's /etc/shadow field is not `$6$…`",
            "see install::admin_password",
        );
    }

    let step = "extension 201 registers with the answer's password over the forwarded UDP port";
    let port = m.host_port(Proto::Udp, facts.sip_port).unwrap();
    let salt: String = password(&[])
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    let register = |pw: &str, n: u8| {
        SipProbe::new(port, DOMAIN, &format!("{salt}{n}"))
            .and_then(|mut p| p.register(EXTENSION, pw))
    };
    match register(&secrets.extension, 1) {
        Ok(r) if r.status.0 == 200 => {}
        Ok(r) => fail(
            test,
            step,
            &m,
            &format!("REGISTER answered {} {}", r.status.0, r.reason),
            "the extension's HA1 does not match the answer's password: see install::extensions",
        ),
        Err(e) => fail(
            test,
            step,
            &m,
            &e,
            "is kentongan-pbx listening on UDP 5060?",
        ),
    }
    let step = "extension 201 does not register with a wrong password";
    match register("Wrong.password-42x", 2) {
        Ok(r) if r.status.0 != 200 => {}
        Ok(r) => fail(
            test,
            step,
            &m,
            &format!(
                "REGISTER with a wrong password answered {} {}",
                r.status.0, r.reason
            ),
            "the PBX accepts any password",
        ),
        Err(e) => fail(
            test,
            step,
            &m,
            &e,
            "is kentongan-pbx listening on UDP 5060?",
        ),
    }
    backup_round_trip(test, &mut m, &secrets, &register);
    if let Installer::Answer(_) = installer {
        upgrade_in_place(test, &mut m, &dir, &secrets, &register);
    }
    let checked = started.elapsed();

    // 3. Secrets: the installed system's journal, every field of every entry, runtime and
    // persistent.
    let step = "fetch the installed system's journal";
    let mut journal = fetch_compressed(test, step, &mut m, "journalctl -b --no-pager -o verbose");
    let persistent = guest(
        test,
        step,
        &mut m,
        "find /var/log/journal -name '*.journal' 2>/dev/null | wc -l",
    );
    let persistent: usize = persistent.trim().parse().unwrap_or(0);
    if persistent > 0 {
        journal.extend(fetch_compressed(
            test,
            step,
            &mut m,
            "journalctl -D /var/log/journal --no-pager -o verbose",
        ));
    }
    // The scan sees the real journal: the PBX's start is in it.
    if !contains(&journal, b"kentongan-pbx") {
        fail(
            test,
            step,
            &m,
            &"the fetched journal does not mention kentongan-pbx",
            "run `journalctl -b -o verbose` in the guest",
        );
    }
    let found = secrets.found_in(&journal);
    if !found.is_empty() {
        fail(
            test,
            "no password in the installed system's journal",
            &m,
            &format!("the journal holds {}", found.join(" and ")),
            "run `journalctl -b -o verbose` on the installed system and find who logged it",
        );
    }
    if let Err(e) = m.shutdown() {
        vm_fail(test, "power off the installed system", &m, e);
    }
    let disk_serial = std::fs::read(m.serial_log()).unwrap_or_default();
    let disk_serial_path = m.serial_log().to_owned();
    drop(m);

    // 4. Secrets: both serial logs and every byte of the disk.
    for (what, path, bytes) in [
        (
            "the install boot's serial log",
            &install_serial_path,
            &install_serial,
        ),
        (
            "the installed system's serial log",
            &disk_serial_path,
            &disk_serial,
        ),
    ] {
        let found = secrets.found_in(bytes);
        assert!(
            found.is_empty(),
            "{test}: {what} ({}) holds {}",
            path.display(),
            found.join(" and ")
        );
    }
    // The scan finds plaintext where there is some: the answer volume holds both passwords.
    if let Some(answer_img) = &answer_img {
        assert_eq!(
            secrets_in_file(answer_img, &secrets).len(),
            2,
            "{test}: the byte scan does not find the passwords in the answer volume"
        );
    }
    let found = secrets_in_file(&target, &secrets);
    assert!(
        found.is_empty(),
        "{test}: the installed disk image {} holds {} in plaintext",
        target.display(),
        found.join(" and ")
    );

    eprintln!(
        "{test}: install (ISO boot to power off) {}s; installed system: every check passed \
         after {}s; journal ({} KiB{}), serial logs and {} GiB disk free of both passwords",
        install_took.as_secs(),
        checked.as_secs(),
        journal.len() / 1024,
        if persistent > 0 {
            format!(", {persistent} persistent journal file(s)")
        } else {
            String::new()
        },
        DISK_BYTES >> 30
    );
    // The images are large (and the answer volume holds the passwords); the logs stay.
    let _ = std::fs::remove_file(&target);
    if let Some(answer_img) = answer_img {
        let _ = std::fs::remove_file(answer_img);
    }
}

/// How the test answers the installer's questions.
#[derive(Clone, Copy)]
enum Installer {
    /// An answer volume labelled KENTONGAN on this bus: the unattended install.
    Answer(DiskBus),
    /// The operator at the console: the first-boot wizard on tty1, both languages.
    Wizard,
}

/// The answer volume starts the unattended install, which powers off when done.
fn answer_volume_starts_the_install(test: &str, m: &mut Machine) {
    let step = "the KENTONGAN volume starts kentongan-setup-auto.service";
    if let Err(e) = m.wait_until_succeeds(
        "test \"$(systemctl show -P InactiveExitTimestampMonotonic kentongan-setup-auto.service)\" -gt 0",
        Duration::from_secs(30),
    ) {
        let why = m
            .execute(
                "systemctl status --no-pager kentongan-setup-auto.service kentongan-setup-tui.service 2>&1; \
                 systemctl list-jobs --no-pager 2>&1; \
                 udevadm info --query=property --name=/dev/disk/by-label/KENTONGAN 2>&1 | \
                 grep -E '^(DEVNAME|ID_FS_LABEL|SYSTEMD_WANTS|TAGS)='",
            )
            .map(|(_, out)| out)
            .unwrap_or_default();
        fail(test, step, m, &format!("{e}\nin the guest:\n{why}"), e.hint());
    }
}

/// The operator installs with the wizard: static address, host name, the admin password
/// twice, the suggested extensions and trusted LAN, the blank disk, erase confirmed; then
/// Enter on the "installed" page restarts (QEMU exits: `-no-reboot`). Returns 201's password
/// as the summary showed it. The screens, passwords masked, are kept in `wizard.txt`.
fn wizard_install(test: &str, m: &mut Machine, dir: &Path, hostname: &str, admin: &str) -> String {
    let op = wizard::Operator {
        hostname,
        admin_password: admin,
        address: "10.0.2.15/24",
        gateway: "10.0.2.2",
        dns: "10.0.2.3",
    };
    let step = "the wizard, walked in Bahasa Indonesia and in English";
    let walked = wizard::walk(m, &op).unwrap_or_else(|e| fail(test, step, m, &e, "see wizard.txt"));
    let mut secrets: Vec<&str> = walked.passwords.values().map(String::as_str).collect();
    secrets.push(admin);
    std::fs::write(
        dir.join("wizard.txt"),
        wizard::transcript(&walked.screens, &secrets),
    )
    .unwrap();
    let step = "every screen in the language chosen";
    let untranslated: Vec<String> = walked
        .screens
        .iter()
        .filter_map(|s| {
            let lang = match s.language {
                "id" => Language::Id,
                _ => Language::En,
            };
            let words = untranslated(lang, &s.screen.text());
            (!words.is_empty()).then(|| format!("{} {}: {}", s.language, s.what, words.join(", ")))
        })
        .collect();
    if !untranslated.is_empty() {
        fail(
            test,
            step,
            m,
            &format!("the other language's words on screen:\n{}", untranslated.join("\n")),
            "see wizard.txt in the run folder; the texts are in crates/setup/src/tui.rs and validate.rs",
        );
    }
    let extension = walked.passwords.get(EXTENSION).cloned().unwrap_or_else(|| {
        fail(
            test,
            step,
            m,
            &format!("the summary shows no password for {EXTENSION}"),
            "the wizard's default extensions are 201-203",
        )
    });
    let step = "the wizard installs to the disk";
    let done = wizard::install(m, INSTALL_TIMEOUT)
        .unwrap_or_else(|e| fail(test, step, m, &e, "the install log is in the serial log"));
    std::fs::write(
        dir.join("wizard.txt"),
        format!(
            "{}=== en · installed\n{}\n",
            wizard::transcript(&walked.screens, &secrets),
            done
        ),
    )
    .unwrap();
    m.press(Key::Enter)
        .unwrap_or_else(|e| vm_fail(test, "Enter restarts the machine", m, e));
    extension
}

/// One REGISTER of 201 with a password (the number keeps Call-IDs apart).
type Register<'a> = dyn Fn(&str, u8) -> Result<Response, ProbeError> + 'a;

/// REGISTER answers until one is `want` (200 or not) or `within` passes; its last status.
fn register_until(
    register: &Register<'_>,
    pw: &str,
    first_n: u8,
    want_ok: bool,
    within: Duration,
) -> Result<u16, String> {
    let deadline = std::time::Instant::now() + within;
    let mut n = first_n;
    loop {
        let got = register(pw, n).map(|r| r.status.0);
        match &got {
            Ok(code) if (*code == 200) == want_ok => return Ok(*code),
            _ if std::time::Instant::now() >= deadline => {
                return got.map_err(|e| e.to_string());
            }
            _ => {}
        }
        n = n.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Backup and restore on the installed appliance (issue 20 §4), in the boot already made: a
/// truncated archive is refused with nothing changed; after extension 201 is removed, the
/// backup brings it back and it registers with its old password.
fn backup_round_trip(test: &str, m: &mut Machine, secrets: &Secrets, register: &Register) {
    let step = "kentongan-setup backup of the installed appliance";
    guest(
        test,
        step,
        m,
        "kentongan-setup backup --out /root/backup.tar.zst",
    );
    let step = "a truncated backup is refused and changes nothing";
    let (code, out) = m
        .execute(
            "head -c $(( $(stat -c %s /root/backup.tar.zst) / 2 )) /root/backup.tar.zst \
             > /root/cut.tar.zst && kentongan-setup restore /root/cut.tar.zst 2>&1; \
             echo \"exit=$?\"",
        )
        .unwrap_or_else(|e| vm_fail(test, step, m, e));
    if code != 0 || out.contains("exit=0") || !out.to_lowercase().contains("error") {
        fail(
            test,
            step,
            m,
            &format!("restore of a truncated archive said: {}", out.trim()),
            "backup::validate_archive must refuse it before touching anything",
        );
    }
    match register_until(
        register,
        &secrets.extension,
        10,
        true,
        Duration::from_secs(5),
    ) {
        Ok(200) => {}
        other => fail(
            test,
            step,
            m,
            &format!("201 no longer registers after the refused restore: {other:?}"),
            "the refused restore changed something: see backup::restore",
        ),
    }
    let step = "extension 201 removed";
    guest(
        test,
        step,
        m,
        "kentongan-pbx --config /etc/kentongan/pbx.toml user remove 201",
    );
    if let Ok(200) | Err(_) = register_until(
        register,
        &secrets.extension,
        30,
        false,
        Duration::from_secs(10),
    ) {
        fail(
            test,
            step,
            m,
            &"201 still registers after `user remove 201`",
            "the daemon re-reads users within a second of a CLI change",
        );
    }
    let step = "restore from the backup brings 201 back with its old password";
    guest(
        test,
        step,
        m,
        "kentongan-setup restore /root/backup.tar.zst",
    );
    match register_until(
        register,
        &secrets.extension,
        50,
        true,
        Duration::from_secs(30),
    ) {
        Ok(200) => {}
        other => fail(
            test,
            step,
            m,
            &format!("after the restore REGISTER gave {other:?}"),
            "journalctl -u kentongan-pbx; the restore keeps replaced files as *.previous",
        ),
    }
    guest(
        test,
        step,
        m,
        "rm -f /root/backup.tar.zst /root/cut.tar.zst",
    );
}

/// The installed appliance upgraded to the next version from a signed repository (issue 20
/// §3): the packages' version changes; the config, extensions, the schema-versioned
/// database and 201's registration with its old password stay; a second run has nothing to do;
/// an upgrade to a release whose PBX does not start is rolled back to the working one.
fn upgrade_in_place(
    test: &str,
    m: &mut Machine,
    dir: &Path,
    secrets: &Secrets,
    register: &Register,
) {
    let step = "the next version's signed repository, built from this tree and served";
    let served = upgrade::serve_next(&dir.join("upgrade"));
    let keyring = std::fs::read(&served.keyring).unwrap();
    guest(
        test,
        step,
        m,
        &upgrade::put_file("/root/repo-key.gpg", &keyring),
    );
    let kept = "sha256sum /etc/kentongan/pbx.toml; \
                kentongan-pbx --config /etc/kentongan/pbx.toml user list";
    let before = guest(test, "what the upgrade must keep", m, kept);
    let step = "kentongan-setup upgrade --repo http://10.0.2.2:PORT/ --keyring …";
    let out = m
        .execute_with_timeout(
            &format!(
                "kentongan-setup upgrade --repo http://10.0.2.2:{}/ --keyring /root/repo-key.gpg 2>&1",
                served.port
            ),
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| vm_fail(test, step, m, e));
    let want = format!("kentongan-pbx 0.1.0 → {}", upgrade::NEXT);
    if out.status != 0 || !out.stdout.contains(&want) {
        fail(
            test,
            step,
            m,
            &format!("exit {}:\n{}", out.status, out.stdout.trim()),
            "the upgrade prints each package's old and new version",
        );
    }
    eprintln!("{test}: upgrade:\n{}", out.stdout.trim());
    let step = "after the upgrade: new versions, same config and extensions, 201 registers";
    let versions = guest(
        test,
        step,
        m,
        "dpkg-query -W -f '${Package} ${Version}\\n' 'kentongan-*'; \
         grep -c '^Signed-By: /etc/kentongan/apt-keyring.gpg$' /etc/apt/sources.list.d/kentongan.sources; \
         ls /var/backups/kentongan/pre-upgrade-*.tar.zst",
    );
    if !versions.contains(&format!("kentongan-pbx {}", upgrade::NEXT))
        || !versions.contains(&format!("kentongan-setup {}", upgrade::NEXT))
    {
        fail(
            test,
            step,
            m,
            &versions,
            "dpkg-query shows what is installed",
        );
    }
    let after = guest(test, step, m, kept);
    if after != before {
        fail(
            test,
            step,
            m,
            &format!("before:\n{before}\nafter:\n{after}"),
            "the upgrade changed the config or lost an extension",
        );
    }
    match register_until(
        register,
        &secrets.extension,
        90,
        true,
        Duration::from_secs(30),
    ) {
        Ok(200) => {}
        other => fail(
            test,
            step,
            m,
            &format!("REGISTER after the upgrade gave {other:?}"),
            "journalctl -u kentongan-pbx",
        ),
    }
    let step = "a second upgrade has nothing to do";
    let again = guest(test, step, m, "kentongan-setup upgrade 2>&1");
    if !again.contains("already up to date") {
        fail(
            test,
            step,
            m,
            &again,
            "the installed version is the newest offered",
        );
    }

    // A release whose PBX does not start: the upgrade must put the previous one back.
    let step = "an upgrade to a PBX that does not start is rolled back";
    let broken = upgrade::serve_broken(&served, &dir.join("upgrade"));
    let out = m
        .execute_with_timeout(
            &format!(
                "kentongan-setup upgrade --repo http://10.0.2.2:{}/ --check-seconds 30 2>&1",
                broken.port
            ),
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| vm_fail(test, step, m, e));
    eprintln!("{test}: upgrade to a broken PBX:\n{}", out.stdout.trim());
    if out.status == 0 || !out.stdout.contains("rolled back") {
        fail(
            test,
            step,
            m,
            &format!("exit {}:\n{}", out.status, out.stdout.trim()),
            "upgrade::upgrade must reinstall the kept packages and restore the backup",
        );
    }
    let versions = guest(
        test,
        step,
        m,
        "dpkg-query -W -f '${Version} ' kentongan-pbx; systemctl is-active kentongan-pbx.service",
    );
    if !versions.starts_with(&format!("{} ", upgrade::NEXT)) || !versions.contains("active") {
        fail(
            test,
            step,
            m,
            &format!("after the rollback: {versions}"),
            "the kept .debs are in /var/lib/kentongan/upgrade/rollback",
        );
    }
    match register_until(
        register,
        &secrets.extension,
        130,
        true,
        Duration::from_secs(30),
    ) {
        Ok(200) => {}
        other => fail(
            test,
            step,
            m,
            &format!("REGISTER after the rollback gave {other:?}"),
            "journalctl -u kentongan-pbx",
        ),
    }
}

#[test]
fn bios_install_with_the_wizard_from_cdrom_then_boot_disk() {
    install_and_boot("bios", Firmware::Bios, Media::Cdrom, Installer::Wizard);
}

#[test]
fn uefi_secureboot_install_from_usb_then_boot_disk() {
    install_and_boot(
        "uefi",
        Firmware::UefiSecureBoot,
        Media::Usb,
        Installer::Answer(DiskBus::Usb),
    );
}

#[test]
fn passwords_are_strong_and_distinct() {
    let s = Secrets::new("pbx-bios");
    assert_ne!(s.admin, s.extension);
    assert!(password_weakness(&s.admin, &[EXTENSION]).is_none());
    assert!(s.found_in(b"xx").is_empty());
    assert_eq!(
        s.found_in(format!("..{}..", s.extension).as_bytes()),
        ["extension 201's password"]
    );
    let text = answer_toml("pbx-bios", &s);
    check_answer(&text);
}
