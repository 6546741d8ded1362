//! SDP security descriptions (RFC 4568): the `a=crypto:` attribute that carries an SRTP
//! master key in the SDP, which is why it may only be offered over TLS (the key is in clear
//! text in the SIP body).
//!
//! [`CryptoAttribute::parse`] reads one attribute; [`CryptoAttribute::generate`] makes one from
//! 30 random bytes the caller draws; `Display` formats it. What this crate cannot honour is
//! refused by name: other suites, several keys in one line, session parameters (KDR,
//! UNENCRYPTED_SRTP, FEC…), an MKI, and lifetimes shorter than the session could need.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

use crate::srtp::{MasterKey, SrtpContext, SrtpProfile, MASTER_LEN};

/// Why an `a=crypto:` line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdesError {
    #[error("crypto attribute is missing its {0}; expected `<tag> <suite> inline:<key||salt>`")]
    Missing(&'static str),
    #[error("crypto tag {0:?} is not 1 to 9 decimal digits")]
    BadTag(String),
    #[error("crypto suite {0} is not supported; offer AES_CM_128_HMAC_SHA1_80 or _32")]
    UnsupportedSuite(String),
    #[error("key method {0:?} is not supported; only `inline:` keys exist in RFC 4568")]
    NotInline(String),
    #[error("inline key is not valid base64: {0}")]
    BadBase64(String),
    #[error("inline key||salt is {0} bytes; the AES_CM_128 suites need 30")]
    KeyLength(usize),
    #[error("key lifetime {0:?} is neither a decimal number nor 2^n")]
    BadLifetime(String),
    #[error("MKI {0:?} is not `<value>:<length>` with a length of 1..=128 bytes")]
    BadMki(String),
    #[error("several keys in one crypto line (`;`) are not supported; offer one key per line")]
    MultipleKeys,
    #[error("session parameter {0:?} is not supported; offer the line without it")]
    UnsupportedSessionParam(String),
    #[error("an MKI is not supported (packets would carry it); offer the key without `|v:len`")]
    MkiUnsupported,
    #[error("key lifetime {0} packets is shorter than 2^31 and re-keying is not supported")]
    LifetimeTooShort(u64),
}

/// A master key identifier (RFC 4568 §6.1): its value and its length on the wire in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    pub value: u64,
    pub len: u8,
}

/// One `a=crypto:` attribute with a single inline key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    pub tag: u32,
    pub profile: SrtpProfile,
    pub key: MasterKey,
    /// Key lifetime in packets, when given.
    pub lifetime: Option<u64>,
    pub mki: Option<Mki>,
}

/// The smallest lifetime accepted: the SRTCP index space, beyond which no call goes.
pub const MIN_LIFETIME: u64 = 1 << 31;

fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    let bad = || SdesError::BadLifetime(s.to_string());
    if let Some(exp) = s.strip_prefix("2^") {
        let exp: u32 = exp.parse().map_err(|_| bad())?;
        // RFC 3711 caps lifetimes at 2^48 (SRTP) packets.
        if exp > 48 {
            return Err(bad());
        }
        Ok(1 << exp)
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().map_err(|_| bad())
    } else {
        Err(bad())
    }
}

fn parse_mki(s: &str) -> Result<Mki, SdesError> {
    let bad = || SdesError::BadMki(s.to_string());
    let (value, len) = s.split_once(':').ok_or_else(bad)?;
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(value) || !all_digits(len) {
        return Err(bad());
    }
    let len: u8 = len.parse().map_err(|_| bad())?;
    let value: u64 = value.parse().map_err(|_| bad())?;
    if !(1..=128).contains(&len) {
        return Err(bad());
    }
    Ok(Mki { value, len })
}

