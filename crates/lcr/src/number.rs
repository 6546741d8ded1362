//! Dialled digits to E.164 under a national numbering plan (Indonesia by default).

use std::fmt;

use serde::{Serialize, Serializer};
use thiserror::Error;

/// The most digits an E.164 number may have (ITU-T E.164 §6.1).
const E164_MAX_DIGITS: usize = 15;
/// Fewer digits than this after the `+` cannot be a public number anywhere.
const E164_MIN_DIGITS: usize = 7;
/// Local subscriber numbers (without area code) in Indonesia have 5 to 8 digits.
const LOCAL_DIGITS: std::ops::RangeInclusive<usize> = 5..=8;
/// A number typed as `62…` without `+` is taken as national only when it is this long after the
/// country code; shorter it is a local number that happens to start with 62.
const NATIONAL_MIN_DIGITS: usize = 9;

/// The emergency numbers of Indonesia: dialled as they are, never normalised or cost-routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Emergency {
    /// 110: police.
    Police,
    /// 112: the general emergency number.
    General,
    /// 113: fire brigade.
    Fire,
    /// 115: search and rescue (Basarnas).
    SearchAndRescue,
    /// 118: ambulance.
    Ambulance118,
    /// 119: ambulance / health emergency.
    Ambulance119,
}

impl Emergency {
    /// All of them, in dialling order.
    pub const ALL: [Emergency; 6] = [
        Emergency::Police,
        Emergency::General,
        Emergency::Fire,
        Emergency::SearchAndRescue,
        Emergency::Ambulance118,
        Emergency::Ambulance119,
    ];

    /// The digits as dialled and as sent to the trunk.
    pub fn digits(self) -> &'static str {
        match self {
            Emergency::Police => "110",
            Emergency::General => "112",
            Emergency::Fire => "113",
            Emergency::SearchAndRescue => "115",
            Emergency::Ambulance118 => "118",
            Emergency::Ambulance119 => "119",
        }
    }

    /// What the number reaches, for `lcr explain`.
    pub fn service(self) -> &'static str {
        match self {
            Emergency::Police => "police",
            Emergency::General => "general emergency",
            Emergency::Fire => "fire brigade",
            Emergency::SearchAndRescue => "search and rescue",
            Emergency::Ambulance118 | Emergency::Ambulance119 => "ambulance",
        }
    }

    /// The emergency service these exact digits reach, if any.
    pub fn from_digits(digits: &str) -> Option<Emergency> {
        Emergency::ALL.into_iter().find(|e| e.digits() == digits)
    }
}

/// A normalised public number: `+` and 7 to 15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(Box<str>);

impl E164 {
    /// Parses the canonical form `+<digits>`.
    pub fn parse(text: &str) -> Result<E164, NumberError> {
        let digits = text.strip_prefix('+').ok_or_else(|| NumberError::NotE164 {
            text: text.to_owned(),
        })?;
        E164::from_digits(digits)
    }

    fn from_digits(digits: &str) -> Result<E164, NumberError> {
        if let Some((position, ch)) = digits.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            return Err(NumberError::BadCharacter { ch, position });
        }
        if digits.starts_with('0') {
            return Err(NumberError::LeadingZero {
                number: format!("+{digits}"),
            });
        }
        if !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&digits.len()) {
            return Err(NumberError::Length {
                number: format!("+{digits}"),
                digits: digits.len(),
            });
        }
        Ok(E164(format!("+{digits}").into()))
    }

    /// The digits after `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The canonical text, with `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for E164 {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<E164, NumberError> {
        E164::parse(s)
    }
}

impl fmt::Display for Dialled {
    /// The number as it goes to a trunk and into the CDR: E.164, or the digits as dialled.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dialled::Emergency(e) => f.write_str(e.digits()),
            Dialled::Internal(d) => f.write_str(d),
            Dialled::External(e) => f.write_str(e.as_str()),
        }
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for E164 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What a string of dialled digits turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialled {
    /// An emergency number, kept exactly as dialled.
    Emergency(Emergency),
    /// One of our own extensions (as recognised by the predicate the PBX hands in).
    Internal(String),
    /// A public number, normalised.
    External(E164),
}

