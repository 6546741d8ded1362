//! The installer: a fixed list of named [`Step`]s run over a [`Target`].
//!
//! A [`Target::Disk`] is partitioned (GPT: BIOS boot, ESP, root), formatted, mounted, filled
//! from the live layers and made bootable. A [`Target::Directory`] stands in for the mounted
//! root in tests: the disk-only steps (partitioning, mounts, chroot commands, GRUB) are
//! skipped and every file the installer writes lands in the directory. Every external command
//! goes through a [`Runner`], so the disk steps are unit-tested with a recording runner too.
//!
//! Failure handling: [`preflight`] runs before anything is written; after that, the root
//! partition is named `KENTONGAN-INCOMPLETE` until the last step renames it `KENTONGAN-ROOT`
//! (a directory target carries [`INCOMPLETE_MARKER`] instead), and the validator treats a disk
//! holding only an incomplete install as blank, so a rerun wipes and retries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod configure;
pub mod initrd;
#[cfg(test)]
mod tests;

use configure::{admin_password, configure, extensions};
pub use configure::{
    hash_password, networkd_file, pbx_config, set_toml_key, shadow_with_root_hash,
};
use initrd::remove_live_boot;
pub use initrd::INSTALLED_INITRAMFS_CONF;

use crate::facts::{INCOMPLETE_PARTLABEL, ROOT_PARTLABEL};
use crate::validate::{InstallPlan, Language};

/// File at the root of a directory target while an install into it is unfinished.
pub const INCOMPLETE_MARKER: &str = ".kentongan-install-incomplete";
/// Written last: the first-boot wizard does not run again.
pub const SETUP_DONE: &str = "var/lib/kentongan/setup-done";
/// Where a disk target's root filesystem is mounted while installing.
pub const DEFAULT_MOUNT: &str = "/mnt/kentongan-target";
/// Where the live medium's squashfs layers are (live-boot's layout; our builder names them
/// `00-base.squashfs`, `50-overlay.squashfs`, applied in name order).
pub const LIVE_LAYERS: &str = "/run/live/medium/live";

/// Units and links that only make sense on the live system; removed from the installed one.
pub(super) const LIVE_ONLY: &[&str] = &[
    "etc/systemd/system/kentongan-setup-auto.service",
    "etc/systemd/system/kentongan-setup-tui.service",
    "etc/systemd/system/multi-user.target.wants/kentongan-setup-auto.service",
    "etc/systemd/system/multi-user.target.wants/kentongan-setup-tui.service",
    "etc/udev/rules.d/90-kentongan-setup.rules",
];

/// One external command. `stdin`, when set, is written to the process and closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
}

impl Cmd {
    pub fn new(program: &str, args: &[&str]) -> Cmd {
        Cmd {
            program: program.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            stdin: None,
        }
    }

    fn stdin(mut self, text: String) -> Cmd {
        self.stdin = Some(text);
        self
    }

