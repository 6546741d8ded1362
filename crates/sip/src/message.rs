//! Requests and responses: parsing (RFC 3261 §7, §25), validation and serialization.

use std::fmt;

use bytes::Bytes;

use crate::header::{Header, HeaderName, HeaderValue, Headers};
use crate::text::{find_byte, is_token, is_ws, parse_u32, split_commas, trim_ws, Commas};
use crate::types::{CSeq, Contact, Method, NameAddr, NameAddrRef, Via, ViaRef};
use crate::uri::Uri;
use crate::ParseError;

/// A response status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(pub u16);

impl StatusCode {
    pub const TRYING: StatusCode = StatusCode(100);
    pub const RINGING: StatusCode = StatusCode(180);
    pub const SESSION_PROGRESS: StatusCode = StatusCode(183);
    pub const OK: StatusCode = StatusCode(200);
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    pub const UNAUTHORIZED: StatusCode = StatusCode(401);
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode(405);
    pub const NOT_ACCEPTABLE: StatusCode = StatusCode(406);
    pub const PROXY_AUTHENTICATION_REQUIRED: StatusCode = StatusCode(407);
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    pub const UNSUPPORTED_MEDIA_TYPE: StatusCode = StatusCode(415);
    pub const UNSUPPORTED_URI_SCHEME: StatusCode = StatusCode(416);
    pub const BAD_EXTENSION: StatusCode = StatusCode(420);
    pub const INTERVAL_TOO_BRIEF: StatusCode = StatusCode(423);
    pub const TEMPORARILY_UNAVAILABLE: StatusCode = StatusCode(480);
    pub const CALL_DOES_NOT_EXIST: StatusCode = StatusCode(481);
    pub const LOOP_DETECTED: StatusCode = StatusCode(482);
    pub const TOO_MANY_HOPS: StatusCode = StatusCode(483);
    pub const BUSY_HERE: StatusCode = StatusCode(486);
    pub const REQUEST_TERMINATED: StatusCode = StatusCode(487);
    pub const NOT_ACCEPTABLE_HERE: StatusCode = StatusCode(488);
    pub const SERVER_INTERNAL_ERROR: StatusCode = StatusCode(500);
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);
    pub const MESSAGE_TOO_LARGE: StatusCode = StatusCode(513);
    pub const DECLINE: StatusCode = StatusCode(603);

    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    pub fn is_final(self) -> bool {
        self.0 >= 200
    }

    pub fn canonical_reason(self) -> Option<&'static str> {
        Some(match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            423 => "Interval Too Brief",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            491 => "Request Pending",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            600 => "Busy Everywhere",
            603 => "Decline",
            _ => return None,
        })
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Size limits applied while parsing, so a hostile peer cannot make us buffer or index
/// without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: usize,
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_headers: 128,
        }
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// Either kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// Parses one datagram with default [`Limits`]. Octets beyond `Content-Length` are
    /// ignored (RFC 3261 §18.3); without `Content-Length` the body runs to the end.
    pub fn parse(buf: impl Into<Bytes>) -> Result<Message, ParseError> {
        parse_with(buf.into(), &Limits::default(), Framing::Datagram)
    }

    pub fn parse_with_limits(
        buf: impl Into<Bytes>,
        limits: &Limits,
    ) -> Result<Message, ParseError> {
        parse_with(buf.into(), limits, Framing::Datagram)
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.encode(out),
            Message::Response(r) => r.encode(out),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(encoded_len_hint(self.headers(), self.body_len()));
        self.encode(&mut v);
        Bytes::from(v)
    }

    fn body_len(&self) -> usize {
        match self {
            Message::Request(r) => r.body.len(),
            Message::Response(r) => r.body.len(),
        }
    }
}

