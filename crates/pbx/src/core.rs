//! The PBX core: registrar, B2BUA calls, IM and CDR on top of the sans-IO transaction layer.
//!
//! [`Pbx`] is driven like the SIP core it wraps: [`Pbx::handle_datagram`] and
//! [`Pbx::handle_timeout`] take input with the time, [`Pbx::flush`] commits the batch's
//! storage writes, and only then does the driver drain [`Pbx::poll_transmit`]: no answer
//! leaves before what it acknowledges is on disk. It opens no SIP socket and reads no clock;
//! media streams are allocated through [`crate::media::Relay`] (its own epoll thread moves the
//! packets). Every datagram first passes the firewall's `Shield` (bans, scanners).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kentongan_firewall::ruleset;
use kentongan_firewall::shield::{Ban, Screen, Shield};
use kentongan_sip::auth::{Credentials, DigestServer, StoredHa1, Verdict};
use kentongan_sip::dialog::Dialog;
use kentongan_sip::sdp::Sdp;
use kentongan_sip::transaction::{Config as EpConfig, Endpoint, SipEvent, Transmit, TxId};
use kentongan_sip::{
    Contact as SipContact, HeaderName, Message, Method, Request, Response, StatusCode, Uri,
};
use tracing::{debug, info, warn};

use crate::config::{Config, ListenTransport};
use crate::media::{Direction, MediaKind, MediaStream, Relay, RelayStats};
use crate::store::{
    Binding, Cdr, Extension, LiveCall, Store, StoreError, StoredBan, StoredMessage, Write,
};

const USER_AGENT: &str = concat!("Kentongan PBX ", env!("CARGO_PKG_VERSION"));
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, INFO, UPDATE";
const MIN_EXPIRES: u32 = 60;
const MAX_EXPIRES: u32 = 3600;

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

/// Counters and gauges for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub registrations: AtomicU64,
    pub active_calls: AtomicU64,
    pub calls_total: AtomicU64,
    pub auth_failures: AtomicU64,
    pub messages_total: AtomicU64,
    pub bans_auth: AtomicU64,
    pub bans_scanner: AtomicU64,
    pub bans_active: AtomicU64,
    pub dropped_banned: AtomicU64,
    pub dropped_scanner: AtomicU64,
    pub relay: Arc<RelayStats>,
}

