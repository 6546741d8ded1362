//! The web admin against the real daemon over HTTPS (curl, which skips the check of the
//! daemon's self-signed certificate with `-k`, in tests only): no page before an admin
//! account exists; every page without a session redirects to /login and every response
//! carries the security headers; ten wrong passwords from one address ban it (its next
//! connection is closed before TLS, the ban is in `ban list`, another address still logs
//! in); a POST without (or with a wrong) CSRF token is refused with 403 and changes nothing;
//! extension 205 added through the form gets a password shown once, with which a sipp phone
//! registers and then shows on the dashboard; SQL injection strings in the add form and the
//! CDR filters change nothing and give a normal page; a caller's display name
//! `<script>alert(1)</script>'--` shows escaped in the CDR page and never raw; no page shows
//! a password hash or HA1; logout ends the session on the server. Needs curl and sipp.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::process::Command;
use std::time::Duration;

use harness::*;

const BASE: u16 = 44060;
const WEB_BASE: u16 = 44443;
const WEB_IP: &str = "127.0.0.60";
const ADMIN_PASSWORD: &str = "kentongan-test-9271";

struct Web {
    pbx: Pbx,
    port: u16,
}

/// A daemon with `[web]` on 127.0.0.60 and bans after 10 failures; `admin` exists if asked.
fn web(with_admin: bool) -> Web {
    let sip_port = ports(BASE);
    let port = WEB_BASE + (sip_port - BASE);
    let pbx = Pbx::start_with(
        sip_port,
        &format!("\n[web]\nlisten = [\"{WEB_IP}:{port}\"]\n[firewall]\nban_after_failures = 10\n"),
    );
    for ext in ["201", "202"] {
        pbx.add_user(ext, &format!("pw{ext}"));
    }
    let w = Web { pbx, port };
    if with_admin {
        w.add_admin();
    }
    w
}

impl Web {
    fn add_admin(&self) {
        let out = self.pbx.cli(
            &["admin", "add", "admin", "--password-stdin"],
            Some(&format!("{ADMIN_PASSWORD}\n")),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn client(&self, ip: &'static str) -> Client {
        Client {
            base: format!("https://{WEB_IP}:{}", self.port),
            ip,
            cookie: None,
        }
    }

    fn users(&self) -> String {
        let out = self.pbx.cli(&["user", "list"], None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    /// Lower-cased header block.
    headers: String,
    body: String,
}

impl Resp {
    fn location(&self) -> Option<&str> {
        self.headers
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .map(str::trim)
    }

    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        self.body[at + 19..at + 19 + 64].to_owned()
    }

    fn assert_secure_headers(&self) {
        for h in [
            "content-security-policy: default-src 'self'; frame-ancestors 'none'",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "strict-transport-security: max-age=",
        ] {
            assert!(self.headers.contains(h), "{h} missing in\n{}", self.headers);
        }
        assert!(!self.headers.contains("unsafe-inline"));
        assert!(!self.body.contains("$argon2"), "a hash on a page");
    }
}

struct Client {
    base: String,
    ip: &'static str,
    cookie: Option<String>,
}

impl Client {
    /// Runs curl from this client's address; None when the server closed the connection or
    /// refused the handshake.
    fn request(&mut self, path: &str, form: Option<&[(&str, &str)]>) -> Option<Resp> {
        need("curl", "curl");
        let mut cmd = Command::new("curl");
        cmd.args(["-sk", "-i", "--max-time", "20", "--interface", self.ip]);
        if let Some(c) = &self.cookie {
            cmd.args(["-H", &format!("Cookie: {c}")]);
        }
        if let Some(fields) = form {
            cmd.args(["-X", "POST", "--data", ""]);
            for (k, v) in fields {
                cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
            }
        }
        let out = cmd.arg(format!("{}{path}", self.base)).output().unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = head.to_ascii_lowercase();
        if let Some(c) = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
        {
            self.cookie = Some(c.to_owned()).filter(|c| !c.ends_with('='));
        }
        Some(Resp {
            status,
            headers,
            body: body.to_owned(),
        })
    }

    fn get(&mut self, path: &str) -> Resp {
        self.request(path, None)
            .unwrap_or_else(|| panic!("GET {path}: connection failed"))
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.request(path, Some(form))
            .unwrap_or_else(|| panic!("POST {path}: connection failed"))
    }

    fn login(&mut self, name: &str, password: &str) -> Resp {
        self.post("/login", &[("name", name), ("password", password)])
    }
}

const PAGES: &[&str] = &[
    "/",
    "/extensions",
    "/cdr",
    "/cdr?extension=201&page=2",
    "/no-such-page",
];

#[test]
fn no_page_before_an_admin_and_none_without_a_session() {
    let w = web(false);
    let mut c = w.client("127.0.0.60");
    let r = c.get("/login");
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("kentongan-pbx admin add admin --password-stdin"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<form method=\"post\" action=\"/login\""));
    r.assert_secure_headers();
    let r = c.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 403, "no login before an account exists");
    assert!(c.cookie.is_none());

    w.add_admin();
    for path in PAGES {
        let r = c.get(path);
        assert_eq!(
            (r.status, r.location()),
            (303, Some("/login")),
            "GET {path}"
        );
        r.assert_secure_headers();
    }
    for path in ["/extensions", "/extensions/remove", "/logout"] {
        let r = c.post(path, &[("extension", "209"), ("name", "x")]);
        assert_eq!(
            (r.status, r.location()),
            (303, Some("/login")),
            "POST {path}"
        );
    }
    assert!(!w.users().contains("209"));
    // A made-up session id is no session.
    c.cookie = Some(format!("__Host-kentongan={}", "ab".repeat(32)));
    assert_eq!(c.get("/").status, 303);
    let css = c.get("/static/style.css");
    assert_eq!(css.status, 200);
    assert!(css.headers.contains("content-type: text/css"));
    css.assert_secure_headers();

    let r = c.login("admin", ADMIN_PASSWORD);
    assert_eq!((r.status, r.location()), (303, Some("/")));
    assert!(
        r.headers
            .contains("; secure; httponly; samesite=strict; path=/"),
        "{}",
        r.headers
    );
    let id = c.cookie.clone().unwrap();
    assert!(
        id.starts_with("__Host-kentongan=") && id.len() == 17 + 64,
        "{id}"
    );
    for path in &PAGES[..4] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "GET {path} with a session");
        r.assert_secure_headers();
        assert!(!r.body.contains("<script"), "GET {path}: no script at all");
    }
    assert_eq!(c.get("/no-such-page").status, 404);
    // A second login gets a new session id.
    let mut c2 = w.client("127.0.0.60");
    c2.login("admin", ADMIN_PASSWORD);
    assert_ne!(c2.cookie, c.cookie);
}

