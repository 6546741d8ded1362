//! The crate is sans-IO: nothing in src/ may read a clock, open a socket, spawn a thread or
//! task, or seed its own randomness. (clippy.toml is per workspace, so the rule is a test.)
#![allow(clippy::unwrap_used)]

#[test]
fn source_has_no_io_clock_threads_or_entropy() {
    let forbidden = [
        "Instant::now",
        "SystemTime::now",
        "UdpSocket",
        "TcpStream",
        "TcpListener",
        "tokio",
        "thread::spawn",
        "std::fs",
        "rand::",
        "getrandom",
        "std::env",
    ];
    let mut dirs = vec![std::path::PathBuf::from(format!(
        "{}/src",
        env!("CARGO_MANIFEST_DIR")
    ))];
    let mut files = Vec::new();
    // Modules may live in subdirectories (src/event/), and those are library code too.
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may use a real Instant as an arbitrary origin.
        // Doc examples run as doctests, outside the library, so they may too.
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
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} files found");
}