    /// The same command run inside `root` with chroot(8).
    fn in_root(root: &Path, program: &str, args: &[&str]) -> Cmd {
        let mut all = vec![root.to_string_lossy().into_owned(), program.to_owned()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        Cmd {
            program: "chroot".into(),
            args: all,
            stdin: None,
        }
    }

    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// A command that could not run or exited non-zero.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{command}` failed: {detail}")]
pub struct CmdError {
    pub command: String,
    /// The exit status and the last lines the command printed.
    pub detail: String,
}

/// Runs external commands. [`SystemRunner`] really runs them; tests record them.
pub trait Runner {
    /// Runs `cmd` and returns its standard output.
    fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError>;

    /// A line for the install log about a choice a step made (no command ran for it).
    fn note(&mut self, _line: &str) {}

    /// Waits up to 5 s for a device node (the kernel creates partition nodes asynchronously).
    fn wait_for(&self, path: &Path) -> bool {
        for _ in 0..50 {
            if path.exists() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        path.exists()
    }

    /// Whether `program` can be run (checked before anything is written).
    fn has_program(&self, program: &str) -> bool {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(program).exists())
    }
}

/// Runs commands with `std::process`, with a fixed environment so that chrooted Debian tools
/// neither prompt nor pick up the caller's locale.
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError> {
        let err = |detail: String| CmdError {
            command: cmd.display(),
            detail,
        };
        let mut child = Command::new(&cmd.program)
            .args(&cmd.args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("could not start it: {e}")))?;
        if let (Some(text), Some(mut pipe)) = (&cmd.stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())
                .map_err(|e| err(format!("could not write its input: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| err(format!("could not wait for it: {e}")))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(err(format!("{}; {}", out.status, tail.join(" / "))))
    }
}

/// Where the system goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A whole disk, partitioned and mounted at `mount` while installing.
    Disk { device: String, mount: PathBuf },
    /// A directory standing in for the installed root (tests, `--target-root`).
    Directory { root: PathBuf },
}

impl Target {
    pub fn root(&self) -> &Path {
        match self {
            Target::Disk { mount, .. } => mount,
            Target::Directory { root } => root,
        }
    }

    fn device(&self) -> Option<&str> {
        match self {
            Target::Disk { device, .. } => Some(device),
            Target::Directory { .. } => None,
        }
    }
}

/// Where the system's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The squashfs layers of the live medium (a directory holding `*.squashfs`), stacked
    /// read-only with overlayfs exactly as live-boot does, without the live session's changes.
    LiveLayers(PathBuf),
    /// A plain directory tree copied as is (tests).
    Directory(PathBuf),
    /// Nothing is copied: only the configuration is written (tests of the config steps).
    Nothing,
}

/// The partition device for number `n` of `device`: `/dev/sda` → `/dev/sda3`,
/// `/dev/nvme0n1` → `/dev/nvme0n1p3`, `/dev/loop0` → `/dev/loop0p3`.
pub fn partition(device: &str, n: u8) -> String {
    if device.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{device}p{n}")
    } else {
        format!("{device}{n}")
    }
}

/// Progress of an install, for the binary (status lines) and the TUI (a progress page).
pub trait Reporter {
    fn step_started(&mut self, _step: &Step) {}
    fn step_finished(&mut self, _step: &Step, _skipped: bool) {}
}

/// A step failed; `step` names it, `hint` says what to do.
#[derive(Debug, thiserror::Error)]
#[error("step `{step}` failed: {cause}")]
pub struct StepError {
    pub step: &'static str,
    pub cause: String,
    pub hint: String,
    /// False when the step ran before anything was written (the disk is untouched).
    pub disk_touched: bool,
}

/// What a step reports on failure before the runner names the step.
pub struct Fail {
    cause: String,
    hint: String,
}

fn fail(cause: impl std::fmt::Display, hint: &str) -> Fail {
    Fail {
        cause: cause.to_string(),
        hint: hint.to_owned(),
    }
}

impl From<CmdError> for Fail {
    fn from(e: CmdError) -> Fail {
        fail(e, "the command's messages are above; fix the cause and run the installer again (it starts over)")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Fail + '_ {
    move |e| {
        fail(
            format!("could not write {}: {e}", path.display()),
            "check that the target is mounted read-write and has space",
        )
    }
}

/// The running install: plan, target, runner and what has been mounted so far.
pub struct Install<'a> {
    pub plan: &'a InstallPlan,
    pub target: Target,
    pub source: Source,
    pub runner: &'a mut dyn Runner,
    /// Mounted paths, innermost last; unmounted in reverse when the install ends either way.
    mounts: Vec<PathBuf>,
    /// The merged view of the source layers, once mounted.
    source_root: Option<PathBuf>,
}

/// One named step of the install.
pub struct Step {
    /// Stable id, used in logs, errors and tests.
    pub name: &'static str,
    /// What the step does, for the operator: the wizard's progress list shows one of these.
    pub label_en: &'static str,
    pub label_id: &'static str,
    /// What the step does, for status lines.
    pub verb: &'static str,
    /// Only for [`Target::Disk`]; skipped for a directory.
    pub disk_only: bool,
    run: fn(&mut Install) -> Result<(), Fail>,
}

