//! The checks a booted appliance must pass, shared by `kentongan boot-test` and the e2e tests.
//!
//! A [`Check`] names one property, says which host port forwards it needs
//! ([`Check::forwards`]) and proves the property on a running [`Machine`]. Later checks (the
//! PBX answering SIP OPTIONS with 200 over the forwarded UDP port, a registration) become new
//! variants: they declare their forward, then talk to `machine.host_port(..)` from the host.

use std::time::Duration;

use crate::config::{Forward, Proto};
use crate::error::VmError;
use crate::machine::Machine;
use crate::sip_probe::SipProbe;

/// What the default appliance image promises; data, so a test can expect another image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceFacts {
    pub hostname: String,
    /// `KEY=value` lines `/etc/kentongan/release` must contain.
    pub release: Vec<(String, String)>,
    /// `family name` of the nftables table the firewall loads.
    pub nft_table: String,
    /// The PBX's SIP domain and UDP port inside the guest.
    pub sip_domain: String,
    pub sip_port: u16,
}

impl Default for ApplianceFacts {
    /// What `image-recipes/appliance.toml` builds.
    fn default() -> ApplianceFacts {
        ApplianceFacts {
            hostname: "kentongan".into(),
            release: vec![("NAME".into(), "Kentongan".into())],
            nft_table: "inet kentongan".into(),
            sip_domain: "pbx.local".into(),
            sip_port: 5060,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The guest agent answers: systemd started multi-user.target's units.
    AgentReady,
    /// `systemctl is-system-running --wait` reports `running` (not `degraded`).
    SystemRunning,
    /// `systemctl --failed` lists nothing.
    NoFailedUnits,
    /// `nft list ruleset` holds the appliance's table.
    FirewallLoaded {
        table: String,
    },
    Hostname(String),
    /// `/etc/kentongan/release` exists and holds these `KEY=value` lines.
    Release(Vec<(String, String)>),
    /// The PBX answers SIP OPTIONS from the host, over the forwarded UDP port, with 200.
    SipOptions {
        domain: String,
        port: u16,
    },
    /// An extension made for this run (random password, through the PBX's own `user add`)
    /// registers from the host over the forwarded UDP port: 401 challenge, then 200.
    SipRegister {
        domain: String,
        port: u16,
    },
}

/// Every check of the default appliance image, in the order they make sense.
pub fn appliance_checks(facts: &ApplianceFacts) -> Vec<Check> {
    vec![
        Check::AgentReady,
        Check::SystemRunning,
        Check::NoFailedUnits,
        Check::FirewallLoaded {
            table: facts.nft_table.clone(),
        },
        Check::Hostname(facts.hostname.clone()),
        Check::Release(facts.release.clone()),
        Check::SipOptions {
            domain: facts.sip_domain.clone(),
            port: facts.sip_port,
        },
        Check::SipRegister {
            domain: facts.sip_domain.clone(),
            port: facts.sip_port,
        },
    ]
}

/// One check that did not pass.
#[derive(Debug, thiserror::Error)]
#[error("check `{check}` failed")]
pub struct CheckFailure {
    pub check: &'static str,
    #[source]
    pub error: VmError,
}

impl Check {
    /// A short stable name for logs and exit messages.
    pub fn name(&self) -> &'static str {
        match self {
            Check::AgentReady => "agent-ready",
            Check::SystemRunning => "system-running",
            Check::NoFailedUnits => "no-failed-units",
            Check::FirewallLoaded { .. } => "firewall-loaded",
            Check::Hostname(_) => "hostname",
            Check::Release(_) => "release-file",
            Check::SipOptions { .. } => "sip-options",
            Check::SipRegister { .. } => "sip-register",
        }
    }

    /// Host port forwards the check needs when the machine starts.
    pub fn forwards(&self) -> Vec<Forward> {
        match self {
            Check::SipOptions { port, .. } | Check::SipRegister { port, .. } => {
                vec![Forward::to_guest(Proto::Udp, *port)]
            }
            _ => Vec::new(),
        }
    }

    /// Proves the property; returns a one-line summary of what was seen.
    pub fn run(&self, m: &mut Machine, boot_timeout: Duration) -> Result<String, VmError> {
        let serial = m.serial_log().to_owned();
        let failed = |message: String| VmError::Unexpected {
            message,
            detail: String::new(),
            serial: serial.clone(),
        };
        match self {
            Check::AgentReady => {
                m.wait_for_agent(boot_timeout)?;
                Ok(format!("after {}s", m.elapsed().as_secs()))
            }
            Check::SystemRunning => {
                // `--wait` returns once the boot job queue is empty: `running` or `degraded`.
                let out = m.execute_with_timeout(
                    "systemctl is-system-running --wait",
                    Duration::from_secs(60),
                )?;
                let state = out.stdout.trim().to_owned();
                if state == "running" {
                    return Ok(format!("running after {}s", m.elapsed().as_secs()));
                }
                let (units, detail) = failed_units(m);
                Err(VmError::Unexpected {
                    message: format!("the system is `{state}`, not `running`{units}"),
                    detail,
                    serial,
                })
            }
            Check::NoFailedUnits => {
                let list = m.succeed("systemctl --failed --no-legend --plain --no-pager")?;
                if list.trim().is_empty() {
                    return Ok("none".into());
                }
                let (units, detail) = failed_units(m);
                Err(VmError::Unexpected {
                    message: format!("units failed{units}"),
                    detail,
                    serial,
                })
            }
            Check::FirewallLoaded { table } => {
                let rules = m.succeed("nft list ruleset")?;
                let wanted = format!("table {table}");
                if rules
                    .lines()
                    .any(|l| l.trim_end().trim_end_matches('{').trim() == wanted)
                {
                    return Ok(wanted);
                }
                Err(failed(format!(
                    "`nft list ruleset` has no `{wanted}` ({} lines)",
                    rules.lines().count()
                )))
            }
            Check::Hostname(want) => {
                let got = m.succeed("hostname")?.trim().to_owned();
                if &got == want {
                    Ok(got)
                } else {
                    Err(failed(format!("hostname is `{got}`, expected `{want}`")))
                }
            }
            Check::SipOptions { domain, port } => {
                let mut probe = probe(m, domain, *port, "opt")?;
                let answer = probe
                    .options(Duration::from_secs(60))
                    .map_err(|e| failed(format!("OPTIONS: {e}")))?;
                if answer.status.0 == 200 {
                    Ok(format!(
                        "200 {} from the forwarded UDP port after {}s",
                        answer.reason,
                        m.elapsed().as_secs()
                    ))
                } else {
                    Err(failed(format!(
                        "OPTIONS answered {} {}, expected 200",
                        answer.status.0, answer.reason
                    )))
                }
            }
            Check::SipRegister { domain, port } => {
                let extension = "299";
                let password = fresh_secret(m)?;
                m.succeed(&format!(
                    "printf '%s' '{password}' | kentongan-pbx --config /etc/kentongan/pbx.toml \
                     user add {extension} --name boot-test --password-stdin >/dev/null"
                ))?;
                let mut probe = probe(m, domain, *port, "reg")?;
                let result = probe.register(extension, &password);
                // The extension exists only for this check.
                let _ = m.execute(&format!(
                    "kentongan-pbx --config /etc/kentongan/pbx.toml user remove {extension}"
                ));
                let answer = result.map_err(|e| failed(format!("REGISTER: {e}")))?;
                if answer.status.0 == 200 {
                    Ok(format!("extension {extension}: 401 challenge, then 200"))
                } else {
                    Err(failed(format!(
                        "REGISTER with the right password answered {} {}, expected 200",
                        answer.status.0, answer.reason
                    )))
                }
            }
            Check::Release(pairs) => {
                let text = m.succeed("cat /etc/kentongan/release")?;
                let missing = missing_release_lines(&text, pairs);
                if missing.is_empty() {
                    Ok(text.lines().collect::<Vec<_>>().join(" "))
                } else {
                    Err(failed(format!(
                        "/etc/kentongan/release lacks {}",
                        missing.join(", ")
                    )))
                }
            }
        }
    }
}

fn probe(m: &Machine, domain: &str, guest_port: u16, kind: &str) -> Result<SipProbe, VmError> {
    let serial = m.serial_log().to_owned();
    let port = m
        .host_port(Proto::Udp, guest_port)
        .ok_or_else(|| VmError::Unexpected {
            message: format!("no host port forwards to guest UDP {guest_port}"),
            detail: String::new(),
            serial: serial.clone(),
        })?;
    let salt = format!("{kind}{}", &fresh_secret(m)?[..12]);
    SipProbe::new(port, domain, &salt).map_err(|e| VmError::Unexpected {
        message: e.to_string(),
        detail: String::new(),
        serial,
    })
}

/// 32 random hex digits, for a throwaway password or SIP identifiers.
fn fresh_secret(m: &Machine) -> Result<String, VmError> {
    crate::machine::random_token()
        .map(|t| t[..32].to_owned())
        .map_err(|source| VmError::Io {
            context: format!(
                "cannot read /dev/urandom (serial log {})",
                m.serial_log().display()
            ),
            source,
        })
}

/// `KEY=value` pairs not present in an os-release style file.
pub fn missing_release_lines(text: &str, pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, v)| {
            !text.lines().any(|l| {
                l.split_once('=')
                    .is_some_and(|(lk, lv)| lk.trim() == k && lv.trim().trim_matches('"') == v)
            })
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// `(": a.service b.service", journal lines)` of the failed units, for an error message
/// worth reading.
fn failed_units(m: &mut Machine) -> (String, String) {
    let Ok(list) = m.succeed("systemctl --failed --no-legend --plain --no-pager") else {
        return (String::new(), String::new());
    };
    let units: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    if units.is_empty() {
        return (String::new(), String::new());
    }
    let mut detail = String::new();
    for unit in units.iter().take(3) {
        if let Ok(log) = m.succeed(&format!(
            "journalctl -b --no-pager -o cat -n 6 -u '{unit}' 2>&1"
        )) {
            detail.push_str(&format!("\n  journal of {unit}:"));
            for line in log.lines() {
                detail.push_str(&format!("\n    | {line}"));
            }
        }
    }
    (format!(": {}", units.join(" ")), detail)
}

/// Runs `checks` in order and stops at the first failure; `report` hears each result.
pub fn run_checks(
    m: &mut Machine,
    checks: &[Check],
    boot_timeout: Duration,
    mut report: impl FnMut(&Check, &Result<String, VmError>),
) -> Result<(), CheckFailure> {
    for check in checks {
        let result = check.run(m, boot_timeout);
        report(check, &result);
        if let Err(error) = result {
            return Err(CheckFailure {
                check: check.name(),
                error,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lines() {
        let text = "NAME=Kentongan\nVERSION=\"0.1.0\"\nIMAGE=kentongan\n";
        let want = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(missing_release_lines(text, &want("VERSION", "0.1.0")).is_empty());
        assert_eq!(
            missing_release_lines(text, &want("NAME", "Other")),
            ["NAME=Other"]
        );
    }

    #[test]
    fn check_names_are_unique() {
        let checks = appliance_checks(&ApplianceFacts::default());
        let mut names: Vec<_> = checks.iter().map(Check::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), checks.len());
        assert_eq!(checks[0], Check::AgentReady);
    }
}
