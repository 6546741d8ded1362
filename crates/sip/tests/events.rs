//! RFC 6665 subscriptions, notifier side, driven through the public API with a virtual
//! clock: accept, first NOTIFY, refresh, unsubscribe, expiry, 481, fan-out.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use kentongan_sip::event::{
    unsolicited_notify, DialogInfo, EventError, EventHeader, EventPackage, ExpiryPolicy,
    MessageCounts, MessageSummary, NotifyOutcome, SubState, Subscription, Subscriptions,
    TerminationReason, UnsolicitedNotify,
};
use kentongan_sip::{HeaderName, NameAddr, Request, Response, StatusCode, Uri};
use proptest::prelude::*;

fn subscribe(
    call_id: &str,
    from_tag: &str,
    cseq: u32,
    event: &str,
    expires: Option<u32>,
) -> Request {
    let expires = expires
        .map(|e| format!("Expires: {e}\r\n"))
        .unwrap_or_default();
    // Phones list the body they want; an unknown package gets none.
    let accept = EventHeader::parse(event)
        .map(|e| format!("Accept: {}\r\n", e.package.content_type()))
        .unwrap_or_default();
    Request::parse(Bytes::from(format!(
        "SUBSCRIBE sip:202@pbx.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{call_id}{cseq}\r\n\
From: \"Ann\" <sip:201@pbx.local>;tag={from_tag}\r\n\
To: <sip:202@pbx.local>\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\n\
Contact: <sip:201@192.0.2.1:5060>\r\n\
Event: {event}\r\n{expires}{accept}\
Content-Length: 0\r\n\r\n"
    )))
    .unwrap()
}

/// The refresh the subscriber sends in the dialog the 200 created.
fn in_dialog(initial: &Request, ok: &Response, cseq: u32, expires: u32) -> Request {
    let mut r = initial.clone();
    r.headers
        .set(HeaderName::To, ok.headers.get_str(&HeaderName::To).unwrap());
    r.headers.set(HeaderName::CSeq, format!("{cseq} SUBSCRIBE"));
    r.headers.set(HeaderName::Expires, expires.to_string());
    r
}

fn pbx_contact() -> NameAddr {
    NameAddr::parse("<sip:202@192.0.2.100:5060>").unwrap()
}

fn policy() -> ExpiryPolicy {
    ExpiryPolicy {
        min: 60,
        max: 3600,
        default: 1800,
    }
}

fn header(r: &Request, name: HeaderName) -> &str {
    r.headers.get_str(&name).unwrap()
}

/// The NOTIFY as it goes on the wire, parsed back: what the phone will see. The
/// transaction layer adds the Via when it sends, so this does too.
fn wire(r: &Request) -> Request {
    let mut r = r.clone();
    r.headers.push_front(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.100:5060;branch=z9hG4bKn",
    );
    Request::parse(r.to_bytes()).unwrap()
}

fn idle(version: u32) -> Bytes {
    DialogInfo {
        entity: "sip:202@pbx.local".into(),
        version,
        dialogs: vec![],
    }
    .to_xml()
    .into()
}

#[test]
fn accept_clamps_expires_and_the_first_notify_is_in_the_dialog() {
    let now = Instant::now();
    let req = subscribe("c1", "s1", 5, "dialog;id=7", Some(7200));
    let (mut sub, ok) =
        Subscription::accept(&req, "202", "n1", &pbx_contact(), &policy(), now).unwrap();
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers.expires().unwrap(), Some(3600));
    assert_eq!(ok.headers.to_tag().unwrap(), Some("n1"));
    assert_eq!(
        ok.headers.get_str(&HeaderName::Contact),
        Some("<sip:202@192.0.2.100:5060>")
    );
    assert_eq!(sub.expires_at(), Some(now + Duration::from_secs(3600)));
    assert_eq!(sub.subscriber().uri.to_string(), "sip:201@pbx.local");

    let v = sub.next_version();
    assert_eq!(v, 0, "dialog-info starts at version 0");
    let n = wire(
        &sub.notify(now, "application/dialog-info+xml", idle(v))
            .unwrap(),
    );
    assert_eq!(n.uri.to_string(), "sip:201@192.0.2.1:5060");
    assert_eq!(header(&n, HeaderName::Event), "dialog;id=7");
    assert_eq!(
        header(&n, HeaderName::SubscriptionState),
        "active;expires=3600"
    );
    assert_eq!(n.headers.cseq().unwrap().seq, 1);
    assert_eq!(n.headers.from().unwrap().tag(), Some("n1"));
    assert_eq!(n.headers.to().unwrap().tag(), Some("s1"));
    assert_eq!(n.headers.call_id().unwrap(), "c1");
    assert_eq!(
        header(&n, HeaderName::Contact),
        "<sip:202@192.0.2.100:5060>"
    );
    assert_eq!(
        n.headers.content_type(),
        Some("application/dialog-info+xml")
    );
    assert_eq!(n.body, idle(0));

    // Remaining time shrinks with `now`, CSeq grows.
    let later = now + Duration::from_secs(1000);
    let n2 = sub
        .notify(later, "application/dialog-info+xml", idle(1))
        .unwrap();
    assert_eq!(
        header(&n2, HeaderName::SubscriptionState),
        "active;expires=2600"
    );
    assert_eq!(n2.headers.cseq().unwrap().seq, 2);
}

