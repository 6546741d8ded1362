//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 8760 for SHA-256).
//!
//! Server side: [`DigestServer`] issues stateless nonces (a timestamp and a counter signed
//! with SipHash-2-4-128 under a key derived from a secret the caller supplies), verifies responses against a
//! stored HA1 (never a plaintext password), reports expired nonces as `stale=true` and
//! refuses a nonce-count it has already seen. Challenges never depend on the user name, so
//! known and unknown extensions get byte-identical answers.
//!
//! Client side: [`respond`] computes the `Authorization` credentials for a challenge.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::Sha256;
use siphasher::sip128::SipHasher24;

use crate::header::HeaderName;
use crate::message::Request;
use crate::text::{scan_quoted, to_hex, trim_ws, unescape_quoted, write_quoted};
use crate::types::Method;

/// Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hash(self, data: &[u8]) -> String {
        self.hash_joined(&[data])
    }

    /// Lower-case hex digest of `parts` joined by colons, without building the joined text
    /// (a registrar computes three of these per REGISTER).
    pub fn hash_joined(self, parts: &[&[u8]]) -> String {
        fn joined<D: md5::Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            to_hex(&d.finalize())
        }
        match self {
            Algorithm::Md5 => joined::<Md5>(parts),
            Algorithm::Sha256 => joined::<Sha256>(parts),
        }
    }

    /// The HA1 checked when the user does not exist, so that path costs what a known user's
    /// does; computed once, it is not secret.
    fn unknown_user_ha1(self) -> &'static str {
        static HA1: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        let [md5, sha256] = HA1.get_or_init(|| {
            [Algorithm::Md5, Algorithm::Sha256].map(|a| a.hash(b"kentongan-unknown-user"))
        });
        match self {
            Algorithm::Md5 => md5,
            Algorithm::Sha256 => sha256,
        }
    }
}

/// Computes HA1 = H(username:realm:password), the value a server stores instead of the
/// password.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash(format!("{username}:{realm}:{password}").as_bytes())
}

