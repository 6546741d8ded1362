//! The RTP relay: every m= line of a call is anchored on a pair of relay ports per leg.
//!
//! [`Relay::allocate`] binds four UDP sockets for one media stream (RTP and RTCP on the caller
//! side, RTP and RTCP on the callee side, from [`PortPool`]). Forwarding is payload-agnostic,
//! so RFC 4733 DTMF, video and RTCP pass untouched. Destinations start from the SDP and then
//! latch to the source of the last packet received (symmetric RTP), which makes phones behind
//! NAT work.
//!
//! **One thread relays every stream of a [`Relay`]**; no thread, and no task, per stream. The
//! sockets of all streams sit in the relay's own level-triggered epoll set. The `rtp-relay`
//! thread takes up to [`EVENTS`] ready sockets per `epoll_wait`, reads one datagram from each
//! (level-triggered: a socket with more queued is reported again by the next `epoll_wait`, so
//! no read ends in `EAGAIN`) and sends it on from the opposite socket: one `recvfrom` and one
//! `sendto` per packet plus a share of one `epoll_wait`, no per-packet allocation and no task
//! wake-up. Because the thread is not the daemon's tokio thread, media never waits behind a
//! SQLite commit or a burst of SIP work, and on a machine with two cores SIP and media run in
//! parallel. A packet that cannot be sent at once (a full socket buffer) is dropped, never
//! queued.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::tap::{Tap, TappedEvent, Watch};
use crate::config::PortRange;

/// Ready sockets taken per `epoll_wait`.
pub const EVENTS: usize = 256;
/// The epoll token of the eventfd that tells the thread to stop (no stream token is all ones:
/// slots are far below 2^32 - 1).
const STOP_TOKEN: u64 = u64::MAX;
/// Receive buffer: the largest UDP payload, so nothing is ever truncated.
const MAX_DATAGRAM: usize = 65_536;

/// Free even RTP ports (RTCP is port + 1), handed out oldest-freed first.
#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
    range: PortRange,
}

impl PortPool {
    pub fn new(range: PortRange) -> PortPool {
        PortPool {
            free: range.rtp_ports().collect(),
            range,
        }
    }

    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    /// Returns a port; ports outside the current range (after a reload) are dropped.
    pub fn give(&mut self, port: u16) {
        if port >= self.range.low && port < self.range.high {
            self.free.push_back(port);
        }
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }
}

/// What an m= line carries, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    Other,
}

impl MediaKind {
    pub fn from_sdp(kind: &str) -> MediaKind {
        match kind {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            _ => MediaKind::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Other => "other",
        }
    }
    pub const ALL: [MediaKind; 3] = [MediaKind::Audio, MediaKind::Video, MediaKind::Other];
}

/// Which way a relayed packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToCallee,
    ToCaller,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToCallee => "to_callee",
            Direction::ToCaller => "to_caller",
        }
    }
    pub const ALL: [Direction; 2] = [Direction::ToCallee, Direction::ToCaller];
}

/// Relay-wide counters, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets by [kind][direction].
    by_kind: [[AtomicU64; 2]; 3],
}

impl RelayStats {
    fn count(&self, kind: MediaKind, dir: Direction, bytes: usize) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.by_kind[kind as usize][dir as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn packets_of(&self, kind: MediaKind, dir: Direction) -> u64 {
        self.by_kind[kind as usize][dir as usize].load(Ordering::Relaxed)
    }
}

/// Where a stream's two legs should be sent to (RTP address; RTCP is port + 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Targets {
    pub caller: Option<SocketAddr>,
    pub callee: Option<SocketAddr>,
}

/// One relayed media stream (one m= line). Dropping it stops relaying and closes its sockets.
pub struct MediaStream {
    /// Relay port the caller sends to (advertised in the SDP we give the caller).
    pub caller_port: u16,
    /// Relay port the callee sends to.
    pub callee_port: u16,
    key: Key,
    shared: Arc<Shared>,
}

impl fmt::Debug for MediaStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaStream")
            .field("caller_port", &self.caller_port)
            .field("callee_port", &self.callee_port)
            .finish_non_exhaustive()
    }
}

