//! `[fraud]` caps, checked before a call goes out through a trunk: concurrent outbound calls
//! (all together and per extension) and international minutes per local day (likewise). A
//! call over a cap gets 403 with the cap named, a `fraud cap reached` warning in the journal
//! and a count in `kentongan_fraud_cap_trips_total{cap}`; an international call under the
//! minute caps is cut when the minutes left run out. Emergency calls are never capped.

use std::sync::atomic::Ordering;

use kentongan_lcr::class::CallClass;
use tracing::warn;

use super::{Clock, Pbx};
use crate::routing::outbound::TrunkCall;
use crate::store::Extension;

/// Which cap a call ran into (the metric's `cap` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Calls,
    CallsPerExtension,
    InternationalMinutes,
    InternationalMinutesPerExtension,
}

impl Cap {
    pub const ALL: [Cap; 4] = [
        Cap::Calls,
        Cap::CallsPerExtension,
        Cap::InternationalMinutes,
        Cap::InternationalMinutesPerExtension,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Cap::Calls => "outbound_calls",
            Cap::CallsPerExtension => "outbound_calls_per_extension",
            Cap::InternationalMinutes => "international_minutes_per_day",
            Cap::InternationalMinutesPerExtension => "international_minutes_per_day_per_extension",
        }
    }

    /// The reason phrase of the 403.
    fn phrase(self) -> &'static str {
        match self {
            Cap::Calls => "Forbidden: the office's limit of simultaneous outside calls is reached",
            Cap::CallsPerExtension => {
                "Forbidden: this extension's limit of simultaneous outside calls is reached"
            }
            Cap::InternationalMinutes => {
                "Forbidden: the office's international minutes for today are used up"
            }
            Cap::InternationalMinutesPerExtension => {
                "Forbidden: this extension's international minutes for today are used up"
            }
        }
    }
}

impl Pbx {
    /// `Some((cap, phrase))` when `call` by `caller` is over a cap. An international call
    /// under the minute caps gets its `max_call_minutes` lowered to the whole minutes left.
    pub(super) fn fraud_check(
        &mut self,
        clock: Clock,
        caller: &Extension,
        call: &mut TrunkCall,
    ) -> Option<(Cap, &'static str)> {
        if call.class == CallClass::Emergency {
            return None;
        }
        let fraud = self.config.fraud.clone();
        let outbound = |c: &&super::calls::Call| {
            c.trunk
                .as_ref()
                .is_some_and(|t| t.call.class != CallClass::Emergency)
        };
        let all = self.calls.values().filter(outbound).count() as u64;
        let mine = self
            .calls
            .values()
            .filter(outbound)
            .filter(|c| &c.caller == caller)
            .count() as u64;
        let mut tripped = None;
        if fraud
            .max_outbound_calls_per_extension
            .is_some_and(|m| mine >= u64::from(m))
        {
            tripped = Some(Cap::CallsPerExtension);
        } else if fraud
            .max_outbound_calls
            .is_some_and(|m| all >= u64::from(m))
        {
            tripped = Some(Cap::Calls);
        }
        if tripped.is_none() && call.class == CallClass::International {
            let caps = [
                (
                    Cap::InternationalMinutesPerExtension,
                    fraud.max_international_minutes_per_day_per_extension,
                    Some(caller),
                ),
                (
                    Cap::InternationalMinutes,
                    fraud.max_international_minutes_per_day,
                    None,
                ),
            ];
            for (cap, limit, who) in caps {
                let Some(limit) = limit else { continue };
                let used = self.international_seconds_today(clock, who);
                let left = i64::from(limit) * 60 - used;
                if left < 60 {
                    tripped = Some(cap);
                    break;
                }
                let left_minutes = (left / 60) as u32;
                call.max_call_minutes = Some(
                    call.max_call_minutes
                        .map_or(left_minutes, |m| m.min(left_minutes)),
                );
            }
        }
        let cap = tripped?;
        if let Some(n) = Cap::ALL.iter().position(|c| *c == cap) {
            self.metrics.fraud_cap_trips[n].fetch_add(1, Ordering::Relaxed);
        }
        warn!(
            cap = cap.label(),
            %caller,
            number = %call.number,
            class = %call.class,
            "fraud cap reached: call refused"
        );
        Some((cap, cap.phrase()))
    }

    /// Seconds of international calls since the local day began: ended calls from the CDR,
    /// answered ones so far. `who`: one caller's only.
    fn international_seconds_today(&self, clock: Clock, who: Option<&Extension>) -> i64 {
        let offset = self
            .dialplan
            .outbound()
            .map_or(0, |o| o.utc_offset_seconds());
        let local = clock.unix_s() + offset;
        let day_start_ms = (local - local.rem_euclid(86_400) - offset) * 1000;
        let ended = match self
            .store
            .international_seconds_since(day_start_ms, who.map(|e| e.0.as_str()))
        {
            Ok(s) => s,
            Err(e) => {
                // Unknown usage must not lift the cap: count it as all used.
                warn!(error = %e, "international minutes could not be read; the cap counts as reached");
                return i64::MAX / 2;
            }
        };
        let live: i64 = self
            .calls
            .values()
            .filter(|c| {
                c.trunk
                    .as_ref()
                    .is_some_and(|t| t.call.class == CallClass::International)
                    && who.map_or(true, |w| &c.caller == w)
            })
            .filter_map(|c| c.answer_ms)
            .map(|a| (clock.unix_ms - a).max(0) / 1000)
            .sum();
        ended.ceil() as i64 + live
    }
}
