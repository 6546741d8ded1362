//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), with IPv6 references (RFC 5118).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::params::{self, Params};
use crate::text::{find_byte, is_host_byte, is_ws, parse_u32, rfind_byte};

/// A host as it appears in a URI or Via: a domain name or a literal address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses `example.com`, `192.0.2.1` or `[2001:db8::1]`. A bare IPv6 address without
    /// brackets is rejected: RFC 5118 §4.10 requires the reference form in SIP.
    pub fn parse(s: &str) -> Result<Host, &'static str> {
        HostRef::parse(s).map(HostRef::into_owned)
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            Host::Ipv6(a) => Some(IpAddr::V6(*a)),
            Host::Domain(_) => None,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        }
    }
}

impl Host {
    pub(crate) fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Host::Domain(d) => w.write_str(d),
            Host::Ipv4(a) => w.write_str(crate::text::ipv4(*a, &mut [0; 15])),
            Host::Ipv6(a) => write!(w, "[{a}]"),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// A host borrowed from the text it was parsed from: what the message parser checks
/// without allocating. [`Host`] is the owned form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostRef<'a> {
    Domain(&'a str),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl<'a> HostRef<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<HostRef<'a>, &'static str> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or("unterminated IPv6 reference")?;
            return Ipv6Addr::from_str(inner)
                .map(HostRef::Ipv6)
                .map_err(|_| "invalid IPv6 address");
        }
        if s.is_empty() {
            return Err("empty host");
        }
        let mut digits_and_dots = true;
        for b in s.bytes() {
            if !is_host_byte(b) {
                return Err("invalid host name");
            }
            digits_and_dots &= b.is_ascii_digit() || b == b'.';
        }
        if digits_and_dots {
            if let Ok(a) = Ipv4Addr::from_str(s) {
                return Ok(HostRef::Ipv4(a));
            }
        }
        Ok(HostRef::Domain(s))
    }

    pub(crate) fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        match self {
            HostRef::Domain(d) => w.write_str(d),
            HostRef::Ipv4(a) => w.write_str(crate::text::ipv4(*a, &mut [0; 15])),
            HostRef::Ipv6(a) => write!(w, "[{a}]"),
        }
    }

    pub(crate) fn into_owned(self) -> Host {
        match self {
            HostRef::Domain(d) => Host::Domain(d.to_owned()),
            HostRef::Ipv4(a) => Host::Ipv4(a),
            HostRef::Ipv6(a) => Host::Ipv6(a),
        }
    }
}

/// A `sip:` or `sips:` URI. `user` and `password` are kept escaped as written; use
/// [`SipUri::user_decoded`] for the octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// The raw `?...` part, without the `?`.
    pub headers: Option<String>,
}

impl SipUri {
    pub fn new(host: Host) -> Self {
        SipUri {
            secure: false,
            user: None,
            password: None,
            host,
            port: None,
            params: Params::new(),
            headers: None,
        }
    }

    pub fn with_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn user_decoded(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(crate::text::percent_decode)
    }

    /// The `transport` URI parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params
            .value("transport")
            .map(|t| t.to_ascii_lowercase())
    }
}

/// A SIP URI borrowed from the text it was parsed from, checked by the same rules as
/// [`SipUri`] without allocating; `params` is the checked `;...` text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SipUriRef<'a> {
    pub(crate) secure: bool,
    pub(crate) user: Option<&'a str>,
    pub(crate) password: Option<&'a str>,
    pub(crate) host: HostRef<'a>,
    pub(crate) port: Option<u16>,
    pub(crate) params: &'a str,
    pub(crate) headers: Option<&'a str>,
}

impl<'a> SipUriRef<'a> {
    fn parse(secure: bool, rest: &'a str) -> Result<SipUriRef<'a>, &'static str> {
        let (userinfo, hostpart) = match rfind_byte(rest, b'@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match find_byte(ui, b':') {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err("empty user part");
                }
                (Some(u), p)
            }
            None => (None, None),
        };
        // Headers start at the first `?`, parameters at the first `;` before it.
        let (hostport, params, headers) =
            match hostpart.bytes().position(|b| b == b';' || b == b'?') {
                Some(i) if hostpart.as_bytes()[i] == b';' => {
                    let (params, headers) = match find_byte(&hostpart[i..], b'?') {
                        Some(q) => (&hostpart[i..i + q], Some(&hostpart[i + q + 1..])),
                        None => (&hostpart[i..], None),
                    };
                    params::check(params, false)?;
                    (&hostpart[..i], params, headers)
                }
                Some(q) => (&hostpart[..q], "", Some(&hostpart[q + 1..])),
                None => (hostpart, "", None),
            };
        let (host, port) = split_host_port(hostport)?;
        Ok(SipUriRef {
            secure,
            user,
            password,
            host: HostRef::parse(host)?,
            port,
            params,
            headers,
        })
    }

    fn into_owned(self) -> Result<SipUri, &'static str> {
        Ok(SipUri {
            secure: self.secure,
            user: self.user.map(str::to_owned),
            password: self.password.map(str::to_owned),
            host: self.host.into_owned(),
            port: self.port,
            params: Params::parse(self.params, false)?,
            headers: self.headers.map(str::to_owned),
        })
    }
}

