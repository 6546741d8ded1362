//! Message waiting indication (RFC 3842): phones that SUBSCRIBE to `message-summary` for their
//! own mailbox get 200, a NOTIFY with the current counts, and a NOTIFY after every change;
//! registered phones of a mailbox that changed also get an unsolicited NOTIFY (most desk
//! phones are configured for that rather than subscribing). A change is a message stored by
//! the daemon or deleted by the CLI (seen through `data_version` within a second); counts are
//! read from the database after the batch that changed them is committed, so a NOTIFY never
//! announces a message that is not stored.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use kentongan_sip::dialog::DialogId;
use kentongan_sip::event::{
    unsolicited_notify, EventHeader, EventPackage, ExpiryPolicy, MessageCounts, MessageSummary,
    Subscription, Subscriptions, UnsolicitedNotify,
};
use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, NameAddr, Request, StatusCode, Uri};
use tracing::{debug, info, warn};

use super::{Clock, Pbx, TxUse};
use crate::store::Extension;

/// MWI state of the core.
#[derive(Default)]
pub(super) struct Mwi {
    subs: Subscriptions,
    /// Where each subscription's NOTIFYs go (the SUBSCRIBE's source).
    peers: HashMap<DialogId, SocketAddr>,
    /// (new, old) per mailbox as last announced.
    counts: HashMap<Extension, (u32, u32)>,
    /// Mailboxes changed in the batch being committed.
    pub(super) dirty: HashSet<Extension>,
}

impl Mwi {
    pub(super) fn next_deadline(&self) -> Option<std::time::Instant> {
        self.subs.poll_timeout()
    }
}

impl Pbx {
    fn summary(&self, mailbox: &Extension, (new, old): (u32, u32)) -> MessageSummary {
        MessageSummary {
            account: Uri::parse(&format!("sip:{mailbox}@{}", self.config.domain)).ok(),
            voice: MessageCounts {
                new,
                old,
                ..MessageCounts::default()
            },
        }
    }

    fn counts_now(&self, mailbox: &Extension) -> (u32, u32) {
        self.store.voicemail_counts(&mailbox.0).unwrap_or_else(|e| {
            warn!(error = %e, %mailbox, "voicemail counts could not be read");
            (0, 0)
        })
    }

    /// Whether a SUBSCRIBE is MWI's: `Event: message-summary` while voicemail is on, or a
    /// refresh of one of its subscriptions. Other packages are not handled here.
    pub(super) fn is_mwi_subscribe(&self, req: &Request) -> bool {
        if self.mwi.subs.find_for_request(req).is_some() {
            return true;
        }
        let voicemail = self.config.voicemail.as_ref().is_some_and(|v| v.enabled);
        voicemail
            && EventHeader::from_request(req)
                .is_ok_and(|e| e.package == EventPackage::MessageSummary)
    }

