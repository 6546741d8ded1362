//! Outbound registration of `register = true` provider trunks (RFC 3261 §10.2): a REGISTER
//! to the provider's `address`, the 401/407 answered once with the trunk's credentials,
//! refreshed when 80 % of the granted time has passed, retried with a doubling backoff
//! (5 s up to 5 minutes) after a failure. Each change of state is written to the
//! `trunk_state` table, which `trunk list` reads.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kentongan_lcr::lcr::TrunkKind;
use kentongan_sip::auth::authorize;
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Method, Request, Response, Uri};
use tracing::{info, warn};

use super::{Clock, Pbx, TxUse};
use crate::config::Config;
use crate::routing::outbound::Outbound;
use crate::store::{TrunkState, Write};

/// What we ask providers for; they may grant less.
const REQUESTED_EXPIRES: u32 = 600;
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(super) struct TrunkRegistration {
    /// Index into `Config::trunks`.
    trunk: usize,
    peer: SocketAddr,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// When the next REGISTER goes out (a refresh or a retry); `None` while one is pending.
    next: Option<Instant>,
    /// This attempt already carried credentials: another challenge means they are wrong.
    authenticated: bool,
    failures: u32,
}

/// One registration per `register = true` provider trunk whose address resolved.
pub(super) fn registrations(
    config: &Config,
    outbound: Option<&Outbound>,
    now: Instant,
    mut ids: impl FnMut() -> (String, String),
) -> Vec<TrunkRegistration> {
    config
        .trunks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.register && t.kind == TrunkKind::Provider)
        .filter_map(|(i, _)| {
            let peer = outbound?.address(i)?;
            let (call_id, from_tag) = ids();
            Some(TrunkRegistration {
                trunk: i,
                peer,
                call_id,
                from_tag,
                cseq: 0,
                next: Some(now),
                authenticated: false,
                failures: 0,
            })
        })
        .collect()
}

