//! Exact money: ten-thousandths of the currency unit in an integer, never a float.

use std::fmt;

use serde::{Serialize, Serializer};

/// Ten-thousandths per unit: rates like 0.0125 per minute stay exact.
pub const SCALE: i64 = 10_000;

/// An amount of money (rupiah for Indonesia) in exact ten-thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    /// From ten-thousandths of a unit.
    pub const fn from_ten_thousandths(v: i64) -> Money {
        Money(v)
    }

    /// Whole units.
    pub const fn from_units(v: i64) -> Money {
        Money(v * SCALE)
    }

    /// The raw ten-thousandths.
    pub const fn ten_thousandths(self) -> i64 {
        self.0
    }

    /// Parses a non-negative decimal with at most 4 decimal places (`650`, `0.25`, `1.5000`).
    pub fn parse(text: &str) -> Option<Money> {
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 4 {
            return None;
        }
        if text.contains('.') && frac.is_empty() {
            return None;
        }
        let whole: i64 = whole.parse().ok()?;
        let mut f: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        for _ in frac.len()..4 {
            f *= 10;
        }
        whole.checked_mul(SCALE)?.checked_add(f).map(Money)
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Money {
    /// At least two decimals, up to four when they are not zero: `650.00`, `0.0125`, `-3.50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE.unsigned_abs();
        let mut frac = format!("{:04}", abs % scale);
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        let text = format!("{sign}{}.{frac}", abs / scale);
        f.pad(&text)
    }
}

impl Serialize for Money {
    /// A decimal string, so JSON readers never see a binary float.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_are_exact() {
        assert_eq!(Money::parse("650"), Some(Money(6_500_000)));
        assert_eq!(Money::parse("0.25"), Some(Money(2_500)));
        assert_eq!(Money::parse("0.0125"), Some(Money(125)));
        assert_eq!(Money(125).to_string(), "0.0125");
        assert_eq!(Money(6_500_000).to_string(), "650.00");
        assert_eq!(Money(-35_000).to_string(), "-3.50");
        assert_eq!(format!("{:>8}", Money(35_000)), "    3.50");
        for bad in ["", "-1", "1.", ".5", "1.23456", "1,5", "1e3", "abc"] {
            assert_eq!(Money::parse(bad), None, "{bad}");
        }
        assert_eq!(serde_json::to_string(&Money(2_500)).unwrap(), "\"0.25\"");
    }
}
