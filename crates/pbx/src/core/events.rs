//! Presence and BLF: SUBSCRIBE to an extension with `Event: dialog` (RFC 4235, what lights
//! and blinks an IP phone's BLF key) or `Event: presence` (RFC 3856, PIDF open/closed), and
//! a NOTIFY to every watcher when what it watches changes.
//!
//! The notifier state machines (dialogs, expiry, versions, bodies) are kentongan-sip's
//! `event` module; this module decides who may watch what and when the state changed. Only an
//! authenticated extension may subscribe (digest, as for INVITE), and only to an extension
//! that exists: presence does not leak to strangers, nor does the list of extensions.
//!
//! What changed is read from the batch's storage writes: every change a watcher cares about
//! is already one (`LiveCall`/`EndLiveCall` for calls, the binding writes for registrations,
//! `Settings` for DND), so this module needs no hook in call or registration handling. After
//! each input, if such a write arrived, the state of every watched extension is recomputed
//! and compared with what its watchers were last told; only a difference is sent. A dialog
//! that ended is reported `terminated` once, then leaves the document. A parking slot
//! (`71`…) may be watched with `Event: dialog` too: a call parked there is a confirmed dialog
//! whose remote party is the one waiting, and its retrieval ends it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use bytes::Bytes;
use kentongan_sip::dialog::DialogId;
use kentongan_sip::event::EventError;
use kentongan_sip::event::{
    Basic, DialogEntry, DialogInfo, DialogState, Direction, EventHeader, EventPackage,
    ExpiryPolicy, Participant, Presence, Subscription, Subscriptions,
};
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, NameAddr, Request, Response, StatusCode};
use tracing::debug;

use super::calls::Side;
use super::{Clock, Extension, Pbx, TxUse};
use crate::store::Write;

/// What one watched extension looked like when its watchers were last told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Snapshot {
    /// Dialog id → (state, direction, the other party).
    dialogs: BTreeMap<String, (DialogState, Direction, String)>,
    presence: Option<(Basic, Option<&'static str>)>,
}

/// The notifier's state in the core.
#[derive(Debug, Default)]
pub(super) struct Watchers {
    subs: Subscriptions,
    /// Where each subscription's NOTIFYs go: the source of its SUBSCRIBE.
    peers: HashMap<DialogId, SocketAddr>,
    last: HashMap<(EventPackage, String), Snapshot>,
    /// How far `Pbx::writes` has been looked at for changes (reset when they are flushed).
    scanned: usize,
    dirty: bool,
    policy: ExpiryPolicy,
}

impl Watchers {
    pub(super) fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.subs.poll_timeout()
    }

    /// A change the daemon learned of outside the batch's writes (the CLI's DND).
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The writes are gone to the database: start looking from the beginning again.
    pub(super) fn flushed(&mut self) {
        self.scanned = 0;
    }
}

fn matters(w: &Write) -> bool {
    matches!(
        w,
        Write::LiveCall(_)
            | Write::EndLiveCall(_)
            | Write::UpsertBinding(_)
            | Write::RemoveBinding { .. }
            | Write::RemoveBindings(_)
            | Write::ExpireBindings { .. }
            | Write::Settings(_)
    )
}

