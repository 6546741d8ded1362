//! The installer's steps run over a directory target and a recording runner.

use super::*;
use crate::validate::Language;
use crate::{validate, Answer, Facts};

fn plan() -> InstallPlan {
    let text = include_str!("../../tests/answers/ok/issue_example.toml");
    let facts: Facts =
        serde_json::from_str(include_str!("../../tests/answers/facts.json")).unwrap();
    validate(&Answer::parse(text).unwrap(), &facts).unwrap()
}

/// Records commands; `blkid` answers a fixed UUID; one program can be made to fail.
#[derive(Default)]
struct Recorder {
    log: Vec<String>,
    fail_on: Option<&'static str>,
}

impl Runner for Recorder {
    fn has_program(&self, _: &str) -> bool {
        true
    }
    fn wait_for(&self, _: &Path) -> bool {
        true
    }
    fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError> {
        self.log.push(cmd.display());
        if Some(cmd.program.as_str()) == self.fail_on {
            return Err(CmdError {
                command: cmd.display(),
                detail: "exit status: 1; simulated".into(),
            });
        }
        Ok(match cmd.program.as_str() {
            "blkid" => "1234-ABCD\n".into(),
            _ => String::new(),
        })
    }
}

struct Quiet;
impl Reporter for Quiet {}

#[test]
fn directory_target_gets_configuration_and_hashes_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let plan = plan();
    let mut r = Recorder::default();
    run(
        &plan,
        Target::Directory { root: root.clone() },
        Source::Nothing,
        &mut r,
        &mut Quiet,
    )
    .unwrap();
    assert!(
        r.log.is_empty(),
        "a directory target runs no command: {:?}",
        r.log
    );
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("etc/hostname"), "pbx\n");
    assert!(read("etc/systemd/network/10-kentongan.network").contains("Address=10.0.2.15/24"));
    assert!(read("etc/kentongan/pbx.toml").contains("domain = \"kantor.local\""));
    let pbx = read("etc/kentongan/pbx.toml");
    assert!(
        pbx.contains("[firewall]\ntrusted = [\"10.0.2.0/24\"]"),
        "{pbx}"
    );
    assert!(!root.join("etc/kentongan/firewall-trusted.nft").exists());
    assert!(root.join(SETUP_DONE).exists());
    assert!(!root.join(INCOMPLETE_MARKER).exists());
    let shadow = read("etc/shadow");
    let hash = shadow.split(':').nth(1).unwrap();
    assert!(hash.starts_with("$6$"));
    assert!(sha_crypt::sha512_check("Tg7!pz0Qmw-kantor", hash).is_ok());
    let store = kentongan_pbx::store::Store::open(&root.join("var/lib/kentongan/pbx.db")).unwrap();
    assert_eq!(store.users().unwrap()[0].extension.0, "201");
    // No file under the root holds a password in plaintext.
    for entry in walk(&root) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("Tg7!pz0Qmw") && !text.contains("Meja.Depan"),
            "{}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn disk_steps_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let mut r = Recorder::default();
    let target = Target::Disk {
        device: "/dev/vda".into(),
        mount: dir.path().join("mnt"),
    };
    let src = dir.path().join("src");
    // The recorder does not copy, so the kernel is put straight into the target.
    std::fs::create_dir_all(dir.path().join("mnt/usr/lib/modules/6.1.0-99-amd64")).unwrap();
    std::fs::create_dir_all(src.join("usr/lib/grub/i386-pc")).unwrap();
    std::fs::create_dir_all(src.join("usr/lib/grub/x86_64-efi")).unwrap();
    run(&plan, target, Source::Directory(src), &mut r, &mut Quiet).unwrap();
    let log = r.log.join("\n");
    let order = [
        "wipefs --all --force /dev/vda",
        "sfdisk --quiet --wipe always /dev/vda",
        "mkfs.vfat -F 32 -n KTGN-ESP /dev/vda2",
        "mkfs.ext4 -F -q -L kentongan-root /dev/vda3",
        "mount /dev/vda3",
        "cp -a",
        "update-initramfs -c -k 6.1.0-99-amd64",
        "blkid -s UUID -o value /dev/vda3",
        "grub-install --target=i386-pc --recheck /dev/vda",
        "--target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram --no-uefi-secure-boot",
        "grub-mkconfig -o /boot/grub/grub.cfg",
        "sfdisk --part-label /dev/vda 3 KENTONGAN-ROOT",
        "umount",
    ];
    let mut at = 0;
    for o in order {
        let found = log[at..]
            .find(o)
            .unwrap_or_else(|| panic!("{o} missing after {at} in\n{log}"));
        at += found;
    }
    assert!(!log.contains("Tg7!") && !log.contains("Meja.Depan"));
}

#[test]
fn signed_chain_in_the_system_installs_shim() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Recorder::default();
    let target = Target::Disk {
        device: "/dev/vda".into(),
        mount: dir.path().join("mnt"),
    };
    let src = dir.path().join("src");
    std::fs::create_dir_all(dir.path().join("mnt/usr/lib/modules/6.1.0-99-amd64")).unwrap();
    for f in SIGNED_CHAIN {
        let path = dir.path().join("mnt").join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"signed").unwrap();
    }
    std::fs::create_dir_all(src.join("usr/lib/grub/i386-pc")).unwrap();
    std::fs::create_dir_all(src.join("usr/lib/grub/x86_64-efi")).unwrap();
    run(&plan(), target, Source::Directory(src), &mut r, &mut Quiet).unwrap();
    let log = r.log.join("\n");
    assert!(
        log.contains("--removable --no-nvram --uefi-secure-boot"),
        "{log}"
    );
}

