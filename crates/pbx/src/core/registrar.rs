//! The registrar (RFC 3261 §10): the location service and REGISTER handling.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use kentongan_sip::transaction::TxId;
use kentongan_sip::{Contact as SipContact, HeaderName, Request, Response, StatusCode, Uri};
use tracing::{debug, info};

use super::{Clock, Pbx};
use crate::store::{Binding, Extension, Write};

const MIN_EXPIRES: u32 = 60;
const MAX_EXPIRES: u32 = 3600;

/// A registered device of an extension, as kept in memory.
#[derive(Debug, Clone)]
pub struct Contact {
    pub uri: Uri,
    /// Source address of the REGISTER: requests go there (NAT-friendly, RFC 3581 spirit).
    pub source: SocketAddr,
    pub expires_at: i64,
    pub binding: Binding,
}

/// The location service: extension → contacts.
#[derive(Debug, Default)]
pub struct Registry {
    by_ext: HashMap<Extension, Vec<Contact>>,
    /// Bindings in `by_ext`, kept as it changes: the gauge is read on every REGISTER, and a
    /// walk over every extension there made each registration cost O(extensions).
    total: usize,
}

impl Registry {
    pub fn contacts(&self, ext: &Extension, now_s: i64) -> Vec<Contact> {
        self.live(ext, now_s).cloned().collect()
    }

    /// The unexpired contacts of `ext`, borrowed.
    pub(super) fn live(&self, ext: &Extension, now_s: i64) -> impl Iterator<Item = &Contact> {
        self.by_ext
            .get(ext)
            .into_iter()
            .flatten()
            .filter(move |c| c.expires_at > now_s)
    }

    pub fn count(&self) -> usize {
        self.total
    }

    /// Adds or refreshes a binding; true when it is new or moved to another source address
    /// (a refresh from the same place is not news).
    pub(super) fn insert(&mut self, b: Binding) -> bool {
        let (Ok(uri), Ok(source)) = (Uri::parse(&b.contact), b.source.parse()) else {
            return false;
        };
        self.insert_parsed(b, uri, source)
    }

    /// [`Registry::insert`] for a binding whose contact and source are at hand parsed.
    pub(super) fn insert_parsed(&mut self, b: Binding, uri: Uri, source: SocketAddr) -> bool {
        // A refresh finds its extension: no key to clone then.
        let list = match self.by_ext.get_mut(&b.extension) {
            Some(list) => list,
            None => self.by_ext.entry(b.extension.clone()).or_default(),
        };
        let before = list.len();
        let contact = Contact {
            uri,
            source,
            expires_at: b.expires_at,
            binding: b,
        };
        let news = match list
            .iter_mut()
            .find(|c| c.binding.contact == contact.binding.contact)
        {
            Some(old) => {
                let moved = old.source != source;
                *old = contact;
                moved
            }
            None => {
                list.push(contact);
                true
            }
        };
        self.total += list.len() - before;
        news
    }

    pub(super) fn remove(&mut self, ext: &Extension, contact: Option<&str>) {
        if let Some(list) = self.by_ext.get_mut(ext) {
            let before = list.len();
            list.retain(|c| contact.is_some_and(|k| c.binding.contact != k));
            self.total -= before - list.len();
            if list.is_empty() {
                self.by_ext.remove(ext);
            }
        }
    }

