//! The first-boot wizard: a keyboard-only form over seven pages that builds an [`Answer`] and
//! checks it with the one [`validate`]; no rule lives here except "type the password twice"
//! and "confirm that the disk will be erased".
//!
//! [`Wizard`] is the model (pages, fields, keys → actions) and is unit-tested without a
//! terminal; [`run`] draws it with ratatui on an 80×25 console and runs the installer.

mod console;
pub mod words;

use std::collections::BTreeMap;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;

use crate::answer::{Answer, DiskAnswer, ExtensionAnswer, FirewallAnswer, NetworkAnswer};
use crate::facts::{Facts, MIN_DISK_BYTES};
use crate::secret::Secret;
use crate::validate::{password_weakness, validate, InstallPlan, Language};

pub use console::{run, Setup};
pub use words::untranslated;

/// Text in both languages; `tr` picks one.
type Tr = (&'static str, &'static str);

fn tr(lang: Language, t: Tr) -> &'static str {
    match lang {
        Language::Id => t.0,
        Language::En => t.1,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Shown as `*`.
    Secret,
    Choice(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub page: usize,
    pub key: &'static str,
    label: Tr,
    pub kind: Kind,
    pub value: String,
}

const PAGES: &[Tr] = &[
    ("Bahasa", "Language"),
    ("Jaringan", "Network"),
    ("Nama server dan zona waktu", "Host name and time zone"),
    ("Kata sandi administrator", "Administrator password"),
    (
        "Ekstensi dan jaringan tepercaya",
        "Extensions and trusted network",
    ),
    ("Disk tujuan", "Target disk"),
    ("Ringkasan", "Summary"),
];

/// Answer-file key prefixes whose problems belong to each page.
const PAGE_KEYS: &[&[&str]] = &[
    &["language"],
    &["network"],
    &["hostname", "domain", "timezone", "sip_domain"],
    &["admin_password"],
    &["extension", "firewall"],
    &["disk"],
    &[],
];

/// What a key press asks the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    Install(Box<InstallPlan>),
}

/// The wizard's state.
pub struct Wizard {
    pub page: usize,
    pub focus: usize,
    pub fields: Vec<Field>,
    facts: Facts,
    /// Problems or notes shown under the form.
    pub message: Vec<String>,
    /// Generated extension passwords, by number: shown on the summary, never written.
    generated: BTreeMap<String, Secret>,
}

impl Wizard {
    pub fn new(facts: Facts) -> Wizard {
        let disks: Vec<String> = facts
            .disks
            .iter()
            .filter(|d| d.in_use().is_none() && !d.read_only && d.size_bytes >= MIN_DISK_BYTES)
            .map(|d| (d.has_data(), d.path.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            // Blank disks first, as `target = "auto"` prefers them.
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let f = |page, key, label, kind, value: &str| Field {
            page,
            key,
            label,
            kind,
            value: value.to_owned(),
        };
        let choice = |v: &[&str]| Kind::Choice(v.iter().map(|s| (*s).to_owned()).collect());
        let first_disk = disks.first().cloned().unwrap_or_default();
        let fields = vec![
            f(
                0,
                "language",
                ("Bahasa", "Language"),
                choice(&["id", "en"]),
                "id",
            ),
            f(
                1,
                "network.mode",
                ("Mode", "Mode"),
                choice(&["dhcp", "static"]),
                "dhcp",
            ),
            f(
                1,
                "network.address",
                ("Alamat IPv4/prefiks", "IPv4 address/prefix"),
                Kind::Text,
                "",
            ),
            f(
                1,
                "network.gateway",
                ("Gateway IPv4", "IPv4 gateway"),
                Kind::Text,
                "",
            ),
            f(
                1,
                "network.dns",
                ("DNS (pisahkan dengan koma)", "DNS (comma-separated)"),
                Kind::Text,
                "",
            ),
            f(
                1,
                "network.ipv6",
                (
                    "IPv6 (auto, off, alamat/prefiks)",
                    "IPv6 (auto, off, address/prefix)",
                ),
                Kind::Text,
                "auto",
            ),
            f(
                2,
                "hostname",
                ("Nama server", "Host name"),
                Kind::Text,
                "pbx",
            ),
            f(
                2,
                "domain",
                ("Domain", "Domain"),
                Kind::Text,
                "kantor.local",
            ),
            f(
                2,
                "timezone",
                ("Zona waktu", "Time zone"),
                Kind::Text,
                "Asia/Jakarta",
            ),
            f(
                2,
                "sip_domain",
                (
                    "Domain SIP (kosong = domain)",
                    "SIP domain (empty = domain)",
                ),
                Kind::Text,
                "",
            ),
            f(
                3,
                "admin_password",
                ("Kata sandi", "Password"),
                Kind::Secret,
                "",
            ),
            f(
                3,
                "admin_password_again",
                ("Ulangi kata sandi", "Password again"),
                Kind::Secret,
                "",
            ),
            f(
                4,
                "extensions",
                (
                    "Nomor ekstensi (mis. 201-205)",
                    "Extension numbers (e.g. 201-205)",
                ),
                Kind::Text,
                "201-203",
            ),
            f(
                4,
                "firewall.trusted",
                (
                    "LAN tepercaya, mis. 192.168.1.0/24",
                    "Trusted LAN (e.g. 192.168.1.0/24)",
                ),
                Kind::Text,
                "",
            ),
            f(
                5,
                "disk.target",
                ("Disk", "Disk"),
                Kind::Choice(disks),
                &first_disk,
            ),
            f(
                5,
                "confirm",
                (
                    "Ketik YA untuk menghapus disk ini",
                    "Type YES to erase this disk",
                ),
                Kind::Text,
                "",
            ),
        ];
        Wizard {
            page: 0,
            focus: 0,
            fields,
            facts,
            message: Vec::new(),
            generated: BTreeMap::new(),
        }
    }

    pub fn lang(&self) -> Language {
        if self.value("language") == "en" {
            Language::En
        } else {
            Language::Id
        }
    }

    pub fn value(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map_or("", |f| f.value.as_str())
    }

    fn page_fields(&self) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|i| self.fields[*i].page == self.page)
            .collect()
    }

