//! Restoring an archive: check every byte first (a pass that writes nothing), stage the files
//! beside their destinations (same file system, so renames are atomic), stop the PBX, swap
//! (`old → .previous`, `staged → old`), start it, and swap back if it does not come up.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::archive::HashingReader;
use super::{
    hex, member_target, Manifest, Member, MemberTarget, PathProblem, Roots, FORMAT, FORMAT_VERSION,
    MANIFEST_NAME, SCHEMA_VERSION, TREES,
};
use crate::install::{Cmd, CmdError, Runner};
use sha2::Digest;

/// The unit a restore stops and starts.
pub const PBX_UNIT: &str = "kentongan-pbx";
/// The PBX's systemd StateDirectory; the only place its database can be.
const STATE_DIR: &str = "/var/lib/kentongan/";
/// A manifest larger than this is not ours (ours list a few thousand files at most).
const MANIFEST_LIMIT: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("could not read the archive {path}: {source}; it is truncated or not zstd-compressed, nothing was changed")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("not a Kentongan backup: {why}; nothing was changed")]
    Foreign { why: String },
    #[error("the archive's manifest is invalid: {0}; nothing was changed")]
    Manifest(String),
    #[error("the archive has format version {found}; this build reads version {FORMAT_VERSION}: restore with a newer kentongan-setup")]
    FormatVersion { found: u32 },
    #[error("the backup's database schema is version {found}, newer than this build's {SCHEMA_VERSION} (it comes from a newer Kentongan): upgrade this appliance first, then restore; nothing was changed")]
    Downgrade { found: i64 },
    #[error("member {path}: {why}; the archive is corrupt, nothing was changed")]
    Corrupt { path: String, why: String },
    #[error("member path refused: {0}; nothing was changed")]
    Path(#[from] PathProblem),
    #[error("could not stage {path}: {source}; nothing was changed (check free space)")]
    Stage { path: PathBuf, source: io::Error },
    #[error("could not stop the PBX: {0}; nothing was changed")]
    Stop(CmdError),
    #[error("could not swap {path} into place: {source}; the previous files were put back")]
    Swap { path: PathBuf, source: io::Error },
    #[error("the PBX did not come up after the restore ({cause}); the previous files were put back{}", restart_note(.restarted))]
    DidNotStart { cause: CmdError, restarted: bool },
}

fn restart_note(restarted: &bool) -> &'static str {
    if *restarted {
        " and the PBX started on them"
    } else {
        ", but the PBX did not start on them either: see `journalctl -u kentongan-pbx`"
    }
}

/// An archive that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub manifest: Manifest,
}

/// Reads the whole archive without writing anything: manifest, versions, every member's
/// path, type, size and sha256, and that nothing is missing or extra.
pub fn validate_archive(archive: &Path) -> Result<Checked, RestoreError> {
    let manifest = walk(archive, |_, _, data| {
        io::copy(data, &mut io::sink()).map(drop)
    })?;
    Ok(Checked { manifest })
}

/// Restores `archive` into `roots`, stopping and starting the PBX through `runner`.
pub fn restore(
    roots: &Roots,
    archive: &Path,
    runner: &mut dyn Runner,
) -> Result<Manifest, RestoreError> {
    let checked = validate_archive(archive)?;
    let areas = areas(roots, &checked.manifest);
    let staged = stage(archive, &checked.manifest, &areas);
    if let Err(e) = staged {
        discard(&areas);
        return Err(e);
    }
    if let Err(e) = runner.run(&systemctl("stop")) {
        discard(&areas);
        return Err(RestoreError::Stop(e));
    }
    let mut swapped: Vec<&Area> = Vec::new();
    for area in &areas {
        if let Err(source) = area.swap_in() {
            for done in swapped.iter().rev() {
                Area::swap_back(done);
            }
            discard(&areas);
            let _ = runner.run(&systemctl("start"));
            return Err(RestoreError::Swap {
                path: area.live.clone(),
                source,
            });
        }
        swapped.push(area);
    }
    let up = runner
        .run(&systemctl("start"))
        .and_then(|_| runner.run(&systemctl("is-active")));
    if let Err(cause) = up {
        let _ = runner.run(&systemctl("stop"));
        for done in swapped.iter().rev() {
            Area::swap_back(done);
        }
        let restarted = runner
            .run(&systemctl("start"))
            .and_then(|_| runner.run(&systemctl("is-active")))
            .is_ok();
        return Err(RestoreError::DidNotStart { cause, restarted });
    }
    Ok(checked.manifest)
}

