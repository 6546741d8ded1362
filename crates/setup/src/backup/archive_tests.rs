//! Archive round trips and every way a restore must refuse, on temporary roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kentongan_pbx::store::{Cdr, Extension, Store, Write};

use super::*;
use crate::install::{Cmd, CmdError, Runner};

/// Records commands; fails the next `fail_times` calls whose verb is `fail`.
#[derive(Default)]
struct Recorder {
    ran: Vec<String>,
    fail: Option<&'static str>,
    fail_times: usize,
}

impl Runner for Recorder {
    fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError> {
        self.ran.push(cmd.display());
        let verb = cmd.args.first().map(String::as_str);
        if self.fail_times > 0 && verb == self.fail {
            self.fail_times -= 1;
            return Err(CmdError {
                command: cmd.display(),
                detail: "inactive".into(),
            });
        }
        Ok(String::new())
    }
}

fn cdr(n: i64) -> Cdr {
    Cdr::refused(
        format!("call-{n}"),
        "100".into(),
        "101".into(),
        n,
        "no-answer",
    )
}

/// An appliance root with a config, a TLS key, a database with a user and a CDR, and a
/// voicemail message.
fn appliance() -> (tempfile::TempDir, Roots) {
    let dir = tempfile::tempdir().unwrap();
    let roots = Roots {
        root: dir.path().to_path_buf(),
    };
    let etc = roots.path(CONFIG_DIR);
    std::fs::create_dir_all(etc.join("tls")).unwrap();
    std::fs::write(
        etc.join("pbx.toml"),
        "[storage]\ndatabase = \"/var/lib/kentongan/pbx.db\"\n",
    )
    .unwrap();
    std::fs::write(etc.join("tls/key.pem"), "KEY").unwrap();
    let vm = roots.path("/var/lib/kentongan/voicemail/100");
    std::fs::create_dir_all(&vm).unwrap();
    std::fs::write(vm.join("msg1.wav"), vec![7u8; 3000]).unwrap();
    let mut store = Store::open(&roots.path(DEFAULT_DATABASE)).unwrap();
    store
        .add_user(&Extension("100".into()), "Ana", "pbx.local", "secret-1")
        .unwrap();
    store.apply(&[Write::Cdr(cdr(1))], 1).unwrap();
    (dir, roots)
}

fn created() -> Created {
    Created {
        hostname: "pbx".into(),
        at: 1_700_000_000,
    }
}

fn backup(roots: &Roots, out: &Path) -> Manifest {
    let scratch = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(out).unwrap();
    create(roots, &created(), scratch.path(), &file, out).unwrap()
}

/// Every file under the root with its bytes (database companions included).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

/// A hand-made tar.zst: (name, entry type, bytes); names are written raw so that the tests
/// can make the archives the tar crate itself refuses to write.
fn raw_archive(path: &Path, entries: &[(&str, tar::EntryType, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let enc = zstd::Encoder::new(file, 1).unwrap();
    let mut b = tar::Builder::new(enc);
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

fn manifest_with(members: Vec<Member>, schema: i64) -> Vec<u8> {
    serde_json::to_vec(&Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kentongan_version: "0".into(),
        hostname: "h".into(),
        created: 0,
        schema_version: schema,
        database_path: DEFAULT_DATABASE.into(),
        secrets: SECRETS_NOTE.into(),
        members,
    })
    .unwrap()
}

fn member(path: &str, data: &[u8]) -> Member {
    use sha2::Digest;
    Member {
        path: path.into(),
        sha256: hex(&sha2::Sha256::digest(data)),
        size: data.len() as u64,
        mode: 0o644,
    }
}

#[test]
fn manifest_lists_every_member_and_says_the_key_is_inside() {
    let (dir, roots) = appliance();
    let out = dir.path().join("b.tar.zst");
    let m = backup(&roots, &out);
    let paths: Vec<_> = m.members.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            DATABASE_MEMBER,
            "config/pbx.toml",
            "config/tls/key.pem",
            "voicemail/100/msg1.wav"
        ]
    );
    assert_eq!(m.members[3].size, 3000);
    assert_eq!(m.members[0].mode, 0o600);
    assert_eq!(m.created, 1_700_000_000);
    assert!(m.secrets.contains("TLS private key"));
    assert_eq!(validate_archive(&out).unwrap().manifest, m);
}