    fn focused(&mut self) -> Option<&mut Field> {
        let idx = *self.page_fields().get(self.focus)?;
        self.fields.get_mut(idx)
    }

    /// Extension numbers from "201-203, 210".
    fn extension_numbers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for part in self.value("extensions").split(',').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            match part
                .split_once('-')
                .map(|(a, b)| (a.trim().parse::<u32>(), b.trim().parse::<u32>()))
            {
                Some((Ok(a), Ok(b))) if a <= b && b - a < 100 => {
                    out.extend((a..=b).map(|n| n.to_string()));
                }
                _ => out.push(part.to_owned()),
            }
        }
        out
    }

    /// The answer the form describes, with generated extension passwords.
    pub fn to_answer(&self) -> Answer {
        let opt = |k: &str| Some(self.value(k).trim().to_owned()).filter(|s| !s.is_empty());
        let list = |k: &str| -> Vec<String> {
            self.value(k)
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let static_mode = self.value("network.mode") == "static";
        Answer {
            language: opt("language"),
            hostname: opt("hostname"),
            domain: opt("domain"),
            timezone: opt("timezone"),
            admin_password: Some(Secret::new(self.value("admin_password"))),
            admin_password_hash: None,
            sip_domain: opt("sip_domain"),
            network: Some(NetworkAnswer {
                mode: opt("network.mode"),
                interface: None,
                address: if static_mode {
                    opt("network.address")
                } else {
                    None
                },
                gateway: if static_mode {
                    opt("network.gateway")
                } else {
                    None
                },
                dns: list("network.dns"),
                ipv6: opt("network.ipv6"),
                ipv6_gateway: None,
            }),
            // The confirmation on the disk page stands for `wipe = true`.
            disk: Some(DiskAnswer {
                target: opt("disk.target"),
                wipe: true,
                initrd: None,
            }),
            firewall: FirewallAnswer {
                trusted: list("firewall.trusted"),
            },
            extensions: self
                .extension_numbers()
                .into_iter()
                .map(|n| ExtensionAnswer {
                    password: self.generated.get(&n).cloned(),
                    name: String::new(),
                    number: Some(n),
                })
                .collect(),
        }
    }

    fn generate_passwords(&mut self) {
        let numbers = self.extension_numbers();
        self.generated.retain(|n, _| numbers.contains(n));
        for n in numbers {
            self.generated.entry(n).or_insert_with(generate_password);
        }
    }

    /// Problems of the current page, from the one validator.
    fn page_problems(&self) -> Vec<String> {
        let lang = self.lang();
        let mut out = Vec::new();
        if self.page == 3 && self.value("admin_password") != self.value("admin_password_again") {
            out.push(
                tr(
                    lang,
                    ("Kedua kata sandi tidak sama.", "The two passwords differ."),
                )
                .to_owned(),
            );
        }
        if self.page == 5 {
            if self.value("disk.target").is_empty() {
                out.push(
                    tr(
                        lang,
                        ("Tidak ada disk yang bisa dipakai.", "No usable disk found."),
                    )
                    .to_owned(),
                );
            } else if !matches!(self.value("confirm").trim(), "YA" | "YES" | "ya" | "yes") {
                out.push(format!(
                    "{} {}",
                    tr(
                        lang,
                        (
                            "Ketik YA untuk menyetujui penghapusan",
                            "Type YES to agree to erase"
                        )
                    ),
                    self.value("disk.target")
                ));
            }
        }
        let keys = PAGE_KEYS[self.page];
        if let Err(problems) = validate(&self.to_answer(), &self.facts) {
            out.extend(
                problems
                    .0
                    .iter()
                    .filter(|p| keys.iter().any(|k| p.key.starts_with(k)))
                    .map(|p| p.text(lang).to_owned()),
            );
        }
        out
    }

    /// Handles one key press.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        if key.kind != KeyEventKind::Press {
            return Action::None;
        }
        let n = self.page_fields().len();
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Action::Quit
            }
            KeyCode::F(10) => return Action::Quit,
            KeyCode::Esc if self.page > 0 => {
                self.page -= 1;
                self.focus = 0;
                self.message.clear();
            }
            KeyCode::Tab | KeyCode::Down if n > 0 => self.focus = (self.focus + 1) % n,
            KeyCode::BackTab | KeyCode::Up if n > 0 => self.focus = (self.focus + n - 1) % n,
            KeyCode::Left | KeyCode::Right => {
                let forward = key.code == KeyCode::Right;
                if let Some(f) = self.focused() {
                    if let Kind::Choice(options) = &f.kind {
                        if !options.is_empty() {
                            let at = options.iter().position(|o| *o == f.value).unwrap_or(0);
                            let len = options.len();
                            let next = if forward {
                                (at + 1) % len
                            } else {
                                (at + len - 1) % len
                            };
                            f.value = options[next].clone();
                        }
                    }
                }
            }
            KeyCode::Backspace => {
                if let Some(f) = self.focused() {
                    if !matches!(f.kind, Kind::Choice(_)) {
                        f.value.pop();
                    }
                }
            }
            KeyCode::Char(c) => {
                if let Some(f) = self.focused() {
                    if !matches!(f.kind, Kind::Choice(_)) && f.value.len() < 200 {
                        f.value.push(c);
                    }
                }
            }
            KeyCode::Enter => {
                if self.page + 1 == PAGES.len() {
                    return match validate(&self.to_answer(), &self.facts) {
                        Ok(plan) => Action::Install(Box::new(plan)),
                        Err(p) => {
                            let lang = self.lang();
                            self.message = p.0.iter().map(|p| p.text(lang).to_owned()).collect();
                            Action::None
                        }
                    };
                }
                if self.focus + 1 < n {
                    self.focus += 1;
                    return Action::None;
                }
                if self.page == 4 {
                    self.generate_passwords();
                }
                self.message = self.page_problems();
                if self.message.is_empty() {
                    self.page += 1;
                    self.focus = 0;
                    if self.page == 4 && self.value("firewall.trusted").is_empty() {
                        self.suggest_trusted();
                    }
                }
            }
            _ => {}
        }
        Action::None
    }

    /// With a static address, the LAN it is on is the natural trusted network.
    fn suggest_trusted(&mut self) {
        if let Ok(c) = crate::net::Cidr::parse(self.value("network.address")) {
            let net = c.network().to_string();
            if let Some(f) = self.fields.iter_mut().find(|f| f.key == "firewall.trusted") {
                f.value = net;
            }
        }
    }

    /// The lines of the current page.
    pub fn lines(&self) -> Vec<Line<'static>> {
        let lang = self.lang();
        let mut out = Vec::new();
        for (i, f) in self
            .fields
            .iter()
            .filter(|f| f.page == self.page)
            .enumerate()
        {
            let shown = match &f.kind {
                Kind::Secret => "*".repeat(f.value.chars().count()),
                Kind::Choice(_) => format!("< {} >", f.value),
                Kind::Text => f.value.clone(),
            };
            // A long value shows its end, where the operator is typing.
            let count = shown.chars().count();
            let shown = if count > VALUE_WIDTH {
                let tail: String = shown.chars().skip(count + 1 - VALUE_WIDTH).collect();
                format!("…{tail}")
            } else {
                shown
            };
            let cursor = if i == self.focus && !matches!(f.kind, Kind::Choice(_)) {
                "_"
            } else {
                ""
            };
            let text = format!("{:>LABEL_WIDTH$}: {shown}{cursor}", tr(lang, f.label));
            let style = if i == self.focus {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            out.push(Line::styled(text, style));
            if f.key == "admin_password" && !f.value.is_empty() {
                let note = match password_weakness(&f.value, &[]) {
                    Some(why) => format!("{} {}", tr(lang, ("lemah:", "weak:")), why.get(lang)),
                    None => tr(lang, ("kuat", "strong")).to_owned(),
                };
                out.extend(wrapped(&note, LABEL_WIDTH + 2));
            }
        }
        if self.page == 5 {
            for d in &self.facts.disks {
                if d.path == self.value("disk.target") {
                    out.push(Line::from(""));
                    out.extend(wrapped(
                        &format!(
                            "{} {} ({} GiB{})",
                            tr(
                                lang,
                                (
                                    "PERHATIAN: semua data akan DIHAPUS dari",
                                    "WARNING: this ERASES everything on"
                                )
                            ),
                            d.path,
                            d.size_bytes >> 30,
                            // Virtual and some USB disks report no model.
                            if d.model.trim().is_empty() {
                                String::new()
                            } else {
                                format!(" {}", d.model.trim())
                            }
                        ),
                        2,
                    ));
                }
            }
        }
        if self.page + 1 == PAGES.len() {
            match validate(&self.to_answer(), &self.facts) {
                Ok(plan) => {
                    out.extend(
                        plan.summary(lang)
                            .lines()
                            .map(|l| Line::from(format!("  {l}"))),
                    );
                    out.push(Line::from(""));
                    out.push(Line::from(tr(
                        lang,
                        (
                            "  Kata sandi ekstensi (hanya ditampilkan sekarang, catat!):",
                            "  Extension passwords (shown only now, write them down!):",
                        ),
                    )));
                    for (n, p) in &self.generated {
                        out.push(Line::from(format!("    {n}: {}", p.expose())));
                    }
                    out.push(Line::from(""));
                    out.push(Line::from(tr(
                        lang,
                        ("  Enter: pasang sekarang", "  Enter: install now"),
                    )));
                }
                Err(p) => {
                    for p in &p.0 {
                        out.extend(wrapped(p.text(lang), 2));
                    }
                }
            }
        }
        out
    }

    pub fn title(&self) -> String {
        format!(
            "Kentongan — {} ({}/{})",
            tr(self.lang(), PAGES[self.page]),
            self.page + 1,
            PAGES.len()
        )
    }

    pub fn help(&self) -> &'static str {
        tr(
            self.lang(),
            (
                "Tab/↑↓ pindah  ←→ pilih  Enter lanjut  Esc kembali  F10 keluar",
                "Tab/↑↓ move  ←→ choose  Enter next  Esc back  F10 quit",
            ),
        )
    }
}

