//! Content keys: sha256 over labelled, length-prefixed fields, so that no two different sets of
//! inputs can produce the same byte stream.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bumped whenever a stage's implementation changes what it produces for the same inputs, so old
/// cache entries stop matching instead of being trusted wrongly.
pub const BUILDER_FORMAT: &str = "kentongan-image/1";

/// The sha256 content key of one stage's inputs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StageKey(String);

impl StageKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
    /// Accepts a key read back from disk if it looks like one.
    pub fn parse(s: &str) -> Option<StageKey> {
        (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| StageKey(s.to_owned()))
    }
}

impl fmt::Display for StageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn new(stage: &str) -> KeyBuilder {
        let mut k = KeyBuilder(Sha256::new());
        k.field("format", BUILDER_FORMAT).field("stage", stage);
        k
    }

    pub fn field(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut KeyBuilder {
        let value = value.as_ref();
        for part in [name.as_bytes(), value] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
        self
    }

    pub fn finish(self) -> StageKey {
        StageKey(hex(&self.0.finalize()))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed() {
        let mut a = KeyBuilder::new("s");
        a.field("x", "ab").field("y", "c");
        let mut b = KeyBuilder::new("s");
        b.field("x", "a").field("y", "bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
