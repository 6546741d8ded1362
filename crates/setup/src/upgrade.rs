//! `kentongan-setup upgrade`: the installed appliance's Kentongan packages brought to the
//! newest version a signed APT repository offers, keeping everything the office has.
//!
//! The order is what makes it safe: the repository is read first and a downgrade or "nothing
//! newer" stops there, with nothing changed; then a backup is taken (the database as it was,
//! before the new PBX migrates it forward) and the installed packages are rebuilt as `.deb`s
//! from their files, so the way back needs nothing from the network; then APT installs the new
//! versions and the PBX is restarted. If it does not answer SIP OPTIONS within the bound, the
//! old packages go back with `dpkg -i`, the backup is restored (the old PBX refuses the newer
//! schema, by design), and the upgrade is reported as rolled back.
//!
//! The repository is named in deb822 form in [`SOURCES_FILE`] with `Signed-By`: APT verifies
//! its `InRelease` against that keyring and nothing else; the APT runs here read only that
//! file, so the Debian sources an offline office cannot reach never fail an upgrade.
//! Commands go through [`Runner`] and the OPTIONS check and backup through [`Hooks`], so the
//! sequence is tested without a system to change; the QEMU install test runs it for real.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::install::{Cmd, CmdError, Runner};

/// The APT source the upgrade reads (deb822).
pub const SOURCES_FILE: &str = "/etc/apt/sources.list.d/kentongan.sources";
/// Where `--keyring` is copied: the only key the Kentongan source trusts.
pub const KEYRING: &str = "/etc/kentongan/apt-keyring.gpg";
/// The installed packages rebuilt before an upgrade: the way back.
pub const ROLLBACK_DIR: &str = "/var/lib/kentongan/upgrade/rollback";
/// The suite and component the builder's repository uses.
pub const SUITE: &str = "kentongan";
/// Who the builder names as maintainer: how the appliance's own packages are told apart.
const MAINTAINER: &str = "Kentongan developers";

/// The deb822 stanza naming a repository at `uri` signed by the key in `keyring`.
pub fn sources_stanza(uri: &str, keyring: &Path) -> String {
    format!(
        "# Kentongan packages; `kentongan-setup upgrade` installs the newest versions.\n\
         Types: deb\nURIs: {uri}\nSuites: {SUITE}\nComponents: main\nSigned-By: {}\n",
        keyring.display()
    )
}

