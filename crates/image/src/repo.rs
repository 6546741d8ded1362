//! The workspace `.deb`s as a signed APT repository: what an installed appliance upgrades
//! from (`kentongan-setup upgrade --repo URI --keyring FILE`).
//!
//! Layout (suite and codename `kentongan`, component `main`, amd64):
//! `pool/main/*.deb`, `dists/kentongan/main/binary-amd64/Packages{,.gz}`,
//! `dists/kentongan/{Release,InRelease,Release.gpg}`, and the public key as
//! `kentongan-archive-keyring.gpg` for the operator to hand to the appliance. The index files
//! come from `apt-ftparchive` (Debian's own tool); the signature from `gpg` with the operator's
//! secret key, imported into a throw-away GnuPG home so the builder never touches their
//! keyring. The repository is written beside its final name and renamed into place: a failed
//! run leaves the previous repository as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Suite, codename and the directory under `dists/`.
pub const SUITE: &str = "kentongan";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("`{tool}` is not installed")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("the signing key {}: {why}", key.display())]
    Key { key: PathBuf, why: String },
    #[error("`{command}` failed: {stderr}")]
    Tool { command: String, stderr: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RepoError {
    pub fn hint(&self) -> String {
        match self {
            RepoError::MissingTool { package, .. } => format!("apt-get install {package}"),
            RepoError::Key { .. } => "pass an armored OpenPGP secret key without a passphrase \
                 (gpg --export-secret-keys --armor KEYID > key.asc)"
                .into(),
            RepoError::Tool { .. } => "the command's own message is above".into(),
            RepoError::Write { .. } => {
                "check free space and permissions of the output folder".into()
            }
        }
    }
}

/// A written repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub dir: PathBuf,
    /// `name version` of each package.
    pub packages: Vec<String>,
    /// The signing key's fingerprint.
    pub fingerprint: String,
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
    move |source| RepoError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Runs a command; its stdout, or its stderr as the error.
fn run(cmd: &mut Command) -> Result<Vec<u8>, RepoError> {
    let command = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RepoError::Tool {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RepoError::Tool {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// Writes the repository of `debs` to `dir`, signed with the armored secret key `key`.
pub fn write(debs: &[PathBuf], key: &Path, dir: &Path) -> Result<Repo, RepoError> {
    for (tool, package) in [("apt-ftparchive", "apt-utils"), ("gpg", "gnupg")] {
        if crate::tools::find_in_path(tool).is_none() {
            return Err(RepoError::MissingTool { tool, package });
        }
    }
    let key_text = std::fs::read(key).map_err(|e| RepoError::Key {
        key: key.to_owned(),
        why: e.to_string(),
    })?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(write_err(parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let tmp = parent.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    let pool = tmp.join("pool/main");
    let binary = tmp.join(format!("dists/{SUITE}/main/binary-amd64"));
    for d in [&pool, &binary] {
        std::fs::create_dir_all(d).map_err(write_err(d))?;
    }
    let mut packages = Vec::new();
    for deb in debs {
        let file = deb.file_name().unwrap_or_default();
        std::fs::copy(deb, pool.join(file)).map_err(write_err(deb))?;
        let fields = run(Command::new("dpkg-deb")
            .args(["-W", "--showformat", "${Package} ${Version}"])
            .arg(deb))?;
        packages.push(String::from_utf8_lossy(&fields).trim().to_owned());
    }

    // Indexes: paths in Packages are relative to the repository root.
    let index = run(Command::new("apt-ftparchive")
        .arg("packages")
        .arg("pool")
        .current_dir(&tmp))?;
    let packages_file = binary.join("Packages");
    std::fs::write(&packages_file, &index).map_err(write_err(&packages_file))?;
    run(Command::new("gzip").args(["-9nk"]).arg(&packages_file))?;
    let dists = tmp.join(format!("dists/{SUITE}"));
    let release = run(Command::new("apt-ftparchive")
        .args([
            "-o",
            "APT::FTPArchive::Release::Origin=Kentongan",
            "-o",
            "APT::FTPArchive::Release::Label=Kentongan",
            "-o",
        ])
        .arg(format!("APT::FTPArchive::Release::Suite={SUITE}"))
        .arg("-o")
        .arg(format!("APT::FTPArchive::Release::Codename={SUITE}"))
        .args([
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "release",
            ".",
        ])
        .current_dir(&dists))?;
    let release_file = dists.join("Release");
    std::fs::write(&release_file, &release).map_err(write_err(&release_file))?;

    // A GnuPG home for this run only: the operator's own keyring is never read or changed.
    let home = tempfile::tempdir().map_err(write_err(parent))?;
    let gpg = |args: &[&str]| {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(home.path())
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(args);
        c
    };
    let imported = home.path().join("key.asc");
    std::fs::write(&imported, &key_text).map_err(write_err(&imported))?;
    run(&mut gpg(&["--import", &imported.display().to_string()])).map_err(|e| RepoError::Key {
        key: key.to_owned(),
        why: e.to_string(),
    })?;
    let listing = run(&mut gpg(&["--with-colons", "--list-secret-keys"]))?;
    let fingerprint = String::from_utf8_lossy(&listing)
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_owned())
        })
        .ok_or_else(|| RepoError::Key {
            key: key.to_owned(),
            why: "holds no secret key".into(),
        })?;
    let rel = release_file.display().to_string();
    run(&mut gpg(&[
        "--clearsign",
        "-o",
        &dists.join("InRelease").display().to_string(),
        &rel,
    ]))?;
    run(&mut gpg(&[
        "--armor",
        "--detach-sign",
        "-o",
        &dists.join("Release.gpg").display().to_string(),
        &rel,
    ]))?;
    let public = run(&mut gpg(&["--export", &fingerprint]))?;
    let keyring = tmp.join("kentongan-archive-keyring.gpg");
    std::fs::write(&keyring, public).map_err(write_err(&keyring))?;

    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(write_err(dir))?;
    Ok(Repo {
        dir: dir.to_owned(),
        packages,
        fingerprint,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A key made for the test, exported armored as an operator would hand it over.
    fn test_key(dir: &Path) -> PathBuf {
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        let gpg = |args: &[&str]| {
            let out = Command::new("gpg")
                .arg("--homedir")
                .arg(&home)
                .args(["--batch", "--passphrase", "", "--pinentry-mode", "loopback"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        gpg(&[
            "--quick-gen-key",
            "Kentongan test <test@kentongan.invalid>",
            "ed25519",
            "sign",
            "never",
        ]);
        let key = dir.join("key.asc");
        std::fs::write(&key, gpg(&["--armor", "--export-secret-keys"])).unwrap();
        key
    }

    fn tiny_deb(dir: &Path, version: &str) -> PathBuf {
        let root = dir.join(format!("pkg-{version}"));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
        std::fs::write(root.join("usr/sbin/kentongan-test"), "#!/bin/sh\n").unwrap();
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: kentongan-test\nVersion: {version}\nArchitecture: amd64\n\
                 Maintainer: Kentongan developers <dev@kentongan.invalid>\nDescription: test\n"
            ),
        )
        .unwrap();
        let deb = dir.join(format!("kentongan-test_{version}_amd64.deb"));
        run(Command::new("dpkg-deb").arg("--build").arg(&root).arg(&deb)).unwrap();
        deb
    }

    #[test]
    fn the_repository_is_signed_and_lists_every_package() {
        if crate::tools::find_in_path("apt-ftparchive").is_none() {
            panic!("needs apt-ftparchive: apt-get install apt-utils (scripts/test installs it)");
        }
        let dir = tempfile::tempdir().unwrap();
        let key = test_key(dir.path());
        let debs = [tiny_deb(dir.path(), "0.1.1")];
        let out = dir.path().join("out/kentongan-0.1.1-repo");
        let repo = write(&debs, &key, &out).unwrap();
        assert_eq!(repo.packages, ["kentongan-test 0.1.1"]);
        let packages =
            std::fs::read_to_string(out.join("dists/kentongan/main/binary-amd64/Packages"))
                .unwrap();
        assert!(
            packages.contains("Filename: pool/main/kentongan-test_0.1.1_amd64.deb"),
            "{packages}"
        );
        let release = std::fs::read_to_string(out.join("dists/kentongan/Release")).unwrap();
        assert!(
            release.contains("Suite: kentongan") && release.contains("main/binary-amd64/Packages"),
            "{release}"
        );
        // Only the exported public key verifies it: what apt's Signed-By does.
        let keyring = out.join("kentongan-archive-keyring.gpg");
        for signed in [vec!["InRelease"], vec!["Release.gpg", "Release"]] {
            let status = Command::new("gpgv")
                .arg("--keyring")
                .arg(&keyring)
                .args(signed.iter().map(|f| out.join("dists/kentongan").join(f)))
                .output()
                .unwrap();
            assert!(
                status.status.success(),
                "{}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
        // A second key's signature does not verify against the first's keyring.
        let other = tempfile::tempdir().unwrap();
        let other_key = test_key(other.path());
        let out2 = dir.path().join("out/other-repo");
        write(&debs, &other_key, &out2).unwrap();
        let status = Command::new("gpgv")
            .arg("--keyring")
            .arg(&keyring)
            .arg(out2.join("dists/kentongan/InRelease"))
            .output()
            .unwrap();
        assert!(!status.status.success());
        // A key file that is no key changes nothing already there.
        let bad = dir.path().join("bad.asc");
        std::fs::write(&bad, "not a key").unwrap();
        let e = write(&debs, &bad, &out).unwrap_err();
        assert!(matches!(e, RepoError::Key { .. }), "{e}");
        assert!(out.join("dists/kentongan/InRelease").exists());
    }
}
