//! Writing an archive: the database snapshot first (SQLite's online backup API), then the
//! manifest of every file with its hash, then the members in manifest order.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    hex, Manifest, Member, Roots, DATABASE_MEMBER, FORMAT, FORMAT_VERSION, MANIFEST_NAME,
    SECRETS_NOTE, TREES,
};

/// What the caller knows that the library must not look up itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub hostname: String,
    /// Unix seconds.
    pub at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("could not read {path}: {source}; check it exists and is readable (run as root)")]
    Read { path: PathBuf, source: io::Error },
    #[error("could not copy the database {path}: {source}; check pbx.toml `[storage] database`")]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path} changed while it was archived; run the backup again")]
    Changed { path: PathBuf },
    #[error("{path} is a symlink or special file; only regular files are backed up, move it away")]
    NotRegular { path: PathBuf },
    #[error("could not write the archive {path}: {source}; check free space and permissions")]
    Write { path: PathBuf, source: io::Error },
}

/// One file to archive: where it is read from and its manifest entry.
struct Source {
    from: PathBuf,
    member: Member,
}

/// Writes an archive of everything under `roots` to `out` (any writer; the caller makes it
/// atomic), using `scratch` (a directory) for the database snapshot. Returns the manifest.
pub fn create(
    roots: &Roots,
    created: &Created,
    scratch: &Path,
    out: impl Write,
    out_name: &Path,
) -> Result<Manifest, CreateError> {
    let database_path = roots.database_path().map_err(|source| CreateError::Read {
        path: roots.path(super::CONFIG_DIR).join("pbx.toml"),
        source,
    })?;
    let live_db = roots.path(&database_path);
    let snapshot = scratch.join("pbx.db.snapshot");
    let schema_version = snapshot_database(&live_db, &snapshot)?;

    let mut sources = vec![Source {
        member: hash_file(&snapshot, DATABASE_MEMBER.to_owned(), 0o600)?,
        from: snapshot.clone(),
    }];
    for tree in TREES {
        let dir = roots.path(tree.path);
        let mut files = Vec::new();
        collect(&dir, &dir, &mut files)?;
        files.sort();
        for rel in files {
            let from = dir.join(&rel);
            let meta = std::fs::symlink_metadata(&from).map_err(|source| CreateError::Read {
                path: from.clone(),
                source,
            })?;
            let name = format!("{}/{}", tree.prefix, rel.to_string_lossy());
            let member = hash_file(&from, name, meta.permissions().mode() & 0o7777)?;
            sources.push(Source { from, member });
        }
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        kentongan_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: created.hostname.clone(),
        created: created.at,
        schema_version,
        database_path,
        secrets: SECRETS_NOTE.to_owned(),
        members: sources.iter().map(|s| s.member.clone()).collect(),
    };
    let write_err = |source| CreateError::Write {
        path: out_name.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| write_err(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let mut encoder = zstd::Encoder::new(out, 3).map_err(write_err)?;
    // Members carry their sha256 in the manifest, but the tar's end marker and padding do not:
    // the frame's own checksum covers every byte, so a flipped one anywhere is refused.
    encoder.include_checksum(true).map_err(write_err)?;
    let mut tar = tar::Builder::new(encoder);
    append(
        &mut tar,
        MANIFEST_NAME,
        0o644,
        created.at,
        &json[..],
        json.len() as u64,
    )
    .map_err(write_err)?;
    for s in &sources {
        let file = File::open(&s.from).map_err(|source| CreateError::Read {
            path: s.from.clone(),
            source,
        })?;
        let mut reader = HashingReader::new(file.take(s.member.size));
        append(
            &mut tar,
            &s.member.path,
            s.member.mode,
            created.at,
            &mut reader,
            s.member.size,
        )
        .map_err(write_err)?;
        if reader.count != s.member.size || hex(&reader.hasher.finalize()) != s.member.sha256 {
            return Err(CreateError::Changed {
                path: s.from.clone(),
            });
        }
    }
    let encoder = tar.into_inner().map_err(write_err)?;
    let mut out = encoder.finish().map_err(write_err)?;
    out.flush().map_err(write_err)?;
    let _ = std::fs::remove_file(&snapshot);
    Ok(manifest)
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    name: &str,
    mode: u32,
    mtime: i64,
    data: impl Read,
    size: u64,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(u64::try_from(mtime).unwrap_or(0));
    tar.append_data(&mut header, name, data)
}

/// Copies the live WAL-mode database page by page with SQLite's backup API: the copy is one
/// consistent snapshot even while the daemon commits. Returns its `user_version`.
fn snapshot_database(live: &Path, snapshot: &Path) -> Result<i64, CreateError> {
    let err = |source| CreateError::Database {
        path: live.to_path_buf(),
        source,
    };
    if !live.exists() {
        return Err(CreateError::Read {
            path: live.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "no database"),
        });
    }
    let _ = std::fs::remove_file(snapshot);
    let src = rusqlite::Connection::open_with_flags(
        live,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    src.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    let mut dst = rusqlite::Connection::open(snapshot).map_err(err)?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(err)?;
        // All pages in one step: a step holds a read transaction, so the copy is of one
        // snapshot; stepping in pieces would restart whenever the daemon writes.
        let mut waits = 0;
        loop {
            match backup.step(-1).map_err(err)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                // Busy or locked: another connection holds a lock SQLite will not wait on
                // inside a backup step; retry for up to 5 s like the store's busy timeout.
                _ if waits < 100 => {
                    waits += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    return Err(err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the database stayed locked for 5 s".into()),
                    )))
                }
            }
        }
    }
    // The copy is a plain rollback-journal file: it restores without a -wal beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(err)?;
    let version: i64 = dst
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    drop(dst);
    std::fs::set_permissions(snapshot, std::fs::Permissions::from_mode(0o600)).map_err(
        |source| CreateError::Write {
            path: snapshot.to_path_buf(),
            source,
        },
    )?;
    Ok(version)
}

/// Regular files under `dir`, relative to `base`; a missing tree is empty (a fresh appliance
/// has no recordings).
fn collect(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CreateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CreateError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| CreateError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|source| CreateError::Read {
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            collect(base, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
        } else {
            return Err(CreateError::NotRegular { path });
        }
    }
    Ok(())
}

fn hash_file(path: &Path, name: String, mode: u32) -> Result<Member, CreateError> {
    let file = File::open(path).map_err(|source| CreateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = HashingReader::new(file);
    io::copy(&mut reader, &mut io::sink()).map_err(|source| CreateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Member {
        path: name,
        size: reader.count,
        sha256: hex(&reader.hasher.finalize()),
        mode,
    })
}

/// Counts and hashes what passes through.
pub(super) struct HashingReader<R> {
    inner: R,
    pub(super) hasher: Sha256,
    pub(super) count: u64,
    /// A read from `inner` failed (a cut-off archive), as opposed to what the data was
    /// written to.
    pub(super) read_failed: bool,
}

impl<R> HashingReader<R> {
    pub(super) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            read_failed: false,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.read_failed = true)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
