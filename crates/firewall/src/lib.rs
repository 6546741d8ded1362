//! Kentongan's firewall and abuse protection.
//!
//! **Owns**: the typed `[firewall]` policy ([`policy::Policy`], [`policy::Cidr`]); the nftables
//! ruleset the appliance loads ([`ruleset::render`]: default-deny `inet kentongan` table, ban
//! sets consulted first, a per-source SIP flood limit that bans in the kernel, SSH/admin only
//! from trusted networks), the fail-closed [`ruleset::lockdown`] ruleset; the daemon's ban
//! decisions, sans-IO ([`shield::Shield`]: auth failures in a window, scanner User-Agents,
//! trusted sources never banned); and the blocking calls to `nft` ([`nft`]).
//!
//! **Does not**: read configuration files or the database (kentongan-pbx owns both and hands
//! in a [`policy::Policy`] and stored bans), parse SIP (a scanner is recognised on raw header
//! bytes before parsing), or time bans out itself in the kernel (nftables set timeouts do).
//!
//! ```
//! use kentongan_firewall::{policy::Policy, ruleset::{render, Ports}};
//! let policy = Policy { trusted: vec!["192.168.1.0/24".parse()?], ..Policy::default() };
//! let ports = Ports { sip_udp: vec![5060], sip_tcp: vec![5060, 5061], rtp: Some((10000, 20000)), admin_tcp: vec![] };
//! assert!(render(&policy, &ports).contains("ip saddr @trusted4 tcp dport 22 accept"));
//! # Ok::<(), kentongan_firewall::policy::CidrError>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod nft;
pub mod policy;
pub mod ruleset;
pub mod shield;
