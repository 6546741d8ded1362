//! Counters and gauges for `/metrics`, shared with the daemon's HTTP task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::media::{Direction, EngineStats, MediaKind, RelayStats};

/// Counters and gauges for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub registrations: AtomicU64,
    pub active_calls: AtomicU64,
    pub calls_total: AtomicU64,
    pub auth_failures: AtomicU64,
    pub messages_total: AtomicU64,
    pub bans_auth: AtomicU64,
    pub bans_scanner: AtomicU64,
    pub bans_active: AtomicU64,
    pub dropped_banned: AtomicU64,
    pub dropped_scanner: AtomicU64,
    pub relay: Arc<RelayStats>,
    pub engine: Arc<EngineStats>,
    pub conference_rooms: AtomicU64,
    pub conference_members: AtomicU64,
    /// Voicemail messages stored since start.
    pub voicemails_total: AtomicU64,
    /// New (unheard) voicemail messages in all mailboxes.
    pub voicemail_waiting: AtomicU64,
    /// Per `[[trunk]]`, in configuration order; changed only when trunk calls or
    /// registrations change (never on the per-REGISTER path).
    pub trunks: Mutex<Vec<TrunkGauges>>,
    /// Calls refused by each `[fraud]` cap, in `fraud::Cap::ALL` order.
    pub fraud_cap_trips: [AtomicU64; 4],
    /// IVR callers handed on, by how they chose (`1`, `direct`, `invalid`); a handful of
    /// labels, so a sorted list.
    pub ivr_choices: Mutex<Vec<(String, u64)>>,
    /// Call recordings stored since start.
    pub recordings_total: AtomicU64,
}

/// One trunk's gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkGauges {
    /// A `[[trunk]]` name (letters, digits and `-`: safe as a label value).
    pub name: String,
    pub channels_in_use: u64,
    /// `Some` for trunks we register to: whether the registration is current.
    pub registered: Option<bool>,
    /// `Some` for providers with keepalives, once probed: whether they answer OPTIONS.
    pub reachable: Option<bool>,
}