impl Step {
    pub fn label(&self, lang: Language) -> &'static str {
        match lang {
            Language::Id => self.label_id,
            Language::En => self.label_en,
        }
    }
}

/// Every step, in order. `preflight` writes nothing; `partition` is the first write.
pub const STEPS: &[Step] = &[
    Step {
        name: "preflight",
        label_en: "Checking the machine",
        label_id: "Memeriksa mesin",
        verb: "Checking",
        disk_only: false,
        run: preflight,
    },
    Step {
        name: "partition",
        label_en: "Partitioning the disk",
        label_id: "Mempartisi disk",
        verb: "Partitioning",
        disk_only: true,
        run: partition_disk,
    },
    Step {
        name: "mark-incomplete",
        label_en: "Marking the install unfinished",
        label_id: "Menandai pemasangan belum selesai",
        verb: "Marking",
        disk_only: false,
        run: mark_incomplete,
    },
    Step {
        name: "format",
        label_en: "Formatting the partitions",
        label_id: "Memformat partisi",
        verb: "Formatting",
        disk_only: true,
        run: format,
    },
    Step {
        name: "mount",
        label_en: "Mounting the new partitions",
        label_id: "Mengaitkan (mount) partisi baru",
        verb: "Mounting",
        disk_only: true,
        run: mount_target,
    },
    Step {
        name: "copy-system",
        label_en: "Copying the system",
        label_id: "Menyalin sistem",
        verb: "Copying",
        disk_only: false,
        run: copy_system,
    },
    Step {
        name: "chroot-mounts",
        label_en: "Preparing the new system",
        label_id: "Menyiapkan sistem baru",
        verb: "Mounting",
        disk_only: true,
        run: chroot_mounts,
    },
    Step {
        name: "remove-live-boot",
        label_en: "Removing the live-only parts",
        label_id: "Menghapus bagian khusus sistem live",
        verb: "Removing",
        disk_only: true,
        run: remove_live_boot,
    },
    Step {
        name: "fstab",
        label_en: "Writing the filesystem table",
        label_id: "Menulis tabel sistem berkas (fstab)",
        verb: "Writing",
        disk_only: true,
        run: fstab,
    },
    Step {
        name: "configure",
        label_en: "Configuring network, time and PBX",
        label_id: "Mengatur jaringan, zona waktu, dan PBX",
        verb: "Configuring",
        disk_only: false,
        run: configure,
    },
    Step {
        name: "admin-password",
        label_en: "Setting the administrator password",
        label_id: "Menyetel kata sandi administrator",
        verb: "Setting",
        disk_only: false,
        run: admin_password,
    },
    Step {
        name: "extensions",
        label_en: "Adding the extensions",
        label_id: "Menambahkan ekstensi",
        verb: "Adding",
        disk_only: false,
        run: extensions,
    },
    Step {
        name: "bootloader",
        label_en: "Installing the boot loader",
        label_id: "Memasang boot loader",
        verb: "Installing",
        disk_only: true,
        run: bootloader,
    },
    Step {
        name: "mark-done",
        label_en: "Finishing",
        label_id: "Menyelesaikan",
        verb: "Finishing",
        disk_only: false,
        run: mark_done,
    },
];

/// Runs every step. On failure the mounts are undone and the target keeps its "incomplete"
/// mark; the error names the step.
pub fn run(
    plan: &InstallPlan,
    target: Target,
    source: Source,
    runner: &mut dyn Runner,
    reporter: &mut dyn Reporter,
) -> Result<(), StepError> {
    let mut install = Install {
        plan,
        target,
        source,
        runner,
        mounts: Vec::new(),
        source_root: None,
    };
    let mut result = Ok(());
    for (i, step) in STEPS.iter().enumerate() {
        let skip = step.disk_only && matches!(install.target, Target::Directory { .. });
        reporter.step_started(step);
        if !skip {
            if let Err(f) = (step.run)(&mut install) {
                result = Err(StepError {
                    step: step.name,
                    cause: f.cause,
                    hint: f.hint,
                    disk_touched: i > 0,
                });
                break;
            }
        }
        reporter.step_finished(step, skip);
    }
    let unmounted = install.unmount_all();
    result?;
    unmounted.map_err(|f| StepError {
        step: "unmount",
        cause: f.cause,
        hint: f.hint,
        disk_touched: true,
    })
}

