//! SIP-specific event notification (RFC 6665), notifier side, and the bodies of the four
//! event packages the PBX serves: `conference` (RFC 4575), `dialog` (RFC 4235), `presence`
//! (RFC 3856 with RFC 3863 PIDF) and `message-summary` (RFC 3842).
//!
//! The flow: a SUBSCRIBE arrives; [`EventHeader::from_request`] names its package (or gives
//! a 489); the PBX checks the subscriber is allowed to watch the resource (an authenticated
//! extension: that policy is the PBX's) and calls [`Subscription::accept`], which answers
//! with the granted Expires (or 423). The PBX sends the response, then at once the first
//! NOTIFY from [`Subscription::notify`] (RFC 6665 §4.2.1.2). [`Subscriptions`] keeps them by
//! (package, resource) so a state change is one [`Subscriptions::notify_all`].
//! Nothing here reads a clock: every call that cares about time takes `now`.
//!
//! ```
//! use std::time::Instant;
//! use kentongan_sip::event::{DialogInfo, ExpiryPolicy, Subscription, Subscriptions, EventPackage};
//! use kentongan_sip::{NameAddr, Request};
//!
//! let subscribe = Request::parse(&b"SUBSCRIBE sip:202@pbx.local SIP/2.0\r\n\
//! Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
//! From: <sip:201@pbx.local>;tag=s1\r\nTo: <sip:202@pbx.local>\r\n\
//! Call-ID: blf1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:201@192.0.2.1:5060>\r\n\
//! Event: dialog\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"[..])?;
//! let now = Instant::now();
//! let contact = NameAddr::parse("<sip:202@192.0.2.100>").map_err(|_| "contact")?;
//! let (sub, ok) =
//!     Subscription::accept(&subscribe, "202", "tag-from-rng", &contact, &ExpiryPolicy::default(), now)?;
//! assert_eq!(ok.headers.expires()?, Some(600));
//! let mut table = Subscriptions::new();
//! table.insert(sub);
//! // 202 is idle: every watcher gets its own versioned dialog-info.
//! let notifies = table.notify_all(now, EventPackage::Dialog, "202", |version| {
//!     DialogInfo { entity: "sip:202@pbx.local".into(), version, dialogs: vec![] }.to_xml().into()
//! });
//! assert_eq!(notifies.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conference_info;
mod dialog_info;
mod message_summary;
mod pidf;
mod subscription;
mod xml;

pub use conference_info::{
    ConferenceEndpoint, ConferenceInfo, ConferenceMedia, ConferenceUser, EndpointStatus, MediaKind,
    MediaStatus, CONFERENCE_INFO_TYPE,
};
pub use dialog_info::{
    DialogEntry, DialogInfo, DialogState, Direction, Participant, DIALOG_INFO_TYPE,
};
pub use message_summary::{MessageCounts, MessageSummary, SummaryError, MESSAGE_SUMMARY_TYPE};
pub use pidf::{Basic, Presence, PIDF_TYPE};
pub use subscription::{
    unsolicited_notify, ExpiryPolicy, NotifyOutcome, SubState, Subscription, Subscriptions,
    TerminationReason, UnsolicitedNotify,
};

use crate::header::HeaderName;
use crate::message::{Request, StatusCode};
use crate::uas::Rejection;
use crate::ParseError;

/// The Contact of a conference room: its URI with the `isfocus` feature parameter, which
/// tells the phone the room is an RFC 4579 focus it may subscribe to (`Event: conference`).
pub fn focus_contact(uri: crate::Uri) -> crate::NameAddr {
    let mut c = crate::NameAddr::new(uri);
    c.params.set("isfocus", None);
    c
}

/// The event packages this notifier serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventPackage {
    Conference,
    Dialog,
    Presence,
    MessageSummary,
}

impl EventPackage {
    pub const ALL: [EventPackage; 4] = [
        EventPackage::Conference,
        EventPackage::Dialog,
        EventPackage::Presence,
        EventPackage::MessageSummary,
    ];

