//! Ring groups (`Destination::RingGroup`): one caller leg rung at several extensions by the
//! group's strategy. The call is an ordinary [`Call`] whose forks go to members' phones; a
//! [`GroupRing`] on it says which fork rings which member, what to ring next and when. The
//! first member to answer wins (the others are CANCELled by the fork logic) and becomes the
//! call's callee; when every step is used up the call goes to the group's `no_answer`.
//!
//! A member is skipped (never rung) when it is on DND, in an answered call (whatever its call
//! waiting says: a group call is not worth interrupting a conversation for), has no phone
//! registered, already refused this call, or is the caller. Members' own forwards do not
//! apply: the group, not the member, decides where an unanswered call goes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kentongan_sip::transaction::TxId;
use kentongan_sip::{Request, StatusCode};
use tracing::{info, warn};

use super::answered::App;
use super::calls::{Call, CallKey, ForkState, Side};
use super::{Clock, Pbx};
use crate::config::{NoAnswer, Strategy};
use crate::routing::{Destination, GroupIndex, VoicemailGreeting};
use crate::store::{Extension, LiveCall, Write};

/// Groups a call may pass through by `no_answer` (group → group → …) before it fails.
pub(super) const MAX_GROUP_HOPS: usize = 5;

/// A ring group working on a call that nobody answered yet.
#[derive(Debug)]
pub(super) struct GroupRing {
    number: String,
    name: String,
    strategy: Strategy,
    /// Members in the order they are tried (shuffled for `random`).
    order: Vec<Extension>,
    /// How far into `order` the steps have gone.
    next: usize,
    ring: Duration,
    step_deadline: Instant,
    no_answer: Option<NoAnswer>,
    /// Which member each fork rings.
    rung: HashMap<TxId, Extension>,
    /// Members whose phones all refused (busy, declined): not rung again for this call.
    refused: Vec<Extension>,
    hops: usize,
}

impl GroupRing {
    /// The member a fork rings.
    pub(super) fn member(&self, tx: TxId) -> Option<&Extension> {
        self.rung.get(&tx)
    }
}

impl Call {
    /// Whether `ext`'s phones are ringing for this call now (a direct call, or as a member
    /// of a ring group): what BLF shows as early and what pickup takes.
    pub(super) fn rings_at(&self, ext: &Extension) -> bool {
        self.ringing_extensions().contains(ext)
    }

    /// The extensions whose phones ring for this call now.
    pub(super) fn ringing_extensions(&self) -> Vec<Extension> {
        let pending = |tx: &TxId| {
            self.forks
                .iter()
                .any(|f| f.tx == *tx && f.state == ForkState::Pending)
        };
        if self.answered() || self.trunk.is_some() {
            return Vec::new();
        }
        match &self.group {
            None if self.forks.iter().any(|f| pending(&f.tx)) => vec![self.callee.clone()],
            None => Vec::new(),
            Some(g) => {
                let mut v: Vec<Extension> = g
                    .rung
                    .iter()
                    .filter(|(tx, _)| pending(tx))
                    .map(|(_, m)| m.clone())
                    .collect();
                v.sort();
                v.dedup();
                v
            }
        }
    }
}

/// A per-call shuffle from the endpoint's seeded randomness (a tag is fresh random bytes).
pub(super) fn shuffle(v: &mut [Extension], entropy: &str) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entropy.hash(&mut h);
    let mut x = h.finish() | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

impl Pbx {
    /// A new call to ring group `g`.
    pub(super) fn call_ring_group(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        caller: Extension,
        g: GroupIndex,
    ) {
        let Some(number) = self.config.ring_groups.get(g.0).map(|c| c.number.clone()) else {
            self.reply(clock, tx, &req, StatusCode::NOT_FOUND);
            return;
        };
        self.metrics
            .calls_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let callee = Extension(number);
        let v6 = from.is_ipv6();
        let Some(key) = self.start_call(clock, tx, from, req, caller, callee, v6, Vec::new())
        else {
            return;
        };
        let b_call_id = self.ep.new_call_id();
        if let Some(call) = self.calls.get_mut(&key) {
            call.b_call_id = b_call_id.clone();
        }
        self.by_call_id.insert(b_call_id, (key, Side::Callee));
        self.enter_group(clock, key, g, 0);
    }

