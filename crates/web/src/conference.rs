//! The Conference page: the `[[conference]]` rooms (the config is their source of truth, so
//! the page lists them and says where to change them) with the members the daemon mirrors,
//! and per member a mute (or unmute) and a kick. Those are the commands `conference mute|kick`
//! leave in the database; the daemon's conference carries them out within a second.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::backend::{AddError, BackendError, MemberAction, RoomRow};
use crate::routes::Fields;
use crate::routes::{blocking, chrome, db_failed, post_session, render, session, to_login, St};
use crate::server::AppState;
use crate::session::Session;
use crate::templates::{utc, words_from_chrome, Chrome, Words};

words_from_chrome!(ConferencePage);

#[derive(Template)]
#[template(path = "conference.html")]
pub struct ConferencePage {
    pub chrome: Option<Chrome>,
    pub rooms: Vec<RoomRow>,
    pub notice: Option<String>,
}

impl ConferencePage {
    fn csrf(&self) -> &str {
        self.chrome.as_ref().map_or("", |c| c.csrf.as_str())
    }

    fn since(ms: &i64) -> String {
        utc(*ms)
    }
}

async fn show(
    state: &AppState,
    s: &Session,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let backend = state.backend.clone();
    let rooms = match blocking(move || backend.conferences()).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    render(
        status,
        &ConferencePage {
            chrome: Some(chrome(s, "conference")),
            rooms,
            notice,
        },
    )
}

pub(crate) async fn page(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    show(&state, &s, None, StatusCode::OK).await
}

async fn act(
    state: &AppState,
    headers: &HeaderMap,
    form: &Fields,
    action: MemberAction,
) -> Response {
    let s = match post_session(state, headers, form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let room = form
        .get("room")
        .map(|r| r.trim().to_owned())
        .unwrap_or_default();
    let Some(member) = form
        .get("member")
        .and_then(|m| m.trim().parse::<i64>().ok())
    else {
        let notice = s.lang.t("Say which member: the number in the room's list.");
        return show(
            state,
            &s,
            Some(notice.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let backend = state.backend.clone();
    let r = room.clone();
    let done = tokio::task::spawn_blocking(move || backend.conference_member(&r, member, action))
        .await
        .unwrap_or_else(|e| Err(AddError::Backend(BackendError(e.to_string()))));
    let (notice, status) = match done {
        Ok(()) => {
            info!(account = %s.account, room = %room, member, action = action.name(), "conference member command from the web");
            let sentence = match action {
                MemberAction::Mute => "Member {} of room {}: mute switched.",
                MemberAction::Kick => "Member {} of room {} is hung up.",
            };
            (s.lang.f(sentence, &[&member, &room]), StatusCode::OK)
        }
        Err(AddError::Field(fe)) => (fe.message, StatusCode::UNPROCESSABLE_ENTITY),
        Err(AddError::Backend(e)) => return db_failed(e),
    };
    show(state, &s, Some(notice), status).await
}

pub(crate) async fn mute(State(state): St, headers: HeaderMap, form: Fields) -> Response {
    act(&state, &headers, &form, MemberAction::Mute).await
}

pub(crate) async fn kick(State(state): St, headers: HeaderMap, form: Fields) -> Response {
    act(&state, &headers, &form, MemberAction::Kick).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::RoomMember;
    use crate::i18n::Lang;

    #[test]
    fn a_hostile_member_renders_as_text() {
        let page = ConferencePage {
            chrome: Some(Chrome {
                account: "admin".into(),
                csrf: "c".repeat(64),
                page: "conference",
                lang: Lang::En,
            }),
            rooms: vec![RoomRow {
                number: "800".into(),
                name: "Ruang Rapat".into(),
                locked: true,
                max_members: 50,
                members: vec![RoomMember {
                    member: 7,
                    extension: "<script>alert(1)</script>".into(),
                    admin: false,
                    muted: true,
                    talking: false,
                    joined_ms: 0,
                }],
            }],
            notice: None,
        };
        let html = page.render().unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(">Unmute</button>"), "{html}");
        assert!(html.contains("name=\"member\" value=\"7\""), "{html}");
    }
}
