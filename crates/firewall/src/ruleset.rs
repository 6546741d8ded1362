//! The nftables ruleset the appliance loads: rendered from the policy and the PBX's ports.
//!
//! One table, `inet kentongan`, replaced atomically (`table …; delete table …; table … {}` in
//! one `nft -f` transaction), so loading never leaves a window with no firewall and never
//! touches other software's tables. The order of the input chain is the point:
//!
//! 1. loopback;
//! 2. banned sources (sets `banned4`/`banned6`, elements time out by themselves), counted;
//! 3. the per-source SIP flood limit, *before* conntrack's established shortcut: a UDP flood
//!    from one port is "established" after our first answer and would skip a later rule;
//! 4. conntrack, essential ICMP/ICMPv6, DHCP replies;
//! 5. SSH and admin ports from trusted networks only; SIP and RTP from anywhere;
//! 6. everything else: the chain's policy, drop.

use std::fmt::Write as _;

use crate::policy::{Cidr, Policy};

/// The nftables family and table every Kentongan rule lives in.
pub const FAMILY: &str = "inet";
pub const TABLE: &str = "kentongan";
/// Named counters `nft list counters` reports and `/metrics` exports.
pub const COUNTERS: [&str; 2] = ["banned_drops", "flood_drops"];

/// What the firewall opens: the PBX's listeners, media ports and admin ports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ports {
    pub sip_udp: Vec<u16>,
    /// TCP and TLS listeners.
    pub sip_tcp: Vec<u16>,
    /// Inclusive RTP/RTCP range.
    pub rtp: Option<(u16, u16)>,
    /// TCP ports only trusted networks reach (SSH is always one).
    pub admin_tcp: Vec<u16>,
}

const SSH_PORT: u16 = 22;

/// The full ruleset for `nft -f`.
pub fn render(policy: &Policy, ports: &Ports) -> String {
    let mut out = String::new();
    let (v4, v6): (Vec<&Cidr>, Vec<&Cidr>) = policy.trusted.iter().partition(|c| c.is_ipv4());
    let ban = policy.ban_duration.as_secs().max(1);
    let rate = policy.sip_rate_limit.max(1);
    // New TCP/TLS connections per source: a phone keeps one open, so a tenth of the packet
    // budget is generous.
    let conn_rate = (rate / 10).max(2);
    let mut admin = ports.admin_tcp.clone();
    admin.push(SSH_PORT);
    admin.sort_unstable();
    admin.dedup();

    preamble(&mut out);
    line(&mut out, 1, &format!("table {FAMILY} {TABLE} {{"));
    set(
        &mut out,
        "trusted4",
        "ipv4_addr",
        "flags interval; auto-merge;",
        &v4,
    );
    set(
        &mut out,
        "trusted6",
        "ipv6_addr",
        "flags interval; auto-merge;",
        &v6,
    );
    set(
        &mut out,
        "banned4",
        "ipv4_addr",
        "flags dynamic, timeout;",
        &[],
    );
    set(
        &mut out,
        "banned6",
        "ipv6_addr",
        "flags dynamic, timeout;",
        &[],
    );
    set(
        &mut out,
        "sipflood4",
        "ipv4_addr",
        "flags dynamic, timeout; timeout 60s;",
        &[],
    );
    set(
        &mut out,
        "sipflood6",
        "ipv6_addr",
        "flags dynamic, timeout; timeout 60s;",
        &[],
    );
    for c in COUNTERS {
        line(&mut out, 2, &format!("counter {c} {{ }}"));
    }
    line(&mut out, 2, "chain input {");
    line(
        &mut out,
        3,
        "type filter hook input priority filter; policy drop;",
    );
    line(&mut out, 3, "iif \"lo\" accept");
    line(
        &mut out,
        3,
        "ip saddr @banned4 counter name banned_drops drop comment \"banned source\"",
    );
    line(
        &mut out,
        3,
        "ip6 saddr @banned6 counter name banned_drops drop comment \"banned source\"",
    );
    for (ip, set4) in [("ip", "4"), ("ip6", "6")] {
        if !ports.sip_udp.is_empty() {
            line(
                &mut out,
                3,
                &format!(
                    "{ip} saddr != @trusted{set4} udp dport {} update @sipflood{set4} {{ {ip} saddr limit rate over {rate}/second burst {} packets }} add @banned{set4} {{ {ip} saddr timeout {ban}s }} counter name flood_drops drop comment \"SIP flood\"",
                    port_set(&ports.sip_udp),
                    rate.saturating_mul(2)
                ),
            );
        }
        if !ports.sip_tcp.is_empty() {
            line(
                &mut out,
                3,
                &format!(
                    "{ip} saddr != @trusted{set4} tcp dport {} ct state new update @sipflood{set4} {{ {ip} saddr limit rate over {conn_rate}/second burst {} packets }} add @banned{set4} {{ {ip} saddr timeout {ban}s }} counter name flood_drops drop comment \"SIP connection flood\"",
                    port_set(&ports.sip_tcp),
                    conn_rate.saturating_mul(2)
                ),
            );
        }
    }
    basics(&mut out);
    for (ip, set4) in [("ip", "4"), ("ip6", "6")] {
        line(
            &mut out,
            3,
            &format!(
                "{ip} saddr @trusted{set4} tcp dport {} accept comment \"SSH and admin from trusted networks\"",
                port_set(&admin)
            ),
        );
    }
    if !ports.sip_udp.is_empty() {
        line(
            &mut out,
            3,
            &format!(
                "udp dport {} accept comment \"SIP over UDP\"",
                port_set(&ports.sip_udp)
            ),
        );
    }
    if !ports.sip_tcp.is_empty() {
        line(
            &mut out,
            3,
            &format!(
                "tcp dport {} accept comment \"SIP over TCP and TLS\"",
                port_set(&ports.sip_tcp)
            ),
        );
    }
    if let Some((low, high)) = ports.rtp {
        line(
            &mut out,
            3,
            &format!("udp dport {low}-{high} accept comment \"RTP and RTCP media\""),
        );
    }
    line(&mut out, 2, "}");
    chains_after_input(&mut out);
    line(&mut out, 1, "}");
    out
}

