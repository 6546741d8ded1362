//! The web admin's Routing page data: the call routing the configuration file holds, copied
//! out of [`Config`] as text (the file is its source of truth; the page only shows it).

use kentongan_web::backend::{DidRow, IvrRow, OfficeHoursRow, RingGroupRow, Routing};

use crate::config::{Config, IvrGreeting};

/// The `[[did]]`, `[[ring_group]]`, `[[ivr]]` and `[[office_hours]]` tables as the Routing page
/// shows them, each value as the file would say it.
pub fn routing(c: &Config) -> Routing {
    Routing {
        dids: c
            .dids
            .iter()
            .map(|d| DidRow {
                number: d.number.clone(),
                to: d.to.clone(),
                trunk: d.trunk.as_ref().map(|t| t.to_string()).unwrap_or_default(),
            })
            .collect(),
        ring_groups: c
            .ring_groups
            .iter()
            .map(|g| RingGroupRow {
                number: g.number.clone(),
                name: g.name.clone(),
                strategy: g.strategy.name().to_owned(),
                members: g
                    .members
                    .iter()
                    .map(|m| m.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                ring_seconds: g.ring_seconds,
                no_answer: g
                    .no_answer
                    .as_ref()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        ivrs: c
            .ivrs
            .iter()
            .map(|i| IvrRow {
                number: i.number.clone(),
                greeting: match &i.greeting {
                    IvrGreeting::Text { text, language } => {
                        format!("\"{text}\" ({})", language.code())
                    }
                    IvrGreeting::File(p) => p.display().to_string(),
                },
                options: i
                    .options
                    .iter()
                    .map(|(k, t)| format!("{k} → {t}"))
                    .collect(),
                invalid: i.invalid.clone().unwrap_or_default(),
                timeout_s: i.timeout.as_secs(),
                retries: i.retries,
                direct_dial: i.direct_dial,
            })
            .collect(),
        office_hours: c
            .office_hours
            .iter()
            .map(|h| OfficeHoursRow {
                name: h.name.clone(),
                timezone: h.timezone.clone(),
                open: h.open.iter().map(|w| w.to_string()).collect(),
                holidays: h
                    .holidays
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                in_hours: h.in_hours.clone(),
                after_hours: h.after_hours.clone(),
            })
            .collect(),
    }
}
