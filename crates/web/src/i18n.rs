//! The web admin's two languages. Every word a page shows goes through [`Lang::t`] (or
//! [`Lang::f`] for a sentence with values in it), keyed by its English text, so a page reads
//! the same in English as its source and a missing Indonesian word is caught by a unit test
//! (which reads every template and source file for `t("…")` and `f("…")`), not by an office.
//!
//! The validation messages the backend returns are the CLI's and stay in English: they are
//! the same sentences an operator finds in the README and the daemon's log.

use std::fmt::Display;

/// A page language; Bahasa Indonesia unless the config or the admin says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    /// The BCP 47 code: the `lang` attribute, the form value and what the store keeps.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }

    /// Only the two codes; anything else is no language.
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "id" => Some(Lang::Id),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language the header's switch offers.
    pub fn other(self) -> Lang {
        match self {
            Lang::Id => Lang::En,
            Lang::En => Lang::Id,
        }
    }

    /// The language's name in itself, as the switch's button says it.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Id => "Bahasa Indonesia",
            Lang::En => "English",
        }
    }

    /// `en` in this language; a word the table lacks stays English (the unit test keeps the
    /// table complete, so that is a bug, never a blank page).
    pub fn t(self, en: &str) -> &str {
        match self {
            Lang::En => en,
            Lang::Id => WORDS
                .iter()
                .find(|(e, _)| *e == en)
                .map_or(en, |(_, id)| *id),
        }
    }

    /// [`Lang::t`] of a sentence whose `{}` are filled with `args`, in order.
    pub fn f(self, en: &str, args: &[&dyn Display]) -> String {
        let mut out = String::new();
        let mut args = args.iter();
        let mut parts = self.t(en).split("{}");
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for part in parts {
            if let Some(a) = args.next() {
                out.push_str(&a.to_string());
            }
            out.push_str(part);
        }
        out
    }
}

