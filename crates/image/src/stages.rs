//! The stages of an image build and their content keys.
//!
//! Each stage's key hashes exactly its inputs, including the keys of the stages it consumes, so
//! a change invalidates precisely the stages downstream of it:
//!
//! ```text
//! base-rootfs ──► base-layer ─────────────────┐
//!      │                                      ├──► iso
//!      └──────────► overlay-layer ────────────┘
//! binaries ───────────┘    ▲
//! overlays ────────────────┘
//! ```

use std::fmt;
use std::path::Path;

use walkdir::WalkDir;

use crate::hash::{KeyBuilder, StageKey};
use crate::recipe::Recipe;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Debian root filesystem from mmdebstrap.
    BaseRootfs,
    /// Workspace binaries built `--release` and packaged as `.deb`s.
    Binaries,
    /// Overlay folders rendered with the recipe's vars.
    Overlays,
    /// The base root filesystem as a squashfs, plus the kernel and initrd.
    BaseLayer,
    /// The difference made by installing the `.deb`s and the overlays, as a squashfs.
    OverlayLayer,
    /// The bootable hybrid ISO.
    Iso,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::BaseRootfs,
        Stage::Binaries,
        Stage::Overlays,
        Stage::BaseLayer,
        Stage::OverlayLayer,
        Stage::Iso,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::BaseRootfs => "base-rootfs",
            Stage::Binaries => "binaries",
            Stage::Overlays => "overlays",
            Stage::BaseLayer => "base-layer",
            Stage::OverlayLayer => "overlay-layer",
            Stage::Iso => "iso",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Facts about the host that stage outputs depend on. Gathered once per build; tests make them
/// up, so key computation never runs a tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    pub mmdebstrap_version: String,
    pub mksquashfs_version: String,
    pub grub_version: String,
    pub xorriso_version: String,
    pub dpkg_version: String,
    pub rustc_version: String,
    /// apt source lines used for the base (resolved from the recipe's mirror).
    pub apt_sources: Vec<String>,
    /// sha256 of the workspace sources the binaries are built from (empty if none are shipped).
    pub workspace_hash: String,
}

/// The key of every stage for one recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageKeys {
    pub base_rootfs: StageKey,
    pub binaries: StageKey,
    pub overlays: StageKey,
    pub base_layer: StageKey,
    pub overlay_layer: StageKey,
    pub iso: StageKey,
}

impl StageKeys {
    pub fn get(&self, stage: Stage) -> &StageKey {
        match stage {
            Stage::BaseRootfs => &self.base_rootfs,
            Stage::Binaries => &self.binaries,
            Stage::Overlays => &self.overlays,
            Stage::BaseLayer => &self.base_layer,
            Stage::OverlayLayer => &self.overlay_layer,
            Stage::Iso => &self.iso,
        }
    }
}

