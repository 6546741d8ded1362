//! The web admin's pages for conference rooms (live members, mute and kick, heard through two
//! baresip members), routing (DIDs, ring groups, IVRs, office hours, escaped), music on hold
//! (WAV uploads checked and written whole), the system page (admin accounts by the CLI's
//! rules) and the language switch (every page in English and back in Bahasa Indonesia), over
//! HTTPS against the real daemon. Shares the addresses of `pbx_web.rs` (the suites run one
//! after the other). Needs curl and baresip.

#[path = "fixtures/pbx/harness.rs"]
mod harness;
#[path = "fixtures/pbx/web_client.rs"]
mod web_client;
#[path = "fixtures/pbx/web_office.rs"]
mod web_office;

use std::time::Duration;

use harness::*;
use web_client::*;
use web_office::*;

const BASE: u16 = 44660;
const WEB_BASE: u16 = 44300;

/// Power (dB) of `hz` in a decoded WAV over `from`..`to` seconds (negative: from the end).
fn tone_db(wav: &std::path::Path, from: f64, to: f64, hz: f64) -> f64 {
    use kentongan_media::goertzel::{goertzel, to_db};
    let bytes = std::fs::read(wav).unwrap_or_default();
    let Ok(clip) = kentongan_media::WavClip::parse(&bytes) else {
        return f64::NEG_INFINITY;
    };
    let rate = clip.rate.hz();
    let mono = clip.to_mono();
    let secs = mono.len() as f64 / f64::from(rate);
    let at = |t: f64| {
        let t = if t < 0.0 { secs + t } else { t };
        ((t.max(0.0) * f64::from(rate)) as usize).min(mono.len())
    };
    to_db(goertzel(&mono[at(from)..at(to)], rate, hz))
}

/// The member number in the row of `caller` on the Conference page.
fn member_of(page: &str, caller: &str) -> Option<String> {
    let at = page.find(&format!("</td><td class=\"wrap\">{caller}</td>"))?;
    let row = page[..at].rfind("<tr><td>")? + "<tr><td>".len();
    Some(page[row..at].to_owned())
}