/// The ruleset loaded when the configuration cannot be read: nothing but loopback, replies to
/// our own traffic, ICMP and DHCP gets in. A broken config must never mean an open box.
pub fn lockdown() -> String {
    let mut out = String::new();
    preamble(&mut out);
    line(&mut out, 1, &format!("table {FAMILY} {TABLE} {{"));
    line(&mut out, 2, "chain input {");
    line(
        &mut out,
        3,
        "type filter hook input priority filter; policy drop;",
    );
    line(&mut out, 3, "iif \"lo\" accept");
    basics(&mut out);
    line(&mut out, 2, "}");
    chains_after_input(&mut out);
    line(&mut out, 1, "}");
    out
}

fn preamble(out: &mut String) {
    // Creating the table first makes the delete valid on a host that has none yet; all three
    // statements are one nft transaction.
    line(out, 1, &format!("table {FAMILY} {TABLE}"));
    line(out, 1, &format!("delete table {FAMILY} {TABLE}"));
}

fn basics(out: &mut String) {
    line(out, 3, "ct state invalid drop");
    line(out, 3, "ct state established,related accept");
    line(out, 3, "icmp type echo-request limit rate 10/second accept");
    line(
        out,
        3,
        "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
    );
    line(
        out,
        3,
        "icmpv6 type echo-request limit rate 10/second accept",
    );
    line(
        out,
        3,
        "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query } accept",
    );
    line(
        out,
        3,
        "udp sport 67 udp dport 68 accept comment \"DHCPv4 replies\"",
    );
    line(
        out,
        3,
        "udp sport 547 udp dport 546 accept comment \"DHCPv6 replies\"",
    );
}

fn chains_after_input(out: &mut String) {
    line(out, 2, "chain forward {");
    line(
        out,
        3,
        "type filter hook forward priority filter; policy drop;",
    );
    line(out, 2, "}");
    line(out, 2, "chain output {");
    line(
        out,
        3,
        "type filter hook output priority filter; policy accept;",
    );
    line(out, 2, "}");
}

fn set(out: &mut String, name: &str, ty: &str, flags: &str, elements: &[&Cidr]) {
    let mut s = format!("set {name} {{ type {ty}; {flags}");
    if !elements.is_empty() {
        let list: Vec<String> = elements.iter().map(|c| c.to_string()).collect();
        let _ = write!(s, " elements = {{ {} }};", list.join(", "));
    }
    s.push_str(" }");
    line(out, 2, &s);
}

fn port_set(ports: &[u16]) -> String {
    let mut p = ports.to_vec();
    p.sort_unstable();
    p.dedup();
    match p.as_slice() {
        [one] => one.to_string(),
        many => format!(
            "{{ {} }}",
            many.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn line(out: &mut String, depth: usize, text: &str) {
    for _ in 1..depth {
        out.push_str("    ");
    }
    out.push_str(text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Ports {
        Ports {
            sip_udp: vec![5060],
            sip_tcp: vec![5061, 5060, 5060],
            rtp: Some((10000, 20000)),
            admin_tcp: vec![],
        }
    }

    #[test]
    fn opens_sip_rtp_and_ssh_only_for_trusted() {
        let policy = Policy {
            trusted: vec!["192.168.1.0/24".parse().unwrap()],
            ..Policy::default()
        };
        let r = render(&policy, &ports());
        assert!(r.contains("set trusted4 { type ipv4_addr; flags interval; auto-merge; elements = { 192.168.1.0/24 }; }"), "{r}");
        assert!(r.contains("set trusted6 { type ipv6_addr; flags interval; auto-merge; }"));
        assert!(r.contains("policy drop;"));
        assert!(r.contains("udp dport 5060 accept"));
        assert!(r.contains("tcp dport { 5060, 5061 } accept"));
        assert!(r.contains("udp dport 10000-20000 accept"));
        assert!(r.contains("ip saddr @trusted4 tcp dport 22 accept"));
        for l in r.lines().filter(|l| l.contains("dport 22 ")) {
            assert!(l.contains("saddr @trusted"), "SSH open beyond trusted: {l}");
        }
        assert!(r.contains("limit rate over 200/second burst 400 packets"));
        assert!(r.contains("add @banned4 { ip saddr timeout 3600s }"));
    }

    #[test]
    fn bans_come_first_and_the_flood_limit_precedes_conntrack() {
        let r = render(&Policy::default(), &ports());
        let at = |needle: &str| r.find(needle).unwrap_or_else(|| panic!("{needle} in {r}"));
        assert!(at("@banned4 counter") < at("update @sipflood4"));
        assert!(at("update @sipflood4") < at("ct state established"));
        assert!(at("ct state established") < at("udp dport 5060 accept"));
    }

    #[test]
    fn admin_ports_join_ssh_and_empty_listeners_open_nothing() {
        let p = Ports {
            admin_tcp: vec![9160],
            ..Ports::default()
        };
        let r = render(&Policy::default(), &p);
        assert!(r.contains("ip6 saddr @trusted6 tcp dport { 22, 9160 } accept"));
        assert!(!r.contains("SIP over"));
        assert!(!r.contains("RTP"));
    }

    #[test]
    fn lockdown_opens_no_service() {
        let r = lockdown();
        assert!(r.contains("policy drop;"));
        assert!(!r.contains("dport 22"));
        assert!(!r.contains("5060"));
    }
}