/// An upper-ish estimate of the serialized size, so encoding allocates once.
fn encoded_len_hint(headers: &Headers, body: usize) -> usize {
    let h: usize = headers
        .iter()
        .map(|h| h.name.as_str().len() + h.value.as_bytes().len() + 4)
        .sum();
    128 + h + body
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Parses a request datagram; a response is an error.
    pub fn parse(buf: impl Into<Bytes>) -> Result<Request, ParseError> {
        match Message::parse(buf)? {
            Message::Request(r) => Ok(r),
            Message::Response(_) => Err(ParseError::StartLine("expected a request")),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        // Writing into a Vec cannot fail.
        let _ = self.uri.write_to(&mut VecWriter(out));
        out.extend_from_slice(b" SIP/2.0\r\n");
        encode_headers_and_body(&self.headers, &self.body, out);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(encoded_len_hint(&self.headers, self.body.len()));
        self.encode(&mut v);
        Bytes::from(v)
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) {
        self.body = body.into();
        self.headers.set(HeaderName::ContentType, content_type);
    }
}

impl Response {
    pub fn new(status: StatusCode) -> Response {
        Response {
            status,
            reason: status.canonical_reason().unwrap_or("").to_owned(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builds a response to `req` per RFC 3261 §8.2.6: copies Via (all, in order), From,
    /// To, Call-ID and CSeq, and for responses from a UAS to requests other than 100 adds
    /// `to_tag` to the To header if it has none.
    pub fn for_request(req: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
        let mut resp = Response::new(status);
        for h in req.headers.iter() {
            match h.name {
                HeaderName::Via
                | HeaderName::From
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::Timestamp => resp.headers.push(h.name.clone(), h.value.clone()),
                HeaderName::To => {
                    let value = match to_tag.filter(|_| status.0 != 100) {
                        Some(tag) => with_tag(&h.value, tag),
                        None => h.value.clone(),
                    };
                    resp.headers.push(HeaderName::To, value);
                }
                HeaderName::RecordRoute if status.0 > 100 && status.0 < 300 => {
                    resp.headers.push(HeaderName::RecordRoute, h.value.clone())
                }
                _ => {}
            }
        }
        resp
    }

    pub fn parse(buf: impl Into<Bytes>) -> Result<Response, ParseError> {
        match Message::parse(buf)? {
            Message::Response(r) => Ok(r),
            Message::Request(_) => Err(ParseError::StartLine("expected a response")),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"SIP/2.0 ");
        let code = self.status.0.min(999);
        out.extend_from_slice(&[
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(self.reason.replace(['\r', '\n'], " ").as_bytes());
        out.extend_from_slice(b"\r\n");
        encode_headers_and_body(&self.headers, &self.body, out);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(encoded_len_hint(&self.headers, self.body.len()));
        self.encode(&mut v);
        Bytes::from(v)
    }

    pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) {
        self.body = body.into();
        self.headers.set(HeaderName::ContentType, content_type);
    }
}

/// Lets the `fmt::Write`-generic writers of URIs append to a byte buffer directly.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Writes the headers and body. Content-Length is always written from the actual body so a
/// serialized message is correctly framed on stream transports whatever the caller set.
fn encode_headers_and_body(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    let mut wrote_len = false;
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            if wrote_len {
                continue;
            }
            wrote_len = true;
            write_content_length(body.len(), out);
            continue;
        }
        match h.name.line_prefix() {
            Some(prefix) => out.extend_from_slice(prefix.as_bytes()),
            None => {
                out.extend_from_slice(h.name.as_str().as_bytes());
                out.extend_from_slice(b": ");
            }
        }
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_len {
        write_content_length(body.len(), out);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

fn write_content_length(n: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(crate::text::decimal(n as u64, &mut [0; 20]).as_bytes());
    out.extend_from_slice(b"\r\n");
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Datagram,
    Stream,
}

/// Locates the end of the header section: returns (index of first body byte). Accepts bare
/// LF line ends, which some broken phones send.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    scan_head(buf, |_| {})
}

/// [`find_head_end`], handing the index of every `\n` before the blank line to `line_end`,
/// so the header parser does not search for them again.
fn scan_head(buf: &[u8], mut line_end: impl FnMut(usize)) -> Option<usize> {
    let mut pos = 0;
    while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
        let nl = pos + nl;
        line_end(nl);
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => pos = nl + 1,
        }
    }
    None
}

/// Number of leading CRLFs to skip (RFC 3261 §7.5: ignore CRLF before the start line).
pub(crate) fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

pub(crate) fn parse_with(
    buf: Bytes,
    limits: &Limits,
    framing: Framing,
) -> Result<Message, ParseError> {
    if buf.len() > limits.max_message_size {
        return Err(ParseError::TooLarge {
            limit: limits.max_message_size,
        });
    }
    let skip = leading_crlf(&buf);
    let buf = buf.slice(skip..);
    if buf.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut line_ends = Vec::with_capacity(32);
    let head_end = match scan_head(&buf, |nl| line_ends.push(nl)) {
        Some(e) => e,
        // A datagram is complete by definition: tolerate a missing final blank line so the
        // real error (if any) gets reported instead of "incomplete".
        None if framing == Framing::Datagram && buf.ends_with(b"\n") => buf.len(),
        None => return Err(ParseError::Incomplete),
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Err(ParseError::HeaderLine {
            line: 0,
            reason: "header section is not UTF-8",
        });
    };

    // Start line first, so that its errors take precedence over header errors.
    let first_nl = line_ends
        .first()
        .copied()
        .unwrap_or(head.len())
        .min(head.len());
    let start = head[..first_nl]
        .strip_suffix('\r')
        .unwrap_or(&head[..first_nl]);
    let start_line = if has_sip_prefix(start) {
        StartLine::Status(parse_status_line(start)?)
    } else {
        StartLine::Request(parse_request_line(start)?)
    };

    let header_lines = line_ends.get(1..).unwrap_or(&[]);
    let (headers, ranges) = parse_headers(&buf, first_nl + 1, header_lines, limits)?;

    let available = buf.len() - head_end;
    let body = match content_length(&headers)? {
        Some(n) if n > available => {
            return Err(ParseError::BodyTooShort {
                declared: n,
                available,
            })
        }
        Some(n) => buf.slice(head_end..head_end + n),
        None if framing == Framing::Stream => return Err(ParseError::MissingContentLength),
        None => buf.slice(head_end..),
    };

    // The values are checked where they lie in the (already UTF-8 checked) header section,
    // so no value is checked or copied twice; only folded values live elsewhere.
    let fields = headers.iter().zip(&ranges).map(|(h, &(s, e, folded))| {
        let text = if folded { None } else { head.get(s..e) };
        (&h.name, text.unwrap_or_else(|| h.value.as_str()))
    });
    match start_line {
        StartLine::Status((status, reason)) => {
            validate(fields, None)?;
            Ok(Message::Response(Response {
                status,
                reason,
                headers,
                body,
            }))
        }
        StartLine::Request((method, uri)) => {
            validate(fields, Some(&method))?;
            Ok(Message::Request(Request {
                method,
                uri,
                headers,
                body,
            }))
        }
    }
}

enum StartLine {
    Request((Method, Uri)),
    Status((StatusCode, String)),
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_request_line(line: &str) -> Result<(Method, Uri), ParseError> {
    // Exactly two spaces; searched byte-wise, the line is short.
    let sp1 = find_byte(line, b' ');
    let sp2 = sp1.and_then(|a| find_byte(&line[a + 1..], b' ').map(|b| a + 1 + b));
    let (m, u, v) = match (sp1, sp2) {
        (Some(a), Some(b)) if find_byte(&line[b + 1..], b' ').is_none() => {
            (&line[..a], &line[a + 1..b], &line[b + 1..])
        }
        _ => {
            return Err(ParseError::StartLine(
                "expected exactly `METHOD SP Request-URI SP SIP/2.0`",
            ))
        }
    };
    if m.is_empty() || u.is_empty() || v.is_empty() {
        return Err(ParseError::StartLine("extra whitespace in request line"));
    }
    check_version(v)?;
    let method = Method::parse(m).map_err(ParseError::StartLine)?;
    let uri = Uri::parse(u).map_err(ParseError::RequestUri)?;
    if let Uri::Sip(s) = &uri {
        if s.headers.is_some() {
            return Err(ParseError::RequestUri(
                "headers are not allowed in a Request-URI",
            ));
        }
    }
    Ok((method, uri))
}

/// Compares bytes, not a `str` slice: the line may hold multibyte UTF-8 (found by fuzzing).
fn has_sip_prefix(s: &str) -> bool {
    s.as_bytes()
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.len() > 4 && has_sip_prefix(v) {
        Err(ParseError::Version(v.chars().take(16).collect()))
    } else {
        Err(ParseError::StartLine("missing SIP version"))
    }
}

fn parse_status_line(line: &str) -> Result<(StatusCode, String), ParseError> {
    let (version, rest) = line.split_once(' ').ok_or(ParseError::StartLine(
        "expected `SIP/2.0 SP code SP reason`",
    ))?;
    check_version(version)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::StartLine("status code must be three digits"));
    }
    let code: u16 = code
        .parse()
        .map_err(|_| ParseError::StartLine("status code must be three digits"))?;
    if !(100..=699).contains(&code) {
        return Err(ParseError::StartLine("status code out of range"));
    }
    Ok((StatusCode(code), reason.to_owned()))
}

/// Where a header value lies in the receive buffer: start, end (trimmed), and whether it
/// was folded (then the value is a collapsed copy and the range is not its text).
type ValueRange = (usize, usize, bool);

/// Splits the header section into fields, collapsing folded lines into single spaces.
fn parse_headers(
    buf: &Bytes,
    mut pos: usize,
    line_ends: &[usize],
    limits: &Limits,
) -> Result<(Headers, Vec<ValueRange>), ParseError> {
    let mut headers = Headers::with_capacity(16);
    let raw = headers.raw_mut();
    let mut ranges: Vec<ValueRange> = Vec::with_capacity(16);
    let mut line_no = 1;
    for &nl in line_ends {
        let line = strip_cr(buf.get(pos..nl).unwrap_or(&[]));
        line_no += 1;
        if line.is_empty() {
            break;
        }
        if is_ws(line[0]) {
            let last = ranges.last_mut().ok_or(ParseError::HeaderLine {
                line: line_no,
                reason: "continuation line before any header",
            })?;
            let end = pos + line.len();
            if line.iter().any(|b| !is_ws(*b)) {
                last.1 = end;
                last.2 = true;
            }
        } else {
            let (name, colon) = header_name(line, line_no)?;
            if raw.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            // The value is filled in below, once folding is known.
            raw.push(Header {
                name: HeaderName::from_bytes(name),
                value: HeaderValue::from_checked(Bytes::new()),
            });
            ranges.push((pos + colon + 1, pos + line.len(), false));
        }
        pos = nl + 1;
    }
    for (header, range) in raw.iter_mut().zip(ranges.iter_mut()) {
        let (start, end, folded) = *range;
        header.value = if folded {
            HeaderValue::from_checked(Bytes::from(unfold(&buf[start..end])))
        } else {
            let (s, e) = trim_range(buf, start, end);
            *range = (s, e, false);
            HeaderValue::from_checked(buf.slice(s..e))
        };
    }
    Ok((headers, ranges))
}

/// The name of a header line (a token, maybe followed by whitespace, then `:`) and the index
/// of the colon.
fn header_name(line: &[u8], line_no: usize) -> Result<(&[u8], usize), ParseError> {
    // Fast path: one pass over the name, which is where the colon must be.
    let name_end = line
        .iter()
        .position(|b| !crate::text::is_token_byte(*b))
        .unwrap_or(line.len());
    let colon = name_end
        + line[name_end..]
            .iter()
            .position(|b| !is_ws(*b))
            .unwrap_or(line.len() - name_end);
    if name_end > 0 && line.get(colon) == Some(&b':') {
        return Ok((&line[..name_end], colon));
    }
    // Otherwise the name before the first colon, trimmed, is empty or not a token.
    let reason = if memchr::memchr(b':', line).is_some() {
        "header name is not a token"
    } else {
        "no colon"
    };
    Err(ParseError::HeaderLine {
        line: line_no,
        reason,
    })
}

fn trim_range(buf: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && is_ws(buf[s]) {
        s += 1;
    }
    while e > s && is_ws(buf[e - 1]) {
        e -= 1;
    }
    (s, e)
}

/// Replaces each `[WS] CRLF WS...` fold with one space and trims the ends.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\r' || b == b'\n' {
            while out.last().is_some_and(|c| is_ws(*c)) {
                out.pop();
            }
            while i < raw.len() && (raw[i] == b'\r' || raw[i] == b'\n' || is_ws(raw[i])) {
                i += 1;
            }
            if !out.is_empty() {
                out.push(b' ');
            }
            continue;
        }
        out.push(b);
        i += 1;
    }
    let (s, e) = trim_range(&out, 0, out.len());
    out[s..e].to_vec()
}

fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for v in headers.get_all(&HeaderName::ContentLength) {
        if found.is_some() {
            return Err(ParseError::Duplicate("Content-Length"));
        }
        let n = parse_u32(v.as_str()).map_err(|r| ParseError::header("Content-Length", r))?;
        found = Some(n as usize);
    }
    Ok(found)
}

/// Header fields that must appear at most once (RFC 4475 §3.3.8), by their index in the
/// counters of [`validate`].
const SINGLE: [&str; 5] = ["To", "From", "Call-ID", "CSeq", "Max-Forwards"];

/// Checks the headers every SIP element relies on, naming the first one that is wrong.
/// Other headers are parsed lazily through the typed accessors on [`Headers`].
///
/// Runs on every message, so it checks through the borrowed views (`ViaRef`,
/// `NameAddrRef`), which apply the same rules as the owned types without allocating.
fn validate<'a>(
    fields: impl Iterator<Item = (&'a HeaderName, &'a str)>,
    method: Option<&Method>,
) -> Result<(), ParseError> {
    let mut counts = [0usize; 5];
    let mut via = 0;
    for (name, v) in fields {
        match name {
            HeaderName::Via => {
                each_element("Via", v, |part| {
                    ViaRef::parse(part)?;
                    via += 1;
                    Ok(())
                })?;
            }
            HeaderName::To => {
                counts[0] += 1;
                NameAddrRef::parse(v).map_err(|r| ParseError::header("To", r))?;
            }
            HeaderName::From => {
                counts[1] += 1;
                NameAddrRef::parse(v).map_err(|r| ParseError::header("From", r))?;
            }
            HeaderName::CallId => {
                counts[2] += 1;
                if v.is_empty() || v.bytes().any(is_ws) {
                    return Err(ParseError::header("Call-ID", "must be one word"));
                }
            }
            HeaderName::CSeq => {
                counts[3] += 1;
                check_cseq(v, method)?;
            }
            HeaderName::MaxForwards => {
                counts[4] += 1;
                let n = parse_u32(v).map_err(|r| ParseError::header("Max-Forwards", r))?;
                if n > 255 {
                    return Err(ParseError::header("Max-Forwards", "larger than 255"));
                }
            }
            HeaderName::Expires | HeaderName::MinExpires => {
                parse_u32(v).map_err(|r| ParseError::header(name.as_str(), r))?;
            }
            HeaderName::Contact => {
                contact_elements(v, |_| Ok(()))?;
            }
            HeaderName::Route | HeaderName::RecordRoute => {
                each_element(name.as_str(), v, |part| {
                    NameAddrRef::parse(part).map(|_| ())
                })?;
            }
            HeaderName::Date
                // RFC 3261 §20.17: SIP-date is an RFC 1123 date and always in GMT.
                if !v.ends_with(" GMT") => {
                    return Err(ParseError::header("Date", "time zone must be GMT"));
                }
            HeaderName::RetryAfter => {
                let digits = v.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
                parse_u32(digits).map_err(|r| ParseError::header("Retry-After", r))?;
            }
            HeaderName::ContentType
                if !v.contains('/') => {
                    return Err(ParseError::header("Content-Type", "expected type/subtype"));
                }
            _ => {}
        }
    }
    for (i, name) in SINGLE.iter().enumerate() {
        if counts[i] > 1 {
            return Err(ParseError::Duplicate(name));
        }
    }
    for (i, name) in [(2, "Call-ID"), (3, "CSeq"), (1, "From"), (0, "To")] {
        if counts[i] == 0 {
            return Err(ParseError::Missing(name));
        }
    }
    if via == 0 {
        return Err(ParseError::Missing("Via"));
    }
    Ok(())
}