/// Why dialled digits are not a number we can route.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NumberError {
    #[error("nothing was dialled")]
    Empty,
    #[error("`{ch}` at position {position} is not a digit; a number is digits, an optional leading +, and spaces, dashes, dots or parentheses between them")]
    BadCharacter { ch: char, position: usize },
    #[error("`{text}` is not in E.164 form; write it as + followed by the country code and number, e.g. +62215550100")]
    NotE164 { text: String },
    #[error("{number} has {digits} digits; an E.164 number has 7 to 15 after the +")]
    Length { number: String, digits: usize },
    #[error(
        "{number} starts with 0 after the +; the country code comes first, e.g. +62 for Indonesia"
    )]
    LeadingZero { number: String },
    #[error("`{digits}` is too short for a local number (5 to 8 digits) and is not an extension or an emergency number")]
    TooShort { digits: String },
    #[error("`{digits}` is too long for a local number (5 to 8 digits); dial 0 and the area code first, e.g. 021…")]
    LocalTooLong { digits: String },
    #[error("`{digits}` is a local number but no office area code is configured; set `lcr.area_code` (e.g. \"21\") or dial 0 and the area code")]
    NoAreaCode { digits: String },
    #[error("`{digits}` dials an international prefix with nothing after it")]
    NothingAfterPrefix { digits: String },
}

impl NumberError {
    /// The next step for whoever dialled or typed the number.
    pub fn hint(&self) -> &'static str {
        match self {
            NumberError::NoAreaCode { .. } => "set `area_code` in [lcr], or dial 0 and the area code",
            NumberError::LocalTooLong { .. } | NumberError::TooShort { .. } => {
                "dial 0 and the area code for a fixed line (021 …), 08… for a mobile, 00… abroad"
            }
            _ => "write the number with digits only, e.g. 0812 3456 7890, 021 555 0100 or +65 6123 4567",
        }
    }
}

/// Digits that must be a (non-empty) run of ASCII digits: a country code or an area code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{value}` is not a valid {what}: it must be 1 to 4 digits and not start with 0, e.g. {example}")]
pub struct PlanError {
    pub what: &'static str,
    pub value: String,
    pub example: &'static str,
}

/// The national dialling rules the PBX normalises under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberingPlan {
    country: String,
    area_code: Option<String>,
    /// International access prefixes, longest first so `001` wins over `00`.
    international: Vec<String>,
}

/// Indonesia's international access prefixes: the carriers' IDD codes and the generic `00`.
pub const INDONESIA_INTERNATIONAL_PREFIXES: [&str; 8] =
    ["01000", "01016", "01017", "001", "007", "008", "009", "00"];

impl NumberingPlan {
    /// A plan for `country` (e.g. "62") with the office's `area_code` (e.g. "21") for local
    /// numbers dialled without one, and Indonesia's international prefixes.
    pub fn new(country: &str, area_code: Option<&str>) -> Result<NumberingPlan, PlanError> {
        fn check(
            what: &'static str,
            value: &str,
            example: &'static str,
        ) -> Result<String, PlanError> {
            let ok = (1..=4).contains(&value.len())
                && value.bytes().all(|b| b.is_ascii_digit())
                && !value.starts_with('0');
            if ok {
                Ok(value.to_owned())
            } else {
                Err(PlanError {
                    what,
                    value: value.to_owned(),
                    example,
                })
            }
        }
        let country = check("country code", country, "\"62\"")?;
        let area_code = area_code
            .map(|a| check("area code", a, "\"21\""))
            .transpose()?;
        let mut international: Vec<String> = INDONESIA_INTERNATIONAL_PREFIXES
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        international.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Ok(NumberingPlan {
            country,
            area_code,
            international,
        })
    }

    /// The country code, without `+`.
    pub fn country(&self) -> &str {
        &self.country
    }

    /// The office's area code, if configured.
    pub fn area_code(&self) -> Option<&str> {
        self.area_code.as_deref()
    }

    /// Normalises what a phone dialled. Emergency numbers are recognised first and kept as
    /// they are; then our extensions (`is_extension` decides, the PBX knows them); then the
    /// public forms: `+…`, international prefixes, national `0…`, `62…` without `+`, and
    /// local numbers without an area code.
    pub fn normalise(
        &self,
        dialled: &str,
        is_extension: impl Fn(&str) -> bool,
    ) -> Result<Dialled, NumberError> {
        let (plus, digits) = clean(dialled)?;
        if !plus {
            if let Some(e) = Emergency::from_digits(&digits) {
                return Ok(Dialled::Emergency(e));
            }
            if is_extension(&digits) {
                return Ok(Dialled::Internal(digits));
            }
        }
        self.to_e164(plus, &digits).map(Dialled::External)
    }

