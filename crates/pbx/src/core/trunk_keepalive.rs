//! OPTIONS keepalives to provider trunks with `keepalive_seconds`: any answer but a 5xx
//! (other than 501) means the provider is there (RFC 3261 §11: a 405 or 501 to OPTIONS still
//! comes from a live server); no answer within [`KEEPALIVE_TIMEOUT`] or a 5xx marks it down,
//! and calls skip it until it answers again. The state, with each trunk's channels in use, is
//! mirrored into the `trunk_health` table for `trunk list` and into `/metrics`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kentongan_lcr::lcr::TrunkKind;
use kentongan_sip::{HeaderName, Method, Request, Response, Uri};
use tracing::{info, warn};

use super::{Clock, Pbx, TxUse};
use crate::config::Config;
use crate::routing::outbound::Outbound;
use crate::store::{TrunkHealth, Write};

/// A provider that has not answered an OPTIONS this long after it was sent is down. Far
/// shorter than the transaction's 32 s: calls should stop waiting on a dead trunk soon.
pub(super) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) struct Keepalive {
    /// Index into `Config::trunks`.
    trunk: usize,
    peer: SocketAddr,
    every: Duration,
    next: Instant,
    /// The OPTIONS awaiting an answer (its number) and when it is given up.
    pending: Option<(u32, Instant)>,
    seq: u32,
    call_id: String,
    tag: String,
    /// `None` until the first answer or timeout.
    alive: Option<bool>,
}

/// One keepalive per provider trunk with `keepalive_seconds` whose address resolved.
pub(super) fn keepalives(
    config: &Config,
    outbound: Option<&Outbound>,
    now: Instant,
    mut ids: impl FnMut() -> (String, String),
) -> Vec<Keepalive> {
    config
        .trunks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == TrunkKind::Provider)
        .filter_map(|(i, t)| {
            let every = Duration::from_secs(u64::from(t.keepalive_seconds?));
            let peer = outbound?.address(i)?;
            let (call_id, tag) = ids();
            Some(Keepalive {
                trunk: i,
                peer,
                every,
                next: now,
                pending: None,
                seq: 0,
                call_id,
                tag,
                alive: None,
            })
        })
        .collect()
}

/// Whether an answer to OPTIONS shows the provider is up.
fn alive(status: u16) -> bool {
    !(500..600).contains(&status) || status == 501
}

impl Pbx {
    /// Sends the OPTIONS that are due and gives up on those unanswered for too long.
    pub(super) fn drive_keepalives(&mut self, clock: Clock) {
        for i in 0..self.keepalives.len() {
            let k = &mut self.keepalives[i];
            if k.pending.is_some_and(|(_, by)| by <= clock.now) {
                k.pending = None;
                self.set_reachable(clock, i, false, "no answer to OPTIONS");
            }
            let k = &mut self.keepalives[i];
            if k.pending.is_none() && k.next <= clock.now {
                k.seq += 1;
                k.next = clock.now + k.every;
                k.pending = Some((k.seq, clock.now + KEEPALIVE_TIMEOUT));
                let (peer, seq, call_id, tag) = (k.peer, k.seq, k.call_id.clone(), k.tag.clone());
                let Some(address) = self
                    .config
                    .trunks
                    .get(self.keepalives[i].trunk)
                    .and_then(|t| t.address.clone())
                else {
                    continue;
                };
                let Ok(uri) = Uri::parse(&format!("sip:{address}")) else {
                    continue;
                };
                let hp = self.host_port(peer);
                let mut req = Request::new(Method::Options, uri);
                req.headers
                    .push(HeaderName::From, format!("<sip:keepalive@{hp}>;tag={tag}"));
                req.headers.push(HeaderName::To, format!("<sip:{address}>"));
                req.headers.push(HeaderName::CallId, call_id);
                req.headers.push(HeaderName::CSeq, format!("{seq} OPTIONS"));
                req.headers.set(HeaderName::MaxForwards, "70");
                self.send(clock, peer, req, TxUse::Keepalive { index: i, seq });
            }
        }
    }

