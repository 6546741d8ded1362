//! The notifier's side of one subscription (RFC 6665 §4.2) and the table of all of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{EventError, EventHeader, EventPackage};
use crate::dialog::{Dialog, DialogError, DialogId};
use crate::header::HeaderName;
use crate::message::{Request, Response, StatusCode};
use crate::types::{Method, NameAddr};
use crate::uri::Uri;

/// Expires bounds the notifier grants, in seconds. A request above `max` is clamped; one
/// below `min` (other than 0, which ends the subscription) gets 423 with `Min-Expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    pub min: u32,
    pub max: u32,
    /// Granted when the SUBSCRIBE carries no Expires (the package default, RFC 6665 §4.1.2.1).
    pub default: u32,
}

impl Default for ExpiryPolicy {
    /// One minute to one hour, one hour by default: the package default of all four
    /// packages served here is 3600 s.
    fn default() -> Self {
        ExpiryPolicy {
            min: 60,
            max: 3600,
            default: 3600,
        }
    }
}

impl ExpiryPolicy {
    /// The interval to grant for a request asking for `requested` seconds.
    pub fn grant(&self, requested: Option<u32>) -> Result<u32, EventError> {
        let max = self.max.max(self.min);
        match requested {
            Some(0) => Ok(0),
            Some(r) if r < self.min => Err(EventError::IntervalTooBrief {
                requested: r,
                min: self.min,
            }),
            Some(r) => Ok(r.min(max)),
            None => Ok(self.default.clamp(self.min, max)),
        }
    }
}

/// Why a subscription ended, as the `reason` of `Subscription-State: terminated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationReason {
    /// It expired, or the subscriber unsubscribed with `Expires: 0`.
    Timeout,
    /// The resource is gone (a conference room closed, an extension deleted).
    NoResource,
    /// The notifier ended it; the subscriber may subscribe again at once.
    Deactivated,
}

impl TerminationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Timeout => "timeout",
            TerminationReason::NoResource => "noresource",
            TerminationReason::Deactivated => "deactivated",
        }
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// NOTIFYs carry `active;expires=N` until `expires_at`.
    Active { expires_at: Instant },
    /// Ended; the next NOTIFY built is the final one, carrying this reason.
    Terminating(TerminationReason),
    /// The final NOTIFY was built, or the subscriber answered 481: nothing more to send.
    Gone,
}

/// What a response to one of our NOTIFYs means for the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// 1xx: wait for the final response.
    Pending,
    /// 2xx.
    Delivered,
    /// An error with Retry-After: the subscription stays and the next change notifies again.
    Retry,
    /// 481, or another error without Retry-After (RFC 6665 §4.2.2): drop the subscription.
    Gone,
}

/// One subscription, notifier side: the dialog its NOTIFYs travel in, the package and
/// resource watched, the expiry and the per-subscriber document version.
#[derive(Debug, Clone)]
pub struct Subscription {
    dialog: Dialog,
    event: EventHeader,
    resource: String,
    contact: String,
    state: SubState,
    version: u32,
}

fn dialog_error(e: DialogError) -> EventError {
    match e {
        DialogError::Mismatch => EventError::NoSuchSubscription,
        DialogError::OutOfOrder { got, last } => EventError::OutOfOrder { got, last },
        DialogError::Parse(p) => EventError::Parse(p),
    }
}