impl Install<'_> {
    fn root(&self) -> &Path {
        self.target.root()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn mount(&mut self, args: &[&str], at: &Path) -> Result<(), Fail> {
        std::fs::create_dir_all(at).map_err(io(at))?;
        let mut all: Vec<&str> = args.to_vec();
        let at_s = at.to_string_lossy().into_owned();
        all.push(&at_s);
        self.runner.run(&Cmd::new("mount", &all))?;
        self.mounts.push(at.to_path_buf());
        Ok(())
    }

    /// Unmounts in reverse order; tries all of them, reports the first failure.
    fn unmount_all(&mut self) -> Result<(), Fail> {
        let mut first = None;
        while let Some(m) = self.mounts.pop() {
            let m = m.to_string_lossy().into_owned();
            if let Err(e) = self.runner.run(&Cmd::new("umount", &[&m])) {
                // A lazy unmount still frees the device for a rerun.
                let _ = self.runner.run(&Cmd::new("umount", &["-l", &m]));
                first.get_or_insert(Fail::from(e));
            }
        }
        match first {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    fn write(&self, rel: &str, text: &str) -> Result<(), Fail> {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // Replace rather than write through: the live image may hold a symlink here.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, text).map_err(io(&path))
    }

    fn chroot(&mut self, program: &str, args: &[&str]) -> Result<String, Fail> {
        let cmd = Cmd::in_root(self.target.root(), program, args);
        Ok(self.runner.run(&cmd)?)
    }
}

/// Checks everything that can be checked before the first write: the host tools, the
/// source, and that GRUB's BIOS and UEFI modules are in the system to be copied.
pub fn preflight(i: &mut Install) -> Result<(), Fail> {
    let source_tree: Option<PathBuf> = match &i.source {
        Source::LiveLayers(dir) => {
            let layers = squashfs_layers(dir);
            if layers.is_empty() {
                return Err(fail(
                    format!("no *.squashfs layers in {}", dir.display()),
                    "boot the Kentongan ISO (or USB stick) and run the installer from it",
                ));
            }
            // The live system runs these same layers, so its own / shows what will be copied.
            Some(PathBuf::from("/"))
        }
        Source::Directory(d) => {
            if !d.is_dir() {
                return Err(fail(
                    format!("the source {} is not a directory", d.display()),
                    "pass an existing directory with --source",
                ));
            }
            Some(d.clone())
        }
        Source::Nothing => None,
    };
    if let (Target::Disk { .. }, Some(tree)) = (&i.target, &source_tree) {
        for dir in ["usr/lib/grub/i386-pc", "usr/lib/grub/x86_64-efi"] {
            if !tree.join(dir).is_dir() {
                return Err(fail(
                    format!("/{dir} is missing from the system to install"),
                    "add grub-pc-bin, grub-efi-amd64-bin and grub2-common to the recipe's packages",
                ));
            }
        }
        for tool in ["sfdisk", "wipefs", "mkfs.vfat", "mkfs.ext4", "blkid"] {
            if !i.runner.has_program(tool) {
                return Err(fail(
                    format!("`{tool}` is not installed"),
                    "add util-linux, fdisk, dosfstools and e2fsprogs to the recipe's packages",
                ));
            }
        }
    }
    Ok(())
}

fn squashfs_layers(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "squashfs"))
        .collect();
    v.sort();
    v
}

