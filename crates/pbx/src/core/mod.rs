//! The PBX core: registrar, B2BUA calls, IM and CDR on top of the sans-IO transaction layer.
//!
//! [`Pbx`] is driven like the SIP core it wraps: [`Pbx::handle_datagram`] and
//! [`Pbx::handle_timeout`] take input with the time, [`Pbx::flush`] commits the batch's
//! storage writes, and only then does the driver drain [`Pbx::poll_transmit`]: no answer
//! leaves before what it acknowledges is on disk. It opens no SIP socket and reads no clock;
//! media streams are allocated through [`crate::media::Relay`] (its own epoll thread moves the
//! packets). Every datagram first passes the firewall's `Shield` (bans, scanners).
//!
//! The modules follow a request's path: this one takes the input and dispatches by method;
//! [`auth`] checks digest credentials; [`registrar`] keeps bindings; [`im`] stores and
//! forwards MESSAGEs; an out-of-dialog INVITE is turned into a [`crate::routing::Destination`]
//! (the one place that reads a dialled number) and [`calls`] bridges two legs to it, while
//! [`dialogs`] handles what happens inside an established call (ACK, BYE, re-INVITE, session
//! timers). [`addressing`] knows how we reach a peer; [`bans`] mirrors the firewall.

mod addressing;
mod answered;
mod attended;
mod auth;
mod bans;
mod calls;
mod consult;
mod dialogs;
mod events;
mod forwards;
mod fraud;
mod hold;
mod im;
mod in_call;
mod inbound;
mod ivr;
mod ivr_groups;
mod metrics;
mod mwi;
mod parking;
mod pickup;
mod recording;
mod registrar;
mod replaces;
mod ring_groups;
#[cfg(test)]
mod tests;
mod transfer;
mod trunk_calls;
mod trunk_keepalive;
mod trunk_register;
mod voicemail;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kentongan_firewall::ruleset;
use kentongan_firewall::shield::{Screen, Shield};
use kentongan_sip::auth::{DigestServer, StoredHa1};
use kentongan_sip::transaction::{Config as EpConfig, Endpoint, SipEvent, Transmit, TxId};
use kentongan_sip::{HeaderName, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use crate::config::{Config, ListenTransport};
use crate::media::moh::MusicOnHold;
use crate::media::{EngineHost, Relay};
use crate::prompts::PromptCache;
use crate::routing::outbound::OutboundRefusal;
use crate::routing::{CallerContext, Destination, Dialplan, RouteError};
use crate::store::{
    CallSettings, Cdr, ConferenceWrite, Extension, OutboundCdr, Store, StoreError, StoredMessage,
    Write,
};

use addressing::finish_response;
use calls::{Call, CallKey, Side};
pub use metrics::{Metrics, TrunkGauges};
pub use registrar::{Contact, Registry};

const USER_AGENT: &str = concat!("Kentongan PBX ", env!("CARGO_PKG_VERSION"));
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, INFO, UPDATE, SUBSCRIBE, REFER";

/// Wall-clock and monotonic time of one input, handed in by the driver.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: Instant,
    pub unix_ms: i64,
}

impl Clock {
    fn unix_s(&self) -> i64 {
        self.unix_ms / 1000
    }
}

#[derive(Debug)]
enum TxUse {
    Fork {
        call: CallKey,
    },
    /// A fork whose call ended while it was pending: a late 2xx gets ACK + BYE.
    Orphan {
        request: Box<Request>,
        peer: SocketAddr,
    },
    ReInvite {
        call: CallKey,
    },
    /// Our INVITE to a blind transfer's target.
    Transfer {
        call: CallKey,
    },
    /// Our INVITE to the target of a `*2` attended transfer (the consultation).
    Consult {
        call: CallKey,
    },
    /// Our sendrecv re-INVITE to a phone an attended transfer took off hold.
    Resume {
        call: CallKey,
        side: Side,
    },
    /// A NOTIFY of a subscription (presence, BLF).
    Notify {
        id: kentongan_sip::dialog::DialogId,
    },
    Message {
        id: i64,
        recipient: Extension,
    },
    /// A REGISTER to a provider trunk (index into `Pbx::trunk_regs`).
    TrunkRegister {
        reg: usize,
    },
    /// An OPTIONS keepalive to a provider trunk (index into `Pbx::keepalives`, its number).
    Keepalive {
        index: usize,
        seq: u32,
    },
    /// Our INVITE to an extension an IVR menu's caller chose.
    IvrFork {
        leg: kentongan_engine::LegId,
    },
    Other,
}