/// Compares Debian package versions as dpkg does (`[epoch:]upstream[-revision]`, `~` before
/// everything, digits numerically, letters before other characters).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            Some('~') => -1,
            None => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> Ordering {
        let (mut a, mut b) = (a, b);
        while !a.is_empty() || !b.is_empty() {
            let an = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
            let bn = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
            let (ax, bx) = (&a[..an], &b[..bn]);
            let (mut ai, mut bi) = (ax.chars(), bx.chars());
            loop {
                let (ca, cb) = (ai.next(), bi.next());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                match order(ca).cmp(&order(cb)) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            a = &a[an..];
            b = &b[bn..];
            let ad = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let bd = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let na = a[..ad].trim_start_matches('0');
            let nb = b[..bd].trim_start_matches('0');
            match na.len().cmp(&nb.len()).then_with(|| na.cmp(nb)) {
                Ordering::Equal => {}
                o => return o,
            }
            a = &a[ad..];
            b = &b[bd..];
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// One of the appliance's packages: installed version and the newest the repository offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageUpgrade {
    pub package: String,
    pub installed: String,
    pub offered: String,
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    pub packages: Vec<PackageUpgrade>,
    pub backup: PathBuf,
}

/// Why an upgrade stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(
        "no Kentongan package source: {SOURCES_FILE} does not exist; name the repository \
         once with `kentongan-setup upgrade --repo URI --keyring FILE`"
    )]
    NoSource,
    #[error("{0}")]
    Command(CmdError),
    #[error("no Kentongan package is installed here (dpkg-query lists none by {MAINTAINER})")]
    NothingInstalled,
    #[error(
        "the repository does not offer {package}: check that it is the Kentongan repository \
         (suite {SUITE}, component main) and that its signature verifies"
    )]
    NotOffered { package: String },
    #[error(
        "the repository offers {package} {offered}, older than the installed {installed}: a \
         downgrade is refused; restore a backup onto a fresh install of the older version instead"
    )]
    Downgrade {
        package: String,
        installed: String,
        offered: String,
    },
    #[error("already up to date: {}", list(.0))]
    UpToDate(Vec<(String, String)>),
    #[error("the backup before the upgrade failed, so nothing was changed: {0}")]
    Backup(String),
    #[error(
        "could not keep the installed {package} for a rollback ({why}), so nothing was changed"
    )]
    Keep { package: String, why: String },
    #[error(
        "the upgraded PBX did not start, or did not answer SIP OPTIONS within {} s; {}",
        .within.as_secs(),
        if *.rolled_back {
            "rolled back: the previous packages and the backup taken before the upgrade are in \
             place again and the PBX answers (journalctl -u kentongan-pbx says why the new one did not start)"
        } else {
            "the rollback did not bring the PBX back either: restore the backup by hand with \
             `kentongan-setup restore` and see journalctl -u kentongan-pbx"
        }
    )]
    NotUp {
        within: Duration,
        rolled_back: bool,
        backup: PathBuf,
    },
    #[error(
        "installing the new packages failed ({error}); {}",
        if *.rolled_back {
            "rolled back: the previous packages and the backup taken before the upgrade are in place again"
        } else {
            "the rollback failed too: restore the backup by hand with `kentongan-setup restore`"
        }
    )]
    InstallFailed {
        error: CmdError,
        rolled_back: bool,
        backup: PathBuf,
    },
}

