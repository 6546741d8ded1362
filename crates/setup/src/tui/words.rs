//! Which words give away an untranslated screen. The tmux test and the QEMU wizard test read
//! the console and ask [`untranslated`] for the other language's words found on it.
//!
//! Left out on purpose, because both languages use them for the same thing: "disk", "server",
//! "domain", "mode", "DHCP", "DNS", "IPv4", "IPv6", "gateway", "router", "subnet", "LAN",
//! "SIP", "PBX", "Enter", "Tab", "Esc", and the values an operator types or picks ("auto",
//! "off", "static", "dhcp", "id", "en").

use crate::validate::Language;

/// English words that must not appear on an Indonesian screen.
pub const ENGLISH: &[&str] = &[
    "language",
    "network",
    "networks",
    "address",
    "addresses",
    "password",
    "passwords",
    "host",
    "name",
    "names",
    "time",
    "zone",
    "extension",
    "extensions",
    "trusted",
    "summary",
    "warning",
    "erase",
    "erases",
    "type",
    "move",
    "choose",
    "next",
    "back",
    "quit",
    "install",
    "installed",
    "installing",
    "via",
    "needs",
    "must",
    "use",
    "shown",
    "strong",
    "weak",
    "the",
    "again",
    "empty",
    "failed",
    "done",
];

/// Indonesian words that must not appear on an English screen.
pub const INDONESIAN: &[&str] = &[
    "bahasa",
    "jaringan",
    "alamat",
    "kata",
    "sandi",
    "nama",
    "zona",
    "waktu",
    "ekstensi",
    "tepercaya",
    "ringkasan",
    "perhatian",
    "hapus",
    "dihapus",
    "ketik",
    "pindah",
    "pilih",
    "lanjut",
    "kembali",
    "keluar",
    "pasang",
    "memasang",
    "terpasang",
    "lemah",
    "kuat",
    "harus",
    "gunakan",
    "contoh",
    "bernilai",
    "ulangi",
    "selesai",
    "gagal",
    "melalui",
    "untuk",
];

/// The words of the language other than `lang` found on `screen` (case-insensitive, whole
/// words), each once, in list order. Spans in backticks or double quotes are skipped, line
/// by line: they are answer-file keys (`network.address`) and values as typed, which stay as
/// they are in both languages.
pub fn untranslated(lang: Language, screen: &str) -> Vec<&'static str> {
    let other = match lang {
        Language::Id => ENGLISH,
        Language::En => INDONESIAN,
    };
    let mut seen = std::collections::BTreeSet::new();
    for line in screen.lines() {
        let mut prose = String::new();
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '`' || c == '"' => quote = Some(c),
                None => prose.push(c),
            }
            if quote.is_some() {
                prose.push(' ');
            }
        }
        for word in prose.split(|c: char| !c.is_alphanumeric()) {
            let word = word.to_lowercase();
            if let Some(w) = other.iter().find(|w| **w == word) {
                seen.insert(*w);
            }
        }
    }
    other.iter().copied().filter(|w| seen.contains(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_whole_words_of_the_other_language_only() {
        let id =
            "Kentongan — Jaringan (2/7)\n  Alamat IPv4: 10.0.2.15_\nThe address needs a prefix";
        assert_eq!(
            untranslated(Language::Id, id),
            vec!["address", "needs", "the"]
        );
        // Inside a longer word, or in a key or a typed value, an English word is not prose.
        let id =
            "`network.address` harus memiliki panjang prefiks, contoh \"the.host/24\"\nhosting";
        assert!(untranslated(Language::Id, id).is_empty());
        assert_eq!(
            untranslated(Language::En, "WARNING: Ketik YES; KATA sandi"),
            vec!["kata", "sandi", "ketik"]
        );
        assert!(untranslated(Language::En, "Type YES to erase /dev/vda").is_empty());
    }

    #[test]
    fn the_two_lists_do_not_share_a_word() {
        for w in ENGLISH {
            assert!(!INDONESIAN.contains(w), "{w}");
            assert_eq!(*w, w.to_lowercase());
        }
        for w in INDONESIAN {
            assert_eq!(*w, w.to_lowercase());
        }
    }
}