/// The time the registrar granted: our Contact's `expires` parameter, else Expires, else what
/// we asked for.
fn granted_seconds(resp: &Response) -> u32 {
    let from_contact = resp.headers.get_all(&HeaderName::Contact).find_map(|v| {
        let text = v.as_str().to_ascii_lowercase();
        let at = text.find("expires=")?;
        let digits: String = text[at + 8..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    from_contact
        .or_else(|| {
            resp.headers
                .get_str(&HeaderName::Expires)
                .and_then(|e| e.trim().parse().ok())
        })
        .unwrap_or(REQUESTED_EXPIRES)
}

/// When to refresh a registration granted for `secs`: after 80 % of it, at least 2 s early.
fn refresh_after(secs: u32) -> Duration {
    let secs = u64::from(secs.max(4));
    Duration::from_secs((secs * 4 / 5).min(secs - 2))
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

impl Pbx {
    /// Sends the REGISTERs that are due.
    pub(super) fn drive_trunk_registrations(&mut self, clock: Clock) {
        for i in 0..self.trunk_regs.len() {
            if self.trunk_regs[i].next.is_some_and(|t| t <= clock.now) {
                self.trunk_regs[i].next = None;
                self.trunk_regs[i].authenticated = false;
                self.send_register(clock, i, None);
            }
        }
    }

    fn send_register(
        &mut self,
        clock: Clock,
        reg: usize,
        credentials: Option<(HeaderName, String)>,
    ) {
        let Some(r) = self.trunk_regs.get_mut(reg) else {
            return;
        };
        let Some(trunk) = self.config.trunks.get(r.trunk).cloned() else {
            return;
        };
        let (Some(address), Some(user)) = (trunk.address.clone(), trunk.username.clone()) else {
            return;
        };
        r.cseq += 1;
        let (peer, cseq, call_id, tag) = (r.peer, r.cseq, r.call_id.clone(), r.from_tag.clone());
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h)
            .to_owned();
        let Ok(uri) = Uri::parse(&format!("sip:{address}")) else {
            warn!(
                trunk = trunk.name.as_str(),
                "no REGISTER URI for the trunk address"
            );
            return;
        };
        let mut req = Request::new(Method::Register, uri);
        req.headers
            .push(HeaderName::From, format!("<sip:{user}@{host}>;tag={tag}"));
        req.headers
            .push(HeaderName::To, format!("<sip:{user}@{host}>"));
        req.headers.push(HeaderName::CallId, call_id);
        req.headers
            .push(HeaderName::CSeq, format!("{cseq} REGISTER"));
        let hp = self.host_port(peer);
        req.headers
            .push(HeaderName::Contact, format!("<sip:{user}@{hp}>"));
        req.headers
            .push(HeaderName::Expires, REQUESTED_EXPIRES.to_string());
        if let Some((name, value)) = credentials {
            req.headers.push(name, value);
        }
        if self.trunk_regs[reg].failures == 0 && cseq == 1 {
            self.trunk_state(clock, reg, "registering", "", None);
        }
        self.send(clock, peer, req, TxUse::TrunkRegister { reg });
    }

    fn trunk_state(
        &mut self,
        clock: Clock,
        reg: usize,
        state: &str,
        detail: &str,
        expires_at: Option<i64>,
    ) {
        let Some(index) = self.trunk_regs.get(reg).map(|r| r.trunk) else {
            return;
        };
        let Some(trunk) = self.config.trunks.get(index) else {
            return;
        };
        if let Ok(mut g) = self.metrics.trunks.lock() {
            if let Some(t) = g.get_mut(index) {
                t.registered = Some(state == "registered");
            }
        }
        self.writes.push(Write::TrunkState(TrunkState {
            name: trunk.name.as_str().to_owned(),
            state: state.to_owned(),
            detail: detail.to_owned(),
            expires_at,
            updated_ms: clock.unix_ms,
        }));
    }

    pub(super) fn on_register_response(
        &mut self,
        clock: Clock,
        reg: usize,
        tx: TxId,
        resp: &Response,
    ) {
        let status = resp.status.0;
        if resp.status.is_provisional() {
            return;
        }
        self.client_txs.remove(&tx);
        let Some(r) = self.trunk_regs.get(reg) else {
            return;
        };
        let Some(trunk) = self.config.trunks.get(r.trunk).cloned() else {
            return;
        };
        let name = trunk.name.as_str().to_owned();
        if resp.status.is_success() {
            let secs = granted_seconds(resp);
            let r = &mut self.trunk_regs[reg];
            r.failures = 0;
            r.next = Some(clock.now + refresh_after(secs));
            info!(trunk = %name, expires = secs, "registered to the provider");
            let until = clock.unix_ms / 1000 + i64::from(secs);
            self.trunk_state(clock, reg, "registered", "", Some(until));
            return;
        }
        if matches!(status, 401 | 407) && !self.trunk_regs[reg].authenticated {
            if let (Some(user), Some(password), Some(address)) =
                (&trunk.username, &trunk.password, &trunk.address)
            {
                let cnonce = self.ep.new_tag();
                let uri = format!("sip:{address}");
                if let Some((header, creds)) = authorize(
                    resp,
                    user,
                    password.expose(),
                    &Method::Register,
                    &uri,
                    &cnonce,
                ) {
                    self.trunk_regs[reg].authenticated = true;
                    self.send_register(clock, reg, Some((header, creds.to_string())));
                    return;
                }
            }
        }
        let detail = if matches!(status, 401 | 407 | 403) {
            format!(
                "{status} {}: the provider refused username/password; check them in [[trunk]]",
                resp.reason
            )
        } else {
            format!("{status} {}", resp.reason)
        };
        self.register_failed(clock, reg, &detail);
    }

    pub(super) fn on_register_timeout(&mut self, clock: Clock, reg: usize) {
        self.register_failed(clock, reg, "no answer from the provider");
    }

    fn register_failed(&mut self, clock: Clock, reg: usize, detail: &str) {
        let Some(r) = self.trunk_regs.get_mut(reg) else {
            return;
        };
        r.failures += 1;
        let wait = backoff(r.failures);
        r.next = Some(clock.now + wait);
        let name = self
            .config
            .trunks
            .get(r.trunk)
            .map(|t| t.name.as_str().to_owned())
            .unwrap_or_default();
        // The reason phrase is the provider's text: logged escaped, stored as data.
        warn!(trunk = %name, detail = %detail.escape_debug(), retry_in_s = wait.as_secs(), "trunk registration failed");
        self.trunk_state(clock, reg, "failed", detail, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_before_expiry_and_backoff_doubles_to_a_cap() {
        assert_eq!(refresh_after(600), Duration::from_secs(480));
        assert_eq!(refresh_after(10), Duration::from_secs(8));
        assert_eq!(refresh_after(3), Duration::from_secs(2));
        assert_eq!(refresh_after(0), Duration::from_secs(2));
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(40), Duration::from_secs(300));
    }

    #[test]
    fn the_granted_time_is_read_from_contact_then_expires() {
        let mut r = Response::new(kentongan_sip::StatusCode::OK);
        assert_eq!(granted_seconds(&r), REQUESTED_EXPIRES);
        r.headers.push(HeaderName::Expires, "120");
        assert_eq!(granted_seconds(&r), 120);
        r.headers.push(
            HeaderName::Contact,
            "<sip:office1@10.0.0.1:5060>;Expires=60",
        );
        assert_eq!(granted_seconds(&r), 60);
    }
}
