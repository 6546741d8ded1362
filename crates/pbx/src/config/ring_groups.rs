//! `[[ring_group]]` and `[parking]`: numbers that ring several extensions, and the slots a
//! call can be parked in, checked into [`RingGroup`]s and [`Parking`].
//!
//! Extensions live in SQLite, not in this file, so whether a member or a `no_answer` target
//! exists (and whether a group's number is already an extension's) is checked against the user
//! directory by [`check_against_directory`], at `check-config` and daemon start.

use std::fmt;

use serde::Deserialize;

use super::{ConfigError, Kind};
use crate::store::Extension;

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("number", Kind::Str),
    ("name", Kind::Str),
    ("strategy", Kind::Str),
    ("members", Kind::StrList),
    ("ring_seconds", Kind::Int),
    ("no_answer", Kind::Str),
];

pub(super) const PARKING_KEYS: &[(&str, Kind)] =
    &[("slots", Kind::Str), ("timeout_seconds", Kind::Int)];

const DEFAULT_RING_SECONDS: u32 = 20;
const MAX_RING_SECONDS: i64 = 600;
/// FreePBX's default parking lot.
const DEFAULT_SLOTS: (u32, u32) = (71, 78);
const DEFAULT_PARK_TIMEOUT: u32 = 45;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRingGroup {
    number: String,
    name: Option<String>,
    strategy: Option<String>,
    #[serde(default)]
    members: Vec<String>,
    ring_seconds: Option<i64>,
    no_answer: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParking {
    slots: Option<String>,
    timeout_seconds: Option<i64>,
}

/// How a ring group's members are rung (FreePBX's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every free member at once for `ring_seconds` in total; the first to answer wins.
    RingAll,
    /// One member after another, `ring_seconds` each, in the order written.
    Hunt,
    /// The first member, then the first two, then three …, `ring_seconds` each step.
    MemoryHunt,
    /// Like hunt, in a fresh random order for each call.
    Random,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RingAll => "ringall",
            Strategy::Hunt => "hunt",
            Strategy::MemoryHunt => "memoryhunt",
            Strategy::Random => "random",
        }
    }
}

/// Where a call nobody in the group took goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// `vm:NNN`: that extension's mailbox (unavailable greeting).
    Voicemail(Extension),
    /// Any number the dialplan routes: an extension, a room, another group.
    Number(String),
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoAnswer::Voicemail(e) => write!(f, "vm:{e}"),
            NoAnswer::Number(n) => f.write_str(n),
        }
    }
}

/// One `[[ring_group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingGroup {
    pub number: String,
    pub name: String,
    pub strategy: Strategy,
    /// In the order written (hunt order), no repeats.
    pub members: Vec<Extension>,
    pub ring_seconds: u32,
    /// `None`: the caller gets 480 when nobody answered.
    pub no_answer: Option<NoAnswer>,
}

/// `[parking]`: the slots (`"71-78"`) and how long a parked call waits before it rings back
/// the extension that parked it. The park number is the first slot's number minus one (`70`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parking {
    pub first: u32,
    pub last: u32,
    pub timeout_seconds: u32,
}

impl Default for Parking {
    fn default() -> Parking {
        Parking {
            first: DEFAULT_SLOTS.0,
            last: DEFAULT_SLOTS.1,
            timeout_seconds: DEFAULT_PARK_TIMEOUT,
        }
    }
}

impl Parking {
    /// The number a call is transferred to in order to park it (`70` for `71-78`).
    pub fn park_number(&self) -> String {
        (self.first - 1).to_string()
    }

