//! The real `kentongan-setup` binary backs up a temporary appliance root whose database was
//! made by `kentongan_pbx::store::Store`, the root is wiped, and `restore --root` brings the
//! user's HA1 and the CDR back; a corrupted copy of the archive is refused first.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use kentongan_pbx::store::{Cdr, Extension, Store, Write};

fn setup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kentongan-setup"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kentongan-setup failed:\n{err}");
    err
}

fn ha1(db: &Path) -> Option<String> {
    Store::open(db)
        .unwrap()
        .ha1("100", "kantor.local")
        .unwrap()
        .and_then(|h| h.sha256)
}

#[test]
fn backup_wipe_restore_brings_back_users_and_cdrs() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/kentongan/tls")).unwrap();
    std::fs::write(r.join("etc/hostname"), "pbx-kantor\n").unwrap();
    std::fs::write(
        r.join("etc/kentongan/pbx.toml"),
        "[storage]\ndatabase = \"/var/lib/kentongan/pbx.db\"\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/kentongan/tls/key.pem"), "PRIVATE").unwrap();
    std::fs::create_dir_all(r.join("var/lib/kentongan/recordings")).unwrap();
    std::fs::write(r.join("var/lib/kentongan/recordings/c1.wav"), [1u8; 500]).unwrap();
    let db = r.join("var/lib/kentongan/pbx.db");
    {
        let mut store = Store::open(&db).unwrap();
        store
            .add_user(
                &Extension("100".into()),
                "Ana",
                "kantor.local",
                "Tg7!pz0Qmw",
            )
            .unwrap();
        store
            .apply(
                &[Write::Cdr(Cdr {
                    call_id: "c1".into(),
                    caller: "100".into(),
                    caller_name: String::new(),
                    callee: "101".into(),
                    start_ms: 1000,
                    answer_ms: Some(2000),
                    end_ms: 5000,
                    duration_s: 3.0,
                    disposition: "answered".into(),
                    outbound: None,
                    transfer: None,
                })],
                5000,
            )
            .unwrap();
    }
    let before = ha1(&db).unwrap();

    let archive = work.path().join("b.tar.zst");
    let a = archive.to_str().unwrap();
    let rs = r.to_str().unwrap();
    let said = ok(&setup(&["backup", "--out", a, "--root", rs]));
    assert!(said.contains("TLS private key"), "{said}");
    let said = ok(&setup(&["restore", "--check", a]));
    assert!(said.contains("valid backup of pbx-kantor"), "{said}");

    // A flipped byte anywhere (in a member, the tar's end marker and padding, the frame's
    // checksum) must be refused before anything is touched.
    let good = std::fs::read(&archive).unwrap();
    let len = good.len();
    for at in [len / 3, len / 2, len - 100, len - 30, len - 10, len - 2] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x55;
        let bad = work.path().join("bad.tar.zst");
        std::fs::write(&bad, bytes).unwrap();
        let out = setup(&["restore", bad.to_str().unwrap(), "--root", rs]);
        assert!(
            !out.status.success(),
            "a flipped byte at {at} of {len} was restored"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("nothing was changed"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    std::fs::remove_dir_all(r.join("etc/kentongan")).unwrap();
    std::fs::remove_dir_all(r.join("var/lib/kentongan")).unwrap();
    let said = ok(&setup(&["restore", a, "--root", rs]));
    assert!(said.contains("Restored"), "{said}");

    assert_eq!(ha1(&db), Some(before));
    let cdrs = Store::open(&db).unwrap().cdrs().unwrap();
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].call_id, "c1");
    assert_eq!(
        std::fs::read(r.join("etc/kentongan/tls/key.pem")).unwrap(),
        b"PRIVATE"
    );
    assert_eq!(
        std::fs::read(r.join("var/lib/kentongan/recordings/c1.wav")).unwrap(),
        [1u8; 500]
    );
}
