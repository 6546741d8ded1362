//! The pages. Every handler first finds the session (none: 303 to /login); every POST then
//! checks the session's CSRF token (wrong or missing: 403, nothing changed). GET never
//! changes state. Security headers are added to every response, errors and assets included.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use tracing::{info, warn};

use crate::backend::{AddError, BackendError, CdrQuery, CdrSort};
use crate::guard::Verdict;
use crate::server::{AppState, Peer};
use crate::session::{same_secret, Session, COOKIE};
use crate::templates::*;

pub(crate) type St = State<Arc<AppState>>;
pub(crate) type Fields = Form<HashMap<String, String>>;

const CSS: &str = include_str!("../assets/style.css");
const PAGE_SIZE: u32 = 50;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/language", post(language))
        .route("/calls/hangup", post(hang_up))
        .route("/extensions", get(extensions).post(add_extension))
        .route("/extensions/remove", post(remove_extension))
        .route("/cdr", get(cdr))
        .route("/firewall", get(crate::firewall::page))
        .route("/firewall/ban", post(crate::firewall::ban))
        .route("/firewall/lift", post(crate::firewall::lift))
        .route("/trunks", get(crate::trunks::trunks))
        .route("/rates", get(crate::trunks::rates))
        .route("/rates/upload", post(crate::trunks::upload))
        .route("/voicemail", get(crate::voicemail::voicemail))
        .route("/voicemail/play", get(crate::voicemail::play_voicemail))
        .route(
            "/voicemail/delete",
            post(crate::voicemail::delete_voicemail),
        )
        .route("/recordings", get(crate::voicemail::recordings))
        .route("/recordings/play", get(crate::voicemail::play_recording))
        .route("/reports", get(crate::charts::reports))
        .route("/conference", get(crate::conference::page))
        .route("/routing", get(crate::routing::page))
        .route("/moh", get(crate::moh::page))
        .route("/system", get(crate::system::page))
        .route("/system/admins", post(crate::system::add))
        .route("/system/admins/remove", post(crate::system::remove))
        .route("/system/admins/passwd", post(crate::system::passwd))
        .route("/moh/upload", post(crate::moh::upload))
        .route("/moh/delete", post(crate::moh::delete))
        .route("/conference/mute", post(crate::conference::mute))
        .route("/conference/kick", post(crate::conference::kick))
        .route("/static/style.css", get(css))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("strict-transport-security", "max-age=31536000"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

pub(crate) fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            warn!(error = %e, "web page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

pub(crate) fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

pub(crate) fn db_failed(e: BackendError) -> Response {
    warn!(error = %e, "web admin: database failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the database failed; see the daemon's log (journalctl -u kentongan-pbx)",
    )
        .into_response()
}

/// Runs a blocking backend call off the event loop.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError(format!("web task failed: {e}")))?
}

fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

pub(crate) fn session(state: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = cookie_id(headers)?;
    let s = state.sessions.lock().ok()?.touch(&id, Instant::now())?;
    Some((id, s))
}

/// Whether a browser says this POST comes from another site's page (the check Go's
/// `CrossOriginProtection` makes). Browsers send `Sec-Fetch-Site` on every request; older ones
/// send only `Origin`, which must then name this server (`Host`). `Origin: null` is what our
/// own `Referrer-Policy: no-referrer` makes browsers send, so it decides nothing. This is what
/// protects the login form, which has no session and so no CSRF token yet.
fn cross_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None | Some("null"), _) => false,
        (Some(o), Some(h)) => o.strip_prefix("https://") != Some(h),
        (Some(_), None) => true,
    }
}

/// Why a POST was not carried out.
pub(crate) enum Refused {
    NoSession,
    BadCsrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NoSession => to_login(),
            Refused::BadCsrf => (
                StatusCode::FORBIDDEN,
                "the form's security token is missing or stale; reload the page and try again",
            )
                .into_response(),
        }
    }
}