    pub(super) fn expire(&mut self, now_s: i64) -> bool {
        let before = self.total;
        let mut total = 0;
        self.by_ext.retain(|_, list| {
            list.retain(|c| c.expires_at > now_s);
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
        before != total
    }
}

impl Pbx {
    /// UDP sources of live registrations: the driver sends them a CRLF keep-alive now and then
    /// so NAT bindings in front of phones stay open (RFC 5626 §3.5.1 style, without the STUN).
    pub fn keepalive_targets(&self, clock: Clock) -> Vec<SocketAddr> {
        let now_s = clock.unix_s();
        let mut v: Vec<SocketAddr> = self
            .registry
            .by_ext
            .values()
            .flatten()
            .filter(|c| c.expires_at > now_s && !self.stream_peers.contains_key(&c.source))
            .map(|c| c.source)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub(super) fn on_register(&mut self, clock: Clock, tx: TxId, from: SocketAddr, req: &Request) {
        let Some(ext) = self.authenticate(clock, tx, from, req, false) else {
            return;
        };
        let aor_user = req
            .headers
            .to()
            .ok()
            .and_then(|t| t.uri.user().map(str::to_owned));
        if aor_user.as_deref() != Some(ext.0.as_str()) {
            self.reply(clock, tx, req, StatusCode::FORBIDDEN);
            return;
        }
        let default_expires = req.headers.expires().ok().flatten().unwrap_or(MAX_EXPIRES);
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        let cseq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let now_s = clock.unix_s();
        let (mut added, mut news) = (false, false);
        match req.headers.contact() {
            Ok(Some(SipContact::Star)) => {
                self.registry.remove(&ext, None);
                self.writes.push(Write::RemoveBindings(ext.clone()));
            }
            Ok(Some(SipContact::Addrs(list))) => {
                for c in list {
                    let expires = c.expires().unwrap_or(default_expires);
                    let key = c.uri.to_string();
                    if expires == 0 {
                        self.registry.remove(&ext, Some(&key));
                        self.writes.push(Write::RemoveBinding {
                            extension: ext.clone(),
                            contact: key,
                        });
                        continue;
                    }
                    let expires = expires.clamp(MIN_EXPIRES, MAX_EXPIRES);
                    let b = Binding {
                        extension: ext.clone(),
                        contact: key,
                        source: from.to_string(),
                        transport: self.transport_of(from).to_string(),
                        expires_at: now_s + i64::from(expires),
                        call_id: call_id.clone(),
                        cseq,
                    };
                    let new_binding = self.registry.insert_parsed(b.clone(), c.uri.clone(), from);
                    if new_binding {
                        self.mwi_on_register(clock, &ext, c.uri.clone(), from);
                    }
                    news |= new_binding;
                    self.writes.push(Write::UpsertBinding(b));
                    added = true;
                }
            }
            Ok(None) => {} // a query: list the bindings
            Err(_) => {
                self.reply(clock, tx, req, StatusCode::BAD_REQUEST);
                return;
            }
        }
        let mut resp = Response::for_request(req, StatusCode::OK, Some(&self.ep.new_tag()));
        for c in self.registry.live(&ext, now_s) {
            resp.headers.push(
                HeaderName::Contact,
                format!("<{}>;expires={}", c.binding.contact, c.expires_at - now_s),
            );
        }
        self.respond(clock, tx, resp);
        self.update_gauges();
        if self.gateway_trunk_of(&ext).is_some() {
            self.update_gateway_gauges();
        }
        if added {
            // Refreshes are routine (every phone, every few minutes): only news is logged.
            if news {
                info!(extension = %ext, %from, "registered");
            } else {
                debug!(extension = %ext, %from, "registration refreshed");
            }
            self.deliver_stored(clock, &ext);
        }
    }

    /// A gateway's registration to us is its trunk's `registered` gauge. Called when a
    /// gateway's own REGISTER is answered and when bindings expire (within a second, see
    /// `handle_timeout`), never for a phone's REGISTER: that is the hot path.
    pub(super) fn update_gateway_gauges(&self) {
        if let Ok(mut gauges) = self.metrics.trunks.lock() {
            for (g, t) in gauges.iter_mut().zip(&self.config.trunks) {
                if t.kind == kentongan_lcr::lcr::TrunkKind::Gateway {
                    g.registered = Some(t.username.as_deref().is_some_and(|u| {
                        self.registry.by_ext.contains_key(&Extension(u.to_owned()))
                    }));
                }
            }
        }
    }

    pub(super) fn update_gauges(&self) {
        self.metrics
            .registrations
            .store(self.registry.count() as u64, Ordering::Relaxed);
        self.metrics.active_calls.store(
            (self.calls.len() + self.apps.count()) as u64,
            Ordering::Relaxed,
        );
        let (rooms, members) = self.apps.conferences.counts();
        self.metrics
            .conference_rooms
            .store(rooms as u64, Ordering::Relaxed);
        self.metrics
            .conference_members
            .store(members as u64, Ordering::Relaxed);
    }
}