impl Subscription {
    /// Accepts an initial SUBSCRIBE for `resource` (the PBX's name for what is watched,
    /// e.g. extension `202` or room `800`; the PBX has checked the subscriber may watch
    /// it). `local_tag` is the To tag we add (from the caller's generator); `contact` is our
    /// Contact (with `isfocus` for a conference room, RFC 4579 §5.2).
    ///
    /// The response is `200 OK` rather than `202`, which RFC 6665 §8.3.1 deprecates, with
    /// the granted Expires. `Expires: 0` is accepted as a fetch: the subscription starts
    /// terminated and its one NOTIFY says `terminated;reason=timeout`. Send the response,
    /// then at once the first [`Subscription::notify`].
    pub fn accept(
        req: &Request,
        resource: &str,
        local_tag: &str,
        contact: &NameAddr,
        policy: &ExpiryPolicy,
        now: Instant,
    ) -> Result<(Subscription, Response), EventError> {
        if req.method != Method::Subscribe {
            return Err(EventError::NotSubscribe(req.method.to_string()));
        }
        // A To tag means the subscriber thinks a dialog exists: one we do not know is a
        // 481 (RFC 6665 §4.2.1.2), not a fresh subscription under a tag it chose.
        if req.headers.to_tag()?.is_some() {
            return Err(EventError::NoSuchSubscription);
        }
        let event = EventHeader::from_request(req)?;
        super::check_accept(req, event.package)?;
        let granted = policy.grant(req.headers.expires()?)?;
        let contact = contact.to_string();
        let resp = ok_response(req, local_tag, &contact, granted);
        let dialog = Dialog::uas(req, &resp)?;
        let state = if granted == 0 {
            SubState::Terminating(TerminationReason::Timeout)
        } else {
            SubState::Active {
                expires_at: now + Duration::from_secs(u64::from(granted)),
            }
        };
        let sub = Subscription {
            dialog,
            version: event.package.first_version(),
            event,
            resource: resource.to_owned(),
            contact,
            state,
        };
        Ok((sub, resp))
    }

    pub fn id(&self) -> &DialogId {
        &self.dialog.id
    }

    pub fn event(&self) -> &EventHeader {
        &self.event
    }

