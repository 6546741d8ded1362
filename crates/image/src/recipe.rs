//! The recipe: what an image is made of, as the operator writes it (`image-recipes/*.toml`), and
//! the checked form every later stage relies on.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A recipe exactly as written. Unknown keys are rejected so a typo is an error, not a silent
/// default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    name: String,
    version: String,
    suite: String,
    mirror: Option<String>,
    packages: Vec<String>,
    #[serde(default)]
    overlays: Vec<String>,
    kernel_cmdline: String,
    source_date_epoch: Option<i64>,
    #[serde(default)]
    compression: Compression,
    #[serde(default)]
    path_exclude: Vec<String>,
    #[serde(default)]
    initramfs_modules: Vec<String>,
    #[serde(default)]
    installed_initramfs_modules: Vec<String>,
    initramfs_compress: Option<String>,
    #[serde(default)]
    vars: toml::Table,
    #[serde(default)]
    binaries: Vec<BinaryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryFile {
    package: String,
    bin: Option<String>,
    path: String,
    #[serde(default)]
    depends: Vec<String>,
}

/// How squashfs layers are compressed.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Smallest image; slower to build and to boot under emulation.
    Xz,
    /// Fast to decompress, a little larger.
    #[default]
    Zstd,
}

impl Compression {
    pub fn mksquashfs_args(self) -> &'static [&'static str] {
        match self {
            Compression::Xz => &["-comp", "xz", "-Xbcj", "x86"],
            Compression::Zstd => &["-comp", "zstd", "-Xcompression-level", "15"],
        }
    }
}

/// Debian suites the builder knows how to bootstrap.
const SUITES: &[&str] = &["bookworm", "trixie", "stable", "testing"];

/// A checked recipe. Every field holds a value the build can use as is.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub path: PathBuf,
    /// The folder holding `overlays/`, `image-recipes/` and, for recipes that ship binaries, the
    /// Cargo workspace.
    pub project_root: PathBuf,
    pub name: String,
    pub version: String,
    pub suite: String,
    pub mirror: Mirror,
    /// Sorted and free of duplicates, so the base stage key does not depend on their order.
    pub packages: Vec<String>,
    pub overlays: Vec<Overlay>,
    pub kernel_cmdline: String,
    pub source_date_epoch: Option<i64>,
    pub compression: Compression,
    /// dpkg `path-exclude` globs: files packages ship that the image leaves out.
    pub path_exclude: Vec<String>,
    /// When not empty, the initrd holds only these kernel modules (and what they need) instead
    /// of initramfs-tools' "most": enough to find the live medium, much smaller and faster.
    pub initramfs_modules: Vec<String>,
    /// When not empty, the image also carries the initrd of an *installed* system, built with
    /// `initramfs_modules` plus these (its root filesystem, the common disk controllers): the
    /// installer then copies it instead of running update-initramfs on the target machine.
    pub installed_initramfs_modules: Vec<String>,
    /// initramfs-tools `COMPRESS`, when the recipe chooses one.
    pub initramfs_compress: Option<String>,
    pub vars: toml::Table,
    pub binaries: Vec<Binary>,
    /// sha256 of the recipe file's bytes.
    pub sha256: String,
}

/// Where Debian packages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// The host's own apt sources (the only registry that may be reachable).
    Host,
    Url(String),
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mirror::Host => f.write_str("the host's apt sources"),
            Mirror::Url(url) => f.write_str(url),
        }
    }
}

/// One folder under `overlays/`, mirroring the target filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub name: String,
    pub dir: PathBuf,
}

/// A workspace binary packaged as a `.deb` and installed into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// The Cargo package that builds it; also the Debian package name.
    pub package: String,
    pub bin: String,
    /// Absolute path inside the image.
    pub path: String,
    /// Extra Debian dependencies besides libc6.
    pub depends: Vec<String>,
}

/// A recipe that cannot be used, with what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read recipe {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: `{key}` {problem}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
        hint: String,
    },
}

impl RecipeError {
    pub fn hint(&self) -> Option<&str> {
        match self {
            RecipeError::Read { .. } => Some("check the path; recipes live in image-recipes/"),
            RecipeError::Syntax { .. } => Some("fix the TOML at the line shown"),
            RecipeError::Invalid { hint, .. } => Some(hint),
        }
    }
}

