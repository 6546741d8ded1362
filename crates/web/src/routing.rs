//! The Routing page: DIDs, ring groups, IVRs and office hours. The configuration file is
//! their source of truth (checked as a whole by `kentongan-pbx check-config`, applied by a reload),
//! so the page shows them as the daemon loaded them at start and says where to change them;
//! it has no form.

use askama::Template;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::backend::Routing;
use crate::routes::{blocking, chrome, db_failed, render, session, to_login, St};
use crate::templates::{words_from_chrome, Chrome, Words};
use axum::extract::State;

words_from_chrome!(RoutingPage);

#[derive(Template)]
#[template(path = "routing.html")]
pub struct RoutingPage {
    pub chrome: Option<Chrome>,
    pub routing: Routing,
}

pub(crate) async fn page(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    let backend = state.backend.clone();
    let routing = match blocking(move || backend.routing()).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    render(
        StatusCode::OK,
        &RoutingPage {
            chrome: Some(chrome(&s, "routing")),
            routing,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{DidRow, IvrRow};
    use crate::i18n::Lang;

    #[test]
    fn config_values_render_as_text_in_both_languages() {
        let page = |lang| RoutingPage {
            chrome: Some(Chrome {
                account: "admin".into(),
                csrf: "c".repeat(64),
                page: "routing",
                lang,
            }),
            routing: Routing {
                dids: vec![DidRow {
                    number: "+62215550100".into(),
                    to: "hours:kantor".into(),
                    trunk: String::new(),
                }],
                ivrs: vec![IvrRow {
                    number: "600".into(),
                    greeting: "\"<b>Selamat</b> datang\" (id)".into(),
                    options: vec!["1 → 201".into()],
                    invalid: String::new(),
                    timeout_s: 5,
                    retries: 2,
                    direct_dial: true,
                }],
                ..Routing::default()
            },
        };
        let en = page(Lang::En).render().unwrap();
        assert!(en.contains("&lt;b&gt;Selamat&lt;/b&gt;"), "{en}");
        assert!(!en.contains("<b>Selamat"), "{en}");
        assert!(en.contains("<td>hours:kantor</td><td>any</td>"), "{en}");
        assert!(en.contains("No ring groups."), "{en}");
        let id = page(Lang::Id).render().unwrap();
        assert!(id.contains("Tidak ada grup dering."), "{id}");
    }
}
