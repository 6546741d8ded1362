//! Routing: the one place where a dialled number becomes a [`Destination`].
//!
//! Every call the PBX accepts is routed here before anything else happens to it: the INVITE
//! handling asks [`Dialplan::resolve`] and then hands the call to whatever serves the
//! destination (a bridge to an extension's phones, or an application answered by the PBX).
//! A new service is a new [`Destination`] variant and its application, never a branch inside
//! INVITE handling.
//!
//! Services named in the configuration (conference rooms, …) are matched first, by their exact
//! number; then extensions known to the user directory. The dialplan holds no I/O: the user
//! directory is handed in, so the rules are tested without a database.

use std::collections::HashMap;
use std::fmt;

use crate::config::Config;
use crate::store::{Extension, Store, StoreError};

/// Where a dialled number leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Ring the extension's registered phones and bridge the call to the one that answers.
    Extension(Extension),
    /// A conference room from `[[conference]]`, by its index in `Config::conferences`.
    Conference(RoomIndex),
}

/// A conference room's position in `Config::conferences` (stable until a reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomIndex(pub usize);

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Extension(e) => write!(f, "extension {e}"),
            Destination::Conference(r) => write!(f, "conference room #{}", r.0),
        }
    }
}

/// Why a number could not be routed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0:?} is not a number this PBX serves (no extension or service has it)")]
    NotFound(String),
    #[error("the user directory could not be read")]
    Lookup(#[from] StoreError),
}

/// Answers "does this extension exist?"; the daemon hands in its [`Store`].
pub trait UserDirectory {
    fn exists(&self, ext: &Extension) -> Result<bool, StoreError>;
}

impl UserDirectory for Store {
    fn exists(&self, ext: &Extension) -> Result<bool, StoreError> {
        self.user_exists(&ext.0)
    }
}

/// The numbering plan, built from the configuration (and rebuilt on reload).
#[derive(Debug, Clone, Default)]
pub struct Dialplan {
    services: HashMap<String, Destination>,
}

impl Dialplan {
    pub fn new(config: &Config) -> Dialplan {
        let mut services = HashMap::new();
        for (i, room) in config.conferences.iter().enumerate() {
            services.insert(room.number.clone(), Destination::Conference(RoomIndex(i)));
        }
        Dialplan { services }
    }

    /// The destination of `dialled` (the Request-URI's user part).
    pub fn resolve(
        &self,
        dialled: &str,
        users: &dyn UserDirectory,
    ) -> Result<Destination, RouteError> {
        if let Some(d) = self.services.get(dialled) {
            return Ok(d.clone());
        }
        let ext =
            Extension::parse(dialled).ok_or_else(|| RouteError::NotFound(dialled.to_owned()))?;
        if users.exists(&ext)? {
            Ok(Destination::Extension(ext))
        } else {
            Err(RouteError::NotFound(dialled.to_owned()))
        }
    }

    /// The service (not extension) a number is taken by, for `user add` to refuse it.
    pub fn service(&self, number: &str) -> Option<&Destination> {
        self.services.get(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Users(&'static [&'static str]);
    impl UserDirectory for Users {
        fn exists(&self, ext: &Extension) -> Result<bool, StoreError> {
            Ok(self.0.contains(&ext.0.as_str()))
        }
    }

    fn plan(extra: &str) -> Dialplan {
        let config = Config::from_toml(&format!("[sip]\ndomain = \"pbx.local\"\n{extra}")).unwrap();
        Dialplan::new(&config)
    }

    #[test]
    fn extensions_route_to_themselves_and_unknown_numbers_do_not_route() {
        let p = plan("");
        let users = Users(&["201", "202"]);
        assert_eq!(
            p.resolve("202", &users).unwrap(),
            Destination::Extension(Extension("202".into()))
        );
        assert!(matches!(
            p.resolve("203", &users),
            Err(RouteError::NotFound(n)) if n == "203"
        ));
        assert!(matches!(
            p.resolve("a'; DROP TABLE users", &users),
            Err(RouteError::NotFound(_))
        ));
    }

    #[test]
    fn a_conference_number_is_a_room_even_if_an_extension_has_it() {
        let p = plan("[[conference]]\nnumber = \"800\"\nname = \"Ruang Rapat\"\n");
        let users = Users(&["800"]);
        assert_eq!(
            p.resolve("800", &users).unwrap(),
            Destination::Conference(RoomIndex(0))
        );
    }
}