/// The PBX state machine.
pub struct Pbx {
    config: Config,
    ep: Endpoint,
    digest: DigestServer,
    store: Store,
    relay: Relay,
    registry: Registry,
    metrics: Arc<Metrics>,
    writes: Vec<Write>,
    calls: HashMap<CallKey, Call>,
    /// In-call feature codes: each phone's keys in each bridged call.
    in_call: HashMap<(CallKey, Side), in_call::Keys>,
    next_call: CallKey,
    by_call_id: HashMap<String, (CallKey, Side)>,
    client_txs: HashMap<TxId, TxUse>,
    server_invites: HashMap<TxId, CallKey>,
    next_message_id: i64,
    next_housekeeping: Instant,
    /// When old call recordings are next deleted (at start, then daily).
    next_recording_sweep: Instant,
    /// Calls being recorded, and recordings whose call ended waiting for their two halves.
    call_recordings: HashMap<calls::CallKey, recording::CallRecording>,
    finishing: HashMap<kentongan_engine::LegId, recording::RecKey>,
    finishing_recs: HashMap<recording::RecKey, recording::Finishing>,
    /// IVR-bridged calls being recorded, by the caller's leg.
    bridge_recordings: HashMap<kentongan_engine::LegId, recording::BridgeRecording>,
    local_ips: HashMap<IpAddr, IpAddr>,
    /// Peers connected over TCP: what we send them goes down their connection.
    stream_peers: HashMap<SocketAddr, ListenTransport>,
    shield: Shield,
    /// Work for the kernel firewall, drained by the driver after each flush.
    firewall: Vec<FirewallOp>,
    /// The database's `data_version` when bans were last read.
    db_version: i64,
    next_ban_sync: Instant,
    /// HA1s of known users, read once instead of per request (a registration storm spent 6 %
    /// of its CPU in that query). Emptied when another process (the CLI's `user add`/`remove`)
    /// commits, which `data_version` reveals within a second. Unknown names are never cached,
    /// so a scan of random user names cannot grow it.
    ha1_cache: HashMap<String, StoredHa1>,
    /// The `messages` table, by recipient in id order: kept until a device takes a message
    /// (2xx). Delivery on registration reads this copy, never the database, so it cannot
    /// miss a message whose write is still on its way to the database, nor resend one whose
    /// delete is.
    mailboxes: HashMap<Extension, Vec<StoredMessage>>,
    /// Turns dialled numbers into destinations; rebuilt on reload.
    dialplan: Dialplan,
    /// The media engine's thread, for legs the PBX answers.
    engine: EngineHost,
    /// Applications and the legs they answered.
    apps: answered::Apps,
    prompts: PromptCache,
    /// Files of voicemail messages deleted in the batch, removed once it is committed.
    deleted_files: Vec<std::path::PathBuf>,
    /// Message waiting: subscriptions and the counts last announced.
    mwi: mwi::Mwi,
    /// Prompts in `[voicemail] language` (None when voicemail is off).
    vm_prompts: Option<PromptCache>,
    /// What a held phone hears.
    moh: MusicOnHold,
    /// Presence and BLF subscriptions.
    watchers: events::Watchers,
    /// Every extension's forwarding and DND (the `extension_settings` table), re-read when
    /// another process (the CLI) has committed.
    settings: HashMap<Extension, CallSettings>,
    /// Our registrations to `register = true` provider trunks.
    trunk_regs: Vec<trunk_register::TrunkRegistration>,
    /// OPTIONS keepalives to providers with `keepalive_seconds`.
    keepalives: Vec<trunk_keepalive::Keepalive>,
    /// Channels in use per trunk as last mirrored into `trunk_health`.
    mirrored_channels: Vec<u32>,
}

