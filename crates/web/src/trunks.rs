//! The Trunks page (`trunk list`, the LCR explain box, the savings report) and the Rates page
//! (the installed rates file, searchable and paginated, and a CSV upload that `lcr import`'s
//! rules load whole or not at all). The backend applies the rules; this module only shows.

use std::collections::HashMap;

use askama::Template;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::backend::{AddError, BackendError, Explained, ImportError, RateRow, Savings, TrunkRow};
use crate::routes::{blocking, chrome, db_failed, post_session, render, session, to_login, St};
use crate::server::AppState;
use crate::session::Session;
use crate::templates::{url_encode, words_from_chrome, Chrome, Words};

const RATES_PAGE_SIZE: usize = 50;

/// The explain box's and the savings form's values and their results or errors.
#[derive(Default)]
pub struct TrunkForms {
    pub number: String,
    pub at: String,
    pub number_error: Option<String>,
    pub at_error: Option<String>,
    pub explained: Option<Explained>,
    pub month: String,
    pub month_error: Option<String>,
    pub savings: Option<Savings>,
}

words_from_chrome!(TrunksPage, RatesPage);

#[derive(Template)]
#[template(path = "trunks.html")]
pub struct TrunksPage {
    pub chrome: Option<Chrome>,
    pub trunks: Vec<TrunkRow>,
    pub forms: TrunkForms,
}

impl TrunksPage {
    fn channels(t: &TrunkRow) -> String {
        match t.max_channels {
            Some(n) => format!("{}/{n}", t.channels_in_use),
            None => format!("{}/unlimited", t.channels_in_use),
        }
    }

    fn keepalive(t: &TrunkRow) -> String {
        match (t.reachable, t.down_reason.as_deref()) {
            (Some(true), _) => "up".into(),
            (Some(false), Some(why)) if !why.is_empty() => format!("down ({why})"),
            (Some(false), _) => "down".into(),
            (None, _) => "-".into(),
        }
    }

    fn minutes(seconds: &u64) -> String {
        format!("{}:{:02}", seconds / 60, seconds % 60)
    }
}

fn split_field(e: AddError) -> Result<(&'static str, String), BackendError> {
    match e {
        AddError::Field(f) => Ok((f.field, f.message)),
        AddError::Backend(b) => Err(b),
    }
}

pub(crate) async fn trunks(
    State(state): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    let text = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let mut forms = TrunkForms {
        number: text("number"),
        at: text("at"),
        month: text("month"),
        ..TrunkForms::default()
    };
    let backend = state.backend.clone();
    let (number, at, month) = (forms.number.clone(), forms.at.clone(), forms.month.clone());
    // Both reports are reads: a GET with the inputs in the query, like a search.
    let result = blocking(move || {
        let trunks = backend.trunks()?;
        let explained = (!number.is_empty()).then(|| backend.explain(&number, &at));
        let savings = (!month.is_empty()).then(|| backend.savings(&month));
        Ok((trunks, explained, savings))
    })
    .await;
    let (trunks, explained, savings) = match result {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    let mut status = StatusCode::OK;
    match explained.map(|r| r.map_err(split_field)) {
        Some(Ok(x)) => forms.explained = Some(x),
        Some(Err(Ok((field, message)))) => {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            if field == "at" {
                forms.at_error = Some(message);
            } else {
                forms.number_error = Some(message);
            }
        }
        Some(Err(Err(e))) => return db_failed(e),
        None => {}
    }
    match savings.map(|r| r.map_err(split_field)) {
        Some(Ok(x)) => forms.savings = Some(x),
        Some(Err(Ok((_, message)))) => {
            status = StatusCode::UNPROCESSABLE_ENTITY;
            forms.month_error = Some(message);
        }
        Some(Err(Err(e))) => return db_failed(e),
        None => {}
    }
    render(
        status,
        &TrunksPage {
            chrome: Some(chrome(&s, "trunks")),
            trunks,
            forms,
        },
    )
}

/// The rates whose prefix starts with `prefix` (a leading `+` optional) and whose trunk name
/// contains `trunk` (any case); empty filters match everything.
pub fn filter_rates<'a>(rows: &'a [RateRow], prefix: &str, trunk: &str) -> Vec<&'a RateRow> {
    let prefix = prefix.trim().trim_start_matches('+');
    let trunk = trunk.trim().to_lowercase();
    rows.iter()
        .filter(|r| r.prefix.trim_start_matches('+').starts_with(prefix))
        .filter(|r| r.trunk.to_lowercase().contains(&trunk))
        .collect()
}

/// The upload's outcome, shown above the table.
#[derive(Default)]
pub struct Upload {
    pub notice: Option<String>,
    /// A problem with the upload as a whole.
    pub error: Option<String>,
    /// Every bad line, as `line N: …`.
    pub lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "rates.html")]
pub struct RatesPage {
    pub chrome: Option<Chrome>,
    pub file: String,
    pub problem: Option<String>,
    pub prefix: String,
    pub trunk: String,
    pub rows: Vec<RateRow>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub upload: Upload,
}

impl RatesPage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }
}