    pub(super) fn on_keepalive_response(
        &mut self,
        clock: Clock,
        index: usize,
        seq: u32,
        resp: &Response,
    ) {
        if resp.status.is_provisional() {
            return;
        }
        let Some(k) = self.keepalives.get_mut(index) else {
            return;
        };
        if k.pending.map(|(s, _)| s) != Some(seq) {
            return;
        }
        k.pending = None;
        let status = resp.status.0;
        if alive(status) {
            self.set_reachable(clock, index, true, "");
        } else {
            let detail = format!("answered OPTIONS with {status} {}", resp.reason);
            self.set_reachable(clock, index, false, &detail);
        }
    }

    pub(super) fn on_keepalive_timeout(&mut self, clock: Clock, index: usize, seq: u32) {
        let Some(k) = self.keepalives.get_mut(index) else {
            return;
        };
        if k.pending.map(|(s, _)| s) == Some(seq) {
            k.pending = None;
            self.set_reachable(clock, index, false, "no answer to OPTIONS");
        }
    }

    fn set_reachable(&mut self, clock: Clock, index: usize, up: bool, detail: &str) {
        let Some(k) = self.keepalives.get_mut(index) else {
            return;
        };
        if k.alive == Some(up) {
            return;
        }
        k.alive = Some(up);
        let trunk = k.trunk;
        let name = self
            .config
            .trunks
            .get(trunk)
            .map(|t| t.name.as_str().to_owned())
            .unwrap_or_default();
        if up {
            info!(trunk = %name, "trunk answers OPTIONS again; calls use it");
        } else {
            // The detail holds the provider's reason phrase: logged escaped.
            warn!(trunk = %name, detail = %detail.escape_debug(), "trunk is down; calls skip it");
        }
        if let Ok(mut g) = self.metrics.trunks.lock() {
            if let Some(t) = g.get_mut(trunk) {
                t.reachable = Some(up);
            }
        }
        self.trunk_health_changed(clock, trunk, detail);
    }

    /// A provider whose keepalives say it is down (never a trunk without keepalives).
    pub(super) fn trunk_down(&self, trunk: usize) -> bool {
        self.keepalives
            .iter()
            .any(|k| k.trunk == trunk && k.alive == Some(false))
    }

    /// Mirrors the channels in use of the trunks whose count changed since the last batch
    /// (and every trunk's at start), in the batch about to be committed.
    pub(super) fn mirror_trunk_channels(&mut self, clock: Clock) {
        if self.config.trunks.is_empty() {
            return;
        }
        let now = self.trunk_channels();
        let first = self.mirrored_channels.len() != now.len();
        for (i, n) in now.iter().enumerate() {
            if first || self.mirrored_channels[i] != *n {
                self.trunk_health_changed(clock, i, "");
            }
        }
        self.mirrored_channels = now;
    }

    /// Mirrors one trunk's reachability and channels into `trunk_health`.
    pub(super) fn trunk_health_changed(&mut self, clock: Clock, trunk: usize, detail: &str) {
        let Some(t) = self.config.trunks.get(trunk) else {
            return;
        };
        let reachable = self
            .keepalives
            .iter()
            .find(|k| k.trunk == trunk)
            .and_then(|k| k.alive);
        let channels_in_use = self.trunk_channels().get(trunk).copied().unwrap_or(0);
        self.writes.push(Write::TrunkHealth(TrunkHealth {
            name: t.name.as_str().to_owned(),
            reachable,
            detail: detail.to_owned(),
            channels_in_use,
            updated_ms: clock.unix_ms,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_answer_but_a_server_failure_means_alive() {
        for s in [200, 404, 405, 481, 501, 603] {
            assert!(alive(s), "{s}");
        }
        for s in [500, 502, 503, 504, 599] {
            assert!(!alive(s), "{s}");
        }
    }
}
