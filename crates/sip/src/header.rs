//! Header names, raw header values and the ordered header list.
//!
//! Values are stored as received (zero-copy slices of the receive buffer when no line
//! folding was involved) and parsed into typed values on demand. That keeps parsing cheap
//! for the headers a daemon never looks at and lets unknown headers pass through verbatim.

use std::fmt;

use bytes::Bytes;

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names (and their compact forms) map to a variant;
        /// anything else is kept verbatim in [`HeaderName::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $variant, )*
            Other(String),
        }

        impl HeaderName {
            /// The canonical spelling used when serializing.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other(s) => s,
                }
            }

            fn lookup(name: &[u8]) -> Option<HeaderName> {
                if let [c] = name {
                    let c = c.to_ascii_lowercase();
                    $( $( if c == $compact.as_bytes()[0] { return Some(HeaderName::$variant); } )? )*
                    return None;
                }
                // One integer switch picks the only candidate (two for Refer-To/Reply-To),
                // then one case-insensitive comparison confirms it.
                match name_key(name) {
                    $( keys::$variant if same_name(name, $canonical.as_bytes()) => {
                        Some(HeaderName::$variant)
                    } )*
                    _ => None,
                }
            }

            /// `"Name: "`, what a header line starts with when serialized.
            pub(crate) fn line_prefix(&self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some(concat!($canonical, ": ")), )*
                    HeaderName::Other(_) => None,
                }
            }
        }

        /// The [`name_key`] of every canonical name, as constants to match on.
        #[allow(non_upper_case_globals)]
        mod keys {
            $( pub(super) const $variant: u32 = super::name_key($canonical.as_bytes()); )*
        }

        #[cfg(test)]
        const ALL: &[(HeaderName, &str, Option<&str>)] = &[
            $( (HeaderName::$variant, $canonical, header_names!(@opt $($compact)?)), )*
        ];
    };
    (@opt $c:literal) => { Some($c) };
    (@opt) => { None };
}

/// Compares a received name, already checked to be a token, with a canonical name made of
/// letters and `-`, ignoring ASCII case, eight bytes at a time. Setting bit 0x20 lower-cases
/// a letter and leaves `-` alone; the only other byte it maps onto a letter or `-` is the
/// other case of that letter, or CR for `-`, which is not a token character.
fn same_name(name: &[u8], canonical: &[u8]) -> bool {
    const LOWER8: u64 = 0x2020_2020_2020_2020;
    const LOWER4: u32 = 0x2020_2020;
    let n = name.len();
    if n != canonical.len() {
        return false;
    }
    if n >= 8 {
        // Eight-byte windows, the last one overlapping the one before it.
        let mut i = 0;
        loop {
            let at = i.min(n - 8);
            if load8(name, at) | LOWER8 != load8(canonical, at) | LOWER8 {
                return false;
            }
            if at == n - 8 {
                return true;
            }
            i += 8;
        }
    }
    if n >= 4 {
        return load4(name, 0) | LOWER4 == load4(canonical, 0) | LOWER4
            && load4(name, n - 4) | LOWER4 == load4(canonical, n - 4) | LOWER4;
    }
    name.iter()
        .zip(canonical)
        .all(|(x, y)| x | 0x20 == y | 0x20)
}