impl Metrics {
    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP kentongan_registrations Registered contact bindings.\n\
             # TYPE kentongan_registrations gauge\nkentongan_registrations {}\n\
             # HELP kentongan_active_calls Calls in progress (ringing or answered).\n\
             # TYPE kentongan_active_calls gauge\nkentongan_active_calls {}\n\
             # HELP kentongan_calls_total Call attempts since start.\n\
             # TYPE kentongan_calls_total counter\nkentongan_calls_total {}\n\
             # HELP kentongan_auth_failures_total Digest authentication failures.\n\
             # TYPE kentongan_auth_failures_total counter\nkentongan_auth_failures_total {}\n\
             # HELP kentongan_messages_total Instant messages accepted.\n\
             # TYPE kentongan_messages_total counter\nkentongan_messages_total {}\n\
             # HELP kentongan_rtp_packets_total RTP/RTCP packets relayed.\n\
             # TYPE kentongan_rtp_packets_total counter\nkentongan_rtp_packets_total {}\n\
             # HELP kentongan_rtp_bytes_total RTP/RTCP bytes relayed.\n\
             # TYPE kentongan_rtp_bytes_total counter\nkentongan_rtp_bytes_total {}\n",
            g(&self.registrations),
            g(&self.active_calls),
            g(&self.calls_total),
            g(&self.auth_failures),
            g(&self.messages_total),
            g(&self.relay.packets),
            g(&self.relay.bytes),
        ) + &self.render_media()
            + &self.render_engine()
            + &self.render_voicemail()
            + &self.render_ivr()
            + &self.render_firewall()
            + &self.render_trunks()
            + &self.render_fraud()
    }

    fn render_fraud(&self) -> String {
        let mut s = String::from(
            "# HELP kentongan_fraud_cap_trips_total Outbound calls refused by a [fraud] cap.\n\
             # TYPE kentongan_fraud_cap_trips_total counter\n",
        );
        for (cap, n) in super::fraud::Cap::ALL.iter().zip(&self.fraud_cap_trips) {
            s.push_str(&format!(
                "kentongan_fraud_cap_trips_total{{cap=\"{}\"}} {}\n",
                cap.label(),
                n.load(Ordering::Relaxed)
            ));
        }
        s
    }

    fn render_trunks(&self) -> String {
        let trunks = self.trunks.lock().map(|t| t.clone()).unwrap_or_default();
        if trunks.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "# HELP kentongan_trunk_channels_in_use Calls on each trunk, answered or being set up.\n\
             # TYPE kentongan_trunk_channels_in_use gauge\n",
        );
        for t in &trunks {
            s.push_str(&format!(
                "kentongan_trunk_channels_in_use{{trunk=\"{}\"}} {}\n",
                t.name, t.channels_in_use
            ));
        }
        s.push_str(
            "# HELP kentongan_trunk_registered Our registration to a provider trunk, or a gateway's to us, is current (1) or not (0).\n\
             # TYPE kentongan_trunk_registered gauge\n",
        );
        for t in &trunks {
            if let Some(r) = t.registered {
                s.push_str(&format!(
                    "kentongan_trunk_registered{{trunk=\"{}\"}} {}\n",
                    t.name,
                    u8::from(r)
                ));
            }
        }
        s.push_str(
            "# HELP kentongan_trunk_reachable A provider with keepalives answers OPTIONS (1) or not (0).\n\
             # TYPE kentongan_trunk_reachable gauge\n",
        );
        for t in &trunks {
            if let Some(r) = t.reachable {
                s.push_str(&format!(
                    "kentongan_trunk_reachable{{trunk=\"{}\"}} {}\n",
                    t.name,
                    u8::from(r)
                ));
            }
        }
        s
    }

    fn render_firewall(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP kentongan_bans_total Sources banned by the daemon, by reason.\n\
             # TYPE kentongan_bans_total counter\n\
             kentongan_bans_total{{reason=\"auth\"}} {}\n\
             kentongan_bans_total{{reason=\"scanner\"}} {}\n\
             # HELP kentongan_bans_active Sources banned now (as the daemon knows them).\n\
             # TYPE kentongan_bans_active gauge\nkentongan_bans_active {}\n\
             # HELP kentongan_dropped_packets_total SIP packets the daemon dropped unanswered.\n\
             # TYPE kentongan_dropped_packets_total counter\n\
             kentongan_dropped_packets_total{{reason=\"banned\"}} {}\n\
             kentongan_dropped_packets_total{{reason=\"scanner\"}} {}\n",
            g(&self.bans_auth),
            g(&self.bans_scanner),
            g(&self.bans_active),
            g(&self.dropped_banned),
            g(&self.dropped_scanner),
        )
    }

    fn render_engine(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let e = &self.engine;
        format!(
            "# HELP kentongan_conference_rooms Conference rooms with members.\n\
             # TYPE kentongan_conference_rooms gauge\n\
             kentongan_conference_rooms {}\n\
             # HELP kentongan_conference_members Members in conference rooms.\n\
             # TYPE kentongan_conference_members gauge\n\
             kentongan_conference_members {}\n\
             # HELP kentongan_engine_legs Call legs the media engine terminates.\n\
             # TYPE kentongan_engine_legs gauge\n\
             kentongan_engine_legs {}\n\
             # HELP kentongan_engine_packets_total RTP packets the media engine received and sent.\n\
             # TYPE kentongan_engine_packets_total counter\n\
             kentongan_engine_packets_total{{direction=\"in\"}} {}\n\
             kentongan_engine_packets_total{{direction=\"out\"}} {}\n\
             # HELP kentongan_mixer_seconds_total Time the media engine spent decoding, mixing and encoding.\n\
             # TYPE kentongan_mixer_seconds_total counter\n\
             kentongan_mixer_seconds_total {:.6}\n",
            g(&self.conference_rooms),
            g(&self.conference_members),
            g(&e.legs),
            g(&e.packets_in),
            g(&e.packets_out),
            g(&e.mix_us) as f64 / 1e6,
        )
    }

    /// One more IVR caller handed on by `choice` (a key, `direct` or `invalid`).
    pub fn ivr_choice(&self, choice: &str) {
        let mut v = self.ivr_choices.lock().unwrap_or_else(|e| e.into_inner());
        match v.iter_mut().find(|(c, _)| c == choice) {
            Some((_, n)) => *n += 1,
            None => {
                v.push((choice.to_owned(), 1));
                v.sort();
            }
        }
    }

    fn render_ivr(&self) -> String {
        let v = self.ivr_choices.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP kentongan_ivr_calls_total IVR callers handed on, by the option chosen.\n\
             # TYPE kentongan_ivr_calls_total counter\n",
        );
        for (choice, n) in v.iter() {
            // Choices are one key (0-9, *, #), `direct` or `invalid`: safe label values.
            out += &format!("kentongan_ivr_calls_total{{option=\"{choice}\"}} {n}\n");
        }
        out += &format!(
            "# HELP kentongan_recordings_total Call recordings stored since start.\n\
             # TYPE kentongan_recordings_total counter\nkentongan_recordings_total {}\n",
            self.recordings_total.load(Ordering::Relaxed)
        );
        out
    }

    fn render_voicemail(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP kentongan_voicemails_total Voicemail messages left since start.\n\
             # TYPE kentongan_voicemails_total counter\nkentongan_voicemails_total {}\n\
             # HELP kentongan_voicemail_messages_waiting New voicemail messages in all mailboxes.\n\
             # TYPE kentongan_voicemail_messages_waiting gauge\nkentongan_voicemail_messages_waiting {}\n",
            g(&self.voicemails_total),
            g(&self.voicemail_waiting),
        )
    }

    fn render_media(&self) -> String {
        let mut s = String::from(
            "# HELP kentongan_relay_packets_total Packets relayed by media kind and direction.\n\
             # TYPE kentongan_relay_packets_total counter\n",
        );
        for kind in MediaKind::ALL {
            for dir in Direction::ALL {
                s.push_str(&format!(
                    "kentongan_relay_packets_total{{media=\"{}\",direction=\"{}\"}} {}\n",
                    kind.as_str(),
                    dir.as_str(),
                    self.relay.packets_of(kind, dir)
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_valid_prometheus_text() {
        let text = Metrics::default().render();
        for line in text.lines() {
            // A scraper reads an indented sample as garbage, and the engine's counters were.
            assert!(!line.starts_with(char::is_whitespace), "indented: {line:?}");
            if let Some(comment) = line.strip_prefix('#') {
                assert!(
                    comment.starts_with(" HELP ") || comment.starts_with(" TYPE "),
                    "{line:?}"
                );
            } else {
                let (_, value) = line.rsplit_once(' ').expect("name and value");
                assert!(value.parse::<f64>().is_ok(), "{line:?}");
            }
        }
        assert!(text.contains("\nkentongan_engine_packets_total{direction=\"out\"} 0\n"));
    }
}
