//! Feature codes: a phone dials `*72`+number, `*78`, `*70`, … to change its own forwarding, do not
//! disturb or call waiting. The PBX answers, says whether the feature is now on or off (or that the number is
//! not valid), and hangs up. The change itself is handed back as a [`SettingsWrite`] for the
//! core to store and apply.

use kentongan_engine::LegId;

use super::{Action, Prompt};
use crate::routing::FeatureCode;
use crate::store::{Extension, SettingsWrite};

pub const ACTIVATED: Prompt = Prompt("feature-activated");
pub const DEACTIVATED: Prompt = Prompt("feature-deactivated");
pub const NUMBER_INVALID: Prompt = Prompt("number-invalid");

/// Every prompt feature codes use.
pub const PROMPTS: &[Prompt] = &[ACTIVATED, DEACTIVATED, NUMBER_INVALID];

/// What `caller` dialling `code` on `leg` changes, and what it hears.
pub fn enter(
    leg: LegId,
    caller: &Extension,
    code: &FeatureCode,
) -> (Option<SettingsWrite>, Vec<Action>) {
    let extension = caller.clone();
    let (write, prompt) = match code {
        // Forwarding to yourself would be a loop on the first call.
        FeatureCode::Forward { target, .. } if target == caller => (None, NUMBER_INVALID),
        FeatureCode::Forward { kind, target } => (
            Some(SettingsWrite::Forward {
                extension,
                kind: *kind,
                target: Some(target.0.clone()),
            }),
            ACTIVATED,
        ),
        FeatureCode::ClearForward(kind) => (
            Some(SettingsWrite::Forward {
                extension,
                kind: *kind,
                target: None,
            }),
            DEACTIVATED,
        ),
        FeatureCode::Dnd(on) => (
            Some(SettingsWrite::Dnd { extension, on: *on }),
            if *on { ACTIVATED } else { DEACTIVATED },
        ),
        FeatureCode::CallWaiting(on) => (
            Some(SettingsWrite::CallWaiting { extension, on: *on }),
            if *on { ACTIVATED } else { DEACTIVATED },
        ),
        FeatureCode::InvalidNumber(_) => (None, NUMBER_INVALID),
    };
    (
        write,
        vec![
            Action::Say { leg, prompt },
            Action::HangUpAfterPrompts { leg },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ForwardKind;

    fn ext(s: &str) -> Extension {
        Extension(s.into())
    }

    #[test]
    fn each_code_changes_the_callers_setting_confirms_and_hangs_up() {
        let leg = LegId(3);
        let (w, a) = enter(
            leg,
            &ext("201"),
            &FeatureCode::Forward {
                kind: ForwardKind::All,
                target: ext("202"),
            },
        );
        assert_eq!(
            w,
            Some(SettingsWrite::Forward {
                extension: ext("201"),
                kind: ForwardKind::All,
                target: Some("202".into())
            })
        );
        assert_eq!(
            a,
            vec![
                Action::Say {
                    leg,
                    prompt: ACTIVATED
                },
                Action::HangUpAfterPrompts { leg }
            ]
        );
        let (w, a) = enter(
            leg,
            &ext("201"),
            &FeatureCode::ClearForward(ForwardKind::Busy),
        );
        assert_eq!(
            w,
            Some(SettingsWrite::Forward {
                extension: ext("201"),
                kind: ForwardKind::Busy,
                target: None
            })
        );
        assert_eq!(
            a[0],
            Action::Say {
                leg,
                prompt: DEACTIVATED
            }
        );
        let (w, a) = enter(leg, &ext("201"), &FeatureCode::Dnd(true));
        assert_eq!(
            w,
            Some(SettingsWrite::Dnd {
                extension: ext("201"),
                on: true
            })
        );
        assert_eq!(
            a[0],
            Action::Say {
                leg,
                prompt: ACTIVATED
            }
        );
        let (w, a) = enter(leg, &ext("201"), &FeatureCode::CallWaiting(false));
        assert_eq!(
            w,
            Some(SettingsWrite::CallWaiting {
                extension: ext("201"),
                on: false
            })
        );
        assert_eq!(
            a[0],
            Action::Say {
                leg,
                prompt: DEACTIVATED
            }
        );
        let (w, _) = enter(leg, &ext("201"), &FeatureCode::Dnd(false));
        assert_eq!(
            w,
            Some(SettingsWrite::Dnd {
                extension: ext("201"),
                on: false
            })
        );
    }

    #[test]
    fn every_prompt_is_in_the_catalogue_without_a_number_slot() {
        let catalogue = kentongan_prompts::Catalogue::builtin().unwrap();
        for p in PROMPTS {
            let found = catalogue
                .get(p.0)
                .unwrap_or_else(|| panic!("{} missing", p.0));
            assert!(!found.has_number_slot(), "{}", p.0);
        }
    }

    #[test]
    fn bad_numbers_and_forwarding_to_yourself_change_nothing() {
        let leg = LegId(1);
        for code in [
            FeatureCode::InvalidNumber("999".into()),
            FeatureCode::Forward {
                kind: ForwardKind::NoAnswer,
                target: ext("201"),
            },
        ] {
            let (w, a) = enter(leg, &ext("201"), &code);
            assert_eq!(w, None);
            assert_eq!(
                a[0],
                Action::Say {
                    leg,
                    prompt: NUMBER_INVALID
                }
            );
            assert_eq!(a[1], Action::HangUpAfterPrompts { leg });
        }
    }
}
