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
use crate::sip_probe::{tcp_options, ProbeError, SipProbe};

/// A port the firewall never opens; the firewall check runs a throwaway SIP listener there.
const DECOY_PORT: u16 = 5070;
/// Where QEMU's user network makes forwarded connections come from, seen from the guest.
const SLIRP_HOST: &str = "10.0.2.2";

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
    /// Only the expected ports answer: the PBX over forwarded UDP and TCP does; a SIP listener
    /// started for the check on a port the firewall does not open answers neither over UDP
    /// nor TCP, and does once a rule opens it (so the silence was the firewall's doing).
    FirewallPorts {
        domain: String,
        port: u16,
    },
    /// The guest booted with Secure Boot on: the firmware's `SecureBoot` variable is 1,
    /// `mokutil --sb-state` agrees, and the kernel locked itself down as Debian's does then.
    SecureBoot,
    /// An OPTIONS with a scanner's User-Agent gets no answer and its source lands in the
    /// kernel's ban set, through the hardened daemon's own `nft`; `ban remove` lifts it.
    ScannerBanned {
        domain: String,
        port: u16,
    },
}

/// The UEFI global variable that says whether Secure Boot is enforced.
const SECURE_BOOT_VAR: &str =
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// [`appliance_checks`] plus what the firmware promises: with Secure Boot firmware, that the
/// guest really runs with Secure Boot on (right after the boot itself is proven).
pub fn firmware_checks(facts: &ApplianceFacts, firmware: crate::Firmware) -> Vec<Check> {
    let mut checks = appliance_checks(facts);
    if firmware == crate::Firmware::UefiSecureBoot {
        checks.insert(1, Check::SecureBoot);
    }
    checks
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
        Check::FirewallPorts {
            domain: facts.sip_domain.clone(),
            port: facts.sip_port,
        },
        Check::ScannerBanned {
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
            Check::FirewallPorts { .. } => "firewall-ports",
            Check::ScannerBanned { .. } => "sip-scanner-banned",
            Check::SecureBoot => "secure-boot",
        }
    }

    /// Host port forwards the check needs when the machine starts.
    pub fn forwards(&self) -> Vec<Forward> {
        match self {
            Check::SipOptions { port, .. }
            | Check::SipRegister { port, .. }
            | Check::ScannerBanned { port, .. } => {
                vec![Forward::to_guest(Proto::Udp, *port)]
            }
            Check::FirewallPorts { port, .. } => vec![
                Forward::to_guest(Proto::Udp, *port),
                Forward::to_guest(Proto::Tcp, *port),
                Forward::to_guest(Proto::Udp, DECOY_PORT),
                Forward::to_guest(Proto::Tcp, DECOY_PORT),
            ],
            _ => Vec::new(),
        }
    }

    /// Proves the property; returns a one-line summary of what was seen.
    pub fn run(&self, m: &mut Machine, boot_timeout: Duration) -> Result<String, VmError> {
        let serial = m.serial_log().to_owned();
        let failed = failure(m);
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
            Check::SecureBoot => {
                // 4 bytes of attributes, then the value.
                let var = m.succeed(&format!("od -An -tu1 -j4 -N1 {SECURE_BOOT_VAR}"))?;
                if var.trim() != "1" {
                    return Err(failed(format!(
                        "the firmware's SecureBoot variable is `{}`, expected 1",
                        var.trim()
                    )));
                }
                let state = m.succeed("mokutil --sb-state")?;
                if !state.contains("SecureBoot enabled") {
                    return Err(failed(format!(
                        "`mokutil --sb-state` says `{}`",
                        state.trim()
                    )));
                }
                let lockdown = m.succeed("cat /sys/kernel/security/lockdown")?;
                if lockdown.contains("[none]") {
                    return Err(failed(format!(
                        "the kernel is not locked down under Secure Boot: `{}`",
                        lockdown.trim()
                    )));
                }
                Ok(format!("{}, lockdown `{}`", state.trim(), lockdown.trim()))
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
            Check::FirewallPorts { domain, port } => firewall_ports(m, domain, *port),
            Check::ScannerBanned { domain, port } => scanner_banned(m, domain, *port),
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

/// Makes a check's "not as expected" error, pointing at the machine's serial log.
fn failure(m: &Machine) -> impl Fn(String) -> VmError {
    let serial = m.serial_log().to_owned();
    move |message| VmError::Unexpected {
        message,
        detail: String::new(),
        serial: serial.clone(),
    }
}

fn firewall_ports(m: &mut Machine, domain: &str, port: u16) -> Result<String, VmError> {
    let failed = failure(m);
    let host_port = |m: &Machine, proto: Proto, guest: u16| {
        m.host_port(proto, guest)
            .ok_or_else(|| failed(format!("no host port forwards to guest {proto:?} {guest}")))
    };
    let salt = fresh_secret(m)?[..12].to_owned();
    let pbx_tcp = host_port(m, Proto::Tcp, port)?;
    let answer = tcp_options(pbx_tcp, domain, &salt, Duration::from_secs(15))
        .ok_or_else(|| failed(format!("the PBX did not answer OPTIONS over TCP {port}")))?;
    // A second PBX instance as the decoy: a real SIP listener on a port nothing opens.
    m.succeed(&format!(
        "mkdir -p /run/kentongan-decoy && printf '%s\\n' '[sip]' 'domain = \"decoy.local\"' \
         'listen = [\"udp:0.0.0.0:{DECOY_PORT}\", \"tcp:0.0.0.0:{DECOY_PORT}\"]' '[storage]' \
         'database = \"/run/kentongan-decoy/pbx.db\"' '[metrics]' 'listen = \"127.0.0.1:9161\"' \
         > /run/kentongan-decoy/pbx.toml && systemd-run --quiet --unit=kentongan-decoy \
         /usr/sbin/kentongan-pbx --config /run/kentongan-decoy/pbx.toml"
    ))?;
    m.wait_until_succeeds(
        &format!("ss -Hlnu 'sport = :{DECOY_PORT}' | grep -q {DECOY_PORT}"),
        Duration::from_secs(30),
    )?;
    let decoy_udp = host_port(m, Proto::Udp, DECOY_PORT)?;
    let decoy_tcp = host_port(m, Proto::Tcp, DECOY_PORT)?;
    let mut decoy = SipProbe::new(decoy_udp, "decoy.local", &format!("{salt}d"))
        .map_err(|e| failed(e.to_string()))?;
    let result = (|| {
        match decoy.options(Duration::from_secs(6)) {
            Err(ProbeError::NoAnswer { .. }) => {}
            Ok(r) => {
                return Err(failed(format!(
                    "a listener on UDP {DECOY_PORT} answered {} from outside: the firewall lets it through",
                    r.status.0
                )))
            }
            Err(e) => return Err(failed(format!("decoy probe: {e}"))),
        }
        if let Some(line) = tcp_options(decoy_tcp, "decoy.local", &salt, Duration::from_secs(6)) {
            return Err(failed(format!(
                "a listener on TCP {DECOY_PORT} answered `{line}` from outside: the firewall lets it through"
            )));
        }
        // The control: open the port and the same listener answers.
        m.succeed(&format!(
            "nft insert rule inet kentongan input udp dport {DECOY_PORT} accept"
        ))?;
        let opened = decoy.options(Duration::from_secs(15));
        m.succeed("systemctl reload kentongan-firewall")?;
        match opened {
            Ok(r) if r.status.0 == 200 => Ok(()),
            Ok(r) => Err(failed(format!("the opened decoy answered {}", r.status.0))),
            Err(e) => Err(failed(format!(
                "even with UDP {DECOY_PORT} opened the decoy did not answer ({e}), so the check proves nothing"
            ))),
        }
    })();
    let _ = m.execute("systemctl stop kentongan-decoy");
    result?;
    Ok(format!(
        "PBX answers on UDP and TCP {port} (`{answer}`); a listener on {DECOY_PORT} is dropped on UDP and TCP"
    ))
}

fn scanner_banned(m: &mut Machine, domain: &str, port: u16) -> Result<String, VmError> {
    let failed = failure(m);
    let mut scanner = probe(m, domain, port, "scan")?.with_user_agent("friendly-scanner");
    match scanner.options(Duration::from_secs(6)) {
        Err(ProbeError::NoAnswer { .. }) => {}
        Ok(r) => return Err(failed(format!("a scanner got an answer: {}", r.status.0))),
        Err(e) => return Err(failed(format!("scanner probe: {e}"))),
    }
    let set = m.succeed("nft list set inet kentongan banned4")?;
    if !set.contains(SLIRP_HOST) {
        return Err(failed(format!(
            "the scanner's source {SLIRP_HOST} is not in the kernel's ban set:\n{set}"
        )));
    }
    let list = m.succeed("kentongan-pbx --config /etc/kentongan/pbx.toml ban list")?;
    if !list.contains(SLIRP_HOST) || !list.contains("scanner") {
        return Err(failed(format!(
            "`ban list` does not show the scanner:\n{list}"
        )));
    }
    m.succeed(&format!(
        "kentongan-pbx --config /etc/kentongan/pbx.toml ban remove {SLIRP_HOST}"
    ))?;
    let mut phone = probe(m, domain, port, "unban")?;
    match phone.options(Duration::from_secs(20)) {
        Ok(r) if r.status.0 == 200 => Ok(format!(
            "no answer to friendly-scanner; {SLIRP_HOST} banned by the daemon in nftables; `ban remove` lifted it"
        )),
        Ok(r) => Err(failed(format!("after `ban remove` OPTIONS answered {}", r.status.0))),
        Err(e) => Err(failed(format!("after `ban remove` the source is still blocked: {e}"))),
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
