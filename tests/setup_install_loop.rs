//! The installer's disk steps against a real block device: a sparse image file attached with
//! `losetup -P`. Partitioning, filesystems, mounts, the copy, fstab by UUID, the incomplete
//! mark and a rerun are real; commands run inside the target (`chroot …`: dpkg, update-
//! initramfs, grub-install) are recorded instead, because the tiny source tree here is not a
//! Debian system — the QEMU test (`tests/install.rs`) covers those. Needs root, sfdisk (fdisk),
//! dosfstools and e2fsprogs.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kentongan_setup::facts::{Disk, Facts, Nic, Partition};
use kentongan_setup::install::{
    self, Cmd, CmdError, Reporter, Runner, Source, SystemRunner, Target,
};
use kentongan_setup::{validate, Answer};

const ADMIN: &str = "Tg7!pz0Qmw-kantor";
const EXT: &str = "Meja.Depan-77x";

/// Real commands, except those run inside the target, which are recorded.
struct NoChroot {
    chrooted: Vec<String>,
    fail_on: Option<&'static str>,
}

impl Runner for NoChroot {
    fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError> {
        if Some(cmd.program.as_str()) == self.fail_on {
            return Err(CmdError {
                command: cmd.display(),
                detail: "simulated failure".into(),
            });
        }
        // Some build hosts' kernels have no vfat; the ESP is then formatted but not mounted.
        let esp = cmd.args.last().is_some_and(|a| a.ends_with("/boot/efi"));
        if esp && (cmd.program == "mount" || cmd.program == "umount") && !kernel_has_vfat() {
            return Ok(String::new());
        }
        if cmd.program == "chroot" {
            self.chrooted.push(cmd.args[1..].join(" "));
            return Ok(String::new());
        }
        SystemRunner.run(cmd)
    }
}

fn kernel_has_vfat() -> bool {
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("\tvfat"))
        || Command::new("modprobe")
            .arg("vfat")
            .status()
            .is_ok_and(|s| s.success())
}

struct Quiet;
impl Reporter for Quiet {}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools_missing() -> Option<String> {
    if !nix_is_root() {
        return Some("not root".into());
    }
    [
        "sfdisk",
        "losetup",
        "mkfs.vfat",
        "mkfs.ext4",
        "wipefs",
        "blkid",
    ]
    .iter()
    .find(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
    })
    .map(|t| format!("`{t}` is not installed (apt-get install fdisk dosfstools e2fsprogs)"))
}

fn nix_is_root() -> bool {
    sh("id", &["-u"]).trim() == "0"
}

/// A loop device that detaches itself.
struct Loop(String);
impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn source_tree(dir: &Path) -> PathBuf {
    let src = dir.join("source");
    for d in [
        "usr/lib/grub/i386-pc",
        "usr/lib/grub/x86_64-efi",
        "usr/lib/modules/6.1.0-99-amd64",
        "etc/kentongan",
        "var/lib",
        "dev",
        "proc",
        "sys",
        "run",
    ] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    std::fs::write(
        src.join("etc/kentongan/pbx.toml"),
        "[sip]\ndomain = \"pbx.local\"\n",
    )
    .unwrap();
    src
}

fn answer(device: &str) -> String {
    format!(
        "hostname = \"pbx\"\ndomain = \"kantor.local\"\nadmin_password = \"{ADMIN}\"\n\
         [network]\nmode = \"static\"\naddress = \"10.0.2.15/24\"\ngateway = \"10.0.2.2\"\ndns = [\"10.0.2.3\"]\n\
         [disk]\ntarget = \"{device}\"\n[firewall]\ntrusted = [\"10.0.2.0/24\"]\n\
         [[extension]]\nnumber = \"201\"\nname = \"Front desk\"\npassword = \"{EXT}\"\n"
    )
}

fn facts(device: &str) -> Facts {
    // Without udev (as on a build host) lsblk knows no partition names; sfdisk reads them
    // from the table itself.
    let size = kentongan_setup::facts::MIN_DISK_BYTES;
    let table: serde_json::Value =
        // A blank disk has no table: sfdisk fails and there are no partitions.
        Command::new("sfdisk")
            .args(["--json", device])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or_default();
    let partitions = table["partitiontable"]["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Partition {
            path: p["node"].as_str().unwrap_or("").into(),
            partlabel: p["name"].as_str().map(str::to_owned),
            ..Default::default()
        })
        .collect();
    let disk = Disk {
        path: device.into(),
        size_bytes: size,
        partitions,
        ..Default::default()
    };
    Facts {
        disks: vec![disk],
        nics: vec![Nic {
            name: "ens3".into(),
            mac: String::new(),
        }],
        timezones: ["Asia/Jakarta".to_owned()].into(),
    }
}

