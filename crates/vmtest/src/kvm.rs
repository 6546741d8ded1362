//! Choosing between KVM and TCG, and remembering when KVM let a guest down.
//!
//! On some hosts `/dev/kvm` opens and firmware runs under it, yet a Linux guest hangs (nested
//! virtualisation on a busy host; seen on CI, where SeaBIOS reached its boot menu under KVM and
//! the appliance then never printed a line). So the probe boots a real Linux kernel, the one
//! from the ISO under test, and KVM is used only when that kernel runs all the way to its
//! "cannot mount root" panic within [`PROBE_BOUND`]. A guest that still stalls under KVM later
//! is restarted under TCG by [`crate::Machine`], and the verdict is kept for the rest of this
//! host's boot so later test processes do not wait for the same stall again.
//!
//! Every decision and its reason go to `accel.log` in the machine's run folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Accel;

/// A kernel that works under KVM reaches its root-mount panic in one or two seconds; TCG needs
/// several times that, so a bound this short separates the two.
pub const PROBE_BOUND: Duration = Duration::from_secs(8);

/// Where the Debian live ISO keeps its kernel.
const ISO_KERNEL: &str = "/live/vmlinuz";

/// Under KVM the appliance's GRUB writes to the serial port within seconds; a console still
/// empty after this long means the guest hangs (CI saw exactly that).
pub const KVM_SILENT_START: Duration = Duration::from_secs(20);
/// The longest quiet spell a healthy boot has under KVM (`quiet` hides kernel messages from
/// GRUB until the login prompt) is well under this.
pub const KVM_QUIET_SPELL: Duration = Duration::from_secs(45);

/// Whether a guest under KVM whose serial log has `len` bytes, ending in `last_line`, and has
/// not grown for `quiet` is stalled; the reason if so.
pub fn judge_quiet(len: u64, last_line: &str, quiet: Duration) -> Option<String> {
    if len == 0 && quiet > KVM_SILENT_START {
        Some(format!(
            "the serial console stayed empty for {}s",
            quiet.as_secs()
        ))
    } else if len > 0 && quiet > KVM_QUIET_SPELL {
        Some(format!(
            "the serial console stopped at `{}` for {}s",
            last_line.trim(),
            quiet.as_secs()
        ))
    } else {
        None
    }
}

/// The accelerator a machine gets, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
    /// True when the probe chose KVM: a stall may then be blamed on KVM and retried under TCG.
    /// A test that asked for KVM by name keeps it.
    pub may_fall_back: bool,
}

/// What the probe's serial transcript says about KVM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// The kernel ran to the end of its early boot.
    Works,
    /// The kernel printed something but not the end of its boot.
    Stalled { last_line: String },
    /// Nothing at all on the serial console.
    Silent,
}

/// Judges a probe transcript: the kernel, booted without an initrd or root disk, ends its
/// boot by failing to mount root. Seeing that proves the CPU ran the whole early boot.
pub fn judge_probe(serial: &str) -> ProbeVerdict {
    if serial.contains("Unable to mount root fs")
        || serial.contains("Kernel panic - not syncing")
        || serial.contains("VFS: Cannot open root device")
    {
        return ProbeVerdict::Works;
    }
    match serial.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => ProbeVerdict::Stalled {
            last_line: line.trim().chars().take(160).collect(),
        },
        None => ProbeVerdict::Silent,
    }
}

/// The process-wide decision for machines that asked for [`Accel::Auto`]: taken once, changed
/// only by [`mark_kvm_broken`].
static DECIDED: Mutex<Option<AccelChoice>> = Mutex::new(None);

/// The accelerator for a machine that asked for `wanted`; `iso` supplies the probe's kernel.
pub fn choose(wanted: Accel, iso: Option<&Path>, probe_dir: &Path) -> AccelChoice {
    match wanted {
        Accel::Tcg | Accel::Kvm => {
            return AccelChoice {
                accel: wanted,
                reason: "asked for by the test".into(),
                may_fall_back: false,
            }
        }
        Accel::Auto => {}
    }
    match std::env::var("KENTONGAN_VMTEST_ACCEL").as_deref() {
        Ok("tcg") => {
            return AccelChoice {
                accel: Accel::Tcg,
                reason: "KENTONGAN_VMTEST_ACCEL=tcg".into(),
                may_fall_back: false,
            }
        }
        Ok("kvm") => {
            return AccelChoice {
                accel: Accel::Kvm,
                reason: "KENTONGAN_VMTEST_ACCEL=kvm".into(),
                may_fall_back: false,
            }
        }
        _ => {}
    }
    let mut decided = DECIDED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(choice) = decided.as_ref() {
        return choice.clone();
    }
    let choice = match broken_on_this_boot() {
        Some(reason) => tcg(format!(
            "an earlier guest on this host boot stalled under KVM ({reason}); delete {} to probe again",
            verdict_file().display()
        )),
        None => probe_choice(iso, probe_dir),
    };
    *decided = Some(choice.clone());
    choice
}

