//! The library is sans-IO: nothing in src/ (outside the kentongan-tones tool in src/bin/) may
//! read a clock, open a socket or a file, or spawn a thread. (clippy.toml is per workspace,
//! so the rule is a test.)
#![allow(clippy::unwrap_used)]

#[test]
fn library_source_has_no_io_clock_or_threads() {
    let forbidden = [
        "Instant::now",
        "SystemTime",
        "UdpSocket",
        "TcpStream",
        "TcpListener",
        "tokio",
        "thread::spawn",
        "std::fs",
        "File::",
        "std::env",
    ];
    let dir = format!("{}/src", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue; // src/bin: the tool reads files, it is not the library
        }
        let text = std::fs::read_to_string(&path).unwrap();
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
    assert!(checked >= 12, "only {checked} files checked");
}
