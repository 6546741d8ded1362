//! The build pipeline: computes every stage key, reuses what the cache holds, builds the rest
//! in dependency order, and writes the ISO, its manifest, SBOM and checksums to the output folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cache::{Cache, CacheError};
use crate::hash::{sha256_file, StageKey};
use crate::iso::{self, LAYERS};
use crate::manifest::{self, FileRecord, Manifest, RecipeRecord, RustCrate};
use crate::overlay::{self, OverlayError, RenderedTree};
use crate::recipe::{Mirror, Recipe};
use crate::stages::{self, HostFacts, Stage, StageKeys};
use crate::tools::{self, run_logged, PreflightError, ToolError};

/// How a stage went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Found in the cache.
    Hit,
    /// Built now.
    Built,
    /// Not needed: every stage that consumes it was found in the cache.
    Skipped,
}

/// Build events for whoever draws progress. The library never prints.
pub trait Reporter: Sync {
    fn stage_started(&self, stage: Stage, key: &StageKey);
    /// A line the stage's tool printed, for a spinner's message.
    fn stage_output(&self, stage: Stage, line: &str);
    fn stage_finished(&self, stage: Stage, outcome: Outcome, elapsed: Duration);
}

/// A reporter that reports nothing.
pub struct Silent;

impl Reporter for Silent {
    fn stage_started(&self, _: Stage, _: &StageKey) {}
    fn stage_output(&self, _: Stage, _: &str) {}
    fn stage_finished(&self, _: Stage, _: Outcome, _: Duration) {}
}

pub struct BuildOptions {
    pub out_dir: PathBuf,
    pub cache_dir: PathBuf,
}

#[derive(Debug)]
pub struct BuildOutput {
    pub iso: PathBuf,
    pub manifest: Manifest,
    pub outcomes: Vec<(Stage, Outcome)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("no SOURCE_DATE_EPOCH: the recipe sets none and {} is not in a git checkout", recipe.display())]
    NoEpoch { recipe: PathBuf },
    #[error("found no Debian archive in the host's apt sources")]
    NoHostMirror,
    #[error("stage `{stage}` failed: {error}")]
    Tool { stage: Stage, error: ToolError },
    #[error("stage `{stage}` failed: {what}")]
    Stage { stage: Stage, what: String },
    #[error("cannot write {}: {source}", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BuildError {
    pub fn hint(&self) -> String {
        match self {
            BuildError::Preflight(e) => e.hint(),
            BuildError::Overlay(e) => e.hint().into(),
            BuildError::Cache(e) => e.hint().into(),
            BuildError::NoEpoch { .. } => {
                "set source_date_epoch in the recipe, or SOURCE_DATE_EPOCH in the environment"
                    .into()
            }
            BuildError::NoHostMirror => {
                "set `mirror` in the recipe, or add a Debian archive to /etc/apt/sources.list"
                    .into()
            }
            BuildError::Tool {
                error: ToolError::Failed { log, .. },
                ..
            } => format!("read the whole log: {}", log.display()),
            BuildError::Tool { .. } | BuildError::Stage { .. } => {
                "see the stage log under the output folder's logs/".into()
            }
            BuildError::Output { .. } => {
                "check free space and permissions of the output folder".into()
            }
        }
    }

    /// The last lines a failed tool printed, to show without opening the log.
    pub fn log_tail(&self) -> Option<&[String]> {
        match self {
            BuildError::Tool {
                error: ToolError::Failed { tail, .. },
                ..
            } => Some(tail),
            _ => None,
        }
    }
}

/// The Unix time every timestamp in the image is set to: `SOURCE_DATE_EPOCH` from the
/// environment, else the recipe's `source_date_epoch`, else the time of the last git commit.
pub fn source_date_epoch(recipe: &Recipe) -> Result<i64, BuildError> {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&v| v > 0)
    {
        return Ok(epoch);
    }
    if let Some(epoch) = recipe.source_date_epoch {
        return Ok(epoch);
    }
    let dir = recipe
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .ok_or_else(|| BuildError::NoEpoch {
            recipe: recipe.path.clone(),
        })
}