/// The shell run inside the new root filesystem after mmdebstrap installed it. Part of the
/// base key: changing it must rebuild the base.
pub const BASE_CLEANUP_HOOK: &str = r#"set -e
root="$1"
# Host files mmdebstrap copies in, and files that differ on every build.
printf '' > "$root/etc/resolv.conf"
echo localhost > "$root/etc/hostname"
printf '' > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
rm -f "$root"/etc/passwd- "$root"/etc/group- "$root"/etc/shadow- "$root"/etc/gshadow-
rm -f "$root"/etc/subuid- "$root"/etc/subgid-
rm -f "$root"/var/lib/dpkg/*-old "$root"/var/cache/debconf/*-old
rm -f "$root"/var/cache/ldconfig/aux-cache "$root"/var/cache/apt/*.bin
rm -f "$root"/var/cache/apt/archives/*.deb
find "$root/var/lib/apt/lists" -type f -delete
# apt's partial/ folders: pinned by the builder after mmdebstrap's own cleanup (PINNED_DIRS).
find "$root/var/log" -type f -delete
rm -rf "$root"/var/cache/man/*
find "$root/usr" -name '*.pyc' -delete
find "$root/usr" -name __pycache__ -type d -empty -delete
"#;

/// The shell run before any package is installed when the recipe chooses initramfs modules or
/// compression: initramfs-tools reads `conf.d/` and runs `hooks/` when the kernel is installed,
/// so the first initrd is already the trimmed one.
pub fn initramfs_setup_hook(recipe: &Recipe) -> Option<String> {
    if recipe.initramfs_modules.is_empty() && recipe.initramfs_compress.is_none() {
        return None;
    }
    let mut conf = String::new();
    if !recipe.initramfs_modules.is_empty() {
        conf.push_str("MODULES=list\n");
    }
    if let Some(compress) = &recipe.initramfs_compress {
        conf.push_str(&format!("COMPRESS={compress}\n"));
    }
    let mut script = format!(
        "set -e\nmkdir -p \"$1/etc/initramfs-tools/conf.d\" \"$1/etc/initramfs-tools/hooks\"\nprintf '{}' > \"$1/etc/initramfs-tools/conf.d/kentongan.conf\"\n",
        conf.replace('\n', "\\n")
    );
    if !recipe.initramfs_modules.is_empty() {
        let hook = format!(
            "#!/bin/sh\n# Written by the Kentongan image builder: the modules a live boot needs.\n[ \"$1\" = prereqs ] && exit 0\n. /usr/share/initramfs-tools/hook-functions\nmanual_add_modules {}\n",
            recipe.initramfs_modules.join(" ")
        );
        script.push_str(&format!(
            "cat > \"$1/etc/initramfs-tools/hooks/kentongan-modules\" <<'KENTONGAN_EOF'\n{hook}KENTONGAN_EOF\nchmod 755 \"$1/etc/initramfs-tools/hooks/kentongan-modules\"\n"
        ));
    }
    Some(script)
}

/// Where the image keeps the prebuilt initrd of an installed system (`initrd.img-VERSION`) and
/// the kernel modules in it (`modules-VERSION`, one name per line, `-` written `_`). The
/// installer (`kentongan-setup`, its `install::initrd`) reads the same path.
pub const INSTALLED_INITRD_DIR: &str = "usr/lib/kentongan/installed-initrd";

/// The shell run after every package is installed, when the recipe names
/// `installed_initramfs_modules`: builds the initrd an installed system boots with, so the
/// installer need not run update-initramfs (most of an install's time on a small server).
///
/// It is live-boot's initrd without live-boot: live-boot-initramfs-tools' hooks and its
/// `scripts/live` are hidden in a private mount namespace while mkinitramfs runs, because the
/// installer purges that package and the installed system must not depend on it.
pub fn installed_initrd_hook(recipe: &Recipe) -> Option<String> {
    if recipe.installed_initramfs_modules.is_empty() {
        return None;
    }
    let mut conf = String::from("MODULES=list\n");
    if let Some(compress) = &recipe.initramfs_compress {
        conf.push_str(&format!("COMPRESS={compress}\n"));
    }
    let modules: Vec<&str> = recipe
        .initramfs_modules
        .iter()
        .chain(&recipe.installed_initramfs_modules)
        .map(String::as_str)
        .collect();
    Some(format!(
        r#"set -e
root="$1"
conf=/tmp/kentongan-installed-initramfs
out=/{INSTALLED_INITRD_DIR}
rm -rf "$root$conf"
mkdir -p "$root$conf/conf.d" "$root$conf/hooks" "$root$conf/scripts" "$root$conf/share-scripts" "$root$out"
cp "$root/etc/initramfs-tools/initramfs.conf" "$root$conf/"
printf '{conf}' > "$root$conf/conf.d/kentongan.conf"
printf '%s\n' {modules} > "$root$conf/modules"
cp -a "$root/usr/share/initramfs-tools/scripts/." "$root$conf/share-scripts/"
rm -f "$root$conf/share-scripts/live"
for v in $(ls "$root/usr/lib/modules"); do
  unshare --mount --propagation private sh -ec '
    s="$1/usr/share/initramfs-tools"
    for f in hooks/live hooks/kms; do
      if [ -e "$s/$f" ]; then mount --bind /dev/null "$s/$f"; fi
    done
    mount --bind "$1$2/share-scripts" "$s/scripts"
    chroot "$1" mkinitramfs -d "$2" -o "$3/initrd.img-$4" "$4"' sh "$root" "$conf" "$out" "$v"
  chroot "$root" lsinitramfs "$out/initrd.img-$v" | sed -n 's|.*/\([^/]*\)\.ko$|\1|p' | tr - _ | LC_ALL=C sort -u > "$root$out/modules-$v"
  if ! grep -qx ext4 "$root$out/modules-$v"; then
    echo "the installed initrd for $v has no ext4 module; see mkinitramfs above" >&2
    exit 1
  fi
done
rm -rf "$root$conf"
"#,
        modules = modules.join(" ")
    ))
}

