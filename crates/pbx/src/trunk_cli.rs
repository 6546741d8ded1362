//! `kentongan-pbx trunk list`, `lcr explain|import` and `mikrotik-script`: the operator's view
//! of the ways out. The decisions are kentongan-lcr's; this module reads the files the
//! configuration names and prints.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use clap::Subcommand;
use serde::Serialize;

use kentongan_lcr::config::LcrConfig;
use kentongan_lcr::explain::explain;
use kentongan_lcr::lcr::{Router, TrunkKind};
use kentongan_lcr::mikrotik::{mikrotik_script, MikrotikInput};
use kentongan_lcr::operators::OperatorTable;
use kentongan_lcr::rates::{RateTable, TrunkName};
use kentongan_lcr::time::{LocalTime, Weekday};
use kentongan_pbx::config::{Config, ListenTransport};
use kentongan_pbx::routing::outbound::{local_time_at, posix_offset_seconds};

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

#[derive(Serialize)]
struct TrunkRow<'a> {
    name: &'a str,
    kind: &'static str,
    address: Option<&'a str>,
    register: bool,
    username: Option<&'a str>,
    max_channels: Option<u32>,
    operator: Option<&'a str>,
    caller_id: Option<&'a str>,
    /// What the daemon last saw of our registration to a provider: "registered",
    /// "registering", "failed" or "not registered" (no daemon has tried); a gateway's is
    /// "registered" while its device has a current registration to us, else "not
    /// registered". A provider without `register` is "unknown".
    state: String,
    /// The last failure (the provider's answer, a timeout), while failed.
    last_failure: Option<String>,
    /// Unix seconds the registration runs out at.
    expires_at: Option<i64>,
    /// Calls on the trunk now (in and out), as the daemon last mirrored it.
    channels_in_use: u32,
    /// OPTIONS keepalives: `true`/`false` once probed, `null` without `keepalive_seconds`.
    reachable: Option<bool>,
    /// Why it is down, while down.
    down_reason: Option<String>,
}

