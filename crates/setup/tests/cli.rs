//! The binary's contract: exit codes, `error:`/`hint:` lines, and that a bad answer file
//! writes nothing, neither with `validate-answer` nor with `apply`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn answers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/answers")
}

fn setup(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kentongan-setup"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        v.push(e.path());
        if e.path().is_dir() {
            v.extend(listing(&e.path()));
        }
    }
    v.sort();
    v
}

#[test]
fn bad_answers_write_nothing_and_list_every_problem() {
    let facts = answers().join("facts.json");
    let facts = facts.to_str().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "untouched").unwrap();
    let before = listing(scratch.path());
    for case in [
        "many_problems",
        "disk_with_partitions_no_wipe",
        "toml_syntax",
        "unknown_keys_everywhere",
    ] {
        let file = answers().join(format!("fail/{case}.toml"));
        let expected = std::fs::read_to_string(answers().join(format!("fail/{case}.txt"))).unwrap();
        let file = file.to_str().unwrap();
        let (code, stdout, stderr) = setup(&["validate-answer", file, "--facts", facts]);
        assert_eq!(code, 1, "{case}: {stderr}");
        assert!(stdout.is_empty());
        for line in expected.lines() {
            assert!(
                stderr.contains(line),
                "{case}: {line} missing from\n{stderr}"
            );
        }
        assert!(
            stderr.contains("error: ") && stderr.contains("hint: "),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));

        let (code, _, stderr) = setup(&[
            "apply",
            "--answer",
            file,
            "--facts",
            facts,
            "--target-root",
            target.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{case}: {stderr}");
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert_eq!(listing(scratch.path()), before, "{case} wrote something");
        assert_eq!(
            std::fs::read_to_string(target.join("keep")).unwrap(),
            "untouched"
        );
    }
}

#[test]
fn good_answer_validates_and_applies_to_a_directory() {
    let facts = answers().join("facts.json");
    let file = answers().join("ok/issue_example.toml");
    let (code, stdout, stderr) = setup(&[
        "validate-answer",
        file.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"device\": \"/dev/vda\""));
    assert!(!stdout.contains("Tg7!") && !stderr.contains("Tg7!"));

    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let (code, _, stderr) = setup(&[
        "apply",
        "--answer",
        file.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
        "--target-root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Skipped partition"), "{stderr}");
    assert!(root.join("var/lib/kentongan/setup-done").exists());
    assert!(!stderr.contains("Tg7!") && !stderr.contains("Meja.Depan"));
}