/// Folders whose owner depends on which apt step ran first in the chroot (`_apt` in one build,
/// `root` in the next), set by the builder once mmdebstrap is done: `(path, mode)`, owned by
/// root, as a fresh apt makes them.
pub const PINNED_DIRS: [(&str, u32); 2] = [
    ("var/cache/apt/archives/partial", 0o700),
    ("var/lib/apt/lists/partial", 0o700),
];

/// mmdebstrap's fixed options; part of the base key.
pub const MMDEBSTRAP_OPTIONS: &[&str] = &[
    "--mode=root",
    "--variant=minbase",
    "--format=directory",
    "--aptopt=Acquire::Languages \"none\"",
    "--aptopt=APT::Install-Recommends \"false\"",
    // Lays out merged /usr itself, so the usrmerge package (and the whole of perl it pulls
    // in) stays out of the image.
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata",
];

/// Paths dpkg leaves out of the base, to keep the image small.
pub const DPKG_EXCLUDES: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
];

pub fn compute_keys(
    recipe: &Recipe,
    facts: &HostFacts,
    overlays: StageKey,
    epoch: i64,
) -> StageKeys {
    let epoch = epoch.to_string();

    let mut k = KeyBuilder::new("base-rootfs");
    k.field("suite", &recipe.suite)
        .field("sources", facts.apt_sources.join("\n"))
        .field("packages", recipe.packages.join("\n"))
        .field("mmdebstrap", &facts.mmdebstrap_version)
        .field("hook", BASE_CLEANUP_HOOK)
        .field("pinned", format!("{PINNED_DIRS:?}"))
        .field("options", MMDEBSTRAP_OPTIONS.join("\n"))
        .field("dpkg-excludes", DPKG_EXCLUDES.join("\n"))
        .field("path-exclude", recipe.path_exclude.join("\n"))
        .field(
            "initramfs",
            initramfs_setup_hook(recipe).unwrap_or_default(),
        )
        .field(
            "installed-initrd",
            installed_initrd_hook(recipe).unwrap_or_default(),
        )
        .field("epoch", &epoch);
    let base_rootfs = k.finish();

    let mut k = KeyBuilder::new("binaries");
    for b in &recipe.binaries {
        k.field("package", &b.package)
            .field("bin", &b.bin)
            .field("path", &b.path)
            .field("depends", b.depends.join(","));
    }
    k.field("version", &recipe.version)
        .field("workspace", &facts.workspace_hash)
        .field("rustc", &facts.rustc_version)
        .field("dpkg", &facts.dpkg_version)
        .field("epoch", &epoch);
    let binaries = k.finish();

    let mut k = KeyBuilder::new("base-layer");
    k.field("base-rootfs", base_rootfs.as_str())
        .field("exclude", "boot/initrd.img-*")
        .field("efi", format!("{:?}", crate::iso::SIGNED_EFI))
        .field("compression", format!("{:?}", recipe.compression))
        .field("mksquashfs", &facts.mksquashfs_version)
        .field("epoch", &epoch);
    let base_layer = k.finish();

    let mut k = KeyBuilder::new("overlay-layer");
    k.field("base-rootfs", base_rootfs.as_str())
        .field("binaries", binaries.as_str())
        .field("overlays", overlays.as_str())
        .field("compression", format!("{:?}", recipe.compression))
        .field("mksquashfs", &facts.mksquashfs_version)
        .field("epoch", &epoch);
    let overlay_layer = k.finish();

    let mut k = KeyBuilder::new("iso");
    k.field("base-layer", base_layer.as_str())
        .field("overlay-layer", overlay_layer.as_str())
        .field("grub.cfg", crate::iso::grub_cfg(recipe))
        .field("layout", crate::iso::layout_key())
        .field("name", &recipe.name)
        .field("version", &recipe.version)
        .field("grub", &facts.grub_version)
        .field("xorriso", &facts.xorriso_version)
        .field("epoch", &epoch);
    let iso = k.finish();

    StageKeys {
        base_rootfs,
        binaries,
        overlays,
        base_layer,
        overlay_layer,
        iso,
    }
}