impl Recipe {
    /// Reads and checks a recipe. Overlay folders and workspace binaries are looked up relative
    /// to the folder above the recipe's own (the project root).
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let bytes = std::fs::read(path).map_err(|source| RecipeError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes.clone()).map_err(|_| RecipeError::Syntax {
            path: path.to_owned(),
            message: "the recipe is not UTF-8 text".into(),
        })?;
        let file: RecipeFile = toml::from_str(&text).map_err(|e| RecipeError::Syntax {
            path: path.to_owned(),
            message: one_line_toml_error(&e, &text),
        })?;
        let project_root = project_root_of(path);
        check(path, &project_root, file, crate::hash::sha256_hex(&bytes))
    }

    /// The ISO's file name, e.g. `kentongan-0.1.0-amd64.iso`.
    pub fn iso_file_name(&self) -> String {
        format!("{}-{}-amd64.iso", self.name, self.version)
    }
}

fn project_root_of(recipe: &Path) -> PathBuf {
    let dir = recipe.parent().unwrap_or(Path::new(""));
    match dir.parent() {
        Some(parent) if !dir.as_os_str().is_empty() => {
            if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent.to_owned()
            }
        }
        _ => PathBuf::from(".."),
    }
}

/// toml's message spans several lines with a source excerpt; keep the position and the reason.
fn one_line_toml_error(e: &toml::de::Error, text: &str) -> String {
    let reason = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {reason}")
        }
        None => reason,
    }
}

