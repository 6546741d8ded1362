//! The one validator: [`validate`] turns an [`Answer`] (as written) and the machine's
//! [`Facts`] into an [`InstallPlan`] whose fields cannot hold a bad mix, or into every
//! [`Problem`] found. The installer, `validate-answer` and the TUI all call it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::answer::Answer;
use crate::facts::{Disk, Facts, MIN_DISK_BYTES};
use crate::net::{Cidr, CidrError};
use crate::secret::Secret;

mod network;
use network::check_network;

/// A sentence in both languages of the wizard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bilingual {
    pub en: String,
    pub id: String,
}

impl Bilingual {
    pub fn new(en: impl fmt::Display, id: impl fmt::Display) -> Bilingual {
        Bilingual {
            en: en.to_string(),
            id: id.to_string(),
        }
    }

    pub fn get(&self, lang: Language) -> &str {
        match lang {
            Language::Id => &self.id,
            Language::En => &self.en,
        }
    }
}

/// One thing wrong with an answer: the dotted key, the rule and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `network.address`, `extension[1].number`, or empty for the file as a whole.
    pub key: String,
    /// The whole sentence in English, starting with the key in backticks. `validate-answer`,
    /// `apply` and the logs use it: an answer file may not parse far enough to say its
    /// language, and one language keeps the CLI's output greppable and stable.
    pub message: String,
    /// The same sentence in Bahasa Indonesia, for the wizard.
    #[serde(skip)]
    pub indonesian: String,
}

impl Problem {
    /// `en` and `id` continue the sentence after the key (or after "the answer file is").
    pub fn new(key: &str, en: impl fmt::Display, id: impl fmt::Display) -> Problem {
        let (message, indonesian) = if key.is_empty() {
            (
                format!("the answer file is {en}"),
                format!("berkas jawaban {id}"),
            )
        } else {
            (format!("`{key}` {en}"), format!("`{key}` {id}"))
        };
        Problem {
            key: key.to_owned(),
            message,
            indonesian,
        }
    }

    /// The sentence in the wizard's language.
    pub fn text(&self, lang: Language) -> &str {
        match lang {
            Language::Id => &self.indonesian,
            Language::En => &self.message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every problem found in an answer, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Interface language of the wizard and of the installed system's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Id,
    En,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Id => "id",
            Language::En => "en",
        }
    }
}

/// How the administrator (`root`) password reaches `/etc/shadow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminCredential {
    /// Hashed (SHA-512 crypt) by the installer; the plaintext is never written.
    Password(Secret),
    /// A `$y$…` or `$6$…` crypt hash, written as is.
    Hash(#[serde(serialize_with = "redact")] String),
}

