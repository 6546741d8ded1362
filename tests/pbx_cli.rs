//! The operator commands of kentongan-pbx: check-config, user add/list/remove (password from
//! standard input, never stored in plaintext), cdr list, calls. No network peers needed.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use harness::*;

#[test]
fn check_config_reports_the_key_and_a_hint() {
    let dir = std::env::temp_dir().join(format!("kentongan-pbx-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[sip]\ndomain = \"pbx.local\"\n[rtp]\nports = \"20000-10000\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(pbx_binary())
        .arg("--config")
        .arg(&bad)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("`rtp.ports`"), "{err}");
    assert!(err.contains("\nhint: "), "{err}");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[sip]\ndomain = \"pbx.local\"\n").unwrap();
    let out = std::process::Command::new(pbx_binary())
        .arg("--config")
        .arg(&good)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn users_cdr_and_calls() {
    let pbx = Pbx::start(ports(27060));
    pbx.add_user("201", "correct horse battery staple");
    let dup = pbx.cli(&["user", "add", "201", "--password-stdin"], Some("x\n"));
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let list = pbx.cli(&["user", "list"], None);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "201\tPhone 201\n");
    // Only HA1 values are stored: the password is nowhere in the database files.
    for f in ["pbx.db", "pbx.db-wal"] {
        let bytes = std::fs::read(pbx.dir.join(f)).unwrap_or_default();
        assert!(!bytes.windows(11).any(|w| w == b"horse batte"), "{f}");
    }
    let calls = pbx.cli(&["calls", "--json"], None);
    assert!(calls.status.success());
    assert_eq!(String::from_utf8_lossy(&calls.stdout).trim(), "[]");
    let cdr = pbx.cli(&["cdr", "list", "--json"], None);
    assert_eq!(String::from_utf8_lossy(&cdr.stdout).trim(), "[]");
    let rm = pbx.cli(&["user", "remove", "201"], None);
    assert!(rm.status.success());
    let rm = pbx.cli(&["user", "remove", "201"], None);
    assert_eq!(rm.status.code(), Some(1));
}