/// Splits `host[:port]`, where host may be an IPv6 reference.
pub(crate) fn split_host_port(s: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if s.starts_with('[') {
        let end = find_byte(s, b']').ok_or("unterminated IPv6 reference")?;
        let after = &s[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("junk after IPv6 reference"),
        };
        (&s[..end + 1], port)
    } else {
        match find_byte(s, b':') {
            Some(c) => (&s[..c], Some(&s[c + 1..])),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => {
            let n = parse_u32(p).map_err(|_| "invalid port")?;
            Some(u16::try_from(n).map_err(|_| "port out of range")?)
        }
        None => None,
    };
    Ok((host, port))
}

/// A `tel:` URI (RFC 3966): the number as written and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    pub number: String,
    pub params: Params,
}

/// Any URI found in a SIP message. Unknown schemes are kept opaque so a UAS can answer
/// `416 Unsupported URI Scheme` (RFC 4475 §3.3.2) instead of failing to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(TelUri),
    Other { scheme: String, opaque: String },
}

impl Uri {
    pub fn sip(host: Host) -> Uri {
        Uri::Sip(SipUri::new(host))
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    pub fn as_sip_mut(&mut self) -> Option<&mut SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Other { .. } => None,
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    /// Parses a URI. Whitespace anywhere is an error (RFC 4475 §3.1.2.8, §3.1.2.14).
    pub fn parse(s: &str) -> Result<Uri, &'static str> {
        UriRef::parse(s)?.into_owned()
    }
}

/// Any URI, borrowed from the text it was parsed from and checked by the same rules as
/// [`Uri`] without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UriRef<'a> {
    Sip(SipUriRef<'a>),
    Tel { number: &'a str, params: &'a str },
    Other { scheme: &'a str, opaque: &'a str },
}

impl<'a> UriRef<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<UriRef<'a>, &'static str> {
        if s.bytes().any(|b| is_ws(b) || b == b'\r' || b == b'\n') {
            return Err("whitespace in URI");
        }
        let colon = find_byte(s, b':').ok_or("missing URI scheme")?;
        let (scheme, rest) = (&s[..colon], &s[colon + 1..]);
        let valid_scheme = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !valid_scheme {
            return Err("invalid URI scheme");
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUriRef::parse(false, rest).map(UriRef::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUriRef::parse(true, rest).map(UriRef::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match find_byte(rest, b';') {
                Some(sc) => {
                    params::check(&rest[sc..], false)?;
                    (&rest[..sc], &rest[sc..])
                }
                None => (rest, ""),
            };
            let valid = !number.is_empty()
                && number.bytes().all(|b| {
                    b.is_ascii_hexdigit() || b"+-.()*#".contains(&b) || b.is_ascii_alphabetic()
                });
            if !valid {
                return Err("invalid telephone number");
            }
            Ok(UriRef::Tel { number, params })
        } else {
            if rest.is_empty() {
                return Err("empty URI");
            }
            Ok(UriRef::Other {
                scheme,
                opaque: rest,
            })
        }
    }

    pub(crate) fn into_owned(self) -> Result<Uri, &'static str> {
        Ok(match self {
            UriRef::Sip(u) => Uri::Sip(u.into_owned()?),
            UriRef::Tel { number, params } => Uri::Tel(TelUri {
                number: number.to_owned(),
                params: Params::parse(params, false)?,
            }),
            UriRef::Other { scheme, opaque } => Uri::Other {
                scheme: scheme.to_owned(),
                opaque: opaque.to_owned(),
            },
        })
    }
}

impl FromStr for Uri {
    type Err = crate::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uri::parse(s).map_err(|r| crate::ParseError::header("URI", r))
    }
}

impl SipUri {
    pub(crate) fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        w.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            w.write_str(u)?;
            if let Some(p) = &self.password {
                w.write_str(":")?;
                w.write_str(p)?;
            }
            w.write_str("@")?;
        }
        self.host.write_to(w)?;
        if let Some(p) = self.port {
            w.write_str(":")?;
            write_u16(w, p)?;
        }
        self.params.write_to(w)?;
        if let Some(h) = &self.headers {
            w.write_str("?")?;
            w.write_str(h)?;
        }
        Ok(())
    }
}

/// Writes a port without going through `core::fmt`.
fn write_u16(w: &mut impl fmt::Write, n: u16) -> fmt::Result {
    w.write_str(crate::text::decimal(u64::from(n), &mut [0; 20]))
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl Uri {
    /// Writes the URI as [`fmt::Display`] does; generic so that encoding into a buffer
    /// skips the formatting machinery.
    pub(crate) fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.write_to(w),
            Uri::Tel(t) => {
                w.write_str("tel:")?;
                w.write_str(&t.number)?;
                t.params.write_to(w)
            }
            Uri::Other { scheme, opaque } => {
                w.write_str(scheme)?;
                w.write_str(":")?;
                w.write_str(opaque)
            }
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_password_params_headers() {
        let u =
            Uri::parse("sip:alice:secret@example.com:5061;transport=tcp;lr?subject=hi").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some("secret"));
        assert_eq!(s.port, Some(5061));
        assert_eq!(s.transport().as_deref(), Some("tcp"));
        assert!(s.params.contains("lr"));
        assert_eq!(s.headers.as_deref(), Some("subject=hi"));
        assert_eq!(
            u.to_string(),
            "sip:alice:secret@example.com:5061;transport=tcp;lr?subject=hi"
        );
    }

    #[test]
    fn parses_ipv6_references() {
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
        assert_eq!(s.port, Some(5070));
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
    }

    #[test]
    fn parses_tel_and_unknown_schemes() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.user(), Some("+1-201-555-0123"));
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme(), "nobodyKnowsThisScheme");
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("sip:user@example.com:99999").is_err());
    }
}
