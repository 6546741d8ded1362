//! The transaction layer (RFC 3261 §17, RFC 6026) as a sans-IO state machine.
//!
//! [`Endpoint`] is fed datagrams and time and is drained for datagrams to send, the next
//! wake-up time and events. It never reads a clock, touches a socket or draws randomness of
//! its own: ids come from a generator seeded through [`Config::seed`].

use std::collections::{BTreeSet, VecDeque};

// Hashed with a per-process random seed, at a fraction of SipHash's cost: these maps are
// touched several times for every message a registrar handles.
use foldhash::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::{Limits, Message, Request, Response, StatusCode};
use crate::params::Params;
use crate::types::{Method, Transport, Via, BRANCH_MAGIC};
use crate::uri::Host;
use crate::ParseError;

/// Timer values and identity of the endpoint.
#[derive(Debug, Clone)]
pub struct Config {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Address written into Via sent-by of requests we originate.
    pub local_addr: SocketAddr,
    /// Transport named in the Via that [`Endpoint::send_request`] adds to a request without
    /// one. Whether a transaction retransmits is decided per transaction from the transport
    /// in its top Via (see [`Transport::is_reliable`]), so one endpoint serves UDP, TCP and
    /// TLS peers alike.
    pub transport: Transport,
    /// Seed for branch, tag and Call-ID generation.
    pub seed: u64,
    pub limits: Limits,
    /// Completed non-INVITE server transactions over UDP kept for Timer J, at most. Beyond
    /// it the oldest are forgotten early, and a retransmission of one is handled as a new
    /// request. A registrar keeps 64*T1 of them, about 650 bytes each: without a bound a
    /// storm of 30,000 REGISTERs a second held 600 MB. The default (about 170 MB) still
    /// absorbs the first four retransmissions (7.5 s) of such a storm, and all 32 s below
    /// 8,000 requests a second.
    pub max_completed: usize,
}

impl Config {
    pub fn new(local_addr: SocketAddr, seed: u64) -> Config {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            local_addr,
            transport: Transport::Udp,
            seed,
            limits: Limits::default(),
            max_completed: 262_144,
        }
    }
}

/// Identifies a transaction for the lifetime of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Bytes,
}

