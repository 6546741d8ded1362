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
//! a password hash or HA1; logout ends the session on the server. Then a real browser (Debian's
//! headless chromium through chromedriver, W3C WebDriver spoken as plain HTTP/JSON) logs in,
//! adds 205 with the form, registers it with the shown password, sees it on the dashboard,
//! checks that no page is wider than the window at 1366x768 and 390 px (and, after the header's
//! language switch, in Bahasa Indonesia at 390 px), and saves screenshots
//! in `out/web-screenshots/` (`KENTONGAN_OUT`). Needs curl, sipp, chromium and chromium-driver.

#[path = "fixtures/pbx/harness.rs"]
mod harness;
#[path = "fixtures/pbx/web_client.rs"]
mod web_client;

use std::time::Duration;

use harness::*;
use web_client::*;
use web_office::*;

const BASE: u16 = 44060;
const WEB_BASE: u16 = 44443;

#[path = "fixtures/pbx/web_office.rs"]
mod web_office;

const PAGES: &[&str] = &[
    "/",
    "/extensions",
    "/cdr",
    "/cdr?extension=201&page=2",
    "/firewall",
    "/trunks",
    "/trunks?number=&at=&month=",
    "/rates",
    "/rates?prefix=%2B62&trunk=x&page=3",
    "/voicemail",
    "/voicemail?mailbox=201",
    "/recordings",
    "/recordings?page=2",
    "/reports",
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
    for path in [
        "/extensions",
        "/extensions/remove",
        "/logout",
        "/rates/upload",
    ] {
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

    // Login CSRF: a form posted from another site's page is refused before any check.
    c.cookie = None;
    let creds = [("name", "admin"), ("password", ADMIN_PASSWORD)];
    let origin = format!("Origin: https://{WEB_IP}:{}", w.port);
    for (headers, want) in [
        (vec!["Origin: https://evil.example"], 403),
        (vec![origin.as_str(), "Sec-Fetch-Site: cross-site"], 403),
        (
            vec!["Origin: https://evil.example", "Sec-Fetch-Site: same-site"],
            403,
        ),
        // What a browser sends under our Referrer-Policy: no-referrer.
        (vec!["Origin: null", "Sec-Fetch-Site: same-origin"], 303),
        (vec![origin.as_str()], 303),
    ] {
        let r = c.post_with(&headers, "/login", &creds);
        assert_eq!(r.status, want, "{headers:?}");
        assert_eq!(c.cookie.is_some(), want == 303);
        c.cookie = None;
    }
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
    for path in &PAGES[..PAGES.len() - 1] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "GET {path} with a session");
        r.assert_secure_headers();
        assert!(!r.body.contains("<script"), "GET {path}: no script at all");
    }
    assert_eq!(c.get("/no-such-page").status, 404);
    // Only the dashboard refreshes itself, and without script.
    assert!(c
        .get("/")
        .body
        .contains("<meta http-equiv=\"refresh\" content=\"10\">"));
    assert!(!c.get("/cdr").body.contains("http-equiv"));
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
    // The same ban logic as SIP: the daemon drops the address's SIP too (within its 1 s
    // database sync), and still answers another address.
    assert!(
        sip_options(&w.pbx, "127.0.0.62").is_some(),
        "unbanned source answered"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let _ = sip_options(&w.pbx, "127.0.0.62"); // a flush, which runs the ban sync
    assert_eq!(
        sip_options(&w.pbx, "127.0.0.61"),
        None,
        "banned for SIP too"
    );
    // Another address is not banned, and the same account backs off per account.
    let mut office = w.client("127.0.0.62");
    // Two failures 1.1 s apart (the first backs off 1 s), then the second's 2 s backoff.
    let r = office.login("admin", "not the password");
    assert_eq!(r.status, 401);
    std::thread::sleep(Duration::from_millis(1100));
    let r = office.login("admin", "still not the password");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = office.login("admin", ADMIN_PASSWORD);
    assert_eq!(r.status, 429, "the account is backing off: {}", r.body);
    assert!(r.body.contains("try again in"));
    std::thread::sleep(Duration::from_millis(2100));
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
    let r = c.post_with(
        &["Origin: https://evil.example"],
        "/extensions",
        &[("csrf", &csrf), ("extension", "206")],
    );
    assert_eq!(r.status, 403, "right token, wrong origin");
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
    for path in &PAGES[..PAGES.len() - 1] {
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

/// The Firewall page bans by hand and lifts by the rules of `ban add` / `ban remove`: what it
/// does shows in `ban list`, a trusted address and malformed input are refused next to the
/// field, and the banned address's next connection is closed.
#[test]
fn firewall_page_bans_lifts_and_never_bans_a_trusted_address() {
    let w = web_with(true, "trusted = [\"192.168.10.0/24\"]\n");
    let mut c = w.client("127.0.0.63");
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    let page = c.get("/firewall");
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_secure_headers();
    assert!(page.body.contains("No address is banned."), "{}", page.body);
    assert!(
        page.body.contains("192.168.10.0/24"),
        "trusted networks listed"
    );
    let csrf = page.csrf();

    // A trusted address, a malformed one, an injection string and a bad duration: refused,
    // each next to its field, and nothing banned.
    for (addr, hours, field) in [
        ("192.168.10.7", "24", "addr-error"),
        ("not-an-ip", "24", "addr-error"),
        ("1.2.3.4'; DROP TABLE bans;--", "24", "addr-error"),
        ("203.0.113.9", "0", "hours-error"),
        ("203.0.113.9", "24; rm -rf /", "hours-error"),
    ] {
        let r = c.post(
            "/firewall/ban",
            &[("csrf", &csrf), ("addr", addr), ("hours", hours)],
        );
        assert_eq!(r.status, 422, "{addr} {hours}: {}", r.body);
        assert!(
            r.body.contains(&format!("id=\"{field}\"")),
            "{addr}: {}",
            r.body
        );
    }
    let listed =
        |w: &Web| String::from_utf8_lossy(&w.pbx.cli(&["ban", "list"], None).stdout).into_owned();
    assert!(listed(&w).trim().is_empty(), "{}", listed(&w));
    // Without the CSRF token nothing happens.
    let r = c.post("/firewall/ban", &[("addr", "127.0.0.64"), ("hours", "1")]);
    assert_eq!(r.status, 403);

    let r = c.post(
        "/firewall/ban",
        &[("csrf", &csrf), ("addr", "127.0.0.64"), ("hours", "2")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Banned 127.0.0.64 for 2 h."), "{}", r.body);
    assert!(
        r.body.contains("banned by the operator (web admin)"),
        "{}",
        r.body
    );
    let bans = listed(&w);
    assert!(bans.contains("127.0.0.64"), "{bans}");
    let left: u64 = bans
        .lines()
        .find(|l| l.starts_with("127.0.0.64\t"))
        .and_then(|l| l.split('\t').nth(1))
        .and_then(|s| s.trim_end_matches('s').parse().ok())
        .unwrap_or(0);
    assert!((7000..=7200).contains(&left), "two hours: {bans}");
    let mut banned = w.client("127.0.0.64");
    assert!(
        banned.request("/login", None).is_none(),
        "the banned address's connection is closed"
    );

    let r = c.post("/firewall/lift", &[("csrf", &csrf), ("addr", "127.0.0.64")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Lifted the ban on 127.0.0.64."),
        "{}",
        r.body
    );
    assert!(!listed(&w).contains("127.0.0.64"), "{}", listed(&w));
    assert_eq!(banned.get("/login").status, 200, "reachable again");
    let r = c.post("/firewall/lift", &[("csrf", &csrf), ("addr", "127.0.0.64")]);
    assert!(r.body.contains("127.0.0.64 is not banned."), "{}", r.body);
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

#[test]
fn real_browser_logs_in_adds_205_and_pages_fit() {
    let w = web(true);
    let shots = kentongan_e2e::out_dir().join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start(44058, &w.pbx.dir);
    let base = format!("https://{WEB_IP}:{}", w.port);
    b.go(&format!("{base}/cdr"));
    assert!(b.url().ends_with("/login"), "{}", b.url());
    b.screenshot(&shots.join("login-1366.png"));
    b.type_into("#name", "admin");
    b.type_into("#password", ADMIN_PASSWORD);
    b.click("form[action='/login'] button");
    b.wait_url(&format!("{base}/"));
    assert!(b.source().contains("Dashboard"));

    b.go(&format!("{base}/extensions"));
    b.type_into("#extension", "205");
    b.type_into("#name", "Resepsi");
    b.click("form.add button");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !b.source().contains("new-password") {
        assert!(std::time::Instant::now() < deadline, "no password shown");
        std::thread::sleep(Duration::from_millis(100));
    }
    let password = b.text("#new-password");
    assert_eq!(password.len(), 20, "{password}");
    b.screenshot(&shots.join("extension-added-1366.png"));
    b.go(&format!("{base}/"));
    assert_eq!(b.text("#registrations"), "0");
    assert_eq!(register(&w.pbx, "205", &password, "127.0.0.66", 44097), 0);
    // The dashboard refreshes by itself (a meta refresh, no script): no navigation here.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    while !b.source().contains("127.0.0.66") {
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard did not refresh by itself"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(b.text("#registrations"), "1");

    let pages = [
        ("dashboard", "/"),
        ("extensions", "/extensions"),
        ("cdr", "/cdr"),
        ("firewall", "/firewall"),
        ("trunks", "/trunks?number=0812&month=2026-11"),
        ("rates", "/rates"),
        ("voicemail", "/voicemail?mailbox=205"),
        ("recordings", "/recordings"),
        ("reports", "/reports"),
        ("conference", "/conference"),
        ("routing", "/routing"),
        ("moh", "/moh"),
        ("system", "/system"),
    ];
    for (width, height) in [(1366, 768), (390, 844)] {
        b.resize(width, height);
        for (page, path) in pages {
            b.go(&format!("{base}{path}"));
            b.screenshot(&shots.join(format!("{page}-{width}.png")));
            assert!(!b.overflows(), "{page} overflows at {width} px");
        }
    }
    // The header's switch: the same page in Bahasa Indonesia, whose longer words must fit
    // the phone screen too; then back to English.
    b.go(&format!("{base}/extensions"));
    b.click("#language");
    b.wait_url(&format!("{base}/extensions"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !b.source().contains("Tambah ekstensi") {
        assert!(std::time::Instant::now() < deadline, "no Indonesian page");
        std::thread::sleep(Duration::from_millis(100));
    }
    for (page, path) in pages {
        b.go(&format!("{base}{path}"));
        b.screenshot(&shots.join(format!("{page}-390-id.png")));
        assert!(!b.overflows(), "{page} overflows at 390 px in Indonesian");
    }
    b.go(&format!("{base}/"));
    assert_eq!(b.text("#language"), "English");
    b.click("#language");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !b.source().contains("<h1>Dashboard</h1>") {
        assert!(std::time::Instant::now() < deadline, "not back to English");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Log out from the page: the browser is back at the login form and stays there.
    b.click("form.logout button");
    b.wait_url(&format!("{base}/login"));
    b.go(&format!("{base}/extensions"));
    assert!(b.url().ends_with("/login"));
}

const RATES_LOADED: &str = "provider,+62,650,0,60\n";
const RATES_GOOD: &str = "\
trunk,prefix,rate_per_minute,connect_fee,increment_seconds,days,from,to
provider,+62,650,0,60
cheapvoip,+628,400,150,1
provider,+62812,500,0,60,sat-sun,00:00,24:00
";

/// The Trunks and Rates pages against two provider trunks and `[lcr]`: the trunk list
/// shows state and channels but never the trunk's password; a rates CSV with a bad line
/// (a `<script>` trunk name) is refused naming the line, shown escaped, and the installed
/// file stays byte for byte; without the CSRF token nothing is loaded; a good CSV is
/// installed and listed, searchable by prefix and trunk (SQL metacharacters find nothing and
/// break nothing); the explain box ranks the cheapest trunk first; the savings report
/// answers for a month and names a bad month next to the field.
#[test]
fn trunks_rates_upload_explain_and_savings() {
    let dir = std::env::temp_dir().join(format!("kentongan-web-rates-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rates = dir.join("rates.csv");
    std::fs::write(&rates, RATES_LOADED).unwrap();
    let w = web_with(
        true,
        &format!(
            "\n[[trunk]]\nname = \"provider\"\nkind = \"provider\"\naddress = \"127.0.0.1:5999\"\n\
             username = \"office1\"\npassword = \"trunk-secret-4471\"\nmax_channels = 30\n\
             \n[[trunk]]\nname = \"cheapvoip\"\nkind = \"provider\"\naddress = \"127.0.0.1:5998\"\n\
             \n[lcr]\nrates = \"{}\"\ncountry = \"62\"\narea_code = \"21\"\n",
            rates.display()
        ),
    );
    let mut c = w.client("127.0.0.67");
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);

    let r = c.get("/trunks");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<td>provider</td>"), "{}", r.body);
    assert!(r.body.contains("<td>cheapvoip</td>"), "{}", r.body);
    assert!(
        r.body.contains("0/30") && r.body.contains("0/unlimited"),
        "{}",
        r.body
    );
    assert!(r.body.contains("127.0.0.1:5999"), "{}", r.body);
    assert!(
        !r.body.contains("trunk-secret-4471"),
        "a trunk password on a page"
    );
    r.assert_secure_headers();

    let r = c.get("/rates");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 rates"), "{}", r.body);
    assert!(r.body.contains("enctype=\"multipart/form-data\""));
    let csrf = r.csrf();

    // A bad line refuses the whole file, named by its line and rendered as text.
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "provider,+62,600,0,60\n<script>alert(1)</script>,+62,1,0,60\ncheapvoip,+628,400,150,0\n",
    )
    .unwrap();
    let r = c.upload("/rates/upload", &csrf, &bad);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("Nothing was loaded"), "{}", r.body);
    assert!(
        r.body.contains("line 2: trunk must be a name"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<script"), "{}", r.body);
    assert!(r.body.contains("line 3: increment_seconds"), "{}", r.body);
    assert_eq!(std::fs::read_to_string(&rates).unwrap(), RATES_LOADED);
    assert!(c.get("/rates").body.contains("1 rates"));

    // No CSRF token, or a wrong one: refused before the file is even looked at.
    let good = dir.join("good.csv");
    std::fs::write(&good, RATES_GOOD).unwrap();
    assert_eq!(c.upload("/rates/upload", "", &good).status, 403);
    assert_eq!(
        c.upload("/rates/upload", &"0".repeat(64), &good).status,
        403
    );
    assert_eq!(std::fs::read_to_string(&rates).unwrap(), RATES_LOADED);

    let r = c.upload("/rates/upload", &csrf, &good);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Loaded 3 rates for 2 trunks"), "{}", r.body);
    assert_eq!(std::fs::read_to_string(&rates).unwrap(), RATES_GOOD);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let r = c.get("/rates");
    assert!(r.body.contains("3 rates"), "{}", r.body);
    assert!(
        r.body
            .contains("<td>cheapvoip</td><td>+628</td><td>400.00</td><td>150.00</td>"),
        "{}",
        r.body
    );
    assert!(r.body.contains("sat,sun 00:00-24:00"), "{}", r.body);
    assert!(c.get("/rates?prefix=%2B628").body.contains("2 rates"));
    let r = c.get("/rates?prefix=62812&trunk=PROV");
    assert!(
        r.body.contains("1 rates") && r.body.contains("500.00"),
        "{}",
        r.body
    );
    for hostile in [
        "%27%20OR%201%3D1--",
        "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%25",
    ] {
        let r = c.get(&format!("/rates?prefix={hostile}&trunk={hostile}"));
        assert_eq!(r.status, 200, "{hostile}");
        assert!(r.body.contains("0 rates"), "{hostile}: {}", r.body);
        assert!(!r.body.contains("<script"), "{hostile}: {}", r.body);
    }
    assert_eq!(std::fs::read_to_string(&rates).unwrap(), RATES_GOOD);

    // A Telkomsel mobile on a Monday: 150 + 400 for a minute beats 650.
    let r = c.get("/trunks?number=0812-3456-7890&at=mon%2010%3A00");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<strong>+6281234567890</strong>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("class <strong>mobile</strong>"),
        "{}",
        r.body
    );
    let first = r.body.find("<td>1</td><td>cheapvoip</td>");
    let second = r.body.find("<td>2</td><td>provider</td>");
    assert!(first.is_some() && first < second, "{}", r.body);
    assert!(
        r.body.contains("<td>550.00</td>") && r.body.contains("<td>650.00</td>"),
        "{}",
        r.body
    );
    // On Saturday the weekend rate makes the provider the cheaper one.
    let r = c.get("/trunks?number=0812-3456-7890&at=sat%2010%3A00");
    assert!(r.body.contains("<td>1</td><td>provider</td>"), "{}", r.body);
    let r = c.get("/trunks?number=08x%3Cscript%3E&at=mon%2010%3A00");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"number-error\""), "{}", r.body);
    assert!(!r.body.contains("<script"), "{}", r.body);
    let r = c.get("/trunks?number=0812&at=someday");
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"at-error\""), "{}", r.body);

    let r = c.get("/trunks?month=2026-11");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("No trunk calls in 2026-11"), "{}", r.body);
    assert!(r.body.contains("<th>total</th><th>0</th>"), "{}", r.body);
    let r = c.get("/trunks?month=2026-13");
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"month-error\""), "{}", r.body);
    assert!(r.body.contains("is not a month"), "{}", r.body);
    for path in ["/trunks", "/rates"] {
        assert!(!c.get(path).body.contains("trunk-secret-4471"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The number after `key` in `body` (e.g. a message id in a link).
fn number_after(body: &str, key: &str) -> i64 {
    let at = body
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + key.len();
    body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// The Voicemail and Recordings pages over messages stored with the daemon's store API
/// (a 1 kHz tone): a mailbox lists its message with the caller `<img src=x onerror=alert(1)>`
/// escaped, its length and status; the WAV downloads only with a session, as audio/wav with a
/// Content-Disposition, byte-identical and still the tone (Goertzel); another mailbox's
/// number or a path in the request finds nothing; delete without CSRF changes nothing, with
/// it removes the row and the file (`voicemail list` agrees). A recording is listed with its
/// Call-ID escaped and downloads byte-identical.
#[test]
fn voicemail_and_recordings_play_and_delete() {
    use kentongan_pbx::store::{
        voicemail_root, write_message, write_recording, RecordingRow, Store, VoicemailMessage,
        VoicemailWrite, Write,
    };
    let w = web(true);
    let db = w.pbx.dir.join("pbx.db");
    let tone = w.pbx.dir.join("tone.wav");
    tone_wav_hz(&tone, 2, 1000.0);
    let wav = std::fs::read(&tone).unwrap();
    let message = write_message(&voicemail_root(&db), "201", "web-test-1", &wav).unwrap();
    let recording = write_recording(&w.pbx.dir.join("recordings"), "web-rec-1", &wav).unwrap();
    let hostile = "<img src=x onerror=alert(1)>";
    let nov = 1_794_391_200_000; // 2026-11-11 10:00 UTC
    let mut store = Store::open(&db).unwrap();
    store
        .apply(
            &[
                Write::Voicemail(VoicemailWrite::Insert(VoicemailMessage {
                    id: 0,
                    mailbox: "201".into(),
                    caller: hostile.into(),
                    received_ms: nov,
                    duration_ms: 2000,
                    status: "new".into(),
                    path: message.display().to_string(),
                })),
                Write::Recording(RecordingRow {
                    id: 0,
                    call_id: "rec-<b>1</b>@web".into(),
                    caller: "201".into(),
                    callee: "202".into(),
                    start_ms: nov,
                    duration_ms: 2000,
                    path: recording.display().to_string(),
                    trunk: None,
                    number: None,
                }),
            ],
            nov,
        )
        .unwrap();
    drop(store);

    let mut c = w.client("127.0.0.68");
    let out = w.pbx.dir.join("downloaded.wav");
    // No session: no audio either.
    let (status, head) = c.download("/voicemail/play?mailbox=201&id=1", &out);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /login"), "{head}");
    assert_eq!(c.download("/recordings/play?id=1", &out).0, 303);
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);

    let r = c.get("/voicemail");
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(
            "href=\"/voicemail?mailbox=201\">201</a></td><td>Phone 201</td><td>1</td><td>0</td>"
        ),
        "{}",
        r.body
    );
    let r = c.get("/voicemail?mailbox=201");
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<img"), "{}", r.body);
    assert!(
        r.body
            .contains("<td>2026-11-11 10:00:00</td><td>0:02</td><td>new</td>"),
        "{}",
        r.body
    );
    let id = number_after(&r.body, "/voicemail/play?mailbox=201&amp;id=");
    let csrf = r.csrf();

    let (status, head) = c.download(&format!("/voicemail/play?mailbox=201&id={id}"), &out);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: audio/wav"), "{head}");
    assert!(
        head.contains(&format!(
            "content-disposition: inline; filename=\"voicemail-201-{id}.wav\""
        )),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        wav,
        "the WAV changed on the way"
    );
    let peak = peak_tones(&out, &[1000.0, 400.0]);
    assert!(peak[0] > -20.0 && peak[0] > peak[1] + 30.0, "{peak:?}");
    // The message is found by its row: another mailbox, a path or no number find nothing.
    for path in [
        format!("/voicemail/play?mailbox=202&id={id}"),
        format!("/voicemail/play?mailbox=..%2F..%2Fetc&id={id}"),
        "/voicemail/play?mailbox=201&id=1%20OR%201%3D1".to_owned(),
        "/voicemail/play?mailbox=201&path=%2Fetc%2Fpasswd".to_owned(),
    ] {
        assert_eq!(c.download(&path, &out).0, 404, "{path}");
    }

    let listed = |w: &Web| {
        let out = w.pbx.cli(&["voicemail", "list", "201"], None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sid = id.to_string();
    let r = c.post(
        "/voicemail/delete",
        &[("mailbox", "201"), ("id", sid.as_str())],
    );
    assert_eq!(r.status, 403);
    assert!(listed(&w).contains(hostile), "{}", listed(&w));
    assert!(message.exists());
    let r = c.post(
        "/voicemail/delete",
        &[
            ("csrf", csrf.as_str()),
            ("mailbox", "201"),
            ("id", sid.as_str()),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains(&format!("Deleted message {id} of mailbox 201.")),
        "{}",
        r.body
    );
    assert!(r.body.contains("No messages."), "{}", r.body);
    assert!(!listed(&w).contains(hostile), "{}", listed(&w));
    assert!(!message.exists(), "the message's file is still there");
    let (status, _) = c.download(&format!("/voicemail/play?mailbox=201&id={id}"), &out);
    assert_eq!(status, 404);

    let r = c.get("/recordings");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("1 recordings"), "{}", r.body);
    assert!(
        r.body.contains("rec-&lt;b&gt;1&lt;/b&gt;@web"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<b>1"), "{}", r.body);
    let rid = number_after(&r.body, "/recordings/play?id=");
    let (status, head) = c.download(&format!("/recordings/play?id={rid}"), &out);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: audio/wav"), "{head}");
    assert!(
        head.contains(&format!("filename=\"recording-{rid}.wav\"")),
        "{head}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), wav);
    assert_eq!(
        c.download(&format!("/recordings/play?id={}", rid + 1), &out)
            .0,
        404
    );
}

/// A CDR written through the store API: `trunk` and `cost` (whole units) for a trunk call.
fn stored_cdr(
    id: &str,
    start_ms: i64,
    seconds: f64,
    trunk: Option<(&str, i64)>,
) -> kentongan_pbx::store::Write {
    use kentongan_pbx::store::{Cdr, OutboundCdr, Write};
    let callee = if trunk.is_some() {
        "+6281234567890"
    } else {
        "202"
    };
    let mut c = Cdr::refused(id.into(), "201".into(), callee.into(), start_ms, "answered");
    c.answer_ms = Some(start_ms);
    c.end_ms = start_ms + (seconds * 1000.0) as i64;
    c.duration_s = seconds;
    c.outbound = trunk.map(|(t, cost)| OutboundCdr {
        trunk: Some(t.into()),
        number: callee.into(),
        class: "mobile".into(),
        cost: Some(kentongan_lcr::money::Money::from_ten_thousandths(
            cost * 10_000,
        )),
    });
    Write::Cdr(c)
}

/// The SVG figure `id` of a page: the text from its `<figure>` to its end.
fn figure<'a>(body: &'a str, id: &str) -> &'a str {
    let at = body
        .find(&format!("<figure class=\"chart\" id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no chart {id} in {body}"));
    let end = body[at..].find("</figure>").unwrap_or(body.len() - at);
    &body[at..at + end]
}

/// The Reports page's server-rendered SVG charts over CDRs written with the store API: one
/// bar per day that had calls in the last 30 days (a call 40 days ago is not drawn), minutes
/// and cost per trunk with bars in proportion, and no savings without `[lcr]` (said so).
#[test]
fn reports_page_draws_svg_bars_from_the_cdr() {
    let w = web(true);
    let day = 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut store = kentongan_pbx::store::Store::open(&w.pbx.dir.join("pbx.db")).unwrap();
    store
        .apply(
            &[
                stored_cdr("a", now - day, 30.0, None),
                stored_cdr("b", now - 3 * day, 90.0, Some(("cheap", 6))),
                stored_cdr("c", now - 3 * day, 30.0, Some(("cheap", 3))),
                stored_cdr("d", now - 10 * day, 60.0, Some(("dear", 13))),
                stored_cdr("e", now - 40 * day, 600.0, Some(("dear", 100))),
            ],
            now,
        )
        .unwrap();
    drop(store);
    let mut c = w.client("127.0.0.69");
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    let r = c.get("/reports");
    assert_eq!(r.status, 200, "{}", r.body);
    r.assert_secure_headers();
    assert!(!r.body.contains("<script"));
    let calls = figure(&r.body, "calls-per-day");
    assert!(calls.contains("<svg"), "{calls}");
    assert_eq!(calls.matches("<rect class=\"bar\"").count(), 3, "{calls}");
    assert!(calls.contains(": 2 calls</title>"), "{calls}");
    let minutes = figure(&r.body, "minutes-per-trunk");
    assert!(
        minutes.contains("height=\"160\"><title>cheap: 2.0 min</title>"),
        "{minutes}"
    );
    assert!(
        minutes.contains("height=\"80\"><title>dear: 1.0 min</title>"),
        "{minutes}"
    );
    let cost = figure(&r.body, "cost-per-trunk");
    assert!(
        cost.contains("height=\"111\"><title>cheap: 9.00</title>"),
        "{cost}"
    );
    assert!(
        cost.contains("height=\"160\"><title>dear: 13.00</title>"),
        "{cost}"
    );
    assert_eq!(
        figure(&r.body, "savings-per-month")
            .matches("<rect")
            .count(),
        0
    );
    assert!(
        r.body.contains("the configuration has no [lcr] table"),
        "{}",
        r.body
    );
}

/// Hang up from the dashboard: a real call 201 → 202 (sipp on both ends) shows in live
/// calls with a button; the POST without the CSRF token leaves it up; with it, the daemon
/// sends BYE to both phones (each scenario, waiting for the PBX's BYE, passes), the live
/// call goes and the CDR has the answered call.
#[test]
fn hang_up_from_the_dashboard_ends_a_live_call() {
    let w = web(true);
    let ip = "127.0.0.69";
    let callee_port = w.pbx.sip_port + 8;
    assert_eq!(register(&w.pbx, "202", "pw202", ip, callee_port), 0);
    let sink = RtpSink::start(ip, 0);
    let sink_port = sink.addr.port().to_string();
    let mut callee = sipp_phone(
        &w.pbx,
        "callee_answer.xml",
        ip,
        callee_port,
        &["-key", "rtp_sink", &sink_port],
    );
    let caller_port = w.pbx.sip_port + 9;
    std::thread::scope(|scope| {
        // The caller's scenario runs until the PBX hangs it up.
        let caller = scope.spawn(|| call_from_201(&w.pbx, "caller_hungup.xml", "202", caller_port));
        let mut c = w.client(ip);
        assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let dash = loop {
            let r = c.get("/");
            if r.body.contains("<td>answered</td>") {
                break r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the call never showed as answered: {}",
                r.body
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            dash.body.contains("<td>201</td><td>202</td>"),
            "{}",
            dash.body
        );
        let at = dash.body.find("name=\"call_id\" value=\"").unwrap() + 22;
        let call_id = dash.body[at..at + dash.body[at..].find('"').unwrap()].to_owned();
        let csrf = dash.csrf();

        let r = c.post("/calls/hangup", &[("call_id", call_id.as_str())]);
        assert_eq!(r.status, 403);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            c.get("/").body.contains("<td>answered</td>"),
            "the call ended anyway"
        );

        let r = c.post(
            "/calls/hangup",
            &[("csrf", csrf.as_str()), ("call_id", call_id.as_str())],
        );
        assert_eq!((r.status, r.location()), (303, Some("/")));
        let (code, out) = caller.join().unwrap();
        assert_eq!(code, 0, "the caller got no BYE: {out}");
        assert_eq!(
            callee.wait(Duration::from_secs(20)),
            0,
            "the callee got no BYE: {}",
            callee.output()
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !c.get("/").body.contains("No call in progress.") {
            assert!(std::time::Instant::now() < deadline, "the live call stayed");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let out = w.pbx.cli(&["cdr", "list", "--json"], None);
    let cdrs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        cdrs.iter().any(|c| c["caller"] == "201"
            && c["callee"] == "202"
            && c["disposition"] == "answered"),
        "{cdrs:?}"
    );
    // A call that is not live cannot be hung up twice, and nothing breaks.
    let mut c = w.client(ip);
    c.login("admin", ADMIN_PASSWORD);
    let csrf = c.get("/").csrf();
    let r = c.post(
        "/calls/hangup",
        &[("csrf", csrf.as_str()), ("call_id", "x' OR 1=1--")],
    );
    assert_eq!(r.status, 303);
}