    /// The package name as it appears in `Event` and `Allow-Events`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventPackage::Conference => "conference",
            EventPackage::Dialog => "dialog",
            EventPackage::Presence => "presence",
            EventPackage::MessageSummary => "message-summary",
        }
    }

    /// The body type its NOTIFYs carry.
    pub fn content_type(self) -> &'static str {
        match self {
            EventPackage::Conference => CONFERENCE_INFO_TYPE,
            EventPackage::Dialog => DIALOG_INFO_TYPE,
            EventPackage::Presence => PIDF_TYPE,
            EventPackage::MessageSummary => MESSAGE_SUMMARY_TYPE,
        }
    }

    /// The first document version a new subscription gets: RFC 4235 §4.1.1 starts
    /// dialog-info at 0, RFC 4575 §5.1 starts conference-info at 1. Presence and
    /// message-summary bodies carry no version.
    pub fn first_version(self) -> u32 {
        match self {
            EventPackage::Dialog => 0,
            _ => 1,
        }
    }

    /// The `Allow-Events` value listing every package.
    pub fn allow_events() -> String {
        let names: Vec<&str> = EventPackage::ALL.iter().map(|p| p.as_str()).collect();
        names.join(", ")
    }

    /// Looks up a package name. Names are tokens compared case-insensitively (phones send
    /// them in lower case; RFC 6665 §8.2.1 names them in lower case). A template package
    /// (`presence.winfo`) is a different package, so it is not matched.
    pub fn parse(name: &str) -> Option<EventPackage> {
        EventPackage::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for EventPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `Event` header: the package and the optional `id` that tells apart
/// subscriptions sharing a dialog (RFC 6665 §8.2.3). NOTIFYs echo the id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventHeader {
    pub package: EventPackage,
    pub id: Option<String>,
}

impl EventHeader {
    /// Parses an `Event` value such as `dialog;id=77`.
    pub fn parse(value: &str) -> Result<EventHeader, EventError> {
        let value = crate::text::trim_ws(value);
        let end = value.find([';', ' ', '\t']).unwrap_or(value.len());
        let (name, rest) = value.split_at(end);
        if name.is_empty() || !crate::text::is_token(name) {
            return Err(EventError::Parse(ParseError::header(
                "Event",
                "event type is not a token",
            )));
        }
        let mut id = None;
        crate::params::scan(rest, true, |k, v| {
            if k.eq_ignore_ascii_case("id") {
                id = v.map(str::to_owned);
            }
        })
        .map_err(|r| EventError::Parse(ParseError::header("Event", r)))?;
        let package = EventPackage::parse(name).ok_or_else(|| EventError::BadEvent {
            event: name.chars().take(64).collect(),
        })?;
        Ok(EventHeader { package, id })
    }

    /// The Event header of a SUBSCRIBE (or NOTIFY). A missing one is an error, not the
    /// RFC 3265 default `PINT` package that RFC 6665 §8.2.1 dropped.
    pub fn from_request(req: &Request) -> Result<EventHeader, EventError> {
        let v = req
            .headers
            .get_str(&HeaderName::Event)
            .ok_or(EventError::Parse(ParseError::Missing("Event")))?;
        EventHeader::parse(v)
    }

    /// The header value, e.g. `conference;id=7`.
    pub fn to_value(&self) -> String {
        match &self.id {
            Some(id) => format!("{};id={id}", self.package),
            None => self.package.as_str().to_owned(),
        }
    }
}

/// Checks the SUBSCRIBE's Accept against the one body type `package` sends: listed
/// exactly, as `type/*` or as `*/*`. No Accept (or an empty one, which phones send
/// carelessly) means the package default, which is that type (RFC 6665 §4.1.2.1).
pub(crate) fn check_accept(req: &Request, package: EventPackage) -> Result<(), EventError> {
    let wanted = package.content_type();
    let listed = req.headers.values(&HeaderName::Accept)?;
    let (wanted_major, _) = wanted.split_once('/').unwrap_or((wanted, ""));
    let ok = listed.is_empty()
        || listed.iter().any(|v| {
            let media = crate::text::trim_ws(v.split(';').next().unwrap_or(""));
            media == "*/*"
                || media.eq_ignore_ascii_case(wanted)
                || media
                    .strip_suffix("/*")
                    .is_some_and(|major| major.eq_ignore_ascii_case(wanted_major))
        });
    if ok {
        Ok(())
    } else {
        Err(EventError::NotAcceptable { package, wanted })
    }
}

