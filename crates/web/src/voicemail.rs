//! The Voicemail page (each extension's mailbox: its messages, played in the browser,
//! deleted as `voicemail delete` does) and the Recordings page (every call recording, played
//! in the browser). A WAV is found by the database row the request names by number, never by
//! a path in the request, and is streamed from the file.

use std::collections::HashMap;
use std::path::PathBuf;

use askama::Template;
use axum::body::Body;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt as _;
use tracing::{info, warn};

use crate::backend::{MailboxRow, RecordingItem, VoicemailRow};
use crate::routes::{
    blocking, chrome, db_failed, post_session, render, session, to_login, Fields, St,
};
use crate::server::AppState;
use crate::session::Session;
use crate::templates::{url_encode, utc, words_from_chrome, Chrome, Words};

const RECORDINGS_PAGE_SIZE: usize = 50;

/// Milliseconds as `m:ss`.
fn duration(ms: i64) -> String {
    let s = ms.max(0).div_euclid(1000);
    format!("{}:{:02}", s / 60, s % 60)
}

words_from_chrome!(VoicemailPage, RecordingsPage);

#[derive(Template)]
#[template(path = "voicemail.html")]
pub struct VoicemailPage {
    pub chrome: Option<Chrome>,
    pub mailboxes: Vec<MailboxRow>,
    /// The mailbox shown, if any.
    pub mailbox: String,
    pub messages: Vec<VoicemailRow>,
    pub notice: Option<String>,
}

impl VoicemailPage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }

    fn when(ms: &i64) -> String {
        utc(*ms)
    }

    fn length(ms: &i64) -> String {
        duration(*ms)
    }

    fn href(mailbox: &str) -> String {
        format!("/voicemail?mailbox={}", url_encode(mailbox))
    }

    fn play(&self, id: &i64) -> String {
        format!(
            "/voicemail/play?mailbox={}&id={id}",
            url_encode(&self.mailbox)
        )
    }
}