impl MediaStream {
    /// Updates the SDP-given destinations (e.g. after a re-INVITE). A new SDP may move a phone,
    /// so every socket re-latches: latching still wins for packets that arrive later.
    pub fn set_targets(&self, update: impl FnOnce(&mut Targets)) {
        let mut table = self.shared.lock();
        if let Some(s) = table.get_mut(self.key) {
            update(&mut s.targets);
            s.latched = [false; 4];
            s.apply_targets();
        }
    }
}

/// One side of a relayed stream: the caller's sockets or the callee's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSide {
    Caller,
    Callee,
}

impl StreamSide {
    fn index(self) -> usize {
        match self {
            StreamSide::Caller => 0,
            StreamSide::Callee => 1,
        }
    }
}

/// One side's sockets, lent to the media engine (see [`MediaStream::lend`]).
#[derive(Debug)]
pub struct Lent {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// Where that side's phone takes RTP (latched or from its SDP).
    pub remote: Option<SocketAddr>,
}

impl MediaStream {
    /// Lends one side's sockets to the media engine, e.g. to play music on hold to the held
    /// phone: the phone keeps sending to and hearing from the port it knows, so no re-INVITE
    /// is needed to move it. Until [`MediaStream::take_back`] the relay neither reads those
    /// sockets nor forwards the other side's packets to them.
    pub fn lend(&self, side: StreamSide) -> io::Result<Lent> {
        let mut table = self.shared.lock();
        let s = table
            .get_mut(self.key)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "stream is gone"))?;
        let i = side.index() * 2;
        let rtp = s.socks[i].try_clone()?;
        let rtcp = s.socks[i + 1].try_clone()?;
        if !s.lent[side.index()] {
            // Taken out of our epoll set explicitly: the engine's duplicates keep the sockets
            // open, so closing nothing would remove them.
            self.shared.epoll.delete(&s.socks[i])?;
            self.shared.epoll.delete(&s.socks[i + 1])?;
            s.lent[side.index()] = true;
        }
        Ok(Lent {
            rtp,
            rtcp,
            remote: s.dest[i],
        })
    }

    /// Relays that side again after [`MediaStream::lend`] (the engine drops its duplicates).
    pub fn take_back(&self, side: StreamSide) -> io::Result<()> {
        let mut table = self.shared.lock();
        let Some(s) = table.get_mut(self.key) else {
            return Ok(());
        };
        if !s.lent[side.index()] {
            return Ok(());
        }
        let i = side.index() * 2;
        for j in [i, i + 1] {
            let ev = EpollEvent::new(EpollFlags::EPOLLIN, token(self.key, j));
            self.shared.epoll.add(&s.socks[j], ev)?;
        }
        s.lent[side.index()] = false;
        Ok(())
    }
}

impl MediaStream {
    /// Swaps side `mine` of this stream with side `theirs` of `other`: sockets, ports,
    /// destinations and latching move together. An attended transfer joins the two far
    /// phones of two calls this way: each keeps the relay port it already sends to, so
    /// neither needs new SDP to reach the other. Both sides must be relayed (not lent).
    pub fn exchange_side(
        &mut self,
        mine: StreamSide,
        other: &mut MediaStream,
        theirs: StreamSide,
    ) -> io::Result<()> {
        if !Arc::ptr_eq(&self.shared, &other.shared) || self.key == other.key {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "streams of different relays, or one stream twice",
            ));
        }
        let mut table = self.shared.lock();
        let (a, b) = table
            .pair_mut(self.key, other.key)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "stream is gone"))?;
        let (ia, ib) = (mine.index(), theirs.index());
        if a.lent[ia] || b.lent[ib] {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a side is lent to the media engine",
            ));
        }
        for j in 0..2 {
            std::mem::swap(&mut a.socks[ia * 2 + j], &mut b.socks[ib * 2 + j]);
            std::mem::swap(&mut a.dest[ia * 2 + j], &mut b.dest[ib * 2 + j]);
            std::mem::swap(&mut a.latched[ia * 2 + j], &mut b.latched[ib * 2 + j]);
        }
        std::mem::swap(a.targets.side_mut(mine), b.targets.side_mut(theirs));
        // The epoll tokens name (stream, socket index): re-point the moved sockets.
        for j in 0..2 {
            let mut ev = EpollEvent::new(EpollFlags::EPOLLIN, token(self.key, ia * 2 + j));
            self.shared.epoll.modify(&a.socks[ia * 2 + j], &mut ev)?;
            let mut ev = EpollEvent::new(EpollFlags::EPOLLIN, token(other.key, ib * 2 + j));
            self.shared.epoll.modify(&b.socks[ib * 2 + j], &mut ev)?;
        }
        drop(table);
        let mine_port = match mine {
            StreamSide::Caller => &mut self.caller_port,
            StreamSide::Callee => &mut self.callee_port,
        };
        let theirs_port = match theirs {
            StreamSide::Caller => &mut other.caller_port,
            StreamSide::Callee => &mut other.callee_port,
        };
        std::mem::swap(mine_port, theirs_port);
        Ok(())
    }
}

