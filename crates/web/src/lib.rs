//! Kentongan's web admin (issue 19). So far it owns the login guard ([`guard::LoginGuard`]):
//! the sans-IO rules that slow down and ban password guessing on the login form.
//!
//! **Owns**: per-account backoff after failed logins, counting failures per source address
//! and deciding when one is banned (the same `bans` table and trusted networks as the SIP
//! shield: the caller stores the [`guard::Ban`] with `Store::add_ban`). **Does not**: read a
//! clock, open sockets, verify passwords (`kentongan_pbx::admins::verify_password`) or store
//! anything. The HTTPS server, sessions and pages are not written yet.
//!
//! **Principal types**: [`guard::LoginGuard`], [`guard::Verdict`], [`guard::Ban`].
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

pub mod guard;
