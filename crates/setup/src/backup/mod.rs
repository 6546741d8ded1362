//! Backup and restore of the appliance's state: one `tar` + `zstd` archive whose first member,
//! `MANIFEST.json`, names every other member with its sha256, size and mode.
//!
//! What is in it: `/etc/kentongan` (config, TLS certificate *and key*, rates), the database
//! (copied online with SQLite's backup API, so the daemon may keep writing), and
//! `/var/lib/kentongan/{voicemail,recordings,sounds/custom}`. Passwords stay as the database
//! keeps them (HA1 digests, crypt hashes); the TLS private key is the one secret in clear.
//!
//! Every path is resolved under [`Roots::root`] so that tests use a temporary directory.

mod archive;
mod restore;
mod schedule;

pub use archive::{create, CreateError, Created};
pub use restore::{restore, validate_archive, Checked, RestoreError, PBX_UNIT};
pub use schedule::{
    find_target, rotate, write_archive, write_scheduled, BackupSettings, Destination,
    ScheduleError, BACKUP_LABEL, DEFAULT_BACKUP_DIR,
};

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the first member of every archive.
pub const MANIFEST_NAME: &str = "MANIFEST.json";
/// `format` field of our manifests: a tar without it is not a Kentongan backup.
pub const FORMAT: &str = "kentongan-backup";
/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Highest database schema (`PRAGMA user_version`) this build's `Store` knows; a backup from a
/// newer Kentongan is refused on restore rather than fed to an older daemon.
pub const SCHEMA_VERSION: i64 = kentongan_pbx::store::SCHEMA_VERSION;
/// The statement every manifest carries about secrets.
pub const SECRETS_NOTE: &str = "passwords are stored hashed (SIP HA1, crypt); the TLS private key \
under config/tls is in this archive in clear: keep the archive as safe as the appliance";

/// The file systems a backup reads and a restore writes: appliance paths are taken under
/// `root` (`/` on the appliance, a temporary directory in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub root: PathBuf,
}

impl Roots {
    /// The appliance itself.
    pub fn appliance() -> Roots {
        Roots {
            root: PathBuf::from("/"),
        }
    }

    /// `abs` (an appliance path such as `/etc/kentongan`) under this root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// The database path from `/etc/kentongan/pbx.toml` `[storage] database` (the daemon's
    /// default when the file or key is absent), as an appliance path.
    pub fn database_path(&self) -> Result<String, std::io::Error> {
        let pbx = self.path(CONFIG_DIR).join("pbx.toml");
        let text = match std::fs::read_to_string(&pbx) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DEFAULT_DATABASE.to_owned())
            }
            Err(e) => return Err(e),
        };
        let value: toml::Value = text.parse().map_err(|e: toml::de::Error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", pbx.display()),
            )
        })?;
        Ok(value
            .get("storage")
            .and_then(|s| s.get("database"))
            .and_then(|d| d.as_str())
            .unwrap_or(DEFAULT_DATABASE)
            .to_owned())
    }
}

/// The appliance's configuration directory (config, certs, rates and operators).
pub const CONFIG_DIR: &str = "/etc/kentongan";
/// The daemon's default database when pbx.toml names none.
pub const DEFAULT_DATABASE: &str = "/var/lib/kentongan/pbx.db";

/// A directory tree the archive carries: its prefix inside the archive and its appliance path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    pub prefix: &'static str,
    pub path: &'static str,
}

/// The directory trees, in archive order. The database is the member [`DATABASE_MEMBER`].
pub const TREES: &[Tree] = &[
    Tree {
        prefix: "config",
        path: CONFIG_DIR,
    },
    Tree {
        prefix: "voicemail",
        path: "/var/lib/kentongan/voicemail",
    },
    Tree {
        prefix: "recordings",
        path: "/var/lib/kentongan/recordings",
    },
    Tree {
        prefix: "prompts",
        path: "/var/lib/kentongan/sounds/custom",
    },
];