impl Pbx {
    /// SUBSCRIBE, initial or in dialog (a refresh, or `Expires: 0` to end it).
    pub(super) fn on_subscribe(&mut self, clock: Clock, tx: TxId, from: SocketAddr, req: Request) {
        let Some(subscriber) = self.authenticate(clock, tx, from, &req, true) else {
            return;
        };
        let in_dialog = req.headers.to_tag().ok().flatten().is_some();
        if in_dialog {
            let policy = self.watchers.policy;
            match self.watchers.subs.refresh(&req, &policy, clock.now) {
                Ok((id, resp)) => {
                    self.respond(clock, tx, resp);
                    self.watchers.peers.insert(id.clone(), from);
                    self.notify_one(clock, &id);
                }
                Err(e) => self.refuse_subscribe(clock, tx, &req, &e),
            }
            return;
        }
        let package = match EventHeader::from_request(&req) {
            Ok(e) => e.package,
            Err(e) => return self.refuse_subscribe(clock, tx, &req, &e),
        };
        if !matches!(package, EventPackage::Dialog | EventPackage::Presence) {
            // conference is not served yet; message-summary is MWI's (`is_mwi_subscribe`),
            // so it arrives here only while voicemail is off.
            return self.reject_subscribe(clock, tx, &req, StatusCode(489));
        }
        let resource = req.uri.user().unwrap_or("").to_owned();
        // A parking slot is watched like an extension (the BLF key of a slot lights while a
        // call waits there), for dialog state only.
        let slot = package == EventPackage::Dialog && self.is_parking_slot(&resource);
        let exists = slot
            || Extension::parse(&resource)
                .is_some_and(|e| self.store.user_exists(&e.0).unwrap_or(false));
        if !exists {
            return self.reject_subscribe(clock, tx, &req, StatusCode::NOT_FOUND);
        }
        let contact = self.our_contact(from);
        let Ok(contact) = NameAddr::parse(&contact) else {
            return self.reject_subscribe(clock, tx, &req, StatusCode::SERVER_INTERNAL_ERROR);
        };
        let tag = self.ep.new_tag();
        let policy = self.watchers.policy;
        match Subscription::accept(&req, &resource, &tag, &contact, &policy, clock.now) {
            Ok((sub, resp)) => {
                debug!(%subscriber, %resource, %package, "subscribed");
                let id = sub.id().clone();
                self.watchers.subs.insert(sub);
                self.watchers.peers.insert(id.clone(), from);
                self.respond(clock, tx, resp);
                self.notify_one(clock, &id);
            }
            Err(e) => self.refuse_subscribe(clock, tx, &req, &e),
        }
    }

    fn refuse_subscribe(&mut self, clock: Clock, tx: TxId, req: &Request, e: &EventError) {
        let r = e.rejection().to_response(req, Some(&self.ep.new_tag()));
        self.respond(clock, tx, r);
    }

    fn reject_subscribe(&mut self, clock: Clock, tx: TxId, req: &Request, status: StatusCode) {
        let mut r = Response::for_request(req, status, Some(&self.ep.new_tag()));
        if status == StatusCode(489) {
            let events = match self.config.voicemail.as_ref().is_some_and(|v| v.enabled) {
                true => "dialog, presence, message-summary",
                false => "dialog, presence",
            };
            r.headers.push(HeaderName::AllowEvents, events);
        }
        self.respond(clock, tx, r);
    }

    /// A response to one of our NOTIFYs.
    pub(super) fn on_notify_response(&mut self, resp: &Response) {
        if let Some((id, outcome)) = self.watchers.subs.on_notify_response(resp) {
            if self.watchers.subs.get(&id).is_none() {
                debug!(?outcome, "subscription ended by the subscriber's answer");
                self.watchers.peers.remove(&id);
            }
        }
    }

    pub(super) fn on_notify_timeout(&mut self, id: &DialogId) {
        self.watchers.subs.on_notify_timeout(id);
        self.watchers.peers.remove(id);
    }

