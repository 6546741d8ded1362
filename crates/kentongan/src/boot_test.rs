//! `kentongan boot-test`: boot an ISO under QEMU and run the appliance checks on it.
//!
//! Glue over `kentongan-vmtest`: parse the options, name the run folder, print one line per
//! check, and on failure keep the serial log and a screendump for the operator.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use kentongan_vmtest::checks::{firmware_checks, run_checks, ApplianceFacts};
use kentongan_vmtest::{Accel, Firmware, Machine, MachineConfig, Media, BOOT_TIMEOUT};

use crate::progress;

#[derive(clap::Args)]
pub struct Args {
    /// The ISO to boot, e.g. out/kentongan-0.1.0-amd64.iso.
    iso: PathBuf,
    #[arg(long, value_enum, default_value = "bios")]
    firmware: FirmwareArg,
    #[arg(long, value_enum, default_value = "cdrom")]
    media: MediaArg,
    /// Seconds of wall time the guest gets to boot [default: 60 × 4 under TCG].
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Runs go to DIR/<firmware>-<media>-<unix time>/ (serial.log, screen.png on failure).
    #[arg(long, value_name = "DIR", default_value = "out/boot-test")]
    out_dir: PathBuf,
    /// `auto` uses KVM only when a probe boot proves it works.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    /// Memory of the guest in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FirmwareArg {
    Bios,
    Uefi,
    /// UEFI with Secure Boot enforced and Microsoft's keys enrolled, as PC servers ship.
    UefiSecureboot,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MediaArg {
    Cdrom,
    Usb,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AccelArg {
    Auto,
    Tcg,
    Kvm,
}

/// Boots, checks, and returns the run folder; the error names the failed check.
pub fn run(args: Args) -> anyhow::Result<PathBuf> {
    let (firmware, fw_name) = match args.firmware {
        FirmwareArg::Bios => (Firmware::Bios, "bios"),
        FirmwareArg::Uefi => (Firmware::Uefi, "uefi"),
        FirmwareArg::UefiSecureboot => (Firmware::UefiSecureBoot, "uefi-secureboot"),
    };
    let (media, media_name) = match args.media {
        MediaArg::Cdrom => (Media::Cdrom, "cdrom"),
        MediaArg::Usb => (Media::Usb, "usb"),
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let run_name = format!("{fw_name}-{media_name}-{unix}");
    let run_dir = args.out_dir.join(&run_name);

    let checks = firmware_checks(&ApplianceFacts::default(), firmware);
    let mut cfg = MachineConfig::new(&args.iso, &run_dir);
    cfg.firmware = firmware;
    cfg.media = media;
    cfg.memory_mib = args.memory;
    cfg.accel = match args.accel {
        AccelArg::Auto => Accel::Auto,
        AccelArg::Tcg => Accel::Tcg,
        AccelArg::Kvm => Accel::Kvm,
    };
    cfg.forwards = checks.iter().flat_map(|c| c.forwards()).collect();

    let mut machine = Machine::start(cfg).context("could not start the test VM")?;
    let accel = match machine.accel() {
        Accel::Kvm => "kvm",
        _ => "tcg",
    };
    // --timeout is wall time; the harness thinks in KVM time and stretches it.
    let boot_timeout = match args.timeout {
        Some(secs) => Duration::from_secs(secs).div_f64(machine.time_scale().factor),
        None => BOOT_TIMEOUT,
    };
    progress::status(
        "Booting",
        &format!(
            "{} ({fw_name}, {media_name}, {accel}; boot timeout {}s)",
            display_name(&args.iso),
            machine.time_scale().scale(boot_timeout).as_secs()
        ),
    );
    let outcome = run_checks(
        &mut machine,
        &checks,
        boot_timeout,
        |check, result| match result {
            Ok(seen) => progress::status("Passed", &format!("{} ({seen})", check.name())),
            Err(_) => progress::status("Failed", check.name()),
        },
    );
    match outcome {
        Ok(()) => {
            // A live image keeps nothing worth a clean power-off; stopping at once saves a
            // TCG shutdown's 10-20 s per run.
            machine.kill();
            progress::status(
                "Finished",
                &format!("{run_name}: all {} checks passed", checks.len()),
            );
            Ok(run_dir)
        }
        Err(failure) => {
            let screen = run_dir.join("screen.png");
            match machine.screendump(&screen) {
                Ok(()) => progress::status("Saved", &screen.display().to_string()),
                Err(e) => progress::status("Skipped", &format!("screendump: {e}")),
            }
            progress::status("Saved", &machine.serial_log().display().to_string());
            machine.kill();
            Err(anyhow::Error::new(failure).context(format!("boot test {run_name} failed")))
        }
    }
}

fn display_name(iso: &Path) -> String {
    iso.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| iso.display().to_string())
}
