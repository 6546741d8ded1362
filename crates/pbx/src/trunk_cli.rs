//! `kentongan-pbx trunk list`, `lcr explain|import` and `mikrotik-script`: the operator's view
//! of the ways out. The views are `kentongan_pbx::lcr_admin`'s (the web admin shows the same);
//! this module prints them.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use clap::Subcommand;

use kentongan_lcr::mikrotik::{mikrotik_script, MikrotikInput};
use kentongan_pbx::config::{Config, ListenTransport};
use kentongan_pbx::lcr_admin::{self, LcrError};

use crate::{fail, Failure};

#[derive(Subcommand)]
pub enum TrunkCommand {
    /// The configured trunks: kind, address, channels, operator, registration.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum LcrCommand {
    /// How a dialled number would be routed now: normalised number, class, operator and the
    /// ranked routes with their cost for a one-minute call.
    Explain {
        number: String,
        /// The moment to price at, e.g. "mon 10:00" (default: now, local time).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Validates a rates CSV against the configured trunks and installs it as `[lcr].rates`
    /// in one step: every bad line is named, and nothing changes unless all are good.
    Import { file: std::path::PathBuf },
}

pub fn trunk(config: &Config, command: TrunkCommand) -> Result<(), Failure> {
    let TrunkCommand::List { json } = command;
    let store = crate::open_store(config)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let rows = lcr_admin::trunk_status(config, &store, now)
        .map_err(|e| fail(e, "check `storage.database`"))?;
    let mut out = std::io::stdout().lock();
    let text = if json {
        serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
    } else if rows.is_empty() {
        "no trunks: add a [[trunk]] table to the configuration\n".to_owned()
    } else {
        let mut s = String::from("NAME\tKIND\tADDRESS\tCHANNELS\tOPERATOR\tSTATE\tKEEPALIVE\n");
        for r in &rows {
            let state = match (&r.last_failure, r.expires_at) {
                // The provider's reason phrase is printed as data, control characters escaped.
                (Some(f), _) => format!("{} ({})", r.state, f.escape_debug()),
                (None, Some(e)) if r.state == "registered" => {
                    format!("{} (expires in {} s)", r.state, (e - now).max(0))
                }
                _ => r.state.clone(),
            };
            let keepalive = match (r.reachable, &r.down_reason) {
                (Some(true), _) => "up".to_owned(),
                (Some(false), Some(why)) if !why.is_empty() => {
                    format!("down ({})", why.escape_debug())
                }
                (Some(false), _) => "down".to_owned(),
                (None, _) => "-".to_owned(),
            };
            s.push_str(&format!(
                "{}\t{}\t{}\t{}/{}\t{}\t{}\t{}\n",
                r.name,
                r.kind,
                r.address.as_deref().unwrap_or("-"),
                r.channels_in_use,
                r.max_channels
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unlimited".into()),
                r.operator.as_deref().unwrap_or("-"),
                state,
                keepalive
            ));
        }
        s
    };
    out.write_all(text.as_bytes()).map_err(io_fail)
}

fn io_fail(e: std::io::Error) -> Failure {
    fail(e, "stdout was closed")
}

/// A library error as the CLI reports it: the error, then its hint.
pub(crate) fn lcr_fail(e: LcrError) -> Failure {
    let hint = e.hint();
    fail(e, hint)
}

pub fn lcr(config: &Config, command: LcrCommand) -> Result<(), Failure> {
    match command {
        LcrCommand::Explain { number, at, json } => {
            let at = match at {
                Some(text) => lcr_admin::parse_at(&text).ok_or_else(|| {
                    fail(
                        anyhow::anyhow!("--at {text:?} is not a weekday and a time"),
                        "write it like \"mon 10:00\" or \"sat 21:30\"",
                    )
                })?,
                None => lcr_admin::now_local().ok_or_else(|| {
                    fail(
                        anyhow::anyhow!("the clock gives no time of day"),
                        "pass the moment: --at \"mon 10:00\"",
                    )
                })?,
            };
            let store = crate::open_store(config)?;
            let explanation =
                lcr_admin::explain_number(config, &store, &number, at).map_err(lcr_fail)?;
            let text = if json {
                serde_json::to_string_pretty(&explanation).unwrap_or_default() + "\n"
            } else {
                explanation.to_text()
            };
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(io_fail)
        }
        LcrCommand::Import { file } => {
            let lcr = lcr_admin::lcr_config(config).map_err(lcr_fail)?;
            let text = std::fs::read_to_string(&file).map_err(|e| {
                fail(
                    anyhow::Error::new(e)
                        .context(format!("cannot read the rates file {}", file.display())),
                    "give the path of a readable CSV file",
                )
            })?;
            // Parsed and checked against the trunks before anything is written.
            let table = lcr_admin::import_rates(config, &file.display().to_string(), &text)
                .map_err(lcr_fail)?;
            println!(
                "imported {} rates for {} trunks into {}; a running daemon uses them after `systemctl reload kentongan-pbx`",
                table.rates().len(),
                table.trunks().len(),
                lcr.rates.display()
            );
            Ok(())
        }
    }
}

pub fn mikrotik(
    config: &Config,
    pbx_address: Option<Ipv4Addr>,
    wan_list: &str,
) -> Result<(), Failure> {
    let listen_v4 = config.listen.iter().find_map(|l| match l.addr.ip() {
        IpAddr::V4(a) if !a.is_unspecified() && !a.is_loopback() => Some(a),
        _ => None,
    });
    let pbx = pbx_address.or(listen_v4).ok_or_else(|| {
        fail(
            anyhow::anyhow!("the PBX listens on every address, so its LAN address is not known"),
            "pass it: `kentongan-pbx --config FILE mikrotik-script --pbx-address 192.168.88.10`",
        )
    })?;
    let mut sip_udp: Vec<u16> = Vec::new();
    let mut sip_tcp: Vec<u16> = Vec::new();
    for l in &config.listen {
        let list = match l.transport {
            ListenTransport::Udp => &mut sip_udp,
            ListenTransport::Tcp | ListenTransport::Tls => &mut sip_tcp,
        };
        if !list.contains(&l.addr.port()) {
            list.push(l.addr.port());
        }
    }
    let input = MikrotikInput {
        pbx,
        sip_udp,
        sip_tcp,
        rtp: (config.rtp_ports.low, config.rtp_ports.high),
        trusted: config
            .firewall
            .trusted
            .iter()
            .map(|c| c.to_string())
            .collect(),
        wan_list: wan_list.to_owned(),
    };
    let script = mikrotik_script(&input).map_err(|e| {
        fail(
            anyhow::anyhow!("{e}"),
            "fix the configuration value named above",
        )
    })?;
    std::io::stdout()
        .lock()
        .write_all(script.as_bytes())
        .map_err(io_fail)
}
