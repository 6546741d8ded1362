//! What a test asks for: the machine's shape, before anything runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How the ISO is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Media {
    /// An optical drive (IDE on `pc`, AHCI on `q35`).
    Cdrom,
    /// A USB stick on an xHCI controller: the path `dd` users take.
    Usb,
}

/// Which firmware boots the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Firmware {
    /// SeaBIOS on the `pc` (i440FX) machine, QEMU's default.
    Bios,
    /// OVMF on `q35`, with a writable copy of the variable store per run.
    Uefi,
    /// OVMF built with Secure Boot on `q35` (SMM on, the variable store in secure flash), its
    /// store a fresh copy of the one with Microsoft's keys enrolled: what a PC server ships
    /// with. Only loaders signed through Microsoft's UEFI CA (shim) start.
    UefiSecureBoot,
}

impl Firmware {
    /// OVMF's code and variable-store template, for the UEFI kinds.
    pub fn ovmf(self) -> Option<(&'static str, &'static str)> {
        match self {
            Firmware::Bios => None,
            Firmware::Uefi => Some((crate::qemu::OVMF_CODE, crate::qemu::OVMF_VARS)),
            Firmware::UefiSecureBoot => {
                Some((crate::qemu::OVMF_CODE_SECBOOT, crate::qemu::OVMF_VARS_MS))
            }
        }
    }
}

/// Which accelerator runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    /// KVM when a short probe boot proves it works, else TCG.
    Auto,
    /// Pure emulation: slow, but works everywhere.
    Tcg,
    Kvm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// A host port on 127.0.0.1 forwarded to a guest port by QEMU's user network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    /// 0 picks a free port at start; [`crate::Machine::host_port`] tells which.
    pub host_port: u16,
    pub guest_port: u16,
}

impl Forward {
    /// Forwards a free host port to `guest_port`.
    pub fn to_guest(proto: Proto, guest_port: u16) -> Forward {
        Forward {
            proto,
            host_port: 0,
            guest_port,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

/// How a disk is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBus {
    /// A virtio-blk disk: `/dev/vdX` in the guest, a fixed disk.
    Virtio,
    /// A removable USB stick on the xHCI controller: `/dev/sdX`, the way an answer stick or a
    /// `dd`-written ISO comes.
    Usb,
}

/// An extra disk, e.g. the installer's target or a volume holding an answer file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    pub format: DiskFormat,
    pub bus: DiskBus,
    /// The firmware tries this disk first (after the ISO, when there is one).
    pub boot: bool,
}

impl Disk {
    /// An existing image attached as a virtio disk that the firmware does not boot first.
    pub fn new(path: impl Into<PathBuf>, format: DiskFormat) -> Disk {
        Disk {
            path: path.into(),
            format,
            bus: DiskBus::Virtio,
            boot: false,
        }
    }

    /// Creates a sparse raw image of `size` bytes (a fresh, empty disk).
    pub fn create_blank(path: &Path, size: u64) -> std::io::Result<Disk> {
        std::fs::File::create(path)?.set_len(size)?;
        Ok(Disk::new(path, DiskFormat::Raw))
    }

    /// The same disk as a removable USB stick.
    pub fn usb(mut self) -> Disk {
        self.bus = DiskBus::Usb;
        self
    }

    /// The same disk, booted first.
    pub fn bootable(mut self) -> Disk {
        self.boot = true;
        self
    }
}

/// Everything [`crate::Machine::start`] needs.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// The ISO under test; `None` boots from [`MachineConfig::extra_disks`] alone (an
    /// installed system).
    pub iso: Option<PathBuf>,
    /// How the ISO is attached (ignored without one).
    pub media: Media,
    pub firmware: Firmware,
    pub extra_disks: Vec<Disk>,
    pub forwards: Vec<Forward>,
    pub memory_mib: u32,
    pub accel: Accel,
    /// Holds `serial.log`, `qemu.log`, the sockets and the UEFI variable store. Kept after the
    /// run so a failure can be read.
    pub run_dir: PathBuf,
    /// Serial output that means the boot is lost (a kernel panic…): waits fail at once instead
    /// of running into their timeout.
    pub fatal_serial: Vec<String>,
}

