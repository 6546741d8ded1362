//! Typed views of the headers a SIP stack needs to understand: Method, CSeq, Via, NameAddr.

use std::fmt;
use std::str::FromStr;

use crate::params::{self, Params};
use crate::text::{
    find_byte, find_unquoted, is_token, is_ws, parse_u32, scan_quoted, trim_ws, unescape_quoted,
    write_quoted,
};
use crate::uri::{split_host_port, Host, HostRef, Uri, UriRef};
use crate::ParseError;

/// A request method. Extension methods are kept verbatim (they are case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Extension(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }

    /// Parses a method token; methods are case-sensitive (RFC 3261 §7.1).
    pub fn parse(s: &str) -> Result<Method, &'static str> {
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other if is_token(other) => Method::Extension(other.to_owned()),
            _ => return Err("method is not a token"),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::parse(s).map_err(ParseError::StartLine)
    }
}

/// The `CSeq` header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, &'static str> {
        let s = trim_ws(s);
        let split = s
            .bytes()
            .position(is_ws)
            .ok_or("expected number and method")?;
        let seq = parse_u32(&s[..split])?;
        let method = Method::parse(trim_ws(&s[split..]))?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Transport named in a Via header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
    Other(String),
}

impl Transport {
    pub fn parse(s: &str) -> Transport {
        for t in [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Sctp,
            Transport::Ws,
            Transport::Wss,
        ] {
            if s.eq_ignore_ascii_case(t.as_str()) {
                return t;
            }
        }
        Transport::Other(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }

    /// TCP, TLS, SCTP and WebSocket are reliable: over them a transaction retransmits
    /// nothing and does not linger (RFC 3261 §17). UDP, and any transport we do not know
    /// (DTLS, say), are not: retransmitting over a reliable transport only costs a
    /// duplicate, not retransmitting over an unreliable one loses the message.
    pub fn is_reliable(&self) -> bool {
        matches!(
            self,
            Transport::Tcp | Transport::Tls | Transport::Sctp | Transport::Ws | Transport::Wss
        )
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RFC 3261 magic cookie that marks a branch as globally unique.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// One Via header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: Transport,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn new(transport: Transport, host: Host, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::new();
        params.set("branch", Some(branch));
        Via {
            transport,
            host,
            port,
            params,
        }
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// True when the branch carries the RFC 3261 magic cookie (and more than just it).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_MAGIC.len() && b.starts_with(BRANCH_MAGIC))
    }

    /// The `received` address, without `[]` even if the sender added them (RFC 5118 §4.5
    /// asks receivers to accept both forms).
    pub fn received(&self) -> Option<&str> {
        self.params.value("received").map(|r| {
            r.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .unwrap_or(r)
        })
    }

    /// `None` if absent, `Some(None)` for a bare `;rport` request, `Some(Some(p))` if filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse::<u16>().ok()))
    }

    /// Parses one Via value, e.g. `SIP / 2.0 / UDP host:5060;branch=z9hG4bK1`.
    pub fn parse(s: &str) -> Result<Via, &'static str> {
        let v = ViaRef::parse(s)?;
        Ok(Via {
            transport: Transport::parse(v.transport),
            host: v.host.into_owned(),
            port: v.port,
            params: Params::parse(v.params, true)?,
        })
    }
}

/// One Via value borrowed from the text it was parsed from, checked by the same rules as
/// [`Via`] without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ViaRef<'a> {
    pub(crate) transport: &'a str,
    pub(crate) host: HostRef<'a>,
    pub(crate) port: Option<u16>,
    pub(crate) params: &'a str,
}