impl MediaStream {
    /// Another phone is taking `side` (a transfer): the address that side sends to now is
    /// ignored from here on, and nothing goes to that side until [`MediaStream::set_targets`]
    /// gives the new phone's address (which lifts the ignore if it is the same phone).
    /// Call before setting the new target.
    pub fn forget_party(&self, side: StreamSide) {
        let mut table = self.shared.lock();
        let Some(s) = table.get_mut(self.key) else {
            return;
        };
        let t = side.index() * 2;
        for j in [t, t + 1] {
            s.ignore[j] = s.dest[j].take();
            s.latched[j] = false;
        }
        match side {
            StreamSide::Caller => s.targets.caller = None,
            StreamSide::Callee => s.targets.callee = None,
        }
    }

    /// Copies the telephone-events each side sends (payload types `pt`: caller, callee) to
    /// [`Relay::poll_dtmf`] as `call`'s; `None` for both stops watching.
    pub fn watch_dtmf(&self, call: u64, pt: [Option<u8>; 2]) {
        let mut table = self.shared.lock();
        if let Some(s) = table.get_mut(self.key) {
            s.watch = pt.iter().any(Option::is_some).then_some(Watch { call, pt });
        }
    }
}

impl Targets {
    fn side_mut(&mut self, side: StreamSide) -> &mut Option<SocketAddr> {
        match side {
            StreamSide::Caller => &mut self.caller,
            StreamSide::Callee => &mut self.callee,
        }
    }
}

impl Drop for MediaStream {
    fn drop(&mut self) {
        // Closing the sockets also takes them out of the epoll set.
        let stream = self.shared.lock().remove(self.key);
        drop(stream);
    }
}

/// Which slot of the table a stream is in, and which occupant of that slot (slots are reused;
/// an event for a stream that is gone must not reach its successor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    slot: u32,
    generation: u32,
}

/// An epoll token: generation (30 bits), slot (32 bits), socket index (2 bits).
fn token(key: Key, sock: usize) -> u64 {
    (u64::from(key.generation & 0x3fff_ffff) << 34) | (u64::from(key.slot) << 2) | sock as u64
}

fn untoken(t: u64) -> (Key, usize) {
    (
        Key {
            slot: (t >> 2) as u32,
            generation: (t >> 34) as u32,
        },
        (t & 3) as usize,
    )
}

/// The four sockets of a stream and where each one's packets go.
struct Stream {
    /// Caller RTP, caller RTCP, callee RTP, callee RTCP.
    socks: [UdpSocket; 4],
    kind: MediaKind,
    targets: Targets,
    /// dest[i]: where packets *sent from* socket i go (the peer of socket i).
    dest: [Option<SocketAddr>; 4],
    latched: [bool; 4],
    /// lent[side]: that side's sockets are the media engine's for now (music on hold).
    lent: [bool; 2],
    /// In-call feature codes: copy this stream's telephone-events to the tap.
    watch: Option<Watch>,
    /// ignore[i]: a phone that left this side (transferred away); its late packets must
    /// neither reach the new party nor re-latch socket i to itself.
    ignore: [Option<SocketAddr>; 4],
}

impl Stream {
    fn apply_targets(&mut self) {
        let t = self.targets;
        let want = [
            t.caller,
            t.caller.map(rtcp_of),
            t.callee,
            t.callee.map(rtcp_of),
        ];
        for (((dest, latched), ignore), want) in self
            .dest
            .iter_mut()
            .zip(self.latched)
            .zip(self.ignore.iter_mut())
            .zip(want)
        {
            if !latched && want.is_some() {
                *dest = want;
            }
            if want.is_some() && *ignore == want {
                *ignore = None;
            }
        }
    }

