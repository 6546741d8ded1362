//! `kentongan-setup`: the first-boot wizard (TUI), `validate-answer`, the unattended
//! installer (`apply`), and `backup` / `restore`. Argument parsing and terminal output only;
//! everything else is in the `kentongan_setup` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use kentongan_setup::backup;
use kentongan_setup::install::{self, Source, Target};
use kentongan_setup::upgrade;
use kentongan_setup::{probe, validate, Answer, Facts, InstallPlan};

#[derive(Parser)]
#[command(
    name = "kentongan-setup",
    version,
    about = "Install Kentongan on this machine's disk"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Wizard only: install into this directory instead of a disk (tests, dry runs).
    #[arg(long)]
    target_root: Option<PathBuf>,
    /// Wizard only: copy the system from this directory instead of the live medium.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Wizard only: offer the disks and zones of a machine described in JSON.
    #[arg(long)]
    facts: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Check an answer file; print every problem found, or a summary of the install.
    ValidateAnswer {
        answer: PathBuf,
        /// Check against a machine described in JSON instead of this one (tests, planning).
        #[arg(long)]
        facts: Option<PathBuf>,
        /// Print the plan (secrets redacted) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Install without questions, as the answer file says.
    Apply {
        #[arg(long)]
        answer: PathBuf,
        /// Install into this directory instead of the disk the answer names (tests): no
        /// partitioning, mounts, chroot commands or boot loader.
        #[arg(long)]
        target_root: Option<PathBuf>,
        /// Copy the system from this directory instead of the live medium's layers.
        #[arg(long)]
        source: Option<PathBuf>,
        /// Check against a machine described in JSON instead of this one.
        #[arg(long)]
        facts: Option<PathBuf>,
        /// Power the machine off after a successful install (unattended mode).
        #[arg(long)]
        poweroff: bool,
    },
    /// Archive config, database (online), voicemail, recordings, prompts and certs.
    Backup {
        /// Write the archive here (`.tar.zst`).
        #[arg(
            long,
            required_unless_present = "scheduled",
            conflicts_with = "scheduled"
        )]
        out: Option<PathBuf>,
        /// Write into the USB volume labelled KENTONGAN-BACKUP if mounted, else
        /// /var/backups/kentongan, and keep the newest `keep` (/etc/kentongan/backup.toml).
        #[arg(long)]
        scheduled: bool,
        /// Back up the appliance installed under this directory instead of `/` (tests).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Upgrade the Kentongan packages from their signed APT repository: backup first, the
    /// old packages kept, rolled back if the new PBX does not answer.
    Upgrade {
        /// The repository (http://, https:// or file:/), written to
        /// /etc/apt/sources.list.d/kentongan.sources; later upgrades reuse it.
        #[arg(long)]
        repo: Option<String>,
        /// The OpenPGP public key the repository is signed with (binary `.gpg` or armored
        /// `.asc`), copied to /etc/kentongan/apt-keyring.gpg: the only key it is checked against.
        /// Needed with the first `--repo`; later ones may keep the key already there.
        #[arg(long)]
        keyring: Option<PathBuf>,
        /// How long the upgraded PBX has to answer SIP OPTIONS before it is rolled back.
        #[arg(long, default_value_t = 60)]
        check_seconds: u64,
    },
    /// Check an archive completely, then put it in place, restarting the PBX.
    Restore {
        archive: PathBuf,
        /// Only check the archive; change nothing.
        #[arg(long)]
        check: bool,
        /// Restore into this directory instead of `/` (tests): the PBX service is not
        /// stopped or started.
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

/// Cargo-style status lines on stderr, with the time of each step that took a while.
struct StatusLines {
    started: Instant,
}

impl install::Reporter for StatusLines {
    fn step_started(&mut self, step: &install::Step) {
        self.started = Instant::now();
        eprintln!("{:>12} {}", step.verb, step.name);
    }
    fn step_finished(&mut self, step: &install::Step, skipped: bool) {
        if skipped {
            eprintln!(
                "{:>12} {} (not for a directory target)",
                "Skipped", step.name
            );
        } else if self.started.elapsed() >= SLOW {
            eprintln!(
                "{:>12} {} in {:.0}s",
                "Finished",
                step.name,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Steps and commands that take longer are timed in the log.
const SLOW: Duration = Duration::from_secs(5);

/// Runs commands for real and logs each slow one with its time, so an install log shows where
/// the time went. Only the program and its arguments are printed, never a command's input;
/// the installer passes secrets only as input.
struct TimedRunner;

impl install::Runner for TimedRunner {
    fn run(&mut self, cmd: &install::Cmd) -> Result<String, install::CmdError> {
        let started = Instant::now();
        let result = install::SystemRunner.run(cmd);
        if started.elapsed() >= SLOW {
            eprintln!(
                "{:>12} `{}` in {:.0}s",
                "Ran",
                cmd.display(),
                started.elapsed().as_secs_f64()
            );
        }
        result
    }

    fn note(&mut self, line: &str) {
        eprintln!("{:>12} {line}", "Chose");
    }
}

/// An error for the operator: what failed, and what to do about it.
struct Failure {
    error: anyhow::Error,
    hint: String,
}

fn fail(error: impl Into<anyhow::Error>, hint: impl Into<String>) -> Failure {
    Failure {
        error: error.into(),
        hint: hint.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", f.error);
            for cause in f.error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            eprintln!("hint: {}", f.hint);
            ExitCode::from(1)
        }
    }
}

fn load_facts(path: Option<&Path>) -> Result<Facts, Failure> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("could not read {}", p.display()))
                .map_err(|e| fail(e, "pass a facts file written by `--print-facts`"))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a facts file", p.display()))
                .map_err(|e| fail(e, "compare it with crates/setup/tests/answers/facts.json"))
        }
        None => probe::probe().map_err(|e| fail(e, "run it on the machine to install, as root")),
    }
}

