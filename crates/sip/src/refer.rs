//! REFER helpers: the `Refer-To` target with an embedded `Replaces` (RFC 3515, RFC 3891, as
//! attended transfer sends it) and the `message/sipfrag` NOTIFYs that report how the
//! referred call went (RFC 3515 §2.4.4, RFC 3420).

use bytes::Bytes;

use crate::dialog::{Dialog, DialogId};
use crate::header::HeaderName;
use crate::message::{Request, StatusCode};
use crate::text::{percent_decode, trim_ws};
use crate::types::{Method, NameAddr};

/// Content-Type of a REFER progress body.
pub const SIPFRAG_TYPE: &str = "message/sipfrag;version=2.0";

/// Why a Refer-To, Replaces or sipfrag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    #[error("REFER has no Refer-To header (RFC 3515 §2.4.1 requires exactly one)")]
    MissingReferTo,
    #[error("invalid Refer-To: {0}")]
    ReferTo(&'static str),
    #[error("invalid Replaces: {0}")]
    Replaces(&'static str),
    #[error("sipfrag body does not start with a SIP/2.0 status line")]
    Sipfrag,
}

/// The dialog a `Replaces` names (RFC 3891 §6.1): Call-ID plus both tags, seen from the
/// side that receives the INVITE with Replaces (`to-tag` is its own tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    /// Replace only a dialog that is still early.
    pub early_only: bool,
}

impl Replaces {
    /// Parses a `Replaces` header value: `callid;to-tag=a;from-tag=b[;early-only]`.
    pub fn parse(value: &str) -> Result<Replaces, ReferError> {
        let value = trim_ws(value);
        let (call_id, params) = value.split_at(value.find(';').unwrap_or(value.len()));
        let call_id = trim_ws(call_id);
        if call_id.is_empty() || call_id.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(ReferError::Replaces("Call-ID is empty or not a word"));
        }
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        crate::params::scan(params, true, |k, v| {
            if k.eq_ignore_ascii_case("to-tag") {
                to_tag = v.map(str::to_owned);
            } else if k.eq_ignore_ascii_case("from-tag") {
                from_tag = v.map(str::to_owned);
            } else if k.eq_ignore_ascii_case("early-only") {
                early_only = true;
            }
        })
        .map_err(ReferError::Replaces)?;
        Ok(Replaces {
            call_id: call_id.to_owned(),
            to_tag: to_tag.ok_or(ReferError::Replaces("to-tag is missing"))?,
            from_tag: from_tag.ok_or(ReferError::Replaces("from-tag is missing"))?,
            early_only,
        })
    }

    pub fn to_value(&self) -> String {
        let early = if self.early_only { ";early-only" } else { "" };
        format!(
            "{};to-tag={};from-tag={}{early}",
            self.call_id, self.to_tag, self.from_tag
        )
    }

    /// Whether this names `dialog` as its receiver holds it (our tag is `to-tag`).
    pub fn names(&self, dialog: &DialogId) -> bool {
        self.call_id == dialog.call_id
            && self.to_tag == dialog.local_tag
            && self.from_tag == dialog.remote_tag
    }
}

/// A parsed `Refer-To`: where to send the INVITE, and the dialog it replaces for an
/// attended transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTo {
    /// The target with every embedded URI header removed. Only `Replaces` is honoured:
    /// copying arbitrary headers from a REFER into our INVITE would let the referrer
    /// write headers (Route, From, P-Asserted-Identity …) in the PBX's name.
    pub target: NameAddr,
    pub replaces: Option<Replaces>,
}

impl ReferTo {
    /// Parses a Refer-To value such as
    /// `<sip:201@pbx?Replaces=c1%40h%3Bto-tag%3Da%3Bfrom-tag%3Db>`.
    pub fn parse(value: &str) -> Result<ReferTo, ReferError> {
        let mut target = NameAddr::parse(value).map_err(ReferError::ReferTo)?;
        let mut replaces = None;
        if let Some(sip) = target.uri.as_sip_mut() {
            if let Some(headers) = sip.headers.take() {
                for h in headers.split('&') {
                    let (name, v) = h.split_once('=').unwrap_or((h, ""));
                    if percent_decode(name).eq_ignore_ascii_case(b"replaces") {
                        let decoded = String::from_utf8(percent_decode(v))
                            .map_err(|_| ReferError::Replaces("not UTF-8 once decoded"))?;
                        replaces = Some(Replaces::parse(&decoded)?);
                    }
                }
            }
        }
        Ok(ReferTo { target, replaces })
    }

    /// The Refer-To of a REFER.
    pub fn from_request(req: &Request) -> Result<ReferTo, ReferError> {
        let v = req
            .headers
            .get_str(&HeaderName::ReferTo)
            .ok_or(ReferError::MissingReferTo)?;
        ReferTo::parse(v)
    }
}

