//! Scheduled backups (`kentongan-setup backup --scheduled`, run by kentongan-backup.timer):
//! where to write (a mounted USB volume labelled [`BACKUP_LABEL`], else a directory), an atomic
//! write, and keeping only the newest N archives.

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{create, CreateError, Created, Manifest, Roots};
use crate::install::{Cmd, CmdError, Runner};

/// File-system label of a USB volume that scheduled backups go to when it is mounted.
pub const BACKUP_LABEL: &str = "KENTONGAN-BACKUP";
/// Where scheduled backups go without that volume.
pub const DEFAULT_BACKUP_DIR: &str = "/var/backups/kentongan";
/// The settings file, under the root.
pub const SETTINGS_FILE: &str = "/etc/kentongan/backup.toml";
const PREFIX: &str = "kentongan-backup-";
const SUFFIX: &str = ".tar.zst";

/// `/etc/kentongan/backup.toml`; every key optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// How many scheduled archives to keep in the destination (older ones are deleted).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Destination when no volume labelled KENTONGAN-BACKUP is mounted.
    #[serde(default = "default_dir")]
    pub directory: PathBuf,
}

fn default_keep() -> usize {
    7
}
fn default_dir() -> PathBuf {
    PathBuf::from(DEFAULT_BACKUP_DIR)
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            keep: default_keep(),
            directory: default_dir(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{path}: {why}; see README \"Backup and restore\" for its keys (`keep`, `directory`)")]
    Settings { path: PathBuf, why: String },
    #[error("`keep` in {path} is 0; keep at least 1 backup")]
    KeepZero { path: PathBuf },
    #[error("could not list block devices: {0}")]
    Lsblk(CmdError),
    #[error("{path}: {source}; check the backup destination is mounted and writable")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Create(#[from] CreateError),
}

impl BackupSettings {
    /// Reads the settings under `roots`; a missing file means the defaults.
    pub fn load(roots: &Roots) -> Result<BackupSettings, ScheduleError> {
        let path = roots.path(SETTINGS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BackupSettings::default()),
            Err(e) => {
                return Err(ScheduleError::Settings {
                    path,
                    why: e.to_string(),
                })
            }
        };
        let settings: BackupSettings =
            toml::from_str(&text).map_err(|e| ScheduleError::Settings {
                path: path.clone(),
                why: e.to_string(),
            })?;
        if settings.keep == 0 {
            return Err(ScheduleError::KeepZero { path });
        }
        Ok(settings)
    }
}

/// Where a scheduled backup goes, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub dir: PathBuf,
    pub why: String,
}

/// The mounted volume labelled [`BACKUP_LABEL`] (its `kentongan/` directory) if `lsblk`
/// shows one, else the settings' directory under `roots`.
pub fn find_target(
    roots: &Roots,
    settings: &BackupSettings,
    runner: &mut dyn Runner,
) -> Result<Destination, ScheduleError> {
    let out = runner
        .run(&Cmd::new("lsblk", &["-P", "-o", "LABEL,MOUNTPOINT"]))
        .map_err(ScheduleError::Lsblk)?;
    let fallback = roots.path(&settings.directory.to_string_lossy());
    for line in out.lines() {
        if field(line, "LABEL").as_deref() != Some(BACKUP_LABEL) {
            continue;
        }
        return Ok(match field(line, "MOUNTPOINT").filter(|m| !m.is_empty()) {
            Some(mount) => Destination {
                dir: Path::new(&mount).join("kentongan"),
                why: format!("volume {BACKUP_LABEL} mounted at {mount}"),
            },
            None => Destination {
                dir: fallback,
                why: format!(
                    "volume {BACKUP_LABEL} is present but not mounted (mount it to back up there)"
                ),
            },
        });
    }
    Ok(Destination {
        dir: fallback,
        why: format!("no volume labelled {BACKUP_LABEL}"),
    })
}

/// `KEY="value"` from one line of `lsblk -P`.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}=\""))? + key.len() + 2;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

