//! The stage cache (`~/.cache/kentongan` unless `--cache-dir`).
//!
//! Layout: `entries/<stage>/<key>/` holds one finished stage output plus `entry.json`;
//! `tmp/` holds outputs being built; `debs/` keeps downloaded Debian packages between builds.
//! An entry is built under `tmp/` and renamed into `entries/` only when complete, so a build
//! killed at any point leaves at worst a `tmp/` folder that nothing trusts and the next build
//! removes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::hash::StageKey;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cache folder {} is in use by another build", path.display())]
    Busy { path: PathBuf },
}

impl CacheError {
    pub fn hint(&self) -> &'static str {
        match self {
            CacheError::Io { .. } => "check the disk and permissions, or pass --cache-dir",
            CacheError::Busy { .. } => "wait for the other build, or pass a different --cache-dir",
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What `entry.json` records about a finished entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryMeta {
    pub stage: String,
    pub key: String,
    /// One line saying what went in, e.g. "bookworm, 12 packages".
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct EntryInfo {
    pub meta: EntryMeta,
    pub path: PathBuf,
    pub size: u64,
    pub last_used: SystemTime,
}

pub struct Cache {
    root: PathBuf,
    /// Held for the cache's lifetime: two builds must not share `tmp/` or a half-written entry.
    _lock: Option<File>,
}

impl Cache {
    /// The default cache folder: `$XDG_CACHE_HOME/kentongan` or `~/.cache/kentongan`.
    pub fn default_dir() -> PathBuf {
        if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("kentongan");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache/kentongan")
    }

    /// Opens the cache for a build: exclusive, and clears what an interrupted build left.
    pub fn open_exclusive(root: &Path) -> Result<Cache, CacheError> {
        for sub in ["entries", "tmp", "debs"] {
            std::fs::create_dir_all(root.join(sub)).map_err(io_err(root))?;
        }
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CacheError::Busy {
                    path: root.to_owned(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let cache = Cache {
            root: root.to_owned(),
            _lock: Some(lock),
        };
        cache.clear_tmp()?;
        Ok(cache)
    }

    /// Opens the cache for reading only (`cache ls`).
    pub fn open_shared(root: &Path) -> Cache {
        Cache {
            root: root.to_owned(),
            _lock: None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where apt keeps downloaded packages between builds. apt checks their hashes against the
    /// mirror's index, so a damaged file there is re-downloaded, never installed.
    pub fn debs_dir(&self) -> PathBuf {
        self.root.join("debs")
    }

    fn entry_dir(&self, stage: &str, key: &StageKey) -> PathBuf {
        self.root.join("entries").join(stage).join(key.as_str())
    }

    /// The finished entry for this stage and key, if there is one. Marks it as used.
    pub fn lookup(&self, stage: &str, key: &StageKey) -> Option<PathBuf> {
        let dir = self.entry_dir(stage, key);
        let meta_path = dir.join("entry.json");
        let meta: EntryMeta = serde_json::from_slice(&std::fs::read(&meta_path).ok()?).ok()?;
        if meta.stage != stage || meta.key != key.as_str() {
            return None;
        }
        if let Ok(f) = File::options().write(true).open(&meta_path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(dir)
    }

    /// Starts a new entry under `tmp/`. Dropping it without `commit` removes it.
    pub fn begin(&self, stage: &str, key: &StageKey) -> Result<PendingEntry, CacheError> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = self.root.join("tmp").join(format!(
            "{stage}-{}-{}-{nanos}",
            key.short(),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(PendingEntry {
            dir,
            final_dir: self.entry_dir(stage, key),
            meta: EntryMeta {
                stage: stage.to_owned(),
                key: key.to_string(),
                description: String::new(),
            },
            committed: false,
        })
    }

    /// Removes everything under `tmp/`, unmounting what an interrupted build left mounted there.
    fn clear_tmp(&self) -> Result<(), CacheError> {
        let tmp = self.root.join("tmp");
        let tmp_abs = std::fs::canonicalize(&tmp).map_err(io_err(&tmp))?;
        for mount in mounts_below(&tmp_abs) {
            let _ = std::process::Command::new("umount")
                .arg("--lazy")
                .arg(&mount)
                .status();
        }
        let entries = std::fs::read_dir(&tmp).map_err(io_err(&tmp))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = remove_tree(&path);
        }
        Ok(())
    }

    /// Every finished entry, newest use first.
    pub fn list(&self) -> Vec<EntryInfo> {
        let mut found = Vec::new();
        let Ok(stages) = std::fs::read_dir(self.root.join("entries")) else {
            return found;
        };
        for stage in stages.flatten() {
            let Ok(keys) = std::fs::read_dir(stage.path()) else {
                continue;
            };
            for key in keys.flatten() {
                let meta_path = key.path().join("entry.json");
                let Ok(bytes) = std::fs::read(&meta_path) else {
                    continue;
                };
                let Ok(meta) = serde_json::from_slice::<EntryMeta>(&bytes) else {
                    continue;
                };
                let last_used = meta_path
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                found.push(EntryInfo {
                    size: tree_size(&key.path()),
                    path: key.path(),
                    meta,
                    last_used,
                });
            }
        }
        found.sort_by_key(|e| std::cmp::Reverse(e.last_used));
        found
    }

    /// Removes entries not used within `keep` (all of them when `None`), and with `None` also
    /// the downloaded packages. Returns what was removed and the bytes freed.
    pub fn gc(&self, keep: Option<Duration>) -> Result<(Vec<EntryInfo>, u64), CacheError> {
        let now = SystemTime::now();
        let mut removed = Vec::new();
        let mut freed = 0;
        for entry in self.list() {
            let age = now.duration_since(entry.last_used).unwrap_or_default();
            if keep.is_some_and(|keep| age <= keep) {
                continue;
            }
            remove_tree(&entry.path).map_err(io_err(&entry.path))?;
            freed += entry.size;
            removed.push(entry);
        }
        if keep.is_none() {
            let debs = self.debs_dir();
            freed += tree_size(&debs);
            if debs.exists() {
                remove_tree(&debs).map_err(io_err(&debs))?;
            }
        }
        // Entries of stages that no longer hold any entry leave empty folders behind.
        if let Ok(stages) = std::fs::read_dir(self.root.join("entries")) {
            for stage in stages.flatten() {
                let _ = std::fs::remove_dir(stage.path());
            }
        }
        Ok((removed, freed))
    }
}

/// An entry being built. Only `commit` makes it visible to `lookup`.
pub struct PendingEntry {
    dir: PathBuf,
    final_dir: PathBuf,
    meta: EntryMeta,
    committed: bool,
}

impl PendingEntry {
    /// The folder to write the stage's output into.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Flushes the entry to disk, then renames it into place in one step.
    pub fn commit(mut self, description: String) -> Result<PathBuf, CacheError> {
        self.meta.description = description;
        let meta_path = self.dir.join("entry.json");
        let json = serde_json::to_vec_pretty(&self.meta).unwrap_or_default();
        std::fs::write(&meta_path, json).map_err(io_err(&meta_path))?;
        // The rename must not reach the disk before the data does.
        let status = std::process::Command::new("sync")
            .arg("--file-system")
            .arg(&self.dir)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            return Err(io_err(&self.dir)(std::io::Error::other("sync failed")));
        }
        if let Some(parent) = self.final_dir.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if self.final_dir.exists() {
            // A complete entry for the same key is the same content; drop the older one.
            remove_tree(&self.final_dir).map_err(io_err(&self.final_dir))?;
        }
        std::fs::rename(&self.dir, &self.final_dir).map_err(io_err(&self.final_dir))?;
        self.committed = true;
        Ok(self.final_dir.clone())
    }
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_tree(&self.dir);
        }
    }
}

/// Removes a folder tree even where a build left read-only folders in it.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            let status = std::process::Command::new("rm")
                .arg("-rf")
                .arg("--one-file-system")
                .arg(path)
                .status()?;
            if status.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "could not remove {}",
                    path.display()
                )))
            }
        }
    }
}