impl CryptoAttribute {
    /// Parses the attribute, with or without the leading `a=crypto:`.
    pub fn parse(line: &str) -> Result<Self, SdesError> {
        let value = line.trim();
        let value = value.strip_prefix("a=").unwrap_or(value);
        let value = value.strip_prefix("crypto:").unwrap_or(value);
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next().ok_or(SdesError::Missing("tag"))?;
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SdesError::BadTag(tag.to_string()));
        }
        let tag: u32 = tag
            .parse()
            .map_err(|_| SdesError::BadTag(tag.to_string()))?;
        let suite = fields.next().ok_or(SdesError::Missing("crypto suite"))?;
        let profile = SrtpProfile::from_sdes_name(suite)
            .ok_or_else(|| SdesError::UnsupportedSuite(suite.to_string()))?;
        let key_params = fields.next().ok_or(SdesError::Missing("key parameters"))?;
        if let Some(param) = fields.next() {
            return Err(SdesError::UnsupportedSessionParam(param.to_string()));
        }
        if key_params.contains(';') {
            return Err(SdesError::MultipleKeys);
        }
        let (method, info) = key_params
            .split_once(':')
            .ok_or_else(|| SdesError::NotInline(key_params.to_string()))?;
        if method != "inline" {
            return Err(SdesError::NotInline(method.to_string()));
        }
        let mut parts = info.split('|');
        let b64 = parts.next().unwrap_or_default();
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| SdesError::BadBase64(e.to_string()))?;
        if bytes.len() != MASTER_LEN {
            return Err(SdesError::KeyLength(bytes.len()));
        }
        let key = MasterKey::from_bytes(&bytes).map_err(|_| SdesError::KeyLength(bytes.len()))?;
        let mut lifetime = None;
        let mut mki = None;
        for part in parts {
            // RFC 4568 §9.2: lifetime comes before MKI; an MKI has a colon, a lifetime never.
            if part.contains(':') {
                if mki.is_some() {
                    return Err(SdesError::BadMki(part.to_string()));
                }
                mki = Some(parse_mki(part)?);
            } else {
                if lifetime.is_some() || mki.is_some() {
                    return Err(SdesError::BadLifetime(part.to_string()));
                }
                lifetime = Some(parse_lifetime(part)?);
            }
        }
        Ok(CryptoAttribute {
            tag,
            profile,
            key,
            lifetime,
            mki,
        })
    }

    /// An attribute for an offer or answer, keyed by 30 bytes from the caller's CSPRNG.
    pub fn generate(tag: u32, profile: SrtpProfile, random: [u8; MASTER_LEN]) -> Self {
        let mut key = [0; 16];
        let mut salt = [0; 14];
        key.copy_from_slice(&random[..16]);
        salt.copy_from_slice(&random[16..]);
        CryptoAttribute {
            tag,
            profile,
            key: MasterKey { key, salt },
            lifetime: None,
            mki: None,
        }
    }

    /// The SRTP context for this key, refusing what the context cannot honour.
    pub fn context(&self) -> Result<SrtpContext, SdesError> {
        if self.mki.is_some() {
            return Err(SdesError::MkiUnsupported);
        }
        if let Some(l) = self.lifetime {
            if l < MIN_LIFETIME {
                return Err(SdesError::LifetimeTooShort(l));
            }
        }
        Ok(SrtpContext::new(self.profile, &self.key))
    }

    /// The first offered attribute this crate can use, in offer order (the offerer's
    /// preference, RFC 4568 §7.1.1), skipping lines it cannot parse or honour.
    pub fn first_supported<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        lines
            .into_iter()
            .filter_map(|l| CryptoAttribute::parse(l).ok())
            .find(|a| a.context().is_ok())
    }
}

impl FromStr for CryptoAttribute {
    type Err = SdesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CryptoAttribute::parse(s)
    }
}