/// A sipfrag body holding just the status line, e.g. `SIP/2.0 100 Trying\r\n`.
pub fn sipfrag(status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    format!("SIP/2.0 {} {reason}\r\n", status.0)
}

/// The status code of a sipfrag body (what a referrer reads from our NOTIFY).
pub fn parse_sipfrag(body: &[u8]) -> Result<StatusCode, ReferError> {
    let rest = body.strip_prefix(b"SIP/2.0 ").ok_or(ReferError::Sipfrag)?;
    match rest {
        [a, b, c, tail @ ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit())
                && matches!(tail.first(), None | Some(b' ' | b'\r' | b'\n')) =>
        {
            let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            if code < 100 {
                return Err(ReferError::Sipfrag);
            }
            Ok(StatusCode(code))
        }
        _ => Err(ReferError::Sipfrag),
    }
}

/// The NOTIFY of a REFER's implicit subscription (RFC 3515 §2.4.4), sent in the dialog
/// the REFER came in. `refer_cseq` is the REFER's CSeq, echoed as the Event `id` so a
/// referrer with several REFERs in flight can tell them apart (§2.4.6). A final `status`
/// (≥ 200) ends the subscription: `terminated;reason=noresource`.
pub fn refer_notify(
    dialog: &mut Dialog,
    contact: &NameAddr,
    refer_cseq: u32,
    status: StatusCode,
) -> Request {
    let mut req = dialog.request(Method::Notify);
    req.headers.push(HeaderName::Contact, contact.to_string());
    req.headers
        .push(HeaderName::Event, format!("refer;id={refer_cseq}"));
    let state = if status.is_final() {
        "terminated;reason=noresource"
    } else {
        "active;expires=60"
    };
    req.headers.push(HeaderName::SubscriptionState, state);
    req.set_body(SIPFRAG_TYPE, Bytes::from(sipfrag(status)));
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_with_embedded_replaces() {
        let r = ReferTo::parse(
            "\"Budi\" <sip:202@pbx.local?Replaces=a84b4c76e66710%40192.0.2.4%3Bto-tag%3D1928301774%3Bfrom-tag%3Dpbx-7&Subject=x>",
        )
        .unwrap();
        assert_eq!(r.target.to_string(), "\"Budi\" <sip:202@pbx.local>");
        let rep = r.replaces.unwrap();
        assert_eq!(
            rep,
            Replaces {
                call_id: "a84b4c76e66710@192.0.2.4".into(),
                to_tag: "1928301774".into(),
                from_tag: "pbx-7".into(),
                early_only: false,
            }
        );
        assert_eq!(
            rep.to_value(),
            "a84b4c76e66710@192.0.2.4;to-tag=1928301774;from-tag=pbx-7"
        );
        assert!(rep.names(&DialogId {
            call_id: "a84b4c76e66710@192.0.2.4".into(),
            local_tag: "1928301774".into(),
            remote_tag: "pbx-7".into(),
        }));
    }

    #[test]
    fn blind_transfer_has_no_replaces() {
        let r = ReferTo::parse("<sip:203@pbx.local>").unwrap();
        assert_eq!(r.replaces, None);
        assert_eq!(r.target.uri.to_string(), "sip:203@pbx.local");
    }

    #[test]
    fn replaces_needs_both_tags() {
        assert_eq!(
            Replaces::parse("c1;to-tag=a"),
            Err(ReferError::Replaces("from-tag is missing"))
        );
        assert!(Replaces::parse(";to-tag=a;from-tag=b").is_err());
        let r = Replaces::parse("c1 ; from-tag=b;to-tag=a;early-only").unwrap();
        assert!(r.early_only);
        assert!(ReferTo::parse("<sip:1@h?Replaces=c1%3Bto-tag%3Da>").is_err());
        assert!(ReferTo::parse("<sip:1@h?Replaces=%FF%3Bto-tag%3Da%3Bfrom-tag%3Db>").is_err());
    }

    #[test]
    fn sipfrag_bodies() {
        assert_eq!(sipfrag(StatusCode::TRYING), "SIP/2.0 100 Trying\r\n");
        assert_eq!(sipfrag(StatusCode::OK), "SIP/2.0 200 OK\r\n");
        assert_eq!(
            parse_sipfrag(b"SIP/2.0 180 Ringing\r\n"),
            Ok(StatusCode(180))
        );
        assert_eq!(parse_sipfrag(b"SIP/2.0 503"), Ok(StatusCode(503)));
        for bad in [
            &b"SIP/2.0 20 OK"[..],
            b"SIP/2.0 2000",
            b"HTTP/1.1 200 OK",
            b"SIP/2.0 099 x",
        ] {
            assert_eq!(parse_sipfrag(bad), Err(ReferError::Sipfrag));
        }
    }
}