#[test]
fn restore_brings_everything_back_and_cycles_the_pbx() {
    let (dir, roots) = appliance();
    let out = dir.path().join("b.tar.zst");
    backup(&roots, &out);
    let db = roots.path(DEFAULT_DATABASE);
    Store::open(&db)
        .unwrap()
        .remove_user(&Extension("100".into()))
        .unwrap();
    std::fs::write(roots.path("/etc/kentongan/tls/key.pem"), "OTHER").unwrap();
    std::fs::remove_dir_all(roots.path("/var/lib/kentongan/voicemail")).unwrap();
    let mut r = Recorder::default();
    restore(&roots, &out, &mut r).unwrap();
    assert_eq!(
        r.ran,
        [
            "systemctl stop kentongan-pbx",
            "systemctl start kentongan-pbx",
            "systemctl is-active kentongan-pbx"
        ]
    );
    let store = Store::open(&db).unwrap();
    assert!(store.user_exists("100").unwrap());
    assert_eq!(store.cdrs().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(roots.path("/etc/kentongan/tls/key.pem")).unwrap(),
        b"KEY"
    );
    assert_eq!(
        std::fs::read(roots.path("/var/lib/kentongan/voicemail/100/msg1.wav")).unwrap(),
        vec![7u8; 3000]
    );
    assert_eq!(
        std::fs::read(roots.path("/etc/kentongan.previous/tls/key.pem")).unwrap(),
        b"OTHER"
    );
}

#[test]
fn a_truncated_archive_changes_nothing() {
    let (_dir, roots) = appliance();
    let archive_dir = tempfile::tempdir().unwrap();
    let out2 = archive_dir.path().join("b.tar.zst");
    backup(&roots, &out2);
    let full = std::fs::read(&out2).unwrap();
    let before = snapshot(&roots.root);
    // Cuts inside the manifest, inside every member and in the end marker: where a member
    // lies depends on how well it compresses, so cut at many places.
    let cuts = [0, 1, 10, full.len() - 20, full.len() - 1]
        .into_iter()
        .chain((1..32).map(|i| full.len() * i / 32));
    for cut in cuts {
        let t = archive_dir.path().join(format!("cut{cut}.tar.zst"));
        std::fs::write(&t, &full[..cut]).unwrap();
        let mut r = Recorder::default();
        let err = restore(&roots, &t, &mut r).unwrap_err();
        assert!(
            matches!(
                err,
                RestoreError::Unreadable { .. }
                    | RestoreError::Foreign { .. }
                    | RestoreError::Corrupt { .. }
            ),
            "cut at {cut}: {err}"
        );
        assert!(r.ran.is_empty(), "cut at {cut} ran {:?}", r.ran);
        assert_eq!(
            snapshot(&roots.root),
            before,
            "cut at {cut} changed the root"
        );
    }
}

#[test]
fn a_foreign_tar_is_refused_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("f.tar.zst");
    raw_archive(
        &a,
        &[("etc/passwd", tar::EntryType::Regular, b"root".to_vec())],
    );
    let err = validate_archive(&a).unwrap_err();
    assert!(
        err.to_string().contains("first member is `etc/passwd`"),
        "{err}"
    );
    let plain = dir.path().join("plain.tar");
    std::fs::write(&plain, vec![0u8; 1024]).unwrap();
    assert!(matches!(
        validate_archive(&plain),
        Err(RestoreError::Unreadable { .. })
    ));
    let other = br#"{"format":"other"}"#.to_vec();
    raw_archive(&a, &[(MANIFEST_NAME, tar::EntryType::Regular, other)]);
    assert!(matches!(
        validate_archive(&a),
        Err(RestoreError::Manifest(_))
    ));
}

