//! Kentongan's SIP core (crate doc written below once the API settles).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod framing;
mod header;
mod message;
mod params;
mod text;
mod types;
mod uri;

pub use error::ParseError;
pub use framing::StreamDecoder;
pub use header::{Header, HeaderName, HeaderValue, Headers};
pub use message::{Limits, Message, Request, Response, StatusCode};
pub use params::{Param, Params};
pub use text::percent_decode;
pub use types::{CSeq, Contact, Method, NameAddr, Transport, Via, BRANCH_MAGIC};
pub use uri::{Host, SipUri, TelUri, Uri};
pub mod auth;
pub mod uas;
pub mod sdp;
pub mod transaction;
pub mod dialog;