fn load8(s: &[u8], at: usize) -> u64 {
    s.get(at..at + 8)
        .and_then(|c| c.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn load4(s: &[u8], at: usize) -> u32 {
    s.get(at..at + 4)
        .and_then(|c| c.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Length, first and last letter (lower-cased) of a header name: distinct for every known
/// name except Refer-To and Reply-To, which the comparison after the switch tells apart.
const fn name_key(name: &[u8]) -> u32 {
    match name {
        [] => 0,
        [first, .., last] | [first @ last] => {
            (name.len() as u32) << 16
                | (first.to_ascii_lowercase() as u32) << 8
                | last.to_ascii_lowercase() as u32
        }
    }
}

header_names! {
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", "u";
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", "i";
    CallInfo => "Call-Info";
    Contact => "Contact", "m";
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", "e";
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", "o";
    Expires => "Expires";
    From => "From", "f";
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    Organization => "Organization";
    Path => "Path";
    Priority => "Priority";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    Replaces => "Replaces";
    ReplyTo => "Reply-To";
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    SessionExpires => "Session-Expires", "x";
    Subject => "Subject", "s";
    SubscriptionState => "Subscription-State";
    Supported => "Supported", "k";
    Timestamp => "Timestamp";
    To => "To", "t";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", "v";
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl HeaderName {
    /// Maps a received name (any case, compact or long form) to a `HeaderName`.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if let Some(h) = HeaderName::lookup(name) {
            return h;
        }
        HeaderName::Other(String::from_utf8_lossy(name).into_owned())
    }

    pub fn parse(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.as_bytes())
    }
}

impl From<&str> for HeaderName {
    fn from(s: &str) -> Self {
        HeaderName::parse(s)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header value: UTF-8 text with folding already collapsed. Cloning is cheap.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HeaderValue(Bytes);

impl HeaderValue {
    /// Wraps bytes that the caller has checked to be UTF-8 without CR or LF.
    pub(crate) fn from_checked(b: Bytes) -> Self {
        HeaderValue(b)
    }

    /// Builds a value from text. CR and LF are replaced by spaces so a value can never
    /// inject a header line.
    pub fn new(s: &str) -> Self {
        if s.bytes().any(|b| b == b'\r' || b == b'\n') {
            HeaderValue(Bytes::from(s.replace(['\r', '\n'], " ")))
        } else {
            HeaderValue(Bytes::copy_from_slice(s.as_bytes()))
        }
    }

    pub fn as_str(&self) -> &str {
        // Construction guarantees UTF-8; the fallback is unreachable but keeps this total.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        HeaderValue::new(s)
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        if s.bytes().any(|b| b == b'\r' || b == b'\n') {
            HeaderValue::new(&s)
        } else {
            HeaderValue(Bytes::from(s))
        }
    }
}

/// One header field line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
}

/// The header fields of a message, in order. Several fields with the same name are kept as
/// separate entries; [`Headers::values`] flattens comma-separated lists across them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Headers(Vec::with_capacity(n))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }

    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).map(HeaderValue::as_str)
    }

    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a HeaderValue> {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|h| &h.name == name)
    }

    /// All comma-separated elements of every `name` field, in order.
    pub fn values(&self, name: &HeaderName) -> Result<Vec<&str>, crate::ParseError> {
        let mut out = Vec::new();
        for v in self.0.iter().filter(|h| &h.name == name).map(|h| &h.value) {
            let parts = crate::text::split_commas(v.as_str())
                .map_err(|r| crate::ParseError::header(name.as_str(), r))?;
            out.extend(parts.into_iter().filter(|p| !p.is_empty()));
        }
        Ok(out)
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<HeaderValue>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts before all other fields (e.g. a new top Via or Record-Route).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<HeaderValue>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Replaces every `name` field with one value, keeping the position of the first.
    pub fn set(&mut self, name: HeaderName, value: impl Into<HeaderValue>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(i) => {
                self.0[i].value = value;
                let mut seen = false;
                self.0.retain(|h| {
                    if h.name != name {
                        return true;
                    }
                    let keep = !seen;
                    seen = true;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// Mutable access to the first field named `name`.
    pub fn get_mut(&mut self, name: &HeaderName) -> Option<&mut HeaderValue> {
        self.0
            .iter_mut()
            .find(|h| &h.name == name)
            .map(|h| &mut h.value)
    }

    pub(crate) fn raw_mut(&mut self) -> &mut Vec<Header> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"ViA"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(
            HeaderName::from_bytes(b"C%6Fntact"),
            HeaderName::Other("C%6Fntact".into())
        );
    }

    #[test]
    fn every_name_and_compact_form_is_found_in_any_case() {
        for (name, canonical, compact) in ALL {
            assert_eq!(&HeaderName::from_bytes(canonical.as_bytes()), name);
            assert_eq!(name.as_str(), *canonical);
            let upper = canonical.to_ascii_uppercase();
            assert_eq!(&HeaderName::from_bytes(upper.as_bytes()), name);
            let lower = canonical.to_ascii_lowercase();
            assert_eq!(&HeaderName::from_bytes(lower.as_bytes()), name);
            if let Some(c) = compact {
                assert_eq!(&HeaderName::from_bytes(c.as_bytes()), name);
                let upper = c.to_ascii_uppercase();
                assert_eq!(&HeaderName::from_bytes(upper.as_bytes()), name);
            }
        }
        // Same key as a known name, different letters in the middle (also past the first
        // eight bytes, and a byte that only differs in bit 0x20 from a letter or `-`).
        assert_eq!(
            HeaderName::from_bytes(b"Content-Lengtx"),
            HeaderName::Other("Content-Lengtx".into())
        );
        assert_eq!(
            HeaderName::from_bytes(b"Content.Length"),
            HeaderName::Other("Content.Length".into())
        );
        assert_eq!(
            HeaderName::from_bytes(b"Max-Forwards"),
            HeaderName::MaxForwards
        );
        assert_eq!(
            HeaderName::from_bytes(b"Vxa"),
            HeaderName::Other("Vxa".into())
        );
        assert_eq!(
            HeaderName::from_bytes(b"Reply-Xo"),
            HeaderName::Other("Reply-Xo".into())
        );
        assert_eq!(HeaderName::from_bytes(b"z"), HeaderName::Other("z".into()));
    }

    #[test]
    fn set_replaces_all() {
        let mut h = Headers::new();
        h.push(HeaderName::Contact, "<sip:a@b>");
        h.push(HeaderName::To, "<sip:c@d>");
        h.push(HeaderName::Contact, "<sip:e@f>");
        h.set(HeaderName::Contact, "*");
        assert_eq!(h.count(&HeaderName::Contact), 1);
        assert_eq!(h.iter().next().map(|h| h.value.as_str()), Some("*"));
    }

    #[test]
    fn values_cannot_inject_lines() {
        let v = HeaderValue::new("a\r\nVia: evil");
        assert_eq!(v.as_str(), "a  Via: evil");
    }
}