#[test]
fn ten_failed_logins_ban_the_address() {
    let w = web(true);
    let mut evil = w.client("127.0.0.61");
    // Different account names, as a sprayer does: each is a real check, none backs off.
    for i in 0..10 {
        let r = evil.login(&format!("guess{i}"), "wrong password 123");
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
        assert!(r.body.contains("Wrong name or password."));
        assert!(evil.cookie.is_none());
    }
    assert!(
        evil.request("/login", None).is_none(),
        "the banned address's next connection is closed"
    );
    assert!(evil.request("/", None).is_none());
    let out = w.pbx.cli(&["ban", "list"], None);
    let bans = String::from_utf8_lossy(&out.stdout);
    assert!(
        bans.contains("127.0.0.61") && bans.contains("web login"),
        "{bans}"
    );
    // Another address is not banned, and the same account backs off per account.
    let mut office = w.client("127.0.0.62");
    let r = office.login("admin", "not the password");
    assert_eq!(r.status, 401);
    let r = office.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 429, "the account is backing off: {}", r.body);
    std::thread::sleep(Duration::from_millis(1100));
    let r = office.login("admin", ADMIN_PASSWORD);
    assert_eq!((r.status, r.location()), (303, Some("/")));
    assert_eq!(office.get("/").status, 200);
}

