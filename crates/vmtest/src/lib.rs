//! A QEMU boot-test harness for Kentongan images, in the spirit of the NixOS test driver.
//!
//! This crate owns starting a guest from an ISO or an installed disk ([`Machine::start`] with a
//! [`MachineConfig`]: CD-ROM or USB stick, SeaBIOS or OVMF, extra virtio or USB disks, loopback
//! port forwards), following its boot ([`Machine::wait_for_serial`],
//! [`Machine::wait_for_unit`], [`Machine::wait_for_open_port`]), running commands in it through
//! the test-only guest agent ([`Machine::succeed`], [`Machine::execute`]),
//! [`Machine::screendump`], the console's keyboard and text ([`Machine::press`],
//! [`Machine::type_text`], [`Machine::screen`]), [`Machine::shutdown`] and waiting for a guest that powers itself off
//! ([`Machine::wait_for_shutdown`]); and the appliance's boot checks ([`checks::Check`]).
//!
//! It deliberately does not build images (that is `kentongan-image`), draw progress, or decide
//! what a failure means for CI: it returns a [`VmError`] naming the failed step and the serial
//! log. Only binaries and tests use it.
//!
//! Guests run under TCG unless a probe boot of the ISO's own kernel proves KVM works
//! ([`Accel::Auto`], [`kvm`]); a guest that then stalls under KVM is restarted under TCG. Every
//! timeout is written as KVM time and stretched by the machine's [`TimeScale`].
//!
//! ```no_run
//! use std::time::Duration;
//! use kentongan_vmtest::{Firmware, Machine, MachineConfig, Media};
//! let mut cfg = MachineConfig::new("out/kentongan-0.1.0-amd64.iso", "out/boot-test/example");
//! cfg.firmware = Firmware::Uefi;
//! cfg.media = Media::Usb;
//! let mut m = Machine::start(cfg)?;
//! m.wait_for_unit("multi-user.target", Duration::from_secs(60))?;
//! assert_eq!(m.succeed("hostname")?.trim(), "kentongan");
//! m.shutdown()?;
//! # Ok::<(), kentongan_vmtest::VmError>(())
//! ```

mod agent;
pub mod checks;
mod config;
pub mod console;
mod error;
pub mod kvm;
mod machine;
mod qemu;
mod qmp;
pub mod sip_probe;

pub use config::{
    Accel, Disk, DiskBus, DiskFormat, Firmware, Forward, MachineConfig, Media, Proto, TimeScale,
    DEFAULT_FATAL_SERIAL, TCG_FACTOR,
};
pub use console::{Key, Screen};
pub use error::VmError;
pub use machine::{clean_serial, CommandOutput, Machine, BOOT_TIMEOUT, COMMAND_TIMEOUT};
pub use qemu::{OVMF_CODE, OVMF_VARS, QEMU};
