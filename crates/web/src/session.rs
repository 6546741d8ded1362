//! Server-side sessions: a random id (256 bits from the kernel) in a `__Host-` cookie maps to
//! the account, its CSRF token and two deadlines, idle and absolute (OWASP ASVS 7.3). The
//! table is bounded; time is handed in. Logging out or expiring removes the entry, so an old
//! cookie is worth nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::backend::Role;
use crate::i18n::Lang;

/// The cookie's name: `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
pub const COOKIE: &str = "__Host-kentongan";
/// However active, a session ends this long after login.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Beyond this many sessions, the least recently used is dropped.
const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Clone)]
pub struct Session {
    pub account: String,
    pub role: Role,
    pub csrf: String,
    /// The pages' language: the account's remembered one at login, then the header switch's.
    pub lang: Lang,
    created: Instant,
    last_seen: Instant,
}

#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    map: HashMap<String, Session>,
}

/// `bytes` random bytes from the kernel, as lower-case hex.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: HashMap::new(),
        }
    }

    /// Starts a session with a fresh id (never one the client offered); returns the id.
    pub fn create(
        &mut self,
        account: &str,
        role: Role,
        lang: Lang,
        now: Instant,
    ) -> Result<String, getrandom::Error> {
        self.expire(now);
        if self.map.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        self.map.insert(
            id.clone(),
            Session {
                account: account.to_owned(),
                role,
                csrf,
                lang,
                created: now,
                last_seen: now,
            },
        );
        Ok(id)
    }

    /// The live session of `id`, refreshed; an expired one is removed.
    pub fn touch(&mut self, id: &str, now: Instant) -> Option<Session> {
        let s = self.map.get_mut(id)?;
        if now.saturating_duration_since(s.last_seen) >= self.idle
            || now.saturating_duration_since(s.created) >= ABSOLUTE
        {
            self.map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Switches a live session's language (no effect on an ended one).
    pub fn set_lang(&mut self, id: &str, lang: Lang) {
        if let Some(s) = self.map.get_mut(id) {
            s.lang = lang;
        }
    }

    /// Ends every session of `account` (removed, or its password changed).
    pub fn end_account(&mut self, account: &str) {
        self.map.retain(|_, s| s.account != account);
    }

    pub fn end(&mut self, id: &str) {
        self.map.remove(id);
    }

    fn expire(&mut self, now: Instant) {
        let idle = self.idle;
        self.map.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) < idle
                && now.saturating_duration_since(s.created) < ABSOLUTE
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_expire_idle_and_absolute() {
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(60));
        let a = s.create("admin", Role::Admin, Lang::Id, t0).unwrap();
        let b = s.create("admin", Role::Admin, Lang::Id, t0).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(s.touch(&a, t0 + Duration::from_secs(59)).is_some());
        assert!(
            s.touch(&a, t0 + Duration::from_secs(118)).is_some(),
            "touch refreshes"
        );
        assert!(s.touch(&b, t0 + Duration::from_secs(60)).is_none(), "idle");
        assert!(s.touch(&b, t0 + Duration::from_secs(61)).is_none(), "gone");
        let mut s = Sessions::new(Duration::from_secs(3600));
        let c = s.create("op", Role::Operator, Lang::Id, t0).unwrap();
        let mut t = t0;
        while t < t0 + ABSOLUTE - Duration::from_secs(1800) {
            t += Duration::from_secs(1800);
            assert!(s.touch(&c, t).is_some());
        }
        assert!(s.touch(&c, t0 + ABSOLUTE).is_none(), "absolute");
    }

    #[test]
    fn logout_ends_it_and_secrets_compare() {
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(60));
        let a = s.create("admin", Role::Admin, Lang::Id, t0).unwrap();
        let csrf = s.touch(&a, t0).unwrap().csrf;
        s.set_lang(&a, Lang::En);
        assert_eq!(s.touch(&a, t0).unwrap().lang, Lang::En);
        assert!(same_secret(&csrf, &csrf.clone()));
        assert!(!same_secret(&csrf, &csrf[1..]));
        s.end(&a);
        assert!(s.touch(&a, t0).is_none());
    }
}
