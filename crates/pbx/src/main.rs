//! `kentongan-pbx`: the Kentongan phone system daemon and its operator commands.
//!
//! **Owns**: argument parsing, logging setup and the operator-facing error format (`error:` +
//! `hint:` lines, exit 0/1/2). **Does not**: hold any PBX logic; that is the
//! `kentongan_pbx` library (config, store, core, media, daemon).
//!
//! ```text
//! kentongan-pbx --config /etc/kentongan/pbx.toml          # run (foreground, for systemd)
//! kentongan-pbx --config FILE check-config
//! kentongan-pbx --config FILE user add 201 --name "Front desk" --password-stdin [--rights NAME] [--voicemail-pin-stdin] [--email ADDR]
//! kentongan-pbx --config FILE user set 201 [--rights NAME|default] [--email ADDR|none]
//! kentongan-pbx --config FILE user list | user remove 201
//! kentongan-pbx --config FILE cdr list [--json]
//! kentongan-pbx --config FILE calls [--json]
//! kentongan-pbx --config FILE firewall render | firewall apply [--lockdown-on-error]
//! kentongan-pbx --config FILE ban list [--json] | ban remove ADDR | ban add ADDR [--seconds N]
//! kentongan-pbx --config FILE conference list [--json]
//! kentongan-pbx --config FILE conference kick 800 MEMBER | mute 800 MEMBER | lock 800 | unlock 800
//! kentongan-pbx --config FILE forward set 201 all|busy|no-answer NUMBER | forward clear 201 [KIND]
//! kentongan-pbx --config FILE dnd on|off 201
//! kentongan-pbx --config FILE settings show 201 [--json]
//! kentongan-pbx --config FILE trunk list [--json]
//! kentongan-pbx --config FILE lcr explain 081234567890 [--at "mon 10:00"] [--json] | lcr import rates.csv
//! kentongan-pbx --config FILE mikrotik-script [--pbx-address IP] [--wan-list WAN]
//! kentongan-pbx --config FILE voicemail list 201 [--json] | voicemail play 201 ID --out F.wav | voicemail delete 201 ID
//! kentongan-pbx --config FILE voicemail queue [--json]   (voicemail mails not yet sent)
//! kentongan-pbx --config FILE admin add NAME --password-stdin [--role admin|operator]
//! kentongan-pbx --config FILE admin list [--json] | admin remove NAME | admin passwd NAME --password-stdin
//! ```

/// jemalloc instead of glibc's malloc: every SIP message allocates, and under a registration
/// storm glibc's allocator and free lists took a fifth of the daemon's CPU (scripts/bench-pbx).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::{BufRead, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod conference_cli;
mod recordings_cli;
mod report_cli;
mod settings_cli;
mod trunk_cli;
mod voicemail_cli;

use anyhow::Context;
use clap::{Parser, Subcommand};