#[test]
fn escaping_paths_and_special_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tar.zst");
    for (name, kind) in [
        ("config/../../etc/shadow", tar::EntryType::Regular),
        ("/etc/shadow", tar::EntryType::Regular),
        ("config/link", tar::EntryType::Symlink),
        ("config/dev", tar::EntryType::Char),
        ("config/dir", tar::EntryType::Directory),
    ] {
        let m = manifest_with(vec![member(name, b"")], 0);
        raw_archive(
            &a,
            &[
                (MANIFEST_NAME, tar::EntryType::Regular, m),
                (name, kind, Vec::new()),
            ],
        );
        let err = validate_archive(&a).unwrap_err();
        assert!(
            matches!(err, RestoreError::Path(_) | RestoreError::Corrupt { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_wrong_hash_size_or_missing_member_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tar.zst");
    let m = manifest_with(vec![member("config/pbx.toml", b"good")], 0);
    raw_archive(
        &a,
        &[
            (MANIFEST_NAME, tar::EntryType::Regular, m.clone()),
            ("config/pbx.toml", tar::EntryType::Regular, b"evil".to_vec()),
        ],
    );
    let err = validate_archive(&a).unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    raw_archive(&a, &[(MANIFEST_NAME, tar::EntryType::Regular, m)]);
    let err = validate_archive(&a).unwrap_err();
    assert!(err.to_string().contains("not in the archive"), "{err}");
    let m = manifest_with(vec![], 0);
    raw_archive(
        &a,
        &[
            (MANIFEST_NAME, tar::EntryType::Regular, m),
            ("config/extra", tar::EntryType::Regular, b"x".to_vec()),
        ],
    );
    let err = validate_archive(&a).unwrap_err();
    assert!(err.to_string().contains("not in the manifest"), "{err}");
}

#[test]
fn a_database_outside_the_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tar.zst");
    for bad in ["/etc/passwd", "/var/lib/kentongan/../../etc/shadow"] {
        let mut m: Manifest = serde_json::from_slice(&manifest_with(vec![], 0)).unwrap();
        m.database_path = bad.into();
        let m = serde_json::to_vec(&m).unwrap();
        raw_archive(&a, &[(MANIFEST_NAME, tar::EntryType::Regular, m)]);
        let err = validate_archive(&a).unwrap_err();
        assert!(matches!(err, RestoreError::Manifest(_)), "{bad}: {err}");
    }
}

#[test]
fn a_newer_schema_is_refused_as_a_downgrade() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.tar.zst");
    let m = manifest_with(vec![], SCHEMA_VERSION + 1);
    raw_archive(&a, &[(MANIFEST_NAME, tar::EntryType::Regular, m)]);
    let err = validate_archive(&a).unwrap_err();
    assert!(matches!(err, RestoreError::Downgrade { .. }));
    assert!(err.to_string().contains("upgrade this appliance first"));
}

#[test]
fn a_pbx_that_does_not_come_up_gets_the_previous_files_back() {
    let (dir, roots) = appliance();
    let out = dir.path().join("b.tar.zst");
    backup(&roots, &out);
    std::fs::write(roots.path("/etc/kentongan/tls/key.pem"), "NEWER").unwrap();
    Store::open(&roots.path(DEFAULT_DATABASE))
        .unwrap()
        .add_user(&Extension("101".into()), "Budi", "pbx.local", "pw")
        .unwrap();
    let before = snapshot(&roots.root);
    let mut r = Recorder {
        fail: Some("is-active"),
        fail_times: 1,
        ..Recorder::default()
    };
    let err = restore(&roots, &out, &mut r).unwrap_err();
    assert!(
        matches!(
            err,
            RestoreError::DidNotStart {
                restarted: true,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(snapshot(&roots.root), before);
    assert_eq!(
        r.ran,
        [
            "systemctl stop kentongan-pbx",
            "systemctl start kentongan-pbx",
            "systemctl is-active kentongan-pbx",
            "systemctl stop kentongan-pbx",
            "systemctl start kentongan-pbx",
            "systemctl is-active kentongan-pbx"
        ]
    );
}

#[test]
fn the_database_is_copied_consistently_while_the_daemon_writes() {
    let (dir, roots) = appliance();
    let db = roots.path(DEFAULT_DATABASE);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut store = Store::open(&db).unwrap();
            let mut n = 2;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.apply(&[Write::Cdr(cdr(n))], n).unwrap();
                n += 1;
            }
            n
        })
    };
    // Let the writer get going so the backups below overlap its commits.
    while Store::open(&db).unwrap().cdrs().unwrap().len() < 20 {
        std::thread::yield_now();
    }
    let mut outs = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("b{i}.tar.zst"));
        backup(&roots, &out);
        outs.push(out);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    for out in outs {
        let target = tempfile::tempdir().unwrap();
        let r2 = Roots {
            root: target.path().to_path_buf(),
        };
        restore(&r2, &out, &mut Recorder::default()).unwrap();
        let conn = rusqlite::Connection::open(r2.path(DEFAULT_DATABASE)).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let cdrs: i64 = conn
            .query_row("SELECT count(*) FROM cdr", [], |r| r.get(0))
            .unwrap();
        assert!(cdrs >= 20 && cdrs < written, "{cdrs} of {written}");
    }
}
