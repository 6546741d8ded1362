//! `[[conference]]`: conference rooms, checked into [`ConferenceRoom`]s.

use std::fmt;

use serde::Deserialize;

use super::{ConfigError, Kind};

pub(super) const KEYS: &[(&str, Kind)] = &[
    ("number", Kind::Str),
    ("name", Kind::Str),
    ("pin", Kind::Str),
    ("admin_pin", Kind::Str),
    ("max_members", Kind::Int),
    ("video", Kind::Bool),
    ("record", Kind::Bool),
];

const DEFAULT_MAX_MEMBERS: u32 = 50;
/// A room larger than this is a broadcast, not a meeting; the mixer is sized for it.
const LIMIT_MAX_MEMBERS: i64 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConference {
    number: String,
    name: Option<String>,
    pin: Option<String>,
    admin_pin: Option<String>,
    max_members: Option<i64>,
    #[serde(default)]
    video: bool,
    #[serde(default)]
    record: bool,
}

/// A PIN typed on a phone's keypad: 1 to 16 digits. `Debug` hides it, so logs never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    fn parse(s: &str) -> Option<Pin> {
        (1..=16)
            .contains(&s.len())
            .then_some(())
            .filter(|()| s.bytes().all(|b| b.is_ascii_digit()))
            .map(|()| Pin(s.to_owned()))
    }

    /// Compares typed digits with the PIN without an early exit on the first difference.
    pub fn matches(&self, typed: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), typed.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// One conference room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceRoom {
    /// The number dialled to join, e.g. "800".
    pub number: String,
    pub name: String,
    /// Asked for by prompt before joining, typed as RFC 4733 DTMF.
    pub pin: Option<Pin>,
    /// Typed instead of `pin`, it makes the member an admin (lock, mute others, kick).
    pub admin_pin: Option<Pin>,
    pub max_members: u32,
    /// Forward the active speaker's video to every video member.
    pub video: bool,
    /// Record the mix as WAV under the storage directory.
    pub record: bool,
}

pub(super) fn validate(raw: Vec<RawConference>) -> Result<Vec<ConferenceRoom>, ConfigError> {
    let mut rooms: Vec<ConferenceRoom> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("conference[{i}].{k}");
        let number = r.number.trim().to_owned();
        if number.is_empty() || number.len() > 15 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::at(
                &key("number"),
                format!(
                    "is {:?}; use the digits phones dial, e.g. \"800\"",
                    r.number
                ),
            ));
        }
        if let Some(other) = rooms.iter().position(|x| x.number == number) {
            return Err(ConfigError::at(
                &key("number"),
                format!("repeats {number:?}, already the number of conference[{other}]; give each room its own"),
            ));
        }
        let name = r.name.unwrap_or_else(|| format!("Conference {number}"));
        if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control)
        {
            return Err(ConfigError::at(
                &key("name"),
                "must be 1 to 64 characters without control characters, e.g. \"Ruang Rapat\"",
            ));
        }
        let pin = |k: &str, v: Option<String>| -> Result<Option<Pin>, ConfigError> {
            match v {
                None => Ok(None),
                Some(p) => Pin::parse(&p).map(Some).ok_or_else(|| {
                    ConfigError::at(
                        &key(k),
                        "must be 1 to 16 digits typed on a keypad, e.g. \"1234\"",
                    )
                }),
            }
        };
        let (pin, admin_pin) = (pin("pin", r.pin)?, pin("admin_pin", r.admin_pin)?);
        if pin.is_some() && pin == admin_pin {
            return Err(ConfigError::at(
                &key("admin_pin"),
                "is the same as `pin`; an admin PIN must differ, or every member would be an admin",
            ));
        }
        let max_members = match r.max_members {
            None => DEFAULT_MAX_MEMBERS,
            Some(n @ 2..=LIMIT_MAX_MEMBERS) => n as u32,
            Some(n) => {
                return Err(ConfigError::at(
                    &key("max_members"),
                    format!("is {n}; use a whole number from 2 to {LIMIT_MAX_MEMBERS} (default {DEFAULT_MAX_MEMBERS})"),
                ))
            }
        };
        rooms.push(ConferenceRoom {
            number,
            name,
            pin,
            admin_pin,
            max_members,
            video: r.video,
            record: r.record,
        });
    }
    Ok(rooms)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n{extra}")).map_err(|e| e.message)
    }

    #[test]
    fn a_room_as_the_readme_shows_it() {
        let c = load(
            "[[conference]]\nnumber = \"800\"\nname = \"Ruang Rapat\"\npin = \"1234\"\n\
             admin_pin = \"9999\"\nmax_members = 50\nvideo = true\nrecord = false\n",
        )
        .unwrap();
        let room = &c.conferences[0];
        assert_eq!(
            (room.number.as_str(), room.name.as_str()),
            ("800", "Ruang Rapat")
        );
        assert!(room.pin.as_ref().unwrap().matches("1234"));
        assert!(!room.pin.as_ref().unwrap().matches("123"));
        assert!(!room.pin.as_ref().unwrap().matches("12345"));
        assert!(room.admin_pin.as_ref().unwrap().matches("9999"));
        assert!(room.video && !room.record);
        assert_eq!(format!("{:?}", room.pin), "Some(Pin(****))");
    }

    #[test]
    fn bad_rooms_name_the_key() {
        let two = "[[conference]]\nnumber = \"800\"\n[[conference]]\nnumber = \"800\"\n";
        assert!(load(two)
            .unwrap_err()
            .starts_with("`conference[1].number` repeats \"800\""));
        let e = load("[[conference]]\nnumber = \"80a\"\n").unwrap_err();
        assert!(e.starts_with("`conference[0].number` is \"80a\""), "{e}");
        let e = load("[[conference]]\nnumber = \"800\"\npin = \"12ab\"\n").unwrap_err();
        assert!(
            e.starts_with("`conference[0].pin` must be 1 to 16 digits"),
            "{e}"
        );
        let e = load("[[conference]]\nnumber = \"800\"\nmax_members = 1\n").unwrap_err();
        assert!(e.starts_with("`conference[0].max_members` is 1"), "{e}");
        let e = load("[[conference]]\nnumber = \"800\"\nvidoe = true\n").unwrap_err();
        assert!(
            e.starts_with("`conference[0].vidoe` is not a known key"),
            "{e}"
        );
        let e = load("[conference]\nnumber = \"800\"\n").unwrap_err();
        assert!(
            e.starts_with("`conference` must be written as [[conference]]"),
            "{e}"
        );
        let e = load("[[conference]]\nnumber = \"800\"\nvideo = \"yes\"\n").unwrap_err();
        assert!(
            e.starts_with("`conference[0].video` must be true or false"),
            "{e}"
        );
    }
}