/// Host facts for the key computation. Runs each tool once for its version.
pub fn gather_facts(recipe: &Recipe) -> Result<HostFacts, BuildError> {
    let apt_sources = match &recipe.mirror {
        Mirror::Url(url) => vec![format!("deb {url} {} main", recipe.suite)],
        Mirror::Host => {
            let lines = stages::host_apt_sources(&recipe.suite);
            if lines.is_empty() {
                return Err(BuildError::NoHostMirror);
            }
            lines
        }
    };
    let (workspace_hash, rustc_version) = if recipe.binaries.is_empty() {
        (String::new(), String::new())
    } else {
        (
            stages::workspace_hash(&recipe.project_root).map_err(|e| BuildError::Stage {
                stage: Stage::Binaries,
                what: format!("cannot read the workspace sources: {e}"),
            })?,
            tools::version_of("rustc", "--version"),
        )
    };
    Ok(HostFacts {
        mmdebstrap_version: tools::version_of("mmdebstrap", "--version"),
        mksquashfs_version: tools::version_of("mksquashfs", "-version"),
        grub_version: tools::version_of("grub-mkimage", "--version"),
        xorriso_version: tools::version_of("xorriso", "-version"),
        dpkg_version: tools::version_of("dpkg-deb", "--version"),
        rustc_version,
        apt_sources,
        workspace_hash,
    })
}

struct Pipeline<'a> {
    recipe: &'a Recipe,
    keys: StageKeys,
    facts: HostFacts,
    tree: RenderedTree,
    epoch: i64,
    cache: Cache,
    logs: PathBuf,
    reporter: &'a dyn Reporter,
    outcomes: Vec<(Stage, Outcome)>,
    base_rootfs: Option<PathBuf>,
    binaries: Option<PathBuf>,
}

/// Builds the recipe's ISO into `options.out_dir`.
pub fn build(
    recipe: &Recipe,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildOutput, BuildError> {
    let mut p = Pipeline::new(recipe, options, reporter)?;
    let iso_entry = p.iso()?;
    for stage in Stage::ALL {
        if !p.outcomes.iter().any(|(s, _)| *s == stage) {
            p.outcomes.push((stage, Outcome::Skipped));
        }
    }
    p.outcomes.sort_by_key(|(s, _)| *s);
    publish(recipe, &iso_entry, &options.out_dir, p.outcomes)
}

/// Builds only the recipe's workspace `.deb`s (the binaries stage, cached as in an image
/// build); returns their paths inside the cache entry, sorted.
pub fn build_debs(
    recipe: &Recipe,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut p = Pipeline::new(recipe, options, reporter)?;
    let entry = p.binaries()?;
    Ok(sorted_files(&entry, ".deb"))
}

impl<'a> Pipeline<'a> {
    fn new(
        recipe: &'a Recipe,
        options: &BuildOptions,
        reporter: &'a dyn Reporter,
    ) -> Result<Pipeline<'a>, BuildError> {
        tools::preflight(!recipe.binaries.is_empty())?;
        let epoch = source_date_epoch(recipe)?;
        let tree = overlay::render(recipe)?;
        let facts = gather_facts(recipe)?;
        let keys = stages::compute_keys(recipe, &facts, overlay::input_key(recipe)?, epoch);
        let cache = Cache::open_exclusive(&options.cache_dir)?;
        let logs = options.out_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| BuildError::Output {
            path: logs.clone(),
            source,
        })?;
        Ok(Pipeline {
            recipe,
            keys,
            facts,
            tree,
            epoch,
            cache,
            logs,
            reporter,
            outcomes: Vec::new(),
            base_rootfs: None,
            binaries: None,
        })
    }
}