    fn to_e164(&self, plus: bool, digits: &str) -> Result<E164, NumberError> {
        if plus {
            return self.public(digits);
        }
        if let Some(p) = self
            .international
            .iter()
            .find(|p| digits.starts_with(p.as_str()))
        {
            let rest = &digits[p.len()..];
            if rest.is_empty() {
                return Err(NumberError::NothingAfterPrefix {
                    digits: digits.to_owned(),
                });
            }
            return self.public(rest);
        }
        if let Some(national) = digits.strip_prefix('0') {
            return E164::from_digits(&format!("{}{national}", self.country));
        }
        if digits.starts_with(self.country.as_str())
            && digits.len() >= self.country.len() + NATIONAL_MIN_DIGITS
        {
            return self.public(digits);
        }
        if digits.len() < *LOCAL_DIGITS.start() {
            return Err(NumberError::TooShort {
                digits: digits.to_owned(),
            });
        }
        if digits.len() > *LOCAL_DIGITS.end() {
            return Err(NumberError::LocalTooLong {
                digits: digits.to_owned(),
            });
        }
        let area = self
            .area_code
            .as_deref()
            .ok_or_else(|| NumberError::NoAreaCode {
                digits: digits.to_owned(),
            })?;
        E164::from_digits(&format!("{}{area}{digits}", self.country))
    }
}

impl NumberingPlan {
    /// Country code and number; our own country's national 0 written after the country code
    /// (`+62 (0)21 …`, a common way of printing numbers) is dropped.
    fn public(&self, digits: &str) -> Result<E164, NumberError> {
        match digits
            .strip_prefix(self.country.as_str())
            .and_then(|n| n.strip_prefix('0'))
        {
            Some(national) => E164::from_digits(&format!("{}{national}", self.country)),
            None => E164::from_digits(digits),
        }
    }
}