fn check_cseq(v: &str, method: Option<&Method>) -> Result<(), ParseError> {
    let c = CSeq::parse(v).map_err(|r| ParseError::header("CSeq", r))?;
    if let Some(m) = method {
        if &c.method != m {
            return Err(ParseError::CSeqMismatch {
                method: m.to_string(),
                cseq: c.method.to_string(),
            });
        }
    }
    Ok(())
}

/// Runs `check` on every element of the comma-separated list `v` of header `name`. The
/// first element error is returned, unless the list has an unterminated quoted string,
/// which is reported first (as if the list had been split before any element was looked at).
fn each_element<'a>(
    name: &str,
    v: &'a str,
    mut check: impl FnMut(&'a str) -> Result<(), &'static str>,
) -> Result<(), ParseError> {
    let mut first_err = None;
    for part in Commas::new(v) {
        let part = part.map_err(|r| ParseError::header(name, r))?;
        if first_err.is_none() {
            first_err = check(part).err();
        }
    }
    first_err.map_or(Ok(()), |r| Err(ParseError::header(name, r)))
}

/// Checks one Contact field value and hands each address to `f`; `Ok(true)` for `*`.
fn contact_elements<'a>(
    v: &'a str,
    mut f: impl FnMut(NameAddrRef<'a>) -> Result<(), ParseError>,
) -> Result<bool, ParseError> {
    if trim_ws(v) == "*" {
        return Ok(true);
    }
    let mut first_err = None;
    for part in Commas::new(v) {
        let part = part.map_err(|r| ParseError::header("Contact", r))?;
        if first_err.is_some() {
            continue;
        }
        let mut expires = None;
        let checked = NameAddrRef::parse_with(part, |name, value| {
            if expires.is_none() && name.eq_ignore_ascii_case("expires") {
                expires = Some(value);
            }
        })
        .map_err(|r| ParseError::header("Contact", r))
        .and_then(|na| {
            if let Some(e) = expires {
                let e = e.ok_or_else(|| ParseError::header("Contact", "expires without value"))?;
                if e.parse::<u64>().is_err() {
                    return Err(ParseError::header("Contact", "invalid expires parameter"));
                }
            }
            f(na)
        });
        first_err = checked.err();
    }
    first_err.map_or(Ok(false), Err)
}

