//! The `kentongan` command as an operator meets it: exit codes, `error:`/`hint:` messages,
//! preflight checks, and what an interrupted build leaves behind.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kentongan_e2e::{kentongan_bin, project_root};

fn kentongan(args: &[&str]) -> Output {
    Command::new(kentongan_bin())
        .args(args)
        .current_dir(project_root())
        .output()
        .unwrap_or_else(|e| panic!("kentongan: {e}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn validate_accepts_the_shipped_recipes() {
    for recipe in ["image-recipes/appliance.toml", "image-recipes/minimal.toml"] {
        let o = kentongan(&["validate", recipe]);
        assert!(o.status.success(), "{recipe}: {}", stderr(&o));
        assert!(stderr(&o).contains("Valid"));
    }
}

#[test]
fn a_bad_recipe_is_one_error_line_and_a_hint() {
    let o = kentongan(&["validate", "tests/recipes/fail/duplicate-package.toml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: tests/recipes/fail/duplicate-package.toml: `packages[4]`"),
        "{err}"
    );
    assert!(err.contains("\nhint: remove the duplicate entry"), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    let o = kentongan(&["build"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn missing_host_tools_are_listed_with_the_install_line() {
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let o = Command::new(kentongan_bin())
        .args(["build", "image-recipes/minimal.toml", "--cache-dir"])
        .arg(empty.path().join("cache"))
        .arg("--out")
        .arg(empty.path().join("out"))
        .env("PATH", empty.path())
        .current_dir(project_root())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("missing host tools: mmdebstrap (package mmdebstrap)"),
        "{err}"
    );
    assert!(
        err.contains("hint: apt-get install mmdebstrap squashfs-tools xorriso"),
        "{err}"
    );
}

#[test]
fn building_without_root_says_so() {
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(kentongan_bin())
        .args(["build", "image-recipes/minimal.toml", "--cache-dir"])
        .arg(scratch.path().join("cache"))
        .arg("--out")
        .arg(scratch.path().join("out"))
        .current_dir(project_root())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("building an image needs root"), "{err}");
    assert!(err.contains("hint: run it as root"), "{err}");
}

#[test]
fn cache_ls_into_a_closed_pipe_exits_quietly() {
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let o = kentongan(&[
        "cache",
        "ls",
        "--cache-dir",
        &scratch.path().display().to_string(),
    ]);
    assert!(o.status.success());
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' cache ls | head -c0",
            kentongan_bin().display()
        ))
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(piped.success());
}

/// Starts a cold build of the minimal recipe, waits until a stage is under way, then stops the
/// build the way `stop` does. Returns the cache folder.
fn interrupted_build(scratch: &Path, stop: impl FnOnce(u32)) {
    let cache = scratch.join("cache");
    let mut child = Command::new(kentongan_bin())
        .args([
            "build",
            "image-recipes/minimal.toml",
            "--quiet",
            "--cache-dir",
        ])
        .arg(&cache)
        .arg("--out")
        .arg(scratch.join("out"))
        .current_dir(project_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // Wait until mmdebstrap has put files into the pending entry.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let started = std::fs::read_dir(cache.join("tmp"))
            .map(|d| d.flatten().any(|e| e.path().join("rootfs/etc").exists()))
            .unwrap_or(false);
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "the build never started a stage");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop(child.id());
    let _ = child.wait();
    // Anything the build started (mmdebstrap, its mounts) gets time to end.
    std::thread::sleep(Duration::from_secs(3));

    // The tools get SIGTERM when the builder dies and clean up (mmdebstrap stops apt and
    // unmounts its chroot); on a busy machine that takes a while, but it must end.
    let abs_cache = std::fs::canonicalize(&cache).unwrap_or_else(|e| panic!("{e}"));
    let still_running = || {
        let out = Command::new("pgrep")
            .arg("-f")
            .arg(abs_cache.display().to_string())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut left = still_running();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        left = still_running();
    }
    assert!(
        left.is_empty(),
        "tools of the interrupted build still run after 90 s: pids {left}"
    );
    let entries = cache.join("entries");
    let trusted: Vec<_> = walk_entries(&entries);
    assert!(
        trusted.is_empty(),
        "an interrupted build left entries: {trusted:?}"
    );
    // The next build (here: opening the cache as it does) clears the leftovers.
    let reopened = kentongan_image::Cache::open_exclusive(&cache).unwrap_or_else(|e| panic!("{e}"));
    assert!(reopened.lookup("base-rootfs", &dummy_key()).is_none());
    let tmp_left = std::fs::read_dir(cache.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(tmp_left, 0, "tmp/ was not cleared");
    let abs = std::fs::canonicalize(&cache).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        kentongan_image::cache::mounts_below(&abs).is_empty(),
        "mounts left under the cache"
    );
}

fn walk_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .flat_map(|stage| {
                    std::fs::read_dir(stage.path())
                        .map(|k| k.flatten().collect::<Vec<_>>())
                        .unwrap_or_default()
                })
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn dummy_key() -> kentongan_image::StageKey {
    kentongan_image::StageKey::parse(&"0".repeat(64)).unwrap_or_else(|| panic!("key"))
}

#[test]
fn a_build_killed_with_sigkill_leaves_nothing_trusted() {
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap_or_else(|e| panic!("{e}"));
    interrupted_build(scratch.path(), |pid| {
        // Only the builder dies; the tools it ran find their pipes closed.
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
}

#[test]
fn a_build_interrupted_with_ctrl_c_leaves_nothing_trusted() {
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap_or_else(|e| panic!("{e}"));
    interrupted_build(scratch.path(), |pid| {
        // Ctrl-C in a terminal signals the whole foreground process group.
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{pid}")])
            .status();
    });
}
