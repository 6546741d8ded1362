//! `kentongan-pbx`: the Kentongan phone system daemon and its operator commands.
//!
//! **Owns**: argument parsing, logging setup and the operator-facing error format (`error:` +
//! `hint:` lines, exit 0/1/2). **Does not**: hold any PBX logic; that is the
//! `kentongan_pbx` library (config, store, core, media, daemon).
//!
//! ```text
//! kentongan-pbx --config /etc/kentongan/pbx.toml          # run (foreground, for systemd)
//! kentongan-pbx --config FILE check-config
//! kentongan-pbx --config FILE user add 201 --name "Front desk" --password-stdin
//! kentongan-pbx --config FILE user list | user remove 201
//! kentongan-pbx --config FILE cdr list [--json]
//! kentongan-pbx --config FILE calls [--json]
//! ```

use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use kentongan_pbx::config::Config;
use kentongan_pbx::daemon;
use kentongan_pbx::store::{Extension, Store};

#[derive(Parser)]
#[command(name = "kentongan-pbx", version, about = "The Kentongan PBX daemon")]
struct Cli {
    /// Configuration file.
    #[arg(long, default_value = "/etc/kentongan/pbx.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration file; exit non-zero with reasons.
    CheckConfig,
    /// Manage extensions.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Call detail records.
    Cdr {
        #[command(subcommand)]
        command: CdrCommand,
    },
    /// Calls in progress (as the running daemon mirrors them into the database).
    Calls {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an extension; the password is read from the first line of standard input.
    Add {
        extension: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List extensions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an extension (and its registrations).
    Remove { extension: String },
}

#[derive(Subcommand)]
enum CdrCommand {
    /// List call detail records, oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// An error with the operator's next step.
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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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

fn load_config(path: &Path) -> Result<Config, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(
            anyhow::Error::new(e).context(format!("could not read {}", path.display())),
            "pass the configuration file with --config FILE",
        )
    })?;
    Config::from_toml(&text).map_err(|e| {
        fail(
            anyhow::anyhow!("{}: {e}", path.display()),
            "fix the key named above, then run `kentongan-pbx --config FILE check-config`",
        )
    })
}

fn open_store(config: &Config) -> Result<Store, Failure> {
    daemon::open_store(config).map_err(|e| {
        fail(
            e,
            "check `storage.database` and that this user may write to its directory",
        )
    })
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = load_config(&cli.config)?;
    let Some(command) = cli.command else {
        return run_daemon(&cli.config, config);
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    let io_fail = |e: std::io::Error| fail(e, "standard output was closed");
    match command {
        Command::CheckConfig => {
            eprintln!("config OK: {}", cli.config.display());
        }
        Command::User { command } => {
            let store = open_store(&config)?;
            match command {
                UserCommand::Add {
                    extension,
                    name,
                    password_stdin: _,
                } => {
                    let ext = parse_ext(&extension)?;
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                        fail(e, "pipe the password in, e.g. `echo PASSWORD | kentongan-pbx … user add 201 --password-stdin`")
                    })?;
                    let password = line.trim_end_matches(['\r', '\n']);
                    if password.is_empty() {
                        return Err(fail(
                            anyhow::anyhow!("no password on standard input"),
                            "pipe the password in, e.g. `echo PASSWORD | kentongan-pbx … user add 201 --password-stdin`",
                        ));
                    }
                    store
                        .add_user(&ext, &name, &config.domain, password)
                        .map_err(|e| fail(e, "list extensions with `user list`; remove one with `user remove EXT`"))?;
                    eprintln!("Added extension {ext}");
                }
                UserCommand::List { json } => {
                    let users = store
                        .users()
                        .map_err(|e| fail(e, "check `storage.database`"))?;
                    if json {
                        let s = serde_json::to_string_pretty(&users).unwrap_or_default();
                        writeln!(out, "{s}").map_err(io_fail)?;
                    } else {
                        for u in users {
                            writeln!(out, "{}\t{}", u.extension, u.name).map_err(io_fail)?;
                        }
                    }
                }
                UserCommand::Remove { extension } => {
                    let ext = parse_ext(&extension)?;
                    store
                        .remove_user(&ext)
                        .map_err(|e| fail(e, "list extensions with `user list`"))?;
                    eprintln!("Removed extension {ext}");
                }
            }
        }
        Command::Cdr {
            command: CdrCommand::List { json },
        } => {
            let store = open_store(&config)?;
            let cdrs = store
                .cdrs()
                .map_err(|e| fail(e, "check `storage.database`"))?;
            if json {
                let s = serde_json::to_string_pretty(&cdrs).unwrap_or_default();
                writeln!(out, "{s}").map_err(io_fail)?;
            } else {
                writeln!(
                    out,
                    "start_ms\tcaller\tcallee\tanswer_ms\tend_ms\tduration_s\tdisposition"
                )
                .map_err(io_fail)?;
                for c in cdrs {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{:.3}\t{}",
                        c.start_ms,
                        c.caller,
                        c.callee,
                        c.answer_ms.map_or("-".into(), |a| a.to_string()),
                        c.end_ms,
                        c.duration_s,
                        c.disposition
                    )
                    .map_err(io_fail)?;
                }
            }
        }
        Command::Calls { json } => {
            let store = open_store(&config)?;
            let calls = store
                .live_calls()
                .map_err(|e| fail(e, "check `storage.database`"))?;
            if json {
                let s = serde_json::to_string_pretty(&calls).unwrap_or_default();
                writeln!(out, "{s}").map_err(io_fail)?;
            } else {
                for c in calls {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}",
                        c.call_id, c.caller, c.callee, c.state, c.start_ms
                    )
                    .map_err(io_fail)?;
                }
            }
        }
    }
    Ok(())
}

fn parse_ext(s: &str) -> Result<Extension, Failure> {
    Extension::parse(s).ok_or_else(|| {
        fail(
            anyhow::anyhow!("{s:?} is not a valid extension"),
            "use 1-32 letters, digits, '.', '-' or '_', e.g. 201",
        )
    })
}

fn run_daemon(path: &Path, config: Config) -> Result<(), Failure> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KENTONGAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
        .map_err(|e| fail(e, "this is a bug; please report it"))?;
    rt.block_on(daemon::run(path, config)).map_err(|e| {
        fail(
            e,
            "check the addresses in `sip.listen` and `metrics.listen` are free, and `storage.database` is writable",
        )
    })
}
