//! Request inspection a UAS performs before acting on a parsed request (RFC 3261 §8.2):
//! the application-layer checks of RFC 4475 §3.3 live here, not in the parser, because the
//! messages are syntactically valid and only the answer differs.

use crate::header::HeaderName;
use crate::message::{Request, Response, StatusCode};
use crate::types::Method;
use crate::uri::Uri;

/// What this UAS supports.
#[derive(Debug, Clone)]
pub struct UasPolicy {
    /// Option tags we implement (for `Require`).
    pub extensions: Vec<String>,
    /// Body types we understand (for `Content-Type` and `Accept`).
    pub content_types: Vec<String>,
    /// Methods we implement; anything else gets 405 with `Allow`.
    pub methods: Vec<Method>,
}

impl Default for UasPolicy {
    fn default() -> Self {
        UasPolicy {
            extensions: Vec::new(),
            content_types: vec!["application/sdp".into()],
            methods: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Register,
                Method::Options,
            ],
        }
    }
}

/// A reason to refuse a request, ready to turn into a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub reason: String,
    /// Extra headers the response must carry (`Unsupported`, `Accept`, `Allow`).
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    fn new(status: StatusCode, reason: &str) -> Rejection {
        Rejection {
            status,
            reason: reason.to_owned(),
            headers: Vec::new(),
        }
    }

    /// The response to send, built per RFC 3261 §8.2.6.
    pub fn to_response(&self, req: &Request, to_tag: Option<&str>) -> Response {
        let mut resp = Response::for_request(req, self.status, to_tag);
        resp.reason = self.reason.clone();
        for (n, v) in &self.headers {
            resp.headers.push(n.clone(), v.as_str());
        }
        resp
    }
}

/// Runs the RFC 3261 §8.2.1–8.2.3 checks in order. `Ok` means the request may be processed.
pub fn check_request(req: &Request, policy: &UasPolicy) -> Result<(), Rejection> {
    if !policy.methods.contains(&req.method) {
        let mut r = Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        let allow: Vec<&str> = policy.methods.iter().map(Method::as_str).collect();
        r.headers.push((HeaderName::Allow, allow.join(", ")));
        return Err(r);
    }
    match &req.uri {
        Uri::Sip(_) | Uri::Tel(_) => {}
        Uri::Other { .. } => {
            return Err(Rejection::new(
                StatusCode::UNSUPPORTED_URI_SCHEME,
                "Unsupported URI Scheme",
            ))
        }
    }
    if req.method == Method::Register {
        // The To header of a REGISTER is the address-of-record and must be SIP (RFC 4475
        // §3.3.4).
        let to = req
            .headers
            .to()
            .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, &e.reason_phrase()))?;
        if to.uri.as_sip().is_none() {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "Bad Request (To must be a SIP or SIPS URI)",
            ));
        }
    }
    if req.method != Method::Ack && req.method != Method::Cancel {
        let required = req
            .headers
            .option_tags(&HeaderName::Require)
            .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, &e.reason_phrase()))?;
        let unknown: Vec<String> = required
            .into_iter()
            .filter(|t| !policy.extensions.iter().any(|e| e.eq_ignore_ascii_case(t)))
            .collect();
        if !unknown.is_empty() {
            let mut r = Rejection::new(StatusCode::BAD_EXTENSION, "Bad Extension");
            r.headers
                .push((HeaderName::Unsupported, unknown.join(", ")));
            return Err(r);
        }
    }
    if !req.body.is_empty() {
        let ct = req.headers.content_type().unwrap_or("application/sdp");
        let media = ct.split(';').next().unwrap_or("").trim();
        if !policy
            .content_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(media))
        {
            let mut r =
                Rejection::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type");
            r.headers
                .push((HeaderName::Accept, policy.content_types.join(", ")));
            return Err(r);
        }
    }
    if matches!(req.method, Method::Invite | Method::Options)
        && req.headers.contains(&HeaderName::Accept)
    {
        let accepted = req
            .headers
            .values(&HeaderName::Accept)
            .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, &e.reason_phrase()))?;
        let ok = accepted.is_empty()
            || accepted.iter().any(|a| {
                let media = a.split(';').next().unwrap_or("").trim();
                media == "*/*"
                    || media.eq_ignore_ascii_case("application/*")
                    || policy
                        .content_types
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(media))
            });
        if !ok {
            let mut r = Rejection::new(StatusCode::NOT_ACCEPTABLE, "Not Acceptable");
            r.headers
                .push((HeaderName::Accept, policy.content_types.join(", ")));
            return Err(r);
        }
    }
    Ok(())
}