/// The Conference page with two baresip members of room 800 (201 plays 400 Hz, 202 700 Hz):
/// both show (the room's name escaped); a mute without the CSRF token changes nothing; the
/// page's mute of 202 takes its tone out of what 201 hears (Goertzel on 201's decoded audio),
/// and the page's kick of 201 hangs it up with a BYE, long before its phone would have.
#[test]
fn conference_page_shows_members_mutes_and_kicks() {
    need("baresip", "baresip");
    let w = web_with(
        true,
        "\n[[conference]]\nnumber = \"800\"\nname = \"Ruang <b>Rapat</b>\"\n",
    );
    let mut c = w.client("127.0.0.65");
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    let empty = c.get("/conference").body;
    assert!(
        empty.contains("800 · Ruang &lt;b&gt;Rapat&lt;/b&gt;"),
        "{empty}"
    );
    assert!(empty.contains("Nobody is in this room."), "{empty}");

    let phones = [("201", "127.0.0.66", 400.0), ("202", "127.0.0.67", 700.0)];
    let mut procs = Vec::new();
    let mut dirs = Vec::new();
    for (ext, ip, hz) in phones {
        let wav = w.pbx.dir.join(format!("tone-{ext}.wav"));
        tone_wav_hz(&wav, 30, hz);
        let dir = baresip_phone_with(&w.pbx, ext, ip, 44098, &wav, false, "PCMU");
        procs.push(Proc::spawn(
            &format!("baresip {ext}"),
            std::process::Command::new("baresip")
                .arg("-f")
                .arg(&dir)
                .args(["-t", "18", "-e", "/dial 800"]),
            w.pbx.dir.join(format!("baresip-{ext}.log")),
        ));
        dirs.push(dir);
    }
    let logs = |procs: &[Proc]| {
        procs
            .iter()
            .map(|p| p.output())
            .collect::<Vec<_>>()
            .join("\n----\n")
            + &format!("\n---- pbx\n{}", w.pbx.log())
    };
    let page = |c: &mut Client| c.get("/conference").body;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut body = page(&mut c);
    while member_of(&body, "201").is_none() || member_of(&body, "202").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "members not shown: {body}\n{}",
            logs(&procs)
        );
        std::thread::sleep(Duration::from_millis(200));
        body = page(&mut c);
    }
    assert!(body.contains("2/50 members"), "{body}");
    let (m201, m202) = (
        member_of(&body, "201").unwrap(),
        member_of(&body, "202").unwrap(),
    );
    let csrf = c.get("/").csrf();
    std::thread::sleep(Duration::from_secs(3));

    let r = c.post("/conference/mute", &[("room", "800"), ("member", &m202)]);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.post(
        "/conference/mute",
        &[("csrf", &csrf), ("room", "800"), ("member", "99999")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("room 800 has no member 99999"),
        "{}",
        r.body
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !page(&mut c).contains(">Unmute</button>"),
        "muted without a token"
    );
    let r = c.post(
        "/conference/mute",
        &[("csrf", &csrf), ("room", "800"), ("member", &m202)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains(&format!("Member {m202} of room 800: mute switched.")),
        "{}",
        r.body
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !page(&mut c).contains(">Unmute</button>") {
        assert!(std::time::Instant::now() < deadline, "202 not muted");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));

    let kicked = std::time::Instant::now();
    let r = c.post(
        "/conference/kick",
        &[("csrf", &csrf), ("room", "800"), ("member", &m201)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let body = page(&mut c);
        if member_of(&body, "201").is_none() && member_of(&body, "202").is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "201 not kicked: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kicked_after = kicked.elapsed();
    for p in &mut procs {
        p.wait(Duration::from_secs(30));
    }
    let heard = baresip_decoded(&dirs[0])
        .unwrap_or_else(|| panic!("201 decoded nothing: {}", logs(&procs)));
    let bytes = std::fs::read(&heard).unwrap();
    let secs = kentongan_media::WavClip::parse(&bytes)
        .map(|c| c.duration_ms() as f64 / 1000.0)
        .unwrap_or(0.0);
    // The BYE of the kick ended 201's call about 10 s in, not its phone's 18 s.
    assert!(
        secs < 14.0,
        "201's call lasted {secs:.1} s (kick {kicked_after:?}): {}",
        logs(&procs)
    );
    let before = tone_db(&heard, 1.5, 3.5, 700.0);
    assert!(
        before > -35.0,
        "201 did not hear 202 before the mute: {before:.1} dB"
    );
    // The last seconds before the kick, after the mute: 202's tone is gone.
    let after = tone_db(&heard, -3.0, -1.0, 700.0);
    assert!(after < -45.0, "201 still hears muted 202: {after:.1} dB");
}

/// The Routing page shows the config's DIDs, ring groups, IVRs and office hours as the
/// daemon loaded them (values from the file rendered as text, `<b>` included), says the file
/// is where they change, and has no form that could change them.
#[test]
fn routing_page_lists_dids_groups_ivrs_and_office_hours() {
    // Voicemail on (the `vm:` targets need it), the pages in English.
    let w = web_config(
        true,
        "\n[[ring_group]]\nnumber = \"600\"\nname = \"Sales <b>A</b>\"\nstrategy = \"hunt\"\n\
         members = [\"201\", \"202\"]\nring_seconds = 15\nno_answer = \"vm:201\"\n\
         [[ivr]]\nnumber = \"700\"\ngreeting = \"Selamat datang\"\nlanguage = \"id\"\n\
         options = { \"1\" = \"201\", \"2\" = \"vm:202\" }\ninvalid = \"202\"\n\
         [[office_hours]]\nname = \"kantor\"\ntimezone = \"Asia/Jakarta\"\n\
         open = [\"mon-fri 08:00-17:00\"]\nin_hours = \"700\"\nafter_hours = \"vm:202\"\n\
         [[did]]\nnumber = \"+62215550100\"\nto = \"hours:kantor\"\n\
         [voicemail]\nlanguage = \"en\"\n",
    );
    let mut c = w.client("127.0.0.65");
    assert_eq!(c.get("/routing").location(), Some("/login"));
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    let r = c.get("/routing");
    assert_eq!(r.status, 200, "{}", r.body);
    r.assert_secure_headers();
    let b = &r.body;
    assert!(
        b.contains("<code>kentongan-pbx --config FILE check-config</code>"),
        "{b}"
    );
    assert!(
        b.contains("<td>+62215550100</td><td>hours:kantor</td><td>any</td>"),
        "{b}"
    );
    assert!(
        b.contains("<td>600</td><td>Sales &lt;b&gt;A&lt;/b&gt;</td><td>hunt</td><td class=\"wrap\">201, 202</td><td>15 s</td><td>vm:201</td>"),
        "{b}"
    );
    assert!(!b.contains("<b>A"), "{b}");
    assert!(b.contains("1 → 201<br>2 → vm:202<br>"), "{b}");
    assert!(b.contains("<td>202</td>"), "{b}");
    assert!(b.contains("<td>kantor</td><td>Asia/Jakarta</td>"), "{b}");
    assert!(b.contains("<td>700</td><td>vm:202</td>"), "{b}");
    assert!(
        !b.contains("method=\"post\" action=\"/routing"),
        "read-only: {b}"
    );
}

/// The Music on hold page over `[music_on_hold] directory`: a mono 8 kHz WAV uploaded with
/// the CSRF token is written (no temporary file left) and listed with its length; without
/// the token, as stereo, at 44.1 kHz, as not a WAV, under a name with a path in it or a name
/// taken, nothing is written and the reason stands next to the field; a file hold music
/// cannot read is listed as skipped, escaped; delete removes the file.
#[test]
fn music_on_hold_upload_is_checked_written_whole_and_deleted() {
    let dir = std::env::temp_dir().join(format!("kentongan-web-moh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = web_with(
        true,
        &format!("\n[music_on_hold]\ndirectory = \"{}\"\n", dir.display()),
    );
    let files = |d: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut c = w.client("127.0.0.63");
    assert_eq!(c.get("/moh").location(), Some("/login"));
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    let r = c.get("/moh");
    assert!(
        r.body.contains("No files: the built-in tune plays."),
        "{}",
        r.body
    );
    let csrf = r.csrf();

    let good = w.pbx.dir.join("good.wav");
    tone_wav_hz(&good, 2, 500.0);
    let r = c.upload_as("/moh/upload", &[("name", "gamelan.wav")], "wav", &good);
    assert_eq!(r.status, 403, "no token: {}", r.body);
    assert!(files(&dir).is_empty());

    let sox = |args: &[&str]| {
        let st = std::process::Command::new("sox")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "sox {args:?}");
    };
    let stereo = w.pbx.dir.join("stereo.wav");
    sox(&[good.to_str().unwrap(), "-c", "2", stereo.to_str().unwrap()]);
    let cd = w.pbx.dir.join("cd.wav");
    sox(&[good.to_str().unwrap(), "-r", "44100", cd.to_str().unwrap()]);
    let text = w.pbx.dir.join("notes.wav");
    std::fs::write(&text, "<script>alert(1)</script>").unwrap();
    for (name, file, field, says) in [
        ("s.wav", &stereo, "wav-error", "the file is stereo"),
        (
            "cd.wav",
            &cd,
            "wav-error",
            "not a WAV file hold music can read",
        ),
        (
            "t.wav",
            &text,
            "wav-error",
            "not a WAV file hold music can read",
        ),
        ("../escape.wav", &good, "name-error", "ends in .wav"),
        ("x.mp3", &good, "name-error", "ends in .wav"),
    ] {
        let r = c.upload_as(
            "/moh/upload",
            &[("csrf", &csrf), ("name", name)],
            "wav",
            file,
        );
        assert_eq!(r.status, 422, "{name}: {}", r.body);
        let error = r
            .body
            .split(&format!("id=\"{field}\">"))
            .nth(1)
            .and_then(|e| e.split("</span>").next())
            .unwrap_or_default();
        assert!(error.contains(says), "{name}: {}", r.body);
        assert!(files(&dir).is_empty(), "{name}: {:?}", files(&dir));
    }
    assert!(!dir.parent().unwrap().join("escape.wav").exists());

    let r = c.upload_as(
        "/moh/upload",
        &[("csrf", &csrf), ("name", "gamelan.wav")],
        "wav",
        &good,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("Added gamelan.wav; it plays from the next hold."),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<td class=\"wrap\">gamelan.wav</td>\n<td>0:02</td><td>8000 Hz</td>"),
        "{}",
        r.body
    );
    assert_eq!(files(&dir), ["gamelan.wav"], "no temporary file left");
    assert_eq!(
        std::fs::read(dir.join("gamelan.wav")).unwrap(),
        std::fs::read(&good).unwrap()
    );
    let r = c.upload_as(
        "/moh/upload",
        &[("csrf", &csrf), ("name", "gamelan.wav")],
        "wav",
        &good,
    );
    assert!(r.body.contains("gamelan.wav exists already"), "{}", r.body);

    std::fs::write(dir.join("broken.wav"), b"RIFF<b>x</b>").unwrap();
    let r = c.get("/moh");
    assert!(r.body.contains("skipped:"), "{}", r.body);
    assert!(!r.body.contains("<b>x"), "{}", r.body);

    let r = c.post("/moh/delete", &[("name", "gamelan.wav")]);
    assert_eq!(r.status, 403);
    let r = c.post("/moh/delete", &[("csrf", &csrf), ("name", "../pbx.db")]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(w.pbx.dir.join("pbx.db").exists());
    let r = c.post("/moh/delete", &[("csrf", &csrf), ("name", "gamelan.wav")]);
    assert!(r.body.contains("Deleted gamelan.wav."), "{}", r.body);
    assert_eq!(files(&dir), ["broken.wav"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The System page's admin accounts, by the `admin` CLI's rules: add (not without the CSRF
/// token, not a bad name, not a weak password — each error next to its field, nothing
/// stored), an operator sees no account forms and is refused their POST, a password change
/// ends the account's sessions and the new password logs in, the last admin cannot be
/// removed, and a removed account's session ends at once.
#[test]
fn system_page_manages_admin_accounts_by_the_cli_rules() {
    let w = web(true);
    let admin_list =
        || String::from_utf8_lossy(&w.pbx.cli(&["admin", "list"], None).stdout).into_owned();
    let mut c = w.client("127.0.0.63");
    assert_eq!(c.get("/system").location(), Some("/login"));
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    let r = c.get("/system");
    assert!(
        r.body
            .contains(&format!("id=\"version\">{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<td>admin</td><td>admin</td>"),
        "{}",
        r.body
    );
    let csrf = r.csrf();
    const SITI: &str = "kopi-tubruk-sore-hari";
    let r = c.post(
        "/system/admins",
        &[("name", "siti"), ("password", SITI), ("role", "operator")],
    );
    assert_eq!(r.status, 403);
    for (name, password, field) in [
        ("Bad Name", SITI, "name-error"),
        ("siti", "password", "password-error"),
        ("siti", "short", "password-error"),
        ("admin", "another-good-one-77", "name-error"),
    ] {
        let r = c.post(
            "/system/admins",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("role", "operator"),
            ],
        );
        assert_eq!(r.status, 422, "{name}/{password}: {}", r.body);
        assert!(
            r.body.contains(&format!("id=\"{field}\"")),
            "{name}: {}",
            r.body
        );
        assert!(
            !r.body.contains(SITI) && !r.body.contains("another-good-one"),
            "password echoed"
        );
    }
    assert!(!admin_list().contains("siti"), "{}", admin_list());
    let r = c.post(
        "/system/admins",
        &[
            ("csrf", &csrf),
            ("name", "siti"),
            ("password", SITI),
            ("role", "operator"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Added admin account siti."), "{}", r.body);
    assert!(admin_list().contains("siti\toperator"), "{}", admin_list());

    // The operator: no account forms, and their POST is refused.
    let mut op = w.client("127.0.0.62");
    assert_eq!(op.login("siti", SITI).status, 303);
    let page = op.get("/system");
    assert!(!page.body.contains("id=\"add-admin\""), "{}", page.body);
    assert!(
        page.body.contains("Only an account with the admin role"),
        "{}",
        page.body
    );
    let op_csrf = page.csrf();
    let r = op.post(
        "/system/admins",
        &[
            ("csrf", &op_csrf),
            ("name", "evil"),
            ("password", SITI),
            ("role", "admin"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = op.post(
        "/system/admins/remove",
        &[("csrf", &op_csrf), ("name", "admin")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!admin_list().contains("evil") && admin_list().contains("admin\tadmin"));

    // A new password ends siti's session; the new one logs in.
    const NEW: &str = "teh-manis-hangat-pagi";
    let r = c.post(
        "/system/admins/passwd",
        &[("csrf", &csrf), ("name", "siti"), ("password", NEW)],
    );
    assert!(
        r.body.contains("Changed the password of siti"),
        "{}",
        r.body
    );
    assert_eq!(op.get("/").location(), Some("/login"));
    assert_eq!(op.login("siti", SITI).status, 401);
    // That failure backs the account off for a second (the login guard).
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(op.login("siti", NEW).status, 303);

    let r = c.post(
        "/system/admins/remove",
        &[("csrf", &csrf), ("name", "admin")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("is the last one with the admin role"),
        "{}",
        r.body
    );
    let r = c.post(
        "/system/admins/remove",
        &[("csrf", &csrf), ("name", "siti")],
    );
    assert!(r.body.contains("Removed admin account siti."), "{}", r.body);
    assert!(!admin_list().contains("siti"), "{}", admin_list());
    assert_eq!(
        op.get("/").location(),
        Some("/login"),
        "a removed account's session ends"
    );
}

/// The language switch: with no `[voicemail] language` the pages are in Bahasa Indonesia;
/// the header's switch (a POST with the CSRF token; without it nothing changes, and only
/// "id" or "en" is a language) turns this session's dashboard and extensions page to
/// English, notices included, and back; the choice is remembered for the account's next
/// login; the switch returns to its page but never to a page it was not sent from.
#[test]
fn language_switch_turns_pages_english_and_back() {
    let w = web_config(true, "");
    let mut c = w.client("127.0.0.69");
    let login = c.get("/login");
    assert!(login.body.contains("<html lang=\"id\">"), "{}", login.body);
    assert!(login.body.contains(">Masuk</button>"), "{}", login.body);
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    let indonesian = |c: &mut Client| {
        let dash = c.get("/").body;
        assert!(dash.contains("<html lang=\"id\">"), "{dash}");
        assert!(dash.contains("<h1>Dasbor</h1>"), "{dash}");
        assert!(dash.contains("panggilan aktif"), "{dash}");
        assert!(dash.contains("<th>Penelepon</th>"), "{dash}");
        assert!(dash.contains(">English</button>"), "{dash}");
        assert!(!dash.contains("Live calls"), "{dash}");
        let ext = c.get("/extensions").body;
        assert!(ext.contains("<h2>Tambah ekstensi</h2>"), "{ext}");
        assert!(ext.contains("<th>Nomor</th><th>Nama</th>"), "{ext}");
        assert!(!ext.contains("Add an extension"), "{ext}");
    };
    let english = |c: &mut Client| {
        let dash = c.get("/").body;
        assert!(dash.contains("<html lang=\"en\">"), "{dash}");
        assert!(dash.contains("<h1>Dashboard</h1>"), "{dash}");
        assert!(dash.contains("live calls"), "{dash}");
        assert!(dash.contains("<th>Caller</th>"), "{dash}");
        assert!(dash.contains(">Bahasa Indonesia</button>"), "{dash}");
        assert!(!dash.contains("Dasbor"), "{dash}");
        let ext = c.get("/extensions").body;
        assert!(ext.contains("<h2>Add an extension</h2>"), "{ext}");
        assert!(ext.contains("<th>Number</th><th>Name</th>"), "{ext}");
        assert!(!ext.contains("Tambah ekstensi"), "{ext}");
    };
    indonesian(&mut c);
    let csrf = c.get("/").csrf();

    // No token, a stale one, or no language: refused, still Indonesian.
    let r = c.post("/language", &[("lang", "en"), ("page", "dashboard")]);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.post("/language", &[("csrf", &"0".repeat(64)), ("lang", "en")]);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.post("/language", &[("csrf", &csrf), ("lang", "fr")]);
    assert_eq!(r.status, 422, "{}", r.body);
    indonesian(&mut c);
    let r = c.post(
        "/extensions/remove",
        &[("csrf", &csrf), ("extension", "299")],
    );
    assert!(r.body.contains("Tidak ada ekstensi 299."), "{}", r.body);

    let r = c.post(
        "/language",
        &[("csrf", &csrf), ("lang", "en"), ("page", "extensions")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), Some("/extensions"));
    english(&mut c);
    let r = c.post(
        "/extensions/remove",
        &[("csrf", &csrf), ("extension", "299")],
    );
    assert!(r.body.contains("There is no extension 299."), "{}", r.body);

    // Remembered for the account: a new session after logout is English from the start.
    assert_eq!(c.post("/logout", &[("csrf", &csrf)]).status, 303);
    assert_eq!(c.get("/").location(), Some("/login"));
    assert_eq!(c.login("admin", ADMIN_PASSWORD).status, 303);
    english(&mut c);

    // Back; a page name it does not know returns to the dashboard, not to that "page".
    let csrf = c.get("/").csrf();
    let r = c.post(
        "/language",
        &[("csrf", &csrf), ("lang", "id"), ("page", "//evil.example/")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), Some("/"));
    indonesian(&mut c);
}
