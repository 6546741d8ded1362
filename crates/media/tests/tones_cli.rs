//! The kentongan-tones tool as end-to-end tests run it: generate a WAV, analyse it back.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kentongan-tones"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kentongan-tones-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn analyze(args: &[&str]) -> serde_json::Value {
    let out = tool().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn generated_ringback_reads_back_with_its_cadence() {
    let wav = scratch("ring.wav");
    let w = wav.to_str().unwrap();
    let out = tool()
        .args([
            "--generate",
            w,
            "--tone",
            "ringback",
            "--duration-ms",
            "2000",
            "--rate",
            "16000",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = analyze(&["--freq", "425", "--freq", "1000", "--window-ms", "100", w]);
    assert_eq!(v["rate"], 16000);
    let windows = v["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 20);
    for (i, win) in windows.iter().enumerate() {
        assert_eq!(win["start_ms"], i as u64 * 100);
        let p425 = win["powers_db"][0].as_f64().unwrap();
        if i < 10 {
            assert_eq!(win["dominant"], 425.0, "window {i}: {win}");
            assert!((p425 + 16.0).abs() < 1.0, "window {i}: {p425}");
        } else {
            assert!(win["dominant"].is_null(), "window {i}: {win}");
            assert_eq!(p425, -120.0);
        }
    }
    std::fs::remove_file(&wav).unwrap();
}

#[test]
fn raw_alaw_input() {
    let raw = scratch("tone.alaw");
    let codes: Vec<u8> = (0..8000)
        .map(|i| {
            let s = 8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 8000.0).sin();
            kentongan_media::g711::alaw_encode(s as i16)
        })
        .collect();
    std::fs::write(&raw, codes).unwrap();
    let v = analyze(&[
        "--raw",
        "pcma",
        "--freq",
        "1000",
        "--freq",
        "425",
        "--window-ms",
        "500",
        raw.to_str().unwrap(),
    ]);
    let windows = v["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[1]["dominant"], 1000.0);
    std::fs::remove_file(&raw).unwrap();
}

#[test]
fn errors_say_what_to_do() {
    let out = tool()
        .args(["--freq", "425", "/nonexistent/x.wav"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: reading /nonexistent/x.wav"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    let not_wav = scratch("notwav.wav");
    std::fs::write(&not_wav, b"hello").unwrap();
    let out = tool()
        .args(["--freq", "425", not_wav.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a WAV file"), "{err}");
    std::fs::remove_file(&not_wav).unwrap();
}
