use std::fmt;

use crate::text::{is_token, trim_ws};

/// One `;name[=value]` parameter. The value is kept as written (quotes included) so that
/// serialization reproduces what was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

/// An ordered list of parameters with case-insensitive lookup by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// `Some(None)` for a flag parameter such as `lr`, `Some(Some(v))` for `name=v`.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of `name` with surrounding quotes removed, if it has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(|v| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets or replaces `name`, keeping its position if it already exists.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            p.value = value;
        } else {
            self.0.push(Param {
                name: name.to_owned(),
                value,
            });
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    /// Parses `;a=b;c` (leading `;` required for each parameter; LWS allowed around `;`
    /// and `=`). Empty parameters (`;;`) are rejected, as RFC 4475 §3.1.2.1 requires.
    pub(crate) fn parse(s: &str, allow_lws: bool) -> Result<Params, &'static str> {
        let mut out = Vec::new();
        let s = trim_ws(s);
        if s.is_empty() {
            return Ok(Params(out));
        }
        let rest = s.strip_prefix(';').ok_or("expected ';' before parameter")?;
        for raw in split_semicolons(rest)? {
            let raw = if allow_lws { trim_ws(raw) } else { raw };
            if raw.is_empty() {
                return Err("empty parameter");
            }
            let (name, value) = match raw.find('=') {
                Some(eq) => {
                    let (n, v) = (&raw[..eq], &raw[eq + 1..]);
                    let (n, v) = if allow_lws {
                        (trim_ws(n), trim_ws(v))
                    } else {
                        (n, v)
                    };
                    (n, Some(v))
                }
                None => (raw, None),
            };
            if !is_param_name(name) {
                return Err("invalid parameter name");
            }
            if let Some(v) = value {
                if v.is_empty() {
                    return Err("empty parameter value");
                }
                if !is_param_value(v) {
                    return Err("invalid parameter value");
                }
            }
            out.push(Param {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            });
        }
        Ok(Params(out))
    }
}

/// Header parameter names are tokens; URI parameter names may also contain escapes and a
/// few more unreserved characters, which token already covers except for `[]/:&$`.
fn is_param_name(s: &str) -> bool {
    is_token(s)
        || (!s.is_empty()
            && s.bytes()
                .all(|b| crate::text::is_token_byte(b) || b"[]/:&$".contains(&b)))
}

fn is_param_value(v: &str) -> bool {
    if v.starts_with('"') {
        return v.len() >= 2 && v.ends_with('"');
    }
    if v.starts_with('[') {
        return v.ends_with(']');
    }
    v.bytes()
        .all(|b| crate::text::is_token_byte(b) || b"[]/:&$".contains(&b))
}

fn split_semicolons(s: &str) -> Result<Vec<&str>, &'static str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b';' if !in_quotes => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if in_quotes {
        return Err("unterminated quoted string");
    }
    out.push(&s[start..]);
    Ok(out)
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match &p.value {
                Some(v) => write!(f, ";{}={}", p.name, v)?,
                None => write!(f, ";{}", p.name)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_values_and_lws() {
        let p = Params::parse(" ;   tag    = 1918181833n", true).unwrap();
        assert_eq!(p.get("TAG"), Some(Some("1918181833n")));
        let p = Params::parse(";lr;q=0.5;x=\"a;b\"", true).unwrap();
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.value("x"), Some("a;b"));
        assert_eq!(p.to_string(), ";lr;q=0.5;x=\"a;b\"");
    }

    #[test]
    fn rejects_empty_params() {
        assert!(Params::parse(";;", true).is_err());
        assert!(Params::parse(";a=", true).is_err());
    }
}