async fn show_rates(
    state: &AppState,
    s: &Session,
    q: &HashMap<String, String>,
    upload: Upload,
    status: StatusCode,
) -> Response {
    let backend = state.backend.clone();
    let rates = match blocking(move || backend.rates()).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    let text = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (prefix, trunk) = (text("prefix"), text("trunk"));
    let matching = filter_rates(&rates.rows, &prefix, &trunk);
    let total = matching.len();
    let pages = total.div_ceil(RATES_PAGE_SIZE).max(1);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let link = |page: usize| {
        format!(
            "/rates?prefix={}&trunk={}&page={page}",
            url_encode(&prefix),
            url_encode(&trunk)
        )
    };
    let rows = matching
        .into_iter()
        .skip((page - 1) * RATES_PAGE_SIZE)
        .take(RATES_PAGE_SIZE)
        .cloned()
        .collect();
    render(
        status,
        &RatesPage {
            chrome: Some(chrome(s, "rates")),
            file: rates.file,
            problem: rates.problem,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
            prefix,
            trunk,
            rows,
            total,
            page,
            pages,
            upload,
        },
    )
}

pub(crate) async fn rates(
    State(state): St,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    show_rates(&state, &s, &q, Upload::default(), StatusCode::OK).await
}

/// A multipart form: its text fields and the bytes of the file field `file`.
pub(crate) async fn read_upload(
    mut mp: Multipart,
    file: &str,
) -> Result<(HashMap<String, String>, Vec<u8>), String> {
    let broken = |e: axum::extract::multipart::MultipartError| {
        format!("the upload was cut off or too large (at most 2 MB): {e}")
    };
    let mut fields = HashMap::new();
    let mut csv = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == file {
            csv = field.bytes().await.map_err(broken)?.to_vec();
        } else {
            fields.insert(name, field.text().await.map_err(broken)?);
        }
    }
    Ok((fields, csv))
}

pub(crate) async fn upload(
    State(state): St,
    headers: HeaderMap,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    if session(&state, &headers).is_none() {
        return to_login();
    }
    let (fields, csv) = match mp {
        Ok(mp) => match read_upload(mp, "csv").await {
            Ok(x) => x,
            Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
        },
        Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    let s = match post_session(&state, &headers, &fields) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let mut upload = Upload::default();
    let status = match String::from_utf8(csv) {
        Err(_) => {
            upload.error = Some(
                s.lang
                    .t("The file is not UTF-8 text; save it as CSV (UTF-8).")
                    .into(),
            );
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Ok(text) if text.trim().is_empty() => {
            upload.error = Some(s.lang.t("Choose a rates CSV file to upload.").into());
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Ok(text) => {
            let backend = state.backend.clone();
            let done = tokio::task::spawn_blocking(move || backend.import_rates(&text))
                .await
                .unwrap_or_else(|e| Err(ImportError::Backend(BackendError(e.to_string()))));
            match done {
                Ok(i) => {
                    info!(account = %s.account, rates = i.rates, "rates uploaded from the web");
                    upload.notice = Some(s.lang.f(
                        "Loaded {} rates for {} trunks. The running daemon uses them after `systemctl reload kentongan-pbx`.",
                        &[&i.rates, &i.trunks],
                    ));
                    StatusCode::OK
                }
                Err(ImportError::Lines(lines)) => {
                    upload.error = Some(
                        s.lang
                            .t("Nothing was loaded: fix the lines below and upload the whole file again.")
                            .into(),
                    );
                    upload.lines = lines;
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                Err(ImportError::Refused(why)) => {
                    upload.error = Some(why);
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                Err(ImportError::Backend(e)) => return db_failed(e),
            }
        }
    };
    show_rates(&state, &s, &HashMap::new(), upload, status).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(trunk: &str, prefix: &str) -> RateRow {
        RateRow {
            line: 1,
            trunk: trunk.into(),
            prefix: prefix.into(),
            rate_per_minute: "650.00".into(),
            connect_fee: "0.00".into(),
            increment_seconds: 60,
            window: String::new(),
        }
    }

    #[test]
    fn rates_filter_by_prefix_and_trunk() {
        let rows = [
            rate("provider", "+62"),
            rate("provider", "+62812"),
            rate("goip-telkomsel", "+62812"),
        ];
        assert_eq!(filter_rates(&rows, "", "").len(), 3);
        assert_eq!(filter_rates(&rows, "+62812", "").len(), 2);
        assert_eq!(filter_rates(&rows, "62812", "GOIP").len(), 1);
        assert!(filter_rates(&rows, "' OR 1=1--", "").is_empty());
        assert!(filter_rates(&rows, "", "%").is_empty());
    }

    #[test]
    fn a_hostile_line_error_renders_as_text() {
        let page = RatesPage {
            chrome: None,
            file: "/etc/kentongan/rates.csv".into(),
            problem: None,
            prefix: "\"><script>x</script>".into(),
            trunk: String::new(),
            rows: vec![rate("provider", "+62")],
            total: 1,
            page: 1,
            pages: 1,
            prev: None,
            next: None,
            upload: Upload {
                lines: vec!["line 2: found `<script>alert(1)</script>`".into()],
                ..Upload::default()
            },
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
    }
}
