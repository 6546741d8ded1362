//! Low-level lexing shared by the header, URI and SDP parsers.
//!
//! Everything here works on `&str` that has already been checked to be UTF-8 and returns
//! `&'static str` reasons; callers wrap them into [`crate::ParseError`] naming the header.

const TOKEN: u8 = 1;
const PARAM: u8 = 2;
const HOST: u8 = 4;

/// Character classes by byte, so that every class test is one load: `TOKEN` (RFC 3261
/// §25.1 `token`), `PARAM` (token plus the `[]/:&$` URI parameters may hold) and `HOST`
/// (letters, digits, `-`, `.`, `_`).
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = TOKEN | PARAM | HOST;
        }
        b += 1;
    }
    let token = b"-.!%*_+`'~";
    let mut i = 0;
    while i < token.len() {
        t[token[i] as usize] |= TOKEN | PARAM;
        i += 1;
    }
    let param = b"[]/:&$";
    let mut i = 0;
    while i < param.len() {
        t[param[i] as usize] |= PARAM;
        i += 1;
    }
    t[b'-' as usize] |= HOST;
    t[b'.' as usize] |= HOST;
    t[b'_' as usize] |= HOST;
    t
};

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    CLASSES[b as usize] & TOKEN != 0
}

/// Characters of a parameter name or unquoted value: token plus `[]/:&$`.
pub(crate) fn is_param_byte(b: u8) -> bool {
    CLASSES[b as usize] & PARAM != 0
}

/// Characters of a host name: letters, digits, `-`, `.` and `_`.
pub(crate) fn is_host_byte(b: u8) -> bool {
    CLASSES[b as usize] & HOST != 0
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims spaces and tabs (not other Unicode whitespace) from both ends.
pub(crate) fn trim_ws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_ws(b[start]) {
        start += 1;
    }
    while end > start && is_ws(b[end - 1]) {
        end -= 1;
    }
    // Only ASCII was trimmed, so both ends are character boundaries.
    s.get(start..end).unwrap_or("")
}

/// Splits `s` at top-level commas: commas inside quoted strings or `<...>` do not count.
/// An unterminated quoted string is an error rather than a silent merge of fields.
pub(crate) fn split_commas(s: &str) -> Result<Vec<&str>, &'static str> {
    Commas::new(s).collect()
}