/// The session of a POST whose form carries its CSRF token.
pub(crate) fn post_session(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Session, Refused> {
    let Some((_, s)) = session(state, headers) else {
        return Err(Refused::NoSession);
    };
    if cross_origin(headers) {
        return Err(Refused::BadCsrf);
    }
    match form.get("csrf") {
        Some(t) if same_secret(t, &s.csrf) => Ok(s),
        _ => Err(Refused::BadCsrf),
    }
}

pub(crate) fn chrome(s: &Session, page: &'static str) -> Chrome {
    Chrome {
        account: s.account.clone(),
        csrf: s.csrf.clone(),
        page,
        lang: s.lang,
    }
}

/// Where the header's switch returns to: the page names [`chrome`] is given, and only those,
/// so the form cannot redirect anywhere else.
const PAGES: &[(&str, &str)] = &[
    ("dashboard", "/"),
    ("extensions", "/extensions"),
    ("trunks", "/trunks"),
    ("rates", "/rates"),
    ("voicemail", "/voicemail"),
    ("recordings", "/recordings"),
    ("cdr", "/cdr"),
    ("reports", "/reports"),
    ("conference", "/conference"),
    ("routing", "/routing"),
    ("moh", "/moh"),
    ("system", "/system"),
    ("firewall", "/firewall"),
];

/// The header's language switch: this session's pages at once, the account's next logins too.
async fn language(State(state): St, headers: HeaderMap, Form(form): Fields) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Some(lang) = form.get("lang").and_then(|l| Lang::parse(l)) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "choose the language \"id\" (Bahasa Indonesia) or \"en\" (English)",
        )
            .into_response();
    };
    if let (Some(id), Ok(mut sessions)) = (cookie_id(&headers), state.sessions.lock()) {
        sessions.set_lang(&id, lang);
    }
    let backend = state.backend.clone();
    let account = s.account.clone();
    if let Err(e) = blocking(move || backend.set_admin_language(&account, lang)).await {
        return db_failed(e);
    }
    info!(account = %s.account, lang = lang.code(), "web language switched");
    let back = form
        .get("page")
        .and_then(|p| PAGES.iter().find(|(name, _)| name == p))
        .map_or("/", |(_, path)| *path);
    Redirect::to(back).into_response()
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn not_found(State(state): St, headers: HeaderMap) -> Response {
    match session(&state, &headers) {
        None => to_login(),
        Some(_) => (StatusCode::NOT_FOUND, "no such page").into_response(),
    }
}

async fn login_page(State(state): St, headers: HeaderMap) -> Response {
    let backend = state.backend.clone();
    let has_admins = match blocking(move || backend.has_admins()).await {
        Ok(x) => x,
        Err(e) => return db_failed(e),
    };
    if has_admins && session(&state, &headers).is_some() {
        return Redirect::to("/").into_response();
    }
    render(
        StatusCode::OK,
        &LoginPage {
            chrome: None,
            lang: state.default_lang,
            no_admins: !has_admins,
            error: None,
            name: String::new(),
        },
    )
}

async fn login(
    State(state): St,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let now = Instant::now();
    if state.banned_here(peer.ip(), now) {
        return (StatusCode::FORBIDDEN, "banned").into_response();
    }
    if cross_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "this login form was sent from another site; open the PBX's own login page",
        )
            .into_response();
    }
    let name = form.get("name").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let backend = state.backend.clone();
    let has_admins = match blocking(move || backend.has_admins()).await {
        Ok(x) => x,
        Err(e) => return db_failed(e),
    };
    let lang = state.default_lang;
    let page = |error: String| LoginPage {
        chrome: None,
        lang,
        no_admins: !has_admins,
        error: Some(error),
        name: name.clone(),
    };
    if !has_admins {
        return render(StatusCode::FORBIDDEN, &page(String::new()));
    }
    let since = now.saturating_duration_since(state.started);
    let verdict = match state.guard.lock() {
        Ok(g) => g.check(&name, since),
        Err(_) => Verdict::Wait(std::time::Duration::from_secs(1)),
    };
    if let Verdict::Wait(d) = verdict {
        let msg = lang.f(
            "Too many failed logins for this account; try again in {} s.",
            &[&d.as_secs().max(1)],
        );
        return render(StatusCode::TOO_MANY_REQUESTS, &page(msg));
    }
    let backend = state.backend.clone();
    let (n, p) = (name.clone(), password);
    let role = match blocking(move || backend.authenticate(&n, &p)).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    let Some(role) = role else {
        let ban = state
            .guard
            .lock()
            .ok()
            // The backoff runs from the failure, not from the request: argon2 took a while.
            .and_then(|mut g| g.failed(peer.ip(), &name, state.started.elapsed()));
        warn!(%peer, account = %name, "web login failed");
        if let Some(ban) = ban {
            if let Ok(mut m) = state.banned.lock() {
                m.insert(ban.addr, now + ban.duration);
            }
            let backend = state.backend.clone();
            let reason = format!("web login: {} failed logins", ban.failures);
            if let Err(e) = blocking(move || backend.ban(ban.addr, ban.duration, &reason)).await {
                warn!(error = %e, "could not store the web login ban");
            }
            warn!(addr = %ban.addr, "banned after failed web logins");
        }
        return render(
            StatusCode::UNAUTHORIZED,
            &page(lang.t("Wrong name or password.").into()),
        );
    };
    if let Ok(mut g) = state.guard.lock() {
        g.succeeded(peer.ip(), &name);
    }
    let backend = state.backend.clone();
    let n = name.clone();
    let lang = match blocking(move || backend.admin_language(&n)).await {
        Ok(l) => l.unwrap_or(state.default_lang),
        Err(e) => return db_failed(e),
    };
    let id = match state.sessions.lock() {
        Ok(mut s) => s.create(&name, role, lang, now),
        Err(_) => return db_failed(BackendError("session table poisoned".into())),
    };
    let Ok(id) = id else {
        return db_failed(BackendError("no randomness from the kernel".into()));
    };
    info!(%peer, account = %name, "web login");
    let cookie = format!("{COOKIE}={id}; Secure; HttpOnly; SameSite=Strict; Path=/");
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, "/".into())],
    )
        .into_response()
}

