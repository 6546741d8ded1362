//! Kentongan's SIP core: a deterministic, sans-IO SIP stack.
//!
//! **Owns**: parsing and serializing SIP messages (RFC 3261 §7/§25, RFC 5118 IPv6) with typed
//! errors, stream framing for TCP/TLS ([`StreamDecoder`]), the transaction layer
//! ([`transaction::Endpoint`], RFC 3261 §17 + RFC 6026, RFC 3581 rport), dialogs
//! ([`dialog::Dialog`]), digest authentication ([`auth`], MD5 and SHA-256), SDP offer/answer
//! ([`sdp`]), the UAS request checks of RFC 3261 §8.2 ([`uas`]), the notifier side of
//! SIP events (RFC 6665, [`event`]) with the conference-info, dialog-info, PIDF and
//! message-summary bodies, and REFER's Refer-To/Replaces and sipfrag ([`refer`]).
//!
//! **Does not**: open sockets, read clocks, spawn tasks or threads, draw its own randomness,
//! resolve DNS or store anything. Inputs carry `now: Instant`; outputs are pulled with
//! `poll_transmit`, `poll_timeout` and `poll_event`. Branches, tags and Call-IDs come from a
//! generator seeded by the caller; digest nonces are keyed by a secret the caller supplies.
//! Malformed input becomes an error value or a [`transaction::SipEvent::Malformed`] event,
//! never a panic.
//!
//! **Principal types**: [`Message`], [`Request`], [`Response`], [`Headers`], [`HeaderName`],
//! [`Method`], [`StatusCode`], [`Uri`], [`NameAddr`], [`Via`], [`CSeq`], [`ParseError`],
//! [`transaction::Endpoint`], [`dialog::Dialog`], [`auth::DigestServer`],
//! [`auth::Challenge`], [`auth::Credentials`], [`sdp::Sdp`], [`event::Subscription`],
//! [`event::Subscriptions`], [`refer::ReferTo`].
//!
//! ```
//! use std::time::Instant;
//! use kentongan_sip::auth::{Credentials, DigestServer, StoredHa1, Verdict, respond};
//! use kentongan_sip::{Contact, Request};
//!
//! let register = Request::parse(&b"REGISTER sip:pbx.local SIP/2.0\r\n\
//! Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776;rport\r\n\
//! To: <sip:1000@pbx.local>\r\nFrom: <sip:1000@pbx.local>;tag=a1\r\n\
//! Call-ID: c1@192.0.2.10\r\nCSeq: 1 REGISTER\r\n\
//! Contact: <sip:1000@192.0.2.10:5060>;expires=600\r\nContent-Length: 0\r\n\r\n"[..])?;
//! let Some(Contact::Addrs(contacts)) = register.headers.contact()? else { unreachable!() };
//! assert_eq!(contacts[0].expires(), Some(600));
//!
//! // Challenge, then verify the phone's answer against the stored HA1.
//! let now = Instant::now();
//! let mut digest = DigestServer::new("pbx.local", b"secret from the daemon's RNG....", now);
//! let unauthorized = digest.unauthorized(&register, now, false);
//! assert_eq!(unauthorized.status.0, 401);
//! let challenge = digest.challenges(now, false).remove(0);
//! let creds = respond(&challenge, "1000", "pw", &register.method, "sip:pbx.local", "cn0nce", 1);
//! let stored = StoredHa1::from_password("1000", "pbx.local", "pw");
//! let verdict = digest.verify(now, &register.method, &creds, Some(&stored));
//! assert_eq!(verdict, Verdict::Authenticated { username: "1000".into() });
//! # Ok::<(), kentongan_sip::ParseError>(())
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod framing;
mod header;
mod message;
mod params;
mod text;
mod types;
mod uri;

pub mod auth;
pub mod dialog;
pub mod event;
pub mod refer;
pub mod sdp;
pub mod transaction;
pub mod uas;

pub use error::ParseError;
pub use framing::StreamDecoder;
pub use header::{Header, HeaderName, HeaderValue, Headers};
pub use message::{Limits, Message, Request, Response, StatusCode};
pub use params::{Param, Params};
pub use text::percent_decode;
pub use types::{CSeq, Contact, Method, NameAddr, Transport, Via, BRANCH_MAGIC};
pub use uri::{Host, SipUri, TelUri, Uri};
