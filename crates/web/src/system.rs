//! The System page: version and uptime, and the admin accounts — list, add, remove, change a
//! password — by the rules of `kentongan-pbx admin …` (the same name and password checks; the
//! last `admin`-role account cannot be removed). Only an `admin`-role session may change
//! accounts; an operator sees the page without those forms and is refused a POST. Removing an
//! account or changing its password ends that account's sessions.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::backend::{AddError, AdminRow, BackendError, Role};
use crate::routes::{
    blocking, chrome, db_failed, post_session, render, session, to_login, Fields, St,
};
use crate::server::AppState;
use crate::session::Session;
use crate::templates::{utc, words_from_chrome, Chrome, Words};

words_from_chrome!(SystemPage);

/// The account forms' values (never a password), errors next to each field, the last result.
#[derive(Default)]
pub struct AccountForm {
    pub name: String,
    pub operator: bool,
    pub name_error: Option<String>,
    pub password_error: Option<String>,
    /// Errors of the change-password form, which has fields of its own.
    pub passwd_name_error: Option<String>,
    pub passwd_error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "system.html")]
pub struct SystemPage {
    pub chrome: Option<Chrome>,
    pub version: String,
    pub uptime: String,
    pub can_manage: bool,
    pub admins: Vec<AdminRow>,
    pub form: AccountForm,
}

impl SystemPage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }

    fn role(&self, r: &Role) -> &'static str {
        match r {
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }

    fn created(s: &i64) -> String {
        utc(s.saturating_mul(1000))
    }
}

async fn show(state: &AppState, s: &Session, form: AccountForm, status: StatusCode) -> Response {
    let backend = state.backend.clone();
    let admins = match blocking(move || backend.admins()).await {
        Ok(a) => a,
        Err(e) => return db_failed(e),
    };
    let secs = state.started.elapsed().as_secs();
    render(
        status,
        &SystemPage {
            chrome: Some(chrome(s, "system")),
            version: state.version.clone(),
            uptime: format!(
                "{}d {}h {}m",
                secs / 86400,
                secs / 3600 % 24,
                secs / 60 % 60
            ),
            can_manage: s.role == Role::Admin,
            admins,
            form,
        },
    )
}

pub(crate) async fn page(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    show(&state, &s, AccountForm::default(), StatusCode::OK).await
}

/// The session of an account POST: CSRF first, then the admin role.
fn admin_session(
    state: &AppState,
    headers: &HeaderMap,
    form: &Fields,
) -> Result<Session, Box<Response>> {
    let s = post_session(state, headers, form).map_err(|r| Box::new(r.into_response()))?;
    if s.role != Role::Admin {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "only an account with the admin role can change admin accounts; ask an admin",
            )
                .into_response(),
        ));
    }
    Ok(s)
}

fn text(form: &Fields, key: &str) -> String {
    form.get(key).cloned().unwrap_or_default()
}

async fn run(f: impl FnOnce() -> Result<(), AddError> + Send + 'static) -> Result<(), AddError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(AddError::Backend(BackendError(e.to_string()))))
}

fn end_sessions(state: &AppState, account: &str) {
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.end_account(account);
    }
}

pub(crate) async fn add(State(state): St, headers: HeaderMap, form: Fields) -> Response {
    let s = match admin_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let name = text(&form, "name").trim().to_owned();
    let password = text(&form, "password");
    let role = if text(&form, "role") == "operator" {
        Role::Operator
    } else {
        Role::Admin
    };
    let backend = state.backend.clone();
    let n = name.clone();
    let mut f = AccountForm {
        name: name.clone(),
        operator: role == Role::Operator,
        ..AccountForm::default()
    };
    let status = match run(move || backend.add_admin(&n, &password, role)).await {
        Ok(()) => {
            info!(account = %s.account, added = %name, "admin account added from the web");
            f = AccountForm {
                notice: Some(s.lang.f("Added admin account {}.", &[&name])),
                ..AccountForm::default()
            };
            StatusCode::OK
        }
        Err(AddError::Field(fe)) => {
            if fe.field == "password" {
                f.password_error = Some(fe.message);
            } else {
                f.name_error = Some(fe.message);
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    show(&state, &s, f, status).await
}

pub(crate) async fn remove(State(state): St, headers: HeaderMap, form: Fields) -> Response {
    let s = match admin_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let name = text(&form, "name").trim().to_owned();
    let backend = state.backend.clone();
    let n = name.clone();
    let (notice, status) = match run(move || backend.remove_admin(&n)).await {
        Ok(()) => {
            info!(account = %s.account, removed = %name, "admin account removed from the web");
            end_sessions(&state, &name);
            if name == s.account {
                return to_login();
            }
            (
                s.lang.f("Removed admin account {}.", &[&name]),
                StatusCode::OK,
            )
        }
        Err(AddError::Field(fe)) => (fe.message, StatusCode::UNPROCESSABLE_ENTITY),
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    let f = AccountForm {
        notice: Some(notice),
        ..AccountForm::default()
    };
    show(&state, &s, f, status).await
}

pub(crate) async fn passwd(State(state): St, headers: HeaderMap, form: Fields) -> Response {
    let s = match admin_session(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let name = text(&form, "name").trim().to_owned();
    let password = text(&form, "password");
    let backend = state.backend.clone();
    let n = name.clone();
    let mut f = AccountForm::default();
    let status = match run(move || backend.set_admin_password(&n, &password)).await {
        Ok(()) => {
            info!(account = %s.account, changed = %name, "admin password changed from the web");
            end_sessions(&state, &name);
            if name == s.account {
                return to_login();
            }
            f.notice = Some(s.lang.f(
                "Changed the password of {}; its sessions have ended.",
                &[&name],
            ));
            StatusCode::OK
        }
        Err(AddError::Field(fe)) => {
            if fe.field == "password" {
                f.passwd_error = Some(fe.message);
            } else {
                f.passwd_name_error = Some(fe.message);
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    show(&state, &s, f, status).await
}
