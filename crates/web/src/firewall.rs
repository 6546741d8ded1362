//! The Firewall page: the banned addresses (lift one), a ban by hand, the trusted networks.
//! Bans follow the same rules as `kentongan-pbx ban add/remove` (the backend applies them).

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::backend::{AddError, BackendError};
use crate::routes::{
    blocking, chrome, db_failed, post_session, render, session, to_login, Fields, St,
};
use crate::server::AppState;
use crate::session::Session;
use crate::templates::{BanForm, FirewallPage};

async fn show(state: &AppState, s: &Session, form: BanForm, status: StatusCode) -> Response {
    let backend = state.backend.clone();
    let bans = match blocking(move || backend.bans()).await {
        Ok(b) => b,
        Err(e) => return db_failed(e),
    };
    render(
        status,
        &FirewallPage {
            chrome: Some(chrome(s, "firewall")),
            bans,
            trusted: state.trusted.clone(),
            form,
        },
    )
}

pub(crate) async fn page(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    show(&state, &s, BanForm::default(), StatusCode::OK).await
}

pub(crate) async fn ban(State(state): St, headers: HeaderMap, Form(form): Fields) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let addr = form.get("addr").cloned().unwrap_or_default();
    let hours = form.get("hours").cloned().unwrap_or_default();
    let backend = state.backend.clone();
    let (a, h) = (addr.clone(), hours.clone());
    let done = tokio::task::spawn_blocking(move || backend.add_ban(&a, &h))
        .await
        .unwrap_or_else(|e| Err(AddError::Backend(BackendError(e.to_string()))));
    let (form, status) = match done {
        Ok(stored) => {
            info!(account = %s.account, addr = %stored, hours = %hours, "address banned from the web");
            let notice = Some(s.lang.f("Banned {} for {} h.", &[&stored, &hours]));
            (
                BanForm {
                    notice,
                    ..BanForm::default()
                },
                StatusCode::OK,
            )
        }
        Err(AddError::Field(fe)) => {
            let mut f = BanForm {
                addr,
                hours,
                ..BanForm::default()
            };
            if fe.field == "hours" {
                f.hours_error = Some(fe.message);
            } else {
                f.addr_error = Some(fe.message);
            }
            (f, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    show(&state, &s, form, status).await
}

pub(crate) async fn lift(State(state): St, headers: HeaderMap, Form(form): Fields) -> Response {
    let s = match post_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let addr = form.get("addr").cloned().unwrap_or_default();
    let backend = state.backend.clone();
    let a = addr.clone();
    let done = tokio::task::spawn_blocking(move || backend.lift_ban(&a))
        .await
        .unwrap_or_else(|e| Err(AddError::Backend(BackendError(e.to_string()))));
    let notice = match done {
        Ok(stored) => {
            info!(account = %s.account, addr = %stored, "ban lifted from the web");
            s.lang.f("Lifted the ban on {}.", &[&stored])
        }
        Err(AddError::Field(fe)) => fe.message,
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    let form = BanForm {
        notice: Some(notice),
        ..BanForm::default()
    };
    show(&state, &s, form, StatusCode::OK).await
}