pub fn trunk(config: &Config, command: TrunkCommand) -> Result<(), Failure> {
    let TrunkCommand::List { json } = command;
    let store = crate::open_store(config)?;
    let states = store
        .trunk_states()
        .map_err(|e| fail(e, "check `storage.database`"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let health = store
        .trunk_health()
        .map_err(|e| fail(e, "check `storage.database`"))?;
    // A gateway's state is its device's registration to us, under the trunk's username.
    let bindings = store
        .bindings(now)
        .map_err(|e| fail(e, "check `storage.database`"))?;
    let rows: Vec<TrunkRow> = config
        .trunks
        .iter()
        .map(|t| {
            let seen = states
                .iter()
                .find(|s| s.name == t.name.as_str())
                .filter(|_| t.register);
            let gateway = (t.kind == TrunkKind::Gateway).then(|| {
                bindings
                    .iter()
                    .filter(|b| Some(b.extension.0.as_str()) == t.username.as_deref())
                    .max_by_key(|b| b.expires_at)
            });
            let (state, last_failure, expires_at) = match (seen, gateway) {
                (_, Some(Some(b))) => ("registered".to_owned(), None, Some(b.expires_at)),
                (_, Some(None)) => ("not registered".to_owned(), None, None),
                (seen, None) => match seen {
                    None if t.register => ("not registered".to_owned(), None, None),
                    None => ("unknown".to_owned(), None, None),
                    Some(s) if s.state == "registered" && s.expires_at.is_some_and(|e| e < now) => {
                        ("expired".to_owned(), None, s.expires_at)
                    }
                    Some(s) if s.state == "failed" => {
                        ("failed".to_owned(), Some(s.detail.clone()), None)
                    }
                    Some(s) => (s.state.clone(), None, s.expires_at),
                },
            };
            let registered_from = gateway.flatten().map(|b| b.source.as_str());
            let h = health.iter().find(|h| h.name == t.name.as_str());
            let reachable = h.and_then(|h| h.reachable);
            TrunkRow {
                name: t.name.as_str(),
                kind: t.kind.name(),
                address: t.address.as_deref().or(registered_from),
                register: t.register,
                username: t.username.as_deref(),
                max_channels: t.max_channels,
                operator: t.operator.as_ref().map(|o| o.as_str()),
                caller_id: t.caller_id.as_deref(),
                state,
                last_failure,
                expires_at,
                channels_in_use: h.map_or(0, |h| h.channels_in_use),
                reachable,
                down_reason: h
                    .filter(|h| h.reachable == Some(false))
                    .map(|h| h.detail.clone()),
            }
        })
        .collect();
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
                r.address.unwrap_or("-"),
                r.channels_in_use,
                r.max_channels
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unlimited".into()),
                r.operator.unwrap_or("-"),
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

pub(crate) fn lcr_config(config: &Config) -> Result<&LcrConfig, Failure> {
    config.lcr.as_ref().ok_or_else(|| {
        fail(
            anyhow::anyhow!("the configuration has no [lcr] table"),
            "add [lcr] with `rates = \"/etc/kentongan/rates.csv\"` and `country = \"62\"`",
        )
    })
}

fn read(path: &Path, what: &str, hint: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        fail(
            anyhow::Error::new(e).context(format!("cannot read {what} {}", path.display())),
            hint.to_owned(),
        )
    })
}

fn trunk_names(config: &Config) -> Vec<TrunkName> {
    config.trunks.iter().map(|t| t.name.clone()).collect()
}

/// `lcr.operators`, or the Indonesian table built into the binary while no file is there.
fn operators(lcr: &LcrConfig) -> Result<OperatorTable, Failure> {
    if !lcr.operators.exists() {
        return OperatorTable::indonesia().map_err(|e| {
            fail(
                anyhow::anyhow!("the built-in operators table: {e}"),
                "write your own operators.csv and set `lcr.operators` to it",
            )
        });
    }
    let text = read(
        &lcr.operators,
        "the operators file",
        "make the file readable, or delete it to use the built-in Indonesian table",
    )?;
    OperatorTable::parse(&text).map_err(|e| {
        let hint = e.hint();
        fail(anyhow::anyhow!("{}: {e}", lcr.operators.display()), hint)
    })
}

/// Reads a rates file; the text and the table it makes for the configured trunks.
fn rates(config: &Config, path: &Path) -> Result<(String, RateTable), Failure> {
    let text = read(
        path,
        "the rates file",
        "load one with `kentongan-pbx lcr import rates.csv`",
    )?;
    let table = RateTable::parse_for_trunks(&text, &trunk_names(config)).map_err(|e| {
        let hint = e.hint();
        fail(anyhow::anyhow!("{}: {e}", path.display()), hint)
    })?;
    Ok((text, table))
}

pub(crate) fn router(config: &Config, lcr: &LcrConfig) -> Result<Router, Failure> {
    let (_, rates) = rates(config, &lcr.rates)?;
    let emergency = lcr
        .emergency_trunks()
        .map_err(|e| fail(anyhow::anyhow!("{e}"), "fix `lcr.emergency_order`"))?;
    Router::new(
        &rates,
        config.trunks.iter().map(|t| t.facts()).collect(),
        operators(lcr)?,
        &emergency,
    )
    .map_err(|e| {
        let hint = e.hint();
        fail(anyhow::anyhow!("{e}"), hint)
    })
}

pub fn lcr(config: &Config, command: LcrCommand) -> Result<(), Failure> {
    let lcr = lcr_config(config)?;
    match command {
        LcrCommand::Explain { number, at, json } => {
            let router = router(config, lcr)?;
            let plan = lcr
                .numbering_plan()
                .map_err(|e| fail(anyhow::anyhow!("{e}"), "fix `lcr.country`"))?;
            let at = match at {
                Some(text) => parse_at(&text)?,
                None => now_local()?,
            };
            let store = crate::open_store(config)?;
            let users = store
                .users()
                .map_err(|e| fail(e, "check `storage.database`"))?;
            let is_extension = |d: &str| users.iter().any(|u| u.extension.0 == d);
            let idle = vec![0; config.trunks.len()];
            let explanation =
                explain(&router, &plan, &number, is_extension, at, &idle).map_err(|e| {
                    fail(
                        anyhow::anyhow!("{number:?}: {e}"),
                        "dial as a phone would: 0812…, 021…, +62…, 00… or an emergency number",
                    )
                })?;
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
            // Parsed and checked against the trunks before anything is written.
            let (text, table) = rates(config, &file)?;
            write_atomically(&lcr.rates, text.as_bytes()).map_err(|e| {
                fail(
                    e.context(format!("cannot install {}", lcr.rates.display())),
                    "check that the folder of `lcr.rates` exists and is writable",
                )
            })?;
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

/// Writes `bytes` beside `path` and renames it over: readers see the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{} is not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// "mon 10:00" → a moment of the week.
fn parse_at(text: &str) -> Result<LocalTime, Failure> {
    let bad = || {
        fail(
            anyhow::anyhow!("--at {text:?} is not a weekday and a time"),
            "write it like \"mon 10:00\" or \"sat 21:30\"",
        )
    };
    let (day, time) = text.trim().split_once(' ').ok_or_else(bad)?;
    let day = Weekday::from_name(&day.to_ascii_lowercase()).ok_or_else(bad)?;
    let (h, m) = time.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u8, u8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    LocalTime::new(day, h, m).ok_or_else(bad)
}

/// Now, in the appliance's time zone: the fixed offset of `/etc/localtime`'s POSIX rule
/// (Indonesia keeps no daylight saving time), or UTC when there is none.
fn now_local() -> Result<LocalTime, Failure> {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let offset = std::fs::read("/etc/localtime")
        .ok()
        .and_then(|b| posix_offset_seconds(&String::from_utf8_lossy(&b)))
        .unwrap_or(0);
    local_time_at(unix + offset).ok_or_else(|| {
        fail(
            anyhow::anyhow!("the clock gives no time of day"),
            "pass the moment: --at \"mon 10:00\"",
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_parsed_or_named() {
        assert!(parse_at("mon 10:00").is_ok());
        assert!(parse_at("Sat 21:30").is_ok());
        for bad in ["monday", "mon 25:00", "xyz 10:00", "mon 10"] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }
}