/// Copies the finished ISO and its records from the cache entry to the output folder.
fn publish(
    recipe: &Recipe,
    entry: &Path,
    out_dir: &Path,
    outcomes: Vec<(Stage, Outcome)>,
) -> Result<BuildOutput, BuildError> {
    let out_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Output { path, source }
    };
    let manifest_bytes = std::fs::read(entry.join("manifest.json")).map_err(out_err(entry))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| BuildError::Stage {
            stage: Stage::Iso,
            what: format!("cached manifest is unreadable: {e}"),
        })?;
    let iso_name = recipe.iso_file_name();
    let iso_out = out_dir.join(&iso_name);
    let tmp = out_dir.join(format!(".{iso_name}.tmp"));
    std::fs::copy(entry.join(&iso_name), &tmp).map_err(out_err(&tmp))?;
    std::fs::rename(&tmp, &iso_out).map_err(out_err(&iso_out))?;

    let sbom_name = format!("{}-{}-amd64.spdx.json", recipe.name, recipe.version);
    let files: [(&str, &[u8]); 2] = [
        ("manifest.json", &manifest_bytes),
        (
            &sbom_name,
            &std::fs::read(entry.join("sbom.spdx.json")).map_err(out_err(entry))?,
        ),
    ];
    let mut sums = format!("{}  {}\n", manifest.iso.sha256, iso_name);
    for (name, bytes) in files {
        let path = out_dir.join(name);
        manifest::write_atomic(&path, bytes).map_err(out_err(&path))?;
        sums.push_str(&format!("{}  {}\n", crate::hash::sha256_hex(bytes), name));
    }
    let sums_path = out_dir.join("SHA256SUMS");
    manifest::write_atomic(&sums_path, sums.as_bytes()).map_err(out_err(&sums_path))?;
    Ok(BuildOutput {
        iso: iso_out,
        manifest,
        outcomes,
    })
}