    /// After each input: lapse expired subscriptions and tell watchers what changed.
    pub(super) fn update_watchers(&mut self, clock: Clock) {
        if self.watchers.subs.is_empty() {
            self.watchers.scanned = self.writes.len();
            self.watchers.dirty = false;
            return;
        }
        for (id, req) in self.watchers.subs.handle_timeout(clock.now) {
            if let Some(peer) = self.watchers.peers.remove(&id) {
                self.send(clock, peer, req, TxUse::Other);
            }
        }
        let start = self.watchers.scanned.min(self.writes.len());
        if self.writes[start..].iter().any(matters) {
            self.watchers.dirty = true;
        }
        self.watchers.scanned = self.writes.len();
        if !std::mem::take(&mut self.watchers.dirty) {
            return;
        }
        let mut watched: Vec<(EventPackage, String)> = Vec::new();
        for p in [EventPackage::Dialog, EventPackage::Presence] {
            for ext in self.watched(p) {
                watched.push((p, ext));
            }
        }
        for (package, ext) in watched {
            let now = self.snapshot(package, &ext, clock);
            let key = (package, ext.clone());
            let before = self.watchers.last.get(&key).cloned().unwrap_or_default();
            if now == before {
                continue;
            }
            let ended: Vec<(String, (DialogState, Direction, String))> = before
                .dialogs
                .iter()
                .filter(|(id, _)| !now.dialogs.contains_key(*id))
                .map(|(id, (_, dir, other))| {
                    (id.clone(), (DialogState::Terminated, *dir, other.clone()))
                })
                .collect();
            let mut told = now.clone();
            told.dialogs.extend(ended);
            let notifies = {
                let domain = self.config.domain.clone();
                self.watchers
                    .subs
                    .notify_all(clock.now, package, &ext, |v| body(&domain, &ext, &told, v))
            };
            for (id, req) in notifies {
                if let Some(peer) = self.watchers.peers.get(&id).copied() {
                    self.send(clock, peer, req, TxUse::Notify { id });
                }
            }
            self.watchers.last.insert(key, now);
        }
        self.watchers
            .last
            .retain(|(p, ext), _| self.watchers.subs.watching(*p, ext).next().is_some());
    }

    /// The first NOTIFY of a subscription (and the one after each refresh): the full state.
    fn notify_one(&mut self, clock: Clock, id: &DialogId) {
        let Some((package, ext)) = self
            .watchers
            .subs
            .get(id)
            .map(|s| (s.package(), s.resource().to_owned()))
        else {
            return;
        };
        let snap = self.snapshot(package, &ext, clock);
        let domain = self.config.domain.clone();
        let Some(sub) = self.watchers.subs.get_mut(id) else {
            return;
        };
        let version = sub.next_version();
        let req = sub.notify(
            clock.now,
            package.content_type(),
            body(&domain, &ext, &snap, version),
        );
        let gone = sub.state() == kentongan_sip::event::SubState::Gone;
        let peer = self.watchers.peers.get(id).copied();
        if let (Ok(req), Some(peer)) = (req, peer) {
            self.send(clock, peer, req, TxUse::Notify { id: id.clone() });
        }
        if gone {
            // A fetch (Expires: 0) or an unsubscribe: that NOTIFY was the last.
            self.watchers.subs.remove(id);
            self.watchers.peers.remove(id);
        } else {
            self.watchers.last.insert((package, ext), snap);
        }
    }

    fn is_parking_slot(&self, number: &str) -> bool {
        self.config.parking.slots().any(|s| s == number)
    }