    pub fn package(&self) -> EventPackage {
        self.event.package
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    pub fn state(&self) -> SubState {
        self.state
    }

    /// The subscriber, as its From header named it (for the PBX's authorization record).
    pub fn subscriber(&self) -> &NameAddr {
        &self.dialog.remote
    }

    /// When the subscription lapses, if it is active: the caller's timer.
    pub fn expires_at(&self) -> Option<Instant> {
        match self.state {
            SubState::Active { expires_at } => Some(expires_at),
            _ => None,
        }
    }

    /// The version for the next versioned document (dialog-info, conference-info): each
    /// call returns one more than the last, per subscription, as RFC 4235 and RFC 4575 ask.
    pub fn next_version(&mut self) -> u32 {
        let v = self.version;
        self.version = self.version.wrapping_add(1);
        v
    }

    /// An in-dialog SUBSCRIBE: a refresh, or with `Expires: 0` an unsubscribe (after which
    /// the next NOTIFY is the final one). Answer with the response, then send a NOTIFY
    /// (RFC 6665 §4.2.1.2 requires one after every accepted SUBSCRIBE).
    pub fn refresh(
        &mut self,
        req: &Request,
        policy: &ExpiryPolicy,
        now: Instant,
    ) -> Result<Response, EventError> {
        if req.method != Method::Subscribe {
            return Err(EventError::NotSubscribe(req.method.to_string()));
        }
        self.handle_timeout(now);
        if !matches!(self.state, SubState::Active { .. }) {
            return Err(EventError::NoSuchSubscription);
        }
        let event = EventHeader::from_request(req)?;
        if event != self.event {
            return Err(EventError::NoSuchSubscription);
        }
        let granted = policy.grant(req.headers.expires()?)?;
        self.dialog.on_request(req).map_err(dialog_error)?;
        self.state = if granted == 0 {
            SubState::Terminating(TerminationReason::Timeout)
        } else {
            SubState::Active {
                expires_at: now + Duration::from_secs(u64::from(granted)),
            }
        };
        Ok(ok_response(
            req,
            &self.dialog.id.local_tag,
            &self.contact,
            granted,
        ))
    }

    /// Ends the subscription from our side; the next NOTIFY is the final one.
    pub fn terminate(&mut self, reason: TerminationReason) {
        if self.state != SubState::Gone {
            self.state = SubState::Terminating(reason);
        }
    }

    /// Lapses the subscription if `now` is at or past its expiry; returns whether it did,
    /// in which case a final NOTIFY is due.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.state {
            SubState::Active { expires_at } if now >= expires_at => {
                self.state = SubState::Terminating(TerminationReason::Timeout);
                true
            }
            _ => false,
        }
    }

    /// Builds the next in-dialog NOTIFY carrying `body` of `content_type` (the current
    /// state: RFC 6665 wants state in every NOTIFY, the final one included).
    pub fn notify(
        &mut self,
        now: Instant,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<Request, EventError> {
        let mut req = self.notify_without_body(now)?;
        req.set_body(content_type, body);
        Ok(req)
    }

    /// Builds the next NOTIFY with no body (a final NOTIFY after expiry, when there is no
    /// state worth sending).
    pub fn notify_without_body(&mut self, now: Instant) -> Result<Request, EventError> {
        self.handle_timeout(now);
        let state = match self.state {
            SubState::Active { expires_at } => {
                let left = expires_at.saturating_duration_since(now).as_secs();
                format!("active;expires={left}")
            }
            SubState::Terminating(reason) => {
                self.state = SubState::Gone;
                format!("terminated;reason={}", reason.as_str())
            }
            SubState::Gone => return Err(EventError::Terminated),
        };
        let mut req = self.dialog.request(Method::Notify);
        req.headers.push(HeaderName::Contact, self.contact.as_str());
        req.headers.push(HeaderName::Event, self.event.to_value());
        req.headers.push(HeaderName::SubscriptionState, state);
        Ok(req)
    }

    /// Feeds the subscriber's response to one of our NOTIFYs.
    pub fn on_notify_response(&mut self, resp: &Response) -> NotifyOutcome {
        let outcome = if resp.status.is_provisional() {
            NotifyOutcome::Pending
        } else if resp.status.is_success() {
            NotifyOutcome::Delivered
        } else if resp.status != StatusCode::CALL_DOES_NOT_EXIST
            && resp.headers.contains(&HeaderName::RetryAfter)
        {
            NotifyOutcome::Retry
        } else {
            NotifyOutcome::Gone
        };
        if outcome == NotifyOutcome::Gone {
            self.state = SubState::Gone;
        }
        outcome
    }

    /// Our NOTIFY's transaction timed out (no response at all): the subscriber is gone.
    pub fn on_notify_timeout(&mut self) {
        self.state = SubState::Gone;
    }

    /// Whether `req` (or a response, by its headers) belongs to this subscription's dialog.
    fn owns(&self, call_id: &str, local_tag: Option<&str>, remote_tag: Option<&str>) -> bool {
        call_id == self.dialog.id.call_id
            && local_tag == Some(self.dialog.id.local_tag.as_str())
            && remote_tag.unwrap_or("") == self.dialog.id.remote_tag
    }
}

fn ok_response(req: &Request, local_tag: &str, contact: &str, granted: u32) -> Response {
    let mut resp = Response::for_request(req, StatusCode::OK, Some(local_tag));
    resp.headers.push(HeaderName::Contact, contact);
    resp.headers.push(HeaderName::Expires, granted.to_string());
    resp
}

/// Every subscription of the notifier, found by dialog (for refreshes and NOTIFY
/// responses) and by (package, resource) (for "tell everyone watching 202").
///
/// The earliest expiry is found by a scan: a PBX holds hundreds to a few thousand
/// subscriptions and asks once per wake-up, which costs less than keeping a second index.
#[derive(Debug, Default)]
pub struct Subscriptions {
    subs: HashMap<DialogId, Subscription>,
    by_resource: HashMap<(EventPackage, String), Vec<DialogId>>,
}

