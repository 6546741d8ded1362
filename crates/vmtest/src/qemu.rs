//! The QEMU command line, built from a [`MachineConfig`] and the facts resolved at start
//! (accelerator, host ports, paths, token). Pure, so every firmware × media shape is unit-tested.

use std::path::{Path, PathBuf};

use crate::config::{Accel, DiskBus, DiskFormat, Firmware, MachineConfig, Media, Proto};

pub const QEMU: &str = "qemu-system-x86_64";
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
/// Must be the store that matches [`OVMF_CODE`] (both the 2 MB layout).
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";
/// OVMF with Secure Boot support (4 MB layout; needs SMM and secure pflash).
pub const OVMF_CODE_SECBOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// The 4 MB variable store with Microsoft's KEK and db enrolled and Secure Boot enabled.
pub const OVMF_VARS_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// What [`crate::Machine::start`] decided before building the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// [`Accel::Tcg`] or [`Accel::Kvm`], never `Auto`.
    pub accel: Accel,
    /// `(proto, host, guest)` with every host port chosen.
    pub forwards: Vec<(Proto, u16, u16)>,
    pub serial_log: PathBuf,
    pub qmp_socket: PathBuf,
    pub agent_socket: PathBuf,
    /// The run's writable copy of the UEFI variable store.
    pub ovmf_vars: PathBuf,
    pub token: String,
}

/// QEMU's option syntax splits on commas; a literal comma is written twice.
fn esc(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// QEMU's name for the accelerator (`Auto` is never resolved to anything but TCG or KVM).
pub(crate) fn accel_name(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg | Accel::Auto => "tcg",
    }
}