fn list(v: &[(String, String)]) -> String {
    v.iter()
        .map(|(p, ver)| format!("{p} {ver}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the upgrade needs besides commands: the backup, the PBX check, the restore.
pub trait Hooks {
    /// Takes a backup of the appliance as it is; returns its path.
    fn backup(&mut self) -> Result<PathBuf, String>;
    /// Whether the PBX answers SIP OPTIONS within `within`.
    fn pbx_answers(&mut self, within: Duration) -> bool;
    /// Restores `archive` (stopping and starting the PBX).
    fn restore(&mut self, archive: &Path) -> Result<(), String>;
    /// Rebuilds the installed `package` as a `.deb` in `dir`; returns its path.
    fn keep_installed(&mut self, package: &str, dir: &Path) -> Result<PathBuf, String>;
}

/// APT reading only the Kentongan source.
fn apt(program: &str, args: &[&str]) -> Cmd {
    let mut all = vec![
        "-o",
        "Dir::Etc::SourceList=/etc/apt/sources.list.d/kentongan.sources",
        "-o",
        "Dir::Etc::SourceParts=/nonexistent",
    ];
    all.extend_from_slice(args);
    Cmd::new(program, &all)
}

/// The appliance's packages and their installed versions, from dpkg-query's
/// `${Package}\t${Version}\t${Maintainer}\t${db:Status-Abbrev}` lines.
pub fn installed_packages(dpkg_query: &str) -> Vec<(String, String)> {
    dpkg_query
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (p, v, m, s) = (f.next()?, f.next()?, f.next()?, f.next()?);
            (m.starts_with(MAINTAINER) && s.trim() == "ii").then(|| (p.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The newest version of a package in `apt-cache madison` output (`pkg | ver | source`).
pub fn newest_offered(madison: &str) -> Option<String> {
    madison
        .lines()
        .filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned()))
        .filter(|v| !v.is_empty())
        .max_by(|a, b| compare_versions(a, b))
}

/// Upgrades the appliance's packages from the repository in [`SOURCES_FILE`].
pub fn upgrade(
    runner: &mut dyn Runner,
    hooks: &mut dyn Hooks,
    sources_exist: bool,
    within: Duration,
) -> Result<Upgraded, UpgradeError> {
    if !sources_exist {
        return Err(UpgradeError::NoSource);
    }
    let run = |runner: &mut dyn Runner, cmd: Cmd| runner.run(&cmd).map_err(UpgradeError::Command);
    let query = run(
        runner,
        Cmd::new(
            "dpkg-query",
            &[
                "-W",
                "-f",
                "${Package}\\t${Version}\\t${Maintainer}\\t${db:Status-Abbrev}\\n",
            ],
        ),
    )?;
    let installed = installed_packages(&query);
    if installed.is_empty() {
        return Err(UpgradeError::NothingInstalled);
    }
    run(runner, apt("apt-get", &["update", "-q"]))?;
    let mut plan = Vec::new();
    for (package, version) in &installed {
        let madison = run(runner, apt("apt-cache", &["madison", package]))?;
        let offered = newest_offered(&madison).ok_or_else(|| UpgradeError::NotOffered {
            package: package.clone(),
        })?;
        plan.push(PackageUpgrade {
            package: package.clone(),
            installed: version.clone(),
            offered,
        });
    }
    if let Some(p) = plan
        .iter()
        .find(|p| compare_versions(&p.offered, &p.installed) == Ordering::Less)
    {
        return Err(UpgradeError::Downgrade {
            package: p.package.clone(),
            installed: p.installed.clone(),
            offered: p.offered.clone(),
        });
    }
    if plan
        .iter()
        .all(|p| compare_versions(&p.offered, &p.installed) == Ordering::Equal)
    {
        return Err(UpgradeError::UpToDate(installed));
    }

    let backup = hooks.backup().map_err(UpgradeError::Backup)?;
    let dir = PathBuf::from(ROLLBACK_DIR);
    let mut kept = Vec::new();
    for p in &plan {
        let deb = hooks
            .keep_installed(&p.package, &dir)
            .map_err(|why| UpgradeError::Keep {
                package: p.package.clone(),
                why,
            })?;
        kept.push(deb);
    }

    let wanted: Vec<String> = plan
        .iter()
        .map(|p| format!("{}={}", p.package, p.offered))
        .collect();
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(wanted.iter().map(String::as_str));
    let installed_new = run(runner, apt("apt-get", &args));
    // A unit that fails to start is a PBX that does not come up, not a failed install.
    let up = installed_new.is_ok()
        && runner
            .run(&Cmd::new(
                "systemctl",
                &["restart", "kentongan-pbx.service"],
            ))
            .is_ok()
        && hooks.pbx_answers(within);
    if up {
        return Ok(Upgraded {
            packages: plan,
            backup,
        });
    }

    // The way back: the packages as they were, then the data as it was.
    let mut args = vec!["-i".to_owned()];
    args.extend(kept.iter().map(|d| d.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let back = runner.run(&Cmd::new("dpkg", &args)).is_ok()
        && hooks.restore(&backup).is_ok()
        && hooks.pbx_answers(within);
    if let Err(UpgradeError::Command(error)) = installed_new {
        return Err(UpgradeError::InstallFailed {
            error,
            rolled_back: back,
            backup,
        });
    }
    Err(UpgradeError::NotUp {
        within,
        rolled_back: back,
        backup,
    })
}

/// The files a package installed (its dpkg `.list`), regular files only: what a rebuilt
/// `.deb` must hold.
pub fn package_files(list: &str, root: &Path) -> Vec<PathBuf> {
    list.lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| root.join(l.trim_start_matches('/')))
        .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()))
        .collect()
}

/// Rebuilds the installed `package` (its files as dpkg lists them under `root`, its control
/// fields from `dpkg-query -s`) as a `.deb` in `dir`, so a rollback needs no repository.
pub fn rebuild_installed(
    runner: &mut dyn Runner,
    root: &Path,
    package: &str,
    dir: &Path,
) -> Result<PathBuf, String> {
    let status = runner
        .run(&Cmd::new("dpkg-query", &["-s", package]))
        .map_err(|e| e.to_string())?;
    let control = control_from_status(&status);
    let version = control
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .ok_or_else(|| format!("dpkg-query -s {package} shows no Version"))?
        .trim()
        .to_owned();
    let list_path = root.join(format!("var/lib/dpkg/info/{package}.list"));
    let list =
        std::fs::read_to_string(&list_path).map_err(|e| format!("{}: {e}", list_path.display()))?;
    let staging = dir.join(format!(".{package}.staging"));
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.join("DEBIAN")).map_err(|e| io(&staging, e))?;
    for file in package_files(&list, root) {
        let rel = file.strip_prefix(root).unwrap_or(&file);
        let dest = staging.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        // fs::copy keeps the mode bits, so executables stay executable.
        std::fs::copy(&file, &dest).map_err(|e| io(&file, e))?;
    }
    let control_path = staging.join("DEBIAN/control");
    std::fs::write(&control_path, control).map_err(|e| io(&control_path, e))?;
    let deb = dir.join(format!("{package}_{version}_amd64.deb"));
    let built = runner.run(&Cmd::new(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "-Zgzip",
            "-z1",
            "--build",
            &staging.display().to_string(),
            &deb.display().to_string(),
        ],
    ));
    let _ = std::fs::remove_dir_all(&staging);
    built.map_err(|e| e.to_string())?;
    Ok(deb)
}

/// The control file of an installed package from its `dpkg-query -s` stanza: the same
/// fields, less what only the status database has.
pub fn control_from_status(status: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in status.lines() {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let field = line.split(':').next().unwrap_or("");
        skipping = matches!(field, "Status" | "Conffiles" | "Config-Version");
        if !skipping && !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Whether a SIP server at `addr` answers OPTIONS with 200 within `within` (one try a
/// second).
pub fn options_answered(addr: std::net::SocketAddr, within: Duration) -> bool {
    let local: std::net::SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    };
    let Ok(socket) = std::net::UdpSocket::bind(local) else {
        return false;
    };
    let Ok(port) = socket.local_addr().map(|a| a.port()) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    let deadline = std::time::Instant::now() + within;
    let mut n = 0u32;
    while std::time::Instant::now() < deadline {
        n += 1;
        let host = if addr.is_ipv6() { "[::1]" } else { "127.0.0.1" };
        let request = format!(
            "OPTIONS sip:{host}:{} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-upgrade-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:upgrade@{host}>;tag=upgrade\r\n\
             To: <sip:{host}:{}>\r\nCall-ID: upgrade-check-{port}\r\nCSeq: {n} OPTIONS\r\n\
             User-Agent: kentongan-setup\r\nContent-Length: 0\r\n\r\n",
            addr.port(),
            addr.port()
        );
        if socket.send_to(request.as_bytes(), addr).is_ok() {
            let mut buf = [0u8; 2048];
            if let Ok((len, _)) = socket.recv_from(&mut buf) {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return true;
                }
            }
        } else {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    false
}

/// Where the PBX of `pbx_toml` answers SIP over UDP on this host (its first UDP listener;
/// a wildcard address means loopback).
pub fn local_sip_addr(pbx_toml: &str) -> std::net::SocketAddr {
    let fallback = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 5060));
    let Ok(config) = kentongan_pbx::config::Config::from_toml(pbx_toml) else {
        return fallback;
    };
    config
        .listen
        .iter()
        .find(|l| l.transport.to_string() == "udp")
        .map(|l| {
            let mut a = l.addr;
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv6() {
                    std::net::Ipv6Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv4Addr::LOCALHOST.into()
                });
            }
            a
        })
        .unwrap_or(fallback)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn versions_compare_as_dpkg_does() {
        let less = [
            ("0.1.0", "0.1.1"),
            ("0.1.9", "0.1.10"),
            ("0.1.0~rc1", "0.1.0"),
            ("0.1.0", "0.1.0+1"),
            ("0.1.0", "0.1.0-1"),
            ("0.9", "1:0.1"),
            ("1.0a", "1.0+"),
            ("0.1.0-1", "0.1.0-2"),
        ];
        for (a, b) in less {
            assert_eq!(compare_versions(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare_versions(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare_versions("0.1.0", "0.1.0"), Ordering::Equal);
        assert_eq!(compare_versions("0.01", "0.1"), Ordering::Equal);
    }

    #[test]
    fn only_the_appliances_installed_packages_count() {
        let q = "kentongan-pbx\t0.1.0\tKentongan developers <dev@kentongan.invalid>\tii \n\
                 libc6\t2.36-9\tGNU Libc Maintainers <x@y>\tii \n\
                 kentongan-setup\t0.1.0\tKentongan developers <dev@kentongan.invalid>\trc \n";
        assert_eq!(
            installed_packages(q),
            [("kentongan-pbx".to_owned(), "0.1.0".to_owned())]
        );
        let m = "kentongan-pbx |      0.1.1 | http://10.0.2.2:8080 kentongan/main amd64 Packages\n\
                 kentongan-pbx |     0.1.10 | http://10.0.2.2:8080 kentongan/main amd64 Packages\n";
        assert_eq!(newest_offered(m).as_deref(), Some("0.1.10"));
        assert_eq!(newest_offered(""), None);
    }

    #[test]
    fn the_control_file_is_the_status_stanza_less_the_status() {
        let status = "Package: kentongan-pbx\nStatus: install ok installed\nPriority: optional\n\
                      Version: 0.1.0\nConffiles:\n /etc/x 0123\nDescription: PBX\n more text\n";
        assert_eq!(
            control_from_status(status),
            "Package: kentongan-pbx\nPriority: optional\nVersion: 0.1.0\nDescription: PBX\n more text\n"
        );
    }

    #[test]
    fn the_pbx_listener_is_reached_on_loopback() {
        let a = local_sip_addr("[sip]\ndomain = \"k.local\"\nlisten = [\"udp:0.0.0.0:5070\"]\n");
        assert_eq!(a.to_string(), "127.0.0.1:5070");
        assert_eq!(local_sip_addr("not toml").port(), 5060);
    }

    #[test]
    fn the_stanza_is_deb822_with_signed_by() {
        let s = sources_stanza("http://10.0.2.2:8080/", Path::new(KEYRING));
        assert!(s.contains("Types: deb\nURIs: http://10.0.2.2:8080/\nSuites: kentongan\n"));
        assert!(s.contains("Signed-By: /etc/kentongan/apt-keyring.gpg\n"));
    }

    /// Answers commands from a script, in order, and records them.
    struct Script {
        answers: VecDeque<(&'static str, Result<String, ()>)>,
        ran: Vec<String>,
    }

    impl Runner for Script {
        fn run(&mut self, cmd: &Cmd) -> Result<String, CmdError> {
            let line = cmd.display();
            self.ran.push(line.clone());
            let (want, answer) = self
                .answers
                .pop_front()
                .unwrap_or_else(|| panic!("unexpected `{line}`"));
            assert!(line.contains(want), "ran `{line}`, expected `{want}`");
            answer.map_err(|()| CmdError {
                command: line,
                detail: "exit status 100: E: failed".into(),
            })
        }
    }

    #[derive(Default)]
    struct Fake {
        answers: Vec<bool>,
        events: Vec<String>,
    }

    impl Hooks for Fake {
        fn backup(&mut self) -> Result<PathBuf, String> {
            self.events.push("backup".into());
            Ok("/var/backups/kentongan/pre-upgrade.tar.zst".into())
        }
        fn pbx_answers(&mut self, _: Duration) -> bool {
            self.events.push("options".into());
            self.answers.remove(0)
        }
        fn restore(&mut self, archive: &Path) -> Result<(), String> {
            self.events.push(format!("restore {}", archive.display()));
            Ok(())
        }
        fn keep_installed(&mut self, package: &str, dir: &Path) -> Result<PathBuf, String> {
            self.events.push(format!("keep {package}"));
            Ok(dir.join(format!("{package}.deb")))
        }
    }

    const QUERY: &str = "kentongan-pbx\t0.1.0\tKentongan developers <d@k>\tii \n";

    fn script(madison: &'static str, rest: &[(&'static str, bool)]) -> Script {
        let mut answers = VecDeque::from([
            ("dpkg-query -W", Ok(QUERY.to_owned())),
            ("apt-get -o Dir::Etc::SourceList=", Ok(String::new())),
            ("apt-cache", Ok(madison.to_owned())),
        ]);
        for (cmd, ok) in rest {
            answers.push_back((*cmd, if *ok { Ok(String::new()) } else { Err(()) }));
        }
        Script {
            answers,
            ran: Vec::new(),
        }
    }

    const NEWER: &str = "kentongan-pbx | 0.1.1 | http://r kentongan/main amd64 Packages\n";

    #[test]
    fn an_upgrade_backs_up_keeps_the_old_packages_installs_and_checks_the_pbx() {
        let mut s = script(
            NEWER,
            &[
                ("install -y", true),
                ("systemctl restart kentongan-pbx", true),
            ],
        );
        let mut h = Fake {
            answers: vec![true],
            ..Fake::default()
        };
        let done = upgrade(&mut s, &mut h, true, Duration::from_secs(30)).unwrap();
        assert_eq!(done.packages[0].offered, "0.1.1");
        assert_eq!(h.events, ["backup", "keep kentongan-pbx", "options"]);
        assert!(s.ran[3].ends_with("kentongan-pbx=0.1.1"), "{:?}", s.ran);
    }

    #[test]
    fn a_pbx_that_does_not_come_up_is_rolled_back() {
        let mut s = script(
            NEWER,
            &[
                ("install -y", true),
                ("systemctl restart", true),
                (
                    "dpkg -i /var/lib/kentongan/upgrade/rollback/kentongan-pbx.deb",
                    true,
                ),
            ],
        );
        let mut h = Fake {
            answers: vec![false, true],
            ..Fake::default()
        };
        match upgrade(&mut s, &mut h, true, Duration::from_secs(30)) {
            Err(UpgradeError::NotUp {
                rolled_back: true, ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            h.events,
            [
                "backup",
                "keep kentongan-pbx",
                "options",
                "restore /var/backups/kentongan/pre-upgrade.tar.zst",
                "options"
            ]
        );
    }

    #[test]
    fn a_pbx_unit_that_fails_to_start_is_rolled_back_without_waiting() {
        let mut s = script(
            NEWER,
            &[
                ("install -y", true),
                ("systemctl restart", false),
                ("dpkg -i", true),
            ],
        );
        let mut h = Fake {
            answers: vec![true],
            ..Fake::default()
        };
        let e = upgrade(&mut s, &mut h, true, Duration::from_secs(30)).unwrap_err();
        assert!(
            matches!(
                e,
                UpgradeError::NotUp {
                    rolled_back: true,
                    ..
                }
            ),
            "{e}"
        );
        // The one OPTIONS check is the rolled-back PBX's.
        assert_eq!(h.events.iter().filter(|e| *e == "options").count(), 1);
    }

    #[test]
    fn an_apt_failure_is_rolled_back_too() {
        let mut s = script(NEWER, &[("install -y", false), ("dpkg -i", true)]);
        let mut h = Fake {
            answers: vec![true],
            ..Fake::default()
        };
        let e = upgrade(&mut s, &mut h, true, Duration::from_secs(30)).unwrap_err();
        assert!(
            matches!(
                e,
                UpgradeError::InstallFailed {
                    rolled_back: true,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_downgrade_or_nothing_newer_changes_nothing() {
        let older = "kentongan-pbx | 0.0.9 | http://r kentongan/main amd64 Packages\n";
        let mut s = script(older, &[]);
        let mut h = Fake::default();
        let e = upgrade(&mut s, &mut h, true, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("a downgrade is refused"), "{e}");
        assert!(h.events.is_empty());
        let same = "kentongan-pbx | 0.1.0 | http://r kentongan/main amd64 Packages\n";
        let mut s = script(same, &[]);
        let e = upgrade(&mut s, &mut h, true, Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.to_string(), "already up to date: kentongan-pbx 0.1.0");
        assert!(h.events.is_empty());
        let e = upgrade(&mut s, &mut h, false, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("--repo URI --keyring FILE"), "{e}");
    }
}
