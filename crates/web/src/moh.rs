//! The Music on hold page: the WAV files of `[music_on_hold] directory` in the order they
//! play, an upload (checked by the PBX with the media crate's WAV reader: mono at 8, 16 or
//! 48 kHz, written atomically) and a delete. Without files the built-in tune plays.

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::backend::{AddError, BackendError, MohList};
use crate::routes::{
    blocking, chrome, db_failed, post_session, render, session, to_login, Fields, St,
};
use crate::server::AppState;
use crate::session::Session;
use crate::templates::{words_from_chrome, Chrome, Words};
use crate::trunks::read_upload;

words_from_chrome!(MohPage);

/// The upload form's name, its errors next to each field, and what the last POST did.
#[derive(Default)]
pub struct MohForm {
    pub name: String,
    pub name_error: Option<String>,
    pub wav_error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "moh.html")]
pub struct MohPage {
    pub chrome: Option<Chrome>,
    pub list: MohList,
    pub form: MohForm,
}

impl MohPage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }

    fn length(ms: &u64) -> String {
        let s = ms / 1000;
        format!("{}:{:02}", s / 60, s % 60)
    }
}

async fn show(state: &AppState, s: &Session, form: MohForm, status: StatusCode) -> Response {
    let backend = state.backend.clone();
    let list = match blocking(move || backend.music_on_hold()).await {
        Ok(l) => l,
        Err(e) => return db_failed(e),
    };
    render(
        status,
        &MohPage {
            chrome: Some(chrome(s, "moh")),
            list,
            form,
        },
    )
}

pub(crate) async fn page(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    show(&state, &s, MohForm::default(), StatusCode::OK).await
}

pub(crate) async fn upload(
    State(state): St,
    headers: HeaderMap,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    if session(&state, &headers).is_none() {
        return to_login();
    }
    let (fields, wav) = match mp {
        Ok(mp) => match read_upload(mp, "wav").await {
            Ok(x) => x,
            Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
        },
        Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let s = match post_session(&state, &headers, &fields) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let name = fields
        .get("name")
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let mut form = MohForm {
        name: name.clone(),
        ..MohForm::default()
    };
    if wav.is_empty() {
        form.wav_error = Some(s.lang.t("Choose a WAV file to upload.").into());
        return show(&state, &s, form, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let backend = state.backend.clone();
    let n = name.clone();
    let done = tokio::task::spawn_blocking(move || backend.add_music_on_hold(&n, &wav))
        .await
        .unwrap_or_else(|e| Err(AddError::Backend(BackendError(e.to_string()))));
    let status = match done {
        Ok(()) => {
            info!(account = %s.account, file = %name, "music on hold file uploaded from the web");
            form = MohForm {
                notice: Some(s.lang.f("Added {}; it plays from the next hold.", &[&name])),
                ..MohForm::default()
            };
            StatusCode::OK
        }
        Err(AddError::Field(fe)) => {
            if fe.field == "name" {
                form.name_error = Some(fe.message);
            } else {
                form.wav_error = Some(fe.message);
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    show(&state, &s, form, status).await
}

pub(crate) async fn delete(State(state): St, headers: HeaderMap, form: Fields) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let name = form.get("name").cloned().unwrap_or_default();
    let backend = state.backend.clone();
    let n = name.clone();
    let done = tokio::task::spawn_blocking(move || backend.delete_music_on_hold(&n))
        .await
        .unwrap_or_else(|e| Err(AddError::Backend(BackendError(e.to_string()))));
    let (notice, status) = match done {
        Ok(true) => {
            info!(account = %s.account, file = %name, "music on hold file deleted from the web");
            (s.lang.f("Deleted {}.", &[&name]), StatusCode::OK)
        }
        Ok(false) => (s.lang.f("There is no file {}.", &[&name]), StatusCode::OK),
        Err(AddError::Field(fe)) => (fe.message, StatusCode::UNPROCESSABLE_ENTITY),
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    let form = MohForm {
        notice: Some(notice),
        ..MohForm::default()
    };
    show(&state, &s, form, status).await
}