#[test]
fn missing_expires_gets_the_default_and_short_ones_get_423() {
    let now = Instant::now();
    let req = subscribe("c2", "s1", 1, "presence", None);
    let (_, ok) = Subscription::accept(&req, "202", "n2", &pbx_contact(), &policy(), now).unwrap();
    assert_eq!(ok.headers.expires().unwrap(), Some(1800));

    let req = subscribe("c3", "s1", 1, "presence", Some(30));
    let err = Subscription::accept(&req, "202", "n3", &pbx_contact(), &policy(), now).unwrap_err();
    assert_eq!(
        err,
        EventError::IntervalTooBrief {
            requested: 30,
            min: 60
        }
    );
    let resp = err.rejection().to_response(&req, Some("n3"));
    assert_eq!(resp.status.0, 423);
    assert_eq!(resp.headers.get_str(&HeaderName::MinExpires), Some("60"));
}

#[test]
fn a_body_the_phone_cannot_take_is_406() {
    let mut req = subscribe("c9", "s9", 1, "presence", Some(600));
    req.headers.set(HeaderName::Accept, "application/xpidf+xml");
    let err = Subscription::accept(&req, "202", "n9", &pbx_contact(), &policy(), Instant::now())
        .unwrap_err();
    let resp = err.rejection().to_response(&req, Some("n9"));
    assert_eq!(resp.status.0, 406);
    assert_eq!(
        resp.headers.get_str(&HeaderName::Accept),
        Some("application/pidf+xml")
    );
}

#[test]
fn unknown_package_is_489() {
    let req = subscribe("c4", "s1", 1, "presence.winfo", Some(600));
    let err = Subscription::accept(&req, "202", "n4", &pbx_contact(), &policy(), Instant::now())
        .unwrap_err();
    let resp = err.rejection().to_response(&req, Some("n4"));
    assert_eq!(resp.status.0, 489);
    assert!(resp
        .headers
        .get_str(&HeaderName::AllowEvents)
        .unwrap()
        .contains("message-summary"));
}

#[test]
fn refresh_unsubscribe_and_final_notify() {
    let now = Instant::now();
    let req = subscribe("c5", "s5", 1, "dialog", Some(600));
    let (sub, ok) =
        Subscription::accept(&req, "202", "n5", &pbx_contact(), &policy(), now).unwrap();
    let mut table = Subscriptions::new();
    let id = sub.id().clone();
    table.insert(sub);

    // Refresh at t=500 for 900 s.
    let t = now + Duration::from_secs(500);
    let refresh = in_dialog(&req, &ok, 2, 900);
    let (rid, resp) = table.refresh(&refresh, &policy(), t).unwrap();
    assert_eq!(rid, id);
    assert_eq!(resp.headers.expires().unwrap(), Some(900));
    assert_eq!(resp.headers.to_tag().unwrap(), Some("n5"));
    assert_eq!(table.poll_timeout(), Some(t + Duration::from_secs(900)));
    let n = table
        .get_mut(&id)
        .unwrap()
        .notify(t, "application/dialog-info+xml", idle(1))
        .unwrap();
    assert_eq!(
        header(&n, HeaderName::SubscriptionState),
        "active;expires=900"
    );

    // A replayed refresh is refused (RFC 3261 §12.2.2 answers 500).
    let err = table.refresh(&refresh, &policy(), t).unwrap_err();
    assert_eq!(err.rejection().status.0, 500);

    // A refresh for another Event id in this dialog matches nothing.
    let mut other = in_dialog(&req, &ok, 3, 900);
    other.headers.set(HeaderName::Event, "dialog;id=9");
    assert_eq!(
        table.refresh(&other, &policy(), t).unwrap_err(),
        EventError::NoSuchSubscription
    );

    // Unsubscribe: 200 with Expires 0, then the final NOTIFY, then nothing.
    let unsub = in_dialog(&req, &ok, 4, 0);
    let (_, resp) = table.refresh(&unsub, &policy(), t).unwrap();
    assert_eq!(resp.headers.expires().unwrap(), Some(0));
    let sub = table.get_mut(&id).unwrap();
    let last = sub
        .notify(t, "application/dialog-info+xml", idle(2))
        .unwrap();
    assert_eq!(
        header(&last, HeaderName::SubscriptionState),
        "terminated;reason=timeout"
    );
    assert_eq!(sub.state(), SubState::Gone);
    assert_eq!(
        sub.notify_without_body(t).unwrap_err(),
        EventError::Terminated
    );
}

