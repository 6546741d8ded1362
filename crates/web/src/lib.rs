//! Kentongan's web admin (issue 19): the HTTPS server, login, sessions, CSRF and the pages.
//!
//! **Owns**: the HTTP layer — [`server::spawn`] (TLS listeners on a thread of their own),
//! the routes, the askama templates and the embedded stylesheet, server-side
//! [`session::Sessions`], and the login guard ([`guard::LoginGuard`]: per-account backoff and
//! per-address bans, the same `bans` table and trusted networks as the SIP shield).
//! **Does not**: touch SQLite, hash passwords or know the PBX's types. What it needs from the
//! PBX is the [`backend::Backend`] trait, which kentongan-pbx implements over its `Store`.
//!
//! **Why in the daemon, not a sibling binary**: the appliance then runs, upgrades and
//! supervises one service; the web admin uses the certificate and config the daemon already
//! loaded; and a change made on a page is in the daemon's database at once, with no second
//! process to keep in step. What a sibling binary would have bought — isolation from SIP — it
//! gets from its own thread and runtime: the SIP loop stays single-threaded and never waits
//! for a page, a login's argon2 or the web's SQLite connection.
//!
//! **Principal types**: [`server::WebConfig`], [`backend::Backend`], [`session::Sessions`],
//! [`guard::LoginGuard`].
//!
//! ```
//! use std::time::Duration;
//! use kentongan_web::guard::{LoginGuard, Verdict};
//! let mut g = LoginGuard::new(Vec::new(), 10, Duration::from_secs(3600));
//! let addr = "203.0.113.7".parse().unwrap();
//! assert_eq!(g.check("admin", Duration::ZERO), Verdict::Allow);
//! g.failed(addr, "admin", Duration::ZERO);
//! assert!(matches!(g.check("admin", Duration::ZERO), Verdict::Wait(_)));
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod backend;
mod charts;
mod conference;
mod firewall;
pub mod guard;
pub mod i18n;
mod moh;
mod routes;
mod routing;
pub mod server;
pub mod session;
mod system;
mod templates;
mod trunks;
mod voicemail;
