//! The hybrid ISO: GRUB for BIOS (El Torito + hybrid MBR) and, for UEFI, Debian's signed shim
//! and GRUB on an EFI system partition image (El Torito + GPT partition), so one file boots from
//! CD and from a USB stick under either firmware, with Secure Boot on or off.

use std::path::Path;
use std::process::Command;

use crate::recipe::Recipe;
use crate::tools::{run_logged, ToolError};

/// Where live-boot finds the layers and in which order it stacks them (first = lowest).
pub const LAYERS: [&str; 2] = ["00-base.squashfs", "50-overlay.squashfs"];

/// The GRUB menu. The first entry shows the system on screen and mirrors kernel messages and a
/// login prompt to the serial port; the second makes the serial port the main console, for
/// headless servers.
pub fn grub_cfg(recipe: &Recipe) -> String {
    let title = format!("{} {}", recipe.name, recipe.version);
    let cmdline = &recipe.kernel_cmdline;
    format!(
        r#"serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=3
set default=0

menuentry "{title}" {{
    linux /live/vmlinuz {cmdline} console=ttyS0,115200n8 console=tty0
    initrd /live/initrd.img
}}

menuentry "{title} (serial console ttyS0)" {{
    linux /live/vmlinuz {cmdline} console=tty0 console=ttyS0,115200n8
    initrd /live/initrd.img
}}
"#
    )
}

/// Where Debian's signed boot chain lives in a root filesystem that has `shim-signed` and
/// `grub-efi-amd64-signed` installed: shim (signed by Microsoft's UEFI CA, so firmware with
/// Secure Boot on accepts it), its MokManager, and the GRUB image for removable media (signed by
/// Debian's key, which shim trusts). That GRUB finds the medium by `/.disk/info` and reads
/// `/boot/grub/grub.cfg`.
pub const SIGNED_EFI: [(&str, &str); 3] = [
    ("usr/lib/shim/shimx64.efi.signed", "BOOTX64.EFI"),
    ("usr/lib/shim/mmx64.efi.signed", "mmx64.efi"),
    (
        "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
        "grubx64.efi",
    ),
];

/// GRUB modules built into the BIOS image and the unsigned UEFI fallback. They are the ones
/// the menu uses and a subset of what Debian's signed GRUB has built in, so one `grub.cfg`
/// works on every path: the signed image cannot `insmod` from the medium, so nothing may rely
/// on loading a module.
const GRUB_MODULES: &[&str] = &[
    "iso9660",
    "part_msdos",
    "part_gpt",
    "fat",
    "normal",
    "configfile",
    "search",
    "search_fs_file",
    "linux",
    "serial",
    "terminal",
    "echo",
    "test",
    "sleep",
];

/// What decides the ISO's layout besides its inputs: part of the ISO stage's cache key.
pub fn layout_key() -> String {
    format!(
        "{SIGNED_EFI:?} {GRUB_MODULES:?} {EFI_EMBEDDED_CFG:?} {ESP_LABEL} {BIOS_IMAGE} {EFI_IMAGE}"
    )
}

/// How the unsigned UEFI fallback finds its menu: as Debian's removable-media GRUB does.
const EFI_EMBEDDED_CFG: &str = "search --no-floppy --file --set=root /.disk/info\n\
                                set prefix=($root)/boot/grub\n\
                                configfile $prefix/grub.cfg\n";

/// The UEFI boot loader the ISO carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EfiLoader {
    /// Debian's signed chain, copied from the image's root filesystem: files named as on the
    /// EFI system partition (`BOOTX64.EFI` = shim, `grubx64.efi`, `mmx64.efi`), in `dir`.
    Signed { dir: std::path::PathBuf },
    /// The image has no signed chain (a recipe without `shim-signed`): GRUB built from the
    /// host's modules, which boots only with Secure Boot off.
    Unsigned,
}

/// The ESP image's FAT volume label. Not `KENTONGAN`: that label marks an answer volume.
const ESP_LABEL: &str = "KTGN-LIVE";
/// The El Torito images' paths inside the ISO.
const BIOS_IMAGE: &str = "boot/grub/i386-pc/eltorito.img";
const EFI_IMAGE: &str = "boot/grub/efi.img";

