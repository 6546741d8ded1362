//! Shared helpers for the end-to-end tests in `tests/`: where the built artifacts are, and
//! running host tools with readable failures.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (where `Cargo.toml`, `image-recipes/` and `overlays/` live).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The output folder of the build under test (`KENTONGAN_OUT`, default `out/`).
pub fn out_dir() -> PathBuf {
    std::env::var_os("KENTONGAN_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("out"))
}

/// The appliance ISO under test (`KENTONGAN_ISO`). Fails with the command that makes it.
pub fn appliance_iso() -> PathBuf {
    let iso = std::env::var_os("KENTONGAN_ISO")
        .map(PathBuf::from)
        .unwrap_or_else(|| out_dir().join("kentongan-0.1.0-amd64.iso"));
    assert!(
        iso.is_file(),
        "{} does not exist: build it first with scripts/build (scripts/test does)",
        iso.display()
    );
    iso
}

/// Runs a command to success and returns its stdout; a failure shows its stderr.
pub fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{shown}: could not start: {e}"));
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Reads a file from a squashfs image.
pub fn squashfs_cat(image: &Path, path: &str) -> String {
    run(Command::new("unsquashfs").arg("-cat").arg(image).arg(path))
}

/// The `kentongan` binary, built once per test process (debug profile, the workspace's target).
pub fn kentongan_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            run(Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "kentongan"])
                .current_dir(project_root()));
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| project_root().join("target"));
            target.join("debug/kentongan")
        })
        .clone()
}