/// The response digest for qop=auth (RFC 2617 §3.2.2.1), or the RFC 2069 form without qop.
#[allow(clippy::too_many_arguments)]
pub fn response_digest(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: Option<u32>,
    cnonce: Option<&str>,
    qop: Option<&str>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hash_joined(&[method.as_bytes(), uri.as_bytes()]);
    match (qop, nc, cnonce) {
        (Some(q), Some(nc), Some(cn)) => {
            let nc = hex8(nc);
            alg.hash_joined(&[
                ha1.as_bytes(),
                nonce.as_bytes(),
                &nc,
                cn.as_bytes(),
                q.as_bytes(),
                ha2.as_bytes(),
            ])
        }
        _ => alg.hash_joined(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// `n` as eight lower-case hex digits, the nonce-count's form.
fn hex8(n: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, b) in out.iter_mut().enumerate() {
        *b = b"0123456789abcdef"[(n >> (28 - 4 * i) & 0xf) as usize];
    }
    out
}

/// Why an auth header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthParseError {
    #[error("authentication scheme is not Digest")]
    NotDigest,
    #[error("malformed auth parameter: {0}")]
    Malformed(&'static str),
    #[error("missing {0} parameter")]
    Missing(&'static str),
}

/// The `name=value` pairs of a Digest header, quotes removed. Borrowed from `s` unless a
/// value held escapes: every REGISTER carries one, and copying each name and value showed up
/// in a registrar's profile. Names keep their case; [`param`] compares them case-blind.
fn parse_auth_params(s: &str) -> Result<Vec<(&str, Cow<'_, str>)>, AuthParseError> {
    let s = trim_ws(s);
    let (scheme, rest) = s.split_once([' ', '\t']).unwrap_or((s, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthParseError::NotDigest);
    }
    // One pass over `name = value` pairs separated by commas: a quoted value may hold commas
    // and escapes; empty elements (",,") are skipped as in any SIP list.
    let bytes = rest.as_bytes();
    let is_ws = |b: u8| b == b' ' || b == b'\t';
    let mut out = Vec::with_capacity(12);
    let mut i = 0;
    loop {
        while i < bytes.len() && (is_ws(bytes[i]) || bytes[i] == b',') {
            i += 1;
        }
        if i == bytes.len() {
            return Ok(out);
        }
        let name_start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b',') {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return Err(AuthParseError::Malformed("expected name=value"));
        }
        let name = trim_ws(&rest[name_start..i]);
        i += 1;
        while i < bytes.len() && is_ws(bytes[i]) {
            i += 1;
        }
        let value = if bytes.get(i) == Some(&b'"') {
            let (inner, after) = scan_quoted(&rest[i..]).map_err(AuthParseError::Malformed)?;
            i = rest.len() - after.len();
            while i < bytes.len() && is_ws(bytes[i]) {
                i += 1;
            }
            if i < bytes.len() && bytes[i] != b',' {
                return Err(AuthParseError::Malformed("junk after quoted value"));
            }
            if inner.contains('\\') {
                Cow::Owned(unescape_quoted(inner))
            } else {
                Cow::Borrowed(inner)
            }
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                if bytes[i] == b'"' {
                    // A quote inside a token value: the old splitter treated it as opening
                    // a quoted string; keep refusing what it refused.
                    return Err(AuthParseError::Malformed("quote inside a token value"));
                }
                i += 1;
            }
            Cow::Borrowed(trim_ws(&rest[start..i]))
        };
        out.push((name, value));
    }
}

/// The first value of parameter `name`.
fn param<'a>(params: &'a [(&str, Cow<'_, str>)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

fn take(params: &[(&str, Cow<'_, str>)], name: &str) -> Option<String> {
    param(params, name).map(str::to_owned)
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    pub qop_auth: bool,
    pub stale: bool,
}

impl Challenge {
    pub fn parse(s: &str) -> Result<Challenge, AuthParseError> {
        let p = parse_auth_params(s)?;
        let algorithm = match param(&p, "algorithm") {
            Some(a) => Algorithm::parse(a).ok_or(AuthParseError::Malformed("unknown algorithm"))?,
            None => Algorithm::Md5,
        };
        Ok(Challenge {
            realm: take(&p, "realm").ok_or(AuthParseError::Missing("realm"))?,
            nonce: take(&p, "nonce").ok_or(AuthParseError::Missing("nonce"))?,
            opaque: take(&p, "opaque"),
            algorithm,
            qop_auth: param(&p, "qop").is_some_and(|q| q.split(',').any(|t| trim_ws(t) == "auth")),
            stale: param(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::from("Digest realm=");
        write_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        write_quoted(&mut s, &self.nonce);
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            write_quoted(&mut s, o);
        }
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if self.stale {
            s.push_str(", stale=TRUE");
        }
        f.write_str(&s)
    }
}

/// `Authorization` / `Proxy-Authorization` Digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<u32>,
}

impl Credentials {
    pub fn parse(s: &str) -> Result<Credentials, AuthParseError> {
        let p = parse_auth_params(s)?;
        let algorithm = match param(&p, "algorithm") {
            Some(a) => Algorithm::parse(a).ok_or(AuthParseError::Malformed("unknown algorithm"))?,
            None => Algorithm::Md5,
        };
        let nc = match param(&p, "nc") {
            Some(n) => {
                Some(u32::from_str_radix(n, 16).map_err(|_| AuthParseError::Malformed("bad nc"))?)
            }
            None => None,
        };
        Ok(Credentials {
            username: take(&p, "username").ok_or(AuthParseError::Missing("username"))?,
            realm: take(&p, "realm").ok_or(AuthParseError::Missing("realm"))?,
            nonce: take(&p, "nonce").ok_or(AuthParseError::Missing("nonce"))?,
            uri: take(&p, "uri").ok_or(AuthParseError::Missing("uri"))?,
            response: take(&p, "response").ok_or(AuthParseError::Missing("response"))?,
            algorithm,
            cnonce: take(&p, "cnonce"),
            opaque: take(&p, "opaque"),
            qop: take(&p, "qop"),
            nc,
        })
    }

    /// The Digest credentials in `req`'s Authorization header for `realm`, if any.
    pub fn from_request(req: &Request, realm: &str) -> Option<Credentials> {
        req.headers
            .get_all(&HeaderName::Authorization)
            .filter_map(|v| Credentials::parse(v.as_str()).ok())
            .find(|c| c.realm == realm)
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::from("Digest username=");
        write_quoted(&mut s, &self.username);
        for (name, value) in [
            ("realm", &self.realm),
            ("nonce", &self.nonce),
            ("uri", &self.uri),
        ] {
            s.push_str(", ");
            s.push_str(name);
            s.push('=');
            write_quoted(&mut s, value);
        }
        s.push_str(", response=");
        write_quoted(&mut s, &self.response);
        s.push_str(", algorithm=");
        s.push_str(self.algorithm.as_str());
        if let Some(c) = &self.cnonce {
            s.push_str(", cnonce=");
            write_quoted(&mut s, c);
        }
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            write_quoted(&mut s, o);
        }
        if let Some(q) = &self.qop {
            s.push_str(", qop=");
            s.push_str(q);
        }
        if let Some(nc) = self.nc {
            s.push_str(&format!(", nc={nc:08x}"));
        }
        f.write_str(&s)
    }
}

/// Client side: answers `challenge` for `method`/`uri`. `cnonce` must be fresh randomness
/// from the caller; `nc` counts uses of the same nonce, starting at 1.
pub fn respond(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &Method,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Credentials {
    let h1 = ha1(challenge.algorithm, username, &challenge.realm, password);
    let (qop, nc, cnonce) = if challenge.qop_auth {
        (Some("auth"), Some(nc), Some(cnonce))
    } else {
        (None, None, None)
    };
    let response = response_digest(
        challenge.algorithm,
        &h1,
        &challenge.nonce,
        nc,
        cnonce,
        qop,
        method.as_str(),
        uri,
    );
    Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response,
        algorithm: challenge.algorithm,
        cnonce: cnonce.map(str::to_owned),
        opaque: challenge.opaque.clone(),
        qop: qop.map(str::to_owned),
        nc,
    }
}

/// Client side of a 401 or 407 (RFC 3261 §22.2–22.3): the header to add to the request
/// sent again, `Authorization` for a 401's `WWW-Authenticate`, `Proxy-Authorization` for a
/// 407's `Proxy-Authenticate`, answering the first Digest challenge we can (SHA-256 preferred
/// over MD5 when both are offered, RFC 8760 §2.4). `None` when the response is no challenge or
/// offers nothing we can answer. `cnonce` is fresh randomness from the caller.
pub fn authorize(
    challenged: &crate::message::Response,
    username: &str,
    password: &str,
    method: &Method,
    uri: &str,
    cnonce: &str,
) -> Option<(HeaderName, Credentials)> {
    let (challenge_header, answer_header) = match challenged.status.0 {
        401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
        407 => (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        ),
        _ => return None,
    };
    let challenges: Vec<Challenge> = challenged
        .headers
        .get_all(&challenge_header)
        .filter(|v| {
            v.as_str()
                .trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
        })
        .filter_map(|v| Challenge::parse(v.as_str()).ok())
        .collect();
    let chosen = challenges
        .iter()
        .find(|c| c.algorithm == Algorithm::Sha256)
        .or_else(|| challenges.first())?;
    let creds = respond(chosen, username, password, method, uri, cnonce, 1);
    Some((answer_header, creds))
}

/// What the server stores per user: HA1 for each algorithm it offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredHa1 {
    pub md5: Option<String>,
    pub sha256: Option<String>,
}

impl StoredHa1 {
    /// Derives both HA1 values from a password, e.g. when an extension is provisioned.
    pub fn from_password(username: &str, realm: &str, password: &str) -> StoredHa1 {
        StoredHa1 {
            md5: Some(ha1(Algorithm::Md5, username, realm, password)),
            sha256: Some(ha1(Algorithm::Sha256, username, realm, password)),
        }
    }

    fn get(&self, alg: Algorithm) -> Option<&str> {
        match alg {
            Algorithm::Md5 => self.md5.as_deref(),
            Algorithm::Sha256 => self.sha256.as_deref(),
        }
    }
}

/// Outcome of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credentials are good; `username` is authenticated.
    Authenticated { username: String },
    /// The right password over a nonce that expired, or over a nonce-count already used (a
    /// retransmission that outlived its transaction, or a replay): challenge again with
    /// `stale=true`. Never a password failure, so a phone is not banned for a late resend.
    Stale,
    /// Wrong password, unknown user or forged nonce: challenge again (or 403).
    /// Deliberately carries no detail so callers cannot leak which case it was.
    Rejected,
}

/// Server-side digest state: the realm, the nonce secret and the nonce-counts seen.
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    /// Signs nonces. SipHash is a keyed PRF made for short inputs such as this nonce's 20
    /// bytes: HMAC-SHA-256 cost 30 times as much here, 4 % of a registrar's CPU, and the
    /// 128-bit tag is as hard to forge for a nonce whose only job is freshness.
    nonce_mac: SipHasher24,
    epoch: Instant,
    nonce_ttl: Duration,
    counter: u64,
    /// Nonces in use, by serial (a nonce's MAC makes its serial unique): the highest nc seen
    /// and when the nonce was issued.
    seen: foldhash::HashMap<u64, (u32, Instant)>,
    max_tracked: usize,
    /// Nonces with serials up to this were dropped from `seen` to bound it: an untracked one
    /// of them is answered stale (a fresh challenge) rather than trusted as never used. A
    /// serial, not an issue time: times have one-second resolution, and a horizon in the
    /// current second made every challenge issued in it stale during a registration storm.
    forgotten_up_to: Option<u64>,
    /// When `seen` may next be swept: sweeping walks the whole map, so doing it on every
    /// verification made each one cost O(live nonces) (half the daemon's CPU under load).
    next_prune: Instant,
}

impl DigestServer {
    /// `secret` keys the nonce MAC (give at least 32 random bytes from the daemon's RNG);
    /// `epoch` is any instant before the first `now` passed in.
    pub fn new(realm: &str, secret: &[u8], epoch: Instant) -> DigestServer {
        DigestServer {
            realm: realm.to_owned(),
            nonce_mac: SipHasher24::new_with_key(&mac_key(secret)),
            epoch,
            nonce_ttl: Duration::from_secs(300),
            counter: 0,
            seen: foldhash::HashMap::default(),
            max_tracked: 100_000,
            forgotten_up_to: None,
            next_prune: epoch,
        }
    }

    /// Bounds the replay table (default 100,000 nonces in use).
    pub fn with_max_tracked(mut self, max: usize) -> Self {
        self.max_tracked = max.max(2);
        self
    }

    pub fn with_nonce_ttl(mut self, ttl: Duration) -> Self {
        self.nonce_ttl = ttl;
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, body: &str) -> String {
        to_hex(&self.nonce_mac.hash(body.as_bytes()).as_bytes())
    }

    fn make_nonce(&mut self, now: Instant) -> String {
        self.counter = self.counter.wrapping_add(1);
        let ts = now.saturating_duration_since(self.epoch).as_secs();
        let body = format!("{ts:x}.{:x}", self.counter);
        let mac = self.mac(&body);
        format!("{body}.{mac}")
    }

    /// When a nonce we made was issued, and its serial; `None` for a forged or foreign one.
    fn nonce_issued(&self, nonce: &str) -> Option<(Instant, u64)> {
        let (body, mac) = nonce.rsplit_once('.')?;
        let expected = self.mac(body);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return None;
        }
        let (ts, serial) = body.split_once('.')?;
        let ts = u64::from_str_radix(ts, 16).ok()?;
        let serial = u64::from_str_radix(serial, 16).ok()?;
        Some((self.epoch.checked_add(Duration::from_secs(ts))?, serial))
    }

    /// The challenges to put in a 401/407: SHA-256 first, then MD5 for older phones
    /// (RFC 8760 §2.4). They depend only on time, never on who asked.
    pub fn challenges(&mut self, now: Instant, stale: bool) -> Vec<Challenge> {
        let nonce = self.make_nonce(now);
        [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .map(|algorithm| Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                opaque: None,
                algorithm,
                qop_auth: true,
                stale,
            })
            .collect()
    }

    /// Verifies `creds` for a request with `method`. Pass `None` for `stored` when the user
    /// does not exist: the same work is done and the same verdict returned as for a wrong
    /// password.
    pub fn verify(
        &mut self,
        now: Instant,
        method: &Method,
        creds: &Credentials,
        stored: Option<&StoredHa1>,
    ) -> Verdict {
        self.prune(now);
        let Some((issued, serial)) = self.nonce_issued(&creds.nonce) else {
            return Verdict::Rejected;
        };
        let age = now.saturating_duration_since(issued);
        let qop_ok = creds.qop.as_deref() == Some("auth") && creds.cnonce.is_some();
        let nc = match (qop_ok, creds.nc) {
            (true, Some(nc)) if nc > 0 => nc,
            _ => return Verdict::Rejected,
        };
        // A dummy HA1 keeps the unknown-user path as expensive as the known one.
        let known = stored.and_then(|s| s.get(creds.algorithm));
        let h1 = known.unwrap_or(creds.algorithm.unknown_user_ha1());
        let expected = response_digest(
            creds.algorithm,
            h1,
            &creds.nonce,
            Some(nc),
            creds.cnonce.as_deref(),
            Some("auth"),
            method.as_str(),
            &creds.uri,
        );
        let matches = constant_time_eq_ignore_case(expected.as_bytes(), creds.response.as_bytes());
        if !matches || known.is_none() || creds.realm != self.realm {
            return Verdict::Rejected;
        }
        if age > self.nonce_ttl {
            return Verdict::Stale;
        }
        match self.seen.get(&serial) {
            // The digest is right, so this is the password's owner resending (a transaction
            // forgotten early in a storm, or after Timer J) or a replay of their request:
            // either way no login, and no password failure.
            Some((last, _)) if nc <= *last => return Verdict::Stale,
            Some(_) => {}
            // Maybe used before we forgot it: a fresh nonce settles it without trusting it.
            None if self.forgotten_up_to.is_some_and(|f| serial <= f) => return Verdict::Stale,
            None => {}
        }
        self.seen.insert(serial, (nc, issued));
        if self.seen.len() > self.max_tracked {
            self.forget_older_half();
        }
        Verdict::Authenticated {
            username: creds.username.clone(),
        }
    }

    /// A complete `401 Unauthorized` for `req` carrying [`DigestServer::challenges`].
    pub fn unauthorized(&mut self, req: &Request, now: Instant, stale: bool) -> crate::Response {
        let mut resp = crate::Response::for_request(req, crate::StatusCode::UNAUTHORIZED, None);
        for ch in self.challenges(now, stale) {
            resp.headers
                .push(HeaderName::WwwAuthenticate, ch.to_string());
        }
        resp
    }

    /// Drops nonces past their lifetime: they are answered stale before `seen` is consulted.
    fn prune(&mut self, now: Instant) {
        if self.seen.len() < 1024 || now < self.next_prune {
            return;
        }
        self.next_prune = now + Duration::from_secs(1);
        let ttl = self.nonce_ttl;
        self.seen
            .retain(|_, (_, issued)| now.saturating_duration_since(*issued) <= ttl);
    }

    /// The table is full (a registration storm): forget the older half by serial and
    /// remember up to which, instead of refusing every new nonce until old ones expire.
    fn forget_older_half(&mut self) {
        let mut serials: Vec<u64> = self.seen.keys().copied().collect();
        let mid = serials.len() / 2;
        let (_, median, _) = serials.select_nth_unstable(mid);
        let horizon = *median;
        self.seen.retain(|serial, _| *serial > horizon);
        self.forgotten_up_to = Some(self.forgotten_up_to.map_or(horizon, |f| f.max(horizon)));
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SipHash's 128-bit key from a secret of any length, every byte of it counted.
fn mac_key(secret: &[u8]) -> [u8; 16] {
    let digest = <Sha256 as md5::Digest>::digest(secret);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// [`constant_time_eq`] with `b` lower-cased: a client may send its hex digest upper-case.
fn constant_time_eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | (x ^ y.to_ascii_lowercase()))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenged(status: u16, header: HeaderName, values: &[&str]) -> crate::message::Response {
        let mut r = crate::message::Response::new(crate::message::StatusCode(status));
        for v in values {
            r.headers.push(header.clone(), *v);
        }
        r
    }

    #[test]
    fn authorize_answers_a_proxy_challenge_in_proxy_authorization() {
        let r = challenged(
            407,
            HeaderName::ProxyAuthenticate,
            &["Digest realm=\"provider.example\", nonce=\"abc123\", qop=\"auth\""],
        );
        let (name, creds) = authorize(
            &r,
            "office1",
            "s3cret",
            &Method::Invite,
            "sip:+6281234567890@provider.example",
            "c0ffee",
        )
        .unwrap();
        assert_eq!(name, HeaderName::ProxyAuthorization);
        assert_eq!(creds.realm, "provider.example");
        assert_eq!(creds.nc, Some(1));
        // The same digest the server side would compute from the password.
        let h1 = ha1(Algorithm::Md5, "office1", "provider.example", "s3cret");
        let want = response_digest(
            Algorithm::Md5,
            &h1,
            "abc123",
            Some(1),
            Some("c0ffee"),
            Some("auth"),
            "INVITE",
            "sip:+6281234567890@provider.example",
        );
        assert_eq!(creds.response, want);
        let text = creds.to_string();
        assert!(text.starts_with("Digest username=\"office1\""), "{text}");
        assert!(text.contains("nc=00000001"), "{text}");
    }

    #[test]
    fn authorize_uses_authorization_for_401_and_prefers_sha256() {
        let r = challenged(
            401,
            HeaderName::WwwAuthenticate,
            &[
                "Digest realm=\"r\", nonce=\"n1\", algorithm=MD5",
                "Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256",
            ],
        );
        let (name, creds) = authorize(&r, "u", "p", &Method::Register, "sip:r", "x").unwrap();
        assert_eq!(name, HeaderName::Authorization);
        assert_eq!(creds.algorithm, Algorithm::Sha256);
        assert_eq!(creds.nonce, "n2");
        // Without qop (RFC 2069 compatibility) there is no cnonce or nc.
        assert_eq!(creds.qop, None);
        assert_eq!(creds.nc, None);
    }

    #[test]
    fn authorize_refuses_what_is_no_digest_challenge() {
        let basic = challenged(401, HeaderName::WwwAuthenticate, &["Basic realm=\"r\""]);
        assert!(authorize(&basic, "u", "p", &Method::Invite, "sip:x", "c").is_none());
        let wrong_header = challenged(
            407,
            HeaderName::WwwAuthenticate,
            &["Digest realm=\"r\", nonce=\"n\""],
        );
        assert!(authorize(&wrong_header, "u", "p", &Method::Invite, "sip:x", "c").is_none());
        let unknown_alg = challenged(
            401,
            HeaderName::WwwAuthenticate,
            &["Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"],
        );
        assert!(authorize(&unknown_alg, "u", "p", &Method::Invite, "sip:x", "c").is_none());
        let not_a_challenge = challenged(
            403,
            HeaderName::WwwAuthenticate,
            &["Digest realm=\"r\", nonce=\"n\""],
        );
        assert!(authorize(&not_a_challenge, "u", "p", &Method::Invite, "sip:x", "c").is_none());
    }

    #[test]
    fn rfc2617_md5_vector() {
        // RFC 2617 §3.5 example.
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = response_digest(
            Algorithm::Md5,
            &h1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(1),
            Some("0a4f113b"),
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_vector() {
        // RFC 7616 §3.9.1 example (same construction as RFC 8760 for SIP).
        let h1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let r = response_digest(
            Algorithm::Sha256,
            &h1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some(1),
            Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
            Some("auth"),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    fn setup() -> (DigestServer, Instant, StoredHa1) {
        let t0 = Instant::now();
        let server = DigestServer::new("pbx.local", b"0123456789abcdef0123456789abcdef", t0);
        (
            server,
            t0,
            StoredHa1::from_password("1000", "pbx.local", "pw1000"),
        )
    }

    #[test]
    fn challenge_response_round_trip_both_algorithms() {
        let (mut server, t0, stored) = setup();
        for i in 0..2 {
            // Both offered challenges share one nonce; answer each from a fresh 401.
            let ch = server.challenges(t0, false).remove(i);
            let parsed = Challenge::parse(&ch.to_string()).unwrap();
            assert_eq!(parsed, ch);
            let creds = respond(
                &parsed,
                "1000",
                "pw1000",
                &Method::Register,
                "sip:pbx.local",
                "abc",
                1,
            );
            let creds = Credentials::parse(&creds.to_string()).unwrap();
            assert_eq!(
                server.verify(t0, &Method::Register, &creds, Some(&stored)),
                Verdict::Authenticated {
                    username: "1000".into()
                }
            );
        }
    }

    #[test]
    fn wrong_password_unknown_user_and_forged_nonces_are_rejected_replays_rechallenged() {
        let (mut server, t0, stored) = setup();
        let ch = server.challenges(t0, false).remove(0);
        let bad = respond(
            &ch,
            "1000",
            "nope",
            &Method::Register,
            "sip:pbx.local",
            "c",
            1,
        );
        assert_eq!(
            server.verify(t0, &Method::Register, &bad, Some(&stored)),
            Verdict::Rejected
        );
        let good = respond_1000(&ch);
        assert_eq!(
            server.verify(t0, &Method::Register, &good, None),
            Verdict::Rejected
        );
        let mut forged = ch.clone();
        forged.nonce = "5.1.00000000000000000000000000000000".into();
        let f = respond_1000(&forged);
        assert_eq!(
            server.verify(t0, &Method::Register, &f, Some(&stored)),
            Verdict::Rejected
        );
        assert!(matches!(
            server.verify(t0, &Method::Register, &good, Some(&stored)),
            Verdict::Authenticated { .. }
        ));
        // Same nc again: a resend or a replay, challenged afresh (never a login); a higher
        // nc is fine.
        assert_eq!(
            server.verify(t0, &Method::Register, &good, Some(&stored)),
            Verdict::Stale
        );
        let next = respond(
            &ch,
            "1000",
            "pw1000",
            &Method::Register,
            "sip:pbx.local",
            "c",
            2,
        );
        assert!(matches!(
            server.verify(t0, &Method::Register, &next, Some(&stored)),
            Verdict::Authenticated { .. }
        ));
    }

    /// 1000's right answer to a challenge issued at `at`.
    fn fresh_credentials(server: &mut DigestServer, at: Instant) -> Credentials {
        respond_1000(&server.challenges(at, false).remove(0))
    }

    /// Extension 1000's answer to `ch` with its right password (cnonce "c", nc 1).
    fn respond_1000(ch: &Challenge) -> Credentials {
        respond(
            ch,
            "1000",
            "pw1000",
            &Method::Register,
            "sip:pbx.local",
            "c",
            1,
        )
    }

    /// Asserts that `creds` log in at `at`; `what` names the attempt in the failure.
    fn assert_logs_in(
        server: &mut DigestServer,
        at: Instant,
        creds: &Credentials,
        stored: &StoredHa1,
        what: &str,
    ) {
        assert!(
            matches!(
                server.verify(at, &Method::Register, creds, Some(stored)),
                Verdict::Authenticated { .. }
            ),
            "{what} refused"
        );
    }

    #[test]
    fn a_nonce_with_a_forged_serial_or_from_another_secret_is_refused() {
        let (mut server, t0, stored) = setup();
        let mut other = DigestServer::new("pbx.local", b"another secret, also 32 bytes...", t0);
        let foreign = fresh_credentials(&mut other, t0);
        assert_eq!(
            server.verify(t0, &Method::Register, &foreign, Some(&stored)),
            Verdict::Rejected
        );
        // The serial raised by one, the tag kept: the MAC no longer matches.
        let creds = fresh_credentials(&mut server, t0);
        let (body, tag) = creds.nonce.rsplit_once('.').unwrap();
        let (ts, serial) = body.split_once('.').unwrap();
        let serial = u64::from_str_radix(serial, 16).unwrap() + 1;
        let ch = Challenge {
            nonce: format!("{ts}.{serial:x}.{tag}"),
            ..server.challenges(t0, false).remove(0)
        };
        let forged = respond_1000(&ch);
        assert_eq!(
            server.verify(t0, &Method::Register, &forged, Some(&stored)),
            Verdict::Rejected
        );
        assert_logs_in(&mut server, t0, &creds, &stored, "the genuine nonce");
    }

    #[test]
    fn an_upper_case_response_logs_in_and_a_wrong_one_does_not() {
        let (mut server, t0, stored) = setup();
        let mut creds = fresh_credentials(&mut server, t0);
        creds.response = creds.response.to_ascii_uppercase();
        assert_logs_in(&mut server, t0, &creds, &stored, "an upper-case response");
        let mut creds = fresh_credentials(&mut server, t0);
        creds.response.replace_range(0..1, "x");
        assert_eq!(
            server.verify(t0, &Method::Register, &creds, Some(&stored)),
            Verdict::Rejected
        );
    }

    /// The list splitter `parse_auth_params` replaced, kept as the reference it must agree with.
    fn reference_auth_params(s: &str) -> Result<Vec<(String, String)>, AuthParseError> {
        let s = trim_ws(s);
        let (scheme, rest) = s.split_once([' ', '\t']).unwrap_or((s, ""));
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthParseError::NotDigest);
        }
        let mut out = Vec::new();
        for part in crate::text::split_commas(rest).map_err(AuthParseError::Malformed)? {
            if part.is_empty() {
                continue;
            }
            let (name, value) = part
                .split_once('=')
                .ok_or(AuthParseError::Malformed("expected name=value"))?;
            let value = trim_ws(value);
            let value = if value.starts_with('"') {
                let (inner, rest) = scan_quoted(value).map_err(AuthParseError::Malformed)?;
                if !trim_ws(rest).is_empty() {
                    return Err(AuthParseError::Malformed("junk after quoted value"));
                }
                unescape_quoted(inner)
            } else {
                value.to_owned()
            };
            out.push((trim_ws(name).to_owned(), value));
        }
        Ok(out)
    }

    #[test]
    fn auth_params_split_as_the_list_splitter_did() {
        for h in [
            r#"Digest username="10000", realm="pbx.local", nonce="6.1f.3a9c", uri="sip:pbx.local", response="0123abcd", algorithm=MD5, cnonce="6b8b4567", qop=auth, nc=00000001"#,
            r#"Digest   username = "a" ,realm="r",, nonce="n, with comma",uri="sip:x""#,
            r#"Digest username="a\"b\\c", realm=r"#,
            "Digest username=plain,realm=\tr\t",
            "Digest ",
            "Digest ,,,",
            "Digest username",
            "Digest username=\"unterminated",
            "Digest username=\"a\" junk, realm=r",
            "Digest username=\"a\"   , realm=r",
            "Digest nonce=abc=def, x=",
            "Basic dXNlcjpwYXNz",
        ] {
            let got = parse_auth_params(h).map(|v| {
                v.into_iter()
                    .map(|(n, v)| (n.to_owned(), v.into_owned()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, reference_auth_params(h), "{h}");
        }
    }

    #[test]
    fn escaped_quotes_in_credentials_are_unescaped() {
        let creds = Credentials::parse(
            r#"Digest USERNAME="a\"b", realm="pbx.local", nonce="n", uri="sip:x", response="r", nc=00000001, cnonce="c", qop=auth"#,
        )
        .unwrap();
        assert_eq!(creds.username, r#"a"b"#);
        assert_eq!((creds.nc, creds.qop.as_deref()), (Some(1), Some("auth")));
    }

    #[test]
    fn old_nonces_are_forgotten_in_periodic_sweeps() {
        let (mut server, t0, stored) = setup();
        let login = |server: &mut DigestServer, at: Instant| {
            let creds = fresh_credentials(server, at);
            assert_logs_in(server, at, &creds, &stored, "a login");
        };
        for _ in 0..1500 {
            login(&mut server, t0);
        }
        assert_eq!(server.seen.len(), 1500);
        // Long after, the next sweep forgets every nonce that can no longer be used…
        let later = t0 + Duration::from_secs(700);
        login(&mut server, later);
        assert_eq!(server.seen.len(), 1);
        // …and sweeps run at most once a second, not on every verification.
        for _ in 0..1100 {
            login(&mut server, later);
        }
        login(&mut server, later + Duration::from_millis(500));
        assert_eq!(server.seen.len(), 1102);
    }

    #[test]
    fn a_full_replay_table_forgets_the_oldest_instead_of_locking_everyone_out() {
        let (server, t0, stored) = setup();
        let mut server = server.with_max_tracked(100);
        // The first nonce is used, then a storm of 500 registrations over the next minutes.
        let first = fresh_credentials(&mut server, t0);
        assert!(matches!(
            server.verify(t0, &Method::Register, &first, Some(&stored)),
            Verdict::Authenticated { .. }
        ));
        for i in 0..500u64 {
            let at = t0 + Duration::from_millis(200 * (i + 1));
            let creds = fresh_credentials(&mut server, at);
            assert_logs_in(
                &mut server,
                at,
                &creds,
                &stored,
                &format!("registration {i}"),
            );
            assert!(server.seen.len() <= 100);
        }
        // The first nonce was forgotten: replaying it earns a fresh challenge, never a login.
        let now = t0 + Duration::from_secs(101);
        assert_eq!(
            server.verify(now, &Method::Register, &first, Some(&stored)),
            Verdict::Stale
        );
    }

    #[test]
    fn a_storm_within_one_second_keeps_fresh_challenges_valid() {
        // 24,000 registrations a second fill a 100,000-nonce table in four seconds; the
        // forgetting must never reach challenges issued a moment ago, in the same second.
        let (server, t0, stored) = setup();
        let mut server = server.with_max_tracked(100);
        let mut pending: Vec<Credentials> = Vec::new();
        for i in 0..500 {
            pending.push(fresh_credentials(&mut server, t0));
            // Answers arrive a few challenges behind, as under load.
            if pending.len() > 3 {
                let creds = pending.remove(0);
                assert_logs_in(
                    &mut server,
                    t0,
                    &creds,
                    &stored,
                    &format!("registration {i}"),
                );
            }
        }
        assert!(server.seen.len() <= 100);
    }

    #[test]
    fn expired_nonce_is_stale() {
        let (mut server, t0, stored) = setup();
        let ch = server.challenges(t0, false).remove(0);
        let creds = respond_1000(&ch);
        let later = t0 + Duration::from_secs(301);
        assert_eq!(
            server.verify(later, &Method::Register, &creds, Some(&stored)),
            Verdict::Stale
        );
        let again = server.challenges(later, true);
        assert!(again[0].to_string().contains("stale=TRUE"));
    }

    #[test]
    fn challenges_do_not_depend_on_the_user() {
        // Two servers in the same state answer a known and an unknown user identically.
        let (mut a, t0, _) = setup();
        let (mut b, _, _) = setup();
        let b = DigestServer {
            epoch: t0,
            ..std::mem::replace(&mut b, DigestServer::new("x", b"", t0))
        };
        let mut b = b;
        let known = a.unauthorized(&reg("1000"), t0, false);
        let unknown = b.unauthorized(&reg("9999"), t0, false);
        let www = |r: &crate::Response| -> Vec<String> {
            r.headers
                .get_all(&HeaderName::WwwAuthenticate)
                .map(|v| v.to_string())
                .collect()
        };
        assert_eq!(www(&known), www(&unknown));
        assert_eq!(known.status, unknown.status);
    }

    fn reg(user: &str) -> Request {
        let text = format!(
            "REGISTER sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
             To: <sip:{user}@pbx.local>\r\nFrom: <sip:{user}@pbx.local>;tag=1\r\n\
             Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
        );
        Request::parse(text.into_bytes()).unwrap()
    }

    #[test]
    fn unknown_scheme_is_not_credentials() {
        assert_eq!(
            Credentials::parse("NoOneKnowsThisScheme opaque-data=here"),
            Err(AuthParseError::NotDigest)
        );
    }
}