    /// Hands call `key` (unanswered) to group `g`, which starts its first step.
    fn enter_group(&mut self, clock: Clock, key: CallKey, g: GroupIndex, hops: usize) {
        let Some(conf) = self.config.ring_groups.get(g.0).cloned() else {
            return;
        };
        let mut order = conf.members.clone();
        if conf.strategy == Strategy::Random {
            let entropy = self.ep.new_tag();
            shuffle(&mut order, &entropy);
        }
        let ring = Duration::from_secs(u64::from(conf.ring_seconds));
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        info!(call = key, group = %conf.number, strategy = conf.strategy.name(), "ring group");
        call.callee = Extension(conf.number.clone());
        call.on_busy = None;
        call.on_no_answer = None;
        call.voicemail = false;
        call.voicemail_at = None;
        call.best_failure = None;
        call.group = Some(GroupRing {
            number: conf.number,
            name: conf.name,
            strategy: conf.strategy,
            order,
            next: 0,
            ring,
            step_deadline: clock.now,
            no_answer: conf.no_answer,
            rung: HashMap::new(),
            refused: Vec::new(),
            hops,
        });
        self.group_step(clock, key);
    }

    /// Whether a group may ring `ext` for a call from `caller` now.
    pub(super) fn member_free(&self, clock: Clock, ext: &Extension, caller: &Extension) -> bool {
        ext != caller
            && !self.settings.get(ext).is_some_and(|s| s.dnd)
            && !self
                .calls
                .values()
                .any(|c| c.answered() && (&c.caller == ext || &c.callee == ext))
            && !self.registry.contacts(ext, clock.unix_s()).is_empty()
    }

