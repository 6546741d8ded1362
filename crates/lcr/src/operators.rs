//! operators.csv: which mobile operator a number belongs to, by longest prefix.

use std::collections::HashMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::csv::{self, CsvErrors, LineError, LineErrorKind};
use crate::number::E164;
use crate::trie::PrefixTrie;

/// A mobile operator's name as written in operators.csv and `[[trunk]] operator = "…"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorName(Box<str>);

impl OperatorName {
    /// A name of letters, digits, `-`, `_` or `.` (e.g. `telkomsel`).
    pub fn new(name: &str) -> Result<OperatorName, LineErrorKind> {
        csv::name("operator", name).map(|n| OperatorName(n.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for OperatorName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The operator of each number prefix; the longest matching prefix decides, so Axis's
/// +628591 inside XL's +62859 is Axis.
#[derive(Debug, Clone)]
pub struct OperatorTable {
    trie: PrefixTrie<usize>,
    names: Vec<OperatorName>,
    prefixes: usize,
}

/// The Indonesian operators file shipped as /etc/kentongan/operators.csv.
pub const INDONESIA_CSV: &str = include_str!("../data/operators-id.csv");

impl OperatorTable {
    /// Parses `prefix,operator` lines (header, comments and blank lines allowed). Every bad
    /// line is reported; a table exists only when there is none.
    pub fn parse(text: &str) -> Result<OperatorTable, CsvErrors> {
        let mut errors = Vec::new();
        let mut names: Vec<OperatorName> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut items = Vec::new();
        for (line, fields) in csv::records(text, "prefix,operator", &mut errors) {
            let parsed = (|| {
                let [p, o] = fields.as_slice() else {
                    return Err(LineErrorKind::FieldCount {
                        expected: "2 fields (prefix,operator)",
                        found: fields.len(),
                    });
                };
                let digits = csv::prefix(p, 1)?;
                let name = OperatorName::new(o)?;
                if let Some(&first_line) = seen.get(&digits) {
                    return Err(LineErrorKind::DuplicatePrefix {
                        prefix: p.clone(),
                        first_line,
                    });
                }
                seen.insert(digits.clone(), line);
                Ok((digits, name))
            })();
            match parsed {
                Ok((digits, name)) => {
                    let id = match names.iter().position(|n| *n == name) {
                        Some(i) => i,
                        None => {
                            names.push(name);
                            names.len() - 1
                        }
                    };
                    items.push((digits.into_bytes(), id));
                }
                Err(kind) => errors.push(LineError { line, kind }),
            }
        }
        if !errors.is_empty() || items.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(CsvErrors {
                what: "operators",
                errors,
            });
        }
        let prefixes = items.len();
        Ok(OperatorTable {
            trie: PrefixTrie::build(items),
            names,
            prefixes,
        })
    }

    /// The Indonesian table that ships with the appliance.
    pub fn indonesia() -> Result<OperatorTable, CsvErrors> {
        OperatorTable::parse(INDONESIA_CSV)
    }

    /// The operator of `number`, by longest prefix.
    pub fn lookup(&self, number: &E164) -> Option<&OperatorName> {
        let (_, ids) = self.trie.longest(number.digits().as_bytes())?;
        ids.first().map(|&i| &self.names[i])
    }

    /// The operator of `number` as an index into [`OperatorTable::operators`].
    #[inline]
    pub fn lookup_index(&self, number: &E164) -> Option<usize> {
        let (_, ids) = self.trie.longest(number.digits().as_bytes())?;
        ids.first().copied()
    }

    /// The distinct operator names, in file order.
    pub fn operators(&self) -> &[OperatorName] {
        &self.names
    }

    /// How many prefixes the table holds.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(t: &OperatorTable, n: &str) -> Option<String> {
        t.lookup(&E164::parse(n).unwrap()).map(|o| o.to_string())
    }

    #[test]
    fn shipped_indonesian_table_parses_and_matches_longest_prefix() {
        let t = OperatorTable::indonesia().unwrap();
        assert_eq!(op(&t, "+6281234567890").as_deref(), Some("telkomsel"));
        assert_eq!(op(&t, "+6285212345678").as_deref(), Some("telkomsel"));
        assert_eq!(op(&t, "+6281512345678").as_deref(), Some("indosat"));
        assert_eq!(op(&t, "+6281712345678").as_deref(), Some("xl"));
        assert_eq!(op(&t, "+6285912345678").as_deref(), Some("axis"));
        assert_eq!(op(&t, "+6285982345678").as_deref(), Some("axis"));
        assert_eq!(op(&t, "+6285952345678").as_deref(), Some("xl"));
        assert_eq!(op(&t, "+6283812345678").as_deref(), Some("axis"));
        assert_eq!(op(&t, "+6289612345678").as_deref(), Some("tri"));
        assert_eq!(op(&t, "+6288112345678").as_deref(), Some("smartfren"));
        assert_eq!(op(&t, "+62215550100"), None);
        assert_eq!(op(&t, "+6561234567"), None);
        let names: Vec<&str> = t.operators().iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            ["telkomsel", "indosat", "xl", "axis", "tri", "smartfren"]
        );
    }

    #[test]
    fn every_bad_line_is_reported() {
        let text = "prefix,operator\n+62811,telkomsel\n62812,telkomsel\n+62813\n+62811,xl\n+62814,in dosat\n";
        let err = OperatorTable::parse(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "4 error(s) in the operators file\n\
             line 3: prefix must start with + and digits, found `62812`\n\
             line 4: expected 2 fields (prefix,operator), found 1 fields\n\
             line 5: prefix +62811 is already given on line 2\n\
             line 6: operator must be a name of letters, digits, `-`, `_` or `.`, found `in dosat`"
        );
        assert_eq!(
            OperatorTable::parse("# nothing\n").unwrap_err().to_string(),
            "the operators file has no records"
        );
    }
}
