//! Boot tests: the default ISO boots under BIOS from a CD, under UEFI from a USB stick and under
//! UEFI with Secure Boot enforced from a CD, and passes the appliance checks; an ISO missing a
//! squashfs layer fails the harness, fast; one whose EFI loader is unsigned is refused by the
//! Secure Boot firmware, and the harness says so.
//!
//! They need root, QEMU (qemu-system-x86, ovmf) and xorriso, and run from `scripts/test`,
//! two guests at a time: `cargo test -p kentongan-e2e --test boot -- --test-threads=2` (each
//! guest has its own run directory, disks and forwarded ports). The ISO comes from
//! `KENTONGAN_ISO` (default `out/kentongan-0.1.0-amd64.iso`). Each run keeps its serial log
//! (and a screendump on failure) under `out/boot-test/<test>-<unix time>/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kentongan_e2e::project_root;
use kentongan_vmtest::checks::{
    appliance_checks, firmware_checks, run_checks, ApplianceFacts, CheckFailure,
};
use kentongan_vmtest::{Firmware, Machine, MachineConfig, Media, VmError, BOOT_TIMEOUT};

fn iso() -> PathBuf {
    let iso = std::env::var_os("KENTONGAN_ISO")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("out/kentongan-0.1.0-amd64.iso"));
    let iso = if iso.is_relative() {
        project_root().join(iso)
    } else {
        iso
    };
    assert!(
        iso.is_file(),
        "no ISO at {} (set KENTONGAN_ISO, or build one with \
         `kentongan build image-recipes/appliance.toml --out out/`)",
        iso.display()
    );
    iso
}

fn run_dir(test: &str) -> PathBuf {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    project_root().join(format!("out/boot-test/{test}-{unix}"))
}

/// Boots `iso` and runs every appliance check; on failure saves a screendump and panics with
/// the failed check and where the serial log is.
fn boot_and_check(test: &str, iso: &Path, firmware: Firmware, media: Media) {
    let mut cfg = MachineConfig::new(iso, run_dir(test));
    cfg.firmware = firmware;
    cfg.media = media;
    let checks = firmware_checks(&ApplianceFacts::default(), firmware);
    cfg.forwards = checks.iter().flat_map(|c| c.forwards()).collect();
    let mut m = Machine::start(cfg).unwrap_or_else(|e| panic!("{e}\nhint: {}", e.hint()));
    let t0 = Instant::now();
    let result = run_checks(&mut m, &checks, BOOT_TIMEOUT, |check, r| {
        eprintln!(
            "{test}: {:>16} {} after {}s",
            check.name(),
            if r.is_ok() { "passed" } else { "FAILED" },
            t0.elapsed().as_secs()
        );
    });
    if let Err(CheckFailure { check, error }) = result {
        let screen = m.run_dir().join("screen.png");
        let _ = m.screendump(&screen);
        panic!(
            "{test}: check `{check}` failed: {error}\nscreendump: {}\nhint: {}",
            screen.display(),
            error.hint()
        );
    }
    // The accelerator decision is on record with its reason, so a slow CI run explains itself.
    let accel_log = std::fs::read_to_string(m.run_dir().join("accel.log")).unwrap_or_default();
    let decision = accel_log.lines().last().unwrap_or_default();
    let expected = match m.accel() {
        kentongan_vmtest::Accel::Kvm => "kvm: ",
        _ => "tcg: ",
    };
    assert!(
        decision.starts_with(expected) && decision.len() > expected.len() + 10,
        "{test}: accel.log does not explain running under {expected}: {accel_log:?}"
    );
    eprintln!(
        "{test}: all checks passed in {}s ({decision})",
        m.elapsed().as_secs()
    );
}

#[test]
fn bios_cdrom_passes_appliance_checks() {
    boot_and_check("bios-cdrom", &iso(), Firmware::Bios, Media::Cdrom);
}

#[test]
fn uefi_usb_passes_appliance_checks() {
    boot_and_check("uefi-usb", &iso(), Firmware::Uefi, Media::Usb);
}

#[test]
fn uefi_secureboot_cdrom_passes_appliance_checks() {
    boot_and_check(
        "uefi-secureboot-cdrom",
        &iso(),
        Firmware::UefiSecureBoot,
        Media::Cdrom,
    );
}

/// Secure Boot proves something only if it can say no: the same ISO with an unsigned GRUB as
/// its EFI loader is refused by the firmware, and the harness says so (not a timeout).
#[test]
fn unsigned_efi_loader_is_refused_under_secure_boot() {
    let iso = iso();
    let work = tempfile::tempdir().expect("tempdir");
    let unsigned = work.path().join("unsigned.iso");
    let scratch = work.path().join("esp");
    remaster(&iso, &unsigned, work.path(), |tree| {
        unsigned_esp(&tree.join("boot/grub/efi.img"), &scratch)
    });

    let mut cfg = MachineConfig::new(&unsigned, run_dir("unsigned-efi"));
    cfg.firmware = Firmware::UefiSecureBoot;
    cfg.media = Media::Cdrom;
    let mut m = Machine::start(cfg).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let error = match m.wait_for_agent(BOOT_TIMEOUT) {
        Ok(()) => panic!("an unsigned EFI loader booted with Secure Boot on"),
        Err(e) => e,
    };
    eprintln!(
        "unsigned-efi: refused as expected after {}s: {error}",
        started.elapsed().as_secs()
    );
    assert!(
        matches!(error, VmError::SecureBootRefused { .. }),
        "not reported as a Secure Boot refusal: {error}"
    );
    assert!(error.to_string().contains("Access Denied"), "{error}");
    assert!(error.hint().contains("shim-signed"), "{}", error.hint());
}

