//! The `[lcr]` table of the PBX configuration, typed. kentongan-pbx owns the file and reads
//! the CSVs it names; this crate only gives the table its shape and meaning.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::number::{NumberingPlan, PlanError};
use crate::rates::TrunkName;

/// `[lcr]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LcrConfig {
    /// rates.csv: `trunk,prefix,rate_per_minute,connect_fee,increment_seconds[,days,from,to]`.
    #[serde(default = "default_rates")]
    pub rates: PathBuf,
    /// The country code of national numbers (`0812…` → `+62812…`).
    #[serde(default = "default_country")]
    pub country: String,
    /// operators.csv: `prefix,operator`.
    #[serde(default = "default_operators")]
    pub operators: PathBuf,
    /// The office's area code, for local numbers dialled without one (e.g. "21" for Jakarta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_code: Option<String>,
    /// Trunks emergency calls try, in this order; empty: every trunk in configuration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emergency_order: Vec<String>,
}

fn default_rates() -> PathBuf {
    PathBuf::from("/etc/kentongan/rates.csv")
}

fn default_operators() -> PathBuf {
    PathBuf::from("/etc/kentongan/operators.csv")
}

fn default_country() -> String {
    "62".to_owned()
}

impl Default for LcrConfig {
    fn default() -> LcrConfig {
        LcrConfig {
            rates: default_rates(),
            country: default_country(),
            operators: default_operators(),
            area_code: None,
            emergency_order: Vec::new(),
        }
    }
}

/// A bad `[lcr]` value, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LcrConfigError {
    #[error("lcr.{key}: {source}")]
    Plan {
        key: &'static str,
        source: PlanError,
    },
    #[error(
        "lcr.emergency_order: `{0}` is not a valid trunk name (letters, digits, `-`, `_`, `.`)"
    )]
    EmergencyTrunk(String),
}

impl LcrConfig {
    /// The numbering plan these settings describe.
    pub fn numbering_plan(&self) -> Result<NumberingPlan, LcrConfigError> {
        NumberingPlan::new(&self.country, self.area_code.as_deref()).map_err(|source| {
            let key = if source.what == "country code" {
                "country"
            } else {
                "area_code"
            };
            LcrConfigError::Plan { key, source }
        })
    }

    /// The emergency order as trunk names (existence is checked by the router).
    pub fn emergency_trunks(&self) -> Result<Vec<TrunkName>, LcrConfigError> {
        self.emergency_order
            .iter()
            .map(|n| TrunkName::new(n).map_err(|_| LcrConfigError::EmergencyTrunk(n.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_table_parses_with_defaults() {
        let c: LcrConfig = toml::from_str(
            r#"
rates = "/etc/kentongan/rates.csv"
country = "62"
operators = "/etc/kentongan/operators.csv"
"#,
        )
        .unwrap();
        assert_eq!(c, LcrConfig::default());
        let plan = c.numbering_plan().unwrap();
        assert_eq!(plan.country(), "62");
        assert_eq!(plan.area_code(), None);
        let c: LcrConfig =
            toml::from_str("area_code = \"21\"\nemergency_order = [\"goip-telkomsel\"]\n").unwrap();
        assert_eq!(c.numbering_plan().unwrap().area_code(), Some("21"));
        assert_eq!(c.emergency_trunks().unwrap()[0].as_str(), "goip-telkomsel");
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(toml::from_str::<LcrConfig>("contry = \"62\"\n").is_err());
        let c: LcrConfig = toml::from_str("area_code = \"021\"\n").unwrap();
        let err = c.numbering_plan().unwrap_err().to_string();
        assert!(
            err.starts_with("lcr.area_code: `021` is not a valid area code"),
            "{err}"
        );
        let c: LcrConfig = toml::from_str("country = \"+62\"\n").unwrap();
        assert!(c
            .numbering_plan()
            .unwrap_err()
            .to_string()
            .starts_with("lcr.country:"));
        let c: LcrConfig = toml::from_str("emergency_order = [\"a b\"]\n").unwrap();
        assert!(c.emergency_trunks().is_err());
    }
}
