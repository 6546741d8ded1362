//! `kentongan`: the image builder's command line. Argument parsing, terminal output and glue
//! only; the work happens in `kentongan-image` and `kentongan-vmtest` (`boot-test`).

mod boot_test;
mod progress;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kentongan_image::{build, Cache, Recipe};

#[derive(Parser)]
#[command(
    name = "kentongan",
    version,
    about = "Build and test Kentongan PBX appliance images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the ISO a recipe describes.
    Build {
        /// The recipe, e.g. image-recipes/appliance.toml.
        recipe: PathBuf,
        /// Where the ISO, manifest.json, the SBOM, SHA256SUMS and logs/ go.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        #[command(flatten)]
        cache: CacheArg,
        /// Print only errors and the result.
        #[arg(short, long)]
        quiet: bool,
        /// Print the manifest as JSON on stdout instead of the ISO path.
        #[arg(long)]
        json: bool,
    },
    /// Build the recipe's workspace `.deb`s into a signed APT repository (for upgrades).
    Repo {
        /// The recipe, e.g. image-recipes/appliance.toml.
        recipe: PathBuf,
        /// The armored OpenPGP secret key (no passphrase) that signs the repository.
        #[arg(long, value_name = "KEY.asc")]
        signing_key: PathBuf,
        /// The repository goes to OUT/<name>-<version>-repo.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Package version instead of the recipe's (e.g. a test's next release).
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        cache: CacheArg,
        /// Print only errors and the repository's path.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Check a recipe and render its overlays without building anything.
    Validate { recipe: PathBuf },
    /// Boot an ISO under QEMU and check that the appliance works.
    BootTest(boot_test::Args),
    /// Inspect or clean the stage cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(clap::Args)]
struct CacheArg {
    /// The stage cache [default: ~/.cache/kentongan].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

impl CacheArg {
    fn dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(Cache::default_dir)
    }
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cache entries, most recently used first.
    Ls {
        #[command(flatten)]
        cache: CacheArg,
    },
    /// Remove entries not used recently.
    Gc {
        #[command(flatten)]
        cache: CacheArg,
        /// Keep entries used within this many days.
        #[arg(long, default_value_t = 14)]
        keep_days: u64,
        /// Remove every entry and the downloaded packages.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&e);
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build {
            recipe,
            out,
            cache,
            quiet,
            json,
        } => {
            let recipe = Recipe::load(&recipe)?;
            let reporter = progress::StageProgress::new(quiet);
            let options = kentongan_image::BuildOptions {
                out_dir: out,
                cache_dir: cache.dir(),
            };
            let output = build(&recipe, &options, &reporter)?;
            reporter.finish();
            if json {
                stdout(&serde_json::to_string_pretty(&output.manifest)?);
            } else {
                if !quiet {
                    progress::status(
                        "Wrote",
                        &format!(
                            "{} ({} MB)",
                            output.iso.display(),
                            output.manifest.iso.size / 1_000_000
                        ),
                    );
                }
                stdout(&output.iso.display().to_string());
            }
            Ok(())
        }
        Command::Repo {
            recipe,
            signing_key,
            out,
            version,
            cache,
            quiet,
        } => {
            let mut recipe = Recipe::load(&recipe)?;
            if let Some(v) = version {
                recipe = recipe.with_version(&v)?;
            }
            let reporter = progress::StageProgress::new(quiet);
            let options = kentongan_image::BuildOptions {
                out_dir: out.clone(),
                cache_dir: cache.dir(),
            };
            let debs = kentongan_image::build_debs(&recipe, &options, &reporter)?;
            reporter.finish();
            let dir = out.join(format!("{}-{}-repo", recipe.name, recipe.version));
            let repo = kentongan_image::repo::write(&debs, &signing_key, &dir)
                .map_err(|e| anyhow::anyhow!("{e}\nhint: {}", e.hint()))?;
            if !quiet {
                progress::status(
                    "Wrote",
                    &format!(
                        "{} ({}; signed by {})",
                        repo.dir.display(),
                        repo.packages.join(", "),
                        repo.fingerprint
                    ),
                );
            }
            stdout(&repo.dir.display().to_string());
            Ok(())
        }
        Command::Validate { recipe: path } => {
            let recipe = Recipe::load(&path)?;
            let tree = kentongan_image::overlay::render(&recipe)?;
            progress::status(
                "Valid",
                &format!(
                    "{}: {} packages, {} overlays ({} files), {} binaries",
                    path.display(),
                    recipe.packages.len(),
                    recipe.overlays.len(),
                    tree.nodes.len(),
                    recipe.binaries.len()
                ),
            );
            Ok(())
        }
        Command::BootTest(args) => {
            let run_dir = boot_test::run(args)?;
            stdout(&run_dir.display().to_string());
            Ok(())
        }
        Command::Cache {
            command: CacheCommand::Ls { cache },
        } => {
            let dir = cache.dir();
            let entries = Cache::open_shared(&dir).list();
            if entries.is_empty() {
                progress::status("Empty", &dir.display().to_string());
            }
            for e in entries {
                let age = e.last_used.elapsed().unwrap_or_default();
                stdout(&format!(
                    "{:<14} {}  {:>9}  used {:>5} ago  {}",
                    e.meta.stage,
                    &e.meta.key[..12.min(e.meta.key.len())],
                    human_size(e.size),
                    human_age(age),
                    e.meta.description
                ));
            }
            Ok(())
        }
        Command::Cache {
            command:
                CacheCommand::Gc {
                    cache,
                    keep_days,
                    all,
                },
        } => {
            let dir = cache.dir();
            if !dir.exists() {
                progress::status("Empty", &dir.display().to_string());
                return Ok(());
            }
            let cache = Cache::open_exclusive(&dir)?;
            let keep = (!all).then(|| Duration::from_secs(keep_days * 86_400));
            let (removed, freed) = cache.gc(keep).context("cleaning the cache")?;
            for e in &removed {
                progress::status(
                    "Removed",
                    &format!(
                        "{} {}",
                        e.meta.stage,
                        &e.meta.key[..12.min(e.meta.key.len())]
                    ),
                );
            }
            progress::status(
                "Freed",
                &format!(
                    "{} ({} entries) in {}",
                    human_size(freed),
                    removed.len(),
                    dir.display()
                ),
            );
            Ok(())
        }
    }
}

/// Writes a result line; a closed pipe (`kentongan cache ls | head`) ends quietly.
fn stdout(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// `error:` with the causes, a failed tool's last lines, then a `hint:` with the next step.
fn report_error(e: &anyhow::Error) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    for cause in e.chain().skip(1) {
        let _ = writeln!(err, "  caused by: {cause}");
    }
    let hint = if let Some(b) = e.downcast_ref::<kentongan_image::BuildError>() {
        if let Some(tail) = b.log_tail() {
            let _ = writeln!(err, "  last lines of the log:");
            for line in tail.iter().rev().take(12).rev() {
                let _ = writeln!(err, "    | {line}");
            }
        }
        Some(b.hint())
    } else if let Some(r) = e.downcast_ref::<kentongan_image::RecipeError>() {
        r.hint().map(str::to_owned)
    } else if let Some(o) = e.downcast_ref::<kentongan_image::overlay::OverlayError>() {
        Some(o.hint().to_owned())
    } else if let Some(c) = e.downcast_ref::<kentongan_image::cache::CacheError>() {
        Some(c.hint().to_owned())
    } else if let Some(f) = e.downcast_ref::<kentongan_vmtest::checks::CheckFailure>() {
        Some(f.error.hint().to_owned())
    } else {
        e.downcast_ref::<kentongan_vmtest::VmError>()
            .map(|v| v.hint().to_owned())
    };
    if let Some(hint) = hint {
        let _ = writeln!(err, "hint: {hint}");
    }
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