    /// An MWI SUBSCRIBE (see [`Pbx::is_mwi_subscribe`]), initial or refresh, for the
    /// subscriber's own mailbox.
    pub(super) fn on_mwi_subscribe(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
    ) {
        let Ok(event) = EventHeader::from_request(&req) else {
            self.reply(clock, tx, &req, StatusCode(489));
            return;
        };
        let Some(caller) = self.authenticate(clock, tx, from, &req, true) else {
            return;
        };
        let policy = ExpiryPolicy::default();
        let in_dialog = req.headers.to_tag().ok().flatten().is_some();
        let id = if in_dialog {
            match self.mwi.subs.refresh(&req, &policy, clock.now) {
                Ok((id, resp)) => {
                    self.respond(clock, tx, resp);
                    id
                }
                Err(e) => {
                    self.reject(clock, tx, &req, e.rejection());
                    return;
                }
            }
        } else {
            let wanted = req.uri.user().unwrap_or("");
            let access = self.config.voicemail.as_ref().map(|v| v.access.as_str());
            if wanted != caller.0 && Some(wanted) != access {
                debug!(%caller, wanted, "MWI subscription for another mailbox refused");
                self.reply(clock, tx, &req, StatusCode::FORBIDDEN);
                return;
            }
            let tag = self.ep.new_tag();
            let contact = NameAddr::parse(&self.our_contact(from))
                .unwrap_or_else(|_| NameAddr::new(req.uri.clone()));
            match Subscription::accept(&req, &caller.0, &tag, &contact, &policy, clock.now) {
                Ok((sub, resp)) => {
                    let id = sub.id().clone();
                    self.mwi.subs.insert(sub);
                    self.mwi.peers.insert(id.clone(), from);
                    self.respond(clock, tx, resp);
                    info!(%caller, event = %event.to_value(), "MWI subscription");
                    id
                }
                Err(e) => {
                    self.reject(clock, tx, &req, e.rejection());
                    return;
                }
            }
        };
        // RFC 6665 §4.2.1.2: a NOTIFY after every accepted SUBSCRIBE.
        let counts = self.counts_now(&caller);
        let body = self.summary(&caller, counts).to_body();
        let Some(sub) = self.mwi.subs.get_mut(&id) else {
            return;
        };
        let notify = sub.notify(clock.now, EventPackage::MessageSummary.content_type(), body);
        let gone = sub.state() == kentongan_sip::event::SubState::Gone;
        if let Ok(n) = notify {
            self.send_notify(clock, &id, n);
        }
        if gone {
            self.mwi.subs.remove(&id);
            self.mwi.peers.remove(&id);
        }
    }

    fn reject(&mut self, clock: Clock, tx: TxId, req: &Request, r: kentongan_sip::uas::Rejection) {
        let tag = self.ep.new_tag();
        let mut resp = kentongan_sip::Response::for_request(req, r.status, Some(&tag));
        resp.reason = r.reason;
        for (name, value) in r.headers {
            resp.headers.push(name, value);
        }
        self.respond(clock, tx, resp);
    }

    fn send_notify(&mut self, clock: Clock, id: &DialogId, mut req: Request) {
        let Some(peer) = self.mwi.peers.get(id).copied() else {
            return;
        };
        req.headers.set(HeaderName::MaxForwards, "70");
        self.send(clock, peer, req, TxUse::Other);
    }

    /// After a commit: announces every mailbox whose counts changed.
    pub(super) fn announce_mwi(&mut self, clock: Clock) {
        if self.mwi.dirty.is_empty() {
            return;
        }
        let dirty: Vec<Extension> = self.mwi.dirty.drain().collect();
        for mailbox in dirty {
            let counts = self.counts_now(&mailbox);
            if self.mwi.counts.get(&mailbox).copied().unwrap_or((0, 0)) == counts
                && self.mwi.counts.contains_key(&mailbox)
            {
                continue;
            }
            self.mwi.counts.insert(mailbox.clone(), counts);
            info!(%mailbox, new = counts.0, old = counts.1, "message waiting changed");
            let body = self.summary(&mailbox, counts).to_body();
            let notifies = self.mwi.subs.notify_all(
                clock.now,
                EventPackage::MessageSummary,
                &mailbox.0,
                |_| body.clone().into(),
            );
            let mut subscribed: HashSet<SocketAddr> = HashSet::new();
            for (id, n) in notifies {
                if let Some(p) = self.mwi.peers.get(&id) {
                    subscribed.insert(*p);
                }
                self.send_notify(clock, &id, n);
            }
            self.mwi
                .peers
                .retain(|id, _| self.mwi.subs.get(id).is_some());
            self.unsolicited_mwi(clock, &mailbox, &body, &subscribed);
        }
        self.update_waiting_gauge();
    }

    /// Unsolicited NOTIFYs to `mailbox`'s registered phones that have no subscription.
    fn unsolicited_mwi(
        &mut self,
        clock: Clock,
        mailbox: &Extension,
        body: &str,
        skip: &HashSet<SocketAddr>,
    ) {
        let contacts: Vec<(Uri, SocketAddr)> = self
            .registry
            .contacts(mailbox, clock.unix_s())
            .iter()
            .filter(|c| !skip.contains(&c.source))
            .map(|c| (c.uri.clone(), c.source))
            .collect();
        for (target, source) in contacts {
            self.send_unsolicited(clock, mailbox, target, source, body);
        }
    }