impl Subscriptions {
    pub fn new() -> Subscriptions {
        Subscriptions::default()
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Adds a subscription, replacing one with the same dialog.
    pub fn insert(&mut self, sub: Subscription) {
        let id = sub.id().clone();
        self.remove(&id);
        self.by_resource
            .entry((sub.package(), sub.resource.clone()))
            .or_default()
            .push(id.clone());
        self.subs.insert(id, sub);
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<Subscription> {
        let sub = self.subs.remove(id)?;
        let key = (sub.package(), sub.resource.clone());
        if let Some(ids) = self.by_resource.get_mut(&key) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.by_resource.remove(&key);
            }
        }
        Some(sub)
    }

    pub fn get(&self, id: &DialogId) -> Option<&Subscription> {
        self.subs.get(id)
    }

    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Subscription> {
        self.subs.get_mut(id)
    }

    /// The subscriptions watching `resource` in `package`.
    pub fn watching<'a>(
        &'a self,
        package: EventPackage,
        resource: &str,
    ) -> impl Iterator<Item = &'a Subscription> + 'a {
        self.by_resource
            .get(&(package, resource.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.subs.get(id))
    }

    /// The subscription an in-dialog request (a refreshing SUBSCRIBE) belongs to: our tag
    /// is in its To, the subscriber's in its From.
    pub fn find_for_request(&self, req: &Request) -> Option<DialogId> {
        let call_id = req.headers.call_id().ok()?;
        let to = req.headers.to().ok()?;
        let from = req.headers.from().ok()?;
        self.find(call_id, to.tag(), from.tag())
    }

    fn find(
        &self,
        call_id: &str,
        local_tag: Option<&str>,
        remote_tag: Option<&str>,
    ) -> Option<DialogId> {
        let id = DialogId {
            call_id: call_id.to_owned(),
            local_tag: local_tag?.to_owned(),
            remote_tag: remote_tag.unwrap_or("").to_owned(),
        };
        self.subs
            .get(&id)
            .filter(|s| s.owns(call_id, local_tag, remote_tag))
            .map(|s| s.id().clone())
    }

    /// Handles an in-dialog SUBSCRIBE; unknown dialogs are 481 (the caller answers with
    /// [`EventError::rejection`]). After `Ok`, send the response and then the NOTIFY from
    /// [`Subscriptions::get_mut`] + [`Subscription::notify`].
    pub fn refresh(
        &mut self,
        req: &Request,
        policy: &ExpiryPolicy,
        now: Instant,
    ) -> Result<(DialogId, Response), EventError> {
        let id = self
            .find_for_request(req)
            .ok_or(EventError::NoSuchSubscription)?;
        let sub = self
            .subs
            .get_mut(&id)
            .ok_or(EventError::NoSuchSubscription)?;
        match sub.refresh(req, policy, now) {
            Ok(resp) => Ok((id, resp)),
            Err(e) => {
                // A refresh that came after the expiry finds the subscription lapsed; the
                // 481 tells the subscriber so, and nothing is left to notify.
                if !matches!(sub.state, SubState::Active { .. }) {
                    self.remove(&id);
                }
                Err(e)
            }
        }
    }

    /// One NOTIFY for every subscriber of `resource` in `package`. `body` gets each
    /// subscription's next document version and returns the document, so every subscriber
    /// sees its own increasing sequence. Subscriptions whose NOTIFY was their final one
    /// leave the table.
    pub fn notify_all(
        &mut self,
        now: Instant,
        package: EventPackage,
        resource: &str,
        mut body: impl FnMut(u32) -> Bytes,
    ) -> Vec<(DialogId, Request)> {
        let ids = self
            .by_resource
            .get(&(package, resource.to_owned()))
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(sub) = self.subs.get_mut(&id) else {
                continue;
            };
            let version = sub.next_version();
            if let Ok(req) = sub.notify(now, package.content_type(), body(version)) {
                out.push((id.clone(), req));
            }
            self.drop_if_gone(&id);
        }
        out
    }

    /// Ends every subscription to `resource` (e.g. a room closed: `NoResource`) and returns
    /// their final NOTIFYs; `body` as in [`Subscriptions::notify_all`].
    pub fn terminate_all(
        &mut self,
        now: Instant,
        package: EventPackage,
        resource: &str,
        reason: TerminationReason,
        body: impl FnMut(u32) -> Bytes,
    ) -> Vec<(DialogId, Request)> {
        for id in self
            .by_resource
            .get(&(package, resource.to_owned()))
            .into_iter()
            .flatten()
        {
            if let Some(sub) = self.subs.get_mut(id) {
                sub.terminate(reason);
            }
        }
        self.notify_all(now, package, resource, body)
    }

    /// The earliest expiry: when to call [`Subscriptions::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subs
            .values()
            .filter_map(Subscription::expires_at)
            .min()
    }

    /// Lapses every subscription expired at `now` and returns their final NOTIFYs
    /// (bodiless: the subscriber asked for nothing more); they leave the table.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(DialogId, Request)> {
        let expired: Vec<DialogId> = self
            .subs
            .iter_mut()
            .filter_map(|(id, s)| s.handle_timeout(now).then(|| id.clone()))
            .collect();
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            if let Some(sub) = self.subs.get_mut(&id) {
                if let Ok(req) = sub.notify_without_body(now) {
                    out.push((id.clone(), req));
                }
            }
            self.remove(&id);
        }
        out
    }

    /// Feeds a response to one of our NOTIFYs; a subscription it ends leaves the table.
    /// `None` when no subscription matches (e.g. the answer to a final NOTIFY).
    pub fn on_notify_response(&mut self, resp: &Response) -> Option<(DialogId, NotifyOutcome)> {
        let call_id = resp.headers.call_id().ok()?;
        let from = resp.headers.from().ok()?;
        let to = resp.headers.to().ok()?;
        // Our NOTIFY had our tag in From and the subscriber's in To.
        let id = self.find(call_id, from.tag(), to.tag())?;
        let outcome = self.subs.get_mut(&id)?.on_notify_response(resp);
        self.drop_if_gone(&id);
        Some((id, outcome))
    }

    /// Our NOTIFY in dialog `id` got no response at all.
    pub fn on_notify_timeout(&mut self, id: &DialogId) {
        self.remove(id);
    }

    fn drop_if_gone(&mut self, id: &DialogId) {
        if self.subs.get(id).is_some_and(|s| s.state == SubState::Gone) {
            self.remove(id);
        }
    }
}

