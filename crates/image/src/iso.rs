//! The hybrid ISO: GRUB for BIOS (El Torito + hybrid MBR) and UEFI (El Torito EFI image + GPT
//! ESP), so one file boots from CD and from a USB stick under either firmware.

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

/// Assembles `tree` into `output` with grub-mkrescue, with every date taken from `epoch`.
pub fn make_iso(
    tree: &Path,
    output: &Path,
    volume_id: &str,
    epoch: i64,
    scratch: &Path,
    log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), ToolError> {
    // grub-mkrescue's mformat call picks a random FAT serial; pin it so the ISO is
    // bit-identical between builds.
    let wrappers = scratch.join("bin");
    std::fs::create_dir_all(&wrappers).map_err(|source| ToolError::Log {
        log: wrappers.clone(),
        source,
    })?;
    let mformat = wrappers.join("mformat");
    let real = crate::tools::find_in_path("mformat").unwrap_or_else(|| "/usr/bin/mformat".into());
    std::fs::write(
        &mformat,
        format!("#!/bin/sh\nexec {} -N 4b454e54 \"$@\"\n", real.display()),
    )
    .and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&mformat, std::fs::Permissions::from_mode(0o755))
    })
    .map_err(|source| ToolError::Log {
        log: mformat.clone(),
        source,
    })?;
    let path = format!(
        "{}:{}",
        wrappers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let date = grub_date(epoch);
    run_logged(
        Command::new("grub-mkrescue")
            .env("PATH", path)
            .env("TZ", "UTC")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .arg(format!("--output={}", output.display()))
            .args(["--compress=xz", "--fonts=", "--themes=", "--locales="])
            .arg(tree)
            // These go to xorriso; grub-mkrescue only honours them right after the tree.
            .arg(format!("--modification-date={date}"))
            .args(["--set_all_file_dates", &date])
            .args(["-volid", volume_id]),
        log,
        on_line,
    )
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