    fn send_unsolicited(
        &mut self,
        clock: Clock,
        mailbox: &Extension,
        target: Uri,
        source: SocketAddr,
        body: &str,
    ) {
        let aor = format!("<sip:{mailbox}@{}>", self.config.domain);
        let (Ok(to), Ok(from), Ok(contact)) = (
            NameAddr::parse(&aor),
            NameAddr::parse(&format!("{aor};tag={}", self.ep.new_tag())),
            NameAddr::parse(&self.our_contact(source)),
        ) else {
            return;
        };
        let n = UnsolicitedNotify {
            target,
            to,
            from,
            call_id: self.ep.new_call_id(),
            cseq: 1,
            contact,
            package: EventPackage::MessageSummary,
        };
        let req = unsolicited_notify(&n, body.to_owned());
        self.send(clock, source, req, TxUse::Other);
    }

    /// A phone registered (a new binding, not a refresh): if its mailbox holds messages, an
    /// unsolicited NOTIFY tells it, so a phone that restarted lights its lamp again. (An
    /// empty mailbox sends nothing: every phone registering would otherwise get a NOTIFY.)
    pub(super) fn mwi_on_register(
        &mut self,
        clock: Clock,
        mailbox: &Extension,
        target: Uri,
        source: SocketAddr,
    ) {
        if !self.config.voicemail.as_ref().is_some_and(|v| v.enabled) {
            return;
        }
        let counts = self.counts_now(mailbox);
        if counts == (0, 0) {
            return;
        }
        let body = self.summary(mailbox, counts).to_body();
        self.send_unsolicited(clock, mailbox, target, source, &body);
    }

    /// At start: the counts as stored, so later changes (also the CLI's) are seen as such.
    pub(super) fn load_mwi_counts(&mut self) {
        match self.store.voicemail_all_counts() {
            Ok(rows) => {
                self.mwi.counts = rows
                    .into_iter()
                    .map(|(m, n, o)| (Extension(m), (n, o)))
                    .collect();
            }
            Err(e) => warn!(error = %e, "voicemail counts could not be read"),
        }
        self.update_waiting_gauge();
    }

    fn update_waiting_gauge(&self) {
        let waiting: u64 = self.mwi.counts.values().map(|(n, _)| u64::from(*n)).sum();
        self.metrics
            .voicemail_waiting
            .store(waiting, std::sync::atomic::Ordering::Relaxed);
    }

    /// Another process committed: mailboxes whose counts differ from what was announced
    /// (the CLI deleted a message) are announced again.
    pub(super) fn recheck_mwi(&mut self) {
        let now: HashMap<Extension, (u32, u32)> = match self.store.voicemail_all_counts() {
            Ok(rows) => rows
                .into_iter()
                .map(|(m, n, o)| (Extension(m), (n, o)))
                .collect(),
            Err(e) => {
                warn!(error = %e, "voicemail counts could not be read");
                return;
            }
        };
        for (m, c) in &self.mwi.counts {
            if now.get(m).copied().unwrap_or((0, 0)) != *c {
                self.mwi.dirty.insert(m.clone());
            }
        }
        for m in now.keys() {
            if !self.mwi.counts.contains_key(m) {
                self.mwi.dirty.insert(m.clone());
            }
        }
    }

    /// Lapsed subscriptions: their final NOTIFY.
    pub(super) fn expire_mwi(&mut self, clock: Clock) {
        if self.mwi.subs.poll_timeout().is_some_and(|t| t <= clock.now) {
            for (id, n) in self.mwi.subs.handle_timeout(clock.now) {
                self.send_notify(clock, &id, n);
                self.mwi.peers.remove(&id);
            }
        }
    }
}
