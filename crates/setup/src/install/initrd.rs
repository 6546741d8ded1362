//! The installed system's initrd, and removing what only the live system needs.
//!
//! The image carries an initrd built for installed systems (the builder's
//! `installed_initramfs_modules`: the live list plus ext4 and the common disk controllers),
//! so the installer normally just moves it into `/boot`; running update-initramfs on the
//! target was most of an install's time on a small server. When this machine's root disk
//! sits behind a driver that initrd lacks, or the answer file asks for `initrd = "build"`,
//! the installer builds one here with `MODULES=dep`, as it always did.

use std::path::{Path, PathBuf};

use super::{fail, io, Fail, Install, Target};
use crate::validate::InitrdChoice;

/// Where the image keeps the prebuilt initrds (`initrd.img-VERSION`) and the modules in each
/// (`modules-VERSION`): the image builder's `stages::INSTALLED_INITRD_DIR`.
pub const PREBUILT_DIR: &str = "usr/lib/kentongan/installed-initrd";

/// initramfs-tools settings of the installed system (after the image's own `conf.d`): what a
/// later kernel update on this machine builds its initrd with.
pub const INSTALLED_INITRAMFS_CONF: &str = "# Written by kentongan-setup: the installed system boots from its disk, not the live medium:\n\
# the image's list of modules plus this machine's root disk driver and filesystem.\n\
MODULES=dep";

/// The installed system's root filesystem (what `format` makes); its module must be in the
/// initrd too.
const ROOT_FS_MODULE: &str = "ext4";

/// Which initrd a kernel gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The image's prebuilt one has every module this machine's root disk needs.
    Prebuilt,
    /// Built on the target, for this reason.
    Build(String),
}

/// Decides for one kernel. `prebuilt` is the prebuilt initrd's module list (`None`: the image
/// has none for this kernel), `builtin` the kernel's `modules.builtin`, `needed` the modules on
/// the root disk's path.
pub fn decide(
    choice: InitrdChoice,
    prebuilt: Option<&str>,
    builtin: &str,
    needed: &[String],
) -> Decision {
    if choice == InitrdChoice::Build {
        return Decision::Build("the answer file asks for `disk.initrd = \"build\"`".into());
    }
    let Some(list) = prebuilt else {
        return Decision::Build("the image has no prebuilt initrd for this kernel".into());
    };
    let have: std::collections::BTreeSet<String> = list
        .lines()
        .chain(builtin.lines().filter_map(|l| {
            let file = l.rsplit('/').next()?;
            file.strip_suffix(".ko")
        }))
        .map(module_name)
        .filter(|m| !m.is_empty())
        .collect();
    let missing: Vec<&str> = needed
        .iter()
        .map(String::as_str)
        .chain([ROOT_FS_MODULE])
        .filter(|m| !have.contains(&module_name(m)))
        .collect();
    if missing.is_empty() {
        Decision::Prebuilt
    } else {
        Decision::Build(format!(
            "the prebuilt initrd lacks {} for this machine's disk",
            missing.join(", ")
        ))
    }
}

/// Module names as sysfs spells them: `-` and `_` are the same to modprobe.
fn module_name(m: &str) -> String {
    m.trim().replace('-', "_")
}