fn part_names(device: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&sh("sfdisk", &["--json", device])).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn install_to_a_loop_device_fail_midway_then_rerun() {
    // scripts/test installs the tools; a test that skips itself would prove nothing.
    if let Some(why) = tools_missing() {
        panic!("setup_install_loop cannot run: {why} (scripts/test installs what it needs)");
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        // 1 GiB is plenty for the tiny source tree; the facts claim the validator's minimum.
        .set_len(1 << 30)
        .unwrap();
    let dev = Loop(
        sh("losetup", &["-P", "-f", "--show", img.to_str().unwrap()])
            .trim()
            .to_owned(),
    );
    let src = source_tree(dir.path());
    let mount = dir.path().join("mnt");

    // First attempt fails after partitioning: the root partition stays marked incomplete.
    let plan = validate(&Answer::parse(&answer(&dev.0)).unwrap(), &facts(&dev.0)).unwrap();
    let mut r = NoChroot {
        chrooted: vec![],
        fail_on: Some("mkfs.ext4"),
    };
    let target = Target::Disk {
        device: dev.0.clone(),
        mount: mount.clone(),
    };
    let err = install::run(
        &plan,
        target.clone(),
        Source::Directory(src.clone()),
        &mut r,
        &mut Quiet,
    )
    .unwrap_err();
    assert_eq!(err.step, "format");
    assert_eq!(
        part_names(&dev.0),
        ["bios-boot", "KENTONGAN-ESP", "KENTONGAN-INCOMPLETE"]
    );

    // The validator sees a half-finished install as blank: the rerun needs no `wipe = true`.
    let facts_now = facts(&dev.0);
    assert!(!facts_now.disks[0].partitions.is_empty());
    let plan = validate(&Answer::parse(&answer(&dev.0)).unwrap(), &facts_now).unwrap();
    let mut r = NoChroot {
        chrooted: vec![],
        fail_on: None,
    };
    install::run(&plan, target, Source::Directory(src), &mut r, &mut Quiet).unwrap();
    assert_eq!(
        part_names(&dev.0),
        ["bios-boot", "KENTONGAN-ESP", "KENTONGAN-ROOT"]
    );
    let chrooted = r.chrooted.join("\n");
    assert!(
        chrooted.contains(&format!(
            "grub-install --target=i386-pc --recheck {}",
            dev.0
        )),
        "{chrooted}"
    );
    assert!(chrooted.contains("--target=x86_64-efi --efi-directory=/boot/efi --removable"));
    assert!(
        chrooted.contains("update-initramfs -c -k 6.1.0-99-amd64"),
        "{chrooted}"
    );

    // Everything is unmounted; mount the result read-only and look inside.
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(mount.to_str().unwrap()), "left mounted");
    let look = dir.path().join("look");
    std::fs::create_dir_all(&look).unwrap();
    sh(
        "mount",
        &["-o", "ro", &format!("{}p3", dev.0), look.to_str().unwrap()],
    );
    let check = || -> Result<(), String> {
        let fstab = std::fs::read_to_string(look.join("etc/fstab")).map_err(|e| e.to_string())?;
        let root_uuid = sh(
            "blkid",
            &["-s", "UUID", "-o", "value", &format!("{}p3", dev.0)],
        );
        let esp_uuid = sh(
            "blkid",
            &["-s", "UUID", "-o", "value", &format!("{}p2", dev.0)],
        );
        for u in [root_uuid.trim(), esp_uuid.trim()] {
            if !fstab.contains(&format!("UUID={u}")) {
                return Err(format!("fstab lacks UUID={u}:\n{fstab}"));
            }
        }
        for f in ["var/lib/kentongan/setup-done", "var/lib/kentongan/pbx.db"] {
            if !look.join(f).exists() {
                return Err(format!("{f} missing"));
            }
        }
        let pbx = std::fs::read_to_string(look.join("etc/kentongan/pbx.toml"))
            .map_err(|e| e.to_string())?;
        if !pbx.contains("[firewall]\ntrusted = [") {
            return Err(format!("pbx.toml has no [firewall] trusted list:\n{pbx}"));
        }
        let shadow = std::fs::read_to_string(look.join("etc/shadow")).map_err(|e| e.to_string())?;
        if !shadow.starts_with("root:$6$") {
            return Err(format!(
                "root hash: {}",
                shadow.lines().next().unwrap_or("")
            ));
        }
        Ok(())
    };
    let result = check();
    sh("umount", &[look.to_str().unwrap()]);
    result.unwrap();

    // No password anywhere on the disk, in any block, in plaintext.
    sh("sync", &[]);
    for secret in [ADMIN, EXT] {
        let found = Command::new("grep")
            .args(["-c", "-a", "-F", secret, img.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&found.stdout).trim(),
            "0",
            "{secret} found on the disk"
        );
    }
}