pub(crate) fn parse_contact(v: &str) -> Result<Contact, ParseError> {
    let mut addrs = Vec::new();
    let star = contact_elements(v, |na| {
        addrs.push(
            na.into_owned()
                .map_err(|r| ParseError::header("Contact", r))?,
        );
        Ok(())
    })?;
    Ok(if star {
        Contact::Star
    } else {
        Contact::Addrs(addrs)
    })
}

/// Typed accessors. Each parses on demand and names the header in its error.
impl Headers {
    pub fn call_id(&self) -> Result<&str, ParseError> {
        self.get_str(&HeaderName::CallId)
            .ok_or(ParseError::Missing("Call-ID"))
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let v = self
            .get_str(&HeaderName::CSeq)
            .ok_or(ParseError::Missing("CSeq"))?;
        CSeq::parse(v).map_err(|r| ParseError::header("CSeq", r))
    }

    pub fn from(&self) -> Result<NameAddr, ParseError> {
        let v = self
            .get_str(&HeaderName::From)
            .ok_or(ParseError::Missing("From"))?;
        NameAddr::parse(v).map_err(|r| ParseError::header("From", r))
    }

    pub fn to(&self) -> Result<NameAddr, ParseError> {
        let v = self
            .get_str(&HeaderName::To)
            .ok_or(ParseError::Missing("To"))?;
        NameAddr::parse(v).map_err(|r| ParseError::header("To", r))
    }