#[test]
fn csrf_add_extension_register_and_injection() {
    let w = web(true);
    let mut c = w.client("127.0.0.63");
    c.login("admin", ADMIN_PASSWORD);
    let page = c.get("/extensions");
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    let before = w.users();

    // Without the token, or with another one: 403 and nothing changes.
    for token in [None, Some("0".repeat(64)), Some(csrf[..63].to_owned())] {
        let mut form = vec![("extension", "206"), ("name", "Tanpa token")];
        if let Some(t) = &token {
            form.push(("csrf", t));
        }
        assert_eq!(c.post("/extensions", &form).status, 403, "{token:?}");
        let r = c.post("/extensions/remove", &[("extension", "201")]);
        assert_eq!(r.status, 403);
    }
    assert_eq!(c.post("/logout", &[]).status, 403);
    assert_eq!(w.users(), before, "nothing changed");
    assert_eq!(c.get("/").status, 200, "the session survived");

    // Add 205 through the form: its password is shown once and works for SIP.
    let r = c.post(
        "/extensions",
        &[("csrf", &csrf), ("extension", "205"), ("name", "Resepsi")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body.find("id=\"new-password\">").expect("password shown") + 18;
    let password: String = r.body[at..].chars().take_while(|c| *c != '<').collect();
    assert_eq!(password.len(), 20, "{password}");
    assert!(w.users().contains("205\tResepsi"));
    assert!(
        !c.get("/extensions").body.contains(&password),
        "shown only once"
    );
    let ha1 = kentongan_sip::auth::StoredHa1::from_password("205", "pbx.local", &password);
    assert_eq!(register(&w.pbx, "205", &password, "127.0.0.64", 44090), 0);
    let dash = c.get("/");
    assert!(dash.body.contains("<td>205</td>"), "{}", dash.body);
    assert!(dash.body.contains("127.0.0.64"));
    assert!(dash
        .body
        .contains("<span class=\"n\" id=\"registrations\">1</span>"));
    // Adding it again is an error next to the field, not a new row.
    let r = c.post(
        "/extensions",
        &[("csrf", &csrf), ("extension", "205"), ("name", "")],
    );
    assert_eq!(r.status, 422);
    assert!(r
        .body
        .contains("id=\"extension-error\">extension 205 exists already"));

    // SQL injection in both fields: refused by the rules, or stored as plain text.
    for ext in [
        "205' OR '1'='1",
        "1; DROP TABLE users;--",
        "\" onmouseover=\"x",
    ] {
        let r = c.post(
            "/extensions",
            &[("csrf", &csrf), ("extension", ext), ("name", "x")],
        );
        assert_eq!(r.status, 422, "{ext}");
        assert!(r.body.contains("id=\"extension-error\""));
        assert!(!r.body.contains("onmouseover=\"x"), "echoed escaped");
    }
    let evil_name = "x'); DROP TABLE users;-- <b>bold</b>";
    let r = c.post(
        "/extensions",
        &[("csrf", &csrf), ("extension", "207"), ("name", evil_name)],
    );
    assert_eq!(r.status, 200);
    let list = c.get("/extensions").body;
    assert!(list.contains("x&#x27;); DROP TABLE users;-- &lt;b&gt;bold&lt;/b&gt;"));
    assert!(!list.contains("<b>bold"));
    let users = w.users();
    for ext in ["201", "202", "205", "207"] {
        assert!(users.contains(&format!("{ext}\t")), "{ext} in {users}");
    }
    let r = c.post(
        "/extensions/remove",
        &[("csrf", &csrf), ("extension", "' OR 1=1 --")],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("There is no extension"));
    assert_eq!(w.users(), users, "nothing removed");
    let r = c.post(
        "/extensions/remove",
        &[("csrf", &csrf), ("extension", "207")],
    );
    assert!(r.body.contains("Removed extension 207."));
    assert!(!w.users().contains("207\t"));

    // No page shows a hash or HA1.
    for path in &PAGES[..4] {
        let body = c.get(path).body;
        for h in [ha1.md5.as_deref(), ha1.sha256.as_deref()]
            .into_iter()
            .flatten()
        {
            assert!(!body.contains(h), "{path} shows an HA1");
        }
        assert!(!body.contains("$argon2"), "{path} shows a hash");
    }

    // Logout ends the session on the server: the old cookie is worth nothing.
    let old = c.cookie.clone();
    let r = c.post("/logout", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    c.cookie = old;
    assert_eq!(c.get("/").status, 303);
    assert_eq!(
        c.post("/extensions", &[("csrf", &csrf), ("extension", "208")])
            .status,
        303
    );
    assert!(!w.users().contains("208"));
}

#[test]
fn cdr_page_escapes_sip_strings_and_filters_safely() {
    let w = web(true);
    // 202 is not registered: the call is refused with 480 and lands in the CDR.
    let (code, out) = call_from_201(&w.pbx, "caller_unavailable_named.xml", "202", 44095);
    assert_eq!(code, 0, "{out}");
    let mut c = w.client("127.0.0.65");
    c.login("admin", ADMIN_PASSWORD);
    let mut page = String::new();
    for _ in 0..50 {
        page = c.get("/cdr").body;
        if page.contains("unavailable") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(page.contains("1 calls"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&#x27;--"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "never raw");
    assert!(!page.contains("</script>'--"));
    let dash = c.get("/").body;
    assert!(
        dash.contains("<span class=\"n\" id=\"cdr-today\">1</span>"),
        "{dash}"
    );

    // Filters: exact matches, injection strings match nothing and break nothing.
    let count = |c: &mut Client, q: &str| {
        let r = c.get(&format!("/cdr?{q}"));
        assert_eq!(r.status, 200, "{q}");
        assert!(r.body.contains("<table id=\"cdr\">"), "{q}");
        r.body
    };
    assert!(count(&mut c, "extension=201").contains("1 calls"));
    assert!(count(&mut c, "extension=202&disposition=unavailable").contains("1 calls"));
    assert!(count(&mut c, "disposition=answered").contains("0 calls"));
    for q in [
        "extension=201%27%20OR%20%271%27%3D%271",
        "extension=%27%3B%20DELETE%20FROM%20cdr%3B--",
        "disposition=x%27%20UNION%20SELECT%20hash%2Cname%2C1%2C1%2C1%2C1%2C1%2C1%2C1%20FROM%20admins--",
        "sort=start_ms%3B%20DROP%20TABLE%20cdr&order=desc%2C%20(SELECT%201)",
        "sort=(SELECT%20hash%20FROM%20admins)&page=%27",
        "page=99999999999999999999",
    ] {
        let body = count(&mut c, q);
        assert!(!body.contains("$argon2"), "{q}");
        assert!(
            body.contains("0 calls") || body.contains("1 calls"),
            "{q}: {body}"
        );
    }
    for sort in ["caller", "callee", "duration", "disposition"] {
        assert!(count(&mut c, &format!("sort={sort}&order=asc")).contains("1 calls"));
    }
    assert!(count(&mut c, "").contains("1 calls"), "the CDR is intact");
}