fn redact<S: serde::Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(crate::secret::REDACTED)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Ipv4Plan {
    Dhcp,
    Static {
        address: Cidr,
        gateway: Option<Ipv4Addr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Ipv6Plan {
    Off,
    /// Router advertisements (SLAAC), plus DHCPv6 when the router says so.
    Auto,
    Static {
        address: Cidr,
        gateway: Option<Ipv6Addr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkPlan {
    /// `None`: every wired interface.
    pub interface: Option<String>,
    pub ipv4: Ipv4Plan,
    pub ipv6: Ipv6Plan,
    pub dns: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskPlan {
    pub device: String,
    pub size_bytes: u64,
    /// True when the disk holds data that the install erases.
    pub erases_data: bool,
    pub initrd: InitrdChoice,
}

/// `disk.initrd`: where the installed system's initrd comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InitrdChoice {
    /// The image's prebuilt one, unless it lacks this machine's disk driver.
    #[default]
    Prebuilt,
    /// Built on this machine (slower; for hardware the prebuilt one might not know).
    Build,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionPlan {
    pub number: String,
    pub name: String,
    pub password: Secret,
}

/// A checked answer: everything the installer needs, nothing it has to check again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallPlan {
    pub language: Language,
    pub hostname: String,
    pub domain: String,
    pub timezone: String,
    pub admin: AdminCredential,
    pub sip_domain: String,
    pub network: NetworkPlan,
    pub disk: DiskPlan,
    pub trusted: Vec<Cidr>,
    pub extensions: Vec<ExtensionPlan>,
}

impl InstallPlan {
    pub fn fqdn(&self) -> String {
        format!("{}.{}", self.hostname, self.domain)
    }

    /// A few lines for `validate-answer` and the wizard's last page, in `lang`; no secrets.
    pub fn summary(&self, lang: Language) -> String {
        let en = lang == Language::En;
        let net = match &self.network.ipv4 {
            Ipv4Plan::Dhcp => "DHCP".to_owned(),
            Ipv4Plan::Static { address, gateway } => match gateway {
                Some(g) if en => format!("{address} via {g}"),
                Some(g) => format!("{address} melalui {g}"),
                None => address.to_string(),
            },
        };
        let erase = match (self.disk.erases_data, en) {
            (false, _) => "",
            (true, true) => " (ERASES its data)",
            (true, false) => " (datanya DIHAPUS)",
        };
        let labels: [&str; 6] = if en {
            [
                "host:      ",
                "network:   ",
                "disk:      ",
                "timezone:  ",
                "SIP domain:",
                "extensions:",
            ]
        } else {
            [
                "server:    ",
                "jaringan:  ",
                "disk:      ",
                "zona waktu:",
                "domain SIP:",
                "ekstensi:  ",
            ]
        };
        format!(
            "{} {}\n{} {net}\n{} {}{erase}\n{} {}\n{} {}\n{} {}",
            labels[0],
            self.fqdn(),
            labels[1],
            labels[2],
            self.disk.device,
            labels[3],
            self.timezone,
            labels[4],
            self.sip_domain,
            labels[5],
            self.extensions.len()
        )
    }
}

/// Checks an answer against the machine. Returns every problem, never just the first.
pub fn validate(answer: &Answer, facts: &Facts) -> Result<InstallPlan, Problems> {
    let mut p = Vec::new();

    let language = match answer.language.as_deref().unwrap_or("id") {
        "id" => Some(Language::Id),
        "en" => Some(Language::En),
        other => {
            p.push(Problem::new(
                "language",
                format!("is {other:?}; use \"id\" (Indonesian) or \"en\" (English)"),
                format!(
                    "bernilai {other:?}; gunakan \"id\" (Bahasa Indonesia) atau \"en\" (Inggris)"
                ),
            ));
            None
        }
    };

    let hostname = required(&mut p, "hostname", &answer.hostname, "hostname = \"pbx\"")
        .and_then(|h| check_hostname(&mut p, h));
    let domain = required(
        &mut p,
        "domain",
        &answer.domain,
        "domain = \"kantor.local\"",
    )
    .and_then(|d| check_domain(&mut p, "domain", d));

    let timezone = answer.timezone.as_deref().unwrap_or("Asia/Jakarta");
    if !facts.timezones.contains(timezone) {
        p.push(Problem::new(
            "timezone",
            format!(
                "is {timezone:?}, which is not a known time zone; use a name from /usr/share/zoneinfo such as \"Asia/Jakarta\", \"Asia/Makassar\" or \"Asia/Jayapura\""
            ),
            format!(
                "bernilai {timezone:?}, yang bukan nama zona waktu yang dikenal; gunakan nama dari /usr/share/zoneinfo seperti \"Asia/Jakarta\", \"Asia/Makassar\" atau \"Asia/Jayapura\""
            ),
        ));
    }

    let admin = match (&answer.admin_password, &answer.admin_password_hash) {
        (Some(_), Some(_)) => {
            p.push(Problem::new(
                "admin_password",
                "and `admin_password_hash` are both set; keep only one of them",
                "dan `admin_password_hash` sama-sama diisi; isi salah satu saja",
            ));
            None
        }
        (None, None) => {
            p.push(Problem::new(
                "admin_password",
                "is missing; set `admin_password` (stored hashed) or `admin_password_hash` (e.g. from `mkpasswd -m yescrypt`)",
                "belum diisi; isi `admin_password` (disimpan sebagai hash) atau `admin_password_hash` (misalnya dari `mkpasswd -m yescrypt`)",
            ));
            None
        }
        (Some(pw), None) => {
            let ok = check_password(&mut p, "admin_password", pw, &[]);
            ok.then(|| AdminCredential::Password(pw.clone()))
        }
        (None, Some(h)) => {
            if crypt_hash_ok(h) {
                Some(AdminCredential::Hash(h.clone()))
            } else {
                p.push(Problem::new(
                    "admin_password_hash",
                    "is not a yescrypt (`$y$…`) or SHA-512 crypt (`$6$…`) hash; make one with `mkpasswd -m yescrypt` or `openssl passwd -6`",
                    "bukan hash yescrypt (`$y$…`) atau SHA-512 crypt (`$6$…`); buat dengan `mkpasswd -m yescrypt` atau `openssl passwd -6`",
                ));
                None
            }
        }
    };

    let sip_domain = match &answer.sip_domain {
        Some(s) => check_domain(&mut p, "sip_domain", s),
        None => domain.clone(),
    };

    let network = match &answer.network {
        None => {
            p.push(Problem::new(
                "network",
                "is missing; add a [network] table with `mode = \"dhcp\"` or `mode = \"static\"` and an `address`",
                "belum diisi; tambahkan tabel `[network]` berisi `mode = \"dhcp\"` atau `mode = \"static\"` beserta `address`",
            ));
            None
        }
        Some(n) => check_network(&mut p, n, facts),
    };

    let disk = match &answer.disk {
        None => {
            p.push(Problem::new(
                "disk",
                "is missing; add a [disk] table with `target = \"auto\"` or a device such as \"/dev/sda\"",
                "belum diisi; tambahkan tabel `[disk]` berisi `target = \"auto\"` atau perangkat seperti \"/dev/sda\"",
            ));
            None
        }
        Some(d) => {
            let initrd = match d.initrd.as_deref() {
                None | Some("prebuilt") => Some(InitrdChoice::Prebuilt),
                Some("build") => Some(InitrdChoice::Build),
                Some(other) => {
                    p.push(Problem::new(
                        "disk.initrd",
                        format!("is {other:?}; use \"prebuilt\" (the default) or \"build\""),
                        format!("bernilai {other:?}; gunakan \"prebuilt\" (bawaan) atau \"build\""),
                    ));
                    None
                }
            };
            check_disk(&mut p, d.target.as_deref(), d.wipe, facts).and_then(|disk| {
                Some(DiskPlan {
                    initrd: initrd?,
                    ..disk
                })
            })
        }
    };

    let mut trusted = Vec::new();
    for (i, t) in answer.firewall.trusted.iter().enumerate() {
        let key = format!("firewall.trusted[{i}]");
        match Cidr::parse(t) {
            Ok(c) if c.has_host_bits() => p.push(Problem::new(
                &key,
                format!(
                    "is {t:?}, which has host bits set; write the subnet as {}",
                    c.network()
                ),
                format!(
                    "bernilai {t:?}, yang bit di luar prefiksnya tidak nol; tulis subnetnya sebagai {}",
                    c.network()
                ),
            )),
            Ok(c) => trusted.push(c),
            Err(CidrError::NoPrefix) => p.push(Problem::new(
                &key,
                format!("is {t:?}; a trusted network needs a prefix length, e.g. \"{t}/24\" (or \"/32\" for one host)"),
                format!("bernilai {t:?}; jaringan tepercaya harus memiliki panjang prefiks, contoh \"{t}/24\" (atau \"/32\" untuk satu perangkat)"),
            )),
            Err(_) => p.push(Problem::new(
                &key,
                format!("is {t:?}, which is not a network; write it like \"192.168.1.0/24\" or \"2001:db8::/64\""),
                format!("bernilai {t:?}, yang bukan alamat jaringan; tulis seperti \"192.168.1.0/24\" atau \"2001:db8::/64\""),
            )),
        }
    }

    let extensions = check_extensions(&mut p, answer);

    if !p.is_empty() {
        return Err(Problems(p));
    }
    // Every `None` above pushed a problem, so these all hold values; a miss is still an error
    // rather than a panic.
    match (language, hostname, domain, admin, sip_domain, network, disk) {
        (
            Some(language),
            Some(hostname),
            Some(domain),
            Some(admin),
            Some(sip_domain),
            Some(network),
            Some(disk),
        ) => Ok(InstallPlan {
            language,
            hostname,
            domain,
            timezone: timezone.to_owned(),
            admin,
            sip_domain,
            network,
            disk,
            trusted,
            extensions,
        }),
        _ => Err(Problems(vec![Problem::new(
            "",
            "incomplete; fill in every section shown in the example answer file",
            "tidak lengkap; isi setiap bagian yang ada di contoh berkas jawaban",
        )])),
    }
}

fn required<'a>(
    p: &mut Vec<Problem>,
    key: &str,
    value: &'a Option<String>,
    example: &str,
) -> Option<&'a str> {
    match value.as_deref() {
        Some(v) => Some(v),
        None => {
            p.push(Problem::new(
                key,
                format!("is missing; e.g. {example}"),
                format!("belum diisi; contoh: {example}"),
            ));
            None
        }
    }
}

fn label_ok(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

fn check_hostname(p: &mut Vec<Problem>, h: &str) -> Option<String> {
    if label_ok(h) && !h.bytes().all(|b| b.is_ascii_digit()) {
        return Some(h.to_owned());
    }
    let (hint, hint_id) = if h.contains('.') {
        (
            "; put only the first part here and the rest in `domain`",
            "; tulis hanya bagian pertamanya di sini dan sisanya di `domain`",
        )
    } else {
        ("", "")
    };
    p.push(Problem::new(
        "hostname",
        format!(
            "is {h:?}; use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-', e.g. \"pbx\"{hint}"
        ),
        format!(
            "bernilai {h:?}; gunakan 1 sampai 63 huruf kecil, angka, dan '-', tidak diawali atau diakhiri '-', contoh \"pbx\"{hint_id}"
        ),
    ));
    None
}

fn check_domain(p: &mut Vec<Problem>, key: &str, d: &str) -> Option<String> {
    if d.len() <= 253 && d.split('.').all(label_ok) {
        return Some(d.to_owned());
    }
    p.push(Problem::new(
        key,
        format!(
            "is {d:?}; use dot-separated parts of lowercase letters, digits and '-', e.g. \"kantor.local\""
        ),
        format!(
            "bernilai {d:?}; gunakan bagian-bagian yang dipisahkan titik, berisi huruf kecil, angka, dan '-', contoh \"kantor.local\""
        ),
    ));
    None
}

/// Crypt hashes Debian's libcrypt verifies: yescrypt (`$y$`) and SHA-512 (`$6$`).
fn crypt_hash_ok(h: &str) -> bool {
    let b64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    let parts: Vec<&str> = h.split('$').collect();
    match parts.as_slice() {
        ["", "y", params, salt, hash] => b64(params) && b64(salt) && hash.len() == 43 && b64(hash),
        ["", "6", rounds, salt, hash] if rounds.starts_with("rounds=") => {
            rounds["rounds=".len()..].parse::<u32>().is_ok()
                && b64(salt)
                && hash.len() == 86
                && b64(hash)
        }
        ["", "6", salt, hash] => b64(salt) && hash.len() == 86 && b64(hash),
        _ => false,
    }
}

/// Minimum length; SIP accounts are brute-forced from the internet within hours.
pub const MIN_PASSWORD: usize = 10;

/// Why a password is weak, or `None`. Shared with the TUI's live strength hint.
pub fn password_weakness(pw: &str, related: &[&str]) -> Option<Bilingual> {
    let len = pw.chars().count();
    if len < MIN_PASSWORD {
        return Some(Bilingual::new(
            format!("is too short ({len} characters); use at least {MIN_PASSWORD}"),
            format!("terlalu pendek ({len} karakter); gunakan minimal {MIN_PASSWORD}"),
        ));
    }
    let classes = [
        pw.chars().any(|c| c.is_ascii_lowercase()),
        pw.chars().any(|c| c.is_ascii_uppercase()),
        pw.chars().any(|c| c.is_ascii_digit()),
        pw.chars().any(|c| !c.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    let lower = pw.to_lowercase();
    let common = [
        "password",
        "kentongan",
        "admin",
        "1234",
        "qwerty",
        "rahasia",
    ];
    if common.iter().any(|c| lower.contains(c)) {
        return Some(Bilingual::new(
            "contains a common word or sequence; choose something less guessable",
            "mengandung kata atau urutan yang umum; pilih yang lebih sulit ditebak",
        ));
    }
    if related
        .iter()
        .any(|r| r.len() >= 3 && lower.contains(&r.to_lowercase()))
    {
        return Some(Bilingual::new(
            "contains the extension number or the host name; choose something unrelated",
            "mengandung nomor ekstensi atau nama server; pilih yang tidak berkaitan",
        ));
    }
    let distinct: std::collections::BTreeSet<char> = pw.chars().collect();
    if distinct.len() < 5 {
        return Some(Bilingual::new(
            "repeats too few characters; choose something less guessable",
            "terdiri dari terlalu sedikit karakter yang berbeda; pilih yang lebih sulit ditebak",
        ));
    }
    if classes < 3 && len < 16 {
        return Some(Bilingual::new(
            "is too simple; mix at least three of lowercase, uppercase, digits and symbols, or use 16 characters or more",
            "terlalu sederhana; campurkan minimal tiga dari huruf kecil, huruf besar, angka, dan simbol, atau gunakan 16 karakter atau lebih",
        ));
    }
    None
}

fn check_password(p: &mut Vec<Problem>, key: &str, pw: &Secret, related: &[&str]) -> bool {
    match password_weakness(pw.expose(), related) {
        None => true,
        Some(why) => {
            // The message names the rule, never the password itself.
            p.push(Problem::new(key, why.en, why.id));
            false
        }
    }
}

/// The usable disks' names, in English and Indonesian (they differ only when there is none).
fn disk_names(disks: &[&Disk]) -> (String, String) {
    if disks.is_empty() {
        return ("(none found)".into(), "(tidak ada)".into());
    }
    let names = disks
        .iter()
        .map(|d| d.path.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    (names.clone(), names)
}

fn check_disk(
    p: &mut Vec<Problem>,
    target: Option<&str>,
    wipe: bool,
    facts: &Facts,
) -> Option<DiskPlan> {
    let usable: Vec<&Disk> = facts
        .disks
        .iter()
        .filter(|d| d.in_use().is_none() && !d.read_only && d.size_bytes >= MIN_DISK_BYTES)
        .collect();
    let (usable_en, usable_id) = disk_names(&usable);
    let (disk, how, how_id) = match target {
        None => {
            p.push(Problem::new(
                "disk.target",
                format!("is missing; use \"auto\" or a device: {usable_en}"),
                format!("belum diisi; gunakan \"auto\" atau sebuah perangkat: {usable_id}"),
            ));
            return None;
        }
        Some("auto") => {
            // Removable disks are never picked automatically: that is how a USB stick with
            // the ISO or someone's backups would be erased. A blank disk beats one with data.
            let fixed = || usable.iter().filter(|d| !d.removable);
            let Some(d) = fixed().find(|d| !d.has_data()).or_else(|| fixed().next()) else {
                p.push(Problem::new(
                    "disk.target",
                    format!(
                        "is \"auto\" but no fixed disk of at least {} GiB is free here; name a device (usable: {usable_en})",
                        MIN_DISK_BYTES >> 30,
                    ),
                    format!(
                        "bernilai \"auto\", tetapi di sini tidak ada disk internal minimal {} GiB yang bebas; sebutkan perangkatnya (yang bisa dipakai: {usable_id})",
                        MIN_DISK_BYTES >> 30,
                    ),
                ));
                return None;
            };
            (*d, " (chosen by \"auto\")", " (dipilih oleh \"auto\")")
        }
        Some(path) => {
            let Some(d) = facts.disks.iter().find(|d| d.path == path) else {
                p.push(Problem::new(
                    "disk.target",
                    format!(
                        "is {path:?}, which is not a disk here; use \"auto\" or one of: {usable_en}"
                    ),
                    format!(
                        "bernilai {path:?}, yang bukan disk di mesin ini; gunakan \"auto\" atau salah satu dari: {usable_id}"
                    ),
                ));
                return None;
            };
            if let Some(why) = d.in_use() {
                p.push(Problem::new(
                    "disk.target",
                    format!(
                        "is {path:?}, which cannot be installed on: {}; pick another disk",
                        why.en
                    ),
                    format!(
                        "bernilai {path:?}, yang tidak dapat dijadikan tujuan pemasangan: {}; pilih disk lain",
                        why.id
                    ),
                ));
                return None;
            }
            if d.read_only {
                p.push(Problem::new(
                    "disk.target",
                    format!("is {path:?}, which is read-only; pick another disk"),
                    format!("bernilai {path:?}, yang hanya bisa dibaca; pilih disk lain"),
                ));
                return None;
            }
            if d.size_bytes < MIN_DISK_BYTES {
                p.push(Problem::new(
                    "disk.target",
                    format!(
                        "is {path:?}, which is too small ({} MiB); Kentongan needs at least {} GiB",
                        d.size_bytes >> 20,
                        MIN_DISK_BYTES >> 30
                    ),
                    format!(
                        "bernilai {path:?}, yang terlalu kecil ({} MiB); Kentongan memerlukan minimal {} GiB",
                        d.size_bytes >> 20,
                        MIN_DISK_BYTES >> 30
                    ),
                ));
                return None;
            }
            (d, "", "")
        }
    };
    let erases_data = disk.has_data();
    if erases_data && !wipe {
        let (what, what_id) = if disk.partitions.is_empty() {
            ("a filesystem".to_owned(), "sebuah sistem berkas".to_owned())
        } else {
            let n = disk.partitions.len();
            (format!("{n} partition(s)"), format!("{n} partisi"))
        };
        p.push(Problem::new(
            "disk.wipe",
            format!(
                "is false but {}{how} holds {what}; set `disk.wipe = true` to erase it, or pick a blank disk",
                disk.path
            ),
            format!(
                "bernilai false, padahal {}{how_id} berisi {what_id}; setel `disk.wipe = true` untuk menghapusnya, atau pilih disk yang kosong",
                disk.path
            ),
        ));
        return None;
    }
    Some(DiskPlan {
        device: disk.path.clone(),
        size_bytes: disk.size_bytes,
        erases_data,
        initrd: InitrdChoice::default(),
    })
}

fn check_extensions(p: &mut Vec<Problem>, answer: &Answer) -> Vec<ExtensionPlan> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, e) in answer.extensions.iter().enumerate() {
        let key = |k: &str| format!("extension[{i}].{k}");
        let mut ok = true;
        let number = e.number.as_deref().unwrap_or("");
        if e.number.is_none() {
            p.push(Problem::new(
                &key("number"),
                "is missing; e.g. number = \"201\"",
                "belum diisi; contoh: number = \"201\"",
            ));
            ok = false;
        } else if !(2..=6).contains(&number.len())
            || !number.bytes().all(|b| b.is_ascii_digit())
            || number.starts_with('0')
        {
            p.push(Problem::new(
                &key("number"),
                format!("is {number:?}; use 2 to 6 digits not starting with 0, e.g. \"201\""),
                format!("bernilai {number:?}; gunakan 2 sampai 6 angka yang tidak diawali 0, contoh \"201\""),
            ));
            ok = false;
        } else if let Some(first) = seen.insert(number, i) {
            p.push(Problem::new(
                &key("number"),
                format!("is {number:?}, already used by `extension[{first}]`; give each extension its own number"),
                format!("bernilai {number:?}, yang sudah dipakai oleh `extension[{first}]`; beri setiap ekstensi nomornya sendiri"),
            ));
            ok = false;
        }
        if e.name.chars().count() > 64 || e.name.chars().any(char::is_control) {
            p.push(Problem::new(
                &key("name"),
                "must be at most 64 characters without control characters",
                "harus paling banyak 64 karakter, tanpa karakter kontrol",
            ));
            ok = false;
        }
        match &e.password {
            None => {
                p.push(Problem::new(
                    &key("password"),
                    "is missing; every extension needs its own password (stored as a digest hash only)",
                    "belum diisi; setiap ekstensi memerlukan kata sandinya sendiri (disimpan hanya sebagai hash digest)",
                ));
                ok = false;
            }
            Some(pw) => {
                let related = [number, answer.hostname.as_deref().unwrap_or("")];
                ok &= check_password(p, &key("password"), pw, &related);
                if let Some(admin) = &answer.admin_password {
                    if admin == pw {
                        p.push(Problem::new(
                            &key("password"),
                            "is the same as `admin_password`; a phone's password must not open the server",
                            "sama dengan `admin_password`; kata sandi telepon tidak boleh sekaligus membuka akses ke server",
                        ));
                        ok = false;
                    }
                }
            }
        }
        if ok {
            out.push(ExtensionPlan {
                number: number.to_owned(),
                name: e.name.clone(),
                password: e.password.clone().unwrap_or_default(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes() {
        let y = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7";
        assert!(crypt_hash_ok(y));
        assert!(!crypt_hash_ok("$1$abc$def"));
        assert!(!crypt_hash_ok("hunter2"));
    }

    /// The golden fail cases (tests/golden.rs) cover most messages in both languages; these
    /// answers reach the rest.
    #[test]
    fn every_problem_is_said_in_both_languages() {
        let base = include_str!("../tests/answers/ok/issue_example.toml");
        let mut facts: Facts =
            serde_json::from_str(include_str!("../tests/answers/facts.json")).unwrap();
        facts
            .disks
            .iter_mut()
            .for_each(|d| d.read_only = d.path == "/dev/vdc");
        let variants: &[(&str, &str)] = &[
            ("address = \"10.0.2.15/24\"", "address = \"2001:db8::1/64\""),
            ("address = \"10.0.2.15/24\"", "address = \"10.0.2/24\""),
            (
                "gateway = \"10.0.2.2\"",
                "gateway = \"router\"\nipv6 = \"2001:db8::zz\"\nipv6_gateway = \"x\"",
            ),
            (
                "gateway = \"10.0.2.2\"",
                "ipv6 = \"2001:db8::10/64\"\nipv6_gateway = \"2001:db9::1\"",
            ),
            ("gateway = \"10.0.2.2\"", "ipv6_gateway = \"fe80::1\""),
            (
                "trusted = [\"10.0.2.0/24\"]",
                "trusted = [\"10.0.2.1\", \"lan\"]",
            ),
            ("name = \"Front desk\"", "name = \"a\\u0007b\""),
            (
                "password = \"Meja.Depan-77x\"",
                "password = \"abababababab\"",
            ),
            (
                "password = \"Meja.Depan-77x\"",
                "password = \"Meja-201-Depan!\"",
            ),
            (
                "admin_password = \"Tg7!pz0Qmw-kantor\"",
                "admin_password = \"short\"",
            ),
            ("target = \"auto\"", "target = \"/dev/vdc\""),
            (
                "target = \"auto\"\nwipe = true",
                "target = \"/dev/sda\"\nwipe = false",
            ),
        ];
        let mut seen = 0;
        for (from, to) in variants {
            assert!(base.contains(from), "{from}");
            let answer = Answer::parse(&base.replace(from, to)).unwrap();
            let problems = validate(&answer, &facts).expect_err(to).0;
            for p in problems {
                seen += 1;
                let (en, id) = (p.text(Language::En), p.text(Language::Id));
                assert_ne!(en, id);
                assert!(en.starts_with('`') && id.starts_with(&format!("`{}`", p.key)));
                assert_eq!(
                    crate::tui::untranslated(Language::En, en),
                    Vec::<&str>::new(),
                    "{en}"
                );
                assert_eq!(
                    crate::tui::untranslated(Language::Id, id),
                    Vec::<&str>::new(),
                    "{id}"
                );
            }
        }
        assert!(seen >= variants.len(), "{seen}");
    }

    #[test]
    fn weak_passwords() {
        assert!(password_weakness("short", &[]).is_some());
        assert!(password_weakness("aaaaaaaaaaaaaaaaaaaa", &[]).is_some());
        assert!(password_weakness("Password123!", &[]).is_some());
        assert!(password_weakness("ext201Secret!", &["201"]).is_some());
        assert!(password_weakness("Tg7!pz0Qmw", &[]).is_none());
        assert!(password_weakness("correct horse battery staple", &[]).is_none());
    }
}