    /// Reads one datagram from socket `i` and sends it on from the opposite socket.
    fn forward(&mut self, i: usize, buf: &mut [u8], stats: &RelayStats, tap: &Tap) {
        if self.lent[i / 2] {
            // An event taken before the side was lent: the packet is the engine's.
            return;
        }
        let Ok((n, from)) = self.socks[i].recv_from(buf) else {
            return;
        };
        if self.ignore[i] == Some(from) {
            return;
        }
        // Symmetric RTP: answer where the packets come from.
        self.dest[i] = Some(from);
        self.latched[i] = true;
        let out = i ^ 2; // caller RTP <-> callee RTP, caller RTCP <-> callee RTCP
        if !self.lent[out / 2] {
            if let Some(to) = self.dest[out] {
                if self.socks[out].send_to(&buf[..n], to).is_ok() {
                    let dir = if i < 2 {
                        Direction::ToCallee
                    } else {
                        Direction::ToCaller
                    };
                    stats.count(self.kind, dir, n);
                }
            }
        }
        // After the send: the feature codes never delay the media.
        if let Some(w) = &self.watch {
            if i % 2 == 0 {
                let side = if i == 0 {
                    StreamSide::Caller
                } else {
                    StreamSide::Callee
                };
                tap.look(w, side, &buf[..n]);
            }
        }
    }
}

#[derive(Default)]
struct Table {
    slots: Vec<(u32, Option<Stream>)>,
    free: Vec<u32>,
}

impl Table {
    fn insert(&mut self, stream: Stream) -> Key {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.0 = entry.0.wrapping_add(1) & 0x3fff_ffff;
        entry.1 = Some(stream);
        Key {
            slot,
            generation: entry.0,
        }
    }

    fn get_mut(&mut self, key: Key) -> Option<&mut Stream> {
        match self.slots.get_mut(key.slot as usize) {
            Some((g, Some(s))) if *g == key.generation => Some(s),
            _ => None,
        }
    }

    /// Two different streams at once.
    fn pair_mut(&mut self, a: Key, b: Key) -> Option<(&mut Stream, &mut Stream)> {
        let (ia, ib) = (a.slot as usize, b.slot as usize);
        if ia == ib || ia.max(ib) >= self.slots.len() {
            return None;
        }
        let (lo, hi) = self.slots.split_at_mut(ia.max(ib));
        let (first, second) = (&mut lo[ia.min(ib)], &mut hi[0]);
        let (x, y) = if ia < ib {
            (first, second)
        } else {
            (second, first)
        };
        match (x, y) {
            ((gx, Some(sx)), (gy, Some(sy))) if *gx == a.generation && *gy == b.generation => {
                Some((sx, sy))
            }
            _ => None,
        }
    }

    fn remove(&mut self, key: Key) -> Option<Stream> {
        let (g, s) = self.slots.get_mut(key.slot as usize)?;
        if *g != key.generation || s.is_none() {
            return None;
        }
        self.free.push(key.slot);
        s.take()
    }
}

/// What the relay thread, the [`Relay`] and its streams share.
struct Shared {
    epoll: Epoll,
    table: Mutex<Table>,
    stats: Arc<RelayStats>,
    tap: Arc<Tap>,
    stop: AtomicBool,
    wake: EventFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent (every change is one
        // assignment), so a poisoned lock is still usable.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Allocates streams and runs the relay thread.
pub struct Relay {
    pool: PortPool,
    stats: Arc<RelayStats>,
    /// The epoll set and its thread, started at the first allocation.
    running: Option<Arc<Shared>>,
    tap: Arc<Tap>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("pool", &self.pool)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(shared) = &self.running {
            shared.stop.store(true, Ordering::Release);
            let _ = shared.wake.write(1);
        }
    }
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

fn bind_pair(pool: &mut PortPool, v6: bool) -> io::Result<(u16, UdpSocket, UdpSocket)> {
    let mut tried = Vec::new();
    let result = loop {
        let Some(port) = pool.take() else {
            break Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "no free RTP ports left in [rtp] ports",
            ));
        };
        let rtp = bind_udp(SocketAddr::new(unspecified(v6), port));
        let rtcp = bind_udp(SocketAddr::new(unspecified(v6), port + 1));
        match (rtp, rtcp) {
            (Ok(a), Ok(b)) => break Ok((port, a, b)),
            _ => tried.push(port),
        }
    };
    // Ports busy in another process go to the back of the queue.
    for p in tried {
        pool.give(p);
    }
    result
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

impl Relay {
    pub fn new(range: PortRange, stats: Arc<RelayStats>) -> Relay {
        Relay {
            pool: PortPool::new(range),
            stats,
            running: None,
            tap: Arc::new(Tap::default()),
        }
    }