fn tcg(reason: String) -> AccelChoice {
    AccelChoice {
        accel: Accel::Tcg,
        reason,
        may_fall_back: false,
    }
}

fn probe_choice(iso: Option<&Path>, dir: &Path) -> AccelChoice {
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(format!("/dev/kvm cannot be opened: {e}"));
    }
    if crate::machine::find_program(crate::qemu::QEMU).is_none() {
        return tcg(format!(
            "{} is not installed (install qemu-system-x86)",
            crate::qemu::QEMU
        ));
    }
    let kernel = match iso {
        Some(iso) => match extract_kernel(iso, dir) {
            Ok(k) => k,
            Err(e) => return tcg(format!("no kernel to probe KVM with: {e}")),
        },
        None => match host_kernel() {
            Some(k) => k,
            None => {
                return tcg(
                    "no kernel to probe KVM with: the machine has no ISO and the host has no \
                     readable /boot/vmlinuz-*"
                        .into(),
                )
            }
        },
    };
    match probe_kvm(&kernel, dir) {
        Ok(took) => AccelChoice {
            accel: Accel::Kvm,
            reason: format!(
                "the probe booted {} under KVM to its root-mount panic in {:.1}s",
                kernel.display(),
                took.as_secs_f64()
            ),
            may_fall_back: true,
        },
        Err(why) => tcg(format!("KVM probe failed: {why}")),
    }
}

/// Boots `kernel` under KVM with no initrd and no disk and waits up to [`PROBE_BOUND`] for it
/// to reach its root-mount panic. The transcript stays in `dir/kvm-probe.log`.
pub fn probe_kvm(kernel: &Path, dir: &Path) -> Result<Duration, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log = dir.join("kvm-probe.log");
    let qemu_log = dir.join("kvm-probe.qemu.log");
    let _ = fs::remove_file(&log);
    let started = Instant::now();
    let mut child = crate::machine::launcher()
        .args([
            "-machine",
            "pc,accel=kvm",
            "-cpu",
            "host",
            "-m",
            "256",
            "-nodefaults",
            "-no-user-config",
            "-no-reboot",
            "-display",
            "none",
            "-kernel",
        ])
        .arg(kernel)
        .args([
            "-append",
            "console=ttyS0,115200n8 panic=-1 loglevel=7",
            "-chardev",
            &format!(
                "file,id=s0,path={}",
                log.display().to_string().replace(',', ",,")
            ),
            "-serial",
            "chardev:s0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            fs::File::create(&qemu_log)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", crate::qemu::QEMU))?;
    let read = || String::from_utf8_lossy(&fs::read(&log).unwrap_or_default()).into_owned();
    let verdict = loop {
        let verdict = judge_probe(&read());
        if verdict == ProbeVerdict::Works {
            break verdict;
        }
        if let Ok(Some(status)) = child.try_wait() {
            // With -no-reboot, panic=-1 ends QEMU; look once more at what it wrote.
            let verdict = judge_probe(&read());
            if verdict != ProbeVerdict::Works && !status.success() {
                let said = fs::read_to_string(&qemu_log).unwrap_or_default();
                let said = said
                    .lines()
                    .find(|l| l.contains("error"))
                    .or_else(|| said.lines().last())
                    .unwrap_or("")
                    .trim();
                return Err(format!(
                    "QEMU exited ({status}) before the kernel finished: {said}"
                ));
            }
            break verdict;
        }
        if started.elapsed() > PROBE_BOUND {
            break verdict;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    match verdict {
        ProbeVerdict::Works => Ok(took),
        ProbeVerdict::Silent => Err(format!(
            "the kernel printed nothing in {}s under KVM",
            PROBE_BOUND.as_secs()
        )),
        ProbeVerdict::Stalled { last_line } => Err(format!(
            "the kernel did not finish its early boot in {}s under KVM; last line: {last_line}",
            PROBE_BOUND.as_secs()
        )),
    }
}

/// Copies the ISO's kernel into `dir` with xorriso (a build tool the host has anyway).
fn extract_kernel(iso: &Path, dir: &Path) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let out = dir.join("kvm-probe-vmlinuz");
    let _ = fs::remove_file(&out);
    let run = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .arg("-extract")
        .arg(ISO_KERNEL)
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run xorriso (install the xorriso package): {e}"))?;
    if !run.status.success() || !out.is_file() {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let last = stderr.lines().last().unwrap_or("").trim().to_owned();
        return Err(format!(
            "xorriso could not extract {ISO_KERNEL} from {}: {last}",
            iso.display()
        ));
    }
    Ok(out)
}