    /// The To tag, read without building the whole To: "is this request in a dialog" is
    /// asked of every request.
    pub fn to_tag(&self) -> Result<Option<&str>, ParseError> {
        let v = self
            .get_str(&HeaderName::To)
            .ok_or(ParseError::Missing("To"))?;
        let mut tag = None;
        crate::types::NameAddrRef::parse_with(v, |name, value| {
            if tag.is_none() && name.eq_ignore_ascii_case("tag") {
                tag = Some(value.unwrap_or(""));
            }
        })
        .map_err(|r| ParseError::header("To", r))?;
        Ok(tag)
    }

    /// Every Via value, top first, flattening comma-separated lists.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        self.values(&HeaderName::Via)?
            .into_iter()
            .map(|v| Via::parse(v).map_err(|r| ParseError::header("Via", r)))
            .collect()
    }

    pub fn top_via(&self) -> Result<Via, ParseError> {
        let first = self
            .get_str(&HeaderName::Via)
            .ok_or(ParseError::Missing("Via"))?;
        let part = crate::text::Commas::new(first)
            .next()
            .unwrap_or(Ok(""))
            .map_err(|r| ParseError::header("Via", r))?;
        Via::parse(part).map_err(|r| ParseError::header("Via", r))
    }

    /// Replaces the top Via value, keeping any further values of a comma-separated field.
    pub fn set_top_via(&mut self, via: &Via) {
        self.set_top_via_text(via.to_text());
    }

    /// [`Headers::set_top_via`] with the value already written.
    pub(crate) fn set_top_via_text(&mut self, mut text: String) {
        if let Some(v) = self.get_mut(&HeaderName::Via) {
            if v.as_str().contains(',') {
                if let Ok(parts) = split_commas(v.as_str()) {
                    if parts.len() > 1 {
                        text.push_str(", ");
                        text.push_str(&parts[1..].join(", "));
                    }
                }
            }
            *v = HeaderValue::from(text);
        } else {
            self.push_front(HeaderName::Via, text);
        }
    }

    /// Removes the top Via value (as a proxy or B2BUA does on responses).
    pub fn pop_via(&mut self) {
        if let Some(v) = self.get_mut(&HeaderName::Via) {
            if let Ok(parts) = split_commas(v.as_str()) {
                if parts.len() > 1 {
                    *v = HeaderValue::from(parts[1..].join(", "));
                    return;
                }
            }
        }
        let raw = self.raw_mut();
        if let Some(i) = raw.iter().position(|h| h.name == HeaderName::Via) {
            raw.remove(i);
        }
    }

    /// The merged Contact header fields, if any.
    pub fn contact(&self) -> Result<Option<Contact>, ParseError> {
        let mut all = Vec::new();
        let mut star = false;
        for v in self.get_all(&HeaderName::Contact) {
            match parse_contact(v.as_str())? {
                Contact::Star => star = true,
                Contact::Addrs(a) => all.extend(a),
            }
        }
        match (star, all.is_empty()) {
            (true, true) => Ok(Some(Contact::Star)),
            (true, false) => Err(ParseError::header("Contact", "* mixed with addresses")),
            (false, true) => Ok(None),
            (false, false) => Ok(Some(Contact::Addrs(all))),
        }
    }

    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.get_str(&HeaderName::Expires)
            .map(|v| parse_u32(v).map_err(|r| ParseError::header("Expires", r)))
            .transpose()
    }

    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.get_str(&HeaderName::MaxForwards)
            .map(|v| parse_u32(v).map_err(|r| ParseError::header("Max-Forwards", r)))
            .transpose()
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get_str(&HeaderName::ContentType)
    }

    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.name_addrs(&HeaderName::Route)
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.name_addrs(&HeaderName::RecordRoute)
    }

    fn name_addrs(&self, name: &HeaderName) -> Result<Vec<NameAddr>, ParseError> {
        self.values(name)?
            .into_iter()
            .map(|v| NameAddr::parse(v).map_err(|r| ParseError::header(name.as_str(), r)))
            .collect()
    }

    /// Option tags listed in Require/Proxy-Require/Supported (tokens, lower-cased).
    pub fn option_tags(&self, name: &HeaderName) -> Result<Vec<String>, ParseError> {
        self.values(name)?
            .into_iter()
            .map(|t| {
                if is_token(t) {
                    Ok(t.to_ascii_lowercase())
                } else {
                    Err(ParseError::header(
                        name.as_str(),
                        "option tag is not a token",
                    ))
                }
            })
            .collect()
    }
}

