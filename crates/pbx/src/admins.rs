//! Admin accounts for the web admin and the `admin` CLI: names, roles, password policy and the
//! argon2id hashes stored in [`crate::store::Store`]'s `admins` table.
//!
//! Only the PHC-format argon2id hash is ever stored; a password is checked against the policy
//! ([`AdminPassword::new`]) before it is hashed, and neither type prints its secret (`Debug`
//! shows `***`). There is no default account: [`crate::store::Store::admin_count`] is 0 on a
//! new box and the web admin then only tells how to create one.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest admin password accepted (OWASP ASVS 6.2.1 asks for at least 8; an appliance
/// reachable from the office LAN gets more).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Passwords seen first in every breach list; refused whatever their length.
const COMMON: &[&str] = &[
    "password",
    "123456",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty",
    "admin",
    "letmein",
    "welcome",
    "iloveyou",
    "passw0rd",
    "password1",
    "freepbx",
    "asterisk",
    "kentongan",
    "rahasia",
    "bismillah",
    "indonesia",
];

/// Why an admin name or password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("admin name {0:?} is not valid: use 1-32 lower-case letters, digits, '.', '-' or '_'")]
    BadName(String),
    #[error("role {0:?} is not valid: use admin or operator")]
    BadRole(String),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("the password is too easy to guess (a common password, the account name, or one repeated character)")]
    WeakPassword,
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// An admin account name, e.g. `admin`: lower-case so `Admin` and `admin` are one account.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct AdminName(String);

impl AdminName {
    pub fn parse(s: &str) -> Result<AdminName, AdminError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if ok {
            Ok(AdminName(s.to_owned()))
        } else {
            Err(AdminError::BadName(s.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AdminName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for AdminName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminName({})", self.0)
    }
}

/// What an admin may do: `Admin` changes everything, `Operator` runs the office (extensions,
/// calls) but not accounts, firewall or backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, AdminError> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            _ => Err(AdminError::BadRole(s.chars().take(40).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }
}

/// A password that passed the policy for `name`; never printed.
pub struct AdminPassword(String);

impl AdminPassword {
    /// Checks `password` against the policy for the account `name`.
    pub fn new(name: &AdminName, password: &str) -> Result<AdminPassword, AdminError> {
        if password.is_empty() {
            return Err(AdminError::EmptyPassword);
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AdminError::ShortPassword);
        }
        let lower = password.to_lowercase();
        let mut chars = password.chars();
        let first = chars.next();
        let one_char = chars.all(|c| Some(c) == first);
        let common = COMMON
            .iter()
            .any(|c| lower == *c || lower.trim_end_matches(|c: char| c.is_ascii_digit()) == *c);
        if one_char || common || lower.contains(name.as_str()) {
            return Err(AdminError::WeakPassword);
        }
        Ok(AdminPassword(password.to_owned()))
    }

    /// The argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a fresh random salt.
    pub fn hash(&self) -> Result<String, AdminError> {
        hash_secret(&self.0)
    }
}

/// The argon2id PHC string of any secret (admin passwords, voicemail PINs), freshly salted.
pub fn hash_secret(secret: &str) -> Result<String, AdminError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AdminError::Hash(e.to_string()))
}

impl std::fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminPassword(***)")
    }
}

/// OWASP's argon2id minimum (m = 19 MiB, t = 2, p = 1), which argon2's defaults are; spelled
/// out so a dependency update cannot weaken it silently.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `password` matches the stored PHC `hash`; a malformed hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes a password no account has, so a login for an unknown name costs as much time as
/// one for a known name (no user enumeration by timing).
pub fn verify_dummy(password: &str) {
    let salt = SaltString::encode_b64(b"kentongan-dummy!")
        .unwrap_or_else(|_| SaltString::generate(&mut OsRng));
    let _ = hasher().hash_password(password.as_bytes(), &salt);
}

/// One stored admin account (its hash is not part of it: listing never reads hashes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Admin {
    pub name: AdminName,
    pub role: Role,
    /// Unix seconds.
    pub created: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_and_bounded() {
        assert!(AdminName::parse("admin").is_ok());
        assert!(AdminName::parse("budi.s_2").is_ok());
        for bad in [
            "",
            "Admin",
            "a b",
            "x'; DROP TABLE admins;--",
            &"a".repeat(33),
        ] {
            assert!(AdminName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_refuses_weak_passwords() {
        let name = AdminName::parse("budi").unwrap();
        assert_eq!(
            AdminPassword::new(&name, "").unwrap_err(),
            AdminError::EmptyPassword
        );
        assert_eq!(
            AdminPassword::new(&name, "short-pw").unwrap_err(),
            AdminError::ShortPassword
        );
        for weak in [
            "aaaaaaaaaaaaaaa",
            "password123456",
            "Budi-is-great-1",
            "1234567890",
        ] {
            assert!(AdminPassword::new(&name, weak).is_err(), "{weak}");
        }
        assert!(AdminPassword::new(&name, "kopi tubruk di pagi hari").is_ok());
    }

    #[test]
    fn hash_is_argon2id_salted_and_verifies() {
        let name = AdminName::parse("admin").unwrap();
        let pw = AdminPassword::new(&name, "kopi tubruk di pagi hari").unwrap();
        let a = pw.hash().unwrap();
        let b = pw.hash().unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("kopi"));
        assert!(verify_password(&a, "kopi tubruk di pagi hari"));
        assert!(!verify_password(&a, "kopi tubruk di pagi har"));
        assert!(!verify_password("not a hash", "kopi tubruk di pagi hari"));
        assert_eq!(format!("{pw:?}"), "AdminPassword(***)");
    }
}
