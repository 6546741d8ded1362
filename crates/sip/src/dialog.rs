//! Dialogs (RFC 3261 §12): identity, route set, CSeq bookkeeping and target refresh.

use crate::header::HeaderName;
use crate::message::{Request, Response};
use crate::types::{Contact, Method, NameAddr};
use crate::uri::Uri;
use crate::ParseError;

/// Call-ID plus both tags: what identifies a dialog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

/// Why an in-dialog request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("request does not belong to this dialog")]
    Mismatch,
    #[error("CSeq {got} is not above the last remote CSeq {last}")]
    OutOfOrder { got: u32, last: u32 },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// The state of one dialog, from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    pub local: NameAddr,
    pub remote: NameAddr,
    pub remote_target: Uri,
    /// Route set in the order requests must traverse it.
    pub route_set: Vec<NameAddr>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
}

fn contact_uri(h: &crate::Headers) -> Result<Uri, ParseError> {
    match h.contact()? {
        Some(Contact::Addrs(a)) if !a.is_empty() => Ok(a[0].uri.clone()),
        _ => Err(ParseError::Missing("Contact")),
    }
}

impl Dialog {
    /// The dialog a UAS creates when it answers `req` with `resp` (which carries our tag).
    pub fn uas(req: &Request, resp: &Response) -> Result<Dialog, ParseError> {
        let remote = req.headers.from()?;
        let local = resp.headers.to()?;
        Ok(Dialog {
            id: DialogId {
                call_id: req.headers.call_id()?.to_owned(),
                local_tag: local
                    .tag()
                    .ok_or(ParseError::header("To", "missing tag"))?
                    .to_owned(),
                remote_tag: remote.tag().unwrap_or("").to_owned(),
            },
            local,
            remote,
            remote_target: contact_uri(&req.headers)?,
            route_set: req.headers.record_routes()?,
            local_seq: 0,
            remote_seq: Some(req.headers.cseq()?.seq),
        })
    }

