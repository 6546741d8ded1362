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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::facts::{INCOMPLETE_PARTLABEL, ROOT_PARTLABEL};
use crate::validate::{AdminCredential, InstallPlan, Ipv4Plan, Ipv6Plan, Language};

/// File at the root of a directory target while an install into it is unfinished.
pub const INCOMPLETE_MARKER: &str = ".kentongan-install-incomplete";
/// Written last: the first-boot wizard does not run again.
pub const SETUP_DONE: &str = "var/lib/kentongan/setup-done";
/// Where a disk target's root filesystem is mounted while installing.
pub const DEFAULT_MOUNT: &str = "/mnt/kentongan-target";
/// Where the live medium's squashfs layers are (live-boot's layout; our builder names them
/// `00-base.squashfs`, `50-overlay.squashfs`, applied in name order).
pub const LIVE_LAYERS: &str = "/run/live/medium/live";

/// initramfs-tools settings of the installed system (after the image's own `conf.d`).
pub const INSTALLED_INITRAMFS_CONF: &str = "# Written by kentongan-setup: the installed system boots from its disk, not the live medium:\n\
# the image's list of modules plus this machine's root disk driver and filesystem.\n\
MODULES=dep";

/// Units and links that only make sense on the live system; removed from the installed one.
const LIVE_ONLY: &[&str] = &[
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

fn remove_live_boot(i: &mut Install) -> Result<(), Fail> {
    // The image builder trims the live initrd to a list of modules that finds the live medium
    // (its `kentongan-modules` hook: the common disk controllers, USB, virtio, vfat). The
    // installed system also needs its root filesystem and this machine's disk controller:
    // `dep` adds exactly those, found from the mounted root. `most` would be safer for a disk
    // moved to another machine, but building it takes minutes on a small server or a VM,
    // and the hook's list still covers the common controllers.
    i.write(
        "etc/initramfs-tools/conf.d/zz-kentongan-installed.conf",
        &format!("{INSTALLED_INITRAMFS_CONF}\n"),
    )?;
    let installed = i.chroot(
        "dpkg-query",
        &[
            "-W",
            "-f",
            "${Package} ${db:Status-Abbrev}\\n",
            "live-boot",
            "live-boot-initramfs-tools",
        ],
    );
    // dpkg-query exits 1 when a package is unknown; that just means nothing to purge.
    let present: Vec<String> = installed
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" ii"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    if !present.is_empty() {
        let mut args = vec!["--purge"];
        args.extend(present.iter().map(String::as_str));
        i.chroot("dpkg", &args)?;
    }
    // The image keeps the kernel but not its initrd (the live one sits on the ISO), so each
    // kernel's initrd is created afresh rather than updated.
    let kernels = kernel_versions(i.root());
    if kernels.is_empty() {
        return Err(fail(
            "the copied system has no kernel under /usr/lib/modules",
            "the image must install a linux-image-* package",
        ));
    }
    for version in kernels {
        let _ = std::fs::remove_file(i.path(&format!("boot/initrd.img-{version}")));
        i.chroot("update-initramfs", &["-c", "-k", &version])?;
    }
    Ok(())
}

/// Kernel versions installed under `root` (directories of `/usr/lib/modules`).
fn kernel_versions(root: &Path) -> Vec<String> {
    // Read through usr/ rather than the /lib symlink, which must not be followed on the host.
    let mut v: Vec<String> = std::fs::read_dir(root.join("usr/lib/modules"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
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

/// The systemd-networkd file for the plan's network.
pub fn networkd_file(plan: &InstallPlan) -> String {
    let n = &plan.network;
    let mut s =
        String::from("# Written by kentongan-setup from the first-boot answers.\n[Match]\n");
    match &n.interface {
        Some(name) => {
            let _ = writeln!(s, "Name={name}");
        }
        None => s.push_str("Type=ether\n"),
    }
    s.push_str("\n[Network]\n");
    let dhcp4 = matches!(n.ipv4, Ipv4Plan::Dhcp);
    let _ = writeln!(
        s,
        "DHCP={}",
        match (dhcp4, &n.ipv6) {
            (true, Ipv6Plan::Auto) => "yes",
            (true, _) => "ipv4",
            (false, Ipv6Plan::Auto) => "ipv6",
            (false, _) => "no",
        }
    );
    let _ = writeln!(
        s,
        "IPv6AcceptRA={}",
        if matches!(n.ipv6, Ipv6Plan::Auto) {
            "yes"
        } else {
            "no"
        }
    );
    if matches!(n.ipv6, Ipv6Plan::Off) {
        s.push_str("LinkLocalAddressing=no\n");
    }
    if let Ipv4Plan::Static { address, gateway } = &n.ipv4 {
        let _ = writeln!(s, "Address={address}");
        if let Some(g) = gateway {
            let _ = writeln!(s, "Gateway={g}");
        }
    }
    if let Ipv6Plan::Static { address, gateway } = &n.ipv6 {
        let _ = writeln!(s, "Address={address}");
        if let Some(g) = gateway {
            let _ = writeln!(s, "Gateway={g}");
        }
    }
    for d in &n.dns {
        let _ = writeln!(s, "DNS={d}");
    }
    if !plan.domain.is_empty() {
        let _ = writeln!(s, "Domains={}", plan.domain);
    }
    s
}

/// Sets `key = value` in `[table]` of a TOML text, keeping every other line (comments,
/// other keys) as it is: replaces the key's line (and the rest of a `[ … ]` value spread
/// over several lines), else adds the line at the end of the table, else adds the table.
/// `value` must be a TOML value, quoted as needed.
pub fn set_toml_key(text: &str, table: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = {value}");
    let header = format!("[{table}]");
    let mut out: Vec<String> = Vec::new();
    let mut in_table = false;
    let mut done = false;
    let mut skipping_array = false;
    for l in text.lines() {
        let t = l.trim();
        if skipping_array {
            if t.starts_with(']') || t.ends_with(']') {
                skipping_array = false;
            }
            continue;
        }
        if t.starts_with('[') {
            if in_table && !done {
                // The table ends: the key goes after its last non-blank line.
                let at = out
                    .iter()
                    .rposition(|o| !o.trim().is_empty())
                    .map_or(out.len(), |p| p + 1);
                out.insert(at, line.clone());
                done = true;
            }
            in_table = t == header;
        }
        let is_key = t
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == key && !t.starts_with('#'));
        if in_table && !done && is_key {
            let rest = t.split_once('=').map(|(_, v)| v.trim()).unwrap_or_default();
            // A multi-line array: drop its continuation lines too.
            skipping_array = rest.starts_with('[') && !rest.contains(']');
            out.push(line.clone());
            done = true;
            continue;
        }
        out.push(l.to_owned());
    }
    if !done && in_table {
        let at = out
            .iter()
            .rposition(|o| !o.trim().is_empty())
            .map_or(out.len(), |p| p + 1);
        out.insert(at, line);
    } else if !done {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push(header);
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// The image's pbx.toml with the answers that belong there: `[sip] domain`,
/// `[firewall] trusted` (the networks that reach SSH and admin ports and are never banned)
/// and, when the file has a `[voicemail]` table, its `language` (the wizard's). A file
/// without `[voicemail]` gets none: voicemail stays off as written. Comments and other keys
/// stay; the result is checked with the PBX's own validator.
pub fn pbx_config(
    existing: Option<&str>,
    sip_domain: &str,
    trusted: &[crate::net::Cidr],
    language: crate::validate::Language,
) -> Result<String, String> {
    let text = existing.unwrap_or("# Written by kentongan-setup.\n");
    let text = set_toml_key(text, "sip", "domain", &format!("\"{sip_domain}\""));
    let text = if text.lines().any(|l| l.trim() == "[voicemail]") {
        set_toml_key(
            &text,
            "voicemail",
            "language",
            &format!("\"{}\"", language.code()),
        )
    } else {
        text
    };
    let list: Vec<String> = trusted.iter().map(|c| format!("\"{c}\"")).collect();
    let text = set_toml_key(
        &text,
        "firewall",
        "trusted",
        &format!("[{}]", list.join(", ")),
    );
    kentongan_pbx::config::Config::from_toml(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

fn configure(i: &mut Install) -> Result<(), Fail> {
    let plan = i.plan;
    let fqdn = plan.fqdn();
    i.write("etc/hostname", &format!("{}\n", plan.hostname))?;
    i.write(
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{fqdn} {}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
            plan.hostname
        ),
    )?;
    i.write(
        "etc/systemd/network/10-kentongan.network",
        &networkd_file(plan),
    )?;
    if !i.path("usr/lib/systemd/systemd-resolved").exists() && !plan.network.dns.is_empty() {
        let mut r = format!("# Written by kentongan-setup.\nsearch {}\n", plan.domain);
        for d in &plan.network.dns {
            let _ = writeln!(r, "nameserver {d}");
        }
        i.write("etc/resolv.conf", &r)?;
    }

    let localtime = i.path("etc/localtime");
    let _ = std::fs::remove_file(&localtime);
    if let Some(dir) = localtime.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::os::unix::fs::symlink(format!("/usr/share/zoneinfo/{}", plan.timezone), &localtime)
        .map_err(io(&localtime))?;
    i.write("etc/timezone", &format!("{}\n", plan.timezone))?;

    let pbx_path = i.path("etc/kentongan/pbx.toml");
    let existing = std::fs::read_to_string(&pbx_path).ok();
    let pbx = pbx_config(
        existing.as_deref(),
        &plan.sip_domain,
        &plan.trusted,
        plan.language,
    )
    .map_err(|e| {
        fail(
            format!("the PBX configuration would be invalid: {e}"),
            "fix /etc/kentongan/pbx.toml in the image's overlay",
        )
    })?;
    i.write("etc/kentongan/pbx.toml", &pbx)?;

    i.write(
        "etc/kentongan/installed.toml",
        &format!(
            "# Written by kentongan-setup: the first-boot answers, without secrets.\nlanguage = \"{}\"\nhostname = \"{}\"\ndomain = \"{}\"\ntimezone = \"{}\"\nsip_domain = \"{}\"\n",
            plan.language.code(),
            plan.hostname,
            plan.domain,
            plan.timezone,
            plan.sip_domain
        ),
    )?;
    i.write(
        "etc/default/grub",
        "# Written by kentongan-setup.\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=2\nGRUB_DISTRIBUTOR=Kentongan\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200n8\"\nGRUB_TERMINAL=\"console serial\"\nGRUB_SERIAL_COMMAND=\"serial --speed=115200\"\n",
    )?;
    // Each installed machine gets its own identity on first boot.
    i.write("etc/machine-id", "")?;
    let _ = std::fs::remove_file(i.path("var/lib/dbus/machine-id"));
    for rel in LIVE_ONLY {
        let _ = std::fs::remove_file(i.path(rel));
    }
    Ok(())
}

/// Hashes the admin password as SHA-512 crypt with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    // 100 000 rounds: about 0.1 s on the appliance, 20× the library default. Unit tests run
    // unoptimised, where that would take seconds.
    const ROUNDS: usize = if cfg!(test) { 1_000 } else { 100_000 };
    let params = sha_crypt::Sha512Params::new(ROUNDS).map_err(|e| format!("{e:?}"))?;
    sha_crypt::sha512_simple(password, &params).map_err(|e| format!("{e:?}"))
}

/// Replaces root's hash in a shadow file's text (adds a root line when there is none).
pub fn shadow_with_root_hash(shadow: &str, hash: &str) -> String {
    let mut found = false;
    let mut out: Vec<String> = shadow
        .lines()
        .map(|l| {
            let mut fields: Vec<&str> = l.split(':').collect();
            if fields.first() == Some(&"root") && fields.len() >= 2 {
                found = true;
                fields[1] = hash;
                fields.join(":")
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        out.insert(0, format!("root:{hash}::0:99999:7:::"));
    }
    out.join("\n") + "\n"
}

fn admin_password(i: &mut Install) -> Result<(), Fail> {
    let hash = match &i.plan.admin {
        AdminCredential::Hash(h) => h.clone(),
        AdminCredential::Password(p) => hash_password(p.expose())
            .map_err(|e| fail(format!("could not hash the password: {e}"), "run again"))?,
    };
    let path = i.path("etc/shadow");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let text = shadow_with_root_hash(&old, &hash);
    // Write beside and rename so a crash never leaves a half-written shadow file; keep its
    // mode (0640, group shadow) or make it private.
    let tmp = i.path("etc/shadow.kentongan-new");
    if let Some(dir) = tmp.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    let perms = std::fs::metadata(&path)
        .map(|m| m.permissions())
        .unwrap_or_else(|_| std::os::unix::fs::PermissionsExt::from_mode(0o600));
    std::fs::set_permissions(&tmp, perms).map_err(io(&tmp))?;
    if let Ok(meta) = std::fs::metadata(&path) {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

fn extensions(i: &mut Install) -> Result<(), Fail> {
    if i.plan.extensions.is_empty() {
        return Ok(());
    }
    let cfg_text = std::fs::read_to_string(i.path("etc/kentongan/pbx.toml")).unwrap_or_default();
    let db = kentongan_pbx::config::Config::from_toml(&cfg_text)
        .map(|c| c.database)
        .unwrap_or_else(|_| PathBuf::from("/var/lib/kentongan/pbx.db"));
    let rel = db.strip_prefix("/").unwrap_or(&db);
    let path = i.root().join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let hint = "check the PBX database path in /etc/kentongan/pbx.toml";
    let store = kentongan_pbx::store::Store::open(&path).map_err(|e| fail(e, hint))?;
    for e in &i.plan.extensions {
        let Some(ext) = kentongan_pbx::store::Extension::parse(&e.number) else {
            return Err(fail(
                format!("extension {} is not valid for the PBX", e.number),
                hint,
            ));
        };
        // A rerun into the same directory replaces what an earlier attempt added.
        let _ = store.remove_user(&ext);
        store
            .add_user(&ext, &e.name, &i.plan.sip_domain, e.password.expose())
            .map_err(|err| fail(err, hint))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Language;
    use crate::{validate, Answer, Facts};

    fn plan() -> InstallPlan {
        let text = include_str!("../tests/answers/ok/issue_example.toml");
        let facts: Facts =
            serde_json::from_str(include_str!("../tests/answers/facts.json")).unwrap();
        validate(&Answer::parse(text).unwrap(), &facts).unwrap()
    }

    /// Records commands; `blkid` answers a fixed UUID; one program can be made to fail.
    #[derive(Default)]
    struct Recorder {
        log: Vec<String>,
        fail_on: Option<&'static str>,
    }

    impl Runner for Recorder {
        fn has_program(&self, _: &str) -> bool {
            true
        }
        fn wait_for(&self, _: &Path) -> bool {
            true
        }
        fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError> {
            self.log.push(cmd.display());
            if Some(cmd.program.as_str()) == self.fail_on {
                return Err(CmdError {
                    command: cmd.display(),
                    detail: "exit status: 1; simulated".into(),
                });
            }
            Ok(match cmd.program.as_str() {
                "blkid" => "1234-ABCD\n".into(),
                _ => String::new(),
            })
        }
    }

    struct Quiet;
    impl Reporter for Quiet {}

    #[test]
    fn directory_target_gets_configuration_and_hashes_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let plan = plan();
        let mut r = Recorder::default();
        run(
            &plan,
            Target::Directory { root: root.clone() },
            Source::Nothing,
            &mut r,
            &mut Quiet,
        )
        .unwrap();
        assert!(
            r.log.is_empty(),
            "a directory target runs no command: {:?}",
            r.log
        );
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("etc/hostname"), "pbx\n");
        assert!(read("etc/systemd/network/10-kentongan.network").contains("Address=10.0.2.15/24"));
        assert!(read("etc/kentongan/pbx.toml").contains("domain = \"kantor.local\""));
        let pbx = read("etc/kentongan/pbx.toml");
        assert!(
            pbx.contains("[firewall]\ntrusted = [\"10.0.2.0/24\"]"),
            "{pbx}"
        );
        assert!(!root.join("etc/kentongan/firewall-trusted.nft").exists());
        assert!(root.join(SETUP_DONE).exists());
        assert!(!root.join(INCOMPLETE_MARKER).exists());
        let shadow = read("etc/shadow");
        let hash = shadow.split(':').nth(1).unwrap();
        assert!(hash.starts_with("$6$"));
        assert!(sha_crypt::sha512_check("Tg7!pz0Qmw-kantor", hash).is_ok());
        let store =
            kentongan_pbx::store::Store::open(&root.join("var/lib/kentongan/pbx.db")).unwrap();
        assert_eq!(store.users().unwrap()[0].extension.0, "201");
        // No file under the root holds a password in plaintext.
        for entry in walk(&root) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("Tg7!pz0Qmw") && !text.contains("Meja.Depan"),
                "{}",
                entry.display()
            );
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn disk_steps_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan();
        let mut r = Recorder::default();
        let target = Target::Disk {
            device: "/dev/vda".into(),
            mount: dir.path().join("mnt"),
        };
        let src = dir.path().join("src");
        // The recorder does not copy, so the kernel is put straight into the target.
        std::fs::create_dir_all(dir.path().join("mnt/usr/lib/modules/6.1.0-99-amd64")).unwrap();
        std::fs::create_dir_all(src.join("usr/lib/grub/i386-pc")).unwrap();
        std::fs::create_dir_all(src.join("usr/lib/grub/x86_64-efi")).unwrap();
        run(&plan, target, Source::Directory(src), &mut r, &mut Quiet).unwrap();
        let log = r.log.join("\n");
        let order = [
            "wipefs --all --force /dev/vda",
            "sfdisk --quiet --wipe always /dev/vda",
            "mkfs.vfat -F 32 -n KTGN-ESP /dev/vda2",
            "mkfs.ext4 -F -q -L kentongan-root /dev/vda3",
            "mount /dev/vda3",
            "cp -a",
            "update-initramfs -c -k 6.1.0-99-amd64",
            "blkid -s UUID -o value /dev/vda3",
            "grub-install --target=i386-pc --recheck /dev/vda",
            "--target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram --no-uefi-secure-boot",
            "grub-mkconfig -o /boot/grub/grub.cfg",
            "sfdisk --part-label /dev/vda 3 KENTONGAN-ROOT",
            "umount",
        ];
        let mut at = 0;
        for o in order {
            let found = log[at..]
                .find(o)
                .unwrap_or_else(|| panic!("{o} missing after {at} in\n{log}"));
            at += found;
        }
        assert!(!log.contains("Tg7!") && !log.contains("Meja.Depan"));
    }

    #[test]
    fn signed_chain_in_the_system_installs_shim() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Recorder::default();
        let target = Target::Disk {
            device: "/dev/vda".into(),
            mount: dir.path().join("mnt"),
        };
        let src = dir.path().join("src");
        std::fs::create_dir_all(dir.path().join("mnt/usr/lib/modules/6.1.0-99-amd64")).unwrap();
        for f in SIGNED_CHAIN {
            let path = dir.path().join("mnt").join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"signed").unwrap();
        }
        std::fs::create_dir_all(src.join("usr/lib/grub/i386-pc")).unwrap();
        std::fs::create_dir_all(src.join("usr/lib/grub/x86_64-efi")).unwrap();
        run(&plan(), target, Source::Directory(src), &mut r, &mut Quiet).unwrap();
        let log = r.log.join("\n");
        assert!(
            log.contains("--removable --no-nvram --uefi-secure-boot"),
            "{log}"
        );
    }

    #[test]
    fn failure_names_the_step_and_leaves_the_incomplete_label() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan();
        let mut r = Recorder {
            fail_on: Some("mkfs.ext4"),
            ..Default::default()
        };
        let target = Target::Disk {
            device: "/dev/vda".into(),
            mount: dir.path().join("mnt"),
        };
        let err = run(&plan, target, Source::Nothing, &mut r, &mut Quiet).unwrap_err();
        assert_eq!(err.step, "format");
        assert!(err.disk_touched);
        assert!(!r.log.iter().any(|l| l.contains("--part-label")));
        assert!(sfdisk_script().contains(INCOMPLETE_PARTLABEL));
    }

    #[test]
    fn preflight_failure_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan();
        let mut r = Recorder::default();
        let target = Target::Disk {
            device: "/dev/vda".into(),
            mount: dir.path().join("mnt"),
        };
        let src = dir.path().join("src-without-grub");
        std::fs::create_dir_all(&src).unwrap();
        let err = run(&plan, target, Source::Directory(src), &mut r, &mut Quiet).unwrap_err();
        assert_eq!(err.step, "preflight");
        assert!(!err.disk_touched);
        assert!(err.hint.contains("grub-pc-bin"));
        assert!(r.log.is_empty());
    }

    #[test]
    fn pbx_config_keeps_comments_and_validates() {
        let old = "# c\n[sip]\ndomain = \"pbx.local\"\nlisten = [\"udp:0.0.0.0:5060\"]\n[rtp]\nports = \"10000-20000\"\n\n[firewall]\n# who\ntrusted = []\nban_seconds = 60\n";
        let lan = crate::net::Cidr::parse("10.0.2.0/24").unwrap();
        let new = pbx_config(Some(old), "kantor.local", &[lan], Language::En).unwrap();
        assert_eq!(
            new,
            "# c\n[sip]\ndomain = \"kantor.local\"\nlisten = [\"udp:0.0.0.0:5060\"]\n[rtp]\nports = \"10000-20000\"\n\n[firewall]\n# who\ntrusted = [\"10.0.2.0/24\"]\nban_seconds = 60\n"
        );
        let none = pbx_config(None, "kantor.local", &[], Language::Id).unwrap();
        assert_eq!(
            none,
            "# Written by kentongan-setup.\n\n[sip]\ndomain = \"kantor.local\"\n\n[firewall]\ntrusted = []\n"
        );
        // The PBX's validator has the last word.
        assert!(pbx_config(Some(old), "bad domain", &[lan], Language::Id).is_err());
    }

    #[test]
    fn the_wizards_language_is_the_voicemail_language_of_the_shipped_config() {
        let shipped = include_str!("../../../overlays/pbx/etc/kentongan/pbx.toml.tera")
            .replace("{{ domain }}", "pbx.local")
            .replace("{{ sip_udp_port }}", "5060")
            .replace("{{ sip_tcp_port }}", "5060")
            .replace("{{ sip_tls_port }}", "5061")
            .replace("{{ rtp_ports }}", "10000-20000");
        assert!(
            !shipped.contains("{{"),
            "a template variable is not filled in here"
        );
        let lan = crate::net::Cidr::parse("10.0.2.0/24").unwrap();
        for (lang, want) in [
            (Language::En, kentongan_pbx::config::Language::English),
            (Language::Id, kentongan_pbx::config::Language::Indonesian),
        ] {
            let text = pbx_config(Some(&shipped), "kantor.local", &[lan], lang).unwrap();
            let c = kentongan_pbx::config::Config::from_toml(&text).unwrap();
            let vm = c.voicemail.expect("the shipped config has voicemail on");
            assert!(vm.enabled);
            assert_eq!(vm.language, want);
            assert_eq!((vm.ring_seconds, vm.access.as_str()), (20, "*97"));
            assert_eq!(vm.smtp, None);
            // Set in place: the comments around it stay.
            assert!(
                text.contains("# \"id\" or \"en\": what callers hear"),
                "{text}"
            );
        }
    }

    #[test]
    fn toml_keys_are_set_in_their_table() {
        // A key in another table with the same name is left alone; a missing key goes at the
        // end of its table, before the blank lines that separate it from the next.
        let text = "[a]\nx = 1\n\n[b]\ny = 2\n";
        assert_eq!(
            set_toml_key(text, "a", "y", "3"),
            "[a]\nx = 1\ny = 3\n\n[b]\ny = 2\n"
        );
        assert_eq!(
            set_toml_key(text, "b", "y", "3"),
            "[a]\nx = 1\n\n[b]\ny = 3\n"
        );
        assert_eq!(
            set_toml_key(text, "c", "z", "4"),
            "[a]\nx = 1\n\n[b]\ny = 2\n\n[c]\nz = 4\n"
        );
        // A value over several lines is replaced whole; a commented-out key is not a key.
        let multi = "[f]\n# trusted = [\"x\"]\ntrusted = [\n  \"192.0.2.0/24\",\n]\nk = 1\n";
        assert_eq!(
            set_toml_key(multi, "f", "trusted", "[]"),
            "[f]\n# trusted = [\"x\"]\ntrusted = []\nk = 1\n"
        );
    }

    #[test]
    fn shadow_root_line() {
        let s = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n";
        assert_eq!(
            shadow_with_root_hash(s, "$6$x$y"),
            "root:$6$x$y:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
        );
        assert!(shadow_with_root_hash("", "H").starts_with("root:H:"));
    }

    #[test]
    fn partition_names() {
        assert_eq!(partition("/dev/sda", 3), "/dev/sda3");
        assert_eq!(partition("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
        assert_eq!(partition("/dev/loop7", 1), "/dev/loop7p1");
    }
}