/// A To value with `;tag=tag` added, unless it has a tag already or does not parse. The text
/// is extended, not parsed and written anew: the UAS's answer keeps the caller's To as sent
/// (RFC 3261 §8.2.6.2), and every final response of a registrar pays for this.
fn with_tag(to: &HeaderValue, tag: &str) -> HeaderValue {
    let mut has_tag = false;
    let parsed = crate::types::NameAddrRef::parse_with(to.as_str(), |name, _| {
        has_tag |= name.eq_ignore_ascii_case("tag")
    });
    if parsed.is_err() || has_tag {
        return to.clone();
    }
    let to = crate::text::trim_ws(to.as_str());
    let mut s = String::with_capacity(to.len() + 5 + tag.len());
    s.push_str(to);
    s.push_str(";tag=");
    s.push_str(tag);
    HeaderValue::new(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:1000@example.com>\r\n\
From: \"Alice\" <sip:1000@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:1000@192.0.2.10:5060>;expires=3600\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn parses_register() {
        let req = Request::parse(REGISTER).unwrap();
        assert_eq!(req.method, Method::Register);
        assert_eq!(
            req.headers.call_id().unwrap(),
            "a84b4c76e66710@pc33.example.com"
        );
        assert_eq!(req.headers.cseq().unwrap().seq, 1);
        assert_eq!(req.headers.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(req.headers.expires().unwrap(), Some(3600));
        match req.headers.contact().unwrap() {
            Some(Contact::Addrs(a)) => assert_eq!(a[0].expires(), Some(3600)),
            other => panic!("unexpected contact {other:?}"),
        }
        let via = req.headers.top_via().unwrap();
        assert_eq!(via.rport(), Some(None));
    }

    #[test]
    fn round_trips() {
        let req = Request::parse(REGISTER).unwrap();
        let bytes = req.to_bytes();
        assert_eq!(&bytes[..], REGISTER);
        let again = Request::parse(bytes).unwrap();
        assert_eq!(again, req);
    }

    #[test]
    fn errors_name_the_header() {
        let bad = String::from_utf8_lossy(REGISTER).replace("CSeq: 1 REGISTER", "CSeq: x REGISTER");
        let err = Request::parse(bad.into_bytes()).unwrap_err();
        assert_eq!(err, ParseError::header("CSeq", "expected a decimal number"));
        assert!(err
            .reason_phrase()
            .starts_with("Bad Request (invalid CSeq header"));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_message_size: 100,
            max_headers: 128,
        };
        assert!(matches!(
            Message::parse_with_limits(REGISTER, &limits),
            Err(ParseError::TooLarge { .. })
        ));
        let limits = Limits {
            max_message_size: 65535,
            max_headers: 3,
        };
        assert!(matches!(
            Message::parse_with_limits(REGISTER, &limits),
            Err(ParseError::TooManyHeaders { .. })
        ));
    }

    #[test]
    fn response_for_request_copies_headers_and_adds_tag() {
        let req = Request::parse(REGISTER).unwrap();
        let resp = Response::for_request(&req, StatusCode::OK, Some("xyz"));
        assert_eq!(resp.headers.to().unwrap().tag(), Some("xyz"));
        assert_eq!(
            resp.headers.call_id().unwrap(),
            req.headers.call_id().unwrap()
        );
        let parsed = Response::parse(resp.to_bytes()).unwrap();
        assert_eq!(parsed.status, StatusCode::OK);
        assert_eq!(parsed.reason, "OK");
    }

    #[test]
    fn to_tag_reads_as_the_parsed_to_does() {
        for to in [
            "<sip:b@x>",
            "<sip:b@x>;tag=abc",
            "\"B\" <sip:b@x;tag=uri>;x;TAG=t2",
            "sip:b@x;tag=z",
        ] {
            let text = String::from_utf8_lossy(REGISTER).replacen(
                "\r\nTo: ",
                &format!("\r\nTo: {to}\r\nX-Old-To: "),
                1,
            );
            let req = Request::parse(text.into_bytes()).unwrap();
            let owned = req.headers.to().unwrap();
            assert_eq!(req.headers.to_tag().unwrap(), owned.tag(), "{to}");
        }
    }

    #[test]
    fn to_tag_is_added_once_and_keeps_the_callers_to() {
        let to_of = |to: &str, status: u16| {
            let text = String::from_utf8_lossy(REGISTER).replacen(
                "\r\nTo: ",
                &format!("\r\nTo: {to}\r\nX-Old-To: "),
                1,
            );
            let req = Request::parse(text.into_bytes()).unwrap();
            let resp = Response::for_request(&req, StatusCode(status), Some("t1"));
            let resp = Response::parse(resp.to_bytes()).unwrap();
            let to = resp.headers.to().unwrap();
            (resp.headers.get(&HeaderName::To).unwrap().to_string(), to)
        };
        let (text, to) = to_of("\"Bob\" <sip:bob@x;user=phone>;x=1", 200);
        assert_eq!(text, "\"Bob\" <sip:bob@x;user=phone>;x=1;tag=t1");
        assert_eq!(to.tag(), Some("t1"));
        assert_eq!(to.display.as_deref(), Some("Bob"));
        let (_, to) = to_of("sip:bob@x", 486);
        assert_eq!((to.uri.user(), to.tag()), (Some("bob"), Some("t1")));
        let (text, _) = to_of("<sip:bob@x>;TAG=old", 200);
        assert_eq!(text, "<sip:bob@x>;TAG=old");
        let (text, _) = to_of("<sip:bob@x>", 100);
        assert_eq!(text, "<sip:bob@x>");
    }

    #[test]
    fn lf_only_and_leading_crlf_are_tolerated() {
        let lf = String::from_utf8_lossy(REGISTER).replace("\r\n", "\n");
        let with_crlf = format!("\r\n\r\n{lf}");
        let req = Request::parse(with_crlf.into_bytes()).unwrap();
        assert_eq!(req.headers.cseq().unwrap().seq, 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"\r\n",
            b"INVITE",
            b"SIP/2.0 200",
            b"\xff\xfe\r\n\r\n",
            b":\r\n\r\n",
        ] {
            assert!(Message::parse(Bytes::copy_from_slice(input)).is_err());
        }
    }
}
