use std::fmt;

use crate::text::{find_byte, is_param_byte, trim_ws};

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
        scan(s, allow_lws, |name, value| {
            out.push(Param {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            })
        })?;
        Ok(Params(out))
    }
}

/// Checks a parameter list as [`Params::parse`] does and hands each `(name, value)` to `f`
/// in order, without allocating. This is the one copy of the parameter rules: parsing into
/// [`Params`] and the allocation-free checks of the message parser both go through it.
///
/// As if the list were split at `;` first, an unterminated quoted string is reported in
/// preference to an error in any single parameter; `f` sees only the parameters before the
/// first bad one.
pub(crate) fn scan<'a>(
    s: &'a str,
    allow_lws: bool,
    mut f: impl FnMut(&'a str, Option<&'a str>),
) -> Result<(), &'static str> {
    let s = trim_ws(s);
    if s.is_empty() {
        return Ok(());
    }
    let rest = s.strip_prefix(';').ok_or("expected ';' before parameter")?;
    let bytes = rest.as_bytes();
    let mut first_err = None;
    let mut start = 0;
    let mut in_quotes = false;
    let mut i = 0;
    loop {
        let at_end = i >= bytes.len();
        if at_end || (!in_quotes && bytes[i] == b';') {
            if first_err.is_none() {
                let raw = rest.get(start..i.min(bytes.len())).unwrap_or("");
                match one(raw, allow_lws) {
                    Ok((name, value)) => f(name, value),
                    Err(e) => first_err = Some(e),
                }
            }
            if at_end {
                break;
            }
            start = i + 1;
        } else {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                _ => {}
            }
        }
        i += 1;
    }
    if in_quotes {
        return Err("unterminated quoted string");
    }
    first_err.map_or(Ok(()), Err)
}

/// Checks a parameter list without keeping anything.
pub(crate) fn check(s: &str, allow_lws: bool) -> Result<(), &'static str> {
    scan(s, allow_lws, |_, _| {})
}

/// One `name[=value]` between semicolons.
fn one(raw: &str, allow_lws: bool) -> Result<(&str, Option<&str>), &'static str> {
    let raw = if allow_lws { trim_ws(raw) } else { raw };
    if raw.is_empty() {
        return Err("empty parameter");
    }
    let (name, value) = match find_byte(raw, b'=') {
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
    Ok((name, value))
}

/// Header parameter names are tokens; URI parameter names may also contain escapes and a
/// few more unreserved characters, which token already covers except for `[]/:&$`.
fn is_param_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_param_byte)
}

fn is_param_value(v: &str) -> bool {
    if v.starts_with('"') {
        return v.len() >= 2 && v.ends_with('"');
    }
    if v.starts_with('[') {
        return v.ends_with(']');
    }
    v.bytes().all(is_param_byte)
}

impl Params {
    pub(crate) fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        for p in &self.0 {
            w.write_str(";")?;
            w.write_str(&p.name)?;
            if let Some(v) = &p.value {
                w.write_str("=")?;
                w.write_str(v)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
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