    pub fn slots(&self) -> impl Iterator<Item = String> {
        (self.first..=self.last).map(|n| n.to_string())
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn validate(
    raw: Vec<RawRingGroup>,
    taken: &[(&str, String)],
) -> Result<Vec<RingGroup>, ConfigError> {
    let mut groups: Vec<RingGroup> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("ring_group[{i}].{k}");
        let number = r.number.trim().to_owned();
        if !digits(&number) {
            return Err(ConfigError::at(
                &key("number"),
                format!(
                    "is {:?}; use the digits phones dial, e.g. \"600\"",
                    r.number
                ),
            ));
        }
        if let Some(other) = groups.iter().position(|g| g.number == number) {
            return Err(ConfigError::at(
                &key("number"),
                format!("repeats {number:?}, already the number of ring_group[{other}]; give each group its own"),
            ));
        }
        if let Some((_, what)) = taken.iter().find(|(n, _)| *n == number) {
            return Err(ConfigError::at(
                &key("number"),
                format!("is {number:?}, which is already {what}; pick a free number"),
            ));
        }
        let name = r.name.unwrap_or_else(|| format!("Group {number}"));
        if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control)
        {
            return Err(ConfigError::at(
                &key("name"),
                "must be 1 to 64 characters without control characters, e.g. \"Sales\"",
            ));
        }
        let strategy = match r.strategy.as_deref() {
            None | Some("ringall") => Strategy::RingAll,
            Some("hunt") => Strategy::Hunt,
            Some("memoryhunt") => Strategy::MemoryHunt,
            Some("random") => Strategy::Random,
            Some(other) => {
                return Err(ConfigError::at(
                    &key("strategy"),
                    format!(
                        "is {other:?}; use \"ringall\", \"hunt\", \"memoryhunt\" or \"random\""
                    ),
                ))
            }
        };
        if r.members.is_empty() {
            return Err(ConfigError::at(
                &key("members"),
                "is empty; list the extensions to ring, e.g. [\"201\", \"202\"]",
            ));
        }
        let mut members: Vec<Extension> = Vec::new();
        for m in &r.members {
            let Some(ext) = Extension::parse(m.trim()) else {
                return Err(ConfigError::at(
                    &key("members"),
                    format!(
                        "holds {m:?}, which is not an extension number; use numbers like \"201\""
                    ),
                ));
            };
            if members.contains(&ext) {
                return Err(ConfigError::at(
                    &key("members"),
                    format!("lists {ext} twice; list each extension once"),
                ));
            }
            if ext.0 == number {
                return Err(ConfigError::at(
                    &key("members"),
                    format!("lists the group's own number {number}; list extensions only"),
                ));
            }
            members.push(ext);
        }
        let ring_seconds = match r.ring_seconds {
            None => DEFAULT_RING_SECONDS,
            Some(n @ 1..=MAX_RING_SECONDS) => n as u32,
            Some(n) => {
                return Err(ConfigError::at(
                    &key("ring_seconds"),
                    format!("is {n}; use a whole number of seconds from 1 to {MAX_RING_SECONDS} (default {DEFAULT_RING_SECONDS})"),
                ))
            }
        };
        let no_answer = match r.no_answer.as_deref().map(str::trim) {
            None => None,
            Some(s) => Some(match s.strip_prefix("vm:") {
                Some(mb) => NoAnswer::Voicemail(Extension::parse(mb).ok_or_else(|| {
                    ConfigError::at(
                        &key("no_answer"),
                        format!("is {s:?}; a mailbox is written \"vm:\" and the extension, e.g. \"vm:201\""),
                    )
                })?),
                None if s == number => {
                    return Err(ConfigError::at(
                        &key("no_answer"),
                        "is the group's own number, which would ring it forever; name an extension, \"vm:201\" or another service",
                    ))
                }
                None if Extension::parse(s).is_some() => NoAnswer::Number(s.to_owned()),
                None => {
                    return Err(ConfigError::at(
                        &key("no_answer"),
                        format!("is {s:?}; use a number (\"201\", \"800\") or a mailbox (\"vm:201\")"),
                    ))
                }
            }),
        };
        groups.push(RingGroup {
            number,
            name,
            strategy,
            members,
            ring_seconds,
            no_answer,
        });
    }
    Ok(groups)
}

