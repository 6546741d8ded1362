//! Stage keys change exactly where their inputs change: an overlay edit rebuilds only the
//! overlay layer and the ISO; a package list edit rebuilds the base and everything after it.

use std::path::PathBuf;

use kentongan_image::{plan, HostFacts, Recipe, StageKeys};

/// A throwaway project: one recipe and the test overlays, laid out like the real repository.
struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().to_owned();
        let status = std::process::Command::new("cp")
            .args(["-a", "tests/recipes/overlays"])
            .arg(root.join("overlays"))
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success());
        std::fs::create_dir(root.join("image-recipes")).unwrap_or_else(|e| panic!("{e}"));
        let recipe = std::fs::read_to_string("tests/recipes/ok/overlays-and-vars.toml")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("image-recipes/r.toml"), recipe).unwrap_or_else(|e| panic!("{e}"));
        Project { _dir: dir, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn keys(&self) -> StageKeys {
        let recipe =
            Recipe::load(&self.path("image-recipes/r.toml")).unwrap_or_else(|e| panic!("{e}"));
        let facts = HostFacts {
            mmdebstrap_version: "mmdebstrap 1.3.5".into(),
            mksquashfs_version: "mksquashfs version 4.5.1".into(),
            grub_version: "grub-mkimage (GRUB) 2.06".into(),
            xorriso_version: "xorriso 1.5.4".into(),
            dpkg_version: "dpkg-deb 1.21.23".into(),
            rustc_version: "rustc 1.95.0".into(),
            apt_sources: vec!["deb http://deb.debian.org/debian bookworm main".into()],
            workspace_hash: "0".repeat(64),
        };
        plan(&recipe, &facts, 1_767_225_600).unwrap_or_else(|e| panic!("{e}"))
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let path = self.path(rel);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains(from), "{rel} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Which stages' keys differ between two plans, by name.
fn changed(a: &StageKeys, b: &StageKeys) -> Vec<&'static str> {
    kentongan_image::Stage::ALL
        .iter()
        .filter(|s| a.get(**s) != b.get(**s))
        .map(|s| s.name())
        .collect()
}

#[test]
fn keys_are_stable_for_the_same_inputs() {
    let p = Project::new();
    assert_eq!(p.keys(), p.keys());
}

#[test]
fn an_overlay_file_change_rebuilds_only_the_overlay_layer_and_iso() {
    let p = Project::new();
    let before = p.keys();
    p.edit("overlays/good/etc/plain.txt", "plain file", "changed file");
    assert_eq!(
        changed(&before, &p.keys()),
        ["overlays", "overlay-layer", "iso"]
    );
}

#[test]
fn a_template_variable_change_rebuilds_only_the_overlay_layer_and_iso() {
    let p = Project::new();
    let before = p.keys();
    p.edit(
        "image-recipes/r.toml",
        "hostname = \"pbx\"",
        "hostname = \"pbx2\"",
    );
    assert_eq!(
        changed(&before, &p.keys()),
        ["overlays", "overlay-layer", "iso"]
    );
}

#[test]
fn an_overlay_file_mode_change_counts() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    let before = p.keys();
    let file = p.path("overlays/good/etc/plain.txt");
    // git keeps only 644 and 755, so flip whichever mode the checkout gave the file.
    let mode = std::fs::metadata(&file)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{e}"));
    let flipped = if mode == 0o600 { 0o644 } else { 0o600 };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(flipped))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        changed(&before, &p.keys()),
        ["overlays", "overlay-layer", "iso"]
    );
}

#[test]
fn a_package_list_change_invalidates_the_base() {
    let p = Project::new();
    let before = p.keys();
    p.edit(
        "image-recipes/r.toml",
        "\"nftables\"",
        "\"nftables\", \"iproute2\"",
    );
    assert_eq!(
        changed(&before, &p.keys()),
        ["base-rootfs", "base-layer", "overlay-layer", "iso"]
    );
}

#[test]
fn package_order_does_not_matter() {
    let p = Project::new();
    let before = p.keys();
    p.edit(
        "image-recipes/r.toml",
        "\"systemd-sysv\", \"live-boot\"",
        "\"live-boot\", \"systemd-sysv\"",
    );
    assert!(changed(&before, &p.keys()).is_empty());
}

#[test]
fn a_kernel_command_line_change_rebuilds_only_the_iso() {
    let p = Project::new();
    let before = p.keys();
    p.edit("image-recipes/r.toml", "boot=live quiet", "boot=live");
    assert_eq!(changed(&before, &p.keys()), ["iso"]);
}

#[test]
fn a_new_file_in_an_overlay_counts() {
    let p = Project::new();
    let before = p.keys();
    std::fs::write(p.path("overlays/later/etc/new.conf"), "x\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        changed(&before, &p.keys()),
        ["overlays", "overlay-layer", "iso"]
    );
}
