//! The answer file as written (`answer.toml`): serde types with `deny_unknown_fields`.
//!
//! Every value that can be missing is an `Option` here, so that [`crate::validate`] can report
//! all missing keys at once instead of serde stopping at the first. [`Answer::parse`] checks
//! the key names and value types of the whole file against one schema table first, so a file
//! with three typos gets three messages.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::validate::{Problem, Problems};

/// The answer file, as written. Built by [`Answer::parse`] or by the TUI; checked by
/// [`crate::validate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password_hash: Option<String>,
    /// SIP domain and digest realm; default: `domain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskAnswer>,
    #[serde(default)]
    pub firewall: FirewallAnswer,
    #[serde(default, rename = "extension", skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionAnswer>,
}

/// `[network]` as written; [`crate::validate::NetworkPlan`] is the checked form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Interface name; default: every wired interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `"auto"` (router advertisements, the default), `"off"`, or an address such as
    /// `"2001:db8::10/64"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_gateway: Option<String>,
}

/// `[disk]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default)]
    pub wipe: bool,
    /// `"prebuilt"` (the default: the image's initrd when it has this machine's disk driver)
    /// or `"build"` (always build one on this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
}

/// `[firewall]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallAnswer {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted: Vec<String>,
}

/// One `[[extension]]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
}

#[derive(Clone, Copy)]
enum Shape {
    Str,
    Bool,
    StrList,
    Table(&'static [(&'static str, Shape)]),
    TableList(&'static [(&'static str, Shape)]),
}

const NETWORK: &[(&str, Shape)] = &[
    ("mode", Shape::Str),
    ("interface", Shape::Str),
    ("address", Shape::Str),
    ("gateway", Shape::Str),
    ("dns", Shape::StrList),
    ("ipv6", Shape::Str),
    ("ipv6_gateway", Shape::Str),
];
const DISK: &[(&str, Shape)] = &[
    ("target", Shape::Str),
    ("wipe", Shape::Bool),
    ("initrd", Shape::Str),
];
const FIREWALL: &[(&str, Shape)] = &[("trusted", Shape::StrList)];
const EXTENSION: &[(&str, Shape)] = &[
    ("number", Shape::Str),
    ("name", Shape::Str),
    ("password", Shape::Str),
];
/// The schema of the whole file; must match the serde types above (a unit test checks).
const TOP: &[(&str, Shape)] = &[
    ("language", Shape::Str),
    ("hostname", Shape::Str),
    ("domain", Shape::Str),
    ("timezone", Shape::Str),
    ("admin_password", Shape::Str),
    ("admin_password_hash", Shape::Str),
    ("sip_domain", Shape::Str),
    ("network", Shape::Table(NETWORK)),
    ("disk", Shape::Table(DISK)),
    ("firewall", Shape::Table(FIREWALL)),
    ("extension", Shape::TableList(EXTENSION)),
];

impl Shape {
    /// What a value of this shape looks like, in English and Indonesian.
    fn describe(self, key: &str) -> (String, String) {
        match self {
            Shape::Str => (
                "a string in double quotes".into(),
                "teks di dalam tanda kutip ganda".into(),
            ),
            Shape::Bool => ("true or false".into(), "true atau false".into()),
            Shape::StrList => (
                "a list of strings, e.g. [\"10.0.2.3\"]".into(),
                "daftar teks, contoh [\"10.0.2.3\"]".into(),
            ),
            Shape::Table(_) => (
                format!("a table, written as a [{key}] header"),
                format!("tabel, ditulis dengan judul `[{key}]`"),
            ),
            Shape::TableList(_) => (
                format!("a list of tables, each written as [[{key}]]"),
                format!("daftar tabel, masing-masing ditulis sebagai `[[{key}]]`"),
            ),
        }
    }
}

