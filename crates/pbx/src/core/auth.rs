//! Digest authentication of requests (RFC 3261 §22, RFC 8760) against the stored HA1s.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use kentongan_sip::auth::{Credentials, StoredHa1, Verdict};
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::addressing::finish_response;
use super::{Clock, Pbx};
use crate::store::Extension;

impl Pbx {
    /// Checks digest credentials; on failure answers the challenge itself and returns None.
    /// Unknown users and wrong passwords get the very same answer (anti-enumeration).
    pub(super) fn authenticate(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: &Request,
        proxy: bool,
    ) -> Option<Extension> {
        let header = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let realm = self.config.domain.clone();
        let creds = req
            .headers
            .get_all(&header)
            .filter_map(|v| Credentials::parse(v.as_str()).ok())
            .find(|c| c.realm == realm);
        let mut stale = false;
        if let Some(creds) = creds {
            // A gateway trunk's device logs in with the trunk's account, which lives in the
            // configuration, not among the users; it wins over a user of the same name.
            let gateway = self.gateway_ha1(&creds.username, &realm);
            if gateway.is_none() && !self.ha1_cache.contains_key(&creds.username) {
                match self.store.ha1(&creds.username, &realm) {
                    Ok(Some(s)) => {
                        self.ha1_cache.insert(creds.username.clone(), s);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        warn!(error = %e, "user lookup failed");
                        self.reply(clock, tx, req, StatusCode::SERVER_INTERNAL_ERROR);
                        return None;
                    }
                }
            }
            let stored = gateway.as_ref().or(self.ha1_cache.get(&creds.username));
            match self.digest.verify(clock.now, &req.method, &creds, stored) {
                Verdict::Authenticated { username } => {
                    if let Some(ext) = Extension::parse(&username) {
                        return Some(ext);
                    }
                }
                Verdict::Stale => stale = true,
                Verdict::Rejected => {
                    self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
                    info!(source = %from, method = %req.method, "authentication failed");
                    if self
                        .shield
                        .auth_failed(clock.now, clock.unix_s(), from.ip())
                    {
                        self.take_bans();
                    }
                }
            }
        }
        let status = if proxy {
            StatusCode::PROXY_AUTHENTICATION_REQUIRED
        } else {
            StatusCode::UNAUTHORIZED
        };
        let mut resp = Response::for_request(req, status, Some(&self.ep.new_tag()));
        let name = if proxy {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let challenges = self.digest.challenges(clock.now, stale);
        for alg in &self.config.auth_algorithms {
            for ch in challenges.iter().filter(|c| c.algorithm == *alg) {
                resp.headers.push(name.clone(), ch.to_string());
            }
        }
        // Challenges go out statelessly (RFC 3261 §8.2.7): a lost one is answered anew on the
        // retransmission, and half of a registration storm's transactions never exist. The
        // ACK for an INVITE's 407 belongs to its transaction, so that one stays stateful.
        if req.method == Method::Invite {
            self.respond(clock, tx, resp);
        } else if let Err(e) = self.ep.respond_stateless(tx, finish_response(resp)) {
            debug!(error = %e, "challenge not sent");
        }
        None
    }

    /// The HA1s of the gateway trunk whose `username` this is, from its `password`.
    fn gateway_ha1(&self, username: &str, realm: &str) -> Option<StoredHa1> {
        let t = self.config.trunks.iter().find(|t| {
            t.kind == kentongan_lcr::lcr::TrunkKind::Gateway
                && t.username.as_deref() == Some(username)
        })?;
        let password = t.password.as_ref()?;
        Some(StoredHa1::from_password(username, realm, password.expose()))
    }
}