/// GPT layout: 1 MiB BIOS boot partition (GRUB's core image), 512 MiB ESP, the rest root.
/// The root is named `KENTONGAN-INCOMPLETE` until [`mark_done`] renames it.
pub fn sfdisk_script() -> String {
    format!(
        "label: gpt\n\
         size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=\"bios-boot\"\n\
         size=512MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"KENTONGAN-ESP\"\n\
         type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"{INCOMPLETE_PARTLABEL}\"\n"
    )
}

fn partition_disk(i: &mut Install) -> Result<(), Fail> {
    let dev = i.target.device().unwrap_or_default().to_owned();
    // Old signatures (a whole-disk filesystem, RAID or LVM metadata) would confuse udev and
    // blkid on the next boot; sfdisk only rewrites the partition table.
    i.runner
        .run(&Cmd::new("wipefs", &["--all", "--force", &dev]))?;
    i.runner
        .run(&Cmd::new("sfdisk", &["--quiet", "--wipe", "always", &dev]).stdin(sfdisk_script()))?;
    // sfdisk asks the kernel to re-read the table, but a busy disk or a loop device can keep
    // the old view; partx adds the partitions one by one (BLKPG), which works in both cases.
    let _ = i.runner.run(&Cmd::new("partx", &["--update", &dev]));
    let _ = i
        .runner
        .run(&Cmd::new("udevadm", &["settle", "--timeout=10"]));
    for n in 1..=3 {
        let part = partition(&dev, n);
        if !i.runner.wait_for(Path::new(&part)) {
            return Err(fail(
                format!("{part} did not appear after partitioning"),
                "check `dmesg` for disk errors; for a loop device, attach it with `losetup -P`",
            ));
        }
    }
    Ok(())
}

fn mark_incomplete(i: &mut Install) -> Result<(), Fail> {
    match &i.target {
        Target::Disk { .. } => Ok(()), // the partition name carries the mark
        Target::Directory { root } => {
            std::fs::create_dir_all(root).map_err(io(root))?;
            i.write(
                INCOMPLETE_MARKER,
                "kentongan-setup has not finished installing here\n",
            )
        }
    }
}

fn format(i: &mut Install) -> Result<(), Fail> {
    let dev = i.target.device().unwrap_or_default().to_owned();
    let (esp, root) = (partition(&dev, 2), partition(&dev, 3));
    i.runner.run(&Cmd::new(
        "mkfs.vfat",
        &["-F", "32", "-n", "KTGN-ESP", &esp],
    ))?;
    i.runner.run(&Cmd::new(
        "mkfs.ext4",
        &["-F", "-q", "-L", "kentongan-root", &root],
    ))?;
    Ok(())
}

fn mount_target(i: &mut Install) -> Result<(), Fail> {
    let dev = i.target.device().unwrap_or_default().to_owned();
    let root = i.root().to_path_buf();
    i.mount(&[&partition(&dev, 3)], &root)?;
    i.mount(&[&partition(&dev, 2)], &root.join("boot/efi"))?;
    Ok(())
}

fn copy_system(i: &mut Install) -> Result<(), Fail> {
    let from = match i.source.clone() {
        Source::Nothing => return Ok(()),
        Source::Directory(d) => d,
        Source::LiveLayers(dir) => {
            let work = std::env::temp_dir().join("kentongan-setup-layers");
            let mut lowers = Vec::new();
            for (n, layer) in squashfs_layers(&dir).iter().enumerate() {
                let at = work.join(format!("layer{n}"));
                i.mount(&["-o", "loop,ro", &layer.to_string_lossy()], &at)?;
                lowers.push(at.to_string_lossy().into_owned());
            }
            // overlayfs lists the top layer first; the names sort bottom layer first.
            lowers.reverse();
            let merged = work.join("merged");
            let opts = format!("ro,lowerdir={}", lowers.join(":"));
            i.mount(&["-t", "overlay", "overlay", "-o", &opts], &merged)?;
            i.source_root = Some(merged.clone());
            merged
        }
    };
    let root = i.root().to_path_buf();
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    // cp -a keeps owners, modes, hard links, xattrs (file capabilities) and ACLs.
    i.runner.run(&Cmd::new(
        "cp",
        &[
            "-a",
            &format!("{}/.", from.to_string_lossy()),
            &root.to_string_lossy(),
        ],
    ))?;
    // The source's layer mounts are not needed any more; free the loop devices early.
    if let Some(merged) = i.source_root.take() {
        while let Some(m) = i.mounts.last().cloned() {
            if !m.starts_with(merged.parent().unwrap_or(&merged)) {
                break;
            }
            i.mounts.pop();
            i.runner.run(&Cmd::new("umount", &[&m.to_string_lossy()]))?;
        }
    }
    Ok(())
}