fn check(
    path: &Path,
    project_root: &Path,
    file: RecipeFile,
    sha256: String,
) -> Result<Recipe, RecipeError> {
    let invalid = |key: &str, problem: String, hint: &str| RecipeError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        problem,
        hint: hint.to_owned(),
    };

    if !is_slug(&file.name) {
        return Err(invalid(
            "name",
            format!("is `{}`, which cannot be part of a file name", file.name),
            "use lowercase letters, digits and dashes, e.g. name = \"kentongan\"",
        ));
    }
    if !is_debian_version(&file.version) {
        return Err(invalid(
            "version",
            format!("is `{}`, which is not a package version", file.version),
            "start with a digit and use only letters, digits and . + ~ -, e.g. version = \"0.1.0\"",
        ));
    }
    if !SUITES.contains(&file.suite.as_str()) {
        return Err(invalid(
            "suite",
            format!(
                "is `{}`, which is not a Debian suite this builder knows",
                file.suite
            ),
            &format!("use one of: {}", SUITES.join(", ")),
        ));
    }
    let mirror = match file.mirror {
        None => Mirror::Host,
        Some(url) if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("file:/") => {
            Mirror::Url(url.trim_end_matches('/').to_owned())
        }
        Some(url) => {
            return Err(invalid(
                "mirror",
                format!("is `{url}`, which is not an http(s) or file URL"),
                "write e.g. mirror = \"http://deb.debian.org/debian\", or leave it out to use the host's apt sources",
            ))
        }
    };

    let mut packages = BTreeSet::new();
    for (i, package) in file.packages.iter().enumerate() {
        let key = format!("packages[{i}]");
        if !is_package_spec(package) {
            return Err(invalid(
                &key,
                format!("is `{package}`, which is not a Debian package name"),
                "package names use lowercase letters, digits and + - . (optionally `name=version`)",
            ));
        }
        let name = package_name(package);
        if packages.iter().any(|p: &String| package_name(p) == name) {
            return Err(invalid(
                &key,
                format!("lists `{name}` a second time"),
                "remove the duplicate entry",
            ));
        }
        packages.insert(package.clone());
    }
    for (required, why) in [
        (
            "live-boot",
            "it finds and mounts the squashfs layers at boot",
        ),
        ("systemd-sysv", "it is the init system"),
    ] {
        if !packages.iter().any(|p| package_name(p) == required) {
            return Err(invalid(
                "packages",
                format!("does not include `{required}`, which a live image needs: {why}"),
                &format!("add \"{required}\" to packages"),
            ));
        }
    }
    if !packages
        .iter()
        .any(|p| package_name(p).starts_with("linux-image-"))
    {
        return Err(invalid(
            "packages",
            "does not include a kernel".into(),
            "add \"linux-image-amd64\" to packages",
        ));
    }

    let mut overlays: Vec<Overlay> = Vec::new();
    for (i, name) in file.overlays.iter().enumerate() {
        let key = format!("overlays[{i}]");
        if !is_slug(name) {
            return Err(invalid(
                &key,
                format!("is `{name}`, which is not a folder name under overlays/"),
                "name a folder directly under overlays/, e.g. \"base\"",
            ));
        }
        if overlays.iter().any(|o| &o.name == name) {
            return Err(invalid(
                &key,
                format!("lists `{name}` a second time"),
                "apply each overlay once",
            ));
        }
        let dir = project_root.join("overlays").join(name);
        if !dir.is_dir() {
            return Err(invalid(
                &key,
                format!("names `{name}`, but {} is not a folder", dir.display()),
                &format!("create {} or remove it from overlays", dir.display()),
            ));
        }
        overlays.push(Overlay {
            name: name.clone(),
            dir,
        });
    }

    let kernel_cmdline = file.kernel_cmdline.trim().to_owned();
    let words: Vec<&str> = kernel_cmdline.split_whitespace().collect();
    if !words.contains(&"boot=live") {
        return Err(invalid(
            "kernel_cmdline",
            "does not contain `boot=live`, so live-boot would not mount the image".into(),
            "start it with \"boot=live components\"",
        ));
    }
    if let Some(console) = words.iter().find(|w| w.starts_with("console=")) {
        return Err(invalid(
            "kernel_cmdline",
            format!("sets `{console}`, but the boot menu chooses the consoles"),
            "remove console=…; the menu has a screen entry and a serial-console (ttyS0) entry",
        ));
    }
    if kernel_cmdline.contains(['"', '\'', '\n', '$', ';', '{', '}']) {
        return Err(invalid(
            "kernel_cmdline",
            "contains characters GRUB would interpret (quotes, $, ; or braces)".into(),
            "use plain words and key=value options",
        ));
    }

    if let Some(epoch) = file.source_date_epoch {
        if epoch <= 0 {
            return Err(invalid(
                "source_date_epoch",
                format!("is {epoch}; it must be a positive Unix time"),
                "use e.g. the commit time: git log -1 --format=%ct",
            ));
        }
    }

    for (i, glob) in file.path_exclude.iter().enumerate() {
        if !glob.starts_with('/') || glob.contains(char::is_whitespace) || glob.contains("..") {
            return Err(invalid(
                &format!("path_exclude[{i}]"),
                format!("is `{glob}`, which is not an absolute path glob"),
                "write e.g. \"/lib/modules/*/kernel/sound/*\"",
            ));
        }
    }
    let modules = file
        .initramfs_modules
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("initramfs_modules[{i}]"), m))
        .chain(
            file.installed_initramfs_modules
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("installed_initramfs_modules[{i}]"), m)),
        );
    for (key, module) in modules {
        let ok = !module.is_empty()
            && module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(invalid(
                &key,
                format!("is `{module}`, which is not a kernel module name"),
                "write module names as modprobe takes them, e.g. \"virtio_blk\"",
            ));
        }
    }
    if let Some(compress) = &file.initramfs_compress {
        let tool_package = match compress.as_str() {
            "gzip" => None,
            "zstd" => Some("zstd"),
            "xz" => Some("xz-utils"),
            "lz4" => Some("lz4"),
            other => {
                return Err(invalid(
                    "initramfs_compress",
                    format!("is `{other}`, which initramfs-tools cannot use"),
                    "use one of: gzip, zstd, xz, lz4",
                ))
            }
        };
        if let Some(needed) = tool_package {
            if !packages.iter().any(|p| package_name(p) == needed) {
                return Err(invalid(
                    "initramfs_compress",
                    format!("is `{compress}`, but `{needed}` is not in packages"),
                    &format!("add \"{needed}\" to packages, or use gzip"),
                ));
            }
        }
    }
    if file.vars.contains_key("recipe") {
        return Err(invalid(
            "vars.recipe",
            "is reserved: templates see the recipe's name, version and suite under `recipe`".into(),
            "rename the variable",
        ));
    }

    let members = if file.binaries.is_empty() {
        Vec::new()
    } else {
        workspace_binaries(project_root)
    };
    let mut binaries: Vec<Binary> = Vec::new();
    for (i, b) in file.binaries.into_iter().enumerate() {
        let bin = b.bin.unwrap_or_else(|| b.package.clone());
        if !members
            .iter()
            .any(|(p, bins)| p == &b.package && bins.contains(&bin))
        {
            return Err(invalid(
                &format!("binaries[{i}].package"),
                format!(
                    "names `{}` (binary `{bin}`), which no crate under crates/ builds",
                    b.package
                ),
                "name a workspace package and one of its [[bin]] targets",
            ));
        }
        if !b.path.starts_with('/') || b.path.ends_with('/') || b.path.contains("..") {
            return Err(invalid(
                &format!("binaries[{i}].path"),
                format!("is `{}`, which is not an absolute file path", b.path),
                "write e.g. path = \"/usr/sbin/kentongan-pbx\"",
            ));
        }
        if binaries.iter().any(|o| o.path == b.path) {
            return Err(invalid(
                &format!("binaries[{i}].path"),
                format!("installs a second file at `{}`", b.path),
                "give each binary its own path",
            ));
        }
        if let Some(dep) = b.depends.iter().find(|d| !is_package_spec(d)) {
            return Err(invalid(
                &format!("binaries[{i}].depends"),
                format!("has `{dep}`, which is not a Debian package name"),
                "list Debian package names, e.g. [\"nftables\"]",
            ));
        }
        binaries.push(Binary {
            package: b.package,
            bin,
            path: b.path,
            depends: b.depends,
        });
    }

    Ok(Recipe {
        path: path.to_owned(),
        project_root: project_root.to_owned(),
        name: file.name,
        version: file.version,
        suite: file.suite,
        mirror,
        packages: packages.into_iter().collect(),
        overlays,
        kernel_cmdline,
        source_date_epoch: file.source_date_epoch,
        compression: file.compression,
        path_exclude: file.path_exclude,
        initramfs_modules: file.initramfs_modules,
        installed_initramfs_modules: file.installed_initramfs_modules,
        initramfs_compress: file.initramfs_compress,
        vars: file.vars,
        binaries,
        sha256,
    })
}