impl Metrics {
    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP kentongan_registrations Registered contact bindings.\n\
             # TYPE kentongan_registrations gauge\nkentongan_registrations {}\n\
             # HELP kentongan_active_calls Calls in progress (ringing or answered).\n\
             # TYPE kentongan_active_calls gauge\nkentongan_active_calls {}\n\
             # HELP kentongan_calls_total Call attempts since start.\n\
             # TYPE kentongan_calls_total counter\nkentongan_calls_total {}\n\
             # HELP kentongan_auth_failures_total Digest authentication failures.\n\
             # TYPE kentongan_auth_failures_total counter\nkentongan_auth_failures_total {}\n\
             # HELP kentongan_messages_total Instant messages accepted.\n\
             # TYPE kentongan_messages_total counter\nkentongan_messages_total {}\n\
             # HELP kentongan_rtp_packets_total RTP/RTCP packets relayed.\n\
             # TYPE kentongan_rtp_packets_total counter\nkentongan_rtp_packets_total {}\n\
             # HELP kentongan_rtp_bytes_total RTP/RTCP bytes relayed.\n\
             # TYPE kentongan_rtp_bytes_total counter\nkentongan_rtp_bytes_total {}\n",
            g(&self.registrations),
            g(&self.active_calls),
            g(&self.calls_total),
            g(&self.auth_failures),
            g(&self.messages_total),
            g(&self.relay.packets),
            g(&self.relay.bytes),
        ) + &self.render_media()
            + &self.render_firewall()
    }

    fn render_firewall(&self) -> String {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP kentongan_bans_total Sources banned by the daemon, by reason.\n\
             # TYPE kentongan_bans_total counter\n\
             kentongan_bans_total{{reason=\"auth\"}} {}\n\
             kentongan_bans_total{{reason=\"scanner\"}} {}\n\
             # HELP kentongan_bans_active Sources banned now (as the daemon knows them).\n\
             # TYPE kentongan_bans_active gauge\nkentongan_bans_active {}\n\
             # HELP kentongan_dropped_packets_total SIP packets the daemon dropped unanswered.\n\
             # TYPE kentongan_dropped_packets_total counter\n\
             kentongan_dropped_packets_total{{reason=\"banned\"}} {}\n\
             kentongan_dropped_packets_total{{reason=\"scanner\"}} {}\n",
            g(&self.bans_auth),
            g(&self.bans_scanner),
            g(&self.bans_active),
            g(&self.dropped_banned),
            g(&self.dropped_scanner),
        )
    }

    fn render_media(&self) -> String {
        let mut s = String::from(
            "# HELP kentongan_relay_packets_total Packets relayed by media kind and direction.\n\
             # TYPE kentongan_relay_packets_total counter\n",
        );
        for kind in MediaKind::ALL {
            for dir in Direction::ALL {
                s.push_str(&format!(
                    "kentongan_relay_packets_total{{media=\"{}\",direction=\"{}\"}} {}\n",
                    kind.as_str(),
                    dir.as_str(),
                    self.relay.packets_of(kind, dir)
                ));
            }
        }
        s
    }
}

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
    fn live(&self, ext: &Extension, now_s: i64) -> impl Iterator<Item = &Contact> {
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
    fn insert(&mut self, b: Binding) -> bool {
        let (Ok(uri), Ok(source)) = (Uri::parse(&b.contact), b.source.parse()) else {
            return false;
        };
        self.insert_parsed(b, uri, source)
    }

    /// [`Registry::insert`] for a binding whose contact and source are at hand parsed.
    fn insert_parsed(&mut self, b: Binding, uri: Uri, source: SocketAddr) -> bool {
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

    fn remove(&mut self, ext: &Extension, contact: Option<&str>) {
        if let Some(list) = self.by_ext.get_mut(ext) {
            let before = list.len();
            list.retain(|c| contact.is_some_and(|k| c.binding.contact != k));
            self.total -= before - list.len();
            if list.is_empty() {
                self.by_ext.remove(ext);
            }
        }
    }

    fn expire(&mut self, now_s: i64) -> bool {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

type CallKey = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForkState {
    Pending,
    Done,
}

#[derive(Debug)]
struct Fork {
    tx: TxId,
    peer: SocketAddr,
    request: Request,
    state: ForkState,
}

/// A 2xx to an INVITE we keep resending until its ACK (RFC 3261 §13.3.1.4, RFC 6026).
#[derive(Debug)]
struct Pending2xx {
    side: Side,
    msg: Message,
    to: SocketAddr,
    next: Instant,
    interval: Duration,
    deadline: Instant,
}

#[derive(Debug)]
struct ReInvite {
    /// The side that sent the re-INVITE to us.
    from: Side,
    server_tx: TxId,
    request: Request,
}

#[derive(Debug)]
struct Call {
    call_id: String,
    caller: Extension,
    callee: Extension,
    start_ms: i64,
    answer_ms: Option<i64>,
    caller_peer: SocketAddr,
    caller_invite: Request,
    caller_tx: TxId,
    our_tag: String,
    caller_dialog: Option<Dialog>,
    b_call_id: String,
    forks: Vec<Fork>,
    callee_dialog: Option<Dialog>,
    callee_peer: Option<SocketAddr>,
    media: Vec<Option<MediaStream>>,
    best_failure: Option<StatusCode>,
    pending_2xx: Option<Pending2xx>,
    reinvite: Option<ReInvite>,
    /// RFC 4028: the interval the caller refreshes in (it is the refresher), and when the call
    /// is torn down if no refresh (re-INVITE or UPDATE) arrived.
    session_expires: Option<u32>,
    session_deadline: Option<Instant>,
    /// Unanswered by then: the forks are cancelled and the caller gets 480 (no answer).
    ring_deadline: Instant,
}

impl Call {
    fn answered(&self) -> bool {
        self.answer_ms.is_some()
    }
    fn dialog(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.caller_dialog.as_mut(),
            Side::Callee => self.callee_dialog.as_mut(),
        }
    }
    fn peer(&self, side: Side) -> Option<SocketAddr> {
        match side {
            Side::Caller => Some(self.caller_peer),
            Side::Callee => self.callee_peer,
        }
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
    Message {
        id: i64,
        recipient: Extension,
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
    next_call: CallKey,
    by_call_id: HashMap<String, (CallKey, Side)>,
    client_txs: HashMap<TxId, TxUse>,
    server_invites: HashMap<TxId, CallKey>,
    next_message_id: i64,
    next_housekeeping: Instant,
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
        let ep = Endpoint::new(EpConfig::new(local, seed));
        let digest = DigestServer::new(&config.domain, &secret, clock.now);
        let relay = Relay::new(config.rtp_ports, metrics.relay.clone());
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
        let mut pbx = Pbx {
            config,
            ep,
            digest,
            store,
            relay,
            registry,
            metrics,
            writes: Vec::new(),
            calls: HashMap::new(),
            next_call: 1,
            by_call_id: HashMap::new(),
            client_txs: HashMap::new(),
            server_invites: HashMap::new(),
            next_message_id,
            next_housekeeping: clock.now,
            local_ips: HashMap::new(),
            stream_peers: HashMap::new(),
            shield,
            firewall: Vec::new(),
            db_version,
            next_ban_sync: clock.now,
            ha1_cache: HashMap::new(),
            mailboxes,
        };
        pbx.load_bans(clock)?;
        // The kernel's sets may have been emptied since (a ruleset reload): hand them back.
        let bans = pbx.stored_bans(clock)?;
        if !bans.is_empty() {
            info!(bans = bans.len(), "re-applying stored bans");
            pbx.firewall.push(FirewallOp::Ban(bans));
        }
        Ok(pbx)
    }

    fn stored_bans(&self, clock: Clock) -> Result<Vec<(IpAddr, u64)>, StoreError> {
        let now = clock.unix_s();
        Ok(self
            .store
            .bans(now)?
            .iter()
            .filter_map(|b| {
                let addr: IpAddr = b.addr.parse().ok()?;
                let left = u64::try_from(b.expires_at - now).ok()?.max(1);
                Some((addr, left))
            })
            .filter(|(a, _)| !self.config.firewall.is_trusted(*a))
            .collect())
    }

    /// Reads the stored bans into the shield (at start, and when the CLI changed them).
    fn load_bans(&mut self, clock: Clock) -> Result<(), StoreError> {
        let now = clock.unix_s();
        let stored: Vec<(IpAddr, i64)> = self
            .store
            .bans(now)?
            .iter()
            .filter_map(|b| Some((b.addr.parse().ok()?, b.expires_at)))
            .collect();
        for lifted in self.shield.sync(now, &stored) {
            info!(source = %lifted, "ban lifted");
        }
        self.metrics
            .bans_active
            .store(self.shield.active_bans() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Moves the shield's new bans into the batch's writes and the firewall's work.
    fn take_bans(&mut self) {
        let mut kernel = Vec::new();
        while let Some(ban) = self.shield.poll_ban() {
            let Ban {
                addr,
                reason,
                banned_at,
                expires_at,
            } = &ban;
            warn!(source = %addr, %reason, seconds = expires_at - banned_at, "source banned");
            match reason.kind() {
                "scanner" => &self.metrics.bans_scanner,
                _ => &self.metrics.bans_auth,
            }
            .fetch_add(1, Ordering::Relaxed);
            self.writes.push(Write::Ban(StoredBan {
                addr: addr.to_string(),
                reason: reason.to_string(),
                banned_at: *banned_at,
                expires_at: *expires_at,
            }));
            kernel.push((*addr, ban.remaining(*banned_at)));
        }
        if !kernel.is_empty() {
            self.firewall.push(FirewallOp::Ban(kernel));
            self.metrics
                .bans_active
                .store(self.shield.active_bans() as u64, Ordering::Relaxed);
        }
    }

    /// Firewall work from the last batch, to do once its writes are committed.
    pub fn take_firewall_ops(&mut self) -> Vec<FirewallOp> {
        std::mem::take(&mut self.firewall)
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
        self.config = config;
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

    /// A TCP connection closed.
    pub fn handle_stream_closed(&mut self, from: SocketAddr) {
        self.stream_peers.remove(&from);
    }

    pub fn handle_timeout(&mut self, clock: Clock) {
        self.ep.handle_timeout(clock.now);
        self.drain_events(clock);
        self.retransmit_2xx(clock);
        self.expire_sessions(clock);
        if clock.now >= self.next_housekeeping {
            self.next_housekeeping = clock.now + Duration::from_secs(1);
            self.expire_unanswered(clock);
            self.shield.sweep(clock.now, clock.unix_s());
            self.metrics
                .bans_active
                .store(self.shield.active_bans() as u64, Ordering::Relaxed);
            if self.registry.expire(clock.unix_s()) {
                self.writes.push(Write::ExpireBindings {
                    now: clock.unix_s(),
                });
                self.update_gauges();
            }
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_housekeeping;
        if let Some(x) = self.ep.poll_timeout() {
            t = t.min(x);
        }
        for c in self.calls.values() {
            if let Some(p) = &c.pending_2xx {
                t = t.min(p.next);
            }
            if let Some(d) = c.session_deadline {
                t = t.min(d);
            }
        }
        t
    }

    /// Commits the writes gathered since the last flush, in one transaction.
    pub fn flush(&mut self, clock: Clock) -> Result<(), StoreError> {
        if !self.writes.is_empty() {
            let writes = std::mem::take(&mut self.writes);
            self.store.apply(&writes, clock.unix_ms)?;
        }
        // Once a second: other processes' changes (the CLI's bans and users) need not be seen
        // sooner, and a busy daemon flushes thousands of times a second.
        if clock.now >= self.next_ban_sync {
            self.next_ban_sync = clock.now + Duration::from_secs(1);
            self.sync_bans_if_changed(clock)?;
        }
        Ok(())
    }

    /// Picks up an operator's `ban add`/`ban remove` (another connection's commit).
    fn sync_bans_if_changed(&mut self, clock: Clock) -> Result<(), StoreError> {
        let version = self.store.data_version()?;
        if version != self.db_version {
            self.db_version = version;
            self.ha1_cache.clear();
            self.load_bans(clock)?;
        }
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ep.poll_transmit()
    }

    /// Ends every call (BYE to answered legs, 503 to ringing ones) for a graceful stop.
    pub fn shutdown(&mut self, clock: Clock) {
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
                    if let Some(TxUse::Other | TxUse::Message { .. }) = self.client_txs.get(&tx) {
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
            Method::Invite if !in_dialog => self.on_invite(clock, tx, from, req),
            Method::Message if !in_dialog => self.on_message(clock, tx, from, &req),
            _ if in_dialog => self.on_in_dialog(clock, tx, req),
            Method::Subscribe | Method::Publish => {
                self.reply(clock, tx, &req, StatusCode(489));
            }
            _ => self.reply(clock, tx, &req, StatusCode::NOT_IMPLEMENTED),
        }
    }

    // ---- authentication ----

    /// Checks digest credentials; on failure answers the challenge itself and returns None.
    /// Unknown users and wrong passwords get the very same answer (anti-enumeration).
    fn authenticate(
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
            if !self.ha1_cache.contains_key(&creds.username) {
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
            let stored = self.ha1_cache.get(&creds.username);
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

    // ---- registrar ----

    fn on_register(&mut self, clock: Clock, tx: TxId, from: SocketAddr, req: &Request) {
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
                    news |= self.registry.insert_parsed(b.clone(), c.uri.clone(), from);
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

    fn update_gauges(&self) {
        self.metrics
            .registrations
            .store(self.registry.count() as u64, Ordering::Relaxed);
        self.metrics
            .active_calls
            .store(self.calls.len() as u64, Ordering::Relaxed);
    }

    // ---- addressing ----

    /// Our address as seen from `peer`: the listener's IP if it is specific, else the source
    /// address the kernel picks for that destination.
    fn local_ip(&mut self, peer: SocketAddr) -> IpAddr {
        let listen = self
            .config
            .listen
            .iter()
            .find(|l| l.addr.is_ipv4() == peer.is_ipv4())
            .map(|l| l.addr.ip());
        if let Some(ip) = listen.filter(|ip| !ip.is_unspecified()) {
            return ip;
        }
        if let Some(ip) = self.local_ips.get(&peer.ip()) {
            return *ip;
        }
        let bind: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let ip = UdpSocket::bind(bind)
            .and_then(|s| {
                s.connect(peer)?;
                s.local_addr()
            })
            .map(|a| a.ip())
            .unwrap_or(bind.ip());
        self.local_ips.insert(peer.ip(), ip);
        ip
    }

    /// How we reach `peer`: down its TCP/TLS connection if it has one, else UDP.
    fn transport_of(&self, peer: SocketAddr) -> ListenTransport {
        self.stream_peers
            .get(&peer)
            .copied()
            .unwrap_or(ListenTransport::Udp)
    }

    fn local_port(&self, peer: SocketAddr) -> u16 {
        let want = self.transport_of(peer);
        self.config
            .listen
            .iter()
            .find(|l| l.addr.is_ipv4() == peer.is_ipv4() && l.transport == want)
            .or_else(|| {
                self.config
                    .listen
                    .iter()
                    .find(|l| l.addr.is_ipv4() == peer.is_ipv4())
            })
            .map_or(5060, |l| l.addr.port())
    }

    fn host_port(&mut self, peer: SocketAddr) -> String {
        let ip = self.local_ip(peer);
        let port = self.local_port(peer);
        SocketAddr::new(ip, port).to_string()
    }

    fn add_via(&mut self, req: &mut Request, peer: SocketAddr) {
        let branch = self.ep.new_branch();
        let hp = self.host_port(peer);
        let transport = self.transport_of(peer).to_string().to_ascii_uppercase();
        req.headers.push_front(
            HeaderName::Via,
            format!("SIP/2.0/{transport} {hp};branch={branch};rport"),
        );
    }

    fn our_contact(&mut self, peer: SocketAddr) -> String {
        let param = match self.transport_of(peer) {
            ListenTransport::Udp => String::new(),
            t => format!(";transport={t}"),
        };
        format!("<sip:pbx@{}{param}>", self.host_port(peer))
    }

    fn send(&mut self, clock: Clock, peer: SocketAddr, mut req: Request, usage: TxUse) {
        self.add_via(&mut req, peer);
        if !req.headers.contains(&HeaderName::ContentLength) && req.body.is_empty() {
            req.headers.set(HeaderName::ContentLength, "0");
        }
        req.headers.push(HeaderName::UserAgent, USER_AGENT);
        match self.ep.send_request(clock.now, peer, req) {
            Ok(tx) => {
                self.client_txs.insert(tx, usage);
            }
            Err(e) => warn!(error = %e, %peer, "request not sent"),
        }
    }

    // ---- calls ----

    fn on_invite(&mut self, clock: Clock, tx: TxId, from: SocketAddr, req: Request) {
        let Some(caller) = self.authenticate(clock, tx, from, &req, true) else {
            return;
        };
        let Some(callee) = req.uri.user().and_then(Extension::parse) else {
            self.reply(clock, tx, &req, StatusCode::NOT_FOUND);
            return;
        };
        match self.store.user_exists(&callee.0) {
            Ok(true) => {}
            Ok(false) => {
                self.reply(clock, tx, &req, StatusCode::NOT_FOUND);
                return;
            }
            Err(e) => {
                warn!(error = %e, "user lookup failed");
                self.reply(clock, tx, &req, StatusCode::SERVER_INTERNAL_ERROR);
                return;
            }
        }
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        self.metrics.calls_total.fetch_add(1, Ordering::Relaxed);
        let contacts = self.registry.contacts(&callee, clock.unix_s());
        if contacts.is_empty() {
            self.reply(clock, tx, &req, StatusCode::TEMPORARILY_UNAVAILABLE);
            self.writes.push(Write::Cdr(Cdr {
                call_id,
                caller: caller.0,
                callee: callee.0,
                start_ms: clock.unix_ms,
                answer_ms: None,
                end_ms: clock.unix_ms,
                duration_s: 0.0,
                disposition: "unavailable".into(),
            }));
            return;
        }
        // Media: one relayed stream per m= line of the offer.
        let offer = if req.body.is_empty() {
            None
        } else {
            match Sdp::parse(&req.body) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.reply(clock, tx, &req, StatusCode::NOT_ACCEPTABLE_HERE);
                    return;
                }
            }
        };
        let callee_v6 = contacts[0].source.is_ipv6();
        let mut media = Vec::new();
        if let Some(offer) = &offer {
            for (i, m) in offer.media.iter().enumerate() {
                if m.port == 0 {
                    media.push(None);
                    continue;
                }
                let kind = MediaKind::from_sdp(&m.kind);
                match self.relay.allocate(kind, from.is_ipv6(), callee_v6) {
                    Ok(s) => {
                        let target = media_target(offer, i);
                        s.set_targets(|t| t.caller = target);
                        media.push(Some(s));
                    }
                    Err(e) => {
                        warn!(error = %e, "no relay ports for a call");
                        for s in media.into_iter().flatten() {
                            self.relay.release(s);
                        }
                        self.reply(clock, tx, &req, StatusCode::SERVICE_UNAVAILABLE);
                        return;
                    }
                }
            }
        }
        let key = self.next_call;
        self.next_call += 1;
        let b_call_id = self.ep.new_call_id();
        let b_tag = self.ep.new_tag();
        let display = self
            .store
            .user_name(&caller)
            .ok()
            .flatten()
            .filter(|n| !n.is_empty());
        let domain = self.config.domain.clone();
        let mut from_hdr = format!("<sip:{caller}@{domain}>;tag={b_tag}");
        if let Some(name) = display {
            from_hdr = format!("\"{}\" {from_hdr}", name.replace(['"', '\\'], ""));
        }
        let mut call = Call {
            call_id: call_id.clone(),
            caller: caller.clone(),
            callee: callee.clone(),
            start_ms: clock.unix_ms,
            answer_ms: None,
            caller_peer: from,
            caller_invite: req.clone(),
            caller_tx: tx,
            our_tag: self.ep.new_tag(),
            caller_dialog: None,
            b_call_id: b_call_id.clone(),
            forks: Vec::new(),
            callee_dialog: None,
            callee_peer: None,
            media,
            best_failure: None,
            pending_2xx: None,
            reinvite: None,
            session_expires: session_expires(&req),
            session_deadline: None,
            ring_deadline: clock.now + self.config.no_answer,
        };
        for c in contacts {
            let mut inv = Request::new(Method::Invite, c.uri.clone());
            inv.headers.push(HeaderName::From, from_hdr.as_str());
            inv.headers
                .push(HeaderName::To, format!("<sip:{callee}@{domain}>"));
            inv.headers.push(HeaderName::CallId, b_call_id.as_str());
            inv.headers.push(HeaderName::CSeq, "1 INVITE");
            let contact = self.our_contact(c.source);
            inv.headers.push(HeaderName::Contact, contact);
            inv.headers.push(HeaderName::Allow, ALLOW);
            if let Some(offer) = &offer {
                let mut sdp = offer.clone();
                let ports: Vec<u16> = call
                    .media
                    .iter()
                    .map(|m| m.as_ref().map_or(0, |s| s.callee_port))
                    .collect();
                let ip = self.local_ip(c.source);
                sdp.rewrite_for_relay(ip, &ports);
                inv.set_body("application/sdp", sdp.to_bytes());
            }
            let mut sent = inv.clone();
            self.add_via(&mut sent, c.source);
            sent.headers.set(HeaderName::MaxForwards, "70");
            sent.headers.push(HeaderName::UserAgent, USER_AGENT);
            match self.ep.send_request(clock.now, c.source, sent.clone()) {
                Ok(ftx) => {
                    self.client_txs.insert(ftx, TxUse::Fork { call: key });
                    call.forks.push(Fork {
                        tx: ftx,
                        peer: c.source,
                        request: sent,
                        state: ForkState::Pending,
                    });
                }
                Err(e) => warn!(error = %e, "fork not sent"),
            }
        }
        info!(%caller, %callee, forks = call.forks.len(), "call started");
        self.writes.push(Write::LiveCall(LiveCall {
            call_id: call_id.clone(),
            caller: caller.0.clone(),
            callee: callee.0.clone(),
            start_ms: clock.unix_ms,
            answer_ms: None,
            state: "ringing".into(),
        }));
        self.by_call_id.insert(call_id, (key, Side::Caller));
        self.by_call_id.insert(b_call_id, (key, Side::Callee));
        self.server_invites.insert(tx, key);
        self.calls.insert(key, call);
        self.update_gauges();
        if self.calls.get(&key).is_some_and(|c| c.forks.is_empty()) {
            self.fail_caller(clock, key, StatusCode::TEMPORARILY_UNAVAILABLE);
            self.end_call(clock, key, "unavailable");
        }
    }

    /// The SDP rewritten for `side` (the side that will receive it).
    fn sdp_for(&mut self, key: CallKey, body: &[u8], to: Side, peer: SocketAddr) -> Option<Bytes> {
        let mut sdp = Sdp::parse(body).ok()?;
        let ip = self.local_ip(peer);
        let call = self.calls.get(&key)?;
        // Record where the sending side wants media (SDP); latching may refine it.
        let from = to.other();
        for (i, m) in call.media.iter().enumerate() {
            if let Some(s) = m {
                let target = media_target(&sdp, i);
                if target.is_some() {
                    s.set_targets(|t| match from {
                        Side::Caller => t.caller = target,
                        Side::Callee => t.callee = target,
                    });
                }
            }
        }
        let ports: Vec<u16> = call
            .media
            .iter()
            .map(|m| {
                m.as_ref().map_or(0, |s| match to {
                    Side::Caller => s.caller_port,
                    Side::Callee => s.callee_port,
                })
            })
            .collect();
        sdp.rewrite_for_relay(ip, &ports);
        Some(Bytes::from(sdp.to_bytes()))
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
            TxUse::Other => {}
        }
    }

    fn ack_and_bye(&mut self, clock: Clock, request: &Request, resp: &Response, peer: SocketAddr) {
        if let Ok(mut d) = Dialog::uac(request, resp) {
            let seq = request.headers.cseq().map(|c| c.seq).unwrap_or(1);
            let mut ack = d.ack(seq);
            self.add_via(&mut ack, peer);
            ack.headers.set(HeaderName::ContentLength, "0");
            self.ep.send_stateless(peer, &Message::Request(ack));
            let bye = d.request(Method::Bye);
            self.send(clock, peer, bye, TxUse::Other);
        }
    }

    fn on_fork_response(&mut self, clock: Clock, key: CallKey, tx: TxId, resp: Response) {
        let status = resp.status;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(fi) = call.forks.iter().position(|f| f.tx == tx) else {
            return;
        };
        let peer = call.forks[fi].peer;
        if status.is_provisional() {
            if status.0 == 100 || call.answered() {
                return;
            }
            let a_req = call.caller_invite.clone();
            let a_tx = call.caller_tx;
            let a_peer = call.caller_peer;
            let tag = call.our_tag.clone();
            let mut r = Response::for_request(&a_req, status, Some(&tag));
            r.reason = resp.reason.clone();
            let contact = self.our_contact(a_peer);
            r.headers.push(HeaderName::Contact, contact);
            if !resp.body.is_empty() {
                if let Some(body) = self.sdp_for(key, &resp.body, Side::Caller, a_peer) {
                    r.set_body("application/sdp", body);
                }
            }
            self.respond(clock, a_tx, r);
            return;
        }
        if status.is_success() {
            if call.answered() || call.forks[fi].state == ForkState::Done {
                // Another fork won, or a 2xx retransmission: ACK (and BYE a loser).
                let request = call.forks[fi].request.clone();
                let winner = call.callee_peer == Some(peer)
                    && call.callee_dialog.as_ref().is_some_and(|d| {
                        resp.headers
                            .to()
                            .ok()
                            .and_then(|t| t.tag().map(str::to_owned))
                            .as_deref()
                            == Some(d.id.remote_tag.as_str())
                    });
                let ack = call.callee_dialog.as_ref().map(|d| d.ack(1));
                if winner {
                    if let Some(mut ack) = ack {
                        self.add_via(&mut ack, peer);
                        ack.headers.set(HeaderName::ContentLength, "0");
                        self.ep.send_stateless(peer, &Message::Request(ack));
                    }
                } else {
                    self.ack_and_bye(clock, &request, &resp, peer);
                }
                return;
            }
            call.forks[fi].state = ForkState::Done;
            let request = call.forks[fi].request.clone();
            let Ok(dialog) = Dialog::uac(&request, &resp) else {
                warn!("callee 2xx without a usable dialog; hanging up");
                self.ack_and_bye(clock, &request, &resp, peer);
                return;
            };
            let mut ack = dialog.ack(1);
            call.callee_dialog = Some(dialog);
            call.callee_peer = Some(peer);
            call.answer_ms = Some(clock.unix_ms);
            let a_req = call.caller_invite.clone();
            let a_tx = call.caller_tx;
            let a_peer = call.caller_peer;
            let tag = call.our_tag.clone();
            let (call_id, caller, callee, start_ms) = (
                call.call_id.clone(),
                call.caller.0.clone(),
                call.callee.0.clone(),
                call.start_ms,
            );
            self.add_via(&mut ack, peer);
            ack.headers.set(HeaderName::ContentLength, "0");
            self.ep.send_stateless(peer, &Message::Request(ack));
            self.cancel_forks(clock, key);
            let mut r = Response::for_request(&a_req, StatusCode::OK, Some(&tag));
            let contact = self.our_contact(a_peer);
            r.headers.push(HeaderName::Contact, contact);
            r.headers.push(HeaderName::Allow, ALLOW);
            if let Some(c) = self.calls.get_mut(&key) {
                if let Some(se) = c.session_expires {
                    r.headers
                        .push(HeaderName::SessionExpires, format!("{se};refresher=uac"));
                    r.headers.push(HeaderName::Require, "timer");
                    c.session_deadline = Some(clock.now + Duration::from_secs(u64::from(se)));
                }
            }
            if let Some(body) = self.sdp_for(key, &resp.body, Side::Caller, a_peer) {
                r.set_body("application/sdp", body);
            }
            r.headers.push(HeaderName::Server, USER_AGENT);
            if r.body.is_empty() {
                r.headers.set(HeaderName::ContentLength, "0");
            }
            let bytes = Message::Response(r.clone());
            if let Ok(d) = Dialog::uas(&a_req, &r) {
                if let Some(c) = self.calls.get_mut(&key) {
                    c.caller_dialog = Some(d);
                }
            }
            if let Err(e) = self.ep.respond(clock.now, a_tx, r) {
                debug!(error = %e, "200 to caller not sent");
            }
            self.start_2xx(clock, key, Side::Caller, bytes, a_peer);
            self.writes.push(Write::LiveCall(LiveCall {
                call_id,
                caller,
                callee,
                start_ms,
                answer_ms: Some(clock.unix_ms),
                state: "answered".into(),
            }));
            info!(call = key, "call answered");
            return;
        }
        // A failure from this fork.
        call.forks[fi].state = ForkState::Done;
        let rank = |s: StatusCode| match s.0 {
            486 | 600 => 0,
            603 => 1,
            480 => 3,
            _ => 2,
        };
        if call.best_failure.map_or(true, |b| rank(status) < rank(b)) {
            call.best_failure = Some(status);
        }
        if call.answered() || call.forks.iter().any(|f| f.state == ForkState::Pending) {
            return;
        }
        let final_status = call
            .best_failure
            .unwrap_or(StatusCode::TEMPORARILY_UNAVAILABLE);
        self.fail_caller(clock, key, final_status);
        let disposition = match final_status.0 {
            486 | 600 => "busy",
            603 => "declined",
            408 | 480 => "unavailable",
            _ => "failed",
        };
        self.end_call(clock, key, disposition);
    }

    fn fail_caller(&mut self, clock: Clock, key: CallKey, status: StatusCode) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let r = Response::for_request(&call.caller_invite, status, Some(&call.our_tag));
        let tx = call.caller_tx;
        self.respond(clock, tx, r);
    }

    /// CANCELs every fork still pending; their late answers are handled as orphans.
    fn cancel_forks(&mut self, clock: Clock, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let pending: Vec<(TxId, Request, SocketAddr)> = call
            .forks
            .iter_mut()
            .filter(|f| f.state == ForkState::Pending)
            .map(|f| {
                f.state = ForkState::Done;
                (f.tx, f.request.clone(), f.peer)
            })
            .collect();
        for (tx, request, peer) in pending {
            self.client_txs.insert(
                tx,
                TxUse::Orphan {
                    request: Box::new(request),
                    peer,
                },
            );
            match self.ep.cancel(clock.now, tx) {
                Ok(ctx) => {
                    self.client_txs.insert(ctx, TxUse::Other);
                }
                Err(e) => debug!(error = %e, "CANCEL not sent"),
            }
        }
    }

    fn on_cancel(&mut self, clock: Clock, tx: TxId, req: &Request, cancels: Option<TxId>) {
        let Some(key) = cancels.and_then(|t| self.server_invites.get(&t).copied()) else {
            self.reply(clock, tx, req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        self.reply(clock, tx, req, StatusCode::OK);
        if self.calls.get(&key).is_some_and(|c| !c.answered()) {
            self.fail_caller(clock, key, StatusCode::REQUEST_TERMINATED);
            self.cancel_forks(clock, key);
            self.end_call(clock, key, "cancelled");
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
            Some(TxUse::ReInvite { call }) => {
                if let Some(ri) = self.calls.get_mut(&call).and_then(|c| c.reinvite.take()) {
                    let r = Response::for_request(&ri.request, StatusCode::REQUEST_TIMEOUT, None);
                    self.respond(clock, ri.server_tx, r);
                }
            }
            _ => {}
        }
    }

    fn start_2xx(&mut self, clock: Clock, key: CallKey, side: Side, msg: Message, to: SocketAddr) {
        let t1 = Duration::from_millis(500);
        if let Some(c) = self.calls.get_mut(&key) {
            c.pending_2xx = Some(Pending2xx {
                side,
                msg,
                to,
                next: clock.now + t1,
                interval: t1,
                deadline: clock.now + t1 * 64,
            });
        }
    }

    fn retransmit_2xx(&mut self, clock: Clock) {
        let mut give_up = Vec::new();
        let mut sends = Vec::new();
        for (key, c) in self.calls.iter_mut() {
            let Some(p) = &mut c.pending_2xx else {
                continue;
            };
            if p.next > clock.now {
                continue;
            }
            if clock.now >= p.deadline {
                give_up.push(*key);
                continue;
            }
            sends.push((p.to, p.msg.clone()));
            p.interval = (p.interval * 2).min(Duration::from_secs(4));
            p.next = clock.now + p.interval;
        }
        for (to, msg) in sends {
            self.ep.send_stateless(to, &msg);
        }
        for key in give_up {
            warn!(call = key, "no ACK for our 2xx; hanging up");
            self.send_bye(clock, key, Side::Caller);
            self.send_bye(clock, key, Side::Callee);
            self.end_call(clock, key, "answered");
        }
    }

    /// Calls whose refresher went silent (RFC 4028 §10): hang both legs up.
    /// Calls nobody answered within `sip.no_answer_seconds`: cancel the ringing phones and
    /// tell the caller 480, as a PBX's no-answer timeout does. (The transaction layer's
    /// Timer B stops at the first 1xx, so without this a call could ring forever.)
    fn expire_unanswered(&mut self, clock: Clock) {
        let unanswered: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.answered() && c.ring_deadline <= clock.now)
            .map(|(k, _)| *k)
            .collect();
        for key in unanswered {
            info!(call = key, "no answer; cancelling the ringing phones");
            self.fail_caller(clock, key, StatusCode::TEMPORARILY_UNAVAILABLE);
            self.cancel_forks(clock, key);
            self.end_call(clock, key, "no-answer");
        }
    }

    fn expire_sessions(&mut self, clock: Clock) {
        let expired: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, c)| c.session_deadline.is_some_and(|d| d <= clock.now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            warn!(
                call = key,
                "session timer expired without a refresh; hanging up"
            );
            self.send_bye(clock, key, Side::Caller);
            self.send_bye(clock, key, Side::Callee);
            self.end_call(clock, key, "answered");
        }
    }

    fn on_ack(&mut self, req: &Request) {
        let Ok(cid) = req.headers.call_id() else {
            return;
        };
        let Some((key, side)) = self.by_call_id.get(cid).copied() else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&key) {
            if c.pending_2xx.as_ref().is_some_and(|p| p.side == side) {
                c.pending_2xx = None;
            }
        }
    }

    fn send_bye(&mut self, clock: Clock, key: CallKey, side: Side) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let peer = call.peer(side);
        let Some(bye) = call.dialog(side).map(|d| d.request(Method::Bye)) else {
            return;
        };
        if let Some(peer) = peer {
            self.send(clock, peer, bye, TxUse::Other);
        }
    }

    fn on_in_dialog(&mut self, clock: Clock, tx: TxId, req: Request) {
        let key_side = req
            .headers
            .call_id()
            .ok()
            .and_then(|cid| self.by_call_id.get(cid).copied());
        let Some((key, side)) = key_side else {
            self.reply(clock, tx, &req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        if let Some(d) = self.calls.get_mut(&key).and_then(|c| c.dialog(side)) {
            if d.on_request(&req).is_err() {
                self.reply(clock, tx, &req, StatusCode::SERVER_INTERNAL_ERROR);
                return;
            }
        }
        if side == Side::Caller && matches!(req.method, Method::Invite | Method::Update) {
            if let Some(c) = self.calls.get_mut(&key) {
                if let Some(se) = c.session_expires {
                    c.session_deadline = Some(clock.now + Duration::from_secs(u64::from(se)));
                }
            }
        }
        match req.method {
            Method::Bye => {
                self.reply(clock, tx, &req, StatusCode::OK);
                self.send_bye(clock, key, side.other());
                self.end_call(clock, key, "answered");
            }
            Method::Invite => self.on_reinvite(clock, key, side, tx, req),
            _ => self.reply(clock, tx, &req, StatusCode::OK),
        }
    }

    fn on_reinvite(&mut self, clock: Clock, key: CallKey, side: Side, tx: TxId, req: Request) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.reinvite.is_some() || call.pending_2xx.is_some() {
            // RFC 3261 §14.2: one INVITE at a time per dialog.
            let mut r = Response::for_request(&req, StatusCode(491), None);
            r.reason = "Request Pending".into();
            self.respond(clock, tx, r);
            return;
        }
        let other = side.other();
        let Some(peer) = call.peer(other) else {
            self.reply(clock, tx, &req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        let Some(mut inv) = call.dialog(other).map(|d| d.request(Method::Invite)) else {
            self.reply(clock, tx, &req, StatusCode::CALL_DOES_NOT_EXIST);
            return;
        };
        call.reinvite = Some(ReInvite {
            from: side,
            server_tx: tx,
            request: req.clone(),
        });
        let contact = self.our_contact(peer);
        inv.headers.push(HeaderName::Contact, contact);
        if !req.body.is_empty() {
            if let Some(body) = self.sdp_for(key, &req.body, other, peer) {
                inv.set_body("application/sdp", body);
            }
        }
        self.send(clock, peer, inv, TxUse::ReInvite { call: key });
    }

    fn on_reinvite_response(&mut self, clock: Clock, key: CallKey, tx: TxId, resp: Response) {
        if resp.status.is_provisional() {
            return;
        }
        self.client_txs.remove(&tx);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(ri) = call.reinvite.take() else {
            return;
        };
        let to_side = ri.from;
        let answering = to_side.other();
        let peer_answering = call.peer(answering);
        let seq = resp.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let ack = match (
            resp.status.is_success(),
            call.dialog(answering),
            peer_answering,
        ) {
            (true, Some(d), Some(peer)) => {
                d.on_refresh_response(&resp);
                Some((d.ack(seq), peer))
            }
            _ => None,
        };
        if let Some((mut ack, peer)) = ack {
            self.add_via(&mut ack, peer);
            ack.headers.set(HeaderName::ContentLength, "0");
            self.ep.send_stateless(peer, &Message::Request(ack));
        }
        let Some(peer) = self.calls.get(&key).and_then(|c| c.peer(to_side)) else {
            return;
        };
        let tag = ri
            .request
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        let mut r = Response::for_request(&ri.request, resp.status, tag.as_deref());
        r.reason = resp.reason.clone();
        let contact = self.our_contact(peer);
        r.headers.push(HeaderName::Contact, contact);
        if !resp.body.is_empty() {
            if let Some(body) = self.sdp_for(key, &resp.body, to_side, peer) {
                r.set_body("application/sdp", body);
            }
        }
        r.headers.push(HeaderName::Server, USER_AGENT);
        if r.body.is_empty() {
            r.headers.set(HeaderName::ContentLength, "0");
        }
        let bytes = Message::Response(r.clone());
        let success = r.status.is_success();
        if let Err(e) = self.ep.respond(clock.now, ri.server_tx, r) {
            debug!(error = %e, "re-INVITE answer not sent");
        }
        if success {
            self.start_2xx(clock, key, to_side, bytes, peer);
        }
    }

    /// Removes a call, frees its media and writes its CDR.
    fn end_call(&mut self, clock: Clock, key: CallKey, disposition: &str) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.by_call_id.remove(&call.call_id);
        self.by_call_id.remove(&call.b_call_id);
        self.server_invites.remove(&call.caller_tx);
        for s in call.media.into_iter().flatten() {
            self.relay.release(s);
        }
        let duration_s = call
            .answer_ms
            .map_or(0.0, |a| (clock.unix_ms - a).max(0) as f64 / 1000.0);
        let disposition = if call.answer_ms.is_some() {
            "answered"
        } else {
            disposition
        };
        info!(call = key, caller = %call.caller, callee = %call.callee, disposition, duration_s, "call ended");
        self.writes.push(Write::EndLiveCall(call.call_id.clone()));
        self.writes.push(Write::Cdr(Cdr {
            call_id: call.call_id,
            caller: call.caller.0,
            callee: call.callee.0,
            start_ms: call.start_ms,
            answer_ms: call.answer_ms,
            end_ms: clock.unix_ms,
            duration_s,
            disposition: disposition.to_owned(),
        }));
        self.update_gauges();
    }

    // ---- instant messages ----

    fn on_message(&mut self, clock: Clock, tx: TxId, from: SocketAddr, req: &Request) {
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

    fn forward_message(&mut self, clock: Clock, msg: &StoredMessage, c: &Contact) {
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

    fn take_from_mailbox(&mut self, recipient: &Extension, id: i64) {
        if let Some(msgs) = self.mailboxes.get_mut(recipient) {
            msgs.retain(|m| m.id != id);
            if msgs.is_empty() {
                self.mailboxes.remove(recipient);
            }
        }
    }

    fn deliver_stored(&mut self, clock: Clock, ext: &Extension) {
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

/// Every response carries a Content-Length (required over TCP) and our Server header.
fn finish_response(mut resp: Response) -> Response {
    if !resp.headers.contains(&HeaderName::ContentLength) && resp.body.is_empty() {
        resp.headers.set(HeaderName::ContentLength, "0");
    }
    resp.headers.push(HeaderName::Server, USER_AGENT);
    resp
}

/// RFC 4028: the session interval to use when the caller supports timers (at least the
/// 90 s minimum), else None.
fn session_expires(req: &Request) -> Option<u32> {
    let supported = req
        .headers
        .option_tags(&HeaderName::Supported)
        .ok()?
        .iter()
        .any(|t| t == "timer");
    if !supported {
        return None;
    }
    let value = req.headers.get_str(&HeaderName::SessionExpires)?;
    let secs: u32 = value.split(';').next()?.trim().parse().ok()?;
    Some(secs.max(90))
}

/// The RTP address an SDP asks for in media section `i`, if it names a real one.
fn media_target(sdp: &Sdp, i: usize) -> Option<SocketAddr> {
    let m = sdp.media.get(i)?;
    let c = sdp.media_connection(i)?;
    if c.is_null() || m.port == 0 {
        return None;
    }
    let ip: IpAddr = c.address.parse().ok()?;
    Some(SocketAddr::new(ip, m.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> Request {
        Request::parse(format!(
            "INVITE sip:202@pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
             From: <sip:201@pbx.local>;tag=a\r\nTo: <sip:202@pbx.local>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        ))
        .unwrap()
    }

    #[test]
    fn session_timer_needs_support_and_respects_the_minimum() {
        assert_eq!(session_expires(&invite("")), None);
        assert_eq!(session_expires(&invite("Session-Expires: 1800\r\n")), None);
        let r = invite("Supported: replaces, timer\r\nSession-Expires: 1800;refresher=uac\r\n");
        assert_eq!(session_expires(&r), Some(1800));
        let r = invite("Supported: timer\r\nSession-Expires: 30\r\n");
        assert_eq!(session_expires(&r), Some(90));
    }

    #[test]
    fn registry_expires_and_replaces_contacts() {
        let mut reg = Registry::default();
        let ext = Extension("201".into());
        let b = |contact: &str, exp| Binding {
            extension: ext.clone(),
            contact: contact.into(),
            source: "192.0.2.1:5060".into(),
            transport: "udp".into(),
            expires_at: exp,
            call_id: "c".into(),
            cseq: 1,
        };
        assert!(
            reg.insert(b("sip:201@192.0.2.1", 100)),
            "a new binding is news"
        );
        assert!(!reg.insert(b("sip:201@192.0.2.1", 200)), "a refresh is not");
        assert!(reg.insert(b("sip:201@192.0.2.9", 150)));
        assert_eq!(reg.count(), 2);
        let mut moved = b("sip:201@192.0.2.9", 150);
        moved.source = "192.0.2.2:5060".into();
        assert!(reg.insert(moved), "a binding from another address is news");
        assert_eq!(reg.count(), 2);
        assert_eq!(reg.contacts(&ext, 120).len(), 2);
        assert!(reg.expire(160));
        assert_eq!(reg.count(), 1);
        assert_eq!(reg.contacts(&ext, 0)[0].expires_at, 200);
        reg.remove(&ext, Some("sip:201@192.0.2.7"));
        assert_eq!(reg.count(), 1);
        reg.remove(&ext, None);
        assert_eq!(reg.count(), 0);
    }

    /// A core on a fresh database with extensions 201 and 202. Tests drive it without a
    /// flush to see what it does before a batch's writes are committed.
    struct Rig {
        pbx: Pbx,
        dir: std::path::PathBuf,
        clock: Clock,
        cseq: u32,
        /// The last authenticated request sent, to resend.
        last_authenticated: Bytes,
    }

    impl Rig {
        fn new(name: &str) -> Rig {
            let dir = std::env::temp_dir()
                .join(format!("kentongan-pbx-core-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let db = dir.join("pbx.db");
            let config = Config::from_toml(&format!(
                "[sip]\ndomain = \"pbx.local\"\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                 [rtp]\nports = \"40000-40099\"\n[storage]\ndatabase = \"{}\"\n\
                 [metrics]\nlisten = \"127.0.0.1:0\"\n",
                db.display()
            ))
            .unwrap();
            let store = Store::open(&db).unwrap();
            for ext in ["201", "202"] {
                let e = Extension::parse(ext).unwrap();
                store
                    .add_user(&e, ext, "pbx.local", &format!("pw-of-{ext}"))
                    .unwrap();
            }
            drop(store);
            let clock = Clock {
                now: Instant::now(),
                unix_ms: 1_800_000_000_000,
            };
            let pbx = Rig::start(config, clock);
            Rig {
                pbx,
                dir,
                clock,
                cseq: 0,
                last_authenticated: Bytes::new(),
            }
        }

        /// A core on the database `config` names, as the daemon starts one.
        fn start(config: Config, clock: Clock) -> Pbx {
            let store = Store::open(&config.database).unwrap();
            Pbx::new(PbxInit {
                config,
                store,
                metrics: Arc::default(),
                secret: [7; 32],
                seed: 1,
                clock,
            })
            .unwrap()
        }

        /// What is committed survives: a new core on the same database, as after `kill -9`.
        fn restart(&mut self) {
            self.pbx.flush(self.clock).unwrap();
            let config = self.pbx.config.clone();
            self.pbx = Rig::start(config, self.clock);
        }

        fn phone(ext: &str) -> SocketAddr {
            format!("127.0.0.{}:5070", &ext[2..]).parse().unwrap()
        }

        /// Sends `method` from `ext`'s phone, answers the challenge, and returns everything
        /// the core sent after the authenticated request.
        fn send(&mut self, ext: &str, method: &str, to: &str, extra: &str) -> Vec<Transmit> {
            let phone = Rig::phone(ext);
            let uri = format!("sip:{to}@pbx.local");
            let call_id = format!("{ext}-{method}-{}", self.cseq);
            let mut auth = String::new();
            for round in 0..2 {
                self.cseq += 1;
                let text = format!(
                    "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {phone};branch=z9hG4bK{}{round}\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:{ext}@pbx.local>;tag=t{ext}\r\n\
                     To: <sip:{to}@pbx.local>\r\nCall-ID: {call_id}\r\nCSeq: {} {method}\r\n\
                     Contact: <sip:{ext}@{phone}>\r\n{auth}{extra}",
                    self.cseq, self.cseq
                );
                let text = Bytes::from(text);
                if round == 1 {
                    self.last_authenticated = text.clone();
                }
                self.pbx.handle_datagram_bytes(self.clock, phone, text);
                let sent: Vec<Transmit> = std::iter::from_fn(|| self.pbx.poll_transmit()).collect();
                if round == 1 {
                    return sent;
                }
                let challenge = sent
                    .iter()
                    .filter_map(|t| Response::parse(t.bytes.clone()).ok())
                    .find_map(|r| {
                        let (name, header) = match r.status.0 {
                            401 => ("Authorization", HeaderName::WwwAuthenticate),
                            407 => ("Proxy-Authorization", HeaderName::ProxyAuthenticate),
                            _ => return None,
                        };
                        let ch = kentongan_sip::auth::Challenge::parse(r.headers.get_str(&header)?)
                            .ok()?;
                        Some((name, ch))
                    })
                    .expect("a challenge");
                let creds = kentongan_sip::auth::respond(
                    &challenge.1,
                    ext,
                    &format!("pw-of-{ext}"),
                    &method.parse::<Method>().unwrap(),
                    &uri,
                    "c0ffee",
                    1,
                );
                auth = format!("{}: {creds}\r\n", challenge.0);
            }
            unreachable!()
        }

        fn register(&mut self, ext: &str) -> Vec<Transmit> {
            self.send(
                ext,
                "REGISTER",
                ext,
                "Expires: 600\r\nContent-Length: 0\r\n\r\n",
            )
        }

        fn message(&mut self, from: &str, to: &str, text: &str) -> Vec<Transmit> {
            let extra = format!(
                "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
            self.send(from, "MESSAGE", to, &extra)
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn stored_messages_survive_a_restart_and_are_delivered_in_order() {
        let mut b = Rig::new("restart");
        b.message("201", "202", "first");
        b.message("201", "202", "second");
        b.restart();
        let phone = Rig::phone("202");
        let sent = b.register("202");
        let bodies: Vec<Vec<u8>> = requests_to(&sent, phone, "MESSAGE")
            .iter()
            .map(|m| m.body.to_vec())
            .collect();
        assert_eq!(bodies, [b"first".to_vec(), b"second".to_vec()]);
    }

    #[test]
    fn a_resend_that_outlives_its_transaction_is_rechallenged_not_a_password_failure() {
        let mut b = Rig::new("resend");
        let phone = Rig::phone("201");
        let sent = b.register("201");
        assert!(sent.iter().any(|t| t.bytes.starts_with(b"SIP/2.0 200")));
        b.pbx.flush(b.clock).unwrap();
        // Timer J has gone (or a storm evicted the entry): the phone resends, again and
        // again, more often than the shield forgives wrong passwords.
        b.clock.now += Duration::from_secs(33);
        b.pbx.handle_timeout(b.clock);
        let resend = b.last_authenticated.clone();
        for _ in 0..30 {
            b.pbx.handle_datagram_bytes(b.clock, phone, resend.clone());
            let answers: Vec<Transmit> = std::iter::from_fn(|| b.pbx.poll_transmit()).collect();
            let resp = answers
                .iter()
                .find_map(|t| Response::parse(t.bytes.clone()).ok())
                .expect("an answer");
            assert_eq!(resp.status.0, 401);
            let challenge = resp.headers.get_str(&HeaderName::WwwAuthenticate).unwrap();
            assert!(
                challenge.to_ascii_lowercase().contains("stale=true"),
                "{challenge}"
            );
        }
        assert_eq!(b.pbx.shield.active_bans(), 0, "the phone was banned");
        assert_eq!(b.pbx.metrics.auth_failures.load(Ordering::Relaxed), 0);
    }

    fn requests_to(sent: &[Transmit], to: SocketAddr, method: &str) -> Vec<Request> {
        sent.iter()
            .filter(|t| t.to == to)
            .filter_map(|t| Request::parse(t.bytes.clone()).ok())
            .filter(|r| r.method.as_str() == method)
            .collect()
    }

    #[test]
    fn a_message_stored_moments_before_its_recipient_registers_is_delivered_once() {
        let mut b = Rig::new("mailbox");
        let sent = b.message("201", "202", "lunch?");
        assert!(
            sent.iter()
                .filter_map(|t| Response::parse(t.bytes.clone()).ok())
                .any(|r| r.status.0 == 202),
            "the message is accepted for an offline extension"
        );
        // No flush: its write is not in the database yet when 202 registers.
        let phone = Rig::phone("202");
        let sent = b.register("202");
        let delivered = requests_to(&sent, phone, "MESSAGE");
        assert_eq!(delivered.len(), 1, "delivered on registration");
        assert_eq!(&delivered[0].body[..], b"lunch?");

        // The phone takes it; registering again (still unflushed) must not deliver it again.
        let ok = Response::for_request(&delivered[0], StatusCode::OK, Some("p"));
        b.pbx.handle_datagram_bytes(b.clock, phone, ok.to_bytes());
        let _ = std::iter::from_fn(|| b.pbx.poll_transmit()).count();
        let sent = b.register("202");
        assert!(requests_to(&sent, phone, "MESSAGE").is_empty());

        // And what is committed agrees: stored, then deleted.
        b.pbx.flush(b.clock).unwrap();
        assert!(b.pbx.store.messages().unwrap().is_empty());
    }
}