#[test]
fn late_refresh_and_unknown_dialog_are_481() {
    let now = Instant::now();
    let req = subscribe("c7", "s7", 1, "presence", Some(60));
    let (sub, ok) =
        Subscription::accept(&req, "202", "n7", &pbx_contact(), &policy(), now).unwrap();
    let mut table = Subscriptions::new();
    table.insert(sub);
    // The refresh arrives after the expiry: the subscription is gone.
    let late = in_dialog(&req, &ok, 2, 600);
    let err = table
        .refresh(&late, &policy(), now + Duration::from_secs(61))
        .unwrap_err();
    assert_eq!(err.rejection().status.0, 481);
    assert!(table.is_empty());
    assert_eq!(table.poll_timeout(), None);
    // A SUBSCRIBE with a To tag is for a dialog we never made.
    let err = Subscription::accept(&late, "202", "n8", &pbx_contact(), &policy(), now).unwrap_err();
    assert_eq!(err, EventError::NoSuchSubscription);
}

#[test]
fn a_fetch_gets_one_terminated_notify() {
    let now = Instant::now();
    let req = subscribe("c6", "s6", 1, "message-summary", Some(0));
    let (mut sub, ok) =
        Subscription::accept(&req, "202", "n6", &pbx_contact(), &policy(), now).unwrap();
    assert_eq!(ok.headers.expires().unwrap(), Some(0));
    let n = sub
        .notify(
            now,
            "application/simple-message-summary",
            "Messages-Waiting: no\r\n",
        )
        .unwrap();
    assert_eq!(
        header(&n, HeaderName::SubscriptionState),
        "terminated;reason=timeout"
    );
    assert!(sub.notify_without_body(now).is_err());
}

#[test]
fn expiry_sends_the_final_notify_and_forgets() {
    let now = Instant::now();
    let mut table = Subscriptions::new();
    for (cid, exp) in [("e1", 60), ("e2", 120)] {
        let req = subscribe(cid, "s", 1, "dialog", Some(exp));
        let (sub, _) =
            Subscription::accept(&req, "202", "n", &pbx_contact(), &policy(), now).unwrap();
        table.insert(sub);
    }
    assert_eq!(table.poll_timeout(), Some(now + Duration::from_secs(60)));
    assert!(table
        .handle_timeout(now + Duration::from_secs(59))
        .is_empty());
    let fired = table.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].0.call_id, "e1");
    assert_eq!(
        header(&fired[0].1, HeaderName::SubscriptionState),
        "terminated;reason=timeout"
    );
    assert!(fired[0].1.body.is_empty());
    assert_eq!(table.len(), 1);
    assert_eq!(table.poll_timeout(), Some(now + Duration::from_secs(120)));
}

