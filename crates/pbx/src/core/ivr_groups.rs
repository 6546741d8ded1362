//! A menu's caller handed to a ring group (`options = { "2" = "600" }`, an office-hours
//! target, or a group's `no_answer` reached from a menu): the group's members are rung by its
//! strategy from the caller's engine leg, as [`super::ivr`] rings one extension, and the
//! member who answers is bridged in the engine. The steps follow `core::ring_groups` (the same
//! order, shuffle, skipped members and `ring_seconds`); what differs is only where the calls
//! go out from: an answered engine leg here, an unanswered SIP INVITE there.
//!
//! Nobody answering ends at the group's `no_answer` (a mailbox, or any target a menu can
//! take), else the menu again, as for an extension nobody answers without voicemail.

use std::time::Duration;

use kentongan_engine::LegId;
use kentongan_sip::transaction::TxId;
use tracing::info;

use super::answered::App;
use super::calls::ForkState;
use super::ring_groups::{shuffle, MAX_GROUP_HOPS};
use super::{Clock, Pbx};
use crate::config::{NoAnswer, Strategy};
use crate::routing::VoicemailGreeting;
use crate::store::Extension;

/// The ring group an IVR caller is being connected to.
#[derive(Debug)]
pub(super) struct IvrGroup {
    number: String,
    strategy: Strategy,
    /// Members in the order they are tried (shuffled for `random`).
    order: Vec<Extension>,
    /// How far into `order` the steps have gone.
    next: usize,
    ring: Duration,
    no_answer: Option<NoAnswer>,
    /// Members whose phones all refused: not rung again for this call.
    refused: Vec<Extension>,
    /// Groups passed through by `no_answer` before this one.
    hops: usize,
}

impl Pbx {
    /// The caller on `leg` (answered by a menu) is connected to ring group `index`.
    pub(super) fn call_group_onward(
        &mut self,
        clock: Clock,
        leg: LegId,
        index: usize,
        hops: usize,
    ) {
        let (Some(conf), Some(caller)) = (
            self.config.ring_groups.get(index).cloned(),
            self.apps.legs.get(&leg).map(|a| a.caller.clone()),
        ) else {
            return self.target_failed(clock, leg);
        };
        let mut order = conf.members.clone();
        if conf.strategy == Strategy::Random {
            let entropy = self.ep.new_tag();
            shuffle(&mut order, &entropy);
        }
        // The engine leg faces the members' address family (the first registered one's).
        let toward = order
            .iter()
            .find_map(|m| {
                self.registry
                    .contacts(m, clock.unix_s())
                    .first()
                    .map(|c| c.source)
            })
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let number = Extension(conf.number.clone());
        let Some(mut o) = self.onward_media(clock, toward, &caller, number) else {
            return self.target_failed(clock, leg);
        };
        info!(leg = leg.0, %caller, group = %conf.number, strategy = conf.strategy.name(), "IVR calling ring group");
        o.group = Some(IvrGroup {
            number: conf.number,
            strategy: conf.strategy,
            order,
            next: 0,
            ring: Duration::from_secs(u64::from(conf.ring_seconds)),
            no_answer: conf.no_answer,
            refused: Vec::new(),
            hops,
        });
        self.apps.onward.insert(leg, o);
        self.play_ringback(leg);
        self.ivr_group_step(clock, leg);
    }