/// The kernel modules of the drivers between `device` (e.g. `/dev/vda`) and the root of the
/// device tree, read from `sys` (normally `/sys`): for a virtio disk `virtio_blk` and
/// `virtio_pci`, for SATA `sd_mod` and `ahci`. Built-in drivers have no module and are left out.
pub fn disk_modules(sys: &Path, device: &str) -> Vec<String> {
    let name = device.rsplit('/').next().unwrap_or(device);
    let sys = std::fs::canonicalize(sys).unwrap_or_else(|_| sys.to_path_buf());
    let Ok(mut dir) = std::fs::canonicalize(sys.join("class/block").join(name)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    loop {
        if let Ok(module) = std::fs::read_link(dir.join("driver/module")) {
            if let Some(m) = module.file_name() {
                let m = m.to_string_lossy().into_owned();
                if !found.contains(&m) {
                    found.push(m);
                }
            }
        }
        if !dir.pop() || dir == sys || !dir.starts_with(&sys) {
            break;
        }
    }
    found
}

pub(super) fn remove_live_boot(i: &mut Install) -> Result<(), Fail> {
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
    // kernel's initrd is placed or created afresh rather than updated.
    let kernels = kernel_versions(i.root());
    if kernels.is_empty() {
        return Err(fail(
            "the copied system has no kernel under /usr/lib/modules",
            "the image must install a linux-image-* package",
        ));
    }
    let needed = match &i.target {
        Target::Disk { device, .. } => disk_modules(Path::new("/sys"), device),
        Target::Directory { .. } => Vec::new(),
    };
    for version in kernels {
        let initrd = i.path(&format!("boot/initrd.img-{version}"));
        let _ = std::fs::remove_file(&initrd);
        let prebuilt = i.path(&format!("{PREBUILT_DIR}/initrd.img-{version}"));
        let list = std::fs::read_to_string(i.path(&format!("{PREBUILT_DIR}/modules-{version}")))
            .ok()
            .filter(|_| prebuilt.is_file());
        let builtin =
            std::fs::read_to_string(i.path(&format!("usr/lib/modules/{version}/modules.builtin")))
                .unwrap_or_default();
        match decide(i.plan.disk.initrd, list.as_deref(), &builtin, &needed) {
            Decision::Prebuilt => {
                // Same filesystem: a rename, so the kernel never sees a half-copied initrd.
                std::fs::rename(&prebuilt, &initrd).map_err(io(&initrd))?;
                i.runner.note(&format!(
                    "the image's prebuilt initrd for {version} (it has {})",
                    if needed.is_empty() {
                        ROOT_FS_MODULE.to_owned()
                    } else {
                        format!("{}, {ROOT_FS_MODULE}", needed.join(", "))
                    }
                ));
            }
            Decision::Build(why) => {
                i.runner
                    .note(&format!("to build the initrd for {version} here: {why}"));
                i.chroot("update-initramfs", &["-c", "-k", &version])?;
            }
        }
    }
    // The live medium keeps its copy; the installed system needs none.
    let dir: PathBuf = i.path(PREBUILT_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    Ok(())
}

/// Kernel versions installed under `root` (directories of `/usr/lib/modules`).
pub(super) fn kernel_versions(root: &Path) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "ahci\nsd_mod\nvirtio_blk\nvirtio_pci\next4\ncrc32c_intel\n";

    #[test]
    fn the_prebuilt_initrd_serves_a_disk_whose_drivers_it_has() {
        let needed = vec!["virtio_blk".to_owned(), "virtio_pci".to_owned()];
        assert_eq!(
            decide(InitrdChoice::Prebuilt, Some(LIST), "", &needed),
            Decision::Prebuilt
        );
        // Spelling with '-' (as some .ko files are named) is the same module.
        let needed = vec!["crc32c-intel".to_owned()];
        assert_eq!(
            decide(InitrdChoice::Prebuilt, Some(LIST), "", &needed),
            Decision::Prebuilt
        );
    }

    #[test]
    fn a_missing_driver_or_no_prebuilt_initrd_or_the_answer_builds_one_here() {
        let needed = vec!["megaraid_sas".to_owned(), "sd_mod".to_owned()];
        assert_eq!(
            decide(InitrdChoice::Prebuilt, Some(LIST), "", &needed),
            Decision::Build(
                "the prebuilt initrd lacks megaraid_sas for this machine's disk".into()
            )
        );
        assert!(matches!(
            decide(InitrdChoice::Prebuilt, None, "", &[]),
            Decision::Build(w) if w.contains("no prebuilt initrd")
        ));
        assert!(matches!(
            decide(InitrdChoice::Build, Some(LIST), "", &[]),
            Decision::Build(w) if w.contains("disk.initrd")
        ));
        // The root filesystem's module is always needed.
        assert!(matches!(
            decide(InitrdChoice::Prebuilt, Some("ahci\n"), "", &["ahci".to_owned()]),
            Decision::Build(w) if w.contains("ext4")
        ));
    }

    #[test]
    fn built_in_drivers_count_as_present() {
        let builtin = "kernel/drivers/ata/ahci.ko\nkernel/fs/ext4/ext4.ko\n";
        assert_eq!(
            decide(
                InitrdChoice::Prebuilt,
                Some(""),
                builtin,
                &["ahci".to_owned()]
            ),
            Decision::Prebuilt
        );
    }

    #[test]
    fn disk_modules_walk_the_device_tree_from_the_disk_up() {
        let sys = tempfile::tempdir().unwrap();
        let s = sys.path();
        let pci = s.join("devices/pci0000:00/0000:00:04.0");
        let virtio = pci.join("virtio1");
        std::fs::create_dir_all(virtio.join("block/vda")).unwrap();
        std::fs::create_dir_all(s.join("class/block")).unwrap();
        std::fs::create_dir_all(s.join("module/virtio_blk")).unwrap();
        std::fs::create_dir_all(s.join("module/virtio_pci")).unwrap();
        std::fs::create_dir_all(s.join("bus/virtio/drivers/virtio_blk")).unwrap();
        std::fs::create_dir_all(s.join("bus/pci/drivers/virtio-pci")).unwrap();
        std::fs::create_dir_all(s.join("bus/pci/drivers/pcieport")).unwrap();
        let link = |target: &Path, at: &Path| std::os::unix::fs::symlink(target, at).unwrap();
        link(&virtio.join("block/vda"), &s.join("class/block/vda"));
        link(
            &s.join("bus/virtio/drivers/virtio_blk"),
            &virtio.join("driver"),
        );
        link(
            &s.join("module/virtio_blk"),
            &s.join("bus/virtio/drivers/virtio_blk/module"),
        );
        link(&s.join("bus/pci/drivers/virtio-pci"), &pci.join("driver"));
        link(
            &s.join("module/virtio_pci"),
            &s.join("bus/pci/drivers/virtio-pci/module"),
        );
        // A built-in driver on the way (no `module` link) is skipped.
        link(
            &s.join("bus/pci/drivers/pcieport"),
            &s.join("devices/pci0000:00/driver"),
        );
        assert_eq!(
            disk_modules(s, "/dev/vda"),
            vec!["virtio_blk", "virtio_pci"]
        );
        assert!(disk_modules(s, "/dev/sdz").is_empty());
    }
}