async fn logout(State(state): St, headers: HeaderMap, Form(form): Fields) -> Response {
    if let Err(r) = post_session(&state, &headers, &form) {
        return r.into_response();
    }
    if let (Some(id), Ok(mut s)) = (cookie_id(&headers), state.sessions.lock()) {
        s.end(&id);
    }
    let cookie = format!("{COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/login".into()),
        ],
    )
        .into_response()
}

async fn dashboard(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    let backend = state.backend.clone();
    let d = match blocking(move || backend.dashboard()).await {
        Ok(d) => d,
        Err(e) => return db_failed(e),
    };
    render(
        StatusCode::OK,
        &DashboardPage {
            chrome: Some(chrome(&s, "dashboard")),
            registrations: d.registrations,
            live_calls: d.live_calls,
            cdr_today: d.cdr_today,
            version: state.version.clone(),
            uptime: uptime(state.started.elapsed().as_secs()),
        },
    )
}

/// Hang up from the dashboard, then back to it (a reload does not send the POST again).
async fn hang_up(State(state): St, headers: HeaderMap, Form(form): Fields) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let call_id = form.get("call_id").cloned().unwrap_or_default();
    let backend = state.backend.clone();
    let c = call_id.clone();
    match blocking(move || backend.hang_up(&c)).await {
        Ok(true) => {
            info!(account = %s.account, call_id = %call_id.escape_debug(), "call hung up from the web")
        }
        Ok(false) => info!(account = %s.account, "hang-up for a call that had ended"),
        Err(e) => return db_failed(e),
    }
    Redirect::to("/").into_response()
}

fn uptime(s: u64) -> String {
    format!("{}d {}h {}m", s / 86400, s / 3600 % 24, s / 60 % 60)
}

async fn extensions_page(
    state: &AppState,
    s: &Session,
    form: ExtensionForm,
    status: StatusCode,
) -> Response {
    let backend = state.backend.clone();
    let rows = match blocking(move || backend.extensions()).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    render(
        status,
        &ExtensionsPage {
            chrome: Some(chrome(s, "extensions")),
            rows,
            form,
        },
    )
}

async fn extensions(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    extensions_page(&state, &s, ExtensionForm::default(), StatusCode::OK).await
}

async fn add_extension(State(state): St, headers: HeaderMap, Form(form): Fields) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let ext = form.get("extension").cloned().unwrap_or_default();
    let name = form.get("name").cloned().unwrap_or_default();
    let backend = state.backend.clone();
    let (e, n) = (ext.clone(), name.clone());
    let added = tokio::task::spawn_blocking(move || backend.add_extension(&e, &n))
        .await
        .unwrap_or_else(|e| Err(AddError::Backend(BackendError(e.to_string()))));
    let mut f = ExtensionForm {
        extension: ext.clone(),
        name,
        ..ExtensionForm::default()
    };
    let status = match added {
        Ok(password) => {
            info!(account = %s.account, extension = %ext, "extension added from the web");
            f = ExtensionForm {
                created: Some(Created {
                    extension: ext,
                    password,
                }),
                ..ExtensionForm::default()
            };
            StatusCode::OK
        }
        Err(AddError::Field(fe)) => {
            if fe.field == "name" {
                f.name_error = Some(fe.message);
            } else {
                f.extension_error = Some(fe.message);
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    extensions_page(&state, &s, f, status).await
}

async fn remove_extension(State(state): St, headers: HeaderMap, Form(form): Fields) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let ext = form.get("extension").cloned().unwrap_or_default();
    let backend = state.backend.clone();
    let e = ext.clone();
    let removed = match blocking(move || backend.remove_extension(&e)).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    let f = if removed {
        info!(account = %s.account, extension = %ext, "extension removed from the web");
        ExtensionForm {
            notice: Some(s.lang.f("Removed extension {}.", &[&ext])),
            ..ExtensionForm::default()
        }
    } else {
        ExtensionForm {
            notice: Some(s.lang.f("There is no extension {}.", &[&ext])),
            ..ExtensionForm::default()
        }
    };
    extensions_page(&state, &s, f, StatusCode::OK).await
}

async fn cdr(
    State(state): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    let text = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let page: u32 = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
        .min(1_000_000);
    let query = CdrQuery {
        extension: text("extension"),
        disposition: text("disposition"),
        sort: CdrSort::parse(q.get("sort").map_or("", String::as_str)),
        // Newest first unless asked otherwise.
        descending: q.get("order").map_or(true, |o| o != "asc"),
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
    };
    let backend = state.backend.clone();
    let qq = query.clone();
    let result = blocking(move || Ok((backend.cdrs(&qq)?, backend.dispositions()?))).await;
    let ((rows, total), dispositions) = match result {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1) as u32;
    render(
        StatusCode::OK,
        &CdrPage::new(
            chrome(&s, "cdr"),
            &query,
            rows,
            total,
            page,
            pages,
            dispositions,
        ),
    )
}
