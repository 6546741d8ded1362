//! A load generator for RTP relays, used by `scripts/bench-pbx` to put kentongan-pbx's relay
//! and rtpengine side by side.
//!
//! **Owns**: the probe packet ([`probe::Probe`]: RTP-shaped, G.711-sized, carrying its leg,
//! step and send time), the generator ([`load::Generator`]: one socket plays every phone,
//! sendmmsg/recvmmsg batches, fixed total rate round-robin over the legs), the rising-rate
//! sweep and what "clean" means ([`sweep::sweep`], [`sweep::Criteria`]), a client for
//! rtpengine's bencoded "ng" protocol ([`ng::NgClient`]) and the /proc readings of the relay
//! under test ([`procfs`]).
//!
//! **Does not**: place SIP calls. For kentongan-pbx, the calls are real SIP calls through the
//! daemon (sipp in `scripts/bench-pbx`), and the relay ports they got are handed in; for
//! rtpengine, calls are made with `offer`/`answer` over ng. Either way the relay is a black box
//! reached over UDP on loopback.
//!
//! ```
//! use kentongan_rtpload::probe::{Probe, PACKET_LEN};
//! let p = Probe { leg: 7, seq: 1, step: 0, measured: true, sent_ns: 42 };
//! let mut buf = [0u8; PACKET_LEN];
//! p.write(&mut buf);
//! assert_eq!(Probe::read(&buf), Some(p));
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bencode;
pub mod load;
pub mod ng;
pub mod probe;
pub mod procfs;
pub mod sweep;