fn host_kernel() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
                && fs::File::open(p).is_ok()
        })
        .collect();
    kernels.sort();
    kernels.pop()
}

/// Records that a guest stalled under KVM: every later machine of this process, and of later
/// processes on this host boot, runs under TCG.
pub fn mark_kvm_broken(reason: &str) {
    let mut decided = DECIDED.lock().unwrap_or_else(|p| p.into_inner());
    *decided = Some(tcg(format!("a guest stalled under KVM earlier: {reason}")));
    let file = verdict_file();
    let tmp = file.with_extension("tmp");
    if fs::write(&tmp, format!("{reason}\n")).is_ok() {
        let _ = fs::rename(&tmp, &file);
    }
}

/// One file per host boot: a KVM that stalls once on this boot is not trusted again on it, and
/// a reboot (which may fix the host) starts afresh.
fn verdict_file() -> PathBuf {
    #[cfg(test)]
    if let Some(dir) = VERDICT_DIR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        return dir.join("kvm-stalled");
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown-boot".into());
    std::env::temp_dir().join(format!("kentongan-vmtest-kvm-stalled-{boot_id}"))
}

/// Where a test's verdicts go instead of the host's temp folder.
#[cfg(test)]
static VERDICT_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

#[cfg(test)]
pub(crate) fn keep_verdicts_in(dir: &Path) {
    *VERDICT_DIR.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.to_owned());
}

fn broken_on_this_boot() -> Option<String> {
    fs::read_to_string(verdict_file())
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_that_reaches_its_root_panic_proves_kvm() {
        let log = "[    0.000000] Linux version 6.1.0-28-amd64\n\
                   [    1.201] VFS: Cannot open root device \"\" or unknown-block(0,0): error -6\n\
                   [    1.202] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n";
        assert_eq!(judge_probe(log), ProbeVerdict::Works);
    }

    #[test]
    fn a_kernel_that_stops_early_or_says_nothing_does_not() {
        assert_eq!(judge_probe(""), ProbeVerdict::Silent);
        assert_eq!(judge_probe("\n \n"), ProbeVerdict::Silent);
        let log = "[    0.000000] Linux version 6.1.0-28-amd64\n[    0.01] x86/fpu: enabled\n\n";
        assert_eq!(
            judge_probe(log),
            ProbeVerdict::Stalled {
                last_line: "[    0.01] x86/fpu: enabled".into()
            }
        );
    }

    #[test]
    fn an_empty_console_stalls_sooner_than_a_quiet_one() {
        let s = Duration::from_secs;
        assert_eq!(judge_quiet(0, "", s(5)), None);
        assert!(judge_quiet(0, "", s(21)).is_some_and(|r| r.contains("empty for 21s")));
        assert_eq!(judge_quiet(900, "GRUB loading", s(21)), None);
        let r = judge_quiet(900, " Loading initial ramdisk ... ", s(46)).expect("stalled");
        assert!(r.contains("`Loading initial ramdisk ...` for 46s"), "{r}");
    }

    #[test]
    fn a_test_that_names_its_accelerator_gets_it_and_never_falls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        for accel in [Accel::Tcg, Accel::Kvm] {
            let c = choose(accel, None, dir.path());
            assert_eq!(c.accel, accel);
            assert!(!c.may_fall_back);
        }
    }

    #[test]
    fn a_missing_iso_kernel_is_a_reason_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = extract_kernel(&dir.path().join("nope.iso"), dir.path())
            .expect_err("a missing ISO has no kernel");
        assert!(err.contains("nope.iso") || err.contains("xorriso"), "{err}");
    }
}