impl Pipeline<'_> {
    /// Looks the stage up; on a miss runs `make` in a fresh pending entry and commits it.
    fn stage(
        &mut self,
        stage: Stage,
        make: impl FnOnce(&mut Self, &Path, &Path) -> Result<String, BuildError>,
    ) -> Result<PathBuf, BuildError> {
        let key = self.keys.get(stage).clone();
        self.reporter.stage_started(stage, &key);
        let started = Instant::now();
        if let Some(path) = self.cache.lookup(stage.name(), &key) {
            self.reporter
                .stage_finished(stage, Outcome::Hit, started.elapsed());
            self.outcomes.push((stage, Outcome::Hit));
            return Ok(path);
        }
        let log = self.logs.join(format!("{stage}.log"));
        std::fs::write(&log, b"").map_err(|source| BuildError::Output {
            path: log.clone(),
            source,
        })?;
        let pending = self.cache.begin(stage.name(), &key)?;
        let description = make(self, pending.path(), &log)?;
        let path = pending.commit(description)?;
        self.reporter
            .stage_finished(stage, Outcome::Built, started.elapsed());
        self.outcomes.push((stage, Outcome::Built));
        Ok(path)
    }

    fn run(&self, stage: Stage, cmd: &mut Command, log: &Path) -> Result<(), BuildError> {
        let reporter = self.reporter;
        run_logged(cmd, log, &mut |line| reporter.stage_output(stage, line))
            .map_err(|error| BuildError::Tool { stage, error })
    }

    fn base_rootfs(&mut self) -> Result<PathBuf, BuildError> {
        if let Some(path) = &self.base_rootfs {
            return Ok(path.clone());
        }
        let path = self.stage(Stage::BaseRootfs, |p, entry, log| {
            let rootfs = entry.join("rootfs");
            let debs = p.cache.debs_dir();
            let mut cmd = Command::new("mmdebstrap");
            cmd.env("SOURCE_DATE_EPOCH", p.epoch.to_string())
                .args(stages::MMDEBSTRAP_OPTIONS)
                .arg(format!("--include={}", p.recipe.packages.join(",")))
                .args(
                    stages::DPKG_EXCLUDES
                        .iter()
                        .map(|o| format!("--dpkgopt={o}")),
                )
                .args(
                    p.recipe
                        .path_exclude
                        .iter()
                        .map(|g| format!("--dpkgopt=path-exclude={g}")),
                )
                .args(stages::initramfs_setup_hook(p.recipe).map(|h| format!("--setup-hook={h}")))
                .arg("--skip=essential/unlink")
                .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/")
                .arg(format!(
                    "--setup-hook=sync-in {} /var/cache/apt/archives/",
                    debs.display()
                ))
                .arg(format!(
                    "--customize-hook=sync-out /var/cache/apt/archives {}",
                    debs.display()
                ))
                .args(
                    stages::installed_initrd_hook(p.recipe)
                        .map(|h| format!("--customize-hook={h}")),
                )
                .arg(format!("--customize-hook={}", stages::BASE_CLEANUP_HOOK))
                .arg(&p.recipe.suite)
                .arg(&rootfs)
                .args(&p.facts.apt_sources);
            p.run(Stage::BaseRootfs, &mut cmd, log)?;
            for (dir, mode) in stages::PINNED_DIRS {
                pin_dir(&rootfs.join(dir), mode)
                    .map_err(|e| stage_err(Stage::BaseRootfs, format!("{dir}: {e}")))?;
            }
            let listing = Command::new("dpkg-query")
                .arg(format!(
                    "--admindir={}",
                    rootfs.join("var/lib/dpkg").display()
                ))
                .args(["-W", "-f", "${Package}\\t${Version}\\t${Architecture}\\n"])
                .output()
                .map_err(|e| BuildError::Stage {
                    stage: Stage::BaseRootfs,
                    what: format!("dpkg-query: {e}"),
                })?;
            let packages = manifest::parse_dpkg_list(&String::from_utf8_lossy(&listing.stdout));
            write(
                Stage::BaseRootfs,
                &entry.join("packages.tsv"),
                &listing.stdout,
            )?;
            Ok(format!(
                "{} {} packages ({} requested)",
                p.recipe.suite,
                packages.len(),
                p.recipe.packages.len()
            ))
        })?;
        self.base_rootfs = Some(path.clone());
        Ok(path)
    }

    fn binaries(&mut self) -> Result<PathBuf, BuildError> {
        if let Some(path) = &self.binaries {
            return Ok(path.clone());
        }
        let path = self.stage(Stage::Binaries, |p, entry, log| {
            let recipe = p.recipe;
            let root = &recipe.project_root;
            let metadata = Command::new("cargo")
                .current_dir(root)
                .args(["metadata", "--format-version", "1", "--locked"])
                .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
                .output()
                .map_err(|e| stage_err(Stage::Binaries, format!("cargo metadata: {e}")))?;
            if !metadata.status.success() {
                return Err(stage_err(
                    Stage::Binaries,
                    format!(
                        "cargo metadata failed: {}",
                        String::from_utf8_lossy(&metadata.stderr).trim()
                    ),
                ));
            }
            let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout)
                .map_err(|e| stage_err(Stage::Binaries, format!("cargo metadata: {e}")))?;
            // Where cargo puts what it builds: `target/` unless CARGO_TARGET_DIR (or a cargo
            // config) moves it; the build below inherits the same environment.
            let target_dir = metadata["target_directory"]
                .as_str()
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            let roots: Vec<String> = recipe.binaries.iter().map(|b| b.package.clone()).collect();
            let mut roots_unique = roots.clone();
            roots_unique.sort();
            roots_unique.dedup();
            let crates = manifest::crates_from_metadata(&metadata, &roots_unique)
                .map_err(|e| stage_err(Stage::Binaries, e))?;
            write(
                Stage::Binaries,
                &entry.join("crates.json"),
                &serde_json::to_vec_pretty(&crates).unwrap_or_default(),
            )?;

            // One build of the whole workspace: the same feature resolution as
            // `cargo build --release --workspace` (scripts/build), so nothing compiles twice.
            p.run(
                Stage::Binaries,
                Command::new("cargo")
                    .current_dir(root)
                    .args(["build", "--release", "--locked", "--workspace", "--bins"]),
                log,
            )?;
            let mut debs = Vec::new();
            for package in &roots_unique {
                let bins: Vec<_> = recipe.binaries.iter().filter(|b| &b.package == package).collect();

                let staging = entry.join("staging").join(package);
                let mut depends = vec!["libc6".to_owned()];
                for b in &bins {
                    let dest = staging.join(b.path.trim_start_matches('/'));
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| stage_err(Stage::Binaries, e.to_string()))?;
                    }
                    let built = target_dir.join("release").join(&b.bin);
                    std::fs::copy(&built, &dest).map_err(|e| {
                        stage_err(Stage::Binaries, format!("{}: {e}", built.display()))
                    })?;
                    depends.extend(b.depends.iter().cloned());
                }
                depends.sort();
                depends.dedup();
                let description = metadata["packages"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == package.as_str() && p["source"].is_null()))
                    .and_then(|p| p["description"].as_str())
                    .unwrap_or("Kentongan component")
                    .to_owned();
                let control = format!(
                    "Package: {package}\nVersion: {}\nArchitecture: amd64\nMaintainer: Kentongan developers <dev@kentongan.invalid>\nDepends: {}\nSection: net\nPriority: optional\nDescription: {description}\n",
                    recipe.version,
                    depends.join(", ")
                );
                write(Stage::Binaries, &staging.join("DEBIAN/control"), control.as_bytes())?;
                let deb = entry.join(format!("{package}_{}_amd64.deb", recipe.version));
                p.run(
                    Stage::Binaries,
                    Command::new("dpkg-deb")
                        .env("SOURCE_DATE_EPOCH", p.epoch.to_string())
                        .args(["--root-owner-group", "-Zxz", "--build"])
                        .arg(&staging)
                        .arg(&deb),
                    log,
                )?;
                debs.push(format!("{package}\t{}\tamd64\n", recipe.version));
            }
            crate::cache::remove_tree(&entry.join("staging"))
                .map_err(|e| stage_err(Stage::Binaries, e.to_string()))?;
            write(Stage::Binaries, &entry.join("debs.tsv"), debs.concat().as_bytes())?;
            Ok(format!("{} packages, {} crates", debs.len(), crates.len()))
        })?;
        self.binaries = Some(path.clone());
        Ok(path)
    }

    fn base_layer(&mut self) -> Result<PathBuf, BuildError> {
        if let Some(path) = self
            .cache
            .lookup(Stage::BaseLayer.name(), &self.keys.base_layer)
        {
            self.reporter
                .stage_started(Stage::BaseLayer, &self.keys.base_layer);
            self.reporter
                .stage_finished(Stage::BaseLayer, Outcome::Hit, Duration::ZERO);
            self.outcomes.push((Stage::BaseLayer, Outcome::Hit));
            return Ok(path);
        }
        let rootfs_entry = self.base_rootfs()?;
        self.stage(Stage::BaseLayer, |p, entry, log| {
            let rootfs = rootfs_entry.join("rootfs");
            let boot = rootfs.join("boot");
            for (prefix, name) in [("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img")] {
                let found = newest_with_prefix(&boot, prefix).ok_or_else(|| {
                    stage_err(
                        Stage::BaseLayer,
                        format!("no /boot/{prefix}* in the root filesystem; is a linux-image package installed?"),
                    )
                })?;
                std::fs::copy(&found, entry.join(name))
                    .map_err(|e| stage_err(Stage::BaseLayer, format!("{}: {e}", found.display())))?;
            }
            std::fs::copy(rootfs_entry.join("packages.tsv"), entry.join("packages.tsv"))
                .map_err(|e| stage_err(Stage::BaseLayer, e.to_string()))?;
            copy_signed_efi(&rootfs, &entry.join("efi"))?;
            // The live initrd sits beside the layers on the ISO; a copy inside the layer would
            // only add its size again (an installed system builds its own).
            p.squash(Stage::BaseLayer, &rootfs, &entry.join(LAYERS[0]), &["boot/initrd.img-*"], log)?;
            Ok(format!("{} squashfs", format!("{:?}", p.recipe.compression).to_lowercase()))
        })
    }

    fn overlay_layer(&mut self) -> Result<PathBuf, BuildError> {
        if let Some(path) = self
            .cache
            .lookup(Stage::OverlayLayer.name(), &self.keys.overlay_layer)
        {
            for stage in [Stage::Overlays, Stage::OverlayLayer] {
                self.reporter.stage_started(stage, self.keys.get(stage));
                self.reporter
                    .stage_finished(stage, Outcome::Hit, Duration::ZERO);
                self.outcomes.push((stage, Outcome::Hit));
            }
            return Ok(path);
        }
        let rootfs_entry = self.base_rootfs()?;
        let binaries = if self.recipe.binaries.is_empty() {
            None
        } else {
            Some(self.binaries()?)
        };
        // Rendering happened up front (so template errors stop the build before any work);
        // report it here, where its output is consumed.
        self.reporter
            .stage_started(Stage::Overlays, &self.keys.overlays);
        self.reporter
            .stage_finished(Stage::Overlays, Outcome::Built, Duration::ZERO);
        self.outcomes.push((Stage::Overlays, Outcome::Built));

        self.stage(Stage::OverlayLayer, |p, entry, log| {
            let work = entry.join("work");
            let (upper, ovl_work, merged) = (work.join("upper"), work.join("ovl"), work.join("merged"));
            for dir in [&upper, &ovl_work, &merged] {
                std::fs::create_dir_all(dir).map_err(|e| stage_err(Stage::OverlayLayer, e.to_string()))?;
            }
            let lower = rootfs_entry.join("rootfs");
            p.run(
                Stage::OverlayLayer,
                Command::new("mount").args(["-t", "overlay", "overlay", "-o"]).arg(format!(
                    "lowerdir={},upperdir={},workdir={},index=off,metacopy=off,redirect_dir=off,xino=off",
                    lower.display(),
                    upper.display(),
                    ovl_work.display()
                ))
                .arg(&merged),
                log,
            )?;
            let mounted = Unmount(merged.clone());

            let mut debs_tsv = Vec::new();
            if let Some(bin_entry) = &binaries {
                let inside = merged.join("tmp/kentongan-debs");
                std::fs::create_dir_all(&inside).map_err(|e| stage_err(Stage::OverlayLayer, e.to_string()))?;
                let mut names = Vec::new();
                for deb in sorted_files(bin_entry, ".deb") {
                    let name = deb.file_name().map(|n| n.to_owned()).unwrap_or_default();
                    std::fs::copy(&deb, inside.join(&name)).map_err(|e| stage_err(Stage::OverlayLayer, e.to_string()))?;
                    names.push(Path::new("/tmp/kentongan-debs").join(name));
                }
                p.run(
                    Stage::OverlayLayer,
                    Command::new("chroot")
                        .arg(&merged)
                        .args(["dpkg", "--force-unsafe-io", "--install"])
                        .args(&names),
                    log,
                )?;
                crate::cache::remove_tree(&inside).map_err(|e| stage_err(Stage::OverlayLayer, e.to_string()))?;
                for leftover in ["var/log/dpkg.log", "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old"] {
                    let _ = std::fs::remove_file(merged.join(leftover));
                }
                debs_tsv = std::fs::read(bin_entry.join("debs.tsv")).unwrap_or_default();
                std::fs::copy(bin_entry.join("crates.json"), entry.join("crates.json"))
                    .map_err(|e| stage_err(Stage::OverlayLayer, e.to_string()))?;
            }
            p.tree
                .write_into(&merged)
                .map_err(|e| stage_err(Stage::OverlayLayer, format!("writing overlays: {e}")))?;
            drop(mounted);
            if !crate::cache::mounts_below(&merged).is_empty() {
                return Err(stage_err(Stage::OverlayLayer, format!("could not unmount {}", merged.display())));
            }
            strip_overlay_xattrs(&upper).map_err(|e| stage_err(Stage::OverlayLayer, e))?;
            write(Stage::OverlayLayer, &entry.join("debs.tsv"), &debs_tsv)?;
            p.squash(Stage::OverlayLayer, &upper, &entry.join(LAYERS[1]), &[], log)?;
            crate::cache::remove_tree(&work).map_err(|e| stage_err(Stage::OverlayLayer, e.to_string()))?;
            Ok(format!("{} overlay files", p.tree.nodes.len()))
        })
    }

    fn iso(&mut self) -> Result<PathBuf, BuildError> {
        if let Some(path) = self.cache.lookup(Stage::Iso.name(), &self.keys.iso) {
            self.reporter.stage_started(Stage::Iso, &self.keys.iso);
            self.reporter
                .stage_finished(Stage::Iso, Outcome::Hit, Duration::ZERO);
            self.outcomes.push((Stage::Iso, Outcome::Hit));
            return Ok(path);
        }
        let base = self.base_layer()?;
        let overlay = self.overlay_layer()?;
        self.stage(Stage::Iso, |p, entry, log| {
            let recipe = p.recipe;
            let tree = entry.join("tree");
            let live = tree.join("live");
            let grub = tree.join("boot/grub");
            let disk = tree.join(".disk");
            for dir in [&live, &grub, &disk] {
                std::fs::create_dir_all(dir).map_err(|e| stage_err(Stage::Iso, e.to_string()))?;
            }
            // Cache entries never change once committed, so the tree can link to them.
            for (from, name) in [
                (base.join(LAYERS[0]), LAYERS[0]),
                (overlay.join(LAYERS[1]), LAYERS[1]),
                (base.join("vmlinuz"), "vmlinuz"),
                (base.join("initrd.img"), "initrd.img"),
            ] {
                link_or_copy(&from, &live.join(name))
                    .map_err(|e| stage_err(Stage::Iso, format!("{}: {e}", from.display())))?;
            }
            write(
                Stage::Iso,
                &live.join("filesystem.module"),
                format!("{}\n", LAYERS.join("\n")).as_bytes(),
            )?;
            write(
                Stage::Iso,
                &grub.join("grub.cfg"),
                iso::grub_cfg(recipe).as_bytes(),
            )?;
            write(
                Stage::Iso,
                &disk.join("info"),
                format!(
                    "{} {} amd64 ({})\n",
                    recipe.name, recipe.version, recipe.suite
                )
                .as_bytes(),
            )?;
            let iso_name = recipe.iso_file_name();
            let iso_path = entry.join(&iso_name);
            let efi = if base.join("efi").is_dir() {
                iso::EfiLoader::Signed {
                    dir: base.join("efi"),
                }
            } else {
                iso::EfiLoader::Unsigned
            };
            let reporter = p.reporter;
            iso::make_iso(
                &tree,
                &iso_path,
                &iso::volume_id(recipe),
                p.epoch,
                &efi,
                &entry.join("scratch"),
                log,
                &mut |line| reporter.stage_output(Stage::Iso, line),
            )
            .map_err(|error| BuildError::Tool {
                stage: Stage::Iso,
                error,
            })?;
            for scratch in [tree, entry.join("scratch")] {
                crate::cache::remove_tree(&scratch)
                    .map_err(|e| stage_err(Stage::Iso, e.to_string()))?;
            }

            let sha256 =
                sha256_file(&iso_path).map_err(|e| stage_err(Stage::Iso, e.to_string()))?;
            let size = iso_path.metadata().map(|m| m.len()).unwrap_or(0);
            let mut debian_packages = manifest::parse_dpkg_list(
                &std::fs::read_to_string(base.join("packages.tsv")).unwrap_or_default(),
            );
            let ours = manifest::parse_dpkg_list(
                &std::fs::read_to_string(overlay.join("debs.tsv")).unwrap_or_default(),
            );
            debian_packages.retain(|p| !ours.iter().any(|o| o.name == p.name));
            debian_packages.extend(ours);
            debian_packages.sort();
            let rust_crates: Vec<RustCrate> = std::fs::read(overlay.join("crates.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let manifest = Manifest {
                name: recipe.name.clone(),
                version: recipe.version.clone(),
                recipe: RecipeRecord {
                    file: recipe
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    sha256: recipe.sha256.clone(),
                },
                source_date_epoch: p.epoch,
                iso: FileRecord {
                    file: iso_name,
                    sha256,
                    size,
                },
                stages: Stage::ALL
                    .iter()
                    .map(|s| manifest::StageRecord {
                        stage: s.name().into(),
                        key: p.keys.get(*s).to_string(),
                    })
                    .collect(),
                debian_packages: debian_packages.clone(),
                rust_crates,
            };
            let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            write(Stage::Iso, &entry.join("manifest.json"), &json)?;
            let sbom = serde_json::to_vec_pretty(&manifest::spdx(&manifest)).unwrap_or_default();
            write(Stage::Iso, &entry.join("sbom.spdx.json"), &sbom)?;
            Ok(format!(
                "{} MB, {} Debian packages",
                size / 1_000_000,
                debian_packages.len()
            ))
        })
    }

    fn squash(
        &self,
        stage: Stage,
        dir: &Path,
        out: &Path,
        exclude: &[&str],
        log: &Path,
    ) -> Result<(), BuildError> {
        let mut cmd = Command::new("mksquashfs");
        cmd.env("SOURCE_DATE_EPOCH", self.epoch.to_string())
            .arg(dir)
            .arg(out)
            .args(["-noappend", "-no-progress"])
            .args(self.recipe.compression.mksquashfs_args());
        if !exclude.is_empty() {
            cmd.arg("-wildcards").arg("-e").args(exclude);
        }
        self.run(stage, &mut cmd, log)
    }
}