pub fn args(cfg: &MachineConfig, r: &Resolved) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));

    let machine = match cfg.firmware {
        Firmware::Bios => "pc",
        Firmware::Uefi => "q35",
        // Secure Boot's variables live in flash only SMM code may write.
        Firmware::UefiSecureBoot => "q35,smm=on",
    };
    let accel = accel_name(r.accel);
    push(&["-name", "kentongan-vmtest"]);
    push(&["-machine", &format!("{machine},accel={accel}")]);
    if r.accel == Accel::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&["-m", &cfg.memory_mib.to_string()]);
    // Only the devices below: no default NIC, no floppy, no parallel port.
    push(&["-nodefaults", "-no-user-config", "-no-reboot"]);
    // No window, but a VGA device so a screendump shows what a monitor would.
    push(&["-display", "none", "-vga", "std"]);

    if let Some((code, _)) = cfg.firmware.ovmf() {
        if cfg.firmware == Firmware::UefiSecureBoot {
            push(&["-global", "driver=cfi.pflash01,property=secure,value=on"]);
        }
        push(&[
            "-drive",
            &format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"),
            "-drive",
            &format!("if=pflash,format=raw,unit=1,file={}", esc(&r.ovmf_vars)),
        ]);
    }

    // One xHCI controller carries every USB device (the ISO as a stick, USB disks).
    let usb_iso = cfg.iso.is_some() && cfg.media == Media::Usb;
    if usb_iso || cfg.extra_disks.iter().any(|d| d.bus == DiskBus::Usb) {
        push(&["-device", "qemu-xhci,id=xhci"]);
    }
    // The ISO is opened read-only: a test run never changes the artifact under test.
    if let Some(iso) = &cfg.iso {
        let iso = esc(iso);
        match cfg.media {
            Media::Cdrom => push(&[
                "-drive",
                &format!("if=none,id=boot,media=cdrom,readonly=on,format=raw,file={iso}"),
                "-device",
                "ide-cd,drive=boot,bootindex=0",
            ]),
            Media::Usb => push(&[
                "-drive",
                &format!("if=none,id=boot,readonly=on,format=raw,file={iso}"),
                "-device",
                "usb-storage,bus=xhci.0,drive=boot,removable=on,bootindex=0",
            ]),
        }
    }
    for (i, disk) in cfg.extra_disks.iter().enumerate() {
        let format = match disk.format {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        };
        // After the ISO (bootindex 0), in the order given.
        let boot = if disk.boot {
            format!(",bootindex={}", i + 1)
        } else {
            String::new()
        };
        let device = match disk.bus {
            DiskBus::Virtio => format!("virtio-blk-pci,drive=disk{i}{boot}"),
            DiskBus::Usb => format!("usb-storage,bus=xhci.0,drive=disk{i},removable=on{boot}"),
        };
        push(&[
            "-drive",
            &format!(
                "if=none,id=disk{i},format={format},file={}",
                esc(&disk.path)
            ),
            "-device",
            &device,
        ]);
    }

    // Host ports bind to loopback only: nothing outside this host reaches a test VM.
    let mut netdev = String::from("user,id=net0");
    for (proto, host, guest) in &r.forwards {
        netdev.push_str(&format!(
            ",hostfwd={}:127.0.0.1:{host}-:{guest}",
            proto.as_str()
        ));
    }
    push(&["-netdev", &netdev, "-device", "virtio-net-pci,netdev=net0"]);

    push(&[
        "-chardev",
        &format!("file,id=serial0,path={}", esc(&r.serial_log)),
        "-serial",
        "chardev:serial0",
    ]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            esc(&r.qmp_socket)
        ),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    push(&[
        "-device",
        "virtio-serial-pci,id=vser0",
        "-chardev",
        &format!(
            "socket,id=agent,path={},server=on,wait=off",
            esc(&r.agent_socket)
        ),
        "-device",
        &format!(
            "virtserialport,bus=vser0.0,chardev=agent,name={}",
            kentongan_guest_agent::PORT_NAME
        ),
    ]);
    // systemd (252+) imports SMBIOS type 11 `io.systemd.credential:` strings into the system
    // credential store when it runs in a VM; the guest agent's unit starts only if this one is
    // there.
    push(&[
        "-smbios",
        &format!(
            "type=11,value=io.systemd.credential:{}={}",
            kentongan_guest_agent::CREDENTIAL,
            r.token
        ),
    ]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Disk, Forward};

    fn resolved() -> Resolved {
        Resolved {
            accel: Accel::Tcg,
            forwards: vec![(Proto::Udp, 40000, 5060), (Proto::Tcp, 40001, 5061)],
            serial_log: "/run/t/serial.log".into(),
            qmp_socket: "/run/t/qmp.sock".into(),
            agent_socket: "/run/t/agent.sock".into(),
            ovmf_vars: "/run/t/OVMF_VARS.fd".into(),
            token: "abc123".into(),
        }
    }

    fn config(firmware: Firmware, media: Media) -> MachineConfig {
        let mut cfg = MachineConfig::new("/isos/k.iso", "/run/t");
        cfg.firmware = firmware;
        cfg.media = media;
        cfg.forwards = vec![Forward::to_guest(Proto::Udp, 5060)];
        cfg
    }

    fn joined(cfg: &MachineConfig, r: &Resolved) -> String {
        args(cfg, r).join(" ")
    }

    #[test]
    fn bios_cdrom() {
        let line = joined(&config(Firmware::Bios, Media::Cdrom), &resolved());
        assert!(line.contains("-machine pc,accel=tcg"), "{line}");
        assert!(!line.contains("pflash"), "{line}");
        assert!(line.contains(
            "-drive if=none,id=boot,media=cdrom,readonly=on,format=raw,file=/isos/k.iso -device ide-cd,drive=boot,bootindex=0"
        ), "{line}");
        assert!(!line.contains("usb-storage"), "{line}");
        assert!(
            !line.contains("-cpu"),
            "TCG keeps QEMU's default CPU: {line}"
        );
    }

    #[test]
    fn bios_usb() {
        let line = joined(&config(Firmware::Bios, Media::Usb), &resolved());
        assert!(line.contains("-machine pc,accel=tcg"), "{line}");
        assert!(line.contains("-device qemu-xhci,id=xhci"), "{line}");
        assert!(
            line.contains("usb-storage,bus=xhci.0,drive=boot,removable=on,bootindex=0"),
            "{line}"
        );
        assert!(!line.contains("ide-cd"), "{line}");
    }

    #[test]
    fn uefi_cdrom() {
        let line = joined(&config(Firmware::Uefi, Media::Cdrom), &resolved());
        assert!(line.contains("-machine q35,accel=tcg"), "{line}");
        assert!(line.contains(&format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
        )));
        assert!(line.contains("if=pflash,format=raw,unit=1,file=/run/t/OVMF_VARS.fd"));
        assert!(line.contains("ide-cd,drive=boot,bootindex=0"), "{line}");
    }

    #[test]
    fn uefi_usb() {
        let line = joined(&config(Firmware::Uefi, Media::Usb), &resolved());
        assert!(line.contains("-machine q35,accel=tcg"), "{line}");
        assert!(line.contains("unit=1,file=/run/t/OVMF_VARS.fd"), "{line}");
        assert!(line.contains("usb-storage,bus=xhci.0,drive=boot"), "{line}");
    }

    #[test]
    fn uefi_secure_boot() {
        let line = joined(&config(Firmware::UefiSecureBoot, Media::Cdrom), &resolved());
        assert!(line.contains("-machine q35,smm=on,accel=tcg"), "{line}");
        assert!(
            line.contains("-global driver=cfi.pflash01,property=secure,value=on"),
            "{line}"
        );
        assert!(line.contains(&format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_SECBOOT}"
        )));
        assert!(line.contains("unit=1,file=/run/t/OVMF_VARS.fd"), "{line}");
        let plain = joined(&config(Firmware::Uefi, Media::Cdrom), &resolved());
        assert!(
            !plain.contains("secure") && !plain.contains("smm"),
            "{plain}"
        );
    }

    #[test]
    fn installed_disk_without_iso() {
        let disk = Disk::new("/d/target.img", DiskFormat::Raw);
        let mut cfg = MachineConfig::from_disk(disk, "/run/t");
        cfg.firmware = Firmware::Uefi;
        let line = joined(&cfg, &resolved());
        assert!(!line.contains("id=boot"), "no ISO: {line}");
        assert!(
            !line.contains("xhci"),
            "no USB device, no controller: {line}"
        );
        assert!(
            line.contains("-drive if=none,id=disk0,format=raw,file=/d/target.img -device virtio-blk-pci,drive=disk0,bootindex=1"),
            "{line}"
        );
    }

    #[test]
    fn usb_disk_beside_a_cdrom() {
        let mut cfg = config(Firmware::Bios, Media::Cdrom);
        cfg.extra_disks = vec![
            Disk::new("/d/target.img", DiskFormat::Raw),
            Disk::new("/d/answer.img", DiskFormat::Raw).usb(),
        ];
        let line = joined(&cfg, &resolved());
        assert_eq!(line.matches("qemu-xhci").count(), 1, "{line}");
        assert!(line.contains("ide-cd,drive=boot,bootindex=0"), "{line}");
        assert!(
            line.contains("-device virtio-blk-pci,drive=disk0 "),
            "{line}"
        );
        assert!(
            line.contains("-device usb-storage,bus=xhci.0,drive=disk1,removable=on "),
            "{line}"
        );
    }

    #[test]
    fn usb_iso_and_usb_disk_share_one_controller() {
        let mut cfg = config(Firmware::Uefi, Media::Usb);
        cfg.extra_disks = vec![Disk::new("/d/answer.img", DiskFormat::Raw).usb()];
        let line = joined(&cfg, &resolved());
        assert_eq!(line.matches("qemu-xhci").count(), 1, "{line}");
        assert!(
            line.contains("drive=boot,removable=on,bootindex=0"),
            "{line}"
        );
        assert!(
            line.contains("-device usb-storage,bus=xhci.0,drive=disk0,removable=on "),
            "{line}"
        );
    }

    #[test]
    fn shared_devices() {
        let mut cfg = config(Firmware::Bios, Media::Cdrom);
        cfg.extra_disks = vec![Disk::new("/d/a,b.qcow2", DiskFormat::Qcow2)];
        let mut r = resolved();
        r.accel = Accel::Kvm;
        let a = args(&cfg, &r);
        let line = a.join(" ");
        assert!(line.contains("-machine pc,accel=kvm -cpu host"), "{line}");
        assert!(
            line.contains(
                "-netdev user,id=net0,hostfwd=udp:127.0.0.1:40000-:5060,hostfwd=tcp:127.0.0.1:40001-:5061"
            ),
            "{line}"
        );
        assert!(
            line.contains("if=none,id=disk0,format=qcow2,file=/d/a,,b.qcow2"),
            "commas doubled: {line}"
        );
        assert!(line.contains("file,id=serial0,path=/run/t/serial.log"));
        assert!(line.contains("virtserialport,bus=vser0.0,chardev=agent,name=kentongan.agent"));
        let smbios = a
            .iter()
            .position(|s| s == "-smbios")
            .and_then(|i| a.get(i + 1))
            .expect("an -smbios argument");
        assert_eq!(
            smbios,
            "type=11,value=io.systemd.credential:kentongan.vmtest-token=abc123"
        );
        assert!(line.contains("-nodefaults"));
    }
}
