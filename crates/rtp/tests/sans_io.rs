//! The crate is sans-IO: nothing in src/ may read a clock, open a socket, spawn a thread or
//! draw its own randomness (clippy.toml is per workspace, so the rule is a test).
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn source_has_no_io_clock_threads_or_entropy() {
    let forbidden = [
        "Instant::now",
        "SystemTime",
        "UdpSocket",
        "TcpStream",
        "std::net",
        "tokio",
        "thread::spawn",
        "std::fs",
        "rand::",
        "getrandom",
        "OsRng",
        "std::env",
    ];
    let mut files = Vec::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for f in forbidden {
            assert!(!code.contains(f), "{} uses {f}", path.display());
        }
    }
    assert!(files.len() >= 4, "only {} source files found", files.len());
}