impl<'a> ViaRef<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<ViaRef<'a>, &'static str> {
        let slash = find_byte(s, b'/').ok_or("missing protocol version")?;
        let proto = trim_ws(&s[..slash]);
        let after_proto = &s[slash + 1..];
        let slash = find_byte(after_proto, b'/').ok_or("missing transport")?;
        let version = trim_ws(&after_proto[..slash]);
        let rest = trim_ws(&after_proto[slash + 1..]);
        if !proto.eq_ignore_ascii_case("SIP") {
            return Err("protocol is not SIP");
        }
        if version != "2.0" {
            return Err("unsupported SIP version");
        }
        let t_end = rest.bytes().position(is_ws).ok_or("missing sent-by")?;
        let transport = &rest[..t_end];
        if !is_token(transport) {
            return Err("invalid transport");
        }
        let after = trim_ws(&rest[t_end..]);
        let mut branch = None;
        let mut received = None;
        let (sent_by, params) = match find_byte(after, b';') {
            Some(sc) => {
                let params = &after[sc..];
                params::scan(params, true, |name, value| {
                    if branch.is_none() && name.eq_ignore_ascii_case("branch") {
                        branch = Some(value);
                    } else if received.is_none() && name.eq_ignore_ascii_case("received") {
                        received = Some(value);
                    }
                })?;
                (trim_ws(&after[..sc]), params)
            }
            None => (after, ""),
        };
        let (host, port) = split_sent_by(sent_by)?;
        if branch == Some(Some("")) {
            return Err("empty branch");
        }
        if let Some(r) = received {
            // RFC 5118 §4.5: accept an IPv6 address with or without the brackets.
            let r = r.ok_or("received without a value")?;
            let r = r
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .unwrap_or(r);
            if r.parse::<std::net::IpAddr>().is_err() {
                return Err("received is not an IP address");
            }
        }
        Ok(ViaRef {
            transport,
            host: HostRef::parse(host)?,
            port,
            params,
        })
    }
}

/// Splits a Via sent-by. `COLON` is `SWS ":" SWS` (RFC 3261 §25.1), so whitespace is allowed
/// around the colon and nowhere else; what remains is checked as host and port.
fn split_sent_by(s: &str) -> Result<(&str, Option<u16>), &'static str> {
    if !s.bytes().any(is_ws) {
        return split_host_port(s);
    }
    let colon = if s.starts_with('[') {
        find_byte(s, b']').and_then(|end| find_byte(&s[end..], b':').map(|c| end + c))
    } else {
        find_byte(s, b':')
    };
    let Some(colon) = colon else {
        return split_host_port(s);
    };
    let (host, port) = (trim_ws(&s[..colon]), trim_ws(&s[colon + 1..]));
    let n = parse_u32(port).map_err(|_| "invalid port")?;
    let port = u16::try_from(n).map_err(|_| "port out of range")?;
    Ok((host, Some(port)))
}

impl Via {
    /// Writes the value; generic so that building a `String` skips the `Formatter` (every
    /// request we receive or send has its Via written).
    pub(crate) fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        w.write_str("SIP/2.0/")?;
        w.write_str(self.transport.as_str())?;
        w.write_str(" ")?;
        self.host.write_to(w)?;
        if let Some(p) = self.port {
            w.write_str(":")?;
            w.write_str(crate::text::decimal(u64::from(p), &mut [0; 20]))?;
        }
        self.params.write_to(w)
    }

    pub(crate) fn to_text(&self) -> String {
        let mut s = String::with_capacity(96);
        let _ = self.write_to(&mut s);
        s
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl FromStr for Via {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Via::parse(s).map_err(|r| ParseError::header("Via", r))
    }
}

/// A name-addr or addr-spec with header parameters: the value of From, To, Contact, Route,
/// Record-Route, Refer-To and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::new(),
        }
    }

    pub fn with_display(mut self, display: &str) -> NameAddr {
        self.display = Some(display.to_owned());
        self
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    pub fn set_tag(&mut self, tag: &str) {
        self.params.set("tag", Some(tag));
    }

    /// The Contact `expires` parameter.
    pub fn expires(&self) -> Option<u32> {
        self.params.value("expires").and_then(|v| parse_u32(v).ok())
    }

    /// The Contact `q` parameter.
    pub fn q(&self) -> Option<f32> {
        self.params.value("q").and_then(|v| v.parse().ok())
    }

    /// Parses `"Display" <uri>;params`, `token token <uri>;params` or `uri;params`.
    /// In the last (addr-spec) form, `;` parameters belong to the header, and a URI with
    /// `?` headers or a comma is rejected because it must be enclosed in `<>`.
    pub fn parse(s: &str) -> Result<NameAddr, &'static str> {
        NameAddrRef::parse(s)?.into_owned()
    }
}

/// The display name of a [`NameAddrRef`], as written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DisplayRef<'a> {
    /// The content of a quoted string, still escaped.
    Quoted(&'a str),
    /// One or more tokens separated by whitespace.
    Tokens(&'a str),
}

/// A name-addr or addr-spec borrowed from the text it was parsed from, checked by the same
/// rules as [`NameAddr`] without allocating; `params` is the checked header-parameter text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameAddrRef<'a> {
    pub(crate) display: Option<DisplayRef<'a>>,
    pub(crate) uri: UriRef<'a>,
    pub(crate) params: &'a str,
}