    /// Called from the relay thread when [`Relay::poll_dtmf`] has events; it must only wake
    /// the driver's loop.
    pub fn set_dtmf_notify(&mut self, notify: Arc<dyn Fn() + Send + Sync>) {
        self.tap.set_notify(notify);
    }

    /// The next telephone-event packet of a watched stream.
    pub fn poll_dtmf(&self) -> Option<TappedEvent> {
        self.tap.pop()
    }

    /// Switches to a new port range; streams in progress keep their ports.
    pub fn set_range(&mut self, range: PortRange) {
        self.pool = PortPool::new(range);
    }

    pub fn available(&self) -> usize {
        self.pool.available()
    }

    /// The epoll set and the relay thread, started at the first call.
    fn shared(&mut self) -> io::Result<Arc<Shared>> {
        if let Some(shared) = &self.running {
            return Ok(shared.clone());
        }
        let shared = Arc::new(Shared {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            table: Mutex::new(Table::default()),
            stats: self.stats.clone(),
            tap: self.tap.clone(),
            stop: AtomicBool::new(false),
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
        });
        shared.epoll.add(
            &shared.wake,
            EpollEvent::new(EpollFlags::EPOLLIN, STOP_TOKEN),
        )?;
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name("rtp-relay".into())
            .spawn(move || relay_thread(&for_thread))?;
        self.running = Some(shared.clone());
        Ok(shared)
    }

    /// Binds the four sockets of one stream and puts them in the relay's epoll set.
    pub fn allocate(
        &mut self,
        kind: MediaKind,
        caller_v6: bool,
        callee_v6: bool,
    ) -> io::Result<MediaStream> {
        let shared = self.shared()?;
        let (caller_port, a_rtp, a_rtcp) = bind_pair(&mut self.pool, caller_v6)?;
        let (callee_port, b_rtp, b_rtcp) = match bind_pair(&mut self.pool, callee_v6) {
            Ok(x) => x,
            Err(e) => {
                self.pool.give(caller_port);
                return Err(e);
            }
        };
        let mut table = shared.lock();
        let key = table.insert(Stream {
            socks: [a_rtp, a_rtcp, b_rtp, b_rtcp],
            kind,
            targets: Targets::default(),
            dest: [None; 4],
            latched: [false; 4],
            lent: [false; 2],
            watch: None,
            ignore: [None; 4],
        });
        let mut registered = Ok(());
        if let Some(s) = table.get_mut(key) {
            for (i, sock) in s.socks.iter().enumerate() {
                let ev = EpollEvent::new(EpollFlags::EPOLLIN, token(key, i));
                if let Err(e) = shared.epoll.add(sock, ev) {
                    registered = Err(io::Error::from(e));
                    break;
                }
            }
        }
        if let Err(e) = registered {
            drop(table.remove(key));
            drop(table);
            self.pool.give(caller_port);
            self.pool.give(callee_port);
            return Err(e);
        }
        drop(table);
        Ok(MediaStream {
            caller_port,
            callee_port,
            key,
            shared,
        })
    }

    /// Binds one RTP/RTCP socket pair from the relay's port range, for a leg the media engine
    /// terminates (the engine and the relay share one range, as the firewall opens one).
    pub fn bind_pair(&mut self, v6: bool) -> io::Result<(u16, UdpSocket, UdpSocket)> {
        bind_pair(&mut self.pool, v6)
    }

    /// Returns a port taken with [`Relay::bind_pair`].
    pub fn give_port(&mut self, port: u16) {
        self.pool.give(port);
    }