/// Copies Debian's signed UEFI boot chain out of `rootfs` into `dir` under the names the ESP
/// uses, when the recipe installs it (`shim-signed`, `grub-efi-amd64-signed`). Half a chain is
/// an error: an ISO with shim but no GRUB it trusts boots nowhere.
fn copy_signed_efi(rootfs: &Path, dir: &Path) -> Result<(), BuildError> {
    let present: Vec<bool> = iso::SIGNED_EFI
        .iter()
        .map(|(from, _)| rootfs.join(from).is_file())
        .collect();
    if present.iter().all(|p| !p) {
        return Ok(());
    }
    if let Some(i) = present.iter().position(|p| !p) {
        return Err(stage_err(
            Stage::BaseLayer,
            format!(
                "the root filesystem has part of the signed UEFI boot chain but no /{}; \
                 add both shim-signed and grub-efi-amd64-signed to the recipe's packages",
                iso::SIGNED_EFI[i].0
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| stage_err(Stage::BaseLayer, e.to_string()))?;
    for (from, name) in iso::SIGNED_EFI {
        std::fs::copy(rootfs.join(from), dir.join(name))
            .map_err(|e| stage_err(Stage::BaseLayer, format!("/{from}: {e}")))?;
    }
    Ok(())
}

fn stage_err(stage: Stage, what: impl Into<String>) -> BuildError {
    BuildError::Stage {
        stage,
        what: what.into(),
    }
}

fn write(stage: Stage, path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| stage_err(stage, format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, bytes).map_err(|e| stage_err(stage, format!("{}: {e}", path.display())))
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// overlayfs records where copied-up files came from (inode handles of the lower filesystem);
/// those differ between builds and mean nothing in a squashfs. Only `opaque` carries meaning
/// (a folder that hides the lower one) and is kept.
fn strip_overlay_xattrs(upper: &Path) -> Result<(), String> {
    for entry in walkdir::WalkDir::new(upper).sort_by_file_name() {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.path_is_symlink() {
            continue;
        }
        let names =
            xattr::list(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
        for name in names {
            let name_str = name.to_string_lossy();
            if name_str.starts_with("trusted.overlay.") && name_str != "trusted.overlay.opaque" {
                xattr::remove(entry.path(), &name)
                    .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

fn newest_with_prefix(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop()
}

fn sorted_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.to_string_lossy().ends_with(suffix));
    files.sort();
    files
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
}

/// The keys a build of this recipe would use, without building anything. For `validate`
/// and tests.
pub fn plan(recipe: &Recipe, facts: &HostFacts, epoch: i64) -> Result<StageKeys, BuildError> {
    overlay::render(recipe)?;
    Ok(stages::compute_keys(
        recipe,
        facts,
        overlay::input_key(recipe)?,
        epoch,
    ))
}

/// Makes `dir` a root-owned folder with `mode`, whoever created it.
fn pin_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(0), Some(0))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}