fn check_table(
    table: &toml::Table,
    schema: &[(&str, Shape)],
    prefix: &str,
    out: &mut Vec<Problem>,
) {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let Some((_, shape)) = schema.iter().find(|(k, _)| k == name) else {
            let known: Vec<&str> = schema.iter().map(|(k, _)| *k).collect();
            out.push(Problem::new(
                &dotted,
                format!(
                    "is not a known key; remove it or check the spelling (known here: {})",
                    known.join(", ")
                ),
                format!(
                    "bukan kunci yang dikenal; hapus atau periksa ejaannya (yang dikenal di sini: `{}`)",
                    known.join("`, `")
                ),
            ));
            continue;
        };
        let short = dotted.rsplit('.').next().unwrap_or(&dotted).to_owned();
        let wrong = || {
            let (en, id) = shape.describe(&short);
            Problem::new(
                &dotted,
                format!("must be {en}"),
                format!("harus berupa {id}"),
            )
        };
        match (*shape, value) {
            (Shape::Str, toml::Value::String(_)) | (Shape::Bool, toml::Value::Boolean(_)) => {}
            (Shape::StrList, toml::Value::Array(items)) => {
                if !items.iter().all(toml::Value::is_str) {
                    out.push(wrong());
                }
            }
            (Shape::Table(inner), toml::Value::Table(t)) => check_table(t, inner, &dotted, out),
            (Shape::TableList(inner), toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let key = format!("{dotted}[{i}]");
                    match item {
                        toml::Value::Table(t) => check_table(t, inner, &key, out),
                        _ => out.push(Problem::new(&key, "must be a table", "harus berupa tabel")),
                    }
                }
            }
            _ => out.push(wrong()),
        }
    }
}

impl Answer {
    /// Parses an answer file's text: TOML syntax, key names and value types. Meaning is
    /// [`crate::validate`]'s job.
    pub fn parse(text: &str) -> Result<Answer, Problems> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map_or(1, |s| text[..s.start.min(text.len())].lines().count().max(1));
            Problems(vec![Problem::new(
                "",
                format!(
                    "not valid TOML at line {line}: {}; check quotes, brackets and `key = value` lines",
                    e.message().trim().replace('\n', "; ")
                ),
                // The TOML parser's own words stay English.
                format!(
                    "bukan TOML yang sah di baris {line}: {}; periksa tanda kutip, kurung, dan baris `key = value`",
                    e.message().trim().replace('\n', "; ")
                ),
            )])
        })?;
        let mut problems = Vec::new();
        check_table(&table, TOP, "", &mut problems);
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        // The schema walk above makes a failure here a bug in the schema table, but it is still
        // reported as a problem rather than a panic.
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                Problems(vec![Problem::new(
                    "",
                    format!("could not be read: {}", e.message().trim()),
                    format!("tidak dapat dibaca: {}", e.message().trim()),
                )])
            })
    }

    /// The answer as TOML, for the TUI to save what the operator chose. Passwords are
    /// left out: a saved answer never holds a secret.
    pub fn to_toml_redacted(&self) -> String {
        let mut copy = self.clone();
        copy.admin_password = None;
        for e in &mut copy.extensions {
            e.password = None;
        }
        toml::to_string(&copy).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unknown_key_is_reported() {
        let text = "hostnme = \"x\"\n[network]\nmod = \"dhcp\"\n[[extension]]\nnumber = 201\n";
        let err = Answer::parse(text).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["extension[0].number", "hostnme", "network.mod"]);
    }

    #[test]
    fn schema_matches_serde_types() {
        // A file using every key of the schema must deserialize: catches a key added to one and
        // not the other.
        let text = r#"
            language = "en"
            hostname = "a"
            domain = "b"
            timezone = "c"
            admin_password = "d"
            admin_password_hash = "e"
            sip_domain = "f"
            [network]
            mode = "static"
            interface = "ens3"
            address = "10.0.0.2/24"
            gateway = "10.0.0.1"
            dns = ["10.0.0.1"]
            ipv6 = "auto"
            ipv6_gateway = "fe80::1"
            [disk]
            target = "auto"
            wipe = true
            [firewall]
            trusted = ["10.0.0.0/24"]
            [[extension]]
            number = "201"
            name = "x"
            password = "y"
        "#;
        let a = Answer::parse(text).unwrap();
        assert_eq!(a.extensions.len(), 1);
        assert!(!a.to_toml_redacted().contains("\"d\""));
    }
}