/// (English, Bahasa Indonesia). Sentences with values keep their `{}` in both.
const WORDS: &[(&str, &str)] = &[
    // The header.
    ("Dashboard", "Dasbor"),
    ("Extensions", "Ekstensi"),
    ("Trunks", "Trunk"),
    ("Rates", "Tarif"),
    ("Voicemail", "Pesan suara"),
    ("Recordings", "Rekaman"),
    ("Calls", "Panggilan"),
    ("Reports", "Laporan"),
    ("Firewall", "Firewall"),
    ("Log out", "Keluar"),
    // Words many pages share.
    ("Add", "Tambah"),
    ("Address", "Alamat"),
    ("Callee", "Penerima"),
    ("Caller", "Penelepon"),
    ("Delete", "Hapus"),
    ("Extension", "Ekstensi"),
    ("Length", "Durasi"),
    ("Name", "Nama"),
    ("Newer", "Lebih baru"),
    ("Next", "Berikutnya"),
    ("Number", "Nomor"),
    ("Older", "Lebih lama"),
    ("Play", "Putar"),
    ("Previous", "Sebelumnya"),
    ("Search", "Cari"),
    ("State", "Status"),
    ("Status", "Status"),
    ("Trunk", "Trunk"),
    ("of", "dari"),
    ("page", "halaman"),
    // Login.
    ("Log in", "Masuk"),
    ("Password", "Kata sandi"),
    (
        "There is no admin account yet, so no page works. On the PBX, run",
        "Belum ada akun admin, jadi belum ada halaman yang bisa dipakai. Di PBX, jalankan",
    ),
    ("and type the password.", "lalu ketik kata sandinya."),
    ("Wrong name or password.", "Nama atau kata sandi salah."),
    (
        "Too many failed logins for this account; try again in {} s.",
        "Terlalu banyak login gagal untuk akun ini; coba lagi dalam {} detik.",
    ),
    // Dashboard.
    ("registrations", "registrasi"),
    ("live calls", "panggilan aktif"),
    ("calls today", "panggilan hari ini"),
    ("uptime", "waktu aktif"),
    ("version", "versi"),
    ("Registrations", "Registrasi"),
    ("Contact", "Kontak"),
    ("From", "Dari"),
    ("Transport", "Transport"),
    ("Expires in", "Berakhir dalam"),
    ("No phone is registered.", "Belum ada telepon yang terdaftar."),
    ("Live calls", "Panggilan aktif"),
    ("For", "Selama"),
    ("Hang up", "Tutup"),
    ("No call in progress.", "Tidak ada panggilan berlangsung."),
    // Extensions.
    ("Added extension", "Ekstensi ditambahkan:"),
    (
        "Its SIP password, shown only now:",
        "Kata sandi SIP-nya, hanya ditampilkan sekarang:",
    ),
    ("Add an extension", "Tambah ekstensi"),
    ("Phones", "Telepon"),
    ("Remove", "Hapus"),
    ("No extension yet.", "Belum ada ekstensi."),
    ("Removed extension {}.", "Ekstensi {} dihapus."),
    ("There is no extension {}.", "Tidak ada ekstensi {}."),
    // Calls (CDR).
    ("Disposition", "Hasil"),
    ("any", "semua"),
    ("Filter", "Saring"),
    ("calls", "panggilan"),
    ("No call matches.", "Tidak ada panggilan yang cocok."),
    ("Start", "Mulai"),
    ("Duration", "Durasi"),
    // Firewall.
    ("Ban an address", "Blokir alamat"),
    ("Hours", "Jam"),
    ("Ban", "Blokir"),
    ("Banned addresses", "Alamat yang diblokir"),
    ("Reason", "Alasan"),
    ("Time left", "Sisa waktu"),
    ("Lift", "Cabut"),
    ("No address is banned.", "Tidak ada alamat yang diblokir."),
    ("Trusted networks", "Jaringan tepercaya"),
    ("Never banned; set in", "Tidak pernah diblokir; diatur di"),
    ("of the configuration.", "pada konfigurasi."),
    ("None.", "Tidak ada."),
    ("Banned {} for {} h.", "{} diblokir selama {} jam."),
    ("Lifted the ban on {}.", "Blokir {} dicabut."),
    // Trunks, LCR explain, savings.
    ("Kind", "Jenis"),
    ("Channels", "Kanal"),
    ("Operator", "Operator"),
    ("Keepalive", "Keepalive"),
    ("expires in", "berakhir dalam"),
    ("No trunks: add a", "Belum ada trunk: tambahkan tabel"),
    ("table to the configuration.", "ke konfigurasi."),
    ("LCR explain", "Penjelasan LCR"),
    (
        "At (e.g. mon 10:00; empty: now)",
        "Pada (mis. mon 10:00; kosong: sekarang)",
    ),
    ("Explain", "Jelaskan"),
    ("class", "kelas"),
    ("operator", "operator"),
    ("Rank", "Peringkat"),
    ("Cost of", "Biaya"),
    ("Why", "Alasan"),
    ("No route.", "Tidak ada rute."),
    ("Not used:", "Tidak dipakai:"),
    ("Savings report", "Laporan penghematan"),
    ("Month (YYYY-MM)", "Bulan (YYYY-MM)"),
    ("Report", "Laporkan"),
    ("Minutes", "Menit"),
    ("Actual", "Aktual"),
    ("Most expensive", "Termahal"),
    ("Saved", "Hemat"),
    ("No trunk calls in", "Tidak ada panggilan trunk pada"),
    (
        "call(s) left out: their trunk is no [[trunk]] now, or their number does not parse.",
        "panggilan tidak dihitung: trunk-nya kini bukan [[trunk]], atau nomornya tidak terbaca.",
    ),
    // Rates.
    ("Upload a rates CSV", "Unggah CSV tarif"),
    ("Columns", "Kolom"),
    ("The whole file replaces", "Seluruh berkas menggantikan"),
    ("or nothing changes.", "atau tidak ada yang berubah."),
    ("File", "Berkas"),
    ("Upload", "Unggah"),
    ("Prefix", "Prefiks"),
    ("rates", "tarif"),
    ("Line", "Baris"),
    ("Per minute", "Per menit"),
    ("Connect fee", "Biaya sambung"),
    ("Increment", "Kelipatan"),
    ("When", "Kapan"),
    ("all day", "sepanjang hari"),
    ("No rate matches.", "Tidak ada tarif yang cocok."),
    (
        "The file is not UTF-8 text; save it as CSV (UTF-8).",
        "Berkas ini bukan teks UTF-8; simpan sebagai CSV (UTF-8).",
    ),
    (
        "Choose a rates CSV file to upload.",
        "Pilih berkas CSV tarif untuk diunggah.",
    ),
    (
        "Loaded {} rates for {} trunks. The running daemon uses them after `systemctl reload kentongan-pbx`.",
        "{} tarif untuk {} trunk dimuat. Daemon yang berjalan memakainya setelah `systemctl reload kentongan-pbx`.",
    ),
    (
        "Nothing was loaded: fix the lines below and upload the whole file again.",
        "Tidak ada yang dimuat: perbaiki baris di bawah lalu unggah seluruh berkas lagi.",
    ),
    // Voicemail and recordings.
    ("Mailbox", "Kotak pesan"),
    ("New", "Baru"),
    ("Old", "Lama"),
    ("No extensions.", "Tidak ada ekstensi."),
    ("Received (UTC)", "Diterima (UTC)"),
    ("No messages.", "Tidak ada pesan."),
    ("Say which message to delete.", "Sebutkan pesan mana yang dihapus."),
    (
        "Deleted message {} of mailbox {}.",
        "Pesan {} di kotak pesan {} dihapus.",
    ),
    ("Mailbox {} has no message {}.", "Kotak pesan {} tidak punya pesan {}."),
    ("recordings", "rekaman"),
    ("No recordings.", "Tidak ada rekaman."),
    (
        "stereo: caller left, callee right",
        "stereo: penelepon kiri, penerima kanan",
    ),
    ("Start (UTC)", "Mulai (UTC)"),
    ("Call-ID", "Call-ID"),
    // Conference.
    ("Conference", "Konferensi"),
    ("The rooms are set in", "Ruang diatur di"),
    (
        "of the configuration; this page shows who is in them now.",
        "pada konfigurasi; halaman ini menampilkan siapa yang ada di dalamnya sekarang.",
    ),
    ("locked", "terkunci"),
    ("members", "anggota"),
    ("Member", "Anggota"),
    ("Since (UTC)", "Sejak (UTC)"),
    ("talking", "berbicara"),
    ("muted", "dibisukan"),
    ("admin", "admin"),
    ("Mute", "Bisukan"),
    ("Unmute", "Bunyikan"),
    ("Kick", "Keluarkan"),
    ("Nobody is in this room.", "Tidak ada orang di ruang ini."),
    ("No rooms: add a", "Belum ada ruang: tambahkan tabel"),
    (
        "Say which member: the number in the room's list.",
        "Sebutkan anggotanya: nomor di daftar ruang.",
    ),
    (
        "Member {} of room {}: mute switched.",
        "Anggota {} di ruang {}: bisu diubah.",
    ),
    ("Member {} of room {} is hung up.", "Anggota {} di ruang {} diputus."),
    // Routing.
    ("Routing", "Rute"),
    (
        "These are set in the configuration file, which is their source of truth: edit it, check it with",
        "Semua ini diatur di berkas konfigurasi, sumber kebenarannya: ubah berkas itu, periksa dengan",
    ),
    (", then", ", lalu"),
    (
        "This page shows the configuration the daemon started with (a reload shows here after a restart).",
        "Halaman ini menampilkan konfigurasi saat daemon dimulai (perubahan lewat reload tampil di sini setelah restart).",
    ),
    ("DIDs", "DID"),
    ("Goes to", "Menuju"),
    ("No DIDs.", "Tidak ada DID."),
    ("Ring groups", "Grup dering"),
    ("Strategy", "Strategi"),
    ("Members", "Anggota"),
    ("Rings", "Berdering"),
    ("No answer", "Tak dijawab"),
    ("No ring groups.", "Tidak ada grup dering."),
    ("IVRs", "IVR"),
    ("Greeting", "Sapaan"),
    ("Keys", "Tombol"),
    ("Otherwise", "Selain itu"),
    ("Wait", "Tunggu"),
    ("Direct dial", "Panggil langsung"),
    ("goodbye", "selamat tinggal"),
    ("yes", "ya"),
    ("no", "tidak"),
    ("No IVRs.", "Tidak ada IVR."),
    ("Office hours", "Jam kerja"),
    ("Time zone", "Zona waktu"),
    ("Open", "Buka"),
    ("Holidays", "Hari libur"),
    ("In hours", "Jam kerja ke"),
    ("After hours", "Di luar jam ke"),
    ("No office hours.", "Tidak ada jam kerja."),
    // Music on hold.
    ("Music on hold", "Musik tunggu"),
    ("Upload a WAV file", "Unggah berkas WAV"),
    (
        "Mono, 8, 16 or 48 kHz, at most 2 MB. Files play in turn by name, a second apart; without any, the built-in tune plays.",
        "Mono, 8, 16 atau 48 kHz, paling besar 2 MB. Berkas diputar bergiliran menurut nama, berjeda satu detik; tanpa berkas, lagu bawaan yang diputar.",
    ),
    ("Directory", "Direktori"),
    ("Rate", "Laju"),
    ("skipped:", "dilewati:"),
    (
        "No files: the built-in tune plays.",
        "Tidak ada berkas: lagu bawaan yang diputar.",
    ),
    ("Choose a WAV file to upload.", "Pilih berkas WAV untuk diunggah."),
    (
        "Added {}; it plays from the next hold.",
        "{} ditambahkan; diputar mulai tunggu berikutnya.",
    ),
    ("Deleted {}.", "{} dihapus."),
    ("There is no file {}.", "Tidak ada berkas {}."),
    // System.
    ("System", "Sistem"),
    ("Admin accounts", "Akun admin"),
    ("Role", "Peran"),
    ("Created (UTC)", "Dibuat (UTC)"),
    ("Add an admin account", "Tambah akun admin"),
    ("Change a password", "Ganti kata sandi"),
    ("New password", "Kata sandi baru"),
    ("Change", "Ganti"),
    (
        "Only an account with the admin role can change admin accounts.",
        "Hanya akun berperan admin yang bisa mengubah akun admin.",
    ),
    ("Added admin account {}.", "Akun admin {} ditambahkan."),
    ("Removed admin account {}.", "Akun admin {} dihapus."),
    (
        "Changed the password of {}; its sessions have ended.",
        "Kata sandi {} diganti; sesinya telah diakhiri.",
    ),
    // Reports.
    ("Savings:", "Penghematan:"),
    ("max", "maks"),
    ("Calls per day, last 30 days", "Panggilan per hari, 30 hari terakhir"),
    (
        "Minutes per trunk, last 30 days",
        "Menit per trunk, 30 hari terakhir",
    ),
    ("Cost per trunk, last 30 days", "Biaya per trunk, 30 hari terakhir"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every template and every source file of this crate: where page words are written.
    const SOURCES: &[(&str, &str)] = &[
        ("base.html", include_str!("../templates/base.html")),
        ("cdr.html", include_str!("../templates/cdr.html")),
        ("chart.html", include_str!("../templates/chart.html")),
        (
            "conference.html",
            include_str!("../templates/conference.html"),
        ),
        (
            "dashboard.html",
            include_str!("../templates/dashboard.html"),
        ),
        (
            "extensions.html",
            include_str!("../templates/extensions.html"),
        ),
        ("firewall.html", include_str!("../templates/firewall.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("rates.html", include_str!("../templates/rates.html")),
        (
            "recordings.html",
            include_str!("../templates/recordings.html"),
        ),
        ("reports.html", include_str!("../templates/reports.html")),
        ("trunks.html", include_str!("../templates/trunks.html")),
        (
            "voicemail.html",
            include_str!("../templates/voicemail.html"),
        ),
        ("routes.rs", include_str!("routes.rs")),
        ("templates.rs", include_str!("templates.rs")),
        ("firewall.rs", include_str!("firewall.rs")),
        ("trunks.rs", include_str!("trunks.rs")),
        ("voicemail.rs", include_str!("voicemail.rs")),
        ("charts.rs", include_str!("charts.rs")),
        ("conference.rs", include_str!("conference.rs")),
        ("routing.html", include_str!("../templates/routing.html")),
        ("routing.rs", include_str!("routing.rs")),
        ("moh.html", include_str!("../templates/moh.html")),
        ("moh.rs", include_str!("moh.rs")),
        ("system.html", include_str!("../templates/system.html")),
        ("system.rs", include_str!("system.rs")),
    ];

    /// The string literals handed to `t(`, `f(` or marked `word(` in `text`.
    fn keys(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for call in ["t(\"", "f(\"", "word(\""] {
            let mut rest = text;
            while let Some(i) = rest.find(call) {
                let start = i + call.len();
                let before = rest[..i].chars().last();
                rest = &rest[start..];
                // `.t(`, `.f(` or a bare `word(`; not `format!(` or `split(`.
                if call != "word(\"" && before != Some('.') {
                    continue;
                }
                if let Some(end) = rest.find('"') {
                    out.push(rest[..end].to_owned());
                    rest = &rest[end..];
                }
            }
        }
        out
    }

    #[test]
    fn every_page_word_is_in_both_languages() {
        let mut seen = 0;
        let mut missing = Vec::new();
        for (file, text) in SOURCES {
            for key in keys(text) {
                seen += 1;
                let found = WORDS.iter().find(|(en, _)| *en == key);
                let Some((en, id)) = found else {
                    missing.push(format!("{file}: {key:?}"));
                    continue;
                };
                assert!(!en.is_empty() && !id.is_empty(), "{file}: {key:?} is blank");
                assert_eq!(
                    en.matches("{}").count(),
                    id.matches("{}").count(),
                    "{key:?}: both languages take the same values"
                );
            }
        }
        assert!(
            missing.is_empty(),
            "not in WORDS (add each with its Indonesian): {missing:#?}"
        );
        assert!(
            seen > 150,
            "the scan found only {seen} words: is it broken?"
        );
    }

    #[test]
    fn the_table_has_each_word_once() {
        for (i, (en, _)) in WORDS.iter().enumerate() {
            assert!(
                !WORDS[..i].iter().any(|(e, _)| e == en),
                "{en:?} is in WORDS twice"
            );
        }
    }

    #[test]
    fn words_and_sentences_translate() {
        assert_eq!(Lang::Id.t("Dashboard"), "Dasbor");
        assert_eq!(Lang::En.t("Dashboard"), "Dashboard");
        assert_eq!(Lang::Id.t("not a word"), "not a word");
        assert_eq!(
            Lang::Id.f("Banned {} for {} h.", &[&"203.0.113.5", &2]),
            "203.0.113.5 diblokir selama 2 jam."
        );
        assert_eq!(
            Lang::En.f("Banned {} for {} h.", &[&"203.0.113.5", &2]),
            "Banned 203.0.113.5 for 2 h."
        );
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::Id.other(), Lang::En);
    }
}