/// Formats the attribute value (without `a=crypto:`), e.g.
/// `1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4`.
impl fmt::Display for CryptoAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} inline:{}",
            self.tag,
            self.profile.sdes_name(),
            STANDARD.encode(self.key.to_bytes())
        )?;
        if let Some(l) = self.lifetime {
            if l.is_power_of_two() {
                write!(f, "|2^{}", l.trailing_zeros())?;
            } else {
                write!(f, "|{l}")?;
            }
        }
        if let Some(m) = self.mki {
            write!(f, "|{}:{}", m.value, m.len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4568 §9.1's example key.
    const RFC_KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn parses_the_rfc_example_line() {
        let a = CryptoAttribute::parse(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4"
        ))
        .unwrap();
        assert_eq!(a.tag, 1);
        assert_eq!(a.profile, SrtpProfile::AesCm128HmacSha1_80);
        assert_eq!(&a.key.to_bytes()[..], b"YS___semctl () {\t220;}\n}\nunles");
        assert_eq!(a.lifetime, Some(1 << 20));
        assert_eq!(a.mki, Some(Mki { value: 1, len: 4 }));
        assert_eq!(
            a.to_string(),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4")
        );
        // What we cannot honour is said when making the context.
        assert!(matches!(a.context(), Err(SdesError::MkiUnsupported)));
        let a = CryptoAttribute { mki: None, ..a };
        assert!(matches!(
            a.context(),
            Err(SdesError::LifetimeTooShort(1_048_576))
        ));
    }

    #[test]
    fn plain_line_without_prefix_and_decimal_lifetime() {
        let a: CryptoAttribute = format!("2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}|4294967296")
            .parse()
            .unwrap();
        assert_eq!(a.tag, 2);
        assert_eq!(a.profile, SrtpProfile::AesCm128HmacSha1_32);
        assert_eq!(a.lifetime, Some(1 << 32));
        assert!(a.context().is_ok());
        assert_eq!(
            a.to_string(),
            format!("2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}|2^32")
        );
    }

    #[test]
    fn refuses_what_is_not_supported_by_name() {
        let cases = [
            ("", SdesError::Missing("tag")),
            ("1", SdesError::Missing("crypto suite")),
            (
                "1 AES_CM_128_HMAC_SHA1_80",
                SdesError::Missing("key parameters"),
            ),
            (
                "x1 AES_CM_128_HMAC_SHA1_80 inline:a",
                SdesError::BadTag("x1".into()),
            ),
            (
                "1234567890 AES_CM_128_HMAC_SHA1_80 inline:a",
                SdesError::BadTag("1234567890".into()),
            ),
            (
                "1 AEAD_AES_256_GCM inline:a",
                SdesError::UnsupportedSuite("AEAD_AES_256_GCM".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 outline:abc",
                SdesError::NotInline("outline".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:QUJD",
                SdesError::KeyLength(3),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:a;inline:b",
                SdesError::MultipleKeys,
            ),
        ];
        for (line, err) in cases {
            assert_eq!(CryptoAttribute::parse(line), Err(err), "{line:?}");
        }
        let with = |rest: &str| {
            CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}{rest}"))
        };
        assert_eq!(
            with(" UNENCRYPTED_SRTP"),
            Err(SdesError::UnsupportedSessionParam(
                "UNENCRYPTED_SRTP".into()
            ))
        );
        assert_eq!(
            with(" KDR=1"),
            Err(SdesError::UnsupportedSessionParam("KDR=1".into()))
        );
        assert_eq!(with("|2^49"), Err(SdesError::BadLifetime("2^49".into())));
        assert_eq!(with("|soon"), Err(SdesError::BadLifetime("soon".into())));
        assert_eq!(with("|1:0"), Err(SdesError::BadMki("1:0".into())));
        assert_eq!(
            with("|1:4|2^31"),
            Err(SdesError::BadLifetime("2^31".into()))
        );
        assert!(matches!(with("!"), Err(SdesError::BadBase64(_))));
    }

    #[test]
    fn generated_keys_round_trip_and_key_both_ends_alike() {
        let random: [u8; 30] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let offer = CryptoAttribute::generate(1, SrtpProfile::AesCm128HmacSha1_80, random);
        let line = format!("a=crypto:{offer}");
        let parsed = CryptoAttribute::parse(&line).unwrap();
        assert_eq!(parsed, offer);
        assert_eq!(parsed.key.to_bytes(), random);
        let mut tx = offer.context().unwrap();
        let mut rx = parsed.context().unwrap();
        let mut p = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3];
        tx.protect_rtp(&mut p).unwrap();
        rx.unprotect_rtp(&mut p).unwrap();
        assert_eq!(p, vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3]);
    }

    #[test]
    fn first_supported_skips_what_we_cannot_use() {
        let offers = [
            "a=crypto:1 AEAD_AES_128_GCM inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
            "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        ];
        assert_eq!(
            CryptoAttribute::first_supported(offers).map(|a| a.tag),
            Some(3)
        );
        assert_eq!(
            CryptoAttribute::first_supported(offers[..2].iter().copied()),
            None
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = CryptoAttribute::parse(&s);
        }

        #[test]
        fn parse_inverts_format(tag in 0u32..1_000_000_000, random in any::<[u8; 30]>(),
                                short in any::<bool>(), exp in proptest::option::of(31u32..=48)) {
            let profile = if short { SrtpProfile::AesCm128HmacSha1_32 } else { SrtpProfile::AesCm128HmacSha1_80 };
            let a = CryptoAttribute { lifetime: exp.map(|e| 1u64 << e), ..CryptoAttribute::generate(tag, profile, random) };
            prop_assert_eq!(CryptoAttribute::parse(&a.to_string()).unwrap(), a);
        }
    }
}