/// Why a SUBSCRIBE was refused or a subscription cannot act. [`EventError::rejection`]
/// gives the response to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unknown event package {event:?}; this notifier serves conference, dialog, presence and message-summary")]
    BadEvent { event: String },
    #[error(
        "the SUBSCRIBE's Accept does not list {wanted}, the only body the {package} package sends"
    )]
    NotAcceptable {
        package: EventPackage,
        wanted: &'static str,
    },
    #[error(
        "requested Expires {requested}s is below the minimum {min}s; retry with at least {min}"
    )]
    IntervalTooBrief { requested: u32, min: u32 },
    #[error("no subscription matches this request (unknown dialog or Event id)")]
    NoSuchSubscription,
    #[error("in-dialog CSeq {got} is not above the last one, {last}: a stale or replayed request")]
    OutOfOrder { got: u32, last: u32 },
    #[error("the subscription has ended: its final NOTIFY was built already")]
    Terminated,
    #[error("method {0} is not SUBSCRIBE")]
    NotSubscribe(String),
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl EventError {
    /// The response a notifier answers the offending SUBSCRIBE with: 489 with
    /// `Allow-Events`, 423 with `Min-Expires`, 481, or 400 naming the bad header.
    pub fn rejection(&self) -> Rejection {
        let (status, reason, headers) = match self {
            EventError::BadEvent { .. } => (
                StatusCode(489),
                "Bad Event".to_owned(),
                vec![(HeaderName::AllowEvents, EventPackage::allow_events())],
            ),
            EventError::IntervalTooBrief { min, .. } => (
                StatusCode::INTERVAL_TOO_BRIEF,
                "Interval Too Brief".to_owned(),
                vec![(HeaderName::MinExpires, min.to_string())],
            ),
            EventError::NoSuchSubscription | EventError::Terminated => (
                StatusCode::CALL_DOES_NOT_EXIST,
                "Subscription Does Not Exist".to_owned(),
                Vec::new(),
            ),
            EventError::NotAcceptable { wanted, .. } => (
                StatusCode::NOT_ACCEPTABLE,
                "Not Acceptable".to_owned(),
                vec![(HeaderName::Accept, (*wanted).to_owned())],
            ),
            EventError::OutOfOrder { .. } => (
                StatusCode::SERVER_INTERNAL_ERROR,
                "Server Internal Error (CSeq out of order)".to_owned(),
                Vec::new(),
            ),
            EventError::NotSubscribe(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed".to_owned(),
                vec![(HeaderName::Allow, "SUBSCRIBE".to_owned())],
            ),
            EventError::Parse(e) => (e.status(), e.reason_phrase(), Vec::new()),
        };
        Rejection {
            status,
            reason,
            headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_contact_carries_isfocus() {
        let uri = crate::Uri::parse("sip:800@192.0.2.100:5060").unwrap();
        assert_eq!(
            focus_contact(uri).to_string(),
            "<sip:800@192.0.2.100:5060>;isfocus"
        );
    }

    #[test]
    fn event_header_parses_package_and_id() {
        let e = EventHeader::parse("dialog ; id=77").unwrap();
        assert_eq!(e.package, EventPackage::Dialog);
        assert_eq!(e.id.as_deref(), Some("77"));
        assert_eq!(e.to_value(), "dialog;id=77");
        let e = EventHeader::parse("Message-Summary").unwrap();
        assert_eq!(e.package, EventPackage::MessageSummary);
        assert_eq!(e.id, None);
    }

    #[test]
    fn unknown_and_template_packages_get_489_with_allow_events() {
        for bad in ["presence.winfo", "refer", "ua-profile;vendor=x"] {
            let err = EventHeader::parse(bad).unwrap_err();
            assert!(matches!(err, EventError::BadEvent { .. }), "{bad}: {err:?}");
            let r = err.rejection();
            assert_eq!(r.status.0, 489);
            assert_eq!(
                r.headers,
                [(
                    HeaderName::AllowEvents,
                    "conference, dialog, presence, message-summary".to_owned()
                )]
            );
        }
    }

    #[test]
    fn accept_must_allow_the_package_body() {
        let req = |accept: &str| {
            Request::parse(bytes::Bytes::from(format!(
                "SUBSCRIBE sip:202@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: <sip:1@h>;tag=a\r\nTo: <sip:202@h>\r\nCall-ID: x\r\n\
                 CSeq: 1 SUBSCRIBE\r\nEvent: presence\r\n{accept}Content-Length: 0\r\n\r\n"
            )))
            .unwrap()
        };
        let p = EventPackage::Presence;
        for ok in [
            "",
            "Accept: application/xpidf+xml, Application/PIDF+XML\r\n",
            "Accept: application/*;q=0.5\r\n",
            "Accept: */*\r\n",
        ] {
            assert_eq!(check_accept(&req(ok), p), Ok(()), "{ok:?}");
        }
        let err = check_accept(&req("Accept: application/xpidf+xml\r\n"), p).unwrap_err();
        let r = err.rejection();
        assert_eq!(r.status.0, 406);
        assert_eq!(r.headers, [(HeaderName::Accept, PIDF_TYPE.to_owned())]);
    }

    #[test]
    fn malformed_event_values_are_400() {
        for bad in ["", ";id=1", "dialog;;id=1", "dia\"log"] {
            let err = EventHeader::parse(bad).unwrap_err();
            assert!(matches!(err, EventError::Parse(_)), "{bad:?}: {err:?}");
            assert_eq!(err.rejection().status.0, 400);
        }
    }
}