/// A change the driver makes to the kernel's firewall (via `nft`, off the event loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallOp {
    /// Add (or renew) bans: address and seconds left.
    Ban(Vec<(IpAddr, u64)>),
    /// Replace the ruleset (after a reload changed `[firewall]` or the ports), then re-add
    /// the bans; only where the appliance's table is already loaded.
    Reload {
        ruleset: String,
        bans: Vec<(IpAddr, u64)>,
    },
}

/// What the core needs from the driver at start.
pub struct PbxInit {
    pub config: Config,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// 32+ random bytes: keys the digest nonces.
    pub secret: [u8; 32],
    pub seed: u64,
    pub clock: Clock,
    /// Called from the media engine's thread when it has events for
    /// [`Pbx::handle_media`]; it must only wake the driver's loop.
    pub media_notify: Arc<dyn Fn() + Send + Sync>,
}

impl Pbx {
    pub fn new(init: PbxInit) -> Result<Pbx, StoreError> {
        let PbxInit {
            config,
            mut store,
            metrics,
            secret,
            seed,
            clock,
            media_notify,
        } = init;
        let mut registry = Registry::default();
        for b in store.bindings(clock.unix_s())? {
            let _ = registry.insert(b);
        }
        let interrupted = store.recover_live_calls(clock.unix_ms)?;
        if interrupted > 0 {
            warn!(
                calls = interrupted,
                "calls cut by the last stop were recorded as interrupted"
            );
        }
        metrics
            .registrations
            .store(registry.count() as u64, Ordering::Relaxed);
        let local = config
            .listen
            .first()
            .map(|l| l.addr)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060)));
        let mut ep = Endpoint::new(EpConfig::new(local, seed));
        let digest = DigestServer::new(&config.domain, &secret, clock.now);
        let mut relay = Relay::new(config.rtp_ports, metrics.relay.clone());
        if config.features.in_call {
            relay.set_dtmf_notify(media_notify.clone());
        }
        let next_message_id = store.max_message_id()? + 1;
        info!(
            registrations = registry.count(),
            "restored registrations from the database"
        );
        let shield = Shield::new(config.firewall.clone());
        let db_version = store.data_version()?;
        let mut mailboxes: HashMap<Extension, Vec<StoredMessage>> = HashMap::new();
        for msg in store.messages()? {
            mailboxes
                .entry(msg.recipient.clone())
                .or_default()
                .push(msg);
        }
        let dialplan = Dialplan::new(&config)
            .with_outbound(trunk_calls::load_outbound(&config))
            .with_office_hours(crate::routing::hours::load(&config));
        let trunk_regs =
            trunk_register::registrations(&config, dialplan.outbound(), clock.now, || {
                (ep.new_call_id(), ep.new_tag())
            });
        let keepalives =
            trunk_keepalive::keepalives(&config, dialplan.outbound(), clock.now, || {
                (ep.new_call_id(), ep.new_tag())
            });
        let engine = EngineHost::new(seed.rotate_left(17), metrics.engine.clone(), media_notify);
        let prompts = PromptCache::new(&config.prompts);
        let vm_prompts = voicemail::prompt_cache(&config);
        voicemail::clean_at_start(&store, &config);
        let moh = MusicOnHold::new(&config.music_on_hold);
        // Rooms of a previous run are empty now.
        store.apply(&[Write::Conference(ConferenceWrite::Reset)], clock.unix_ms)?;
        let mut pbx = Pbx {
            engine,
            apps: answered::Apps {
                greetings: crate::prompts::ivr_greetings(&config),
                ..answered::Apps::default()
            },
            prompts,
            vm_prompts,
            mwi: mwi::Mwi::default(),
            deleted_files: Vec::new(),
            moh,
            watchers: events::Watchers::default(),
            dialplan,
            config,
            ep,
            digest,
            store,
            relay,
            registry,
            metrics,
            writes: Vec::new(),
            calls: HashMap::new(),
            in_call: HashMap::new(),
            next_call: 1,
            by_call_id: HashMap::new(),
            client_txs: HashMap::new(),
            server_invites: HashMap::new(),
            next_message_id,
            next_housekeeping: clock.now,
            next_recording_sweep: clock.now,
            call_recordings: HashMap::new(),
            finishing: HashMap::new(),
            finishing_recs: HashMap::new(),
            bridge_recordings: HashMap::new(),
            local_ips: HashMap::new(),
            stream_peers: HashMap::new(),
            shield,
            firewall: Vec::new(),
            db_version,
            next_ban_sync: clock.now,
            ha1_cache: HashMap::new(),
            mailboxes,
            settings: HashMap::new(),
            trunk_regs,
            keepalives,
            mirrored_channels: Vec::new(),
        };
        pbx.reset_trunk_gauges();
        pbx.load_settings()?;
        pbx.load_mwi_counts();
        pbx.load_bans(clock)?;
        // The kernel's sets may have been emptied since (a ruleset reload): hand them back.
        let bans = pbx.stored_bans(clock)?;
        if !bans.is_empty() {
            info!(bans = bans.len(), "re-applying stored bans");
            pbx.firewall.push(FirewallOp::Ban(bans));
        }
        Ok(pbx)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Applies a reloaded configuration; returns what needs a restart to take effect.
    pub fn reload(&mut self, config: Config, secret: [u8; 32], clock: Clock) -> Vec<String> {
        let mut restart = Vec::new();
        if config.listen != self.config.listen {
            restart.push("sip.listen".to_owned());
        }
        if config.database != self.config.database {
            restart.push("storage.database".to_owned());
        }
        if config.metrics_listen != self.config.metrics_listen {
            restart.push("metrics.listen".to_owned());
        }
        // The mail sender thread is started with these; mails queued meanwhile wait for it.
        let mail = |c: &Config| {
            c.voicemail
                .as_ref()
                .filter(|v| v.enabled && v.smtp.is_some())
                .map(|v| (v.smtp.clone(), v.from.clone(), v.language))
        };
        if mail(&config) != mail(&self.config) {
            restart.push("voicemail.smtp".to_owned());
        }
        if config.domain != self.config.domain {
            self.digest = DigestServer::new(&config.domain, &secret, clock.now);
            self.ha1_cache.clear();
        }
        if config.rtp_ports != self.config.rtp_ports {
            self.relay.set_range(config.rtp_ports);
        }
        let ports = config.firewall_ports();
        let firewall_changed =
            config.firewall != self.config.firewall || ports != self.config.firewall_ports();
        if config.firewall != self.config.firewall {
            self.shield.set_policy(config.firewall.clone());
        }
        self.dialplan = Dialplan::new(&config)
            .with_outbound(trunk_calls::load_outbound(&config))
            .with_office_hours(crate::routing::hours::load(&config));
        if config.prompts != self.config.prompts {
            self.prompts = PromptCache::new(&config.prompts);
        }
        if config.prompts != self.config.prompts || config.voicemail != self.config.voicemail {
            self.vm_prompts = voicemail::prompt_cache(&config);
        }
        if config.music_on_hold != self.config.music_on_hold {
            self.moh = MusicOnHold::new(&config.music_on_hold);
        }
        if config.ivrs != self.config.ivrs || config.prompts != self.config.prompts {
            self.apps.greetings = crate::prompts::ivr_greetings(&config);
        }
        self.config = config;
        self.reset_trunk_gauges();
        // Registered anew: the trunks, their addresses or credentials may have changed.
        self.trunk_regs = trunk_register::registrations(
            &self.config,
            self.dialplan.outbound(),
            clock.now,
            || (self.ep.new_call_id(), self.ep.new_tag()),
        );
        self.keepalives =
            trunk_keepalive::keepalives(&self.config, self.dialplan.outbound(), clock.now, || {
                (self.ep.new_call_id(), self.ep.new_tag())
            });
        self.mirrored_channels.clear();
        if firewall_changed {
            let bans = self.stored_bans(clock).unwrap_or_default();
            self.firewall.push(FirewallOp::Reload {
                ruleset: ruleset::render(&self.config.firewall, &ports),
                bans,
            });
        }
        restart
    }

    // ---- driver interface ----

    pub fn handle_datagram(&mut self, clock: Clock, from: SocketAddr, bytes: &[u8]) {
        self.handle_datagram_bytes(clock, from, Bytes::copy_from_slice(bytes));
    }

    /// [`Pbx::handle_datagram`] for a datagram the driver already holds as `Bytes`: the
    /// parser keeps it as is, without a copy.
    pub fn handle_datagram_bytes(&mut self, clock: Clock, from: SocketAddr, bytes: Bytes) {
        match self.shield.screen(clock.unix_s(), from.ip(), &bytes) {
            Screen::Pass => {}
            Screen::Banned => {
                self.metrics.dropped_banned.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Screen::Scanner => {
                self.metrics.dropped_scanner.fetch_add(1, Ordering::Relaxed);
                self.take_bans();
                return;
            }
        }
        self.ep.handle_bytes(clock.now, from, bytes);
        self.drain_events(clock);
        self.update_watchers(clock);
    }

    /// One framed message from a TCP connection (the driver frames with `StreamDecoder`).
    /// Answers and requests for `from` then go down that connection.
    pub fn handle_stream_message(
        &mut self,
        clock: Clock,
        from: SocketAddr,
        transport: ListenTransport,
        bytes: Bytes,
    ) {
        self.stream_peers.insert(from, transport);
        self.handle_datagram_bytes(clock, from, bytes);
    }

    /// A TCP connection closed.
    pub fn handle_stream_closed(&mut self, from: SocketAddr) {
        self.stream_peers.remove(&from);
    }

    pub fn handle_timeout(&mut self, clock: Clock) {
        self.ep.handle_timeout(clock.now);
        self.drain_events(clock);
        self.retransmit_2xx(clock);
        self.retransmit_answered_2xx(clock);
        self.ivr_timeouts(clock);
        self.in_call_timeouts(clock);
        self.expire_sessions(clock);
        self.expire_mwi(clock);
        self.update_watchers(clock);
        if clock.now >= self.next_housekeeping {
            self.next_housekeeping = clock.now + Duration::from_secs(1);
            if clock.now >= self.next_recording_sweep {
                self.next_recording_sweep = clock.now + Duration::from_secs(86_400);
                self.expire_recordings(clock);
            }
            self.expire_unanswered(clock);
            self.expire_parked(clock);
            self.drive_trunk_registrations(clock);
            self.drive_keepalives(clock);
            self.shield.sweep(clock.now, clock.unix_s());
            self.metrics
                .bans_active
                .store(self.shield.active_bans() as u64, Ordering::Relaxed);
            if self.registry.expire(clock.unix_s()) {
                self.writes.push(Write::ExpireBindings {
                    now: clock.unix_s(),
                });
                self.update_gauges();
                self.update_gateway_gauges();
            }
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_housekeeping;
        if let Some(x) = self.ep.poll_timeout() {
            t = t.min(x);
        }
        for c in self.calls.values() {
            for p in [&c.pending_2xx, &c.pickup_2xx].into_iter().flatten() {
                t = t.min(p.next);
            }
            if let Some(d) = c.session_deadline {
                t = t.min(d);
            }
        }
        if let Some(x) = self.apps.next_deadline() {
            t = t.min(x);
        }
        if let Some(x) = self.ivr_deadline() {
            t = t.min(x);
        }
        if let Some(x) = self.in_call_deadline() {
            t = t.min(x);
        }
        if let Some(x) = self.mwi.next_deadline() {
            t = t.min(x);
        }
        if let Some(x) = self.watchers.poll_timeout() {
            t = t.min(x);
        }
        t
    }

    /// Commits the writes gathered since the last flush, in one transaction.
    pub fn flush(&mut self, clock: Clock) -> Result<(), StoreError> {
        self.mirror_trunk_channels(clock);
        if !self.writes.is_empty() {
            let writes = std::mem::take(&mut self.writes);
            self.watchers.flushed();
            if let Err(e) = self.store.apply(&writes, clock.unix_ms) {
                // Their rows were not deleted: the files stay.
                self.deleted_files.clear();
                return Err(e);
            }
        }
        self.remove_deleted_messages();
        self.announce_mwi(clock);
        // Once a second: other processes' changes (the CLI's bans and users) need not be seen
        // sooner, and a busy daemon flushes thousands of times a second.
        if clock.now >= self.next_ban_sync {
            self.next_ban_sync = clock.now + Duration::from_secs(1);
            self.sync_bans_if_changed(clock)?;
            self.announce_mwi(clock);
        }
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ep.poll_transmit()
    }

    /// Ends every call (BYE to answered legs, 503 to ringing ones) for a graceful stop.
    pub fn shutdown(&mut self, clock: Clock) {
        self.shutdown_answered(clock);
        let keys: Vec<CallKey> = self.calls.keys().copied().collect();
        for k in keys {
            let answered = self.calls.get(&k).is_some_and(Call::answered);
            if answered {
                self.send_bye(clock, k, Side::Caller);
                self.send_bye(clock, k, Side::Callee);
                self.end_call(clock, k, "answered");
            } else {
                self.fail_caller(clock, k, StatusCode::SERVICE_UNAVAILABLE);
                self.cancel_forks(clock, k);
                self.end_call(clock, k, "failed");
            }
        }
    }

    // ---- events ----

    fn drain_events(&mut self, clock: Clock) {
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                SipEvent::Request {
                    tx,
                    from,
                    request,
                    cancels,
                } => self.on_request(clock, tx, from, request, cancels),
                SipEvent::Ack { request, .. } => self.on_ack(&request),
                SipEvent::Response { tx, response } => self.on_response(clock, tx, response),
                SipEvent::Timeout { tx } => self.on_timeout(clock, tx),
                SipEvent::Malformed { from, error } => {
                    debug!(%from, %error, "malformed SIP message dropped")
                }
                SipEvent::Terminated { tx } => {
                    self.server_invites.remove(&tx);
                    if let Some(
                        TxUse::Other
                        | TxUse::Message { .. }
                        | TxUse::TrunkRegister { .. }
                        | TxUse::Keepalive { .. }
                        | TxUse::Notify { .. },
                    ) = self.client_txs.get(&tx)
                    {
                        self.client_txs.remove(&tx);
                    }
                    if let Some(TxUse::Orphan { .. }) = self.client_txs.get(&tx) {
                        self.client_txs.remove(&tx);
                    }
                }
            }
        }
    }

    fn respond(&mut self, clock: Clock, tx: TxId, resp: Response) {
        let resp = finish_response(resp);
        if let Err(e) = self.ep.respond(clock.now, tx, resp) {
            debug!(error = %e, "response not sent");
        }
    }

    fn reply(&mut self, clock: Clock, tx: TxId, req: &Request, status: StatusCode) {
        let tag = if req
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .is_none()
        {
            Some(self.ep.new_tag())
        } else {
            None
        };
        let resp = Response::for_request(req, status, tag.as_deref());
        self.respond(clock, tx, resp);
    }

    fn on_request(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: SocketAddr,
        req: Request,
        cancels: Option<TxId>,
    ) {
        let in_dialog = req.headers.to_tag().ok().flatten().is_some();
        match req.method {
            Method::Register => self.on_register(clock, tx, from, &req),
            Method::Options if !in_dialog => {
                let mut r = Response::for_request(&req, StatusCode::OK, Some(&self.ep.new_tag()));
                r.headers.push(HeaderName::Allow, ALLOW);
                r.headers.push(HeaderName::Accept, "application/sdp");
                self.respond(clock, tx, r);
            }
            Method::Cancel => self.on_cancel(clock, tx, &req, cancels),
            Method::Subscribe if self.is_mwi_subscribe(&req) => {
                self.on_mwi_subscribe(clock, tx, from, req)
            }
            Method::Invite if !in_dialog => self.on_invite(clock, tx, from, req),
            Method::Message if !in_dialog => self.on_message(clock, tx, from, &req),
            // In a dialog or not: refreshes belong to the subscription, not to a call.
            Method::Subscribe => self.on_subscribe(clock, tx, from, req),
            _ if in_dialog => self.on_in_dialog(clock, tx, req),
            Method::Publish => {
                self.reply(clock, tx, &req, StatusCode(489));
            }
            _ => self.reply(clock, tx, &req, StatusCode::NOT_IMPLEMENTED),
        }
    }

    /// An out-of-dialog INVITE: authenticated, routed, then handed to what serves the
    /// destination.
    fn on_invite(&mut self, clock: Clock, tx: TxId, from: SocketAddr, req: Request) {
        if let Some(trunk) = self.trunk_at(clock, from) {
            return self.on_trunk_invite(clock, tx, from, req, trunk);
        }
        let Some(caller) = self.authenticate(clock, tx, from, &req, true) else {
            return;
        };
        // A gateway that authenticated with its trunk's account calls in, never out.
        if let Some(trunk) = self.gateway_trunk_of(&caller) {
            return self.on_trunk_invite(clock, tx, from, req, trunk);
        }
        if let Some(v) = req
            .headers
            .get_str(&HeaderName::Replaces)
            .map(str::to_owned)
        {
            return self.on_replacing_invite(clock, tx, from, req, caller, &v);
        }
        let dialled = req.uri.user().unwrap_or("").to_owned();
        let channels = self.trunk_channels();
        // An unreadable rights name falls back to the default rights, never to more.
        let rights = self.store.user_rights(&caller).ok().flatten();
        let context = CallerContext {
            rights: rights.as_deref(),
            unix_s: clock.unix_s(),
            channels_in_use: &channels,
        };
        match self.dialplan.resolve_call(&dialled, &self.store, context) {
            Ok(Destination::Trunk(call)) => {
                self.call_trunk(clock, tx, from, req, caller, dialled, call)
            }
            Err(RouteError::Refused(refusal)) => {
                info!(%caller, dialled = %dialled.escape_debug(), reason = %refusal, "outbound call refused");
                let (status, phrase, disposition) = match &refusal {
                    OutboundRefusal::Rights { denied, .. } => (
                        StatusCode::FORBIDDEN,
                        format!(
                            "Forbidden: {} calls not allowed for this extension",
                            denied.class
                        ),
                        "refused",
                    ),
                    OutboundRefusal::NoRoute { .. } => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable: no trunk free for this number".to_owned(),
                        "failed",
                    ),
                };
                let mut r = Response::for_request(&req, status, Some(&self.ep.new_tag()));
                r.reason = phrase;
                self.respond(clock, tx, r);
                let call_id = req.headers.call_id().unwrap_or("").to_owned();
                let mut cdr = Cdr::refused(call_id, caller.0, dialled, clock.unix_ms, disposition);
                if let OutboundRefusal::Rights { denied, number } = &refusal {
                    cdr.outbound = Some(OutboundCdr {
                        trunk: None,
                        number: number.clone(),
                        class: denied.class.name().to_owned(),
                        cost: None,
                    });
                }
                self.writes.push(Write::Cdr(cdr));
            }
            Ok(Destination::Extension(callee)) => {
                self.call_extension(clock, tx, from, req, caller, callee)
            }
            Ok(Destination::RingGroup(g)) => self.call_ring_group(clock, tx, from, req, caller, g),
            Ok(Destination::Pickup(target)) => {
                self.call_pickup(clock, tx, from, req, caller, target)
            }
            Ok(Destination::ParkSlot(slot)) => {
                self.retrieve_parked(clock, tx, from, req, caller, slot)
            }
            Ok(Destination::Park) => {
                let tag = self.ep.new_tag();
                let mut r = Response::for_request(&req, StatusCode::FORBIDDEN, Some(&tag));
                r.reason = "Forbidden: park a call by transferring it to this number".into();
                self.respond(clock, tx, r);
            }
            Ok(Destination::FeatureCode(code)) => {
                self.answer_with_app(clock, tx, from, req, caller, answered::App::Feature(code))
            }
            Ok(Destination::EchoTest) => {
                self.answer_with_app(clock, tx, from, req, caller, answered::App::Echo)
            }
            Ok(Destination::Mailbox) => {
                let app = answered::App::Mailbox {
                    mailbox: Some(caller.clone()),
                };
                self.answer_with_app(clock, tx, from, req, caller, app)
            }
            Ok(Destination::AnyMailbox) => {
                let app = answered::App::Mailbox { mailbox: None };
                self.answer_with_app(clock, tx, from, req, caller, app)
            }
            Ok(Destination::Voicemail { mailbox, greeting }) => self.answer_with_app(
                clock,
                tx,
                from,
                req,
                caller,
                answered::App::Voicemail { mailbox, greeting },
            ),
            Ok(Destination::Ivr(menu)) => {
                self.answer_with_app(clock, tx, from, req, caller, answered::App::Ivr(menu.0))
            }
            Ok(Destination::Conference(room)) => {
                let number = self.config.conferences[room.0].number.clone();
                self.answer_with_app(
                    clock,
                    tx,
                    from,
                    req,
                    caller,
                    answered::App::Conference(number),
                )
            }
            // Office hours are a target (`hours:NAME`), never a dialled number.
            Ok(Destination::OfficeHours(_)) | Err(RouteError::NotFound(_)) => {
                debug!(%caller, dialled = %dialled.escape_debug(), "call to an unknown number");
                self.reply(clock, tx, &req, StatusCode::NOT_FOUND);
            }
            Err(e @ RouteError::Lookup(_)) => {
                warn!(error = %e, "routing failed");
                self.reply(clock, tx, &req, StatusCode::SERVER_INTERNAL_ERROR);
            }
        }
    }

    fn on_response(&mut self, clock: Clock, tx: TxId, resp: Response) {
        let Some(usage) = self.client_txs.get(&tx) else {
            return;
        };
        match usage {
            TxUse::Fork { call } => {
                let call = *call;
                self.on_fork_response(clock, call, tx, resp);
            }
            TxUse::Orphan { request, peer } => {
                if resp.status.is_success() {
                    let (request, peer) = (request.as_ref().clone(), *peer);
                    self.ack_and_bye(clock, &request, &resp, peer);
                }
            }
            TxUse::ReInvite { call } => {
                let call = *call;
                self.on_reinvite_response(clock, call, tx, resp);
            }
            TxUse::Message { id, recipient } => {
                if resp.status.is_success() {
                    let id = *id;
                    let recipient = recipient.clone();
                    self.writes.push(Write::DeleteMessage(id));
                    self.client_txs.remove(&tx);
                    self.take_from_mailbox(&recipient, id);
                }
            }
            TxUse::Transfer { call } => {
                let call = *call;
                self.on_transfer_response(clock, call, tx, resp);
            }
            TxUse::Consult { call } => {
                let call = *call;
                self.on_consult_response(clock, call, tx, resp);
            }
            TxUse::Resume { call, side } => {
                let (call, side) = (*call, *side);
                self.on_resume_response(call, side, tx, resp);
            }
            TxUse::Notify { .. } => {
                if !resp.status.is_provisional() {
                    self.client_txs.remove(&tx);
                }
                self.on_notify_response(&resp);
            }
            TxUse::TrunkRegister { reg } => {
                let reg = *reg;
                self.on_register_response(clock, reg, tx, &resp);
            }
            TxUse::Keepalive { index, seq } => {
                let (index, seq) = (*index, *seq);
                self.on_keepalive_response(clock, index, seq, &resp);
            }
            TxUse::IvrFork { leg } => {
                let leg = *leg;
                self.on_ivr_fork_response(clock, leg, tx, resp);
            }
            TxUse::Other => {}
        }
    }

    fn on_timeout(&mut self, clock: Clock, tx: TxId) {
        match self.client_txs.remove(&tx) {
            Some(TxUse::Fork { call }) => {
                let r = Response::new(StatusCode::REQUEST_TIMEOUT);
                // Feed a synthetic 408 through the fork logic.
                self.client_txs.insert(tx, TxUse::Fork { call });
                self.on_fork_response(clock, call, tx, r);
            }
            Some(TxUse::Notify { id }) => self.on_notify_timeout(&id),
            Some(TxUse::Transfer { call }) => self.on_transfer_timeout(clock, call),
            Some(TxUse::Consult { call }) => self.on_consult_timeout(clock, call),
            Some(TxUse::TrunkRegister { reg }) => self.on_register_timeout(clock, reg),
            Some(TxUse::Keepalive { index, seq }) => self.on_keepalive_timeout(clock, index, seq),
            Some(TxUse::IvrFork { leg }) => {
                self.client_txs.insert(tx, TxUse::IvrFork { leg });
                let r = Response::new(StatusCode::REQUEST_TIMEOUT);
                self.on_ivr_fork_response(clock, leg, tx, r);
            }
            Some(TxUse::ReInvite { call }) => {
                if let Some(ri) = self.calls.get_mut(&call).and_then(|c| c.reinvite.take()) {
                    let r = Response::for_request(&ri.request, StatusCode::REQUEST_TIMEOUT, None);
                    self.respond(clock, ri.server_tx, r);
                }
            }
            _ => {}
        }
    }
}