/// Width of a field's label; labels are right-aligned in it.
const LABEL_WIDTH: usize = 34;
/// Columns inside the border on an 80-column console.
const INNER_WIDTH: usize = 78;
/// Rows inside the body's border that a page may use on a 25-row console, leaving six for
/// the problems below it (see [`draw`]).
const BODY_ROWS: usize = 25 - 6 - 1 - 2;
/// Room for a value after "label: " and the cursor.
const VALUE_WIDTH: usize = INNER_WIDTH - LABEL_WIDTH - 3;

/// `text` as lines of at most [`INNER_WIDTH`] columns, broken between words, each indented by
/// `indent` spaces: the body is drawn without wrapping so that fields stay in their columns.
fn wrapped(text: &str, indent: usize) -> Vec<Line<'static>> {
    let room = INNER_WIDTH.saturating_sub(indent).max(20);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let used = line.chars().count();
        if used > 0 && used + 1 + word.chars().count() > room {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
        .into_iter()
        .map(|l| Line::from(format!("{:indent$}{l}", "")))
        .collect()
}

/// 12 characters from an alphabet without look-alikes, with every class present.
pub fn generate_password() -> Secret {
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"-.+=";
    loop {
        let mut bytes = [0u8; 12];
        if getrandom::getrandom(&mut bytes).is_err() {
            continue;
        }
        let pw: String = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let set = match i % 6 {
                    0 | 3 => LOWER,
                    1 | 4 => UPPER,
                    2 => DIGIT,
                    _ => SYMBOL,
                };
                set[usize::from(*b) % set.len()] as char
            })
            .collect();
        if password_weakness(&pw, &[]).is_none() {
            return Secret::new(pw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::console::{draw, failure_lines};
    use super::*;
    use crate::install;
    use ratatui::Terminal;

    fn press(w: &mut Wizard, code: KeyCode) -> Action {
        w.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typ(w: &mut Wizard, text: &str) {
        for c in text.chars() {
            press(w, KeyCode::Char(c));
        }
    }

    #[test]
    fn whole_wizard_builds_a_valid_plan() {
        let facts: Facts =
            serde_json::from_str(include_str!("../tests/answers/facts.json")).unwrap();
        let mut w = Wizard::new(facts);
        press(&mut w, KeyCode::Right); // language → en
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 1);
        press(&mut w, KeyCode::Right); // static
        press(&mut w, KeyCode::Tab);
        typ(&mut w, "10.0.2.15"); // no prefix: the validator's message appears
        for _ in 0..4 {
            press(&mut w, KeyCode::Enter);
        }
        assert_eq!(w.page, 1);
        assert!(
            w.message
                .iter()
                .any(|m| m.contains("`network.address` needs a prefix length")),
            "{:?}",
            w.message
        );
        w.focus = 1;
        typ(&mut w, "/24");
        press(&mut w, KeyCode::Tab);
        typ(&mut w, "10.0.2.2");
        press(&mut w, KeyCode::Tab);
        typ(&mut w, "10.0.2.3");
        w.focus = 4;
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 2, "{:?}", w.message);
        w.focus = 3;
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 3);
        typ(&mut w, "Tg7!pz0Qmw-kantor");
        press(&mut w, KeyCode::Tab);
        typ(&mut w, "Tg7!pz0Qmw-kantoX");
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 3);
        assert!(w.message[0].contains("differ"));
        press(&mut w, KeyCode::Backspace);
        typ(&mut w, "r");
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 4);
        assert_eq!(w.value("firewall.trusted"), "10.0.2.0/24");
        w.focus = 1;
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 5);
        assert_eq!(w.value("disk.target"), "/dev/vda");
        w.focus = 1;
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 5, "no confirmation, no erase");
        typ(&mut w, "YES");
        press(&mut w, KeyCode::Enter);
        assert_eq!(w.page, 6);
        let shown: Vec<String> = w.lines().iter().map(ToString::to_string).collect();
        assert!(
            shown.iter().any(|l| l.starts_with("    201: ")),
            "{shown:?}"
        );
        match press(&mut w, KeyCode::Enter) {
            Action::Install(plan) => {
                assert_eq!(plan.extensions.len(), 3);
                assert_eq!(plan.disk.device, "/dev/vda");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The screen as text, drawn exactly as on the console.
    fn render(title: &str, lines: Vec<Line<'static>>, message: &[String], help: &str) -> String {
        let mut term = Terminal::new(ratatui::backend::TestBackend::new(80, 25)).unwrap();
        draw(&mut term, title, lines, message, help).unwrap();
        let buf = term.backend().buffer();
        (0..25)
            .map(|y| (0..80).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks that a screen fits 80×25 without losing a word, and speaks `lang` only.
    fn check_fits(
        lang: Language,
        what: &str,
        title: &str,
        lines: &[Line<'static>],
        message: &[String],
    ) {
        assert!(
            title.chars().count() <= INNER_WIDTH - 2,
            "{what}: title {title:?}"
        );
        assert!(lines.len() <= BODY_ROWS, "{what}: {} rows", lines.len());
        for l in lines {
            assert!(l.width() <= INNER_WIDTH, "{what}: cut off: {l}");
        }
        let help = match lang {
            Language::Id => "Tab/↑↓ pindah  ←→ pilih  Enter lanjut  Esc kembali  F10 keluar",
            Language::En => "Tab/↑↓ move  ←→ choose  Enter next  Esc back  F10 quit",
        };
        let screen = render(title, lines.to_vec(), message, help);
        // Every word of every message is on the screen: none fell off the message area.
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let shown = words(&screen);
        for m in message {
            for w in words(m) {
                assert!(
                    shown.contains(&w),
                    "{what}: {w:?} of {m:?} not on\n{screen}"
                );
            }
        }
        assert_eq!(
            untranslated(lang, &screen),
            Vec::<&str>::new(),
            "{what}:\n{screen}"
        );
    }

    fn filled(lang: Language, good: bool) -> Wizard {
        let facts: Facts =
            serde_json::from_str(include_str!("../tests/answers/facts.json")).unwrap();
        let mut w = Wizard::new(facts);
        let values: &[(&str, &str)] = if good {
            &[
                ("network.mode", "static"),
                ("network.address", "10.0.2.15/24"),
                ("network.gateway", "10.0.2.2"),
                ("network.dns", "10.0.2.3"),
                ("admin_password", "Tg7!pz0Qmw-kantor"),
                ("admin_password_again", "Tg7!pz0Qmw-kantor"),
                ("firewall.trusted", "10.0.2.0/24"),
                ("confirm", "YA"),
            ]
        } else {
            &[
                ("network.mode", "static"),
                ("network.address", "10.0.2.15"),
                ("network.gateway", "10.0.2.2"),
                ("network.dns", "10.0.2.3, ns1"),
                ("network.ipv6", "2001:db8::zz"),
                ("hostname", "PBX_1.kantor"),
                ("timezone", "Jakarta"),
                ("sip_domain", "sip kantor"),
                ("admin_password", "abcdefgh"),
                ("admin_password_again", "abcdefgX"),
                ("extensions", "201, 7, 0202"),
                ("firewall.trusted", "10.0.2.1, lan"),
            ]
        };
        let code = lang.code();
        for (k, v) in [("language", code)].iter().chain(values) {
            w.fields.iter_mut().find(|f| f.key == *k).unwrap().value = (*v).to_owned();
        }
        w.generate_passwords();
        w
    }

    #[test]
    fn every_page_fits_80x25_in_both_languages() {
        for lang in [Language::Id, Language::En] {
            for good in [true, false] {
                let mut w = filled(lang, good);
                for page in 0..PAGES.len() {
                    if !good && page + 1 == PAGES.len() {
                        continue; // Enter on each page stops at its problems first.
                    }
                    w.page = page;
                    w.message = w.page_problems();
                    assert_eq!(w.message.is_empty(), good || page == 0, "{:?}", w.message);
                    let what = format!("{lang:?} page {} good={good}", page + 1);
                    check_fits(lang, &what, &w.title(), &w.lines(), &w.message);
                }
                for f in &w.fields {
                    assert!(
                        tr(lang, f.label).chars().count() <= LABEL_WIDTH,
                        "{}",
                        f.key
                    );
                }
            }
            // Progress: every step running, then done; and a failure.
            let title = tr(lang, ("Kentongan — memasang", "Kentongan — installing"));
            let mut lines: Vec<Line<'static>> = install::STEPS
                .iter()
                .map(|s| Line::from(format!("  ✓ {}", s.label(lang))))
                .collect();
            check_fits(lang, "progress", title, &lines, &[]);
            let err = install::StepError {
                step: "bootloader",
                cause: "`chroot /mnt/kentongan-target grub-install --target=i386-pc /dev/vda` failed: exit status 1: grub-install: error: cannot find EFI directory.".into(),
                hint: "the command's messages are above; fix the cause and run the installer again (it starts over)".into(),
                disk_touched: true,
            };
            let mut fail = failure_lines(lang, &err);
            assert!(fail[0].to_string().contains(install::STEPS[12].label(lang)));
            lines.truncate(BODY_ROWS - fail.len());
            fail.extend(lines.clone());
            for l in &fail {
                assert!(l.width() <= INNER_WIDTH, "cut off: {l}");
            }
            // The cause and the hint are English on purpose: check the frame around them.
            let frame = install::StepError {
                cause: "…".into(),
                hint: "…".into(),
                ..err
            };
            let mut frame = failure_lines(lang, &frame);
            frame.extend(lines);
            check_fits(lang, "failure", "Kentongan", &frame, &[]);
        }
    }

    #[test]
    fn every_step_has_a_label_in_both_languages() {
        for s in install::STEPS {
            assert_ne!(s.label_id, s.label_en, "{}", s.name);
            assert_eq!(untranslated(Language::Id, s.label_id), Vec::<&str>::new());
            assert_eq!(untranslated(Language::En, s.label_en), Vec::<&str>::new());
        }
    }

    #[test]
    fn generated_passwords_pass_the_strength_check() {
        for _ in 0..50 {
            assert!(password_weakness(generate_password().expose(), &[]).is_none());
        }
    }
}
