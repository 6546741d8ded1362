//! Kentongan's first-boot wizard and installer, minus argument parsing.
//!
//! **Owns**: the answer file ([`Answer`], strict TOML), the one validator ([`validate`]) that
//! turns an answer and the machine's [`Facts`] into an [`InstallPlan`] or into every
//! [`Problem`] found, the installer ([`install::run`]: named steps over a [`install::Target`],
//! a disk or a scratch directory), the TUI that builds an [`Answer`] interactively, and
//! [`backup`]: archives of the appliance's state and their validated, rolled-back restore.
//!
//! **Does not**: probe the machine inside the validator (facts are handed in; [`probe`] is
//! for the binary), print or log a password ([`Secret`] redacts itself), store user data in its
//! own format (extensions go through `kentongan_pbx::store::Store`), or decide SIP behaviour.
//!
//! **Principal types**: [`Answer`], [`Facts`], [`InstallPlan`], [`Problems`], [`Secret`],
//! [`install::Target`], [`install::Step`], [`install::Runner`], [`install::StepError`],
//! [`backup::Roots`], [`backup::Manifest`], [`backup::RestoreError`].
//!
//! ```
//! use kentongan_setup::{validate, Answer, Facts};
//! let answer = Answer::parse(r#"
//!     hostname = "pbx"
//!     domain = "kantor.local"
//!     admin_password = "Tg7!pz0Qmw"
//!     [network]
//!     mode = "static"
//!     address = "10.0.2.15"
//!     [disk]
//!     target = "auto"
//! "#)?;
//! let problems = validate(&answer, &Facts::default()).unwrap_err();
//! assert!(problems.to_string().contains("`network.address` needs a prefix length"));
//! # Ok::<(), kentongan_setup::Problems>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod answer;
pub mod backup;
pub mod facts;
pub mod install;
pub mod net;
pub mod probe;
pub mod secret;
pub mod tui;
pub mod upgrade;
pub mod validate;

pub use answer::Answer;
pub use facts::Facts;
pub use secret::Secret;
pub use validate::{validate, InstallPlan, Problem, Problems};
