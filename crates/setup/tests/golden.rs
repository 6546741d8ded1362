//! Golden answer files: `answers/ok/<case>.toml` must validate to the plan in `<case>.json`
//! (secrets redacted); `answers/fail/<case>.toml` must fail with exactly `<case>.txt`, and
//! with `<case>.id.txt` in Bahasa Indonesia (what the wizard shows).
//! A case may bring its own machine as `<case>.facts.json`; otherwise `answers/facts.json`.
//! `KENTONGAN_BLESS=1 cargo test -p kentongan-setup --test golden` rewrites the expectations.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use kentongan_setup::tui::untranslated;
use kentongan_setup::validate::Language;
use kentongan_setup::{validate, Answer, Facts};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/answers")
}

fn facts_for(case: &Path) -> Facts {
    let own = case.with_extension("facts.json");
    let path = if own.exists() {
        own
    } else {
        dir().join("facts.json")
    };
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// Compares `actual` with the expectation file, or rewrites it when blessing. Returns a
/// description of the mismatch.
fn check(expected: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("KENTONGAN_BLESS").is_some() {
        std::fs::write(expected, actual).unwrap();
        return None;
    }
    match std::fs::read_to_string(expected) {
        Ok(e) if e == actual => None,
        Ok(e) => Some(format!(
            "{}:\n--- expected\n{e}\n--- actual\n{actual}",
            expected.display()
        )),
        Err(_) => Some(format!(
            "{} is missing; run with KENTONGAN_BLESS=1 to write it. Actual:\n{actual}",
            expected.display()
        )),
    }
}

#[test]
fn ok_cases_validate_to_their_plan() {
    let mut failures = Vec::new();
    let all = cases("ok");
    assert!(all.len() >= 4);
    for case in all {
        let text = std::fs::read_to_string(&case).unwrap();
        let result = Answer::parse(&text).and_then(|a| validate(&a, &facts_for(&case)));
        match result {
            Ok(plan) => {
                let json = serde_json::to_string_pretty(&plan).unwrap() + "\n";
                assert!(!json.contains("Meja.Depan") && !json.contains("Tg7!"));
                failures.extend(check(&case.with_extension("json"), &json));
            }
            Err(p) => failures.push(format!("{}: expected ok, got:\n{p}", case.display())),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn fail_cases_report_every_problem() {
    let mut failures = Vec::new();
    let all = cases("fail");
    assert!(all.len() >= 20);
    for case in all {
        let text = std::fs::read_to_string(&case).unwrap();
        let result = Answer::parse(&text).and_then(|a| validate(&a, &facts_for(&case)));
        match result {
            Ok(_) => failures.push(format!("{}: expected problems, got a plan", case.display())),
            Err(p) => {
                let shown = p.to_string() + "\n";
                // No message ever repeats a password from the file.
                for secret in [
                    "Tg7!pz0Qmw",
                    "Meja.Depan",
                    "rahasia1",
                    "bambooforest",
                    "gudang belakang",
                ] {
                    assert!(
                        !shown.contains(secret),
                        "{}: message shows a password",
                        case.display()
                    );
                }
                failures.extend(check(&case.with_extension("txt"), &shown));
                // The wizard shows the same problems in Bahasa Indonesia: each sentence
                // exists in both languages, they differ, and neither leaks the other's words.
                for problem in &p.0 {
                    let (en, id) = (problem.text(Language::En), problem.text(Language::Id));
                    if en == id {
                        failures.push(format!("{}: not translated: {en}", case.display()));
                    }
                    for (lang, text) in [(Language::En, en), (Language::Id, id)] {
                        let words = untranslated(lang, text);
                        if !words.is_empty() {
                            failures.push(format!(
                                "{}: {words:?} in the {} text: {text}",
                                case.display(),
                                lang.code()
                            ));
                        }
                    }
                }
                let indonesian: String =
                    p.0.iter()
                        .map(|p| format!("{}\n", p.text(Language::Id)))
                        .collect();
                failures.extend(check(&case.with_extension("id.txt"), &indonesian));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