async fn show_voicemail(
    state: &AppState,
    s: &Session,
    mailbox: String,
    notice: Option<String>,
) -> Response {
    let backend = state.backend.clone();
    let m = mailbox.clone();
    let result = blocking(move || {
        let boxes = backend.mailboxes()?;
        let messages = if m.is_empty() {
            Vec::new()
        } else {
            backend.voicemail(&m)?
        };
        Ok((boxes, messages))
    })
    .await;
    let (mailboxes, messages) = match result {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    render(
        StatusCode::OK,
        &VoicemailPage {
            chrome: Some(chrome(s, "voicemail")),
            mailboxes,
            mailbox,
            messages,
            notice,
        },
    )
}

pub(crate) async fn voicemail(
    State(state): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    let mailbox = q
        .get("mailbox")
        .map(|m| m.trim().to_owned())
        .unwrap_or_default();
    show_voicemail(&state, &s, mailbox, None).await
}

fn message_id(q: &HashMap<String, String>) -> Option<i64> {
    q.get("id").and_then(|i| i.trim().parse().ok())
}

/// Streams a WAV found by the backend; 404 when there is no such row or file.
async fn stream_wav(path: Option<PathBuf>, download_name: String) -> Response {
    let missing = || (StatusCode::NOT_FOUND, "no such message or recording").into_response();
    let Some(path) = path else {
        return missing();
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "a stored WAV cannot be opened");
            return missing();
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let chunks = futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut r = Response::new(Body::from_stream(chunks));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("audio/wav"),
    );
    // The name is built from numbers and an extension (letters, digits, . - _) only.
    if let Ok(v) = header::HeaderValue::from_str(&format!("inline; filename=\"{download_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    r
}

/// Extension numbers are letters, digits, `.`, `-` and `_`; anything else is not a mailbox.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

pub(crate) async fn play_voicemail(
    State(state): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if session(&state, &headers).is_none() {
        return to_login();
    }
    let mailbox = q
        .get("mailbox")
        .map(|m| m.trim().to_owned())
        .unwrap_or_default();
    let (Some(id), true) = (message_id(&q), safe_name(&mailbox)) else {
        return (StatusCode::NOT_FOUND, "no such message").into_response();
    };
    let backend = state.backend.clone();
    let m = mailbox.clone();
    let path = match blocking(move || backend.voicemail_file(&m, id)).await {
        Ok(p) => p,
        Err(e) => return db_failed(e),
    };
    stream_wav(path, format!("voicemail-{mailbox}-{id}.wav")).await
}

pub(crate) async fn delete_voicemail(
    State(state): St,
    headers: HeaderMap,
    Form(form): Fields,
) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let mailbox = form
        .get("mailbox")
        .map(|m| m.trim().to_owned())
        .unwrap_or_default();
    let Some(id) = message_id(&form) else {
        let notice = Some(s.lang.t("Say which message to delete.").to_owned());
        return show_voicemail(&state, &s, mailbox, notice).await;
    };
    let backend = state.backend.clone();
    let m = mailbox.clone();
    let deleted = match blocking(move || backend.delete_voicemail(&m, id)).await {
        Ok(d) => d,
        Err(e) => return db_failed(e),
    };
    let notice = if deleted {
        info!(account = %s.account, mailbox = %mailbox, id, "voicemail deleted from the web");
        s.lang
            .f("Deleted message {} of mailbox {}.", &[&id, &mailbox])
    } else {
        s.lang.f("Mailbox {} has no message {}.", &[&mailbox, &id])
    };
    show_voicemail(&state, &s, mailbox, Some(notice)).await
}

#[derive(Template)]
#[template(path = "recordings.html")]
pub struct RecordingsPage {
    pub chrome: Option<Chrome>,
    pub rows: Vec<RecordingItem>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl RecordingsPage {
    fn when(ms: &i64) -> String {
        utc(*ms)
    }

    fn length(ms: &i64) -> String {
        duration(*ms)
    }
}

pub(crate) async fn recordings(
    State(state): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    let backend = state.backend.clone();
    let mut all = match blocking(move || backend.recordings()).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    // Newest first: the one asked about is usually today's.
    all.reverse();
    let total = all.len();
    let pages = total.div_ceil(RECORDINGS_PAGE_SIZE).max(1);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let rows = all
        .into_iter()
        .skip((page - 1) * RECORDINGS_PAGE_SIZE)
        .take(RECORDINGS_PAGE_SIZE)
        .collect();
    render(
        StatusCode::OK,
        &RecordingsPage {
            chrome: Some(chrome(&s, "recordings")),
            rows,
            total,
            page,
            pages,
            prev: (page > 1).then(|| format!("/recordings?page={}", page - 1)),
            next: (page < pages).then(|| format!("/recordings?page={}", page + 1)),
        },
    )
}

pub(crate) async fn play_recording(
    State(state): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if session(&state, &headers).is_none() {
        return to_login();
    }
    let Some(id) = message_id(&q) else {
        return (StatusCode::NOT_FOUND, "no such recording").into_response();
    };
    let backend = state.backend.clone();
    let path = match blocking(move || backend.recording_file(id)).await {
        Ok(p) => p,
        Err(e) => return db_failed(e),
    };
    stream_wav(path, format!("recording-{id}.wav")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_mailbox_names() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(61_999), "1:01");
        assert_eq!(duration(-5), "0:00");
        assert!(safe_name("201"));
        for bad in ["", "../etc", "2 01", "201\"", "a/b"] {
            assert!(!safe_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_hostile_caller_renders_as_text() {
        let page = VoicemailPage {
            chrome: None,
            mailboxes: Vec::new(),
            mailbox: "201".into(),
            messages: vec![VoicemailRow {
                id: 1,
                caller: "<img src=x onerror=alert(1)>".into(),
                received_ms: 0,
                duration_ms: 3000,
                status: "new".into(),
            }],
            notice: None,
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img"), "{html}");
    }
}
