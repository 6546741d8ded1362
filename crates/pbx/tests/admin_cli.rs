//! `kentongan-pbx admin …`: accounts with argon2id hashes, the password from standard input
//! only, weak passwords refused with a reason, the password never printed or stored.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Box_ {
    dir: PathBuf,
    config: PathBuf,
}

impl Box_ {
    fn new(tag: &str) -> Box_ {
        let dir =
            std::env::temp_dir().join(format!("kentongan-admin-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("pbx.toml");
        std::fs::write(
            &config,
            format!(
                "[sip]\ndomain = \"pbx.local\"\n[storage]\ndatabase = \"{}\"\n",
                dir.join("pbx.db").display()
            ),
        )
        .unwrap();
        Box_ { dir, config }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kentongan-pbx"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn db_contains(&self, needle: &[u8]) -> bool {
        ["pbx.db", "pbx.db-wal"].iter().any(|f| {
            std::fs::read(Path::new(&self.dir).join(f))
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
        })
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn admin_add_list_passwd_remove() {
    let b = Box_::new("flow");
    let pw = "kopi tubruk di pagi hari\n";
    let add = b.run(&["admin", "add", "admin", "--password-stdin"], Some(pw));
    assert!(add.status.success(), "{}", text(&add));
    assert!(!text(&add).contains("kopi"));
    let op = b.run(
        &[
            "admin",
            "add",
            "siti",
            "--password-stdin",
            "--role",
            "operator",
        ],
        Some("nasi goreng pedas sekali\n"),
    );
    assert!(op.status.success(), "{}", text(&op));
    let dup = b.run(&["admin", "add", "admin", "--password-stdin"], Some(pw));
    assert_eq!(dup.status.code(), Some(1));
    assert!(text(&dup).contains("already exists"), "{}", text(&dup));

    let list = b.run(&["admin", "list"], None);
    let out = String::from_utf8_lossy(&list.stdout);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(&rows[0][..2], ["admin", "admin"]);
    assert_eq!(&rows[1][..2], ["siti", "operator"]);
    let json = b.run(&["admin", "list", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[1]["role"], "operator");
    assert!(!String::from_utf8_lossy(&json.stdout).contains("argon2"));

    assert!(!b.db_contains(b"kopi tubruk"));
    assert!(b.db_contains(b"$argon2id$v=19$m=19456,t=2,p=1$"));

    let passwd = b.run(
        &["admin", "passwd", "siti", "--password-stdin"],
        Some("teh manis hangat sore\n"),
    );
    assert!(passwd.status.success(), "{}", text(&passwd));
    let ghost = b.run(
        &["admin", "passwd", "nobody", "--password-stdin"],
        Some("teh manis hangat sore\n"),
    );
    assert_eq!(ghost.status.code(), Some(1));
    assert!(text(&ghost).contains("does not exist"));

    let last = b.run(&["admin", "remove", "admin"], None);
    assert_eq!(last.status.code(), Some(1));
    assert!(text(&last).contains("last one"), "{}", text(&last));
    let rm = b.run(&["admin", "remove", "siti"], None);
    assert!(rm.status.success(), "{}", text(&rm));
    let list = b.run(&["admin", "list"], None);
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1);
    let _ = std::fs::remove_dir_all(&b.dir);
}

#[test]
fn weak_empty_and_injected_input_is_refused() {
    let b = Box_::new("weak");
    for (pw, why) in [
        ("\n", "empty"),
        ("", "empty"),
        ("short1\n", "too short"),
        ("password123456\n", "too easy"),
        ("adminadminadmin\n", "too easy"),
    ] {
        let o = b.run(&["admin", "add", "admin", "--password-stdin"], Some(pw));
        assert_eq!(o.status.code(), Some(1), "{pw:?}");
        let t = text(&o);
        assert!(t.contains(why), "{pw:?}: {t}");
        assert!(t.contains("hint: "), "{t}");
        if pw.len() > 2 {
            assert!(!t.contains(pw.trim()), "the password is echoed: {t}");
        }
    }
    let inj = b.run(
        &[
            "admin",
            "add",
            "x'); DROP TABLE admins;--",
            "--password-stdin",
        ],
        Some("kopi tubruk di pagi hari\n"),
    );
    assert_eq!(inj.status.code(), Some(1));
    let role = b.run(
        &["admin", "add", "budi", "--password-stdin", "--role", "root"],
        Some("kopi tubruk di pagi hari\n"),
    );
    assert_eq!(role.status.code(), Some(1));
    assert!(text(&role).contains("admin or operator"));
    let list = b.run(&["admin", "list"], None);
    assert!(list.status.success());
    assert!(list.stdout.is_empty(), "no account was created");
    let _ = std::fs::remove_dir_all(&b.dir);
}