/// Assembles `tree` into a hybrid ISO at `output`, every date taken from `epoch`: GRUB for BIOS
/// (El Torito + a hybrid MBR for USB sticks) and `efi` on an EFI system partition image (El
/// Torito for CDs, a GPT partition for USB sticks).
///
/// grub-mkrescue cannot place shim, so the layout is built here: the BIOS core image with
/// grub-mkimage, the ESP with mkfs.fat and mtools, the ISO with xorriso.
#[allow(clippy::too_many_arguments)]
pub fn make_iso(
    tree: &Path,
    output: &Path,
    volume_id: &str,
    epoch: i64,
    efi: &EfiLoader,
    scratch: &Path,
    log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), ToolError> {
    let io = |path: &Path| {
        let log = path.to_path_buf();
        move |source| ToolError::Log { log, source }
    };
    let bios = tree.join(BIOS_IMAGE);
    if let Some(dir) = bios.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    run_logged(
        Command::new("grub-mkimage")
            .args(["-O", "i386-pc-eltorito", "-p", "/boot/grub", "-o"])
            .arg(&bios)
            .arg("biosdisk")
            .args(GRUB_MODULES),
        log,
        on_line,
    )?;

    let esp = scratch.join("esp");
    let boot_dir = esp.join("EFI/BOOT");
    std::fs::create_dir_all(&boot_dir).map_err(io(&boot_dir))?;
    match efi {
        EfiLoader::Signed { dir } => {
            for (_, name) in SIGNED_EFI {
                std::fs::copy(dir.join(name), boot_dir.join(name)).map_err(io(&dir.join(name)))?;
            }
        }
        EfiLoader::Unsigned => {
            let cfg = scratch.join("embedded.cfg");
            std::fs::write(&cfg, EFI_EMBEDDED_CFG).map_err(io(&cfg))?;
            run_logged(
                Command::new("grub-mkimage")
                    .args(["-O", "x86_64-efi", "-p", "/boot/grub", "-c"])
                    .arg(&cfg)
                    .arg("-o")
                    .arg(boot_dir.join("BOOTX64.EFI"))
                    .args(["efi_gop", "all_video"])
                    .args(GRUB_MODULES),
                log,
                on_line,
            )?;
        }
    }
    // FAT keeps file and directory times: pin them, as the ISO's are.
    let mut bytes = 0u64;
    for entry in walkdir::WalkDir::new(&esp) {
        let entry = entry.map_err(|e| ToolError::Log {
            log: esp.clone(),
            source: e.into(),
        })?;
        bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        set_mtime(entry.path(), epoch).map_err(io(entry.path()))?;
    }
    let image = tree.join(EFI_IMAGE);
    match std::fs::remove_file(&image) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&image)(e)),
        _ => {}
    }
    // Room for the files, FAT's own tables and directory clusters, and a little to spare.
    let kib = (bytes / 1024 + 1024).max(2880);
    run_logged(
        Command::new("mkfs.fat")
            .args(["--invariant", "-C", "-n", ESP_LABEL])
            .arg(&image)
            .arg(kib.to_string()),
        log,
        on_line,
    )?;
    run_logged(
        Command::new("mcopy")
            .env("TZ", "UTC")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .args(["-s", "-m", "-i"])
            .arg(&image)
            .arg(esp.join("EFI"))
            .arg("::/"),
        log,
        on_line,
    )?;

    let date = grub_date(epoch);
    run_logged(
        Command::new("xorriso")
            .env("TZ", "UTC")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .args(["-as", "mkisofs", "-o"])
            .arg(output)
            .args(["-V", volume_id, "-r"])
            .arg(format!("--modification-date={date}"))
            .args(["--set_all_file_dates", &date])
            .args(["--grub2-mbr", "/usr/lib/grub/i386-pc/boot_hybrid.img"])
            // The ESP also as a partition, for firmware booting the ISO as a USB disk.
            .args([
                "--protective-msdos-label",
                "-efi-boot-part",
                "--efi-boot-image",
            ])
            .args(["-c", "/boot.catalog"])
            .args(["-b", &format!("/{BIOS_IMAGE}"), "-no-emul-boot"])
            .args([
                "-boot-load-size",
                "4",
                "-boot-info-table",
                "--grub2-boot-info",
            ])
            .args([
                "-eltorito-alt-boot",
                "-e",
                &format!("/{EFI_IMAGE}"),
                "-no-emul-boot",
            ])
            .arg(tree),
        log,
        on_line,
    )
}

fn set_mtime(path: &Path, epoch: i64) -> std::io::Result<()> {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0) as u64);
    std::fs::File::open(path)?.set_modified(time)
}

/// `YYYYmmddHHMMSScc`, the form xorriso takes for fixed dates.
pub fn grub_date(epoch: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_epoch(epoch);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00")
}

/// RFC 3339 UTC, e.g. for SBOM creation times.
pub fn rfc3339(epoch: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_epoch(epoch);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Unix time to the proleptic Gregorian calendar (UTC), by counting 400-year eras from
/// 0000-03-01 so leap days fall at the end of each year.
fn civil_from_epoch(epoch: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

/// A volume id ISO 9660 accepts: up to 32 of A–Z, 0–9 and `_`.
pub fn volume_id(recipe: &Recipe) -> String {
    let raw = format!("{}_{}", recipe.name, recipe.version).to_ascii_uppercase();
    raw.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(grub_date(0), "1970010100000000");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(grub_date(1_709_251_199), "2024022923595900");
    }
}
