//! Kentongan's PBX daemon library: everything `kentongan-pbx` does, minus argument parsing.
//!
//! **Owns**: the configuration file ([`config::Config`], one validator, errors naming dotted
//! keys), storage ([`store::Store`]: users with digest HA1 only, registrations, stored IMs,
//! CDRs, live calls, admin accounts; SQLite in WAL mode with one writer), admin account rules
//! ([`admins`]: argon2id hashes, the password policy), the PBX logic ([`core::Pbx`]:
//! registrar, B2BUA calls with forking, CANCEL, BYE, re-INVITE, IM store-and-forward, CDRs),
//! the dialplan ([`routing::Dialplan`]: the one place a dialled number becomes a
//! [`routing::Destination`], feature codes included; [`routing::forwarding`] decides forwards,
//! DND and loops), per-extension call settings ([`store::CallSettings`]),
//! the RTP relay ([`media::Relay`], one thread relaying every stream) and the daemon's event
//! loop ([`daemon::run`]: sockets, timers, signals, `/metrics`).
//!
//! **Does not**: parse or build SIP by hand (that is `kentongan-sip`, which stays sans-IO),
//! transcode media, or decide bans and render the ruleset (that is `kentongan-firewall`:
//! [`core::Pbx`] feeds its `Shield` and stores the bans; the daemon runs `nft` on its own thread).
//!
//! **Principal types**: [`config::Config`], [`store::Store`], [`store::Extension`],
//! [`store::Binding`], [`store::Write`], [`core::Pbx`], [`core::Registry`],
//! [`core::Contact`], [`core::Metrics`], [`media::Relay`], [`media::MediaStream`],
//! [`admins::AdminName`], [`admins::AdminPassword`], [`config::Web`].
//!
//! ```
//! let config = kentongan_pbx::config::Config::from_toml(
//!     "[sip]\ndomain = \"pbx.local\"\nlisten = [\"udp:127.0.0.1:5060\"]\n",
//! )?;
//! assert_eq!(config.rtp_ports.low, 10000);
//! # Ok::<(), kentongan_pbx::config::ConfigError>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admins;
pub mod apps;
pub mod config;
pub mod core;
pub mod daemon;
pub mod lcr_admin;
pub mod mail;
pub mod media;
pub mod operator_bans;
pub mod prompts;
pub mod routing;
pub mod store;
pub mod tls;
pub mod web;
pub mod web_routing;
