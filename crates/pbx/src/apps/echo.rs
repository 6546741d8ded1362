//! The echo test (`*43`): the PBX answers, beeps once, and sends the caller its own audio back
//! 20 ms later until it hangs up, so a user can hear their microphone, headset and network the
//! way the other end would.

use kentongan_engine::LegId;

use super::{Action, Cue};

/// What a caller of the echo test gets on `leg`.
pub fn enter(leg: LegId) -> Vec<Action> {
    vec![
        Action::Cue {
            leg,
            cue: Cue::Beep,
        },
        Action::Echo { leg },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_hears_a_beep_then_itself() {
        let leg = LegId(4);
        assert_eq!(
            enter(leg),
            vec![
                Action::Cue {
                    leg,
                    cue: Cue::Beep
                },
                Action::Echo { leg }
            ]
        );
    }
}