#[test]
fn failure_names_the_step_and_leaves_the_incomplete_label() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let mut r = Recorder {
        fail_on: Some("mkfs.ext4"),
        ..Default::default()
    };
    let target = Target::Disk {
        device: "/dev/vda".into(),
        mount: dir.path().join("mnt"),
    };
    let err = run(&plan, target, Source::Nothing, &mut r, &mut Quiet).unwrap_err();
    assert_eq!(err.step, "format");
    assert!(err.disk_touched);
    assert!(!r.log.iter().any(|l| l.contains("--part-label")));
    assert!(sfdisk_script().contains(INCOMPLETE_PARTLABEL));
}

#[test]
fn preflight_failure_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let mut r = Recorder::default();
    let target = Target::Disk {
        device: "/dev/vda".into(),
        mount: dir.path().join("mnt"),
    };
    let src = dir.path().join("src-without-grub");
    std::fs::create_dir_all(&src).unwrap();
    let err = run(&plan, target, Source::Directory(src), &mut r, &mut Quiet).unwrap_err();
    assert_eq!(err.step, "preflight");
    assert!(!err.disk_touched);
    assert!(err.hint.contains("grub-pc-bin"));
    assert!(r.log.is_empty());
}

#[test]
fn pbx_config_keeps_comments_and_validates() {
    let old = "# c\n[sip]\ndomain = \"pbx.local\"\nlisten = [\"udp:0.0.0.0:5060\"]\n[rtp]\nports = \"10000-20000\"\n\n[firewall]\n# who\ntrusted = []\nban_seconds = 60\n";
    let lan = crate::net::Cidr::parse("10.0.2.0/24").unwrap();
    let new = pbx_config(Some(old), "kantor.local", &[lan], Language::En).unwrap();
    assert_eq!(
        new,
        "# c\n[sip]\ndomain = \"kantor.local\"\nlisten = [\"udp:0.0.0.0:5060\"]\n[rtp]\nports = \"10000-20000\"\n\n[firewall]\n# who\ntrusted = [\"10.0.2.0/24\"]\nban_seconds = 60\n"
    );
    let none = pbx_config(None, "kantor.local", &[], Language::Id).unwrap();
    assert_eq!(
        none,
        "# Written by kentongan-setup.\n\n[sip]\ndomain = \"kantor.local\"\n\n[firewall]\ntrusted = []\n"
    );
    // The PBX's validator has the last word.
    assert!(pbx_config(Some(old), "bad domain", &[lan], Language::Id).is_err());
}

#[test]
fn the_wizards_language_is_the_voicemail_language_of_the_shipped_config() {
    let shipped = include_str!("../../../../overlays/pbx/etc/kentongan/pbx.toml.tera")
        .replace("{{ domain }}", "pbx.local")
        .replace("{{ sip_udp_port }}", "5060")
        .replace("{{ sip_tcp_port }}", "5060")
        .replace("{{ sip_tls_port }}", "5061")
        .replace("{{ rtp_ports }}", "10000-20000");
    assert!(
        !shipped.contains("{{"),
        "a template variable is not filled in here"
    );
    let lan = crate::net::Cidr::parse("10.0.2.0/24").unwrap();
    for (lang, want) in [
        (Language::En, kentongan_pbx::config::Language::English),
        (Language::Id, kentongan_pbx::config::Language::Indonesian),
    ] {
        let text = pbx_config(Some(&shipped), "kantor.local", &[lan], lang).unwrap();
        let c = kentongan_pbx::config::Config::from_toml(&text).unwrap();
        let vm = c.voicemail.expect("the shipped config has voicemail on");
        assert!(vm.enabled);
        assert_eq!(vm.language, want);
        assert_eq!((vm.ring_seconds, vm.access.as_str()), (20, "*97"));
        assert_eq!(vm.smtp, None);
        // Set in place: the comments around it stay.
        assert!(
            text.contains("# \"id\" or \"en\": what callers hear"),
            "{text}"
        );
    }
}

#[test]
fn toml_keys_are_set_in_their_table() {
    // A key in another table with the same name is left alone; a missing key goes at the
    // end of its table, before the blank lines that separate it from the next.
    let text = "[a]\nx = 1\n\n[b]\ny = 2\n";
    assert_eq!(
        set_toml_key(text, "a", "y", "3"),
        "[a]\nx = 1\ny = 3\n\n[b]\ny = 2\n"
    );
    assert_eq!(
        set_toml_key(text, "b", "y", "3"),
        "[a]\nx = 1\n\n[b]\ny = 3\n"
    );
    assert_eq!(
        set_toml_key(text, "c", "z", "4"),
        "[a]\nx = 1\n\n[b]\ny = 2\n\n[c]\nz = 4\n"
    );
    // A value over several lines is replaced whole; a commented-out key is not a key.
    let multi = "[f]\n# trusted = [\"x\"]\ntrusted = [\n  \"192.0.2.0/24\",\n]\nk = 1\n";
    assert_eq!(
        set_toml_key(multi, "f", "trusted", "[]"),
        "[f]\n# trusted = [\"x\"]\ntrusted = []\nk = 1\n"
    );
}

#[test]
fn shadow_root_line() {
    let s = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n";
    assert_eq!(
        shadow_with_root_hash(s, "$6$x$y"),
        "root:$6$x$y:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
    );
    assert!(shadow_with_root_hash("", "H").starts_with("root:H:"));
}

#[test]
fn partition_names() {
    assert_eq!(partition("/dev/sda", 3), "/dev/sda3");
    assert_eq!(partition("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
    assert_eq!(partition("/dev/loop7", 1), "/dev/loop7p1");
}