    /// The group's next step: ring the next member(s), or, with none left, `no_answer`.
    fn group_step(&mut self, clock: Clock, key: CallKey) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(g) = &call.group else {
            return;
        };
        let caller = call.caller.clone();
        let candidates: Vec<(usize, Extension)> = g
            .order
            .iter()
            .enumerate()
            .skip(g.next)
            .filter(|(_, m)| !g.refused.contains(m))
            .map(|(i, m)| (i, m.clone()))
            .collect();
        let strategy = g.strategy;
        let mut free = candidates
            .into_iter()
            .filter(|(_, m)| self.member_free(clock, m, &caller));
        let (to_ring, next): (Vec<Extension>, usize) = match strategy {
            Strategy::RingAll if g.next == 0 => {
                let all: Vec<Extension> = free.map(|(_, m)| m).collect();
                (all, g.order.len())
            }
            Strategy::RingAll => (Vec::new(), g.order.len()),
            Strategy::Hunt | Strategy::Random | Strategy::MemoryHunt => match free.next() {
                Some((i, m)) => (vec![m], i + 1),
                None => (Vec::new(), g.order.len()),
            },
        };
        if strategy != Strategy::MemoryHunt {
            // Hunt moves on: the member rung before stops ringing.
            self.cancel_forks(clock, key);
        }
        if to_ring.is_empty() {
            // Every member has had its ring_seconds (memoryhunt: the last step, with all
            // members added, has run its time).
            self.group_no_answer(clock, key);
            return;
        }
        let mut sent = Vec::new();
        for m in &to_ring {
            let contacts = self.registry.contacts(m, clock.unix_s());
            let forks = self.send_forks(clock, key, m, &contacts);
            sent.push((m.clone(), forks));
        }
        let no_answer = self.config.no_answer;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(g) = call.group.as_mut() else {
            return;
        };
        let mut n = 0;
        for (m, forks) in sent {
            for f in forks {
                g.rung.insert(f.tx, m.clone());
                call.forks.push(f);
                n += 1;
            }
        }
        g.next = next;
        g.step_deadline = clock.now + g.ring;
        // The group's own clock decides; the PBX-wide ring limit only backs it up.
        call.ring_deadline = g.step_deadline + no_answer.max(Duration::from_secs(5));
        let members: Vec<&str> = to_ring.iter().map(|m| m.0.as_str()).collect();
        info!(call = key, group = %g.number, members = ?members, forks = n, "ring group ringing");
        let (number, name) = (g.number.clone(), g.name.clone());
        // Memoryhunt keeps earlier members ringing: `calls` shows them all.
        let ringing: Vec<String> = call.ringing_extensions().into_iter().map(|e| e.0).collect();
        self.writes.push(Write::LiveCall(LiveCall {
            call_id: call.call_id.clone(),
            caller: call.caller.0.clone(),
            callee: number,
            start_ms: call.start_ms,
            answer_ms: None,
            state: format!("ringing group {name} ({})", ringing.join(" ")),
        }));
        if n == 0 {
            // No phone took the INVITE: straight on to the next step.
            self.group_step(clock, key);
        }
    }

    /// A fork of a group call failed: the member is not rung again for this call; when no
    /// fork still rings, the group moves on at once.
    pub(super) fn group_fork_failed(&mut self, clock: Clock, key: CallKey, tx: TxId) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let still = call.forks.iter().any(|f| f.state == ForkState::Pending);
        let Some(g) = call.group.as_mut() else {
            return false;
        };
        if let Some(m) = g.rung.get(&tx).cloned() {
            let others_ring = call
                .forks
                .iter()
                .any(|f| f.state == ForkState::Pending && g.rung.get(&f.tx) == Some(&m));
            if !others_ring && !g.refused.contains(&m) {
                g.refused.push(m);
            }
        }
        if !still {
            self.group_step(clock, key);
        }
        true
    }

    /// Steps whose time is up (called once a second with the other ring timers).
    pub(super) fn advance_ring_groups(&mut self, clock: Clock) {
        let due: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                !c.answered()
                    && c.group
                        .as_ref()
                        .is_some_and(|g| g.step_deadline <= clock.now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.group_step(clock, key);
        }
    }

    /// Nobody in the group answered: on to its `no_answer` destination, or 480.
    fn group_no_answer(&mut self, clock: Clock, key: CallKey) {
        self.cancel_forks(clock, key);
        let Some(g) = self.calls.get_mut(&key).and_then(|c| c.group.take()) else {
            return;
        };
        info!(call = key, group = %g.number, to = ?g.no_answer.as_ref().map(|n| n.to_string()), "ring group not answered");
        let unavailable = |pbx: &mut Pbx| {
            pbx.fail_caller(clock, key, StatusCode::TEMPORARILY_UNAVAILABLE);
            pbx.end_call(clock, key, "no-answer");
        };
        let voicemail_on = self.config.voicemail.as_ref().is_some_and(|v| v.enabled);
        match g.no_answer {
            None => unavailable(self),
            Some(NoAnswer::Voicemail(mailbox)) if voicemail_on => {
                self.call_to_voicemail(clock, key, mailbox, VoicemailGreeting::Unavailable)
            }
            Some(NoAnswer::Voicemail(mailbox)) => {
                warn!(group = %g.number, %mailbox, "ring group's no_answer is a mailbox but [voicemail] is off");
                unavailable(self)
            }
            Some(NoAnswer::Number(n)) => match self.dialplan.resolve(&n, &self.store) {
                Ok(Destination::Extension(ext)) => self.forward_call(clock, key, ext),
                Ok(Destination::RingGroup(next)) if g.hops + 1 < MAX_GROUP_HOPS => {
                    self.enter_group(clock, key, next, g.hops + 1)
                }
                Ok(Destination::Voicemail { mailbox, greeting }) => {
                    self.call_to_voicemail(clock, key, mailbox, greeting)
                }
                Ok(Destination::Conference(room)) => {
                    let number = self.config.conferences[room.0].number.clone();
                    self.call_to_app(clock, key, App::Conference(number))
                }
                other => {
                    warn!(group = %g.number, no_answer = %n, result = ?other.map(|d| d.to_string()), "ring group's no_answer cannot take the call");
                    unavailable(self)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_order_is_a_permutation_that_changes_from_call_to_call() {
        let members: Vec<Extension> = (201..=208).map(|n| Extension(n.to_string())).collect();
        let mut orders = std::collections::HashSet::new();
        for call in 0..20 {
            let mut v = members.clone();
            shuffle(&mut v, &format!("tag-{call}"));
            let mut sorted = v.clone();
            sorted.sort();
            assert_eq!(sorted, members);
            orders.insert(v);
        }
        assert!(
            orders.len() > 10,
            "only {} orders in 20 calls",
            orders.len()
        );
    }
}
