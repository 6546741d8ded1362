//! Inputs that once crashed a fuzz target. Each must now parse or fail cleanly.
#![allow(clippy::unwrap_used)]

use kentongan_sip::Message;

#[test]
fn fuzz_findings_do_not_panic() {
    let dir = format!("{}/tests/fixtures/fuzz", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(m) = Message::parse(data) {
            assert!(Message::parse(m.to_bytes()).is_ok());
        }
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn multibyte_utf8_where_the_version_should_be() {
    // Found by cargo-fuzz: slicing "sipƕ…" at byte 4 split a UTF-8 character.
    assert!(Message::parse(&b"REGISTER sip:a SIP\xc6\x95x\r\n\r\n"[..]).is_err());
    assert!(Message::parse(&b"SI\xc6\x95 200 OK\r\n\r\n"[..]).is_err());
}