/// The database snapshot's member name.
pub const DATABASE_MEMBER: &str = "database/pbx.db";

/// The first member of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub kentongan_version: String,
    pub hostname: String,
    /// Unix seconds, as the caller said.
    pub created: i64,
    /// `PRAGMA user_version` of the database copy.
    pub schema_version: i64,
    /// Where the database lives on the appliance (pbx.toml `[storage] database`).
    pub database_path: String,
    /// [`SECRETS_NOTE`].
    pub secrets: String,
    pub members: Vec<Member>,
}

/// One archived file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Relative path inside the archive, `/`-separated.
    pub path: String,
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
    /// Permission bits (e.g. 0o600 for the TLS key).
    pub mode: u32,
}

/// Why a member path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("`{0}` is absolute; archive members are relative")]
    Absolute(String),
    #[error("`{0}` climbs out with `..`")]
    Climbs(String),
    #[error("`{0}` is not under config/, database/, voicemail/, recordings/ or prompts/")]
    Foreign(String),
    #[error("`{0}` is not valid UTF-8 or is empty")]
    Unreadable(String),
}

/// Checks a member path and returns where it lands (under the tree's staging directory, or
/// the database file): only plain components, under a known prefix.
pub fn member_target(path: &str) -> Result<MemberTarget, PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Unreadable(path.to_owned()));
    }
    let p = Path::new(path);
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => match s.to_str() {
                Some(s) => parts.push(s),
                None => return Err(PathProblem::Unreadable(path.to_owned())),
            },
            Component::CurDir => {}
            Component::ParentDir => return Err(PathProblem::Climbs(path.to_owned())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathProblem::Absolute(path.to_owned()))
            }
        }
    }
    if parts.join("/") == DATABASE_MEMBER {
        return Ok(MemberTarget::Database);
    }
    match parts.split_first() {
        Some((first, rest)) if !rest.is_empty() => {
            match TREES.iter().position(|t| t.prefix == *first) {
                Some(tree) => Ok(MemberTarget::InTree {
                    tree,
                    relative: rest.iter().collect(),
                }),
                None => Err(PathProblem::Foreign(path.to_owned())),
            }
        }
        _ => Err(PathProblem::Foreign(path.to_owned())),
    }
}

/// Where a checked member goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberTarget {
    Database,
    /// Index into [`TREES`] and the path below it.
    InTree {
        tree: usize,
        relative: PathBuf,
    },
}

/// Lower-case hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_checked() {
        assert_eq!(member_target(DATABASE_MEMBER), Ok(MemberTarget::Database));
        assert_eq!(
            member_target("config/tls/key.pem"),
            Ok(MemberTarget::InTree {
                tree: 0,
                relative: PathBuf::from("tls/key.pem")
            })
        );
        assert!(matches!(
            member_target("/etc/passwd"),
            Err(PathProblem::Absolute(_))
        ));
        assert!(matches!(
            member_target("config/../../etc/shadow"),
            Err(PathProblem::Climbs(_))
        ));
        assert!(matches!(
            member_target("home/x"),
            Err(PathProblem::Foreign(_))
        ));
        assert!(matches!(
            member_target("config"),
            Err(PathProblem::Foreign(_))
        ));
    }

    #[test]
    fn database_path_comes_from_pbx_toml() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            root: dir.path().to_path_buf(),
        };
        assert_eq!(roots.database_path().unwrap(), DEFAULT_DATABASE);
        std::fs::create_dir_all(roots.path(CONFIG_DIR)).unwrap();
        std::fs::write(
            roots.path(CONFIG_DIR).join("pbx.toml"),
            "[storage]\ndatabase = \"/srv/pbx.db\"\n",
        )
        .unwrap();
        assert_eq!(roots.database_path().unwrap(), "/srv/pbx.db");
    }
}

#[cfg(test)]
mod archive_tests;