/// Reads, parses and validates an answer file; prints every problem to stderr.
fn plan_from_file(answer: &Path, facts: &Facts) -> Result<InstallPlan, Failure> {
    let text = std::fs::read_to_string(answer)
        .with_context(|| format!("could not read {}", answer.display()))
        .map_err(|e| fail(e, "check the path of the answer file"))?;
    let problems = match Answer::parse(&text).and_then(|a| validate(&a, facts)) {
        Ok(plan) => return Ok(plan),
        Err(problems) => problems,
    };
    for p in &problems.0 {
        eprintln!("  {p}");
    }
    Err(fail(
        anyhow::anyhow!(
            "{} has {} problem(s); nothing was written",
            answer.display(),
            problems.0.len()
        ),
        "fix the keys listed above and run `kentongan-setup validate-answer` again",
    ))
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        None => {
            let facts = load_facts(cli.facts.as_deref())?;
            let setup = kentongan_setup::tui::Setup {
                target_root: cli.target_root,
                source: cli.source,
            };
            match kentongan_setup::tui::run(facts, &setup, &mut install::SystemRunner) {
                Ok(Some(summary)) => {
                    eprintln!("{summary}");
                    if setup.target_root.is_none() {
                        let _ = std::process::Command::new("systemctl").arg("reboot").status();
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Ok(None) => Ok(ExitCode::SUCCESS),
                Err(e) => Err(fail(
                    anyhow::anyhow!("the wizard stopped: {e}"),
                    "run `kentongan-setup` again, or install with `kentongan-setup apply --answer answer.toml`",
                )),
            }
        }
        Some(Command::ValidateAnswer {
            answer,
            facts,
            json,
        }) => {
            let facts = load_facts(facts.as_deref())?;
            let plan = plan_from_file(&answer, &facts)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).unwrap_or_default()
                );
            } else {
                eprintln!("{} is valid:", answer.display());
                eprintln!("{}", plan.summary(kentongan_setup::validate::Language::En));
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Apply {
            answer,
            target_root,
            source,
            facts,
            poweroff,
        }) => {
            let facts = load_facts(facts.as_deref())?;
            // Validation comes first: a bad answer file writes nothing anywhere.
            let plan = plan_from_file(&answer, &facts)?;
            let place = match &target_root {
                Some(dir) => dir.display().to_string(),
                None => plan.disk.device.clone(),
            };
            apply(&plan, target_root, source)?;
            eprintln!("{:>12} Kentongan on {place}", "Installed");
            if poweroff {
                let _ = std::process::Command::new("systemctl")
                    .arg("poweroff")
                    .status();
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Backup {
            out,
            scheduled,
            root,
        }) => run_backup(out, scheduled, root).map(|()| ExitCode::SUCCESS),
        Some(Command::Restore {
            archive,
            check,
            root,
        }) => run_restore(&archive, check, root).map(|()| ExitCode::SUCCESS),
        Some(Command::Upgrade {
            repo,
            keyring,
            check_seconds,
        }) => run_upgrade(repo, keyring, Duration::from_secs(check_seconds))
            .map(|()| ExitCode::SUCCESS),
    }
}

