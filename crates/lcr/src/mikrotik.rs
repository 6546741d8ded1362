//! `kentongan-pbx mikrotik-script`: RouterOS commands for the office's MikroTik router.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use thiserror::Error;

/// What the router needs to forward to the PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MikrotikInput {
    /// The PBX's LAN address (RouterOS dst-nat here is IPv4).
    pub pbx: Ipv4Addr,
    pub sip_udp: Vec<u16>,
    pub sip_tcp: Vec<u16>,
    /// The RTP port range, inclusive.
    pub rtp: (u16, u16),
    /// Trusted LAN networks as CIDRs (`192.168.88.0/24`, `2001:db8::/64`).
    pub trusted: Vec<String>,
    /// The RouterOS interface list facing the Internet (`WAN` in the default configuration).
    pub wan_list: String,
}

/// Inputs that would make a wrong script.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MikrotikError {
    #[error("`{0}` is not a network in CIDR form, e.g. 192.168.88.0/24")]
    Cidr(String),
    #[error("the RTP range {0}-{1} is empty or starts at port 0; set [rtp] to e.g. 10000-20000")]
    RtpRange(u16, u16),
    #[error("no SIP port to forward; the PBX listens on none")]
    NoSipPort,
    #[error("interface list name `{0}` must be letters, digits, `-` or `_`")]
    WanList(String),
}

/// Every rule this script adds carries this comment prefix, so a rerun removes the old ones.
const TAG: &str = "kentongan";

fn cidr(text: &str) -> Result<String, MikrotikError> {
    let bad = || MikrotikError::Cidr(text.to_owned());
    let (addr, len) = text.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok(format!("{addr}/{len}"))
}

fn ports(p: &[u16]) -> String {
    p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// The commands, one a line, with `#` comments; pasting them twice leaves one set of rules.
pub fn mikrotik_script(input: &MikrotikInput) -> Result<String, MikrotikError> {
    let trusted = input
        .trusted
        .iter()
        .map(|t| cidr(t))
        .collect::<Result<Vec<_>, _>>()?;
    let (lo, hi) = input.rtp;
    if lo == 0 || lo > hi {
        return Err(MikrotikError::RtpRange(lo, hi));
    }
    if input.sip_udp.is_empty() && input.sip_tcp.is_empty() {
        return Err(MikrotikError::NoSipPort);
    }
    let wan = &input.wan_list;
    if wan.is_empty()
        || !wan
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(MikrotikError::WanList(wan.clone()));
    }
    let pbx = input.pbx;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# RouterOS commands for the office router, made by kentongan-pbx mikrotik-script."
    );
    let _ = writeln!(s, "# Paste into a terminal (or /import the file); running them again replaces the earlier rules.");
    let _ = writeln!(
        s,
        "# The SIP helper (ALG) rewrites SIP and breaks registrations and audio: turn it off."
    );
    let _ = writeln!(s, "/ip firewall service-port set sip disabled=yes");
    let _ = writeln!(
        s,
        "# The trusted LAN, for the router's own filter rules (the PBX keeps its own list)."
    );
    let v4: Vec<&String> = trusted.iter().filter(|t| !t.contains(':')).collect();
    let v6: Vec<&String> = trusted.iter().filter(|t| t.contains(':')).collect();
    let _ = writeln!(
        s,
        "/ip firewall address-list remove [find where list=\"{TAG}-trusted\"]"
    );
    for t in &v4 {
        let _ = writeln!(s, "/ip firewall address-list add list={TAG}-trusted address={t} comment=\"{TAG}: trusted LAN\"");
    }
    if !v6.is_empty() {
        let _ = writeln!(
            s,
            "/ipv6 firewall address-list remove [find where list=\"{TAG}-trusted\"]"
        );
        for t in &v6 {
            let _ = writeln!(s, "/ipv6 firewall address-list add list={TAG}-trusted address={t} comment=\"{TAG}: trusted LAN\"");
        }
    }
    let _ = writeln!(
        s,
        "# SIP and RTP from the Internet to the PBX at {pbx}; the default configuration's forward"
    );
    let _ = writeln!(s, "# chain accepts what dst-nat let in.");
    let _ = writeln!(
        s,
        "/ip firewall nat remove [find where comment~\"^{TAG}:\"]"
    );
    let nat = |s: &mut String, proto: &str, ports: &str, what: &str| {
        let _ = writeln!(
            s,
            "/ip firewall nat add chain=dstnat in-interface-list={wan} protocol={proto} dst-port={ports} action=dst-nat to-addresses={pbx} comment=\"{TAG}: {what}\""
        );
    };
    if !input.sip_udp.is_empty() {
        nat(&mut s, "udp", &ports(&input.sip_udp), "SIP over UDP");
    }
    if !input.sip_tcp.is_empty() {
        nat(&mut s, "tcp", &ports(&input.sip_tcp), "SIP over TCP/TLS");
    }
    nat(&mut s, "udp", &format!("{lo}-{hi}"), "RTP");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MikrotikInput {
        MikrotikInput {
            pbx: Ipv4Addr::new(192, 168, 88, 10),
            sip_udp: vec![5060],
            sip_tcp: vec![5060, 5061],
            rtp: (10000, 20000),
            trusted: vec!["192.168.88.0/24".into()],
            wan_list: "WAN".into(),
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        let with = |f: fn(&mut MikrotikInput)| {
            let mut i = input();
            f(&mut i);
            mikrotik_script(&i).unwrap_err().to_string()
        };
        assert_eq!(
            with(|i| i.trusted = vec!["192.168.88.0".into()]),
            "`192.168.88.0` is not a network in CIDR form, e.g. 192.168.88.0/24"
        );
        assert!(with(|i| i.trusted = vec!["10.0.0.0/33".into()]).contains("CIDR"));
        assert!(with(|i| i.rtp = (20000, 10000)).contains("RTP range"));
        assert!(with(|i| {
            i.sip_udp.clear();
            i.sip_tcp.clear();
        })
        .contains("no SIP port"));
        assert!(with(|i| i.wan_list = "WAN; /system reset".into()).contains("interface list"));
    }
}