fn systemctl(verb: &str) -> Cmd {
    Cmd::new("systemctl", &[verb, PBX_UNIT])
}

/// One destination swapped as a unit: a directory tree or the database file.
#[derive(Debug)]
struct Area {
    live: PathBuf,
    staged: PathBuf,
    previous: PathBuf,
    /// The database's `-wal`/`-shm` companions travel with it.
    companions: bool,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn areas(roots: &Roots, manifest: &Manifest) -> Vec<Area> {
    let mut out: Vec<Area> = TREES
        .iter()
        .map(|t| {
            let live = roots.path(t.path);
            Area {
                staged: sibling(&live, ".restore-new"),
                previous: sibling(&live, ".previous"),
                live,
                companions: false,
            }
        })
        .collect();
    let live = roots.path(&manifest.database_path);
    out.push(Area {
        staged: sibling(&live, ".restore-new"),
        previous: sibling(&live, ".previous"),
        live,
        companions: true,
    });
    out
}

fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Area {
    fn swap_in(&self) -> io::Result<()> {
        // The PBX runs as a systemd DynamicUser owning /var/lib/kentongan: restored files take
        // the owner of what they replace (or of the parent), or the daemon cannot open them.
        let owner = std::fs::metadata(&self.live)
            .or_else(|_| std::fs::metadata(self.live.parent().unwrap_or(Path::new("/"))))?;
        chown_tree(&self.staged, owner.uid(), owner.gid())?;
        remove_any(&self.previous)?;
        if self.companions {
            for c in ["-wal", "-shm"] {
                remove_any(&sibling(&self.previous, c))?;
                rename_if_exists(&sibling(&self.live, c), &sibling(&self.previous, c))?;
            }
        }
        rename_if_exists(&self.live, &self.previous)?;
        std::fs::rename(&self.staged, &self.live)
    }

    /// Best effort by nature: it runs after something already failed.
    fn swap_back(&self) {
        let _ = remove_any(&self.live);
        let _ = rename_if_exists(&self.previous, &self.live);
        if self.companions {
            for c in ["-wal", "-shm"] {
                let _ = rename_if_exists(&sibling(&self.previous, c), &sibling(&self.live, c));
            }
        }
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn discard(areas: &[Area]) {
    for a in areas {
        let _ = remove_any(&a.staged);
    }
}

/// Second pass: the same checks, writing each member into its area's staging copy.
fn stage(archive: &Path, manifest: &Manifest, areas: &[Area]) -> Result<(), RestoreError> {
    let stage_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RestoreError::Stage { path, source }
    };
    for (i, area) in areas.iter().enumerate() {
        remove_any(&area.staged).map_err(stage_err(&area.staged))?;
        if i < TREES.len() {
            std::fs::create_dir_all(&area.staged).map_err(stage_err(&area.staged))?;
        } else if let Some(parent) = area.staged.parent() {
            std::fs::create_dir_all(parent).map_err(stage_err(parent))?;
        }
    }
    let again = walk(archive, |member, target, data| {
        let dest = match target {
            MemberTarget::Database => areas[TREES.len()].staged.clone(),
            MemberTarget::InTree { tree, relative } => areas[*tree].staged.join(relative),
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(member.mode & 0o777)
            .open(&dest)?;
        io::copy(data, &mut file)?;
        file.sync_all()
    })?;
    if &again != manifest {
        return Err(RestoreError::Foreign {
            why: "the archive changed between the check and the restore".into(),
        });
    }
    Ok(())
}

/// Reads the archive once, checking everything, and hands each member's data to `each`.
fn walk(
    archive: &Path,
    mut each: impl FnMut(&Member, &MemberTarget, &mut dyn Read) -> io::Result<()>,
) -> Result<Manifest, RestoreError> {
    let unreadable = |source| RestoreError::Unreadable {
        path: archive.to_path_buf(),
        source,
    };
    let file = File::open(archive).map_err(unreadable)?;
    let decoder = zstd::Decoder::new(file).map_err(unreadable)?;
    let mut tar = tar::Archive::new(decoder);
    let mut entries = tar.entries().map_err(unreadable)?;

    let first = match entries.next() {
        Some(e) => e.map_err(unreadable)?,
        None => {
            return Err(RestoreError::Foreign {
                why: "the archive is empty".into(),
            })
        }
    };
    let first_name = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if first_name != MANIFEST_NAME {
        return Err(RestoreError::Foreign {
            why: format!("its first member is `{first_name}`, not {MANIFEST_NAME}"),
        });
    }
    let mut text = Vec::new();
    first
        .take(MANIFEST_LIMIT)
        .read_to_end(&mut text)
        .map_err(unreadable)?;
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| RestoreError::Manifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(RestoreError::Foreign {
            why: format!("its manifest's format is `{}`", manifest.format),
        });
    }
    if manifest.format_version != FORMAT_VERSION {
        return Err(RestoreError::FormatVersion {
            found: manifest.format_version,
        });
    }
    if manifest.schema_version > SCHEMA_VERSION {
        return Err(RestoreError::Downgrade {
            found: manifest.schema_version,
        });
    }
    // The daemon is sandboxed to its StateDirectory, so a database anywhere else is not one
    // it could have written: refusing it keeps an archive from overwriting system files.
    let db = &manifest.database_path;
    if !db.starts_with(STATE_DIR) || db.contains("/../") || db.ends_with("/..") {
        return Err(RestoreError::Manifest(format!(
            "database_path `{db}` is not under {STATE_DIR}"
        )));
    }
    let mut expected = manifest.members.iter();
    for entry in entries {
        let entry = entry.map_err(unreadable)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let target = member_target(&name)?;
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return Err(RestoreError::Corrupt {
                path: name,
                why: format!("it is a {kind:?} entry; backups hold only regular files"),
            });
        }
        let member = match expected.next() {
            Some(m) if m.path == name => m,
            Some(m) => {
                return Err(RestoreError::Corrupt {
                    path: name,
                    why: format!("the manifest lists `{}` at this place", m.path),
                })
            }
            None => {
                return Err(RestoreError::Corrupt {
                    path: name,
                    why: "it is not in the manifest".into(),
                })
            }
        };
        let mut reader = HashingReader::new(entry);
        // A cut-off archive fails inside `each` too: that is the archive's fault, not the
        // staging area's.
        each(member, &target, &mut reader).map_err(|source| {
            if reader.read_failed {
                unreadable(source)
            } else {
                RestoreError::Stage {
                    path: PathBuf::from(&name),
                    source,
                }
            }
        })?;
        io::copy(&mut reader, &mut io::sink()).map_err(unreadable)?;
        let sha = hex(&reader.hasher.finalize());
        if reader.count != member.size || sha != member.sha256 {
            return Err(RestoreError::Corrupt {
                path: name,
                why: format!(
                    "{} bytes with sha256 {sha}, the manifest says {} bytes with sha256 {}",
                    reader.count, member.size, member.sha256
                ),
            });
        }
    }
    if let Some(missing) = expected.next() {
        return Err(RestoreError::Corrupt {
            path: missing.path.clone(),
            why: "it is in the manifest but not in the archive (truncated?)".into(),
        });
    }
    // The tar end marker may come before the end of the zstd frame; read to the end so a
    // cut-off frame is noticed.
    let mut rest = tar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(unreadable)?;
    Ok(manifest)
}