/// Lines that end every hope of the boot going on. Kernel messages reach ttyS0 even with
/// `quiet` when they are errors; the live-boot shell prompt only when ttyS0 is the console.
pub const DEFAULT_FATAL_SERIAL: &[&str] = &[
    r"Kernel panic - not syncing",
    r"Unable to find a medium containing a live file system",
    r"\(initramfs\) ",
    r"No bootable device",
    r"Boot failed: ",
    r"No bootable option or device was found",
];

/// What OVMF prints when Secure Boot refuses a boot loader (`BdsDxe: failed to load Boot0001
/// "UEFI QEMU DVD-ROM …": Access Denied`).
pub const SECURE_BOOT_DENIED: &str = r"failed to load Boot[0-9A-F]+ .*Access Denied";

impl MachineConfig {
    /// A BIOS machine with the ISO as CD-ROM, 1 GiB of memory and the accelerator probed.
    pub fn new(iso: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> MachineConfig {
        MachineConfig {
            iso: Some(iso.into()),
            media: Media::Cdrom,
            firmware: Firmware::Bios,
            extra_disks: Vec::new(),
            forwards: Vec::new(),
            memory_mib: 1024,
            accel: Accel::Auto,
            run_dir: run_dir.into(),
            fatal_serial: DEFAULT_FATAL_SERIAL
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    /// A BIOS machine without an ISO that boots `disk` (an installed system), 1 GiB of memory
    /// and the accelerator probed.
    pub fn from_disk(disk: Disk, run_dir: impl Into<PathBuf>) -> MachineConfig {
        let mut cfg = MachineConfig::new(PathBuf::new(), run_dir);
        cfg.iso = None;
        cfg.extra_disks = vec![disk.bootable()];
        cfg
    }
}

/// How much longer than under KVM things take. Callers write timeouts as they would for KVM;
/// the harness stretches them under TCG, and `KENTONGAN_VMTEST_TIME_FACTOR` stretches them
/// further on a loaded CI host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale {
    pub factor: f64,
}

/// TCG boots the appliance about four times slower than KVM on the same host.
pub const TCG_FACTOR: f64 = 4.0;

impl TimeScale {
    pub fn for_accel(accel: Accel, env_factor: Option<&str>) -> TimeScale {
        let base = match accel {
            Accel::Kvm => 1.0,
            Accel::Tcg | Accel::Auto => TCG_FACTOR,
        };
        let extra = env_factor
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(1.0);
        TimeScale {
            factor: base * extra,
        }
    }

    /// From the accelerator and `KENTONGAN_VMTEST_TIME_FACTOR`.
    pub fn from_env(accel: Accel) -> TimeScale {
        let env = std::env::var("KENTONGAN_VMTEST_TIME_FACTOR").ok();
        TimeScale::for_accel(accel, env.as_deref())
    }

    pub fn scale(&self, kvm_time: Duration) -> Duration {
        kvm_time.mul_f64(self.factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_is_slower_than_kvm() {
        let d = Duration::from_secs(30);
        assert_eq!(TimeScale::for_accel(Accel::Kvm, None).scale(d), d);
        assert_eq!(
            TimeScale::for_accel(Accel::Tcg, None).scale(d),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn env_factor_multiplies_and_bad_values_are_ignored() {
        let d = Duration::from_secs(10);
        assert_eq!(
            TimeScale::for_accel(Accel::Tcg, Some("1.5")).scale(d),
            Duration::from_secs(60)
        );
        for bad in ["0", "-2", "NaN", "inf", "fast", ""] {
            assert_eq!(
                TimeScale::for_accel(Accel::Kvm, Some(bad)).scale(d),
                d,
                "{bad}"
            );
        }
    }
}