/// The elements of a comma-separated list, trimmed, without allocating: the iterator form of
/// [`split_commas`]. An unterminated quoted string is reported as the last item, after every
/// element, so a caller that stops at the first `Err` sees it whatever the elements hold;
/// callers that check elements as they go keep their first element error and let this one
/// take precedence (as if the list had been split first).
pub(crate) struct Commas<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> Commas<'a> {
    pub(crate) fn new(s: &'a str) -> Commas<'a> {
        Commas {
            s,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for Commas<'a> {
    type Item = Result<&'a str, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes = self.s.as_bytes();
        let start = self.pos;
        if start == 0 && memchr::memchr2(b',', b'"', bytes).is_none() {
            // No comma and no quoted string: the whole value is the only element.
            self.done = true;
            return Some(Ok(trim_ws(self.s)));
        }
        let mut i = start;
        let mut in_quotes = false;
        let mut in_angle = false;
        while i < bytes.len() {
            let b = bytes[i];
            if in_quotes {
                if b == b'\\' {
                    i += 1;
                } else if b == b'"' {
                    in_quotes = false;
                }
            } else {
                match b {
                    b'"' => in_quotes = true,
                    b'<' => in_angle = true,
                    b'>' => in_angle = false,
                    b',' if !in_angle => {
                        self.pos = i + 1;
                        return Some(Ok(trim_ws(self.s.get(start..i).unwrap_or(""))));
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        self.done = true;
        if in_quotes {
            return Some(Err("unterminated quoted string"));
        }
        Some(Ok(trim_ws(self.s.get(start..).unwrap_or(""))))
    }
}

/// Index of the first `needle` in `s`. A plain loop: the strings searched here are a few
/// dozen bytes, where a SIMD search costs more in set-up than it saves.
pub(crate) fn find_byte(s: &str, needle: u8) -> Option<usize> {
    s.bytes().position(|b| b == needle)
}

/// Index of the last `needle` in `s`.
pub(crate) fn rfind_byte(s: &str, needle: u8) -> Option<usize> {
    s.bytes().rposition(|b| b == needle)
}

/// Checks a quoted string at the start of `s` without allocating. Returns the content
/// between the quotes, still escaped, and the remainder after the closing quote.
pub(crate) fn scan_quoted(s: &str) -> Result<(&str, &str), &'static str> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return Err("expected quoted string");
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                // quoted-pair: any octet except CR and LF may follow the backslash
                let next = *bytes.get(i + 1).ok_or("unterminated quoted string")?;
                if next == b'\r' || next == b'\n' {
                    return Err("invalid escape in quoted string");
                }
                i += 2;
            }
            b'"' => {
                // Both ends are ASCII quotes, so these are character boundaries.
                let inner = s.get(1..i).ok_or("unterminated quoted string")?;
                let rest = s.get(i + 1..).ok_or("unterminated quoted string")?;
                return Ok((inner, rest));
            }
            _ => i += 1,
        }
    }
    Err("unterminated quoted string")
}

/// Removes the backslashes of quoted-pairs from the content of a quoted string checked by
/// [`scan_quoted`]. Only ASCII backslashes are removed, so the result stays UTF-8.
pub(crate) fn unescape_quoted(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
pub(crate) fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Finds the first occurrence of `needle` outside quoted strings.
pub(crate) fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quotes {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Parses decimal digits into a `u32`, rejecting empty input, signs and overflow.
pub(crate) fn parse_u32(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a decimal number");
    }
    s.parse::<u32>().map_err(|_| "number out of range")
}

/// Percent-decodes `s`; invalid escapes are kept literally (RFC 4475 §3.1.1.5 says `%`
/// that is not an escape must not break the parser).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex_val(*b)),
                bytes.get(i + 2).and_then(|b| hex_val(*b)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `n` in decimal. Addresses and ports go into every Via and Contact a registrar
/// writes; `core::fmt` costs several times this there.
pub(crate) fn push_decimal(out: &mut String, n: u32) {
    out.push_str(decimal(u64::from(n), &mut [0; 20]));
}

/// `n` in decimal, written at the end of `buf`: ports, lengths, addresses' octets.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Appends `a` in dotted-quad form (what `Ipv4Addr`'s `Display` writes).
pub(crate) fn push_ipv4(out: &mut String, a: std::net::Ipv4Addr) {
    let mut buf = [0u8; 15];
    out.push_str(ipv4(a, &mut buf));
}

/// `a` in dotted-quad form, in `buf`.
pub(crate) fn ipv4(a: std::net::Ipv4Addr, buf: &mut [u8; 15]) -> &str {
    let mut len = 0;
    for (i, octet) in a.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        for &d in decimal(u64::from(octet), &mut [0; 20]).as_bytes() {
            buf[len] = d;
            len += 1;
        }
    }
    // Only ASCII digits and dots were written.
    std::str::from_utf8(&buf[..len]).unwrap_or("0.0.0.0")
}

/// `ip` as text: dotted quad, or RFC 5952 IPv6 without brackets.
pub(crate) fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(a) => {
            let mut s = String::with_capacity(15);
            push_ipv4(&mut s, a);
            s
        }
        std::net::IpAddr::V6(a) => a.to_string(),
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_commas_outside_quotes_and_angles() {
        let parts = split_commas(r#""a, b" <sip:x@y;p=1,2>, <sip:z>"#).unwrap();
        assert_eq!(parts, vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>"]);
        assert!(split_commas(r#""unterminated, x"#).is_err());
    }

    #[test]
    fn character_classes() {
        for b in 0..=255u8 {
            let token = b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b);
            assert_eq!(is_token_byte(b), token, "{b}");
            assert_eq!(is_param_byte(b), token || b"[]/:&$".contains(&b), "{b}");
            let host = b.is_ascii_alphanumeric() || b"-._".contains(&b);
            assert_eq!(is_host_byte(b), host, "{b}");
        }
        assert_eq!(trim_ws(" \t a b\t "), "a b");
        assert_eq!(trim_ws(" \u{a0}x\u{a0} "), "\u{a0}x\u{a0}");
        assert_eq!(trim_ws("  "), "");
    }

    #[test]
    fn numbers_and_addresses_read_as_core_fmt_writes_them() {
        for n in [0, 7, 10, 99, 255, 5060, 65535, 4_294_967_295] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        assert_eq!(decimal(u64::MAX, &mut [0; 20]), u64::MAX.to_string());
        for a in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "255.255.255.255",
            "192.168.1.100",
        ] {
            let ip: std::net::IpAddr = a.parse().unwrap();
            assert_eq!(ip_text(ip), a);
        }
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn quoted_string_unescapes() {
        let (inner, rest) = scan_quoted(r#""J Rosenberg \\\"" <x>"#).unwrap();
        assert_eq!(unescape_quoted(inner), r#"J Rosenberg \""#);
        assert_eq!(rest, " <x>");
    }

    #[test]
    fn percent_decode_keeps_bad_escapes() {
        assert_eq!(percent_decode("%75se%72"), b"user");
        assert_eq!(percent_decode("%Z%45"), b"%ZE");
    }

    #[test]
    fn u32_overflow_is_an_error() {
        assert_eq!(parse_u32("0009"), Ok(9));
        assert!(parse_u32("36893488147419103232").is_err());
        assert!(parse_u32("-1").is_err());
    }
}
