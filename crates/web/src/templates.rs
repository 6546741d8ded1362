//! The askama templates' data. Templates are checked at compile time and HTML-escape every
//! value; none uses `|safe`, so a display name from SIP is always text on the page.

use askama::Template;

use crate::backend::{BanEntry, CdrQuery, CdrRow, CdrSort, ExtensionRow, LiveCall, Registration};
pub use crate::i18n::Lang;

/// The navigation bar, language switch and logout form of a logged-in page.
pub struct Chrome {
    pub account: String,
    pub csrf: String,
    pub page: &'static str,
    pub lang: Lang,
}

/// What templates call for their words: `{{ self.t("Dashboard") }}`.
pub trait Words {
    fn lang(&self) -> Lang;

    fn t<'a>(&self, en: &'a str) -> &'a str {
        self.lang().t(en)
    }
}

/// A page's language is its session's (a page without a session is the login page, which
/// says its own).
macro_rules! words_from_chrome {
    ($($page:ty),*) => {$(
        impl $crate::templates::Words for $page {
            fn lang(&self) -> $crate::i18n::Lang {
                self.chrome.as_ref().map_or_else(Default::default, |c| c.lang)
            }
        }
    )*};
}

pub(crate) use words_from_chrome;

words_from_chrome!(DashboardPage, ExtensionsPage, FirewallPage, CdrPage);

/// Marks a word that reaches a template as a value (`{{ self.t(c.label) }}`), so the unit
/// test that keeps the table complete finds it.
pub const fn word(en: &'static str) -> &'static str {
    en
}

impl Words for LoginPage {
    fn lang(&self) -> Lang {
        self.lang
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Option<Chrome>,
    pub lang: Lang,
    pub no_admins: bool,
    pub error: Option<String>,
    pub name: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub chrome: Option<Chrome>,
    pub registrations: Vec<Registration>,
    pub live_calls: Vec<LiveCall>,
    pub cdr_today: i64,
    pub version: String,
    pub uptime: String,
}

impl DashboardPage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }
}

/// The add form's values, its errors next to each field, and what the last POST did.
#[derive(Default)]
pub struct ExtensionForm {
    pub extension: String,
    pub name: String,
    pub extension_error: Option<String>,
    pub name_error: Option<String>,
    /// The extension just added and its generated password, shown once.
    pub created: Option<Created>,
    pub notice: Option<String>,
}

pub struct Created {
    pub extension: String,
    pub password: String,
}

#[derive(Template)]
#[template(path = "extensions.html")]
pub struct ExtensionsPage {
    pub chrome: Option<Chrome>,
    pub rows: Vec<ExtensionRow>,
    pub form: ExtensionForm,
}

impl ExtensionsPage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }
}

/// The ban form's values and errors, and what the last POST did.
#[derive(Default)]
pub struct BanForm {
    pub addr: String,
    pub hours: String,
    pub addr_error: Option<String>,
    pub hours_error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "firewall.html")]
pub struct FirewallPage {
    pub chrome: Option<Chrome>,
    pub bans: Vec<BanEntry>,
    pub trusted: Vec<String>,
    pub form: BanForm,
}

impl FirewallPage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }

    fn left(b: &BanEntry) -> String {
        match b.seconds_left {
            None => "?".into(),
            Some(s) if s >= 3600 => format!("{} h {} min", s / 3600, s / 60 % 60),
            Some(s) => format!("{} min", s.div_ceil(60)),
        }
    }
}

pub struct CdrLine {
    pub start: String,
    pub caller: String,
    pub caller_name: String,
    pub callee: String,
    pub duration: String,
    pub disposition: String,
}

pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    pub mark: &'static str,
}

#[derive(Template)]
#[template(path = "cdr.html")]
pub struct CdrPage {
    pub chrome: Option<Chrome>,
    pub extension: String,
    pub disposition: String,
    pub dispositions: Vec<String>,
    pub sort: &'static str,
    pub order: &'static str,
    pub lines: Vec<CdrLine>,
    pub total: u64,
    pub page: u32,
    pub pages: u32,
    pub columns: Vec<SortLink>,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl CdrPage {
    pub fn new(
        chrome: Chrome,
        q: &CdrQuery,
        rows: Vec<CdrRow>,
        total: u64,
        page: u32,
        pages: u32,
        dispositions: Vec<String>,
    ) -> CdrPage {
        let extension = q.extension.clone().unwrap_or_default();
        let disposition = q.disposition.clone().unwrap_or_default();
        let order = if q.descending { "desc" } else { "asc" };
        let link = |sort: CdrSort, order: &str, page: u32| {
            format!(
                "/cdr?extension={}&disposition={}&sort={}&order={order}&page={page}",
                url_encode(&extension),
                url_encode(&disposition),
                sort.name()
            )
        };
        let columns = [
            (CdrSort::Start, word("Start")),
            (CdrSort::Caller, word("Caller")),
            (CdrSort::Callee, word("Callee")),
            (CdrSort::Duration, word("Duration")),
            (CdrSort::Disposition, word("Disposition")),
        ]
        .into_iter()
        .map(|(sort, label)| {
            let current = sort == q.sort;
            let flip = if current && q.descending {
                "asc"
            } else {
                "desc"
            };
            SortLink {
                label,
                href: link(sort, flip, 1),
                mark: match (current, q.descending) {
                    (false, _) => "",
                    (true, true) => " ▼",
                    (true, false) => " ▲",
                },
            }
        })
        .collect();
        CdrPage {
            prev: (page > 1).then(|| link(q.sort, order, page - 1)),
            next: (page < pages).then(|| link(q.sort, order, page + 1)),
            lines: rows
                .into_iter()
                .map(|r| CdrLine {
                    start: utc(r.start_ms),
                    caller: r.caller,
                    caller_name: r.caller_name,
                    callee: r.callee,
                    duration: format!("{:.0} s", r.duration_s),
                    disposition: r.disposition,
                })
                .collect(),
            chrome: Some(chrome),
            extension,
            disposition,
            dispositions,
            sort: q.sort.name(),
            order,
            total,
            page,
            pages,
            columns,
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC (days-from-civil, Howard Hinnant's).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_urls() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_709_210_096_000), "2024-02-29 12:34:56");
        assert_eq!(url_encode("2' OR 1=1--"), "2%27%20OR%201%3D1--");
    }

    #[test]
    fn sip_strings_are_escaped() {
        let p = LoginPage {
            chrome: None,
            lang: Lang::En,
            no_admins: false,
            error: Some("<script>alert(1)</script>'--".into()),
            name: "\"><img src=x>".into(),
        };
        let html = p.render().unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("\"><img"));
    }
}