fn roots(root: Option<PathBuf>) -> backup::Roots {
    match root {
        Some(root) => backup::Roots { root },
        None => backup::Roots::appliance(),
    }
}

/// The hostname and time the manifest records; read here, not in the library.
fn created(roots: &backup::Roots) -> backup::Created {
    let hostname = std::fs::read_to_string(roots.path("/etc/hostname"))
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    backup::Created { hostname, at }
}

fn print_backup(path: &Path, manifest: &backup::Manifest) {
    let bytes: u64 = manifest.members.iter().map(|m| m.size).sum();
    eprintln!(
        "{:>12} {} ({} files, {} bytes before compression)",
        "Wrote",
        path.display(),
        manifest.members.len(),
        bytes
    );
    eprintln!(
        "warning: this archive contains the TLS private key (config/tls) in clear; \
         passwords are stored hashed. Keep it as safe as the appliance."
    );
}

fn run_backup(out: Option<PathBuf>, scheduled: bool, root: Option<PathBuf>) -> Result<(), Failure> {
    let roots = roots(root);
    let created = created(&roots);
    let hint = "check that the database and /etc/kentongan are readable (run as root) and the destination has room";
    if scheduled {
        let settings = backup::BackupSettings::load(&roots)
            .map_err(|e| fail(e, "fix /etc/kentongan/backup.toml"))?;
        let dest = backup::find_target(&roots, &settings, &mut install::SystemRunner)
            .map_err(|e| fail(e, "is lsblk (util-linux) installed?"))?;
        eprintln!("{:>12} {} ({})", "Target", dest.dir.display(), dest.why);
        let (path, manifest, removed) =
            backup::write_scheduled(&roots, &created, &dest.dir, settings.keep)
                .map_err(|e| fail(e, hint))?;
        print_backup(&path, &manifest);
        for r in removed {
            eprintln!(
                "{:>12} {} (keeping {})",
                "Removed",
                r.display(),
                settings.keep
            );
        }
        return Ok(());
    }
    let Some(out) = out else {
        return Err(fail(
            anyhow::anyhow!("no destination"),
            "pass --out FILE.tar.zst or --scheduled",
        ));
    };
    let manifest = backup::write_archive(&roots, &created, &out).map_err(|e| fail(e, hint))?;
    print_backup(&out, &manifest);
    Ok(())
}

/// For a directory root there is no PBX service to cycle: systemctl is skipped, and said so.
struct NoService;

impl install::Runner for NoService {
    fn run(&mut self, cmd: &install::Cmd) -> Result<String, install::CmdError> {
        eprintln!(
            "{:>12} `{}` (not for a directory root)",
            "Skipped",
            cmd.display()
        );
        Ok(String::new())
    }
}