impl<'a> NameAddrRef<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<NameAddrRef<'a>, &'static str> {
        NameAddrRef::parse_with(s, |_, _| {})
    }

    /// Parses and hands each header parameter to `on_param` as it is checked, so a caller
    /// that needs one (Contact's `expires`) does not scan the list again.
    pub(crate) fn parse_with(
        s: &'a str,
        on_param: impl FnMut(&'a str, Option<&'a str>),
    ) -> Result<NameAddrRef<'a>, &'static str> {
        let s = trim_ws(s);
        if s.is_empty() {
            return Err("empty value");
        }
        let (display, rest) = if s.starts_with('"') {
            let (d, rest) = scan_quoted(s)?;
            let rest = trim_ws(rest);
            if !rest.starts_with('<') {
                return Err("display name must be followed by <URI>");
            }
            (Some(DisplayRef::Quoted(d)), rest)
        } else {
            match find_unquoted(s, b'<') {
                Some(lt) => {
                    let name = trim_ws(&s[..lt]);
                    let display = if name.is_empty() {
                        None
                    } else {
                        let words_ok = name
                            .split([' ', '\t'])
                            .filter(|w| !w.is_empty())
                            .all(is_token);
                        if !words_ok {
                            return Err("display name contains non-token characters");
                        }
                        Some(DisplayRef::Tokens(name))
                    };
                    (display, &s[lt..])
                }
                None => (None, s),
            }
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let gt = find_byte(inner, b'>').ok_or("missing '>'")?;
            let uri_text = &inner[..gt];
            if uri_text.bytes().next().is_some_and(is_ws)
                || uri_text.bytes().last().is_some_and(is_ws)
            {
                return Err("whitespace inside <>");
            }
            let uri = UriRef::parse(uri_text)?;
            let params = &inner[gt + 1..];
            params::scan(params, true, on_param)?;
            Ok(NameAddrRef {
                display,
                uri,
                params,
            })
        } else {
            let (uri_text, params) = match find_byte(s, b';') {
                Some(sc) => {
                    params::scan(&s[sc..], true, on_param)?;
                    (trim_ws(&s[..sc]), &s[sc..])
                }
                None => (s, ""),
            };
            if uri_text.bytes().any(|b| b == b'?' || b == b',') {
                return Err("URI with headers or commas must be enclosed in <>");
            }
            let uri = UriRef::parse(uri_text)?;
            Ok(NameAddrRef {
                display: None,
                uri,
                params,
            })
        }
    }

    pub(crate) fn into_owned(self) -> Result<NameAddr, &'static str> {
        Ok(NameAddr {
            display: self.display.map(|d| match d {
                DisplayRef::Quoted(q) => unescape_quoted(q),
                DisplayRef::Tokens(t) => t.to_owned(),
            }),
            uri: self.uri.into_owned()?,
            params: Params::parse(self.params, true)?,
        })
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            let mut q = String::new();
            write_quoted(&mut q, d);
            write!(f, "{q} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

impl FromStr for NameAddr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NameAddr::parse(s).map_err(|r| ParseError::header("name-addr", r))
    }
}

/// The value of a Contact header field: `*` or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    Star,
    Addrs(Vec<NameAddr>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKas;rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
    }

    #[test]
    fn via_sent_by_allows_whitespace_around_the_colon_only() {
        // COLON = SWS ":" SWS (RFC 3261 §25.1).
        let v = Via::parse("SIP/2.0/UDP host.example.com : 5070 ;branch=z9hG4bK1").unwrap();
        assert_eq!(v.host, Host::Domain("host.example.com".into()));
        assert_eq!(v.port, Some(5070));
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1] :5070;branch=z9hG4bK1").unwrap();
        assert_eq!(v.port, Some(5070));
        // A space is not a separator: "192.0.2.1 5060" is not the domain "192.0.2.15060".
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.1 5060;branch=z9hG4bK1").is_err());
        assert!(Via::parse("SIP/2.0/UDP [2001:db8:: 9:1];branch=z9hG4bK1").is_err());
        assert!(Via::parse("SIP/2.0/UDP host: 50 60;branch=z9hG4bK1").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        let n = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(n.params.contains("unknownparam"));
        assert!(n.uri.as_sip().unwrap().params.is_empty());
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("< sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
    }

    #[test]
    fn cseq_parses_and_rejects_overflow() {
        let c = CSeq::parse("0009\t INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
    }
}