#[test]
fn fan_out_versions_481_and_retry_after() {
    let now = Instant::now();
    let mut table = Subscriptions::new();
    let mut ids = Vec::new();
    for (cid, res) in [("f1", "202"), ("f2", "202"), ("f3", "203")] {
        let req = subscribe(cid, "s", 1, "dialog", Some(600));
        let (sub, _) =
            Subscription::accept(&req, res, "n", &pbx_contact(), &policy(), now).unwrap();
        ids.push(sub.id().clone());
        table.insert(sub);
    }
    // f1 already had its first NOTIFY: its next version is 1, f2's is still 0.
    table.get_mut(&ids[0]).unwrap().next_version();
    let mut seen = Vec::new();
    let out = table.notify_all(now, EventPackage::Dialog, "202", |v| {
        seen.push(v);
        idle(v)
    });
    assert_eq!(out.len(), 2);
    seen.sort();
    assert_eq!(seen, [0, 1]);
    assert!(out
        .iter()
        .all(|(_, r)| r.body == idle(0) || r.body == idle(1)));
    assert_eq!(table.watching(EventPackage::Dialog, "202").count(), 2);
    assert_eq!(table.watching(EventPackage::Presence, "202").count(), 0);

    // The subscriber of f1 lost its state: 481 ends the subscription.
    let (_, notify_f1) = out.iter().find(|(id, _)| id.call_id == "f1").unwrap();
    let gone = Response::for_request(&wire(notify_f1), StatusCode::CALL_DOES_NOT_EXIST, None);
    assert_eq!(
        table.on_notify_response(&gone),
        Some((ids[0].clone(), NotifyOutcome::Gone))
    );
    // 503 with Retry-After keeps f2.
    let (_, notify_f2) = out.iter().find(|(id, _)| id.call_id == "f2").unwrap();
    let mut busy = Response::for_request(&wire(notify_f2), StatusCode::SERVICE_UNAVAILABLE, None);
    busy.headers.push(HeaderName::RetryAfter, "30");
    assert_eq!(
        table.on_notify_response(&busy).map(|(_, o)| o),
        Some(NotifyOutcome::Retry)
    );
    let ok = Response::for_request(&wire(notify_f2), StatusCode::OK, None);
    assert_eq!(
        table.on_notify_response(&ok).map(|(_, o)| o),
        Some(NotifyOutcome::Delivered)
    );
    let out = table.notify_all(now, EventPackage::Dialog, "202", idle);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.call_id, "f2");

    // The resource goes away: final NOTIFYs with noresource, the table forgets them.
    let out = table.terminate_all(
        now,
        EventPackage::Dialog,
        "202",
        TerminationReason::NoResource,
        idle,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        header(&out[0].1, HeaderName::SubscriptionState),
        "terminated;reason=noresource"
    );
    assert_eq!(table.watching(EventPackage::Dialog, "202").count(), 0);
    assert_eq!(table.len(), 1);
    // A stray response for a forgotten dialog matches nothing.
    assert_eq!(table.on_notify_response(&ok), None);
}

#[test]
fn unsolicited_mwi_golden_bytes() {
    let summary = MessageSummary {
        account: Some(Uri::parse("sip:*97@pbx.local").unwrap()),
        voice: MessageCounts {
            new: 1,
            old: 4,
            ..MessageCounts::default()
        },
    };
    let mut from = NameAddr::parse("<sip:*97@pbx.local>").unwrap();
    from.set_tag("m1");
    let n = UnsolicitedNotify {
        target: Uri::parse("sip:202@192.0.2.2:5060").unwrap(),
        to: NameAddr::parse("<sip:202@pbx.local>").unwrap(),
        from,
        call_id: "mwi-1@pbx.local".into(),
        cseq: 1,
        contact: NameAddr::parse("<sip:*97@192.0.2.100:5060>").unwrap(),
        package: EventPackage::MessageSummary,
    };
    let req = unsolicited_notify(&n, summary.to_body());
    let expected = "NOTIFY sip:202@192.0.2.2:5060 SIP/2.0\r\n\
From: <sip:*97@pbx.local>;tag=m1\r\n\
To: <sip:202@pbx.local>\r\n\
Call-ID: mwi-1@pbx.local\r\n\
CSeq: 1 NOTIFY\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:*97@192.0.2.100:5060>\r\n\
Event: message-summary\r\n\
Subscription-State: terminated\r\n\
Content-Type: application/simple-message-summary\r\n\
Content-Length: 85\r\n\r\n\
Messages-Waiting: yes\r\n\
Message-Account: sip:*97@pbx.local\r\n\
Voice-Message: 1/4 (0/0)\r\n";
    assert_eq!(
        String::from_utf8(req.to_bytes().to_vec()).unwrap(),
        expected
    );
}