pub(super) fn validate_parking(
    raw: Option<RawParking>,
    taken: &[(&str, String)],
) -> Result<Parking, ConfigError> {
    let raw = raw.unwrap_or_default();
    let mut p = Parking::default();
    if let Some(s) = raw.slots {
        let bad = || {
            ConfigError::at(
                "parking.slots",
                format!("is {s:?}; write the first and last slot number, e.g. \"71-78\" (the park number is the one before: 70)"),
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b) = (a.trim(), b.trim());
        if !digits(a) || !digits(b) || a.len() > 6 || b.len() > 6 {
            return Err(bad());
        }
        let (first, last): (u32, u32) =
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if first < 2 || last < first || last - first >= 100 {
            return Err(ConfigError::at(
                "parking.slots",
                format!("is {s:?}; give 1 to 100 slots from a number of 2 or more upwards, e.g. \"71-78\""),
            ));
        }
        p.first = first;
        p.last = last;
    }
    if let Some(t) = raw.timeout_seconds {
        if !(5..=3600).contains(&t) {
            return Err(ConfigError::at(
                "parking.timeout_seconds",
                format!("is {t}; use 5 to 3600 seconds (default {DEFAULT_PARK_TIMEOUT})"),
            ));
        }
        p.timeout_seconds = t as u32;
    }
    for n in std::iter::once(p.park_number()).chain(p.slots()) {
        if let Some((_, what)) = taken.iter().find(|(t, _)| *t == n) {
            return Err(ConfigError::at(
                "parking.slots",
                format!("needs {n}, which is already {what}; move the slots or that service"),
            ));
        }
    }
    Ok(p)
}

/// Checks the groups against the user directory: members and `vm:` mailboxes must be
/// extensions, and a group's number must not be one (the group would hide it).
pub fn check_against_directory(
    groups: &[RingGroup],
    exists: &dyn Fn(&Extension) -> bool,
    service: &dyn Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    for (i, g) in groups.iter().enumerate() {
        let key = |k: &str| format!("ring_group[{i}].{k}");
        if Extension::parse(&g.number).is_some_and(|e| exists(&e)) {
            return Err(ConfigError::at(
                &key("number"),
                format!("is {}, which is also an extension; give the group a free number or remove the extension with `user remove {}`", g.number, g.number),
            ));
        }
        if let Some(m) = g.members.iter().find(|m| !exists(m)) {
            return Err(ConfigError::at(
                &key("members"),
                format!("lists {m}, which is no extension; add it with `user add {m}` or take it out of the list"),
            ));
        }
        match &g.no_answer {
            Some(NoAnswer::Voicemail(mb)) if !exists(mb) => {
                return Err(ConfigError::at(
                    &key("no_answer"),
                    format!("is vm:{mb}, but {mb} is no extension; name an existing mailbox"),
                ))
            }
            Some(NoAnswer::Number(n))
                if !service(n) && !Extension::parse(n).is_some_and(|e| exists(&e)) =>
            {
                return Err(ConfigError::at(
                    &key("no_answer"),
                    format!("is {n:?}, which is no extension or service here; name one that exists, or \"vm:NNN\""),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The park number and slots must not be extensions' numbers (the extension would be
/// unreachable).
pub fn check_parking_against_directory(
    parking: &Parking,
    exists: &dyn Fn(&Extension) -> bool,
) -> Result<(), ConfigError> {
    for n in std::iter::once(parking.park_number()).chain(parking.slots()) {
        if Extension::parse(&n).is_some_and(|e| exists(&e)) {
            return Err(ConfigError::at(
                "parking.slots",
                format!("needs {n}, which is also an extension (calls to it would park or retrieve instead); set other slots, e.g. slots = \"81-88\", or renumber the extension"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n{extra}")).map_err(|e| e.message)
    }

    #[test]
    fn a_group_and_parking_as_the_readme_shows_them() {
        let c = load(
            "[[ring_group]]\nnumber = \"600\"\nname = \"Sales\"\nstrategy = \"hunt\"\n\
             members = [\"201\", \"202\", \"203\"]\nring_seconds = 20\nno_answer = \"vm:201\"\n\
             [parking]\nslots = \"71-78\"\ntimeout_seconds = 45\n",
        )
        .unwrap();
        let g = &c.ring_groups[0];
        assert_eq!((g.number.as_str(), g.name.as_str()), ("600", "Sales"));
        assert_eq!(g.strategy, Strategy::Hunt);
        assert_eq!(g.members.len(), 3);
        assert_eq!(
            g.no_answer,
            Some(NoAnswer::Voicemail(Extension("201".into())))
        );
        assert_eq!(c.parking.park_number(), "70");
        assert_eq!(c.parking.slots().count(), 8);
        assert_eq!(c.parking.timeout_seconds, 45);
        // Without [parking], FreePBX's lot.
        assert_eq!(load("").unwrap().parking, Parking::default());
    }

    #[test]
    fn bad_groups_name_the_key_and_the_fix() {
        let e = load("[[ring_group]]\nnumber = \"600\"\nstrategy = \"all\"\nmembers = [\"201\"]\n")
            .unwrap_err();
        assert!(
            e.starts_with("`ring_group[0].strategy` is \"all\"; use \"ringall\""),
            "{e}"
        );
        let e = load("[[ring_group]]\nnumber = \"600\"\n").unwrap_err();
        assert!(e.starts_with("`ring_group[0].members` is empty"), "{e}");
        let e =
            load("[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\", \"201\"]\n").unwrap_err();
        assert!(e.contains("lists 201 twice"), "{e}");
        let e =
            load("[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\"]\nno_answer = \"vm:\"\n")
                .unwrap_err();
        assert!(e.starts_with("`ring_group[0].no_answer` is \"vm:\""), "{e}");
        let e = load(
            "[[conference]]\nnumber = \"600\"\n[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\"]\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("`ring_group[0].number` is \"600\", which is already conference room"),
            "{e}"
        );
        let e = load("[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\"]\nring_seconds = 0\n")
            .unwrap_err();
        assert!(e.starts_with("`ring_group[0].ring_seconds` is 0"), "{e}");
        let e = load("[[ring_group]]\nnumber = \"600\"\nmembrs = [\"201\"]\n").unwrap_err();
        assert!(
            e.starts_with("`ring_group[0].membrs` is not a known key"),
            "{e}"
        );
        let e = load("[parking]\nslots = \"78-71\"\n").unwrap_err();
        assert!(e.starts_with("`parking.slots` is \"78-71\""), "{e}");
        let e = load("[[ring_group]]\nnumber = \"70\"\nmembers = [\"201\"]\n").unwrap_err();
        assert!(
            e.starts_with("`parking.slots` needs 70, which is already ring group"),
            "{e}"
        );
    }

    #[test]
    fn the_directory_check_finds_unknown_members_and_clashes() {
        let c = load(
            "[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\", \"209\"]\nno_answer = \"vm:201\"\n",
        )
        .unwrap();
        let known = |e: &Extension| ["201", "202", "601"].contains(&e.0.as_str());
        let none = |_: &str| false;
        let e = check_against_directory(&c.ring_groups, &known, &none).unwrap_err();
        assert!(
            e.message
                .starts_with("`ring_group[0].members` lists 209, which is no extension; add it with `user add 209`"),
            "{e}"
        );
        let c = load("[[ring_group]]\nnumber = \"601\"\nmembers = [\"201\"]\n").unwrap();
        let e = check_against_directory(&c.ring_groups, &known, &none).unwrap_err();
        assert!(
            e.message
                .starts_with("`ring_group[0].number` is 601, which is also an extension"),
            "{e}"
        );
        let c =
            load("[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\"]\nno_answer = \"999\"\n")
                .unwrap();
        let e = check_against_directory(&c.ring_groups, &known, &none).unwrap_err();
        assert!(
            e.message
                .starts_with("`ring_group[0].no_answer` is \"999\""),
            "{e}"
        );
        let c =
            load("[[ring_group]]\nnumber = \"600\"\nmembers = [\"201\"]\nno_answer = \"202\"\n")
                .unwrap();
        check_against_directory(&c.ring_groups, &known, &none).unwrap();
        let e = check_parking_against_directory(&Parking::default(), &|e: &Extension| e.0 == "75")
            .unwrap_err();
        assert!(
            e.message
                .starts_with("`parking.slots` needs 75, which is also an extension"),
            "{e}"
        );
        check_parking_against_directory(&Parking::default(), &known).unwrap();
    }
}