/// What happened, for the transaction user (dialog/call layer) to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum SipEvent {
    /// A new request (not a retransmission). Answer it with [`Endpoint::respond`].
    /// For CANCEL, `cancels` names the INVITE transaction it matches, if any.
    Request {
        tx: TxId,
        from: SocketAddr,
        request: Request,
        cancels: Option<TxId>,
    },
    /// An ACK for a 2xx: it belongs to the dialog, not to a transaction.
    Ack { from: SocketAddr, request: Request },
    /// A response to one of our client transactions (retransmitted 2xx to INVITE included,
    /// since the TU must re-ACK them).
    Response { tx: TxId, response: Response },
    /// A transaction failed for lack of an answer: Timer B or F (client: no final response
    /// arrived) or Timer H (server INVITE: no ACK came for our non-2xx final response).
    Timeout { tx: TxId },
    /// A datagram that did not parse. `from` lets the daemon count or ban the source.
    Malformed { from: SocketAddr, error: ParseError },
    /// A transaction ended and its id will not be used again.
    Terminated { tx: TxId },
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no such transaction")]
    UnknownTransaction,
    #[error("transaction already has a final response")]
    AlreadyFinal,
    #[error("ACK is not sent in a transaction; use send_stateless")]
    AckNotATransaction,
    #[error("invalid message: {0}")]
    Invalid(#[from] ParseError),
    #[error("only INVITE transactions can be cancelled")]
    NotInvite,
    #[error("only a final response to a non-INVITE request can be sent statelessly")]
    NotStateless,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    /// A/E/G: retransmission.
    Retransmit,
    /// B/F/H/L/M: give up or clean up.
    Timeout,
    /// D/I/J/K: linger to absorb retransmissions.
    Linger,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ServerKey {
    Branch {
        branch: String,
        sent_by: String,
        method: Method,
    },
    /// RFC 2543 fallback (§17.2.3) for requests without a magic-cookie branch: Request-URI,
    /// To tag, From tag, Call-ID, CSeq number and top Via, plus the method (ACK and CANCEL
    /// look up their INVITE). An ACK carries the To tag of the response it acknowledges,
    /// which is why a non-2xx final also registers the key with that tag (`ack_key`).
    /// Boxed: rare, and six times the size of a branch key in every index entry.
    Legacy(Box<LegacyKey>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LegacyKey {
    request_uri: String,
    to_tag: String,
    from_tag: String,
    call_id: String,
    cseq: u32,
    via: String,
    method: Method,
}

impl ServerKey {
    /// For an RFC 2543 INVITE transaction, the key its ACK matches once a final response
    /// with To tag `to_tag` was sent; `None` for RFC 3261 keys (the ACK has the branch).
    fn for_ack(&self, to_tag: &str) -> Option<ServerKey> {
        let ServerKey::Legacy(key) = self else {
            return None;
        };
        let mut key = key.clone();
        key.to_tag = to_tag.to_owned();
        Some(ServerKey::Legacy(key))
    }
}

#[derive(Debug)]
struct Tx {
    server: bool,
    method: Method,
    state: State,
    peer: SocketAddr,
    /// Client: the request (retransmitted, cancelled, ACKed). Server: none; retransmissions
    /// are matched by key and answered from `last`, so a server transaction keeps no copy
    /// (a busy registrar keeps 64*T1 of them).
    request: Option<Box<Request>>,
    /// Server: last response sent (resent on retransmissions). Client: the ACK for a
    /// non-2xx final.
    last: Option<Bytes>,
    interval: Duration,
    timers: Vec<(TimerKind, Instant)>,
    /// The instants of `timers` as entered in [`Endpoint::schedule`].
    armed: Vec<Instant>,
    server_key: Option<ServerKey>,
    /// RFC 2543 INVITE server transactions: the key the ACK for our non-2xx final matches.
    ack_key: Option<ServerKey>,
    client_key: Option<(String, Method)>,
    /// Whether the top Via names a reliable transport: then nothing is retransmitted
    /// (Timers A, E, G) and nothing lingers (Timers D, I, J, K are zero), RFC 3261 §17.
    reliable: bool,
}

/// The transaction layer of one SIP endpoint on one transport.
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    rng: SplitMix64,
    next_id: u64,
    txs: HashMap<TxId, Tx>,
    /// Every armed timer, ordered: `poll_timeout` and `handle_timeout` stay O(log n) however
    /// many transactions linger (a busy registrar keeps 64*T1 worth of them).
    schedule: BTreeSet<(Instant, TxId)>,
    server_index: HashMap<ServerKey, TxId>,
    /// Non-INVITE server transactions over UDP after their final response (RFC 3261
    /// §17.2.2 Completed): all Timer J still needs is the key, the response to resend and
    /// when to forget them, so they leave `txs` for this map (a registrar keeps 64*T1 of
    /// them: at 10,000 REGISTERs a second, 320,000). A retransmission is answered from here.
    completed: HashMap<Arc<ServerKey>, Bytes>,
    /// The keys of `completed` with their Timer J deadlines, oldest first: Timer J is the
    /// same for all of them, so completion order is deadline order and no schedule is needed.
    completed_until: VecDeque<(Instant, Arc<ServerKey>)>,
    client_index: HashMap<(String, Method), TxId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SipEvent>,
}

impl Endpoint {
    pub fn new(config: Config) -> Endpoint {
        Endpoint {
            rng: SplitMix64(config.seed),
            config,
            next_id: 1,
            txs: HashMap::default(),
            schedule: BTreeSet::new(),
            server_index: HashMap::default(),
            completed: HashMap::default(),
            completed_until: VecDeque::new(),
            client_index: HashMap::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of live transactions, those lingering in Completed included.
    pub fn transactions(&self) -> usize {
        self.txs.len() + self.completed.len()
    }

    /// A fresh branch with the RFC 3261 magic cookie.
    pub fn new_branch(&mut self) -> String {
        format!("{BRANCH_MAGIC}{:016x}", self.rng.next_u64())
    }

    /// A fresh From/To tag.
    pub fn new_tag(&mut self) -> String {
        format!("{:08x}", self.rng.next_u64() as u32)
    }

    /// A fresh Call-ID.
    pub fn new_call_id(&mut self) -> String {
        format!(
            "{:016x}{:08x}",
            self.rng.next_u64(),
            self.rng.next_u64() as u32
        )
    }

    // ---- output ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SipEvent> {
        self.events.pop_front()
    }

    /// The earliest timer of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let scheduled = self.schedule.first().map(|(at, _)| *at);
        let completed = self.completed_until.front().map(|(at, _)| *at);
        match (scheduled, completed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- input ----

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.handle_bytes(now, from, Bytes::copy_from_slice(bytes));
    }

    /// [`Endpoint::handle_datagram`] for a message the driver holds as `Bytes` already:
    /// parsed in place, not copied.
    pub fn handle_bytes(&mut self, now: Instant, from: SocketAddr, bytes: Bytes) {
        match Message::parse_with_limits(bytes, &self.config.limits) {
            Ok(Message::Request(r)) => self.on_request(now, from, r),
            Ok(Message::Response(r)) => self.on_response(now, r),
            Err(ParseError::Empty) => {} // keep-alive
            Err(error) => self.events.push_back(SipEvent::Malformed { from, error }),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // Timer J of completed non-INVITE server transactions.
        while let Some((at, key)) = self.completed_until.front() {
            if *at > now {
                break;
            }
            self.completed.remove(key);
            self.completed_until.pop_front();
        }
        let mut due: Vec<TxId> = Vec::new();
        for (_, id) in self.schedule.range(..=(now, TxId(u64::MAX))) {
            if !due.contains(id) {
                due.push(*id);
            }
        }
        for id in due {
            while let Some((kind, at)) = self.txs.get_mut(&id).and_then(|tx| {
                let pos = tx.timers.iter().position(|(_, at)| *at <= now)?;
                Some(tx.timers.remove(pos))
            }) {
                self.fire(id, kind, at);
            }
            self.rearm(id);
        }
    }

    /// Re-enters a transaction's timers in the schedule after they changed.
    fn rearm(&mut self, id: TxId) {
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        for at in t.armed.drain(..) {
            self.schedule.remove(&(at, id));
        }
        t.armed = t.timers.iter().map(|(_, at)| *at).collect();
        for at in &t.armed {
            self.schedule.insert((*at, id));
        }
    }

    // ---- commands ----

    /// Starts a client transaction sending `req` to `to`. A top Via is added (with a fresh
    /// branch) unless the request already has one with an RFC 3261 branch.
    pub fn send_request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        mut req: Request,
    ) -> Result<TxId, SendError> {
        if req.method == Method::Ack {
            return Err(SendError::AckNotATransaction);
        }
        let (branch, reliable) = match req.headers.top_via() {
            Ok(v) if v.has_rfc3261_branch() => (
                v.branch().unwrap_or_default().to_owned(),
                v.transport.is_reliable(),
            ),
            _ => {
                let branch = self.new_branch();
                let via = self.local_via(&branch);
                req.headers.push_front(HeaderName::Via, via.to_string());
                (branch, via.transport.is_reliable())
            }
        };
        if !req.headers.contains(&HeaderName::MaxForwards) {
            req.headers.push(HeaderName::MaxForwards, "70");
        }
        let bytes = req.to_bytes();
        // Validate what we are about to send with the same parser peers will use.
        Message::parse(bytes.clone())?;
        let id = self.alloc();
        let t1 = self.config.t1;
        let mut timers = vec![(TimerKind::Timeout, now + t1 * 64)];
        if !reliable {
            timers.push((TimerKind::Retransmit, now + t1));
        }
        let method = req.method.clone();
        let state = if method == Method::Invite {
            State::Calling
        } else {
            State::Trying
        };
        self.client_index
            .insert((branch.clone(), method.clone()), id);
        self.txs.insert(
            id,
            Tx {
                server: false,
                method: method.clone(),
                state,
                peer: to,
                request: Some(Box::new(req)),
                last: None,
                interval: t1,
                timers,
                armed: Vec::new(),
                server_key: None,
                ack_key: None,
                client_key: Some((branch, method)),
                reliable,
            },
        );
        self.transmits.push_back(Transmit { to, bytes });
        self.rearm(id);
        Ok(id)
    }

    /// Builds and sends a CANCEL for client INVITE transaction `invite` (RFC 3261 §9.1).
    pub fn cancel(&mut self, now: Instant, invite: TxId) -> Result<TxId, SendError> {
        let tx = self.txs.get(&invite).ok_or(SendError::UnknownTransaction)?;
        if tx.server || tx.method != Method::Invite {
            return Err(SendError::NotInvite);
        }
        let orig = tx.request.as_ref().ok_or(SendError::UnknownTransaction)?;
        let mut c = Request::new(Method::Cancel, orig.uri.clone());
        for h in orig.headers.iter() {
            if h.name == HeaderName::Via {
                c.headers.push(HeaderName::Via, h.value.clone());
                break;
            }
        }
        for name in [
            HeaderName::Route,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            for v in orig.headers.get_all(&name) {
                c.headers.push(name.clone(), v.clone());
            }
        }
        let seq = orig.headers.cseq()?.seq;
        c.headers.push(HeaderName::CSeq, format!("{seq} CANCEL"));
        let peer = tx.peer;
        self.send_request(now, peer, c)
    }

    /// Sends a message outside any transaction (ACK for 2xx, stateless replies).
    pub fn send_stateless(&mut self, to: SocketAddr, msg: &Message) {
        self.transmits.push_back(Transmit {
            to,
            bytes: msg.to_bytes(),
        });
    }

    /// Sends `resp` in server transaction `tx`. Responses go back to the request's source
    /// address and port (RFC 3581 symmetric response routing), which is what makes phones
    /// behind NAT work.
    pub fn respond(&mut self, now: Instant, tx: TxId, resp: Response) -> Result<(), SendError> {
        let t = self.txs.get_mut(&tx).ok_or(SendError::UnknownTransaction)?;
        if !t.server {
            return Err(SendError::UnknownTransaction);
        }
        if !matches!(t.state, State::Trying | State::Proceeding) {
            return Err(SendError::AlreadyFinal);
        }
        let bytes = resp.to_bytes();
        let reliable = t.reliable;
        let t1 = self.config.t1;
        t.last = Some(bytes.clone());
        let status = resp.status;
        if status.is_provisional() {
            t.state = State::Proceeding;
        } else if t.method == Method::Invite && status.is_success() {
            // RFC 6026: stay Accepted for Timer L to absorb INVITE retransmissions; the TU
            // retransmits the 2xx itself until the ACK arrives.
            t.state = State::Accepted;
            t.timers = vec![(TimerKind::Timeout, now + t1 * 64)];
        } else if t.method == Method::Invite {
            t.state = State::Completed;
            t.interval = t1;
            t.timers = vec![(TimerKind::Timeout, now + t1 * 64)];
            if !reliable {
                t.timers.push((TimerKind::Retransmit, now + t1));
            }
            // An RFC 2543 ACK carries the To tag of this response (§17.2.3).
            let to_tag = resp.headers.to().ok();
            let to_tag = to_tag.as_ref().and_then(|to| to.tag()).unwrap_or("");
            if let Some(key) = t.server_key.as_ref().and_then(|k| k.for_ack(to_tag)) {
                if Some(&key) != t.server_key.as_ref() {
                    self.server_index.insert(key.clone(), tx);
                    t.ack_key = Some(key);
                }
            }
        } else if !reliable {
            let to = t.peer;
            self.transmits.push_back(Transmit {
                to,
                bytes: bytes.clone(),
            });
            self.complete_non_invite_server(now + t1 * 64, tx, bytes);
            return Ok(());
        } else {
            // Timer J is zero over a reliable transport: nothing lingers.
            t.state = State::Completed;
            t.timers = vec![(TimerKind::Linger, now)];
        }
        let to = t.peer;
        self.transmits.push_back(Transmit { to, bytes });
        self.rearm(tx);
        Ok(())
    }

    /// Moves a non-INVITE server transaction whose final response `last` was just sent into
    /// `completed` until `until` (Timer J). For the TU it has ended.
    fn complete_non_invite_server(&mut self, until: Instant, tx: TxId, last: Bytes) {
        let Some(key) = self.txs.get_mut(&tx).and_then(|t| t.server_key.take()) else {
            return;
        };
        self.server_index.remove(&key);
        self.terminate(tx);
        let key = Arc::new(key);
        self.completed.insert(key.clone(), last);
        self.completed_until.push_back((until, key));
        while self.completed_until.len() > self.config.max_completed {
            if let Some((_, oldest)) = self.completed_until.pop_front() {
                self.completed.remove(&oldest);
            }
        }
    }

    /// Sends final response `resp` in non-INVITE server transaction `tx` and forgets the
    /// transaction at once: RFC 3261 §8.2.7's stateless UAS, meant for challenges. A
    /// retransmission of the request is then a new request and is simply challenged again,
    /// and a registration storm keeps no state, and no 64*T1 of memory, for its 401s.
    pub fn respond_stateless(&mut self, tx: TxId, resp: Response) -> Result<(), SendError> {
        let t = self.txs.get(&tx).ok_or(SendError::UnknownTransaction)?;
        if !t.server {
            return Err(SendError::UnknownTransaction);
        }
        if !matches!(t.state, State::Trying | State::Proceeding) {
            return Err(SendError::AlreadyFinal);
        }
        if t.method == Method::Invite || resp.status.is_provisional() {
            return Err(SendError::NotStateless);
        }
        let to = t.peer;
        self.transmits.push_back(Transmit {
            to,
            bytes: resp.to_bytes(),
        });
        self.terminate(tx);
        Ok(())
    }

    // ---- internals ----

    fn alloc(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn local_via(&self, branch: &str) -> Via {
        let mut params = Params::new();
        params.set("branch", Some(branch));
        params.set("rport", None);
        Via {
            transport: self.config.transport.clone(),
            host: Host::from(self.config.local_addr.ip()),
            port: Some(self.config.local_addr.port()),
            params,
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, mut req: Request) {
        // Matched on the Via as sent, before received/rport are added.
        let Some(TopVia {
            key,
            reliable,
            stamped,
        }) = top_via(&req, from)
        else {
            self.events.push_back(SipEvent::Malformed {
                from,
                error: ParseError::Missing("Via"),
            });
            return;
        };
        if let Some(last) = self.completed.get(&key) {
            // A retransmission of a request we have answered: the answer again (§17.2.2).
            self.transmits.push_back(Transmit {
                to: from,
                bytes: last.clone(),
            });
            return;
        }
        req.headers.set_top_via_text(stamped);
        if let Some(id) = self.server_index.get(&key).copied() {
            self.on_server_retransmission(now, id, &req, from);
            self.rearm(id);
            return;
        }
        if req.method == Method::Ack {
            // No INVITE transaction in Completed: an ACK for a 2xx, for the dialog layer.
            self.events.push_back(SipEvent::Ack { from, request: req });
            return;
        }
        let cancels = if req.method == Method::Cancel {
            let mut k = key.clone();
            match &mut k {
                ServerKey::Branch { method, .. } => *method = Method::Invite,
                ServerKey::Legacy(key) => key.method = Method::Invite,
            }
            self.server_index.get(&k).copied()
        } else {
            None
        };
        let id = self.alloc();
        let method = req.method.clone();
        let state = if method == Method::Invite {
            State::Proceeding
        } else {
            State::Trying
        };
        self.server_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                server: true,
                method: method.clone(),
                state,
                peer: from,
                request: None,
                last: None,
                interval: self.config.t1,
                timers: Vec::new(),
                armed: Vec::new(),
                server_key: Some(key),
                ack_key: None,
                client_key: None,
                reliable,
            },
        );
        if method == Method::Invite {
            // Answer at once so the caller stops retransmitting (RFC 3261 §17.2.1).
            let trying = Response::for_request(&req, StatusCode::TRYING, None);
            let _ = self.respond(now, id, trying);
        }
        self.events.push_back(SipEvent::Request {
            tx: id,
            from,
            request: req,
            cancels,
        });
    }

    fn on_server_retransmission(
        &mut self,
        now: Instant,
        id: TxId,
        req: &Request,
        from: SocketAddr,
    ) {
        let t4 = self.config.t4;
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = t.reliable;
        if req.method == Method::Ack {
            if t.state == State::Completed {
                t.state = State::Confirmed;
                let linger = if reliable { Duration::ZERO } else { t4 };
                t.timers = vec![(TimerKind::Linger, now + linger)];
            }
            return;
        }
        if let Some(last) = &t.last {
            if matches!(t.state, State::Proceeding | State::Completed) {
                self.transmits.push_back(Transmit {
                    to: from,
                    bytes: last.clone(),
                });
            }
        }
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        let Ok(via) = resp.headers.top_via() else {
            return;
        };
        let Ok(cseq) = resp.headers.cseq() else {
            return;
        };
        let Some(branch) = via.branch() else { return };
        let Some(id) = self
            .client_index
            .get(&(branch.to_owned(), cseq.method.clone()))
            .copied()
        else {
            return; // stray response
        };
        self.on_client_response(now, id, resp);
        self.rearm(id);
    }

    fn on_client_response(&mut self, now: Instant, id: TxId, resp: Response) {
        let t1 = self.config.t1;
        let t4 = self.config.t4;
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = t.reliable;
        let status = resp.status;
        let invite = t.method == Method::Invite;
        match (t.state, status.is_provisional(), status.is_success()) {
            (State::Calling | State::Trying | State::Proceeding, true, _) => {
                if t.state == State::Calling {
                    // Timers A and B run in Calling only (§17.1.1.2): a callee may ring for
                    // longer than 64*T1; giving up is the TU's decision (CANCEL).
                    t.timers.clear();
                }
                if t.state == State::Trying && !reliable {
                    // Timer E continues, now at T2 (RFC 3261 §17.1.2.2).
                    t.interval = self.config.t2;
                }
                t.state = State::Proceeding;
            }
            (State::Calling | State::Proceeding, false, true) if invite => {
                t.state = State::Accepted;
                t.timers = vec![(TimerKind::Timeout, now + t1 * 64)];
            }
            (State::Accepted, false, true) => {} // 2xx retransmission: TU re-ACKs
            (State::Calling | State::Proceeding, false, false) if invite => {
                let Some(ack) = t.request.as_ref().map(|r| build_ack(r, &resp)) else {
                    return;
                };
                let bytes = ack.to_bytes();
                t.last = Some(bytes.clone());
                t.state = State::Completed;
                let linger = if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                t.timers = vec![(TimerKind::Linger, now + linger)];
                let to = t.peer;
                self.transmits.push_back(Transmit { to, bytes });
            }
            (State::Completed, false, false) if invite => {
                // Retransmitted final: our ACK was lost.
                if let Some(ack) = t.last.clone() {
                    let to = t.peer;
                    self.transmits.push_back(Transmit { to, bytes: ack });
                }
                return;
            }
            (State::Trying | State::Proceeding, false, _) => {
                t.state = State::Completed;
                let linger = if reliable { Duration::ZERO } else { t4 };
                t.timers = vec![(TimerKind::Linger, now + linger)];
            }
            _ => return, // retransmission of something already reported
        }
        self.events.push_back(SipEvent::Response {
            tx: id,
            response: resp,
        });
    }

    fn fire(&mut self, id: TxId, kind: TimerKind, at: Instant) {
        let t2 = self.config.t2;
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        match kind {
            TimerKind::Retransmit => {
                let resend = match (t.server, t.state) {
                    (false, State::Calling | State::Trying | State::Proceeding) => {
                        t.request.as_deref().map(Request::to_bytes)
                    }
                    (true, State::Completed) => t.last.clone(),
                    _ => None,
                };
                if let Some(bytes) = resend {
                    self.transmits.push_back(Transmit { to: t.peer, bytes });
                    // INVITE client retransmissions keep doubling (Timer A); the others are
                    // capped at T2 (Timers E and G).
                    let next = if !t.server && t.method == Method::Invite {
                        t.interval * 2
                    } else {
                        (t.interval * 2).min(t2)
                    };
                    if t.state == State::Proceeding && !t.server {
                        t.interval = t2;
                    } else {
                        t.interval = next;
                    }
                    t.timers.push((TimerKind::Retransmit, at + t.interval));
                }
            }
            TimerKind::Timeout => {
                let timed_out = if t.server {
                    // Timer H: the ACK for our non-2xx final never came (§17.2.1).
                    t.state == State::Completed
                } else {
                    matches!(t.state, State::Calling | State::Trying | State::Proceeding)
                };
                if timed_out {
                    self.events.push_back(SipEvent::Timeout { tx: id });
                }
                self.terminate(id);
            }
            TimerKind::Linger => self.terminate(id),
        }
    }

    fn terminate(&mut self, id: TxId) {
        if let Some(mut t) = self.txs.remove(&id) {
            t.state = State::Terminated;
            for at in t.armed.drain(..) {
                self.schedule.remove(&(at, id));
            }
            for k in [t.server_key, t.ack_key].into_iter().flatten() {
                self.server_index.remove(&k);
            }
            if let Some(k) = t.client_key {
                self.client_index.remove(&k);
            }
            self.events.push_back(SipEvent::Terminated { tx: id });
        }
    }
}

/// What a request's top Via tells the transaction layer.
struct TopVia {
    key: ServerKey,
    /// The top Via names a reliable transport.
    reliable: bool,
    /// The top Via with `received` and a filled-in `rport` (RFC 3261 §18.2.1, RFC 3581 §4):
    /// where the request really came from.
    stamped: String,
}

/// Reads the top Via of `req` received from `from`. RFC 3261 requests are read from the
/// borrowed parse (every request pays for this, so no owned `Via` is built); RFC 2543 ones
/// (no magic cookie) take the owned path their longer key needs anyway.
fn top_via(req: &Request, from: SocketAddr) -> Option<TopVia> {
    use crate::text::{decimal, ipv4};
    let first = req.headers.get_str(&HeaderName::Via)?;
    let text = crate::text::Commas::new(first).next()?.ok()?;
    let via = crate::types::ViaRef::parse(text).ok()?;
    let mut branch = None;
    crate::params::scan(via.params, true, |name, value| {
        if branch.is_none() && name.eq_ignore_ascii_case("branch") {
            branch = value;
        }
    })
    .ok()?;
    let Some(branch) =
        branch.filter(|b| b.len() > BRANCH_MAGIC.len() && b.starts_with(BRANCH_MAGIC))
    else {
        let mut owned = Via::parse(text).ok()?;
        let (key, reliable) = server_key(req, &owned)?;
        owned
            .params
            .set("received", Some(&crate::text::ip_text(from.ip())));
        if owned.params.contains("rport") {
            let mut port = String::with_capacity(5);
            crate::text::push_decimal(&mut port, u32::from(from.port()));
            owned.params.set("rport", Some(&port));
        }
        return Some(TopVia {
            key,
            reliable,
            stamped: owned.to_text(),
        });
    };
    let transport = Transport::parse(via.transport);
    let reliable = transport.is_reliable();
    let method = match req.method {
        Method::Ack => Method::Invite,
        ref m => m.clone(),
    };
    let mut head = String::with_capacity(text.len() + 40);
    head.push_str("SIP/2.0/");
    head.push_str(transport.as_str());
    head.push(' ');
    let _ = via.host.write_to(&mut head);
    if let Some(p) = via.port {
        head.push(':');
        head.push_str(decimal(u64::from(p), &mut [0; 20]));
    }
    let key = ServerKey::Branch {
        branch: branch.to_owned(),
        sent_by: head["SIP/2.0/ ".len() + transport.as_str().len()..].to_owned(),
        method,
    };
    // The parameters as written, received and rport filled in where they stand (as
    // `Params::set` would), received appended when absent.
    let received = match from.ip() {
        std::net::IpAddr::V4(a) => ipv4(a, &mut [0; 15]).to_owned(),
        ip => ip.to_string(),
    };
    let mut stamped = head;
    let (mut saw_received, mut saw_rport) = (false, false);
    crate::params::scan(via.params, true, |name, value| {
        stamped.push(';');
        stamped.push_str(name);
        if !saw_received && name.eq_ignore_ascii_case("received") {
            saw_received = true;
            stamped.push('=');
            stamped.push_str(&received);
        } else if !saw_rport && name.eq_ignore_ascii_case("rport") {
            saw_rport = true;
            stamped.push('=');
            stamped.push_str(decimal(u64::from(from.port()), &mut [0; 20]));
        } else if let Some(v) = value {
            stamped.push('=');
            stamped.push_str(v);
        }
    })
    .ok()?;
    if !saw_received {
        stamped.push_str(";received=");
        stamped.push_str(&received);
    }
    Some(TopVia {
        key,
        reliable,
        stamped,
    })
}

/// The key that matches `req` to a server transaction (§17.2.3), and whether its top Via
/// names a reliable transport.
fn server_key(req: &Request, via: &Via) -> Option<(ServerKey, bool)> {
    let reliable = via.transport.is_reliable();
    let method = match req.method {
        Method::Ack => Method::Invite,
        ref m => m.clone(),
    };
    if via.has_rfc3261_branch() {
        let sent_by = match via.port {
            Some(p) => format!("{}:{p}", via.host),
            None => via.host.to_string(),
        };
        let key = ServerKey::Branch {
            branch: via.branch()?.to_owned(),
            sent_by,
            method,
        };
        return Some((key, reliable));
    }
    let tag = |n: crate::NameAddr| n.tag().unwrap_or("").to_owned();
    let key = ServerKey::Legacy(Box::new(LegacyKey {
        request_uri: req.uri.to_string(),
        to_tag: tag(req.headers.to().ok()?),
        from_tag: tag(req.headers.from().ok()?),
        call_id: req.headers.call_id().ok()?.to_owned(),
        cseq: req.headers.cseq().ok()?.seq,
        via: via.to_string(),
        method,
    }));
    Some((key, reliable))
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
fn build_ack(invite: &Request, resp: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(v) = invite.headers.get(&HeaderName::Via) {
        let top = crate::text::split_commas(v.as_str())
            .ok()
            .and_then(|p| p.first().map(|s| s.to_string()))
            .unwrap_or_default();
        ack.headers.push(HeaderName::Via, top);
    }
    for name in [HeaderName::Route, HeaderName::CallId, HeaderName::From] {
        for v in invite.headers.get_all(&name) {
            ack.headers.push(name.clone(), v.clone());
        }
    }
    if let Some(to) = resp.headers.get(&HeaderName::To) {
        ack.headers.push(HeaderName::To, to.clone());
    }
    let seq = invite.headers.cseq().map(|c| c.seq).unwrap_or(0);
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack.headers.push(HeaderName::MaxForwards, "70");
    ack
}

/// SplitMix64: tiny, seedable, good enough for ids that must be unique, not secret.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The stamp as the owned `Via` writes it: what `top_via` did before it read borrowed.
    fn stamped_by_owned_via(via: &str, from: SocketAddr) -> String {
        let mut v = Via::parse(via).unwrap();
        v.params.set("received", Some(&from.ip().to_string()));
        if v.params.contains("rport") {
            v.params.set("rport", Some(&from.port().to_string()));
        }
        v.to_text()
    }

    #[test]
    fn a_completed_non_invite_leaves_only_its_key_and_answer_until_timer_j() {
        let mut ep = Endpoint::new(Config::new("192.0.2.1:5060".parse().unwrap(), 7));
        let from: SocketAddr = "192.0.2.9:5060".parse().unwrap();
        let t0 = Instant::now();
        let register =
            b"REGISTER sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
            From: <sip:1@pbx.local>;tag=a\r\nTo: <sip:1@pbx.local>\r\nCall-ID: c\r\n\
            CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        ep.handle_datagram(t0, from, register);
        let Some(SipEvent::Request { tx, request, .. }) = ep.poll_event() else {
            panic!("no request event");
        };
        let ok = Response::for_request(&request, StatusCode::OK, Some("t"));
        ep.respond(t0, tx, ok).unwrap();
        assert_eq!(ep.poll_event(), Some(SipEvent::Terminated { tx }));
        assert!(ep.txs.is_empty() && ep.server_index.is_empty() && ep.schedule.is_empty());
        assert_eq!((ep.completed.len(), ep.transactions()), (1, 1));
        // A retransmission is answered from `completed`, and is no new request.
        while ep.poll_transmit().is_some() {}
        ep.handle_datagram(t0 + Duration::from_secs(1), from, register);
        assert!(ep
            .poll_transmit()
            .is_some_and(|t| t.bytes.starts_with(b"SIP/2.0 200")));
        assert_eq!(ep.poll_event(), None);
        ep.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(ep.transactions(), 0);
        assert!(ep.completed_until.is_empty() && ep.poll_timeout().is_none());
    }

    #[test]
    fn beyond_max_completed_the_oldest_completed_transaction_is_forgotten_early() {
        let mut config = Config::new("192.0.2.1:5060".parse().unwrap(), 7);
        config.max_completed = 2;
        let mut ep = Endpoint::new(config);
        let from: SocketAddr = "192.0.2.9:5060".parse().unwrap();
        let t0 = Instant::now();
        let register = |n: u32| {
            format!(
                "REGISTER sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK{n}\r\n\
                 From: <sip:1@pbx.local>;tag=a\r\nTo: <sip:1@pbx.local>\r\nCall-ID: c\r\n\
                 CSeq: {n} REGISTER\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let answer = |ep: &mut Endpoint, n: u32| {
            ep.handle_datagram(t0, from, register(n).as_bytes());
            let Some(SipEvent::Request { tx, request, .. }) = ep.poll_event() else {
                panic!("REGISTER {n} is no new request");
            };
            let ok = Response::for_request(&request, StatusCode::OK, Some("t"));
            ep.respond(t0, tx, ok).unwrap();
            while ep.poll_event().is_some() {}
            while ep.poll_transmit().is_some() {}
        };
        for n in 1..=3 {
            answer(&mut ep, n);
        }
        assert_eq!((ep.completed.len(), ep.completed_until.len()), (2, 2));
        // The newest two are still answered from `completed`...
        for n in [2, 3] {
            ep.handle_datagram(t0, from, register(n).as_bytes());
            assert!(ep.poll_transmit().is_some(), "retransmission {n} answered");
            assert_eq!(ep.poll_event(), None);
        }
        // ...the oldest was forgotten: its retransmission is a request again.
        ep.handle_datagram(t0, from, register(1).as_bytes());
        assert!(matches!(ep.poll_event(), Some(SipEvent::Request { .. })));
    }

    #[test]
    fn the_borrowed_top_via_stamps_and_keys_as_the_owned_one() {
        let from: SocketAddr = "198.51.100.7:40123".parse().unwrap();
        let from6: SocketAddr = "[2001:db8::9]:5062".parse().unwrap();
        for (via, from) in [
            ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1;rport", from),
            ("SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bKa1", from),
            ("SIP/2.0/udp phone.example.com:5062;branch=z9hG4bKa1", from),
            (
                "SIP/2.0/TCP 192.0.2.1:5060;received=10.0.0.1;branch=z9hG4bKa1;rport=9",
                from,
            ),
            (
                "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa1;rport",
                from6,
            ),
            (
                "SIP / 2.0 / UDP 192.0.2.1 : 5060 ; branch = z9hG4bKa1 ; rport",
                from,
            ),
            (
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1;x=\"a;b\";maddr=224.0.0.1",
                from,
            ),
            ("SIP/2.0/UDP 192.0.2.1:5060;branch=1234;rport", from),
        ] {
            let text = format!(
                "OPTIONS sip:x@pbx.local SIP/2.0\r\nVia: {via}, SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKup\r\n\
                 From: <sip:a@pbx.local>;tag=f\r\nTo: <sip:x@pbx.local>\r\nCall-ID: c1\r\n\
                 CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            let req = Request::parse(text.into_bytes()).unwrap();
            let got = top_via(&req, from).unwrap();
            assert_eq!(got.stamped, stamped_by_owned_via(via, from), "{via}");
            let owned = Via::parse(via).unwrap();
            let (key, reliable) = server_key(&req, &owned).unwrap();
            assert_eq!((&got.key, got.reliable), (&key, reliable), "{via}");
            let mut req = req;
            req.headers.set_top_via_text(got.stamped.clone());
            let vias = req.headers.vias().unwrap();
            assert_eq!(vias.len(), 2, "{via}");
            assert_eq!(vias[0].to_text(), got.stamped, "{via}");
            assert_eq!(vias[1].branch(), Some("z9hG4bKup"));
        }
    }
}
