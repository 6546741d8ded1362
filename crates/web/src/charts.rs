//! Server-rendered bar charts (no script, no library): [`bar_chart`] turns values into bar
//! geometry, and `templates/chart.html` draws it as SVG with askama, so every label is
//! escaped like any other text on a page. The Reports page shows calls per day, minutes and
//! cost per trunk, and least-cost-routing savings per month.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::routes::{blocking, chrome, db_failed, render, session, to_login, St};
use crate::templates::{utc, word, words_from_chrome, Chrome, Words};

/// The drawing area of every chart, in SVG user units (the SVG scales to its box).
pub const WIDTH: u32 = 600;
pub const PLOT_HEIGHT: u32 = 160;
/// Room under the bars for the first and last labels.
const AXIS: u32 = 24;

/// One bar: its rectangle and what it stands for (shown as its tooltip).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub id: &'static str,
    pub title: String,
    pub width: u32,
    pub height: u32,
    /// The baseline's y.
    pub base: u32,
    /// Only the slots whose value is above zero have a bar.
    pub bars: Vec<Bar>,
    /// The first and last slot's labels, under the axis.
    pub first: String,
    pub last: String,
    /// The largest value, as text, at the top left.
    pub max: String,
}

/// Bars for `data` (label, value, value as text), one equal slot each, heights proportional
/// to the values (the largest reaches the top); zero, negative or NaN values get no bar.
pub fn bar_chart(id: &'static str, title: &str, data: &[(String, f64, String)]) -> BarChart {
    let max = data
        .iter()
        .map(|d| d.1)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let slot = WIDTH / (data.len().max(1) as u32);
    let width = (slot * 4 / 5).max(1);
    let bars = data
        .iter()
        .enumerate()
        .filter(|(_, (_, v, _))| v.is_finite() && *v > 0.0)
        .map(|(i, (label, v, text))| {
            let height = ((v / max) * f64::from(PLOT_HEIGHT)).round().max(1.0) as u32;
            Bar {
                x: i as u32 * slot + (slot - width) / 2,
                y: PLOT_HEIGHT - height,
                width,
                height,
                label: label.clone(),
                value: text.clone(),
            }
        })
        .collect();
    let max_text = data
        .iter()
        .filter(|d| d.1 == max)
        .map(|d| d.2.clone())
        .next()
        .unwrap_or_else(|| "0".into());
    BarChart {
        id,
        title: title.to_owned(),
        width: WIDTH,
        height: PLOT_HEIGHT + AXIS,
        base: PLOT_HEIGHT,
        bars,
        first: data.first().map(|d| d.0.clone()).unwrap_or_default(),
        last: data.last().map(|d| d.0.clone()).unwrap_or_default(),
        max: max_text,
    }
}

words_from_chrome!(ReportsPage);

#[derive(Template)]
#[template(path = "reports.html")]
pub struct ReportsPage {
    pub chrome: Option<Chrome>,
    pub charts: Vec<BarChart>,
    pub savings_problem: Option<String>,
}

fn money(ten_thousandths: i64) -> String {
    let sign = if ten_thousandths < 0 { "-" } else { "" };
    let v = ten_thousandths.unsigned_abs();
    format!("{sign}{}.{:02}", v / 10_000, v % 10_000 / 100)
}

pub(crate) async fn reports(State(state): St, headers: HeaderMap) -> Response {
    let Some((_, s)) = session(&state, &headers) else {
        return to_login();
    };
    let backend = state.backend.clone();
    let r = match blocking(move || backend.reports()).await {
        Ok(r) => r,
        Err(e) => return db_failed(e),
    };
    let day = |d: i64| utc(d * 86_400_000)[..10].to_owned();
    let calls: Vec<_> = r
        .calls_per_day
        .iter()
        .map(|(d, n)| (day(*d), *n as f64, format!("{n} calls")))
        .collect();
    let minutes: Vec<_> = r
        .per_trunk
        .iter()
        .map(|t| {
            let m = t.seconds as f64 / 60.0;
            (t.trunk.clone(), m, format!("{m:.1} min"))
        })
        .collect();
    let cost: Vec<_> = r
        .per_trunk
        .iter()
        .map(|t| (t.trunk.clone(), t.cost as f64, money(t.cost)))
        .collect();
    let saved: Vec<_> = r
        .saved_per_month
        .iter()
        .map(|(m, v)| (m.clone(), *v as f64, money(*v)))
        .collect();
    render(
        StatusCode::OK,
        &ReportsPage {
            chrome: Some(chrome(&s, "reports")),
            charts: vec![
                bar_chart("calls-per-day", word("Calls per day, last 30 days"), &calls),
                bar_chart(
                    "minutes-per-trunk",
                    word("Minutes per trunk, last 30 days"),
                    &minutes,
                ),
                bar_chart(
                    "cost-per-trunk",
                    word("Cost per trunk, last 30 days"),
                    &cost,
                ),
                bar_chart("savings-per-month", "LCR savings per month", &saved),
            ],
            savings_problem: r.savings_problem,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(label: &str, v: f64) -> (String, f64, String) {
        (label.into(), v, format!("{v}"))
    }

    #[test]
    fn bars_are_proportional_and_zero_has_none() {
        let c = bar_chart(
            "t",
            "T",
            &[d("a", 10.0), d("b", 0.0), d("c", 5.0), d("e", 2.5)],
        );
        assert_eq!(c.bars.len(), 3);
        assert_eq!(c.bars[0].height, PLOT_HEIGHT);
        assert_eq!(c.bars[1].height, PLOT_HEIGHT / 2);
        assert_eq!(c.bars[2].height, PLOT_HEIGHT / 4);
        for b in &c.bars {
            assert_eq!(b.y + b.height, c.base);
        }
        // Slots keep their place: "c" is the third of four.
        assert_eq!(c.bars[1].x / (WIDTH / 4), 2);
        assert_eq!(
            (c.first.as_str(), c.last.as_str(), c.max.as_str()),
            ("a", "e", "10")
        );
        assert!(bar_chart("t", "T", &[]).bars.is_empty());
        assert!(bar_chart("t", "T", &[d("x", f64::NAN), d("y", -1.0)])
            .bars
            .is_empty());
    }

    #[test]
    fn labels_are_escaped_in_the_svg() {
        let page = ReportsPage {
            chrome: None,
            charts: vec![bar_chart(
                "t",
                "<script>T</script>",
                &[d("<img src=x onerror=alert(1)>", 3.0), d("\"><b>", 1.0)],
            )],
            savings_problem: None,
        };
        let html = page.render().unwrap();
        assert_eq!(html.matches("<rect class=\"bar\"").count(), 2, "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img") && !html.contains("<script") && !html.contains("\"><b>"));
    }

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(6_500_000), "650.00");
        assert_eq!(money(12_345), "1.23");
        assert_eq!(money(-5_000), "-0.50");
    }
}