#[test]
fn refer_progress_notifies_in_the_referring_dialog() {
    use kentongan_sip::dialog::Dialog;
    use kentongan_sip::refer::{parse_sipfrag, refer_notify, SIPFRAG_TYPE};
    let invite = Request::parse(
        &b"INVITE sip:202@pbx.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr1\r\n\
From: <sip:201@pbx.local>;tag=a1\r\nTo: <sip:202@pbx.local>\r\n\
Call-ID: r1\r\nCSeq: 1 INVITE\r\nContact: <sip:201@192.0.2.1>\r\n\
Content-Length: 0\r\n\r\n"[..],
    )
    .unwrap();
    let ok = {
        let mut r = Response::for_request(&invite, StatusCode::OK, Some("p1"));
        r.headers.push(HeaderName::Contact, "<sip:202@192.0.2.100>");
        r
    };
    let mut dialog = Dialog::uas(&invite, &ok).unwrap();
    let trying = refer_notify(&mut dialog, &pbx_contact(), 7, StatusCode::TRYING);
    assert_eq!(header(&trying, HeaderName::Event), "refer;id=7");
    assert_eq!(
        header(&trying, HeaderName::SubscriptionState),
        "active;expires=60"
    );
    assert_eq!(trying.headers.content_type(), Some(SIPFRAG_TYPE));
    assert_eq!(&trying.body[..], b"SIP/2.0 100 Trying\r\n");
    let done = wire(&refer_notify(
        &mut dialog,
        &pbx_contact(),
        7,
        StatusCode::OK,
    ));
    assert_eq!(
        header(&done, HeaderName::SubscriptionState),
        "terminated;reason=noresource"
    );
    assert_eq!(done.headers.cseq().unwrap().seq, 2);
    assert_eq!(parse_sipfrag(&done.body), Ok(StatusCode::OK));
}

proptest! {
    #[test]
    fn refer_parsers_never_panic(s in "\\PC{0,60}", b in proptest::collection::vec(any::<u8>(), 0..40)) {
        use kentongan_sip::refer::{parse_sipfrag, ReferTo, Replaces};
        let _ = ReferTo::parse(&s);
        let _ = ReferTo::parse(&format!("<sip:1@h?Replaces={s}>"));
        if let Ok(r) = Replaces::parse(&s) {
            prop_assert_eq!(Replaces::parse(&r.to_value()), Ok(r));
        }
        let _ = parse_sipfrag(&b);
    }

    #[test]
    fn replaces_survives_embedding(cid in "[a-zA-Z0-9.@-]{1,20}", to in "[a-z0-9]{1,8}", from in "[a-z0-9]{1,8}") {
        use kentongan_sip::refer::ReferTo;
        let value = format!("{cid};to-tag={to};from-tag={from}");
        let escaped = value.replace('@', "%40").replace(';', "%3B").replace('=', "%3D");
        let r = ReferTo::parse(&format!("<sip:202@pbx.local?Replaces={escaped}>")).unwrap();
        let rep = r.replaces.unwrap();
        prop_assert_eq!((rep.call_id, rep.to_tag, rep.from_tag), (cid, to, from));
    }

    #[test]
    fn event_header_parse_never_panics(s in "\\PC{0,40}") {
        if let Ok(e) = EventHeader::parse(&s) {
            prop_assert_eq!(EventHeader::parse(&e.to_value()), Ok(e));
        }
    }

    #[test]
    fn message_summary_parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = MessageSummary::parse(&b);
    }

    #[test]
    fn message_summary_round_trips(new in any::<u32>(), old in any::<u32>(),
                                   nu in any::<u32>(), ou in any::<u32>()) {
        let s = MessageSummary {
            account: None,
            voice: MessageCounts { new, old, new_urgent: nu, old_urgent: ou },
        };
        prop_assert_eq!(MessageSummary::parse(s.to_body().as_bytes()), Ok(s));
    }

    #[test]
    fn expiry_grant_stays_in_bounds(min in 1u32..4000, span in 0u32..4000, req in proptest::option::of(any::<u32>())) {
        let p = ExpiryPolicy { min, max: min + span, default: 3600 };
        match p.grant(req) {
            Ok(0) => prop_assert_eq!(req, Some(0)),
            Ok(g) => prop_assert!(g >= min && g <= min + span),
            Err(EventError::IntervalTooBrief { requested, .. }) => prop_assert!(requested < min),
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }
}
