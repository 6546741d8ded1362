//! Call classes: what kind of call a dialled number makes, for rights and for routing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::number::{Dialled, NumberingPlan, E164};

/// The class of a call. Names as in `[[calling_rights]] allow = [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallClass {
    /// 110/112/113/115/118/119: always allowed, routed in the fixed emergency order.
    Emergency,
    /// One of our own extensions: never leaves through a trunk.
    Internal,
    /// The office's own area code.
    Local,
    /// Another area code in the same country.
    National,
    /// A national mobile number (08xx, i.e. +628…), but not 0800/0809.
    Mobile,
    /// 0800: free for the caller.
    TollFree,
    /// 0809: premium rate.
    Premium,
    /// Another country.
    International,
}

impl CallClass {
    /// Every class, in the order `lcr explain` and reports list them.
    pub const ALL: [CallClass; 8] = [
        CallClass::Emergency,
        CallClass::Internal,
        CallClass::Local,
        CallClass::National,
        CallClass::Mobile,
        CallClass::TollFree,
        CallClass::Premium,
        CallClass::International,
    ];

    /// The configuration name (`"tollfree"`, …).
    pub fn name(self) -> &'static str {
        match self {
            CallClass::Emergency => "emergency",
            CallClass::Internal => "internal",
            CallClass::Local => "local",
            CallClass::National => "national",
            CallClass::Mobile => "mobile",
            CallClass::TollFree => "tollfree",
            CallClass::Premium => "premium",
            CallClass::International => "international",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for CallClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A class name that is not one of [`CallClass::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a call class; use one of emergency, internal, local, national, mobile, tollfree, premium, international")]
pub struct UnknownClass(pub String);

impl FromStr for CallClass {
    type Err = UnknownClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallClass::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownClass(s.to_owned()))
    }
}

/// Classifies a normalised dialled number under `plan`.
pub fn classify(dialled: &Dialled, plan: &NumberingPlan) -> CallClass {
    match dialled {
        Dialled::Emergency(_) => CallClass::Emergency,
        Dialled::Internal(_) => CallClass::Internal,
        Dialled::External(e) => classify_e164(e, plan),
    }
}

/// Classifies a public number: international unless it carries our country code; then by the
/// national significant number (0800 toll-free, 0809 premium, other 08 mobile, the office's
/// area code local, the rest national).
pub fn classify_e164(number: &E164, plan: &NumberingPlan) -> CallClass {
    let Some(nsn) = number.digits().strip_prefix(plan.country()) else {
        return CallClass::International;
    };
    if nsn.starts_with("800") {
        CallClass::TollFree
    } else if nsn.starts_with("809") {
        CallClass::Premium
    } else if nsn.starts_with('8') {
        CallClass::Mobile
    } else if plan.area_code().is_some_and(|a| nsn.starts_with(a)) {
        CallClass::Local
    } else {
        CallClass::National
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(dialled: &str) -> CallClass {
        let plan = NumberingPlan::new("62", Some("21")).unwrap();
        let d = plan.normalise(dialled, |d| d == "201").unwrap();
        classify(&d, &plan)
    }

    #[test]
    fn classes_of_indonesian_numbers() {
        assert_eq!(class_of("112"), CallClass::Emergency);
        assert_eq!(class_of("119"), CallClass::Emergency);
        assert_eq!(class_of("201"), CallClass::Internal);
        assert_eq!(class_of("5550100"), CallClass::Local);
        assert_eq!(class_of("0215550100"), CallClass::Local);
        assert_eq!(class_of("0227654321"), CallClass::National);
        assert_eq!(class_of("0361234567"), CallClass::National);
        assert_eq!(class_of("081234567890"), CallClass::Mobile);
        assert_eq!(class_of("0895123456789"), CallClass::Mobile);
        assert_eq!(class_of("08001234567"), CallClass::TollFree);
        assert_eq!(class_of("08091234567"), CallClass::Premium);
        assert_eq!(class_of("00656123 4567"), CallClass::International);
        assert_eq!(class_of("+6561234567"), CallClass::International);
    }

    #[test]
    fn names_round_trip() {
        for c in CallClass::ALL {
            assert_eq!(c.name().parse::<CallClass>(), Ok(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        assert!("toll-free".parse::<CallClass>().is_err());
    }
}
