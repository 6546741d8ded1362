//! Kentongan's outbound decision layer: what a dialled number is, whether the caller may dial
//! it, and which trunks should carry it, cheapest first.
//!
//! **Owns**: normalisation of dialled digits to E.164 under a national plan ([`number`]:
//! [`number::NumberingPlan`], [`number::E164`], [`number::Dialled`]), call classes
//! ([`class::CallClass`], [`class::classify`]), operators.csv ([`operators::OperatorTable`],
//! the shipped Indonesian table), rates.csv ([`rates::RateTable`], exact [`money::Money`],
//! time windows in [`time`]), the least-cost router ([`lcr::Router`] → [`lcr::Decision`]),
//! calling rights ([`rights::Rights`]) and the CSV dialect's line-numbered errors ([`csv`]).
//!
//! **Does not**: read files, clocks or sockets, or speak SIP. kentongan-pbx reads the
//! configuration and the CSV files, converts its clock to a [`time::LocalTime`], counts the
//! channels in use, and hands all of it in; failover on 408/480/5xx is the PBX walking
//! [`lcr::Decision::choices`] in order.
//!
//! ```
//! use kentongan_lcr::{class::{classify, CallClass}, lcr::{Router, TrunkFacts, TrunkKind},
//!     number::{Dialled, NumberingPlan}, operators::OperatorTable, rates::{RateTable, TrunkName},
//!     time::{LocalTime, Weekday}};
//! let plan = NumberingPlan::new("62", Some("21"))?;
//! let Dialled::External(number) = plan.normalise("0812-3456-7890", |d| d.len() == 3)? else {
//!     unreachable!()
//! };
//! assert_eq!(number.as_str(), "+6281234567890");
//! let class = classify(&Dialled::External(number.clone()), &plan);
//! assert_eq!(class, CallClass::Mobile);
//! let rates = RateTable::parse("provider,+62,650,0,60\nvoip2,+628,400,150,1\n")?;
//! let trunk = |name| TrunkFacts { name, kind: TrunkKind::Provider, operator: None, max_channels: Some(30) };
//! let trunks = vec![trunk(TrunkName::new("provider")?), trunk(TrunkName::new("voip2")?)];
//! let router = Router::new(&rates, trunks, OperatorTable::indonesia()?, &[])?;
//! let at = LocalTime::new(Weekday::Mon, 10, 0).unwrap();
//! let decision = router.route(&number, class, at, 60, &[0, 0]);
//! let first = &decision.choices[0];
//! assert_eq!(router.trunk(first.trunk).name.as_str(), "voip2");
//! assert_eq!(first.cost.map(|c| c.to_string()).as_deref(), Some("550.00")); // 150 + 400 for 60 s
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod class;
pub mod config;
pub mod csv;
pub mod explain;
pub mod lcr;
pub mod mikrotik;
pub mod money;
pub mod number;
pub mod operators;
pub mod rates;
pub mod rights;
pub mod savings;
pub mod time;
mod trie;
