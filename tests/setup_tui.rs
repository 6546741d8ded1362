//! The first-boot wizard driven through tmux (send-keys, capture-pane) on an 80×25 terminal,
//! installing into a scratch directory (`--target-root`) for a machine described by the golden
//! facts file. Checks the bilingual prompts, that the one validator's messages appear, the
//! erase confirmation, the generated passwords shown once, and what lands in the target.
//! Every screen is in one language: `untranslated` finds none of the other's words on it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kentongan_e2e::{project_root, run};
use kentongan_setup::tui::untranslated;
use kentongan_setup::validate::Language;

fn setup_bin() -> PathBuf {
    run(Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "kentongan-setup"])
        .current_dir(project_root()));
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("debug/kentongan-setup")
}

struct Tmux(String);

impl Tmux {
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend_from_slice(keys);
        run(Command::new("tmux").args(&args));
    }

    fn text(&self, text: &str) {
        run(Command::new("tmux").args(["send-keys", "-t", &self.0, "-l", text]));
    }

    fn screen(&self) -> String {
        run(Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]))
    }

    /// Waits until the screen shows `what`; panics with the screen otherwise.
    fn wait_for(&self, what: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("waited for {what:?}; the screen shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for `what`, then checks that the screen speaks only `lang`.
    fn page(&self, lang: Language, what: &str) -> String {
        self.wait_for(what);
        // A frame may be mid-draw when `what` first shows: read it again once it is whole.
        std::thread::sleep(Duration::from_millis(200));
        let s = self.screen();
        let words = untranslated(lang, &s);
        assert!(
            words.is_empty(),
            "{words:?} on the {} screen:\n{s}",
            lang.code()
        );
        s
    }
}

/// The wizard in an 80×25 tmux session, installing into `root` for the golden machine.
fn start(lang: &str, root: &Path) -> Tmux {
    if Command::new("tmux").arg("-V").output().is_err() {
        panic!("setup_tui needs tmux: apt-get install tmux (scripts/test installs it)");
    }
    let bin = setup_bin();
    let facts = project_root().join("crates/setup/tests/answers/facts.json");
    let session = Tmux(format!("kentongan-setup-tui-{lang}-{}", std::process::id()));
    let cmd = format!(
        "{} --facts {} --target-root {}; echo WIZARD-EXIT=$?; sleep 60",
        bin.display(),
        facts.display(),
        root.display()
    );
    run(Command::new("tmux").args([
        "new-session",
        "-d",
        "-s",
        &session.0,
        "-x",
        "80",
        "-y",
        "25",
        &cmd,
    ]));
    session
}

/// The extension passwords on the summary page.
fn passwords(screen: &str) -> Vec<(String, String)> {
    screen
        .lines()
        .filter_map(|l| {
            let l = l.trim_matches(|c: char| c == '│' || c.is_whitespace());
            let (n, p) = l.split_once(": ")?;
            (n.len() == 3 && n.starts_with("20")).then(|| (n.to_owned(), p.trim().to_owned()))
        })
        .collect()
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn wizard_in_english_installs_into_a_scratch_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let session = start("en", &root);
    let en = Language::En;

    // Page 1 is in Indonesian until English is chosen.
    session.page(Language::Id, "Bahasa: < id >");
    session.keys(&["Right"]);
    session.page(en, "Language: < en >");
    session.keys(&["Enter"]);
    session.page(en, "Network (2/7)");

    // Static address without a prefix: the validator's own message, and no progress.
    session.keys(&["Right", "Tab"]);
    session.text("10.0.2.15");
    session.keys(&["Tab"]);
    session.text("10.0.2.2");
    session.keys(&["Tab"]);
    session.text("10.0.2.3");
    session.keys(&["Tab", "Enter"]);
    let s = session.page(en, "needs a prefix length");
    assert!(s.contains("Network (2/7)"), "{s}");
    session.keys(&["Up", "Up", "Up"]); // from IPv6 back to the address
    session.text("/24");
    for _ in 0..4 {
        session.keys(&["Enter"]);
    }
    let s = session.page(en, "Host name and time zone (3/7)");
    assert!(s.contains("Asia/Jakarta"), "default time zone:\n{s}");
    for _ in 0..4 {
        session.keys(&["Enter"]);
    }
    session.page(en, "Administrator password (4/7)");
    session.text("short");
    session.page(en, "weak: is too short");
    session.keys(&["BSpace", "BSpace", "BSpace", "BSpace", "BSpace"]);
    session.text("Tg7!pz0Qmw-kantor");
    let s = session.page(en, "strong");
    assert!(!s.contains("Tg7!"), "the password is masked:\n{s}");
    session.keys(&["Tab"]);
    session.text("Tg7!pz0Qmw-kantor");
    session.keys(&["Enter"]);
    let s = session.page(en, "Extensions and trusted network (5/7)");
    assert!(
        s.contains("10.0.2.0/24"),
        "trusted LAN suggested from the address:\n{s}"
    );
    session.keys(&["Enter", "Enter"]);
    let s = session.page(en, "Target disk (6/7)");
    assert!(
        s.contains("WARNING: this ERASES everything on /dev/vda"),
        "{s}"
    );
    session.keys(&["Tab", "Enter"]);
    session.page(en, "Type YES to agree to erase /dev/vda");
    session.text("YES");
    session.keys(&["Enter"]);
    let s = session.page(en, "Summary (7/7)");
    assert!(s.contains("host:       pbx.kantor.local"), "{s}");
    let passwords = passwords(&s);
    assert_eq!(passwords.len(), 3, "{s}");

    session.keys(&["Enter"]);
    let s = session.page(en, "Installed.");
    assert!(s.contains("✓ Copying the system"), "{s}");
    session.keys(&["Enter"]);
    session.page(en, "WIZARD-EXIT=0");

    // What the wizard installed: the same files `apply` writes, no plaintext anywhere.
    assert_eq!(read(&root, "etc/hostname"), "pbx\n");
    assert!(
        read(&root, "etc/systemd/network/10-kentongan.network").contains("Address=10.0.2.15/24")
    );
    assert!(read(&root, "etc/kentongan/installed.toml").contains("language = \"en\""));
    assert!(root.join("var/lib/kentongan/setup-done").exists());
    assert!(read(&root, "etc/shadow").starts_with("root:$6$"));
    let db = std::fs::read(root.join("var/lib/kentongan/pbx.db")).unwrap();
    for (_, p) in &passwords {
        assert!(
            !db.windows(p.len()).any(|w| w == p.as_bytes()),
            "extension password in the database"
        );
    }
    assert!(!String::from_utf8_lossy(&db).contains("Tg7!pz0Qmw"));
}

#[test]
fn wizard_in_bahasa_indonesia_installs_into_a_scratch_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let session = start("id", &root);
    let id = Language::Id;

    session.page(id, "Bahasa: < id >");
    session.keys(&["Enter"]);
    session.page(id, "Jaringan (2/7)");

    // Static address without a prefix: the validator's message, in Indonesian.
    session.keys(&["Right", "Tab"]);
    session.text("10.0.2.15");
    session.keys(&["Tab"]);
    session.text("10.0.2.2");
    session.keys(&["Tab"]);
    session.text("10.0.2.3");
    session.keys(&["Tab", "Enter"]);
    let s = session.page(
        id,
        "`network.address` harus memiliki panjang prefiks, contoh \"10.0.2.15/24\"",
    );
    assert!(s.contains("Jaringan (2/7)"), "{s}");
    session.keys(&["Up", "Up", "Up"]);
    session.text("/24");
    for _ in 0..4 {
        session.keys(&["Enter"]);
    }
    let s = session.page(id, "Nama server dan zona waktu (3/7)");
    assert!(s.contains("Zona waktu: Asia/Jakarta"), "{s}");
    for _ in 0..4 {
        session.keys(&["Enter"]);
    }
    session.page(id, "Kata sandi administrator (4/7)");
    session.text("short");
    session.page(id, "lemah: terlalu pendek (5 karakter);");
    session.keys(&["BSpace", "BSpace", "BSpace", "BSpace", "BSpace"]);
    session.text("Tg7!pz0Qmw-kantor");
    session.page(id, "kuat");
    session.keys(&["Tab"]);
    session.text("Tg7!pz0Qmw-kantoX");
    session.keys(&["Enter"]);
    session.page(id, "Kedua kata sandi tidak sama.");
    session.keys(&["BSpace"]);
    session.text("r");
    session.keys(&["Enter"]);
    let s = session.page(id, "Ekstensi dan jaringan tepercaya (5/7)");
    assert!(s.contains("10.0.2.0/24"), "{s}");
    session.keys(&["Enter", "Enter"]);
    let s = session.page(id, "Disk tujuan (6/7)");
    assert!(
        s.contains("PERHATIAN: semua data akan DIHAPUS dari /dev/vda"),
        "{s}"
    );
    session.keys(&["Tab", "Enter"]);
    session.page(id, "Ketik YA untuk menyetujui penghapusan /dev/vda");
    session.text("YA");
    session.keys(&["Enter"]);
    let s = session.page(id, "Ringkasan (7/7)");
    assert!(s.contains("server:     pbx.kantor.local"), "{s}");
    assert!(
        s.contains("jaringan:   10.0.2.15/24 melalui 10.0.2.2"),
        "{s}"
    );
    assert!(s.contains("ekstensi:   3"), "{s}");
    assert_eq!(passwords(&s).len(), 3, "{s}");

    session.keys(&["Enter"]);
    let s = session.page(id, "Terpasang.");
    assert!(s.contains("✓ Menyalin sistem"), "{s}");
    session.keys(&["Enter"]);
    // The summary printed after the wizard is in Indonesian too.
    let s = session.page(id, "WIZARD-EXIT=0");
    assert!(s.contains("zona waktu: Asia/Jakarta"), "{s}");

    assert!(read(&root, "etc/kentongan/installed.toml").contains("language = \"id\""));
    assert!(root.join("var/lib/kentongan/setup-done").exists());
}
