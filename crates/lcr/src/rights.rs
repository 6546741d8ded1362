//! Calling rights: which classes of call an extension may make, and for how long.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::class::CallClass;

/// `[[calling_rights]]` as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallingRightsConfig {
    pub name: String,
    pub allow: Vec<CallClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_call_minutes: Option<u32>,
}

/// A checked set of rights. Emergency calls are always permitted, whatever `allow` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rights {
    name: String,
    #[serde(skip)]
    classes: u8,
    allow: Vec<CallClass>,
    max_call_minutes: Option<u32>,
}

/// The name under which the default rights show in denials and `lcr explain`.
pub const DEFAULT_RIGHTS: &str = "default";

/// A call the rights do not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("calling rights `{rights}` do not allow {class} calls; give the extension rights whose allow list has \"{class}\" (`user set EXT --rights NAME`)")]
pub struct Denied {
    pub class: CallClass,
    pub rights: String,
}

impl Rights {
    fn from_classes(name: &str, allow: &[CallClass], max_call_minutes: Option<u32>) -> Rights {
        let mut classes = CallClass::Emergency.bit();
        for c in allow {
            classes |= c.bit();
        }
        let allow = CallClass::ALL
            .into_iter()
            .filter(|c| classes & c.bit() != 0)
            .collect();
        Rights {
            name: name.to_owned(),
            classes,
            allow,
            max_call_minutes,
        }
    }

    /// Rights for an extension that has none of its own: everything but international and
    /// premium, no call length limit.
    pub fn default_for_extension() -> Rights {
        let allow: Vec<CallClass> = CallClass::ALL
            .into_iter()
            .filter(|c| !matches!(c, CallClass::International | CallClass::Premium))
            .collect();
        Rights::from_classes(DEFAULT_RIGHTS, &allow, None)
    }

    /// Whether a call of `class` may be made. Emergency always may.
    pub fn permits(&self, class: CallClass) -> Result<(), Denied> {
        if class == CallClass::Emergency || self.classes & class.bit() != 0 {
            Ok(())
        } else {
            Err(Denied {
                class,
                rights: self.name.clone(),
            })
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The classes allowed, emergency included, in [`CallClass::ALL`] order.
    pub fn allowed(&self) -> &[CallClass] {
        &self.allow
    }

    /// The longest call allowed, for the PBX to end with a BYE; `None`: no limit.
    pub fn max_call_minutes(&self) -> Option<u32> {
        self.max_call_minutes
    }
}

/// Why a `[[calling_rights]]` list is not usable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RightsError {
    #[error("calling_rights[{index}].name is empty; give the rights a name, e.g. \"direksi\"")]
    EmptyName { index: usize },
    #[error("calling_rights[{index}].name `{name}` is used twice; each name must be unique")]
    Duplicate { index: usize, name: String },
    #[error("calling_rights[{index}].name `default` is reserved for extensions without rights; choose another name")]
    Reserved { index: usize },
    #[error("calling_rights[{index}].max_call_minutes is 0; leave it out for no limit or give at least 1")]
    ZeroMinutes { index: usize },
}

/// Every configured set of rights, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RightsBook {
    by_name: HashMap<String, Rights>,
}

impl RightsBook {
    /// Checks the configuration's `[[calling_rights]]` tables.
    pub fn new(config: &[CallingRightsConfig]) -> Result<RightsBook, RightsError> {
        let mut by_name = HashMap::new();
        for (index, c) in config.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(RightsError::EmptyName { index });
            }
            if c.name == DEFAULT_RIGHTS {
                return Err(RightsError::Reserved { index });
            }
            if c.max_call_minutes == Some(0) {
                return Err(RightsError::ZeroMinutes { index });
            }
            let rights = Rights::from_classes(&c.name, &c.allow, c.max_call_minutes);
            if by_name.insert(c.name.clone(), rights).is_some() {
                return Err(RightsError::Duplicate {
                    index,
                    name: c.name.clone(),
                });
            }
        }
        Ok(RightsBook { by_name })
    }

    /// The rights named `name`, or `None` when not configured (the PBX refuses
    /// `user set … --rights` with an unknown name).
    pub fn get(&self, name: &str) -> Option<&Rights> {
        self.by_name.get(name)
    }

    /// The rights of an extension given its `--rights` name: the named ones, or the default
    /// when it has none. An unknown name falls back to the default, never to more rights.
    pub fn for_extension(&self, name: Option<&str>) -> Rights {
        name.and_then(|n| self.get(n))
            .cloned()
            .unwrap_or_else(Rights::default_for_extension)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allows_all_but_international_and_premium() {
        let d = Rights::default_for_extension();
        for c in CallClass::ALL {
            let expected = !matches!(c, CallClass::International | CallClass::Premium);
            assert_eq!(d.permits(c).is_ok(), expected, "{c}");
        }
        assert_eq!(
            d.permits(CallClass::International).unwrap_err().to_string(),
            "calling rights `default` do not allow international calls; give the extension rights whose allow list has \"international\" (`user set EXT --rights NAME`)"
        );
        assert_eq!(d.max_call_minutes(), None);
    }

    #[test]
    fn configured_rights_from_toml_and_emergency_always() {
        #[derive(Deserialize)]
        struct Doc {
            calling_rights: Vec<CallingRightsConfig>,
        }
        let doc: Doc = toml::from_str(
            r#"
[[calling_rights]]
name = "direksi"
allow = ["emergency", "internal", "local", "national", "mobile", "tollfree", "international"]
max_call_minutes = 60

[[calling_rights]]
name = "lobby"
allow = ["internal"]
"#,
        )
        .unwrap();
        let book = RightsBook::new(&doc.calling_rights).unwrap();
        let direksi = book.get("direksi").unwrap();
        assert!(direksi.permits(CallClass::International).is_ok());
        assert!(direksi.permits(CallClass::Premium).is_err());
        assert_eq!(direksi.max_call_minutes(), Some(60));
        let lobby = book.for_extension(Some("lobby"));
        assert!(lobby.permits(CallClass::Emergency).is_ok());
        assert!(lobby.permits(CallClass::Local).is_err());
        assert_eq!(lobby.allowed(), [CallClass::Emergency, CallClass::Internal]);
        assert_eq!(book.for_extension(None).name(), "default");
        assert_eq!(book.for_extension(Some("gone")).name(), "default");
    }

    #[test]
    fn bad_rights_config_is_refused() {
        let bad: Result<CallingRightsConfig, _> =
            toml::from_str("name = \"x\"\nallow = [\"toll-free\"]\n");
        assert!(bad.is_err());
        let unknown_key: Result<CallingRightsConfig, _> =
            toml::from_str("name = \"x\"\nallow = []\nmax_minutes = 3\n");
        assert!(unknown_key.is_err());
        let c = |name: &str, m| CallingRightsConfig {
            name: name.into(),
            allow: vec![],
            max_call_minutes: m,
        };
        assert_eq!(
            RightsBook::new(&[c("a", None), c("a", None)]),
            Err(RightsError::Duplicate {
                index: 1,
                name: "a".into()
            })
        );
        assert_eq!(
            RightsBook::new(&[c("default", None)]),
            Err(RightsError::Reserved { index: 0 })
        );
        assert_eq!(
            RightsBook::new(&[c("a", Some(0))]),
            Err(RightsError::ZeroMinutes { index: 0 })
        );
        assert_eq!(
            RightsBook::new(&[c(" ", None)]),
            Err(RightsError::EmptyName { index: 0 })
        );
    }
}