    /// The group's next step for `leg`'s caller: ring the next member(s), or, with none
    /// left, `no_answer`.
    pub(super) fn ivr_group_step(&mut self, clock: Clock, leg: LegId) {
        let Some(caller) = self.apps.legs.get(&leg).map(|a| a.caller.clone()) else {
            return;
        };
        let Some(o) = self.apps.onward.get(&leg) else {
            return;
        };
        let Some(g) = &o.group else {
            return;
        };
        let (strategy, start) = (g.strategy, g.next);
        let mut free = g
            .order
            .iter()
            .enumerate()
            .skip(start)
            .filter(|(_, m)| !g.refused.contains(m))
            .map(|(i, m)| (i, m.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|(_, m)| self.member_free(clock, m, &caller));
        let end = g.order.len();
        let (to_ring, next): (Vec<Extension>, usize) = match strategy {
            Strategy::RingAll if start == 0 => (free.map(|(_, m)| m).collect(), end),
            Strategy::RingAll => (Vec::new(), end),
            Strategy::Hunt | Strategy::Random | Strategy::MemoryHunt => match free.next() {
                Some((i, m)) => (vec![m], i + 1),
                None => (Vec::new(), end),
            },
        };
        if strategy != Strategy::MemoryHunt {
            // Hunt moves on: the member rung before stops ringing.
            if let Some(o) = self.apps.onward.get_mut(&leg) {
                let forks = std::mem::take(&mut o.forks);
                o.members.clear();
                self.cancel_onward(clock, forks);
            }
        }
        if to_ring.is_empty() {
            return self.ivr_group_no_answer(clock, leg);
        }
        let Some(o) = self.apps.onward.remove(&leg) else {
            return;
        };
        let mut sent = Vec::new();
        for m in &to_ring {
            for f in self.onward_forks(clock, leg, &o, m) {
                sent.push((m.clone(), f));
            }
        }
        let mut o = o;
        let n = sent.len();
        for (m, f) in sent {
            o.members.insert(f.tx, m);
            o.forks.push(f);
        }
        if let Some(g) = o.group.as_mut() {
            g.next = next;
            o.deadline = clock.now + g.ring;
            let members: Vec<&str> = to_ring.iter().map(|m| m.0.as_str()).collect();
            info!(leg = leg.0, group = %g.number, members = ?members, forks = n, "IVR ring group ringing");
        }
        self.apps.onward.insert(leg, o);
        if n == 0 {
            // No phone took the INVITE: straight on to the next step.
            self.ivr_group_step(clock, leg);
        }
    }

    /// A member's phone refused (busy, declined, failed): the member is not rung again;
    /// when no fork still rings, the group moves on at once.
    pub(super) fn ivr_group_fork_failed(&mut self, clock: Clock, leg: LegId, tx: TxId) {
        let Some(o) = self.apps.onward.get_mut(&leg) else {
            return;
        };
        let still = o.forks.iter().any(|f| f.state == ForkState::Pending);
        if let Some(m) = o.members.remove(&tx) {
            let others_ring = o
                .forks
                .iter()
                .any(|f| f.state == ForkState::Pending && o.members.get(&f.tx) == Some(&m));
            if let Some(g) = o
                .group
                .as_mut()
                .filter(|g| !others_ring && !g.refused.contains(&m))
            {
                g.refused.push(m);
            }
        }
        o.forks.retain(|f| f.state == ForkState::Pending);
        if !still {
            self.ivr_group_step(clock, leg);
        }
    }

    /// Nobody in the group answered: its `no_answer`, else the menu again.
    fn ivr_group_no_answer(&mut self, clock: Clock, leg: LegId) {
        let Some(o) = self.apps.onward.remove(&leg) else {
            return;
        };
        self.cancel_onward(clock, o.forks);
        self.relay.give_port(o.port);
        self.engine
            .command(crate::media::EngineCommand::StopPlaying(leg));
        let Some(g) = o.group else {
            return;
        };
        info!(leg = leg.0, group = %g.number, to = ?g.no_answer.as_ref().map(|n| n.to_string()), "IVR ring group not answered");
        let voicemail_on = self.config.voicemail.as_ref().is_some_and(|v| v.enabled);
        match g.no_answer {
            Some(NoAnswer::Voicemail(mailbox)) if voicemail_on => self.switch_app(
                clock,
                leg,
                App::Voicemail {
                    mailbox,
                    greeting: VoicemailGreeting::Unavailable,
                },
            ),
            Some(NoAnswer::Number(n)) if g.hops + 1 < MAX_GROUP_HOPS => {
                self.route_target(clock, leg, &n, g.hops + 1)
            }
            _ => self.target_failed(clock, leg),
        }
    }
}