fn tree_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.path().symlink_metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Mount points at or below `dir`, deepest first, from /proc/self/mountinfo.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hash::KeyBuilder;

    fn key(s: &str) -> StageKey {
        let mut k = KeyBuilder::new("test");
        k.field("x", s);
        k.finish()
    }

    #[test]
    fn an_uncommitted_entry_is_never_found() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open_exclusive(dir.path()).unwrap();
        let k = key("a");
        let pending = cache.begin("s", &k).unwrap();
        std::fs::write(pending.path().join("out"), b"half").unwrap();
        assert!(cache.lookup("s", &k).is_none());
        drop(pending);
        assert!(cache.lookup("s", &k).is_none());
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_committed_entry_is_found_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open_exclusive(dir.path()).unwrap();
        let k = key("b");
        let pending = cache.begin("s", &k).unwrap();
        std::fs::write(pending.path().join("out"), b"whole").unwrap();
        let path = pending.commit("test".into()).unwrap();
        assert_eq!(cache.lookup("s", &k), Some(path.clone()));
        assert_eq!(std::fs::read(path.join("out")).unwrap(), b"whole");
        let listed = cache.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].meta.description, "test");
        let (removed, _) = cache.gc(None).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(cache.lookup("s", &k).is_none());
    }

    #[test]
    fn leftovers_of_a_killed_build_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp/base-rootfs-123-1-2/sub")).unwrap();
        // An entry folder without entry.json (as if written by hand or by an older builder).
        let k = key("c");
        std::fs::create_dir_all(dir.path().join("entries/s").join(k.as_str())).unwrap();
        let cache = Cache::open_exclusive(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(cache.lookup("s", &k).is_none());
    }

    #[test]
    fn a_second_build_cannot_share_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Cache::open_exclusive(dir.path()).unwrap();
        assert!(matches!(
            Cache::open_exclusive(dir.path()),
            Err(CacheError::Busy { .. })
        ));
    }
}