/// An out-of-dialog NOTIFY to a phone that never subscribed: the MWI phones expect from a
/// PBX whose mailbox they were configured with (RFC 3842 §3 allows the notifier to send
/// message-summary state without a subscription when the two are configured that way).
#[derive(Debug, Clone)]
pub struct UnsolicitedNotify {
    /// The phone's registered Contact: the Request-URI.
    pub target: Uri,
    /// The extension's address of record.
    pub to: NameAddr,
    /// Our identity; must carry a tag from the caller's generator.
    pub from: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub contact: NameAddr,
    pub package: EventPackage,
}

/// Builds the unsolicited NOTIFY carrying `body` (of the package's content type). It says
/// `Subscription-State: terminated`, which is the truth (no subscription exists) and
/// tells a phone not to expect refreshes or a dialog to keep.
pub fn unsolicited_notify(n: &UnsolicitedNotify, body: impl Into<Bytes>) -> Request {
    let mut req = Request::new(Method::Notify, n.target.clone());
    req.headers.push(HeaderName::From, n.from.to_string());
    req.headers.push(HeaderName::To, n.to.to_string());
    req.headers.push(HeaderName::CallId, n.call_id.as_str());
    req.headers
        .push(HeaderName::CSeq, format!("{} NOTIFY", n.cseq));
    req.headers.push(HeaderName::MaxForwards, "70");
    req.headers.push(HeaderName::Contact, n.contact.to_string());
    req.headers.push(HeaderName::Event, n.package.as_str());
    req.headers
        .push(HeaderName::SubscriptionState, "terminated");
    req.set_body(n.package.content_type(), body);
    req
}
