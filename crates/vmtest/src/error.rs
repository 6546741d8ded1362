use std::path::PathBuf;
use std::time::Duration;

/// A harness step that failed. Every variant that involves the guest names the serial log, so
/// the first line of a CI failure says where to look.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("the ISO {} does not exist", .0.display())]
    MissingIso(PathBuf),
    #[error("the disk image {} does not exist", .0.display())]
    MissingDisk(PathBuf),
    #[error("the machine has no ISO and no disk marked to boot")]
    NothingToBoot,
    #[error("firmware file {} is missing", .0.display())]
    MissingFirmware(PathBuf),
    #[error("cannot prepare the run directory {}: {source}", dir.display())]
    RunDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("QEMU exited ({status}) while {during}; serial log: {}", serial.display())]
    QemuExited {
        status: String,
        during: String,
        serial: PathBuf,
    },
    #[error("timed out after {}s waiting for {what}; serial log: {}", after.as_secs(), serial.display())]
    Timeout {
        what: String,
        after: Duration,
        serial: PathBuf,
    },
    #[error("the boot failed while waiting for {during}: the serial console shows `{line}`; serial log: {}", serial.display())]
    GuestFailed {
        during: String,
        line: String,
        serial: PathBuf,
    },
    #[error("Secure Boot refused the ISO's boot loader: the firmware says `{line}`, so the EFI loader is not signed by a key it trusts; serial log: {}", serial.display())]
    SecureBootRefused { line: String, serial: PathBuf },
    #[error("`{command}` exited with status {status} in the guest{}; serial log: {}", stderr_suffix(stderr), serial.display())]
    CommandFailed {
        command: String,
        status: i32,
        stdout: String,
        stderr: String,
        serial: PathBuf,
    },
    #[error("unit {unit} is {state} in the guest; serial log: {}", serial.display())]
    UnitFailed {
        unit: String,
        state: String,
        serial: PathBuf,
    },
    /// The guest answered, but not what the check expects.
    #[error("{message}; serial log: {}{detail}", serial.display())]
    Unexpected {
        message: String,
        /// Evidence gathered in the guest (journal lines), each line starting with `\n`.
        detail: String,
        serial: PathBuf,
    },
    #[error("guest agent: {message}; serial log: {}", serial.display())]
    Agent { message: String, serial: PathBuf },
    #[error("QMP `{command}` failed: {message}")]
    Qmp { command: String, message: String },
    #[error("invalid pattern `{pattern}`: {source}")]
    Pattern {
        pattern: String,
        source: Box<regex::Error>,
    },
    /// A guest under a KVM the probe chose stopped making progress; the machine restarts it
    /// under TCG, so this surfaces only if that restart fails too.
    #[error("the guest stalled under KVM ({reason}); serial log: {}", serial.display())]
    KvmStalled { reason: String, serial: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        let last = s.lines().last().unwrap_or(s);
        format!(": {last}")
    }
}

impl VmError {
    /// The guest's serial transcript, when the failure involved a running guest.
    pub fn serial_log(&self) -> Option<&std::path::Path> {
        match self {
            VmError::QemuExited { serial, .. }
            | VmError::Timeout { serial, .. }
            | VmError::GuestFailed { serial, .. }
            | VmError::SecureBootRefused { serial, .. }
            | VmError::CommandFailed { serial, .. }
            | VmError::UnitFailed { serial, .. }
            | VmError::Unexpected { serial, .. }
            | VmError::Agent { serial, .. }
            | VmError::KvmStalled { serial, .. } => Some(serial),
            _ => None,
        }
    }

    /// The operator's next step.
    pub fn hint(&self) -> &'static str {
        match self {
            VmError::MissingIso(_) => "build one with `kentongan build image-recipes/appliance.toml --out out/`",
            VmError::MissingDisk(_) => "create it first, e.g. with `Disk::create_blank` or `qemu-img create`",
            VmError::NothingToBoot => "set `iso`, or mark a disk with `Disk::bootable`",
            VmError::MissingFirmware(_) => "install the `ovmf` package (UEFI) or `seabios` (BIOS)",
            VmError::Spawn { .. } => "install `qemu-system-x86` (and `util-linux` for setpriv)",
            VmError::RunDir { .. } | VmError::Io { .. } => "check that the output folder is writable",
            VmError::QemuExited { .. } => "read qemu.log next to the serial log for QEMU's own complaint",
            VmError::Timeout { .. } => "read the serial log and the screendump; on a loaded host raise KENTONGAN_VMTEST_TIME_FACTOR",
            VmError::GuestFailed { .. } => "the image does not boot: check the kernel command line and the /live layers",
            VmError::SecureBootRefused { .. } => "build the ISO from a recipe with shim-signed and grub-efi-amd64-signed in its packages (Debian's signed shim → GRUB → kernel chain), or boot with Secure Boot off (--firmware uefi)",
            VmError::CommandFailed { .. } | VmError::UnitFailed { .. } | VmError::Unexpected { .. } => "boot the ISO by hand and look at `journalctl -b`",
            VmError::Agent { .. } => "the image must include overlays/vmtest-agent and the kentongan-guest-agent binary",
            VmError::Qmp { .. } => "read qemu.log next to the serial log",
            VmError::Pattern { .. } => "fix the regular expression",
            VmError::KvmStalled { .. } => "run with KENTONGAN_VMTEST_ACCEL=tcg; accel.log in the run folder says why KVM was chosen",
        }
    }
}
