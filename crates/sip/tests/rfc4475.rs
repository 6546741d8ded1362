//! RFC 4475 torture tests, run on the bit-exact messages from the RFC's archive.
#![allow(clippy::unwrap_used)]

use kentongan_sip::uas::{check_request, UasPolicy};
use kentongan_sip::{
    Contact, HeaderName, Host, Message, Method, ParseError, Request, Response, StatusCode,
    Transport, Uri,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap()
}

fn req(name: &str) -> Request {
    match Message::parse(load(name)) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: expected a request, got {other:?}"),
    }
}

fn resp(name: &str) -> Response {
    match Message::parse(load(name)) {
        Ok(Message::Response(r)) => r,
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

fn err(name: &str) -> ParseError {
    match Message::parse(load(name)) {
        Err(e) => e,
        Ok(m) => panic!("{name}: expected an error, parsed {m:?}"),
    }
}

/// Every message must survive parse → serialize → parse with the same meaning.
fn round_trip(name: &str) {
    let first = Message::parse(load(name)).unwrap();
    let second = Message::parse(first.to_bytes()).unwrap();
    assert_eq!(first, second, "{name} changed on round trip");
}

// §3.1.1 Valid messages

#[test]
fn wsinv_short_tortuous_invite() {
    let r = req("wsinv");
    assert_eq!(r.method, Method::Invite);
    let sip = r.uri.as_sip().unwrap();
    assert!(sip.params.contains("unknownparam"));
    assert_eq!(r.headers.to().unwrap().tag(), Some("1918181833n"));
    let from = r.headers.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(r.headers.max_forwards().unwrap(), Some(68));
    let cseq = r.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias = r.headers.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, Host::Ipv4("192.0.2.2".parse().unwrap()));
    assert_eq!(vias[1].transport, Transport::Tcp);
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(r.headers.get_str(&HeaderName::Subject), Some(""));
    assert_eq!(
        r.headers
            .get_str(&HeaderName::Other("NewFangledHeader".into())),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers
            .get_str(&HeaderName::Other("UnknownHeaderWithUnusualValue".into())),
        Some(";;,,;;,;")
    );
    let Some(Contact::Addrs(c)) = r.headers.contact().unwrap() else {
        panic!("no contact")
    };
    assert_eq!(c[0].display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(c[0].q(), Some(0.33));
    assert_eq!(c[0].params.value("newparam"), Some("newvalue"));
    assert!(c[0].params.contains("secondparam"));
    assert_eq!(r.headers.routes().unwrap().len(), 1);
    assert_eq!(r.body.len(), 150);
    round_trip("wsinv");
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = req("intmeth");
    assert_eq!(
        r.method,
        Method::Extension("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    let sip = r.uri.as_sip().unwrap();
    assert_eq!(
        sip.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        sip.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(
        r.headers.to().unwrap().display.as_deref(),
        Some("BEL:\x07 NUL:\0 DEL:\x7f")
    );
    let from = r.headers.from().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.params.value("fromParam''~+*_!.-%"),
        Some("\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}")
    );
    assert_eq!(
        r.headers.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(r.headers.max_forwards().unwrap(), Some(255));
    assert_eq!(
        r.headers
            .get_str(&HeaderName::Other("extensionHeader-!.%*+_`'~".into())),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );
    round_trip("intmeth");
}

#[test]
fn esc01_valid_percent_escapes() {
    let r = req("esc01");
    let sip = r.uri.as_sip().unwrap();
    assert_eq!(sip.user_decoded().unwrap(), b"sips:user@example.com");
    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.as_sip().unwrap().user_decoded().unwrap(), b"user");
    let from = r.headers.from().unwrap();
    assert_eq!(
        from.uri.as_sip().unwrap().user_decoded().unwrap(),
        b"I have spaces"
    );
    let Some(Contact::Addrs(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    let curi = c[0].uri.as_sip().unwrap();
    assert_eq!(curi.user_decoded().unwrap(), b"caller");
    assert!(curi.params.contains("%6C%72"));
    round_trip("esc01");
}

#[test]
fn escnull_escaped_nulls() {
    let r = req("escnull");
    let to = r.headers.to().unwrap();
    assert_eq!(
        to.uri.as_sip().unwrap().user_decoded().unwrap(),
        b"null-\0-null"
    );
    let Some(Contact::Addrs(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].uri.as_sip().unwrap().user_decoded().unwrap(), b"\0\0");
    round_trip("escnull");
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    let r = req("esc02");
    assert_eq!(r.method, Method::Extension("RE%47IST%45R".into()));
    assert_eq!(r.headers.to().unwrap().display.as_deref(), Some("%Z%45"));
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK209%fzsnel234")
    );
    // C%6Fntact is an unknown header, not a third Contact.
    let Some(Contact::Addrs(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    assert_eq!(c.len(), 2);
    assert!(r.headers.contains(&HeaderName::Other("C%6Fntact".into())));
    round_trip("esc02");
}

#[test]
fn lwsdisp_no_lws_between_display_name_and_angle() {
    let r = req("lwsdisp");
    assert_eq!(r.headers.from().unwrap().display.as_deref(), Some("caller"));
    round_trip("lwsdisp");
}

#[test]
fn longreq_long_values() {
    let r = req("longreq");
    assert_eq!(r.headers.vias().unwrap().len(), 34);
    assert!(r.headers.call_id().unwrap().len() > 100);
    let to = r.headers.to().unwrap();
    let to_uri = to.uri.as_sip().unwrap();
    assert_eq!(to_uri.port, Some(6000));
    assert_eq!(to_uri.params.value("longparamnamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamename"), Some("shortvalue"));
    assert!(r.headers.from().unwrap().tag().unwrap().len() > 100);
    round_trip("longreq");
}

#[test]
fn dblreq_extra_octets_in_datagram_are_ignored() {
    let r = req("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
}

#[test]
fn semiuri_semicolons_in_user_part() {
    let r = req("semiuri");
    let sip = r.uri.as_sip().unwrap();
    assert_eq!(sip.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(sip.host, Host::Domain("example.com".into()));
    assert!(sip.params.is_empty());
    assert_eq!(r.headers.values(&HeaderName::Accept).unwrap().len(), 6);
    round_trip("semiuri");
}

#[test]
fn transports_varied_and_unknown() {
    let r = req("transports");
    let t: Vec<Transport> = r
        .headers
        .vias()
        .unwrap()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(
        t,
        vec![
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other("UNKNOWN".into()),
            Transport::Tcp
        ]
    );
    round_trip("transports");
}

#[test]
fn mpart01_multipart_binary_body() {
    let r = req("mpart01");
    assert_eq!(r.method, Method::Message);
    let ct = r.headers.content_type().unwrap();
    assert!(ct.starts_with("multipart/mixed;boundary=7a9cbec02ceef655"));
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0u8));
    round_trip("mpart01");
}

#[test]
fn unreason_utf8_reason_phrase() {
    let r = resp("unreason");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.reason.starts_with("= 2**3 * 5**2 \u{43d}\u{43e}"));
    round_trip("unreason");
}

#[test]
fn noreason_empty_reason_phrase() {
    let r = resp("noreason");
    assert_eq!(r.status, StatusCode(100));
    assert_eq!(r.reason, "");
    round_trip("noreason");
}

// §3.1.2 Invalid messages: each is rejected, naming what is wrong.

#[test]
fn badinv01_extraneous_separators() {
    assert_eq!(
        err("badinv01"),
        ParseError::header("Via", "empty parameter")
    );
}

#[test]
fn clerr_content_length_larger_than_message() {
    assert!(matches!(
        err("clerr"),
        ParseError::BodyTooShort { declared: 9999, .. }
    ));
}

#[test]
fn ncl_negative_content_length() {
    assert_eq!(
        err("ncl"),
        ParseError::header("Content-Length", "expected a decimal number")
    );
}

#[test]
fn scalar02_overlarge_request_scalars() {
    assert_eq!(
        err("scalar02"),
        ParseError::header("CSeq", "number out of range")
    );
}

#[test]
fn scalarlg_overlarge_response_scalars() {
    assert_eq!(
        err("scalarlg"),
        ParseError::header("CSeq", "number out of range")
    );
}

#[test]
fn quotbal_unterminated_quote() {
    assert_eq!(
        err("quotbal"),
        ParseError::header("To", "unterminated quoted string")
    );
}

#[test]
fn ltgtruri_angle_brackets_around_request_uri() {
    assert!(matches!(err("ltgtruri"), ParseError::RequestUri(_)));
}

#[test]
fn lwsruri_embedded_lws_in_request_uri() {
    assert!(matches!(err("lwsruri"), ParseError::StartLine(_)));
}

#[test]
fn lwsstart_multiple_sp_in_request_line() {
    assert!(matches!(err("lwsstart"), ParseError::StartLine(_)));
}

#[test]
fn trws_sp_at_end_of_request_line() {
    assert!(matches!(err("trws"), ParseError::StartLine(_)));
}

#[test]
fn escruri_escaped_headers_in_request_uri() {
    assert_eq!(
        err("escruri"),
        ParseError::RequestUri("headers are not allowed in a Request-URI")
    );
}

#[test]
fn baddate_invalid_timezone() {
    assert_eq!(
        err("baddate"),
        ParseError::header("Date", "time zone must be GMT")
    );
}

#[test]
fn regbadct_name_addr_uri_not_in_angle_brackets() {
    assert_eq!(
        err("regbadct"),
        ParseError::header(
            "Contact",
            "URI with headers or commas must be enclosed in <>"
        )
    );
}

#[test]
fn badaspec_spaces_within_addr_spec() {
    assert_eq!(
        err("badaspec"),
        ParseError::header("To", "whitespace inside <>")
    );
}

#[test]
fn baddn_non_token_display_name() {
    assert_eq!(
        err("baddn"),
        ParseError::header("From", "display name contains non-token characters")
    );
}

#[test]
fn badvers_unknown_protocol_version() {
    let e = err("badvers");
    assert_eq!(e, ParseError::Version("SIP/7.0".into()));
    assert_eq!(e.status(), StatusCode::VERSION_NOT_SUPPORTED);
}

#[test]
fn mismatch01_start_line_and_cseq_method() {
    assert_eq!(
        err("mismatch01"),
        ParseError::CSeqMismatch {
            method: "OPTIONS".into(),
            cseq: "INVITE".into()
        }
    );
}

#[test]
fn mismatch02_unknown_method_with_cseq_mismatch() {
    assert!(matches!(err("mismatch02"), ParseError::CSeqMismatch { .. }));
}

#[test]
fn bigcode_overlarge_response_code() {
    assert_eq!(
        err("bigcode"),
        ParseError::StartLine("status code must be three digits")
    );
}

#[test]
fn invalid_messages_map_to_400_with_a_reason() {
    for name in [
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "quotbal",
        "baddate",
        "mismatch01",
    ] {
        let e = err(name);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(e.reason_phrase().starts_with("Bad Request ("), "{name}");
    }
}

// §3.2 Transaction layer semantics

#[test]
fn badbranch_missing_transaction_identifier() {
    // Parses; the transaction layer must fall back to RFC 2543 matching.
    let r = req("badbranch");
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK"));
    assert!(!via.has_rfc3261_branch());
}

// §3.3 Application-layer semantics

fn check(name: &str) -> Result<(), kentongan_sip::uas::Rejection> {
    check_request(&req(name), &UasPolicy::default())
}

#[test]
fn insuf_missing_required_headers() {
    assert_eq!(err("insuf"), ParseError::Missing("Call-ID"));
}

#[test]
fn unkscm_unknown_request_uri_scheme() {
    assert_eq!(
        check("unkscm").unwrap_err().status,
        StatusCode::UNSUPPORTED_URI_SCHEME
    );
}

#[test]
fn novelsc_known_but_atypical_scheme() {
    assert_eq!(
        check("novelsc").unwrap_err().status,
        StatusCode::UNSUPPORTED_URI_SCHEME
    );
}

#[test]
fn unksm2_unknown_schemes_in_headers() {
    let r = req("unksm2");
    assert!(matches!(r.headers.to().unwrap().uri, Uri::Other { .. }));
    assert!(matches!(r.headers.from().unwrap().uri, Uri::Other { .. }));
    // A registrar rejects it: the AOR in To must be a SIP URI.
    assert_eq!(check("unksm2").unwrap_err().status, StatusCode::BAD_REQUEST);
}

#[test]
fn bext01_require_and_proxy_require() {
    let rej = check("bext01").unwrap_err();
    assert_eq!(rej.status, StatusCode::BAD_EXTENSION);
    let resp = rej.to_response(&req("bext01"), Some("t1"));
    assert_eq!(
        resp.headers.get_str(&HeaderName::Unsupported),
        Some("nothingsupportsthis, nothingsupportsthiseither")
    );
}

#[test]
fn invut_unknown_content_type() {
    let rej = check("invut").unwrap_err();
    assert_eq!(rej.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(rej
        .headers
        .iter()
        .any(|(n, v)| n == &HeaderName::Accept && v == "application/sdp"));
}

#[test]
fn regaut01_unknown_authorization_scheme() {
    let r = req("regaut01");
    assert!(check("regaut01").is_ok());
    // An unknown scheme is no credentials at all: the registrar challenges.
    let auth = r.headers.get_str(&HeaderName::Authorization).unwrap();
    assert!(kentongan_sip::auth::Credentials::parse(auth).is_err());
}

#[test]
fn multi01_multiple_values_in_single_value_fields() {
    assert!(matches!(err("multi01"), ParseError::Duplicate(_)));
}

#[test]
fn mcl01_multiple_content_length() {
    assert_eq!(err("mcl01"), ParseError::Duplicate("Content-Length"));
}

#[test]
fn bcast_200_with_broadcast_via() {
    let r = resp("bcast");
    let vias = r.headers.vias().unwrap();
    assert_eq!(vias[1].host, Host::Ipv4("255.255.255.255".parse().unwrap()));
}

#[test]
fn zeromf_max_forwards_zero_is_processed_by_a_uas() {
    let r = req("zeromf");
    assert_eq!(r.headers.max_forwards().unwrap(), Some(0));
    assert!(check("zeromf").is_ok());
}

#[test]
fn cparam01_contact_param_without_angle_brackets() {
    let r = req("cparam01");
    let Some(Contact::Addrs(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    assert!(c[0].params.contains("unknownparam"));
    assert!(c[0].uri.as_sip().unwrap().params.is_empty());
}

#[test]
fn cparam02_url_param_inside_angle_brackets() {
    let r = req("cparam02");
    let Some(Contact::Addrs(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    assert!(c[0].params.is_empty());
    assert!(c[0].uri.as_sip().unwrap().params.contains("unknownparam"));
}

#[test]
fn regescrt_escaped_header_in_contact_uri() {
    let r = req("regescrt");
    let Some(Contact::Addrs(c)) = r.headers.contact().unwrap() else {
        panic!()
    };
    assert_eq!(
        c[0].uri.as_sip().unwrap().headers.as_deref(),
        Some("Route=%3Csip:sip.example.com%3E")
    );
}

#[test]
fn sdp01_unacceptable_accept() {
    assert_eq!(
        check("sdp01").unwrap_err().status,
        StatusCode::NOT_ACCEPTABLE
    );
}

// §3.4 Backward compatibility

#[test]
fn inv2543_rfc2543_syntax_is_accepted() {
    let r = req("inv2543");
    assert!(r.headers.from().unwrap().tag().is_none());
    assert!(r.headers.top_via().unwrap().branch().is_none());
    assert_eq!(r.headers.max_forwards().unwrap(), None);
    assert!(!r.body.is_empty());
    assert!(check("inv2543").is_ok());
}

#[test]
fn test_dat_is_malformed() {
    assert!(matches!(err("test"), ParseError::StartLine(_)));
}

/// No fixture may panic the parser, whatever is done to it: truncate at every length.
#[test]
fn truncations_never_panic() {
    let dir = format!("{}/tests/fixtures/rfc4475", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("dat") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        for n in 0..data.len() {
            let _ = Message::parse(data[..n].to_vec());
        }
    }
}