/// The (package, binaries) pairs of the Cargo workspace at `root`, read from `crates/*/Cargo.toml`.
fn workspace_binaries(root: &Path) -> Vec<(String, Vec<String>)> {
    #[derive(Deserialize)]
    struct Manifest {
        package: Option<Package>,
        #[serde(default)]
        bin: Vec<Bin>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
    }
    #[derive(Deserialize)]
    struct Bin {
        name: String,
    }
    let Ok(dirs) = std::fs::read_dir(root.join("crates")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for dir in dirs.flatten() {
        let Ok(text) = std::fs::read_to_string(dir.path().join("Cargo.toml")) else {
            continue;
        };
        let Ok(Manifest {
            package: Some(package),
            bin,
        }) = toml::from_str::<Manifest>(&text)
        else {
            continue;
        };
        let mut bins: Vec<String> = bin.into_iter().map(|b| b.name).collect();
        if dir.path().join("src/main.rs").is_file() {
            bins.push(package.name.clone());
        }
        found.push((package.name, bins));
    }
    found
}

fn is_slug(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.len() <= 64
}

impl Recipe {
    /// The same recipe with another package version (checked as the `version` key is).
    pub fn with_version(mut self, version: &str) -> Result<Recipe, RecipeError> {
        if !is_debian_version(version) {
            return Err(RecipeError::Invalid {
                path: self.path.clone(),
                key: "version".into(),
                problem: format!("is `{version}`, which is not a package version"),
                hint: "start with a digit and use only letters, digits and . + ~ -, e.g. 0.1.1"
                    .into(),
            });
        }
        self.version = version.to_owned();
        Ok(self)
    }
}

fn is_debian_version(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-'))
}

fn package_name(spec: &str) -> &str {
    spec.split('=').next().unwrap_or(spec)
}

fn is_package_spec(spec: &str) -> bool {
    let (name, version) = match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    name_ok
        && version.is_none_or(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-' | ':'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_root_is_the_folder_above_the_recipes() {
        assert_eq!(
            project_root_of(Path::new("image-recipes/appliance.toml")),
            PathBuf::from(".")
        );
        assert_eq!(
            project_root_of(Path::new("/src/k/image-recipes/appliance.toml")),
            PathBuf::from("/src/k")
        );
        assert_eq!(
            project_root_of(Path::new("appliance.toml")),
            PathBuf::from("..")
        );
    }

    #[test]
    fn package_specs() {
        assert!(is_package_spec("linux-image-amd64"));
        assert!(is_package_spec("libstdc++6"));
        assert!(is_package_spec("live-boot=1:20230131"));
        assert!(!is_package_spec("Vim"));
        assert!(!is_package_spec("a"));
        assert!(!is_package_spec("vim="));
        assert!(!is_package_spec("vim; rm -rf /"));
    }

    #[test]
    fn versions() {
        assert!(is_debian_version("0.1.0"));
        assert!(is_debian_version("1.2~rc1+deb12"));
        assert!(!is_debian_version("v1"));
        assert!(!is_debian_version("1.0 beta"));
    }
}