/// Overwrites the ESP image at `image` (same size, so the El Torito entry still fits) with one
/// whose `\EFI\BOOT\BOOTX64.EFI` is GRUB straight from grub-mkimage: unsigned.
fn unsigned_esp(image: &Path, scratch: &Path) {
    let ok = |cmd: &mut Command| {
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            o.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    std::fs::create_dir_all(scratch).unwrap();
    let loader = scratch.join("BOOTX64.EFI");
    ok(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/boot/grub", "-o"])
        .arg(&loader)
        .args(["normal", "iso9660", "linux", "configfile"]));
    let len = std::fs::metadata(image).unwrap().len();
    std::fs::remove_file(image).unwrap();
    std::fs::File::create(image).unwrap().set_len(len).unwrap();
    ok(Command::new("mkfs.fat").arg(image));
    ok(Command::new("mmd")
        .arg("-i")
        .arg(image)
        .args(["::/EFI", "::/EFI/BOOT"]));
    ok(Command::new("mcopy")
        .arg("-i")
        .arg(image)
        .arg(&loader)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
}

/// A harness that cannot fail proves nothing: without its top squashfs layer the image must
/// not pass, and the harness must say so within the boot timeout.
#[test]
fn image_missing_a_layer_fails_clearly() {
    let iso = iso();
    let work = tempfile::tempdir().expect("tempdir");
    let broken = work.path().join("broken.iso");
    remaster(&iso, &broken, work.path(), |tree| {
        let path = tree.join("live/50-overlay.squashfs");
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    });

    let mut cfg = MachineConfig::new(&broken, run_dir("broken-layer"));
    cfg.firmware = Firmware::Bios;
    cfg.media = Media::Cdrom;
    let mut m = Machine::start(cfg).unwrap_or_else(|e| panic!("{e}"));
    let budget = m.time_scale().scale(BOOT_TIMEOUT);
    let started = Instant::now();
    let checks = appliance_checks(&ApplianceFacts::default());
    let result = run_checks(&mut m, &checks, BOOT_TIMEOUT, |_, _| {});
    let took = started.elapsed();
    let Err(CheckFailure { check, error }) = result else {
        panic!("an image without 50-overlay.squashfs passed every check");
    };
    eprintln!(
        "broken-layer: failed as expected after {}s: check `{check}`: {error}",
        took.as_secs()
    );
    assert_eq!(check, "agent-ready", "failed at the wrong step: {error}");
    assert!(
        matches!(
            error,
            VmError::Timeout { .. } | VmError::GuestFailed { .. } | VmError::Agent { .. }
        ),
        "unexpected kind of failure: {error}"
    );
    let serial = error.serial_log().expect("the error names the serial log");
    assert!(serial.is_file(), "{} is missing", serial.display());
    assert!(
        error.to_string().contains(&serial.display().to_string()),
        "the message does not say where the serial log is: {error}"
    );
    // Within the boot budget plus the time to notice.
    assert!(
        took < budget + Duration::from_secs(30),
        "took {}s, budget {}s",
        took.as_secs(),
        budget.as_secs()
    );
}

/// Copies `iso` to `out` with its tree changed by `edit`, keeping the BIOS and UEFI boot records.
/// xorriso's in-place `-boot_image any replay` trips over grub-mkrescue's GPT layout
/// ("GPT partitions 1 and 2 overlap"), so the tree is extracted and rebuilt with the very
/// options `-report_el_torito as_mkisofs` reports for the original.
fn remaster(iso: &Path, out: &Path, work: &Path, edit: impl FnOnce(&Path)) {
    let tree = work.join("tree");
    let ok = |cmd: &mut Command| {
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run xorriso: {e}"));
        assert!(
            o.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .arg("-extract")
        .arg("/")
        .arg(&tree));
    // Extracted files keep the ISO's read-only modes.
    ok(Command::new("chmod").arg("-R").arg("u+w").arg(&tree));
    edit(&tree);
    let report = ok(Command::new("xorriso")
        .arg("-indev")
        .arg(iso)
        .args(["-report_el_torito", "as_mkisofs"]));
    let mut cmd = Command::new("xorriso");
    cmd.args(["-as", "mkisofs", "-r"]);
    for line in report.lines() {
        cmd.args(split_quoted(line));
    }
    cmd.arg("-o").arg(out).arg(&tree);
    ok(&mut cmd);
}

/// Splits one line of xorriso's `as_mkisofs` report: words, with '…' quoting.
fn split_quoted(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

#[test]
fn xorriso_report_lines_split() {
    assert_eq!(
        split_quoted("--interval:local_fs:0s-15s:zero_mbrpt:'/a b/k.iso'"),
        ["--interval:local_fs:0s-15s:zero_mbrpt:/a b/k.iso"]
    );
    assert_eq!(split_quoted("-V 'K_0_1'"), ["-V", "K_0_1"]);
    assert_eq!(split_quoted("-c ''"), ["-c", ""]);
}
