//! Instant messages (RFC 3428): stored first, forwarded to every contact, deleted on a 2xx.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use kentongan_sip::transaction::TxId;
use kentongan_sip::{HeaderName, Method, Request, StatusCode};
use tracing::info;

use super::registrar::Contact;
use super::{Clock, Pbx, TxUse};
use crate::store::{Extension, StoredMessage, Write};

impl Pbx {
    pub(super) fn on_message(&mut self, clock: Clock, tx: TxId, from: SocketAddr, req: &Request) {
        let Some(sender) = self.authenticate(clock, tx, from, req, true) else {
            return;
        };
        let Some(target) = req.uri.user().and_then(Extension::parse) else {
            self.reply(clock, tx, req, StatusCode::NOT_FOUND);
            return;
        };
        if !self.store.user_exists(&target.0).unwrap_or(false) {
            self.reply(clock, tx, req, StatusCode::NOT_FOUND);
            return;
        }
        let msg = StoredMessage {
            id: self.next_message_id,
            sender: sender.0.clone(),
            recipient: target.clone(),
            content_type: req
                .headers
                .content_type()
                .unwrap_or("text/plain")
                .to_owned(),
            body: req.body.to_vec(),
        };
        self.next_message_id += 1;
        self.metrics.messages_total.fetch_add(1, Ordering::Relaxed);
        // Stored first, deleted when a device answers 2xx: a crash never loses it.
        self.writes.push(Write::StoreMessage(msg.clone()));
        self.mailboxes
            .entry(target.clone())
            .or_default()
            .push(msg.clone());
        self.reply(clock, tx, req, StatusCode(202));
        let contacts = self.registry.contacts(&target, clock.unix_s());
        for c in contacts {
            self.forward_message(clock, &msg, &c);
        }
    }

    pub(super) fn forward_message(&mut self, clock: Clock, msg: &StoredMessage, c: &Contact) {
        let domain = self.config.domain.clone();
        let mut m = Request::new(Method::Message, c.uri.clone());
        let tag = self.ep.new_tag();
        m.headers.push(
            HeaderName::From,
            format!("<sip:{}@{domain}>;tag={tag}", msg.sender),
        );
        m.headers
            .push(HeaderName::To, format!("<sip:{}@{domain}>", msg.recipient));
        let cid = self.ep.new_call_id();
        m.headers.push(HeaderName::CallId, cid);
        m.headers.push(HeaderName::CSeq, "1 MESSAGE");
        m.set_body(&msg.content_type, msg.body.clone());
        self.send(
            clock,
            c.source,
            m,
            TxUse::Message {
                id: msg.id,
                recipient: msg.recipient.clone(),
            },
        );
    }

    pub(super) fn take_from_mailbox(&mut self, recipient: &Extension, id: i64) {
        if let Some(msgs) = self.mailboxes.get_mut(recipient) {
            msgs.retain(|m| m.id != id);
            if msgs.is_empty() {
                self.mailboxes.remove(recipient);
            }
        }
    }

    pub(super) fn deliver_stored(&mut self, clock: Clock, ext: &Extension) {
        let Some(msgs) = self.mailboxes.get(ext).filter(|m| !m.is_empty()).cloned() else {
            return;
        };
        let contacts = self.registry.contacts(ext, clock.unix_s());
        info!(extension = %ext, count = msgs.len(), "delivering stored messages");
        for m in &msgs {
            for c in &contacts {
                self.forward_message(clock, m, c);
            }
        }
    }
}