/// Writes an archive to `path` atomically: a hidden `.partial` file beside it, fsynced, then
/// renamed, so a reader (or a crash) never sees half an archive under the final name.
pub fn write_archive(
    roots: &Roots,
    created: &Created,
    path: &Path,
) -> Result<Manifest, ScheduleError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScheduleError::Io { path, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let partial = dir.join(format!(".{name}.partial"));
    let scratch = dir.join(format!(".{name}.scratch"));
    std::fs::create_dir_all(&scratch).map_err(io_err(&scratch))?;
    let written = (|| {
        let file = std::fs::File::create(&partial).map_err(io_err(&partial))?;
        let manifest = create(roots, created, &scratch, &file, &partial)?;
        file.sync_all().map_err(io_err(&partial))?;
        std::fs::rename(&partial, path).map_err(io_err(path))?;
        Ok::<_, ScheduleError>(manifest)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Writes `kentongan-backup-<created>.tar.zst` into `dir` with [`write_archive`], then deletes
/// all but the newest `keep`. Returns the archive's path, its manifest and the paths deleted.
pub fn write_scheduled(
    roots: &Roots,
    created: &Created,
    dir: &Path,
    keep: usize,
) -> Result<(PathBuf, Manifest, Vec<PathBuf>), ScheduleError> {
    std::fs::create_dir_all(dir).map_err(|source| ScheduleError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(format!("{PREFIX}{:012}{SUFFIX}", created.at.max(0)));
    let manifest = write_archive(roots, created, &path)?;
    let removed = rotate(dir, keep)?;
    Ok((path, manifest, removed))
}

/// Deletes all but the `keep` newest scheduled archives in `dir` (by the time in their
/// names); other files are left alone.
pub fn rotate(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, ScheduleError> {
    let io_err = |source| ScheduleError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut ours: Vec<String> = std::fs::read_dir(dir)
        .map_err(io_err)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(PREFIX)
                .and_then(|r| r.strip_suffix(SUFFIX))
                .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    ours.sort();
    let excess = ours.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for name in &ours[..excess] {
        let path = dir.join(name);
        std::fs::remove_file(&path).map_err(io_err)?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lsblk(&'static str);
    impl Runner for Lsblk {
        fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError> {
            assert_eq!(cmd.program, "lsblk");
            Ok(self.0.to_owned())
        }
    }

    #[test]
    fn rotation_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for t in [5, 1, 3, 4, 2] {
            std::fs::write(dir.path().join(format!("{PREFIX}{t:012}{SUFFIX}")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        std::fs::write(
            dir.path()
                .join(".kentongan-backup-000000000009.tar.zst.partial"),
            b"",
        )
        .unwrap();
        let removed = rotate(dir.path(), 2).unwrap();
        assert_eq!(removed.len(), 3);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".kentongan-backup-000000000009.tar.zst.partial",
                "kentongan-backup-000000000004.tar.zst",
                "kentongan-backup-000000000005.tar.zst",
                "notes.txt"
            ]
        );
    }

    #[test]
    fn the_labelled_volume_wins_when_mounted() {
        let roots = Roots {
            root: PathBuf::from("/r"),
        };
        let s = BackupSettings::default();
        let usb =
            "LABEL=\"\" MOUNTPOINT=\"/\"\nLABEL=\"KENTONGAN-BACKUP\" MOUNTPOINT=\"/media/usb\"\n";
        let d = find_target(&roots, &s, &mut Lsblk(usb)).unwrap();
        assert_eq!(d.dir, PathBuf::from("/media/usb/kentongan"));
        let unmounted = "LABEL=\"KENTONGAN-BACKUP\" MOUNTPOINT=\"\"\n";
        let d = find_target(&roots, &s, &mut Lsblk(unmounted)).unwrap();
        assert_eq!(d.dir, PathBuf::from("/r/var/backups/kentongan"));
        assert!(d.why.contains("not mounted"));
        let d = find_target(&roots, &s, &mut Lsblk("LABEL=\"DATA\" MOUNTPOINT=\"/d\"\n")).unwrap();
        assert_eq!(d.dir, PathBuf::from("/r/var/backups/kentongan"));
    }

    #[test]
    fn settings_are_strict() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            root: dir.path().to_path_buf(),
        };
        assert_eq!(BackupSettings::load(&roots).unwrap().keep, 7);
        std::fs::create_dir_all(roots.path("/etc/kentongan")).unwrap();
        std::fs::write(roots.path(SETTINGS_FILE), "keep = 3\n").unwrap();
        assert_eq!(BackupSettings::load(&roots).unwrap().keep, 3);
        std::fs::write(roots.path(SETTINGS_FILE), "kept = 3\n").unwrap();
        assert!(BackupSettings::load(&roots).is_err());
        std::fs::write(roots.path(SETTINGS_FILE), "keep = 0\n").unwrap();
        assert!(matches!(
            BackupSettings::load(&roots),
            Err(ScheduleError::KeepZero { .. })
        ));
    }
}