    /// The dialog a UAC creates from its request and a 1xx/2xx response with a To tag.
    pub fn uac(req: &Request, resp: &Response) -> Result<Dialog, ParseError> {
        let local = req.headers.from()?;
        let remote = resp.headers.to()?;
        let mut route_set = resp.headers.record_routes()?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: req.headers.call_id()?.to_owned(),
                local_tag: local.tag().unwrap_or("").to_owned(),
                remote_tag: remote
                    .tag()
                    .ok_or(ParseError::header("To", "missing tag"))?
                    .to_owned(),
            },
            local,
            remote,
            remote_target: contact_uri(&resp.headers)?,
            route_set,
            local_seq: req.headers.cseq()?.seq,
            remote_seq: None,
        })
    }

    /// Builds an in-dialog request (BYE, re-INVITE, INFO, …), taking the next local CSeq.
    /// ACK and CANCEL reuse the INVITE's CSeq: use [`Dialog::ack`] for ACK.
    pub fn request(&mut self, method: Method) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        let seq = self.local_seq;
        self.build(method, seq)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq`.
    pub fn ack(&self, invite_seq: u32) -> Request {
        self.build(Method::Ack, invite_seq)
    }

    fn build(&self, method: Method, seq: u32) -> Request {
        let loose = self.route_set.first().map_or(true, |r| {
            r.uri.as_sip().is_some_and(|s| s.params.contains("lr"))
        });
        // RFC 3261 §12.2.1.1: with a strict router first, it becomes the Request-URI and
        // the remote target goes to the end of the Route header.
        let (ruri, routes): (Uri, Vec<NameAddr>) = if loose {
            (self.remote_target.clone(), self.route_set.clone())
        } else {
            let mut r: Vec<NameAddr> = self.route_set.iter().skip(1).cloned().collect();
            r.push(NameAddr::new(self.remote_target.clone()));
            (self.route_set[0].uri.clone(), r)
        };
        let mut req = Request::new(method.clone(), ruri);
        for r in routes {
            req.headers.push(HeaderName::Route, r.to_string());
        }
        req.headers.push(HeaderName::From, self.local.to_string());
        req.headers.push(HeaderName::To, self.remote.to_string());
        req.headers
            .push(HeaderName::CallId, self.id.call_id.as_str());
        req.headers
            .push(HeaderName::CSeq, format!("{seq} {method}"));
        req.headers.push(HeaderName::MaxForwards, "70");
        req
    }

    /// Whether `req` belongs to this dialog (Call-ID and both tags).
    pub fn matches(&self, req: &Request) -> bool {
        let (Ok(cid), Ok(from), Ok(to)) =
            (req.headers.call_id(), req.headers.from(), req.headers.to())
        else {
            return false;
        };
        cid == self.id.call_id
            && from.tag().unwrap_or("") == self.id.remote_tag
            && to.tag() == Some(self.id.local_tag.as_str())
    }

    /// Processes an in-dialog request from the peer: CSeq ordering (RFC 3261 §12.2.2, the
    /// UAS answers 500 when it fails) and target refresh for re-INVITE and UPDATE.
    pub fn on_request(&mut self, req: &Request) -> Result<(), DialogError> {
        if !self.matches(req) {
            return Err(DialogError::Mismatch);
        }
        let seq = req.headers.cseq()?.seq;
        if req.method != Method::Ack && req.method != Method::Cancel {
            if let Some(last) = self.remote_seq {
                if seq <= last {
                    return Err(DialogError::OutOfOrder { got: seq, last });
                }
            }
            self.remote_seq = Some(seq);
        }
        if matches!(req.method, Method::Invite | Method::Update) {
            if let Ok(uri) = contact_uri(&req.headers) {
                self.remote_target = uri;
            }
        }
        Ok(())
    }

    /// Target refresh from a 2xx to our re-INVITE or UPDATE.
    pub fn on_refresh_response(&mut self, resp: &Response) {
        if resp.status.is_success() {
            if let Ok(uri) = contact_uri(&resp.headers) {
                self.remote_target = uri;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::StatusCode;

    fn invite() -> Request {
        Request::parse(
            &b"INVITE sip:bob@192.0.2.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n\
From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: d1\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\n\
Content-Length: 0\r\n\r\n"[..],
        )
        .unwrap()
    }

    #[test]
    fn uac_and_uas_route_sets_are_mirror_images() {
        let req = invite();
        let mut ok = Response::for_request(&req, StatusCode::OK, Some("b1"));
        ok.headers.push(HeaderName::Contact, "<sip:bob@192.0.2.2>");
        let mut uas = Dialog::uas(&req, &ok).unwrap();
        let mut uac = Dialog::uac(&req, &ok).unwrap();
        assert_eq!(uas.route_set[0].uri.to_string(), "sip:p2.example.com;lr");
        assert_eq!(uac.route_set[0].uri.to_string(), "sip:p1.example.com;lr");
        let bye = uac.request(Method::Bye);
        assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.2");
        assert_eq!(bye.headers.cseq().unwrap().seq, 11);
        assert_eq!(bye.headers.routes().unwrap().len(), 2);
        assert!(uas.on_request(&bye).is_ok());
        assert!(matches!(
            uas.on_request(&bye),
            Err(DialogError::OutOfOrder { .. })
        ));
        let ack = uac.ack(10);
        assert_eq!(ack.headers.cseq().unwrap().seq, 10);
        assert!(uas.on_request(&ack).is_ok());
        // UAS-originated requests go the other way round.
        let bye2 = uas.request(Method::Bye);
        assert_eq!(bye2.uri.to_string(), "sip:alice@192.0.2.1");
        assert!(uac.on_request(&bye2).is_ok());
    }

    #[test]
    fn reinvite_refreshes_the_target() {
        let req = invite();
        let ok = {
            let mut r = Response::for_request(&req, StatusCode::OK, Some("b1"));
            r.headers.push(HeaderName::Contact, "<sip:bob@192.0.2.2>");
            r
        };
        let mut uac = Dialog::uac(&req, &ok).unwrap();
        let mut uas = Dialog::uas(&req, &ok).unwrap();
        let mut reinvite = uac.request(Method::Invite);
        reinvite
            .headers
            .push(HeaderName::Contact, "<sip:alice@198.51.100.9:5080>");
        uas.on_request(&reinvite).unwrap();
        assert_eq!(uas.remote_target.to_string(), "sip:alice@198.51.100.9:5080");
    }

    #[test]
    fn strict_router_becomes_request_uri() {
        let req = invite();
        let mut ok = Response::for_request(&req, StatusCode::OK, Some("b1"));
        ok.headers
            .set(HeaderName::RecordRoute, "<sip:strict.example.com>");
        ok.headers.push(HeaderName::Contact, "<sip:bob@192.0.2.2>");
        let mut uac = Dialog::uac(&req, &ok).unwrap();
        let bye = uac.request(Method::Bye);
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        assert_eq!(
            bye.headers.routes().unwrap()[0].uri.to_string(),
            "sip:bob@192.0.2.2"
        );
    }
}