/// Strips visual separators; returns whether a leading `+` was there, and the digits.
fn clean(dialled: &str) -> Result<(bool, String), NumberError> {
    let mut digits = String::with_capacity(dialled.len());
    let mut plus = false;
    for (position, ch) in dialled.char_indices() {
        match ch {
            '0'..='9' => digits.push(ch),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(NumberError::BadCharacter { ch, position }),
        }
    }
    if digits.is_empty() {
        return Err(NumberError::Empty);
    }
    Ok((plus, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> NumberingPlan {
        NumberingPlan::new("62", Some("21")).unwrap()
    }

    fn ext(d: &str) -> bool {
        d.len() == 3 && d.starts_with('2')
    }

    fn e164(dialled: &str) -> String {
        match plan().normalise(dialled, ext) {
            Ok(Dialled::External(e)) => e.to_string(),
            other => panic!("{dialled}: {other:?}"),
        }
    }

    #[test]
    fn national_mobile_and_fixed_forms() {
        assert_eq!(e164("081234567890"), "+6281234567890");
        assert_eq!(e164("0812-3456-7890"), "+6281234567890");
        assert_eq!(e164("(021) 555 0100"), "+62215550100");
        assert_eq!(e164("+62 812 3456 7890"), "+6281234567890");
        assert_eq!(e164("6281234567890"), "+6281234567890");
        assert_eq!(e164("08001234567"), "+628001234567");
        // The national 0 printed after the country code is dropped, for our country only.
        assert_eq!(e164("+62 (0)21 555 0100"), "+62215550100");
        assert_eq!(e164("0062 021 5550100"), "+62215550100");
        assert_eq!(e164("+44 (0)20 7946 0000"), "+4402079460000");
    }

    #[test]
    fn dialled_displays_as_it_goes_out() {
        let p = plan();
        assert_eq!(p.normalise("112", ext).unwrap().to_string(), "112");
        assert_eq!(p.normalise("201", ext).unwrap().to_string(), "201");
        assert_eq!(
            p.normalise("021 5550100", ext).unwrap().to_string(),
            "+62215550100"
        );
        assert_eq!(
            "+62215550100".parse::<E164>().unwrap().digits(),
            "62215550100"
        );
    }

    #[test]
    fn international_prefixes_become_plus() {
        assert_eq!(e164("0065 6123 4567"), "+6561234567");
        assert_eq!(e164("0016561234567"), "+6561234567");
        assert_eq!(e164("0076561234567"), "+6561234567");
        assert_eq!(e164("0086561234567"), "+6561234567");
        assert_eq!(e164("0096561234567"), "+6561234567");
        assert_eq!(e164("010006561234567"), "+6561234567");
        assert_eq!(e164("010166561234567"), "+6561234567");
        assert_eq!(e164("010176561234567"), "+6561234567");
        // The carrier prefix wins over the generic 00: 001 is Indosat's IDD code.
        assert_eq!(e164("0011212555012"), "+1212555012");
    }

    #[test]
    fn local_numbers_get_the_office_area_code() {
        assert_eq!(e164("5550100"), "+62215550100");
        assert_eq!(e164("55501"), "+622155501");
        // A local number that happens to start with 62 stays local.
        assert_eq!(e164("6212345"), "+62216212345");
        let no_area = NumberingPlan::new("62", None).unwrap();
        assert_eq!(
            no_area.normalise("5550100", ext),
            Err(NumberError::NoAreaCode {
                digits: "5550100".into()
            })
        );
        let err = no_area.normalise("5550100", ext).unwrap_err();
        assert!(
            err.hint().contains("`area_code` in [lcr]"),
            "{}",
            err.hint()
        );
        assert!(matches!(
            plan().normalise("555010012", ext),
            Err(NumberError::LocalTooLong { .. })
        ));
        assert!(matches!(
            plan().normalise("1234", ext),
            Err(NumberError::TooShort { .. })
        ));
    }

    #[test]
    fn emergency_is_kept_as_dialled_and_checked_before_extensions() {
        for e in Emergency::ALL {
            let always_ext = |_: &str| true;
            assert_eq!(
                plan().normalise(e.digits(), always_ext),
                Ok(Dialled::Emergency(e))
            );
        }
        // +112 is not the emergency number: the + asks for E.164.
        assert!(plan().normalise("+112", ext).is_err());
    }

    #[test]
    fn extensions_come_from_the_predicate() {
        assert_eq!(
            plan().normalise("201", ext),
            Ok(Dialled::Internal("201".into()))
        );
        assert!(matches!(
            plan().normalise("301", ext),
            Err(NumberError::TooShort { .. })
        ));
    }

    #[test]
    fn bad_input_is_rejected_with_where() {
        assert_eq!(
            plan().normalise("0812x45", ext),
            Err(NumberError::BadCharacter {
                ch: 'x',
                position: 4
            })
        );
        assert_eq!(
            plan().normalise("*123#", ext),
            Err(NumberError::BadCharacter {
                ch: '*',
                position: 0
            })
        );
        assert_eq!(
            plan().normalise("0812+45", ext),
            Err(NumberError::BadCharacter {
                ch: '+',
                position: 4
            })
        );
        assert_eq!(plan().normalise(" - ", ext), Err(NumberError::Empty));
        assert!(matches!(
            plan().normalise("00", ext),
            Err(NumberError::NothingAfterPrefix { .. })
        ));
        assert!(matches!(
            plan().normalise("+6281234567890123", ext),
            Err(NumberError::Length { digits: 16, .. })
        ));
        assert!(matches!(
            plan().normalise("+0812", ext),
            Err(NumberError::LeadingZero { .. })
        ));
        let msg = plan().normalise("0812x45", ext).unwrap_err().to_string();
        assert!(msg.contains("`x` at position 4"), "{msg}");
    }

    #[test]
    fn plan_rejects_bad_codes() {
        assert!(NumberingPlan::new("062", None).is_err());
        assert!(NumberingPlan::new("62", Some("2a")).is_err());
        assert!(NumberingPlan::new("", None).is_err());
    }

    #[test]
    fn e164_parse_round_trips() {
        let e = E164::parse("+62215550100").unwrap();
        assert_eq!(e.digits(), "62215550100");
        assert_eq!(e.as_str(), "+62215550100");
        assert!(E164::parse("62215550100").is_err());
    }
}