use kentongan_firewall::nft::{self, NftError};
use kentongan_firewall::ruleset;
use kentongan_pbx::admins::{AdminName, AdminPassword, Role};
use kentongan_pbx::config::Config;
use kentongan_pbx::daemon;
use kentongan_pbx::operator_bans::{self, BanError};
use kentongan_pbx::store::{Extension, Store, VoicemailPin};

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
    /// The nftables firewall rendered from this configuration.
    Firewall {
        #[command(subcommand)]
        command: FirewallCommand,
    },
    /// Sources banned for abuse.
    Ban {
        #[command(subcommand)]
        command: BanCommand,
    },
    /// The spoken prompts: `prompts build` renders them with espeak-ng.
    Prompts {
        #[command(subcommand)]
        command: PromptsCommand,
    },
    /// Conference rooms: who is in them; kick, mute, lock.
    Conference {
        #[command(subcommand)]
        command: conference_cli::ConferenceCommand,
    },
    /// Call forwarding of an extension: `forward set 201 all|busy|no-answer NUMBER`.
    Forward {
        #[command(subcommand)]
        command: settings_cli::ForwardCommand,
    },
    /// Do not disturb: `dnd on 201`, `dnd off 201`.
    Dnd { state: String, extension: String },
    /// An extension's settings: `settings show 201 [--json]`.
    Settings {
        #[command(subcommand)]
        command: settings_cli::SettingsCommand,
    },
    /// Trunks: `trunk list [--json]`.
    Trunk {
        #[command(subcommand)]
        command: trunk_cli::TrunkCommand,
    },
    /// Least-cost routing: `lcr explain NUMBER`, `lcr import rates.csv`.
    Lcr {
        #[command(subcommand)]
        command: trunk_cli::LcrCommand,
    },
    /// Reports over the CDR: `report savings --month 2026-11 [--json]`.
    Report {
        #[command(subcommand)]
        command: report_cli::ReportCommand,
    },
    /// RouterOS commands for the office's MikroTik router (SIP ALG off, port forwards to the PBX).
    MikrotikScript {
        /// The PBX's LAN address (default: the first IPv4 address `sip.listen` names).
        #[arg(long)]
        pbx_address: Option<std::net::Ipv4Addr>,
        /// The router's interface list facing the Internet.
        #[arg(long, default_value = "WAN")]
        wan_list: String,
    },
    /// Voicemail: `voicemail list 201 [--json]`, `play 201 ID --out F.wav`, `delete 201 ID`.
    Voicemail {
        #[command(subcommand)]
        command: voicemail_cli::VoicemailCommand,
    },
    /// Call recordings (`[recording]`): `recordings list [--json]`.
    Recordings {
        #[command(subcommand)]
        command: recordings_cli::RecordingsCommand,
    },
    /// Web admin accounts (argon2id hashes; there is no default account).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Add an account; the password is read from the first line of standard input.
    Add {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        /// admin (everything) or operator (extensions and calls).
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// List accounts: name, role, created (Unix seconds).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account (the last admin-role account cannot be removed).
    Remove { name: String },
    /// Set an account's password, read from the first line of standard input.
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum PromptsCommand {
    /// (Re)generate the prompt set under `[prompts] directory` (default language: `[prompts]`).
    Build {
        #[arg(long)]
        language: Option<String>,
    },
}

#[derive(Subcommand)]
enum FirewallCommand {
    /// Print the ruleset the appliance loads.
    Render,
    /// Load the ruleset into this network namespace and re-add the stored bans.
    Apply {
        /// If the configuration is unusable, load a ruleset that opens no service at all
        /// (the boot unit's choice: a broken config must not leave the box open).
        #[arg(long)]
        lockdown_on_error: bool,
    },
}

#[derive(Subcommand)]
enum BanCommand {
    /// List banned sources: address, seconds left, reason.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Lift a ban (database and kernel); the running daemon follows within a second.
    Remove { addr: String },
    /// Ban a source by hand (database and kernel).
    Add {
        addr: String,
        /// How long; default `firewall.ban_seconds`.
        #[arg(long)]
        seconds: Option<u64>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an extension; the password is read from the first line of standard input, and
    /// with --voicemail-pin-stdin the mailbox PIN (4 to 16 digits) from the next line.
    Add {
        extension: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        voicemail_pin_stdin: bool,
        /// The `[[calling_rights]]` it calls out with (default: all but international and
        /// premium).
        #[arg(long)]
        rights: Option<String>,
        /// The address its voicemail is mailed to (with `[voicemail] smtp`).
        #[arg(long)]
        email: Option<String>,
    },
    /// Change an extension: `--rights NAME` gives it a `[[calling_rights]]` profile
    /// (`--rights default` takes it back to the default rights); `--email ADDR` sets where
    /// its voicemail is mailed (`--email none`: not mailed).
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["rights", "email"])))]
    Set {
        extension: String,
        #[arg(long)]
        rights: Option<String>,
        #[arg(long)]
        email: Option<String>,
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
pub(crate) struct Failure {
    error: anyhow::Error,
    hint: String,
}

/// A `--rights` name: one of `[[calling_rights]]`, or `default` (`None`).
fn check_rights(config: &Config, name: &str) -> Result<Option<String>, Failure> {
    if name == "default" {
        return Ok(None);
    }
    if config.calling_rights.iter().any(|r| r.name == name) {
        return Ok(Some(name.to_owned()));
    }
    let known: Vec<&str> = config
        .calling_rights
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    Err(fail(
        anyhow::anyhow!("there are no calling rights named {name:?}"),
        if known.is_empty() {
            "add a [[calling_rights]] table with that name to the configuration".to_owned()
        } else {
            format!("use one of: default, {}", known.join(", "))
        },
    ))
}

/// `--email`: a plain address, or `none` (no mail).
fn check_email(address: &str) -> Result<Option<String>, Failure> {
    let address = address.trim();
    if address == "none" {
        return Ok(None);
    }
    if kentongan_pbx::config::valid_mail_address(address) {
        return Ok(Some(address.to_owned()));
    }
    Err(fail(
        anyhow::anyhow!("--email {address:?} is not a plain mail address"),
        "give it as name@domain, e.g. --email ani@kantor.local (or --email none to stop mailing)",
    ))
}

pub(crate) fn fail(error: impl Into<anyhow::Error>, hint: impl Into<String>) -> Failure {
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

pub(crate) fn open_store(config: &Config) -> Result<Store, Failure> {
    daemon::open_store(config).map_err(|e| {
        fail(
            e,
            "check `storage.database` and that this user may write to its directory",
        )
    })
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = match load_config(&cli.config) {
        Ok(c) => c,
        Err(f) => {
            if let Some(Command::Firewall {
                command:
                    FirewallCommand::Apply {
                        lockdown_on_error: true,
                    },
            }) = &cli.command
            {
                return Err(lockdown(f));
            }
            return Err(f);
        }
    };
    let Some(command) = cli.command else {
        return run_daemon(&cli.config, config);
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    let io_fail = |e: std::io::Error| fail(e, "standard output was closed");
    match command {
        Command::CheckConfig => {
            // Extensions are in the database: groups are checked against it when there is one.
            if config.database.exists() {
                let store = open_store(&config)?;
                kentongan_pbx::daemon::check_ring_groups(&config, &store).map_err(|e| {
                    fail(
                        anyhow::anyhow!("{}: {e}", cli.config.display()),
                        "fix the key named above, then run `kentongan-pbx --config FILE check-config`",
                    )
                })?;
            }
            eprintln!("config OK: {}", cli.config.display());
        }
        Command::User { command } => {
            let store = open_store(&config)?;
            match command {
                UserCommand::Add {
                    extension,
                    name,
                    password_stdin: _,
                    rights,
                    voicemail_pin_stdin,
                    email,
                } => {
                    // The same rules as the web admin's add form.
                    let ext = kentongan_pbx::web::new_extension(&config, &extension, &name)
                        .map_err(|e| {
                            fail(
                                anyhow::anyhow!("{} {extension:?}: {}", e.field, e.message),
                                "pick another extension number or name; conference rooms are in `[[conference]]`",
                            )
                        })?;
                    let rights = rights
                        .map(|r| check_rights(&config, &r))
                        .transpose()?
                        .flatten();
                    let email = email.map(|e| check_email(&e)).transpose()?.flatten();
                    let mut stdin = std::io::stdin().lock();
                    let mut line = String::new();
                    stdin.read_line(&mut line).map_err(|e| {
                        fail(e, "pipe the password in, e.g. `echo PASSWORD | kentongan-pbx … user add 201 --password-stdin`")
                    })?;
                    let password = line.trim_end_matches(['\r', '\n']).to_owned();
                    if password.is_empty() {
                        return Err(fail(
                            anyhow::anyhow!("no password on standard input"),
                            "pipe the password in, e.g. `echo PASSWORD | kentongan-pbx … user add 201 --password-stdin`",
                        ));
                    }
                    // The PIN is checked before anything is stored, so a bad one adds nothing.
                    let pin_hash = if voicemail_pin_stdin {
                        let hint = "give the password, then the PIN (4 to 16 digits) on the next line, e.g. `printf 'PASSWORD\\n4821\\n' | kentongan-pbx … user add 201 --password-stdin --voicemail-pin-stdin`";
                        let mut pin = String::new();
                        stdin.read_line(&mut pin).map_err(|e| fail(e, hint))?;
                        let pin = VoicemailPin::parse(pin.trim_end_matches(['\r', '\n']))
                            .ok_or_else(|| {
                                fail(
                                    anyhow::anyhow!("the second line of standard input is not a voicemail PIN of 4 to 16 digits"),
                                    hint,
                                )
                            })?;
                        Some(
                            pin.hash()
                                .map_err(|e| fail(e, "report a bug: hashing failed"))?,
                        )
                    } else {
                        None
                    };
                    let extras = kentongan_pbx::store::NewUserExtras {
                        pin_hash: pin_hash.as_deref(),
                        rights: rights.as_deref(),
                        email: email.as_deref(),
                    };
                    store
                        .add_user_with(&ext, &name, &config.domain, &password, &extras)
                        .map_err(|e| {
                            fail(
                                e,
                                "list extensions with `user list`; remove one with `user remove EXT`",
                            )
                        })?;
                    eprintln!("Added extension {ext}");
                }
                UserCommand::Set {
                    extension,
                    rights,
                    email,
                } => {
                    let ext = parse_ext(&extension)?;
                    // Both checked before either is stored.
                    let rights = rights.map(|r| check_rights(&config, &r)).transpose()?;
                    let email = email.map(|e| check_email(&e)).transpose()?;
                    if let Some(rights) = rights {
                        store
                            .set_user_rights(&ext, rights.as_deref())
                            .map_err(|e| fail(e, "list extensions with `user list`"))?;
                        eprintln!(
                            "Extension {ext} now calls out with rights {}",
                            rights.as_deref().unwrap_or("default")
                        );
                    }
                    if let Some(email) = email {
                        store
                            .set_user_email(&ext, email.as_deref())
                            .map_err(|e| fail(e, "list extensions with `user list`"))?;
                        match (config.extension_email(&ext.0), email) {
                            // The file's address wins; say so rather than pretend.
                            (Some(file), _) => eprintln!(
                                "Stored, but voicemail of {ext} is mailed to {file}, the `email` of its [[extension_settings]] in the config file; change or remove it there"
                            ),
                            (None, Some(a)) => eprintln!("Voicemail of {ext} is now mailed to {a}"),
                            (None, None) => eprintln!("Voicemail of {ext} is no longer mailed"),
                        }
                    }
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
                    "start_ms\tcaller\tcallee\tanswer_ms\tend_ms\tduration_s\tdisposition\ttrunk\tnumber\tclass\tcost\ttransferred_by\ttransfer_kind"
                )
                .map_err(io_fail)?;
                for c in cdrs {
                    let o = c.outbound.as_ref();
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{:.3}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        c.start_ms,
                        c.caller,
                        c.callee,
                        c.answer_ms.map_or("-".into(), |a| a.to_string()),
                        c.end_ms,
                        c.duration_s,
                        c.disposition,
                        o.and_then(|o| o.trunk.as_deref()).unwrap_or("-"),
                        o.map_or("-", |o| o.number.as_str()),
                        o.map_or("-", |o| o.class.as_str()),
                        o.and_then(|o| o.cost).map_or("-".into(), |m| m.to_string()),
                        c.transfer
                            .as_ref()
                            .map_or("-", |t| t.transferred_by.as_str()),
                        c.transfer
                            .as_ref()
                            .map_or("-", |t| t.transfer_kind.as_str()),
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
        Command::Firewall { command } => firewall_command(&cli.config, &config, command)?,
        Command::Ban { command } => ban_command(&config, command, &mut out)?,
        Command::Conference { command } => conference_cli::run(&config, command)?,
        Command::Forward { command } => settings_cli::forward(&config, command)?,
        Command::Dnd { state, extension } => settings_cli::dnd(&config, &state, &extension)?,
        Command::Settings { command } => settings_cli::settings(&config, command)?,
        Command::Trunk { command } => trunk_cli::trunk(&config, command)?,
        Command::Lcr { command } => trunk_cli::lcr(&config, command)?,
        Command::Report { command } => report_cli::report(&config, command)?,
        Command::MikrotikScript {
            pbx_address,
            wan_list,
        } => trunk_cli::mikrotik(&config, pbx_address, &wan_list)?,
        Command::Prompts {
            command: PromptsCommand::Build { language },
        } => {
            use kentongan_prompts::{Catalogue, EspeakNg, Language};
            let code = language.unwrap_or_else(|| config.prompts.language.code().to_owned());
            let lang = match code.as_str() {
                "id" => Language::Id,
                "en" => Language::En,
                other => {
                    return Err(fail(
                        anyhow::anyhow!("--language {other:?} is not a prompt language"),
                        "use --language id (Bahasa Indonesia) or --language en (English)",
                    ))
                }
            };
            let catalogue = Catalogue::builtin()
                .map_err(|e| fail(e, "the built-in prompt catalogue is broken: report a bug"))?;
            let report = kentongan_prompts::build(
                &catalogue,
                lang,
                &config.prompts.directory,
                &EspeakNg::default(),
            )
            .map_err(|e| {
                fail(
                    e,
                    "`[prompts] directory` must be writable, and espeak-ng installed (apt-get install espeak-ng)",
                )
            })?;
            eprintln!("{report}");
            // The [[ivr]] greetings are spoken too, so a new menu is ready before the restart.
            let greetings = kentongan_pbx::prompts::ivr_greetings(&config);
            if !greetings.is_empty() {
                let ready = greetings.iter().filter(|g| g.is_some()).count();
                eprintln!("{ready} of {} IVR greetings ready", greetings.len());
            }
        }
        Command::Admin { command } => admin_command(&config, command, &mut out)?,
        Command::Voicemail { command } => voicemail_cli::run(&config, command)?,
        Command::Recordings { command } => recordings_cli::run(&config, command)?,
    }
    Ok(())
}

fn nft_fail(e: NftError) -> Failure {
    let hint = match e {
        NftError::NotInstalled => "install nftables: apt-get install nftables",
        NftError::NotPermitted => "run it as root (sudo), or from the kentongan-firewall service",
        NftError::NoTable => "load the firewall first: kentongan-pbx firewall apply",
        _ => "see nft's message above; `kentongan-pbx firewall render | nft -c -f -` checks the ruleset",
    };
    fail(e, hint)
}

/// Loads the fail-closed ruleset after a configuration error, and reports both.
fn lockdown(config_failure: Failure) -> Failure {
    match nft::load(&ruleset::lockdown()) {
        Ok(()) => fail(
            config_failure.error.context(
                "the configuration is unusable, so the lockdown firewall was loaded: no service is reachable",
            ),
            format!(
                "{}; then run `kentongan-pbx firewall apply` (or restart kentongan-firewall)",
                config_failure.hint
            ),
        ),
        Err(e) => fail(
            config_failure
                .error
                .context(format!("and the lockdown firewall could not be loaded either: {e}")),
            config_failure.hint,
        ),
    }
}

fn firewall_command(path: &Path, config: &Config, command: FirewallCommand) -> Result<(), Failure> {
    let rules = ruleset::render(&config.firewall, &config.firewall_ports());
    match command {
        FirewallCommand::Render => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "# Kentongan firewall, rendered from {} by `kentongan-pbx firewall render`.\n# Change [firewall] there and run `kentongan-pbx firewall apply`; do not edit this output.",
                path.display()
            )
            .and_then(|()| out.write_all(rules.as_bytes()))
            .map_err(|e| fail(e, "standard output was closed"))?;
        }
        FirewallCommand::Apply { .. } => {
            nft::load(&rules).map_err(nft_fail)?;
            let bans = match stored_bans(config)? {
                Some(store) => {
                    let now = now_unix();
                    let bans: Vec<(IpAddr, u64)> = store
                        .bans(now)
                        .map_err(|e| fail(e, "check `storage.database`"))?
                        .iter()
                        .filter_map(|b| {
                            let addr: IpAddr = b.addr.parse().ok()?;
                            (!config.firewall.is_trusted(addr))
                                .then(|| (addr, u64::try_from(b.expires_at - now).unwrap_or(1)))
                        })
                        .collect();
                    nft::add_bans(&bans).map_err(nft_fail)?;
                    bans.len()
                }
                None => 0,
            };
            eprintln!(
                "firewall loaded from {} ({} trusted networks, {bans} stored bans re-applied)",
                path.display(),
                config.firewall.trusted.len()
            );
        }
    }
    Ok(())
}

/// The database, if it exists: the firewall must not create it (as root, before the daemon
/// made it under its own user).
fn stored_bans(config: &Config) -> Result<Option<Store>, Failure> {
    if !config.database.exists() {
        return Ok(None);
    }
    open_store(config).map(Some)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn parse_addr(s: &str) -> Result<IpAddr, Failure> {
    operator_bans::parse_addr(s).map_err(ban_fail)
}

fn ban_fail(e: BanError) -> Failure {
    match e {
        BanError::NotAnAddress(_) => fail(
            e,
            "give one IPv4 or IPv6 address as `ban list` shows them, e.g. 203.0.113.7",
        ),
        BanError::Trusted(_) => fail(
            e,
            "remove its network from `firewall.trusted` first if you really mean to ban it",
        ),
        BanError::NotBanned(_) => fail(e, "see `kentongan-pbx ban list` for the banned addresses"),
        BanError::Nft(e) => nft_fail(e),
        BanError::Store(e) => fail(e, "check `storage.database`"),
    }
}

fn ban_command(
    config: &Config,
    command: BanCommand,
    out: &mut impl std::io::Write,
) -> Result<(), Failure> {
    let io_fail = |e: std::io::Error| fail(e, "standard output was closed");
    let now = now_unix();
    match command {
        BanCommand::List { json } => {
            let store = stored_bans(config)?;
            let rows = operator_bans::list(store.as_ref(), now)
                .map_err(|e| fail(e, "check `storage.database`"))?;
            if json {
                let s = serde_json::to_string_pretty(&rows).unwrap_or_default();
                writeln!(out, "{s}").map_err(io_fail)?;
            } else {
                for r in rows {
                    let left = r.seconds_left.map_or("?".into(), |s| format!("{s}s"));
                    writeln!(out, "{}\t{left}\t{}", r.addr, r.reason).map_err(io_fail)?;
                }
            }
        }
        BanCommand::Remove { addr } => {
            let ip = parse_addr(&addr)?;
            let store = stored_bans(config)?;
            operator_bans::lift(store.as_ref(), ip).map_err(ban_fail)?;
            eprintln!("ban on {ip} lifted");
        }
        BanCommand::Add { addr, seconds } => {
            let ip = parse_addr(&addr)?;
            let secs = seconds
                .unwrap_or(config.firewall.ban_duration.as_secs())
                .max(1);
            let store = open_store(config)?;
            operator_bans::add(
                config,
                &store,
                ip,
                std::time::Duration::from_secs(secs),
                "banned by the operator",
                now,
            )
            .map_err(ban_fail)?;
            eprintln!("{ip} banned for {secs}s");
        }
    }
    Ok(())
}

const PASSWORD_HINT: &str =
    "pipe it in, e.g. `kentongan-pbx … admin add NAME --password-stdin < file`; use 12+ characters, not a common word or the name";

/// The first line of standard input, checked against the admin password policy.
fn admin_password_stdin(name: &AdminName) -> Result<AdminPassword, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| fail(e, PASSWORD_HINT))?;
    AdminPassword::new(name, line.trim_end_matches(['\r', '\n']))
        .map_err(|e| fail(e, PASSWORD_HINT))
}

fn admin_command(
    config: &Config,
    command: AdminCommand,
    out: &mut impl std::io::Write,
) -> Result<(), Failure> {
    let store = open_store(config)?;
    let io_fail = |e: std::io::Error| fail(e, "standard output was closed");
    let parse_name =
        |s: &str| AdminName::parse(s).map_err(|e| fail(e, "e.g. `admin`, `budi` or `siti.ops`"));
    let hash_fail = |e| fail(e, "the system's random source or memory failed; try again");
    match command {
        AdminCommand::Add {
            name,
            password_stdin: _,
            role,
        } => {
            let name = parse_name(&name)?;
            let role =
                Role::parse(&role).map_err(|e| fail(e, "--role admin or --role operator"))?;
            let hash = admin_password_stdin(&name)?.hash().map_err(hash_fail)?;
            store
                .add_admin(&name, &hash, role, now_unix())
                .map_err(|e| fail(e, "list accounts with `admin list`; change a password with `admin passwd NAME --password-stdin`"))?;
            eprintln!("Added admin account {name} ({})", role.as_str());
        }
        AdminCommand::List { json } => {
            let admins = store
                .admins()
                .map_err(|e| fail(e, "check `storage.database`"))?;
            if json {
                let s = serde_json::to_string_pretty(&admins).unwrap_or_default();
                writeln!(out, "{s}").map_err(io_fail)?;
            } else {
                for a in admins {
                    writeln!(out, "{}\t{}\t{}", a.name, a.role.as_str(), a.created)
                        .map_err(io_fail)?;
                }
            }
        }
        AdminCommand::Remove { name } => {
            let name = parse_name(&name)?;
            store
                .remove_admin(&name)
                .map_err(|e| fail(e, "list accounts with `admin list`"))?;
            eprintln!("Removed admin account {name}");
        }
        AdminCommand::Passwd {
            name,
            password_stdin: _,
        } => {
            let name = parse_name(&name)?;
            let hash = admin_password_stdin(&name)?.hash().map_err(hash_fail)?;
            store
                .set_admin_hash(&name, &hash)
                .map_err(|e| fail(e, "list accounts with `admin list`; add one with `admin add NAME --password-stdin`"))?;
            eprintln!("Changed the password of admin account {name}");
        }
    }
    Ok(())
}

pub(crate) fn parse_ext(s: &str) -> Result<Extension, Failure> {
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
