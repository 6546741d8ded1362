//! Low-level lexing shared by the header, URI and SDP parsers.
//!
//! Everything here works on `&str` that has already been checked to be UTF-8 and returns
//! `&'static str` reasons; callers wrap them into [`crate::ParseError`] naming the header.

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn trim_ws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Splits `s` at top-level commas: commas inside quoted strings or `<...>` do not count.
/// An unterminated quoted string is an error rather than a silent merge of fields.
pub(crate) fn split_commas(s: &str) -> Result<Vec<&str>, &'static str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
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
                    out.push(trim_ws(&s[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if in_quotes {
        return Err("unterminated quoted string");
    }
    out.push(trim_ws(&s[start..]));
    Ok(out)
}

/// Parses a quoted string at the start of `s` (which must begin with `"`). Returns the
/// unescaped content and the remainder after the closing quote.
pub(crate) fn parse_quoted(s: &str) -> Result<(String, &str), &'static str> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return Err("expected quoted string");
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                // quoted-pair: any octet except CR and LF may follow the backslash
                let next = *bytes.get(i + 1).ok_or("unterminated quoted string")?;
                if next == b'\r' || next == b'\n' {
                    return Err("invalid escape in quoted string");
                }
                out.push(next);
                i += 2;
            }
            b'"' => {
                let text = String::from_utf8(out).map_err(|_| "invalid UTF-8 in quoted string")?;
                return Ok((text, &s[i + 1..]));
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Err("unterminated quoted string")
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
    fn quoted_string_unescapes() {
        let (v, rest) = parse_quoted(r#""J Rosenberg \\\"" <x>"#).unwrap();
        assert_eq!(v, r#"J Rosenberg \""#);
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
