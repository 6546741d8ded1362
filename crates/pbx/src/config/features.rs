//! `[features]`: switches for call features that cost something when on. `in_call = true`
//! makes the relay look at every bridged call's RFC 4733 keys for the in-call codes
//! (`##` transfer, `*1` recording); off (the default), the relay only forwards them.

use serde::Deserialize;

use super::Kind;

pub(super) const KEYS: &[(&str, Kind)] = &[("in_call", Kind::Bool)];

/// The validated `[features]` table (all off without it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub in_call: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeatures {
    #[serde(default)]
    in_call: bool,
}

pub(super) fn validate(raw: RawFeatures) -> Features {
    Features {
        in_call: raw.in_call,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(t: &str) -> Result<super::Features, String> {
        Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n{t}"))
            .map(|c| c.features)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn in_call_is_off_unless_switched_on_and_must_be_a_boolean() {
        assert!(!parse("").unwrap().in_call);
        assert!(!parse("[features]\n").unwrap().in_call);
        assert!(parse("[features]\nin_call = true\n").unwrap().in_call);
        let e = parse("[features]\nin_call = \"yes\"\n").unwrap_err();
        assert!(e.contains("features.in_call"), "{e}");
        let e = parse("[features]\nincall = true\n").unwrap_err();
        assert!(e.contains("features.incall") || e.contains("incall"), "{e}");
    }
}
