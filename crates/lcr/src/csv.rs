//! The small CSV dialect of rates.csv and operators.csv, and their line-numbered errors.
//!
//! One record a line; `#` starts a comment line; blank lines are skipped; a first record equal
//! to the header names is skipped; a field may be double-quoted to hold commas.

use std::fmt;

use thiserror::Error;

/// One line's problem. Displayed as `line 17: increment_seconds must be ≥ 1 …`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: usize,
    pub kind: LineErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineErrorKind {
    #[error("expected {expected}, found {found} fields")]
    FieldCount {
        expected: &'static str,
        found: usize,
    },
    #[error("unterminated double quote")]
    Quote,
    #[error("prefix must start with + and digits, found `{0}`")]
    Prefix(String),
    #[error("{field} must be a name of letters, digits, `-`, `_` or `.`, found `{value}`")]
    Name { field: &'static str, value: String },
    #[error("{field} must be a decimal number ≥ 0 with at most 4 decimal places (e.g. 650 or 0.25), found `{value}`")]
    Decimal { field: &'static str, value: String },
    #[error("increment_seconds must be ≥ 1 (whole seconds, at most 3600), found `{0}`")]
    Increment(String),
    #[error("days must be day names (mon … sun), ranges like mon-fri or lists like sat,sun; found `{0}`")]
    Days(String),
    #[error("{field} must be a time HH:MM from 00:00 to 24:00, found `{value}`")]
    Time { field: &'static str, value: String },
    #[error("from is 24:00, the end of the day; a window starting at midnight has from 00:00")]
    FromEndOfDay,
    #[error("days, from and to go together: give all three or none")]
    PartialWindow,
    #[error("from and to are both {0}; leave days,from,to empty for a rate that holds all day")]
    EmptyWindow(String),
    #[error("prefix {prefix} is already given on line {first_line}")]
    DuplicatePrefix { prefix: String, first_line: usize },
    #[error("trunk {trunk} already has an all-day rate for {prefix} on line {first_line}")]
    DuplicateRate {
        trunk: String,
        prefix: String,
        first_line: usize,
    },
    #[error("its time window overlaps line {other_line} (same trunk and prefix; both cover {at})")]
    Overlap { other_line: usize, at: String },
    #[error(
        "trunk `{0}` is not a configured [[trunk]]; add it to the configuration or fix the name"
    )]
    UnknownTrunk(String),
}

/// Every problem of a file, in line order. A table is built only when this would be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvErrors {
    /// Which file kind ("rates", "operators"), for the summary line.
    pub what: &'static str,
    pub errors: Vec<LineError>,
}

impl CsvErrors {
    /// The next step for an operator who sees these errors.
    pub fn hint(&self) -> &'static str {
        "fix the lines named above and import the whole file again; nothing of it was loaded"
    }
}

impl fmt::Display for CsvErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            return write!(f, "the {} file has no records", self.what);
        }
        write!(
            f,
            "{} error(s) in the {} file",
            self.errors.len(),
            self.what
        )?;
        for e in &self.errors {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CsvErrors {}

/// The records of `text` as (1-based line number, fields), skipping comments, blank lines and
/// a header equal to `header`. A line whose quoting is broken is reported in `errors`.
pub(crate) fn records(
    text: &str,
    header: &str,
    errors: &mut Vec<LineError>,
) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut first = true;
    // Spreadsheets save UTF-8 CSV with a byte-order mark and CRLF line ends.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = match split(line) {
            Some(f) => f,
            None => {
                errors.push(LineError {
                    line: i + 1,
                    kind: LineErrorKind::Quote,
                });
                continue;
            }
        };
        if std::mem::take(&mut first) && fields.join(",") == header {
            continue;
        }
        out.push((i + 1, fields));
    }
    out
}

fn split(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur).trim().to_owned()),
            _ => cur.push(ch),
        }
    }
    if quoted {
        return None;
    }
    fields.push(cur.trim().to_owned());
    Some(fields)
}

/// `+` and digits (at least `min_digits` of them); returns the digits.
pub(crate) fn prefix(value: &str, min_digits: usize) -> Result<String, LineErrorKind> {
    match value.strip_prefix('+') {
        Some(d)
            if d.len() >= min_digits && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(d.to_owned())
        }
        _ => Err(LineErrorKind::Prefix(value.to_owned())),
    }
}

/// A name of letters, digits, `-`, `_`, `.`.
pub(crate) fn name(field: &'static str, value: &str) -> Result<String, LineErrorKind> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(LineErrorKind::Name {
            field,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_skip_comments_blank_lines_and_the_header() {
        let mut errors = Vec::new();
        let text = "# comment\n\nprefix,operator\n+62811, telkomsel\n\"+62,8\",x\n\"broken,y\n";
        let r = records(text, "prefix,operator", &mut errors);
        assert_eq!(
            r,
            vec![
                (4, vec!["+62811".to_owned(), "telkomsel".to_owned()]),
                (5, vec!["+62,8".to_owned(), "x".to_owned()]),
            ]
        );
        assert_eq!(
            errors,
            vec![LineError {
                line: 6,
                kind: LineErrorKind::Quote
            }]
        );
    }

    #[test]
    fn spreadsheet_bom_and_crlf_are_accepted() {
        let mut errors = Vec::new();
        let r = records(
            "\u{feff}prefix,operator\r\n+62811,telkomsel\r\n",
            "prefix,operator",
            &mut errors,
        );
        assert_eq!(
            r,
            vec![(2, vec!["+62811".to_owned(), "telkomsel".to_owned()])]
        );
        assert!(errors.is_empty());
    }

    #[test]
    fn header_only_skipped_as_first_record() {
        let mut errors = Vec::new();
        let r = records("a,b\na,b\n", "a,b", &mut errors);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, 2);
    }
}
