//! Property tests: serialize∘parse is stable, and no input panics the parsers.
#![allow(clippy::unwrap_used)]

use kentongan_sip::sdp::Sdp;
use kentongan_sip::{HeaderName, Message, Method, NameAddr, Request, Uri};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,15}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("192.0.{a}.{b}")),
        Just("[2001:db8::1]".to_owned()),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Register),
        Just(Method::Options),
        Just(Method::Bye),
        "[A-Z]{3,10}".prop_map(|m| Method::parse(&m).unwrap()),
    ]
}

prop_compose! {
    fn request()(m in method(), user in token(), h in host(), port in proptest::option::of(1u16..),
                 tag in token(), cid in token(), seq in any::<u32>(), display in "[a-zA-Z \"\\\\]{0,12}",
                 extra in proptest::collection::vec((token(), "[ -~]{0,30}"), 0..4),
                 body in proptest::collection::vec(any::<u8>(), 0..64)) -> Request {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let uri: Uri = format!("sip:{user}@{h}{port}").parse().unwrap();
        let mut r = Request::new(m.clone(), uri.clone());
        r.headers.push(HeaderName::Via, format!("SIP/2.0/UDP {h}{port};branch=z9hG4bK{cid}"));
        let mut from = NameAddr::new(uri.clone()).with_display(&display);
        from.set_tag(&tag);
        r.headers.push(HeaderName::From, from.to_string());
        r.headers.push(HeaderName::To, NameAddr::new(uri).to_string());
        r.headers.push(HeaderName::CallId, cid);
        r.headers.push(HeaderName::CSeq, format!("{seq} {m}"));
        for (name, value) in extra {
            r.headers.push(HeaderName::Other(format!("X-{name}")), value.trim().to_owned());
        }
        r.body = body.into();
        r
    }
}

proptest! {
    #[test]
    fn serialize_parse_is_stable(req in request()) {
        let first = req.to_bytes();
        let parsed = Request::parse(first.clone()).unwrap();
        let second = parsed.to_bytes();
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(Request::parse(second).unwrap(), parsed);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::parse(data.clone());
        let _ = Sdp::parse(&data);
    }

    #[test]
    fn mutated_messages_never_panic(req in request(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = req.to_bytes().to_vec();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(m) = Message::parse(bytes) {
            // Whatever parses must serialize and parse again.
            prop_assert!(Message::parse(m.to_bytes()).is_ok());
        }
    }
}