    fn watched(&self, package: EventPackage) -> Vec<String> {
        let mut v: Vec<String> = self
            .watchers
            .peers
            .keys()
            .filter_map(|id| self.watchers.subs.get(id))
            .filter(|s| s.package() == package)
            .map(|s| s.resource().to_owned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// What `ext` looks like now for `package`.
    fn snapshot(&self, package: EventPackage, ext: &str, clock: Clock) -> Snapshot {
        let mut s = Snapshot::default();
        let Some(e) = Extension::parse(ext) else {
            return s;
        };
        match package {
            EventPackage::Dialog if self.is_parking_slot(ext) => {
                for (key, call) in &self.calls {
                    let Some(parked) = call.parked.as_ref().filter(|p| p.slot == ext) else {
                        continue;
                    };
                    let waiting = match parked.by {
                        Side::Caller => &call.callee,
                        Side::Callee => &call.caller,
                    };
                    s.dialogs.insert(
                        format!("p{key}"),
                        (
                            DialogState::Confirmed,
                            Direction::Recipient,
                            waiting.0.clone(),
                        ),
                    );
                }
            }
            EventPackage::Dialog => {
                for (key, call) in &self.calls {
                    let state = if call.answered() {
                        DialogState::Confirmed
                    } else {
                        DialogState::Early
                    };
                    if call.caller == e {
                        s.dialogs.insert(
                            format!("c{key}"),
                            (state, Direction::Initiator, call.callee.0.clone()),
                        );
                    } else if call.callee == e || call.rings_at(&e) {
                        s.dialogs.insert(
                            format!("c{key}"),
                            (state, Direction::Recipient, call.caller.0.clone()),
                        );
                    }
                }
                for (leg, dialled) in self.apps.legs_of(&e) {
                    s.dialogs.insert(
                        format!("a{leg}"),
                        (DialogState::Confirmed, Direction::Initiator, dialled),
                    );
                }
            }
            EventPackage::Presence => {
                let registered = self.registry.live(&e, clock.unix_s()).next().is_some();
                let dnd = self.settings.get(&e).is_some_and(|c| c.dnd);
                let busy = self
                    .calls
                    .values()
                    .any(|c| c.answered() && (c.caller == e || c.callee == e))
                    || self.apps.legs_of(&e).next().is_some();
                s.presence = Some(match (registered, dnd, busy) {
                    (false, _, _) => (Basic::Closed, None),
                    (true, true, _) => (Basic::Closed, Some("Do not disturb")),
                    (true, false, true) => (Basic::Open, Some("On the phone")),
                    (true, false, false) => (Basic::Open, None),
                });
            }
            _ => {}
        }
        s
    }
}

/// The document one watcher is sent.
fn body(domain: &str, ext: &str, snap: &Snapshot, version: u32) -> Bytes {
    let entity = format!("sip:{ext}@{domain}");
    match snap.presence {
        Some((basic, note)) => Presence {
            entity,
            tuple_id: format!("t{ext}"),
            basic,
            contact: None,
            note: note.map(str::to_owned),
        }
        .to_xml()
        .into(),
        None => DialogInfo {
            entity: entity.clone(),
            version,
            dialogs: snap
                .dialogs
                .iter()
                .map(|(id, (state, direction, other))| DialogEntry {
                    id: id.clone(),
                    call_id: None,
                    local_tag: None,
                    remote_tag: None,
                    direction: Some(*direction),
                    state: *state,
                    code: None,
                    local: Some(Participant {
                        identity: entity.clone(),
                        display: None,
                        target: None,
                    }),
                    remote: Some(Participant {
                        identity: format!("sip:{other}@{domain}"),
                        display: None,
                        target: None,
                    }),
                })
                .collect(),
        }
        .to_xml()
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_say_what_the_snapshot_holds() {
        let mut snap = Snapshot::default();
        let idle = String::from_utf8_lossy(&body("pbx.local", "202", &snap, 0)).into_owned();
        assert!(idle.contains("entity=\"sip:202@pbx.local\""), "{idle}");
        assert!(!idle.contains("<dialog "), "idle has no dialogs: {idle}");
        snap.dialogs.insert(
            "c7".into(),
            (DialogState::Terminated, Direction::Recipient, "203".into()),
        );
        let ended = String::from_utf8_lossy(&body("pbx.local", "202", &snap, 3)).into_owned();
        assert!(ended.contains("<state>terminated</state>"), "{ended}");
        assert!(ended.contains("version=\"3\""), "{ended}");
        assert!(ended.contains("sip:203@pbx.local"), "{ended}");
        snap.presence = Some((Basic::Closed, Some("Do not disturb")));
        let p = String::from_utf8_lossy(&body("pbx.local", "202", &snap, 0)).into_owned();
        assert!(
            p.contains("<basic>closed</basic>") && p.contains("Do not disturb"),
            "{p}"
        );
    }

    #[test]
    fn only_changes_watchers_care_about_wake_them() {
        assert!(matters(&Write::EndLiveCall("x".into())));
        assert!(!matters(&Write::DeleteMessage(1)));
    }
}