fn chroot_mounts(i: &mut Install) -> Result<(), Fail> {
    let root = i.root().to_path_buf();
    i.mount(&["--bind", "/dev"], &root.join("dev"))?;
    i.mount(&["-t", "proc", "proc"], &root.join("proc"))?;
    i.mount(&["-t", "sysfs", "sysfs"], &root.join("sys"))?;
    i.mount(&["-t", "tmpfs", "tmpfs"], &root.join("run"))?;
    Ok(())
}

fn fstab(i: &mut Install) -> Result<(), Fail> {
    let dev = i.target.device().unwrap_or_default().to_owned();
    let uuid = |i: &mut Install, part: &str| -> Result<String, Fail> {
        let out = i
            .runner
            .run(&Cmd::new("blkid", &["-s", "UUID", "-o", "value", part]))?;
        let u = out.trim().to_owned();
        if u.is_empty() {
            return Err(fail(
                format!("{part} has no filesystem UUID"),
                "the format step did not complete; run the installer again",
            ));
        }
        Ok(u)
    };
    let root = uuid(i, &partition(&dev, 3))?;
    let esp = uuid(i, &partition(&dev, 2))?;
    i.write(
        "etc/fstab",
        &format!(
            "# Written by kentongan-setup. Filesystems by UUID: device names change between boots.\n\
             UUID={root}\t/\text4\terrors=remount-ro\t0\t1\n\
             UUID={esp}\t/boot/efi\tvfat\tumask=0077\t0\t1\n"
        ),
    )
}

/// What `grub-install --uefi-secure-boot` installs from (packages shim-signed and
/// grub-efi-amd64-signed).
const SIGNED_CHAIN: [&str; 2] = [
    "usr/lib/shim/shimx64.efi.signed",
    "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
];

fn bootloader(i: &mut Install) -> Result<(), Fail> {
    let dev = i.target.device().unwrap_or_default().to_owned();
    i.chroot("grub-install", &["--target=i386-pc", "--recheck", &dev])?;
    // --removable writes \EFI\BOOT\BOOTX64.EFI, which every UEFI firmware boots without an
    // NVRAM entry; --no-nvram because the firmware of the machine may be read-only or absent.
    // With Debian's signed chain in the system, BOOTX64.EFI is shim and GRUB the signed one, so
    // the disk boots with Secure Boot on as it does off.
    let secure_boot = SIGNED_CHAIN.iter().all(|f| i.root().join(f).is_file());
    i.chroot(
        "grub-install",
        &[
            "--target=x86_64-efi",
            "--efi-directory=/boot/efi",
            "--removable",
            "--no-nvram",
            if secure_boot {
                "--uefi-secure-boot"
            } else {
                "--no-uefi-secure-boot"
            },
        ],
    )?;
    i.chroot("grub-mkconfig", &["-o", "/boot/grub/grub.cfg"])?;
    Ok(())
}

fn mark_done(i: &mut Install) -> Result<(), Fail> {
    i.write(SETUP_DONE, "installed by kentongan-setup\n")?;
    match i.target.clone() {
        Target::Disk { device, .. } => {
            let _ = i.runner.run(&Cmd::new("sync", &[]));
            i.runner.run(&Cmd::new(
                "sfdisk",
                &["--part-label", &device, "3", ROOT_PARTLABEL],
            ))?;
        }
        Target::Directory { .. } => {
            let _ = std::fs::remove_file(i.path(INCOMPLETE_MARKER));
        }
    }
    Ok(())
}