    /// Stops a stream and returns its ports.
    pub fn release(&mut self, stream: MediaStream) {
        self.pool.give(stream.caller_port);
        self.pool.give(stream.callee_port);
        drop(stream);
    }
}

fn rtcp_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port().wrapping_add(1))
}

fn relay_thread(shared: &Shared) {
    let mut events = vec![EpollEvent::empty(); EVENTS];
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = match shared.epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "epoll_wait failed; the RTP relay stops");
                return;
            }
        };
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let mut table = shared.lock();
        for ev in &events[..n] {
            let (key, i) = untoken(ev.data());
            if let Some(stream) = table.get_mut(key) {
                stream.forward(i, &mut buf, &shared.stats, &shared.tap);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_even_ports_and_recycles() {
        let mut p = PortPool::new(PortRange {
            low: 20000,
            high: 20007,
        });
        assert_eq!(p.take(), Some(20000));
        assert_eq!(p.take(), Some(20002));
        p.give(20000);
        assert_eq!(p.take(), Some(20004));
        assert_eq!(p.take(), Some(20006));
        assert_eq!(p.take(), Some(20000));
        assert_eq!(p.take(), None);
    }

    #[tokio::test]
    async fn relays_both_ways_and_latches() {
        let stats = Arc::new(RelayStats::default());
        let mut relay = Relay::new(
            PortRange {
                low: 41000,
                high: 41100,
            },
            stats.clone(),
        );
        let s = relay.allocate(MediaKind::Audio, false, false).unwrap();
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // Only the callee's address is known from SDP; the caller is learnt by latching.
        let b_addr = b.local_addr().unwrap();
        s.set_targets(|t| t.callee = Some(b_addr));
        let lo = Ipv4Addr::LOCALHOST;
        a.send_to(b"from-a", (lo, s.caller_port)).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"from-a");
        assert_eq!(from.port(), s.callee_port);
        b.send_to(b"from-b", (lo, s.callee_port)).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"from-b");
        assert_eq!(from.port(), s.caller_port);
        settle(|| stats.packets.load(Ordering::Relaxed) == 2);
        assert_eq!(stats.packets.load(Ordering::Relaxed), 2);
        assert_eq!(stats.packets_of(MediaKind::Audio, Direction::ToCaller), 1);
        relay.release(s);
    }

    #[tokio::test]
    async fn exchanged_sides_join_the_far_phones_of_two_streams() {
        let stats = Arc::new(RelayStats::default());
        let mut relay = Relay::new(
            PortRange {
                low: 41200,
                high: 41300,
            },
            stats.clone(),
        );
        // Call 1: a <-> b1; call 2: b2 <-> c. Afterwards call 1 is a <-> c on the ports
        // each already used, and call 2 holds b's two sides.
        let mut one = relay.allocate(MediaKind::Audio, false, false).unwrap();
        let mut two = relay.allocate(MediaKind::Audio, false, false).unwrap();
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_port, c_port) = (one.caller_port, two.callee_port);
        two.set_targets(|t| t.callee = Some(c.local_addr().unwrap()));
        one.exchange_side(StreamSide::Callee, &mut two, StreamSide::Callee)
            .unwrap();
        assert_eq!((one.caller_port, one.callee_port), (a_port, c_port));
        let lo = Ipv4Addr::LOCALHOST;
        a.send_to(b"from-a", (lo, a_port)).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = c.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"from-a"[..], c_port));
        c.send_to(b"from-c", (lo, c_port)).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"from-c"[..], a_port));
        let lent = one.lend(StreamSide::Caller).unwrap();
        assert!(one
            .exchange_side(StreamSide::Caller, &mut two, StreamSide::Caller)
            .is_err());
        drop(lent);
        relay.release(one);
        relay.release(two);
    }

    #[tokio::test]
    async fn a_forgotten_party_neither_reaches_nor_steals_the_side_it_left() {
        let stats = Arc::new(RelayStats::default());
        let mut relay = Relay::new(
            PortRange {
                low: 41400,
                high: 41500,
            },
            stats,
        );
        let s = relay.allocate(MediaKind::Audio, false, false).unwrap();
        let old = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let new = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let far = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.set_targets(|t| t.callee = Some(far.local_addr().unwrap()));
        let lo = Ipv4Addr::LOCALHOST;
        let mut buf = [0u8; 64];
        old.send_to(b"old-1", (lo, s.caller_port)).await.unwrap();
        let (n, _) = far.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"old-1");
        // A transfer: the old caller goes, the new one is the target.
        s.forget_party(StreamSide::Caller);
        s.set_targets(|t| t.caller = Some(new.local_addr().unwrap()));
        old.send_to(b"old-2", (lo, s.caller_port)).await.unwrap();
        far.send_to(b"far", (lo, s.callee_port)).await.unwrap();
        let (n, _) = new.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            &buf[..n],
            b"far",
            "the far side's audio goes to the new phone"
        );
        new.send_to(b"new", (lo, s.caller_port)).await.unwrap();
        let (n, _) = far.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"new", "old-2 was dropped");
        // The same phone coming back (a ring-back) is not ignored.
        s.forget_party(StreamSide::Caller);
        s.set_targets(|t| t.caller = Some(old.local_addr().unwrap()));
        old.send_to(b"old-3", (lo, s.caller_port)).await.unwrap();
        let (n, _) = far.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"old-3");
        relay.release(s);
    }

    #[test]
    fn tokens_round_trip_and_reused_slots_ignore_stale_events() {
        let k = Key {
            slot: 123_456,
            generation: 0x3fff_fffe,
        };
        assert_eq!(untoken(token(k, 3)), (k, 3));
        assert_ne!(untoken(STOP_TOKEN).0, k);
        let mut t = Table::default();
        let sock = || UdpSocket::bind("127.0.0.1:0").unwrap();
        let stream = || Stream {
            socks: [sock(), sock(), sock(), sock()],
            kind: MediaKind::Audio,
            targets: Targets::default(),
            dest: [None; 4],
            latched: [false; 4],
            lent: [false; 2],
            watch: None,
            ignore: [None; 4],
        };
        let first = t.insert(stream());
        assert!(t.remove(first).is_some());
        let second = t.insert(stream());
        assert_eq!(second.slot, first.slot);
        assert!(
            t.get_mut(first).is_none(),
            "an old token must not reach the new stream"
        );
        assert!(t.remove(first).is_none());
        assert!(t.get_mut(second).is_some());
    }

    /// The relay thread counts a packet just after sending it: wait (briefly) for the counters.
    fn settle(done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// A phone's socket for the tests: blocking with a timeout, so a missing packet fails.
    fn phone() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s
    }

    #[test]
    fn relays_large_datagrams_rtcp_and_many_streams_then_stops_on_release() {
        let stats = Arc::new(RelayStats::default());
        let mut relay = Relay::new(
            PortRange {
                low: 41200,
                high: 41400,
            },
            stats.clone(),
        );
        let lo = Ipv4Addr::LOCALHOST;
        let mut streams = Vec::new();
        for _ in 0..20 {
            streams.push(relay.allocate(MediaKind::Video, false, false).unwrap());
        }
        let (a, b) = (phone(), phone());
        let mut buf = vec![0u8; 70_000];
        for s in &streams {
            // Both sides known only by latching: b speaks first (its packet has nowhere to go
            // yet), then a, whose packet reaches b at b's latched address.
            b.send_to(b"hello", (lo, s.callee_port)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let big = vec![7u8; 9000];
            a.send_to(&big, (lo, s.caller_port)).unwrap();
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(n, 9000, "not truncated");
            assert_eq!(from.port(), s.callee_port);
            // RTCP goes between the +1 ports.
            b.send_to(b"rtcp-b", (lo, s.callee_port + 1)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            a.send_to(b"rtcp-a", (lo, s.caller_port + 1)).unwrap();
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"rtcp-a");
            assert_eq!(from.port(), s.callee_port + 1);
        }
        settle(|| stats.packets_of(MediaKind::Video, Direction::ToCallee) == 40);
        assert_eq!(stats.packets_of(MediaKind::Video, Direction::ToCallee), 40);
        let gone = streams.pop().unwrap();
        let port = gone.caller_port;
        relay.release(gone);
        // Its port is free again (the socket is closed) and nothing is relayed from it.
        let reuse = UdpSocket::bind((lo, port)).unwrap();
        drop(reuse);
        a.send_to(b"late", (lo, port)).unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        assert!(b.recv_from(&mut buf).is_err());
    }
}