fn run_restore(archive: &Path, check: bool, root: Option<PathBuf>) -> Result<(), Failure> {
    let hint = "take a fresh backup with `kentongan-setup backup --out FILE.tar.zst`";
    if check {
        let checked = backup::validate_archive(archive).map_err(|e| fail(e, hint))?;
        let m = &checked.manifest;
        eprintln!(
            "{} is a valid backup of {} (Kentongan {}, {} files, created {})",
            archive.display(),
            m.hostname,
            m.kentongan_version,
            m.members.len(),
            m.created
        );
        return Ok(());
    }
    let directory = root.is_some();
    let roots = roots(root);
    let result = if directory {
        backup::restore(&roots, archive, &mut NoService)
    } else {
        backup::restore(&roots, archive, &mut TimedRunner)
    };
    let manifest = result.map_err(|e| fail(e, hint))?;
    eprintln!(
        "{:>12} {} files from {} (backup of {}); the files replaced are kept as *.previous",
        "Restored",
        manifest.members.len(),
        archive.display(),
        manifest.hostname
    );
    Ok(())
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("kentongan-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The appliance's side of an upgrade: backups under /var/backups/kentongan, restore, the
/// PBX's own SIP port, packages rebuilt from `/`.
struct ApplianceHooks;

impl upgrade::Hooks for ApplianceHooks {
    fn backup(&mut self) -> Result<PathBuf, String> {
        let roots = backup::Roots::appliance();
        let created = created(&roots);
        let dir = Path::new("/var/backups/kentongan");
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("pre-upgrade-{}.tar.zst", created.at));
        backup::write_archive(&roots, &created, &path).map_err(|e| e.to_string())?;
        eprintln!(
            "{:>12} {} (taken before the upgrade)",
            "Backed up",
            path.display()
        );
        Ok(path)
    }

    fn pbx_answers(&mut self, within: Duration) -> bool {
        let toml = std::fs::read_to_string("/etc/kentongan/pbx.toml").unwrap_or_default();
        let addr = upgrade::local_sip_addr(&toml);
        eprintln!("{:>12} the PBX answers SIP OPTIONS at {addr}", "Checking");
        upgrade::options_answered(addr, within)
    }

    fn restore(&mut self, archive: &Path) -> Result<(), String> {
        eprintln!("{:>12} {}", "Restoring", archive.display());
        backup::restore(&backup::Roots::appliance(), archive, &mut TimedRunner)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn keep_installed(&mut self, package: &str, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let deb = upgrade::rebuild_installed(&mut TimedRunner, Path::new("/"), package, dir)?;
        eprintln!("{:>12} {} (for a rollback)", "Kept", deb.display());
        Ok(deb)
    }
}

fn run_upgrade(
    repo: Option<String>,
    keyring: Option<PathBuf>,
    within: Duration,
) -> Result<(), Failure> {
    if let Some(key) = &keyring {
        let bytes = std::fs::read(key).map_err(|e| {
            fail(
                anyhow::anyhow!("{}: {e}", key.display()),
                "pass the repository's public key file",
            )
        })?;
        write_atomic(Path::new(upgrade::KEYRING), &bytes).map_err(|e| {
            fail(
                anyhow::anyhow!("{}: {e}", upgrade::KEYRING),
                "run as root; /etc/kentongan must be writable",
            )
        })?;
    }
    if let Some(uri) = &repo {
        if !["http://", "https://", "file:/"]
            .iter()
            .any(|p| uri.starts_with(p))
        {
            return Err(fail(
                anyhow::anyhow!("--repo {uri:?} is not an APT repository address"),
                "use http://HOST/PATH, https://HOST/PATH or file:/PATH (a mounted medium)",
            ));
        }
        if !Path::new(upgrade::KEYRING).exists() {
            return Err(fail(
                anyhow::anyhow!("no key to check {uri} against: {} does not exist", upgrade::KEYRING),
                "pass the repository's public key with --keyring FILE (kentongan-archive-keyring.gpg from `kentongan repo`)",
            ));
        }
        let stanza = upgrade::sources_stanza(uri, Path::new(upgrade::KEYRING));
        write_atomic(Path::new(upgrade::SOURCES_FILE), stanza.as_bytes()).map_err(|e| {
            fail(
                anyhow::anyhow!("{}: {e}", upgrade::SOURCES_FILE),
                "run as root",
            )
        })?;
        eprintln!("{:>12} {} → {uri}", "Source", upgrade::SOURCES_FILE);
    }
    let sources = Path::new(upgrade::SOURCES_FILE).exists();
    match upgrade::upgrade(&mut TimedRunner, &mut ApplianceHooks, sources, within) {
        Ok(done) => {
            for p in &done.packages {
                eprintln!(
                    "{:>12} {} {} → {}",
                    "Upgraded", p.package, p.installed, p.offered
                );
            }
            eprintln!(
                "{:>12} the PBX answers; the backup taken before is {}",
                "Finished",
                done.backup.display()
            );
            Ok(())
        }
        Err(e @ upgrade::UpgradeError::UpToDate(_)) => {
            eprintln!("{e}");
            Ok(())
        }
        Err(e) => Err(fail(
            e,
            "nothing else to do: the message says what state the appliance is in",
        )),
    }
}

fn apply(
    plan: &InstallPlan,
    target_root: Option<PathBuf>,
    source: Option<PathBuf>,
) -> Result<(), Failure> {
    let target = match target_root {
        Some(root) => Target::Directory { root },
        None => Target::Disk {
            device: plan.disk.device.clone(),
            mount: PathBuf::from(install::DEFAULT_MOUNT),
        },
    };
    let source = match (source, &target) {
        (Some(dir), _) => Source::Directory(dir),
        (None, Target::Directory { .. }) => Source::Nothing,
        (None, Target::Disk { .. }) => Source::LiveLayers(PathBuf::from(install::LIVE_LAYERS)),
    };
    let mut status = StatusLines {
        started: Instant::now(),
    };
    install::run(plan, target, source, &mut TimedRunner, &mut status).map_err(|e| {
        let state = if e.disk_touched {
            "the disk is marked unfinished (partition KENTONGAN-INCOMPLETE); running the installer again starts over"
        } else {
            "nothing was written"
        };
        fail(anyhow::anyhow!("{e}; {state}"), e.hint)
    })
}