/// Hash of the Cargo workspace sources: the root manifest and lock file and everything under
/// `crates/`, minus build output and fuzzing state.
pub fn workspace_hash(root: &Path) -> std::io::Result<String> {
    let mut k = KeyBuilder::new("workspace");
    for file in ["Cargo.toml", "Cargo.lock"] {
        let path = root.join(file);
        if path.is_file() {
            k.field(file, std::fs::read(&path)?);
        }
    }
    let crates = root.join("crates");
    let walker = WalkDir::new(&crates)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            !(e.file_type().is_dir()
                && matches!(
                    e.file_name().to_str(),
                    Some("target" | "corpus" | "artifacts" | "coverage" | ".git")
                ))
        });
    for entry in walker {
        let entry = entry.map_err(std::io::Error::from)?;
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            k.field("path", rel.as_os_str().as_encoded_bytes());
            k.field("bytes", std::fs::read(entry.path())?);
        }
    }
    Ok(k.finish().to_string())
}

/// apt source lines for `suite`, taken from the host's apt configuration: the Debian archive
/// (with `-updates`) and the security archive, if the host uses them.
pub fn host_apt_sources(suite: &str) -> Vec<String> {
    let mut entries: Vec<(String, Vec<String>)> = Vec::new();
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(parse_deb822(&text)),
            Some("list") => entries.extend(parse_one_line(&text)),
            _ if file.ends_with("sources.list") => entries.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    sources_for_suite(&entries, suite)
}

/// (URI, suites) of each `deb` entry in deb822 format.
fn parse_deb822(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find(|l| {
                    l.to_ascii_lowercase()
                        .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                })
                .map(|l| {
                    l[name.len() + 1..]
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        if !field("Types").iter().any(|t| t == "deb") {
            continue;
        }
        if field("Enabled").iter().any(|v| v == "no") {
            continue;
        }
        for uri in field("URIs") {
            out.push((uri, field("Suites")));
        }
    }
    out
}

fn parse_one_line(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("deb "))
        .filter_map(|l| {
            let mut words = l[4..].split_whitespace().filter(|w| !w.starts_with('['));
            // Options in brackets may contain spaces only inside the brackets' own words.
            let uri = words.find(|w| w.contains("://"))?;
            let suite = words.next()?;
            Some((uri.to_owned(), vec![suite.to_owned()]))
        })
        .collect()
}

fn sources_for_suite(entries: &[(String, Vec<String>)], suite: &str) -> Vec<String> {
    let is_debian = |uri: &str| uri.trim_end_matches('/').ends_with("/debian");
    let is_security = |uri: &str| uri.trim_end_matches('/').ends_with("/debian-security");
    let mut lines = Vec::new();
    if let Some((uri, suites)) = entries.iter().find(|(u, _)| is_debian(u)) {
        let uri = uri.trim_end_matches('/');
        lines.push(format!("deb {uri} {suite} main"));
        if suites.iter().any(|s| s.ends_with("-updates")) {
            lines.push(format!("deb {uri} {suite}-updates main"));
        }
    }
    if let Some((uri, _)) = entries.iter().find(|(u, _)| is_security(u)) {
        let uri = uri.trim_end_matches('/');
        lines.push(format!("deb {uri} {suite}-security main"));
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_installed_initrd_hook_is_valid_shell_naming_every_module() {
        let mut recipe = Recipe::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../image-recipes/appliance.toml"
        )))
        .unwrap();
        let hook = installed_initrd_hook(&recipe).unwrap();
        for m in recipe
            .initramfs_modules
            .iter()
            .chain(&recipe.installed_initramfs_modules)
        {
            assert!(hook.contains(&format!(" {m}")), "{m} missing from the hook");
        }
        assert!(!hook.chars().any(|c| c.is_control() && c != '\n'));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &hook])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        recipe.installed_initramfs_modules.clear();
        assert!(installed_initrd_hook(&recipe).is_none());
    }

    #[test]
    fn deb822_host_sources_become_lines_for_the_suite() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n";
        let entries = parse_deb822(text);
        assert_eq!(
            sources_for_suite(&entries, "bookworm"),
            vec![
                "deb http://deb.debian.org/debian bookworm main",
                "deb http://deb.debian.org/debian bookworm-updates main",
                "deb http://deb.debian.org/debian-security bookworm-security main",
            ]
        );
    }

    #[test]
    fn one_line_sources_skip_options_and_other_archives() {
        let text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] https://example.org/node stable main\ndeb http://mirror.example/debian/ bookworm main contrib\n";
        let entries = parse_one_line(text);
        assert_eq!(
            sources_for_suite(&entries, "trixie"),
            vec!["deb http://mirror.example/debian trixie main"]
        );
    }
}
