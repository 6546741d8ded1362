//! The RTP relay: every m= line of a call is anchored on a pair of relay ports per leg.
//!
//! [`Relay::allocate`] binds four UDP sockets for one media stream (RTP and RTCP on the caller
//! side, RTP and RTCP on the callee side, from [`PortPool`]) and spawns **one tokio task** that
//! forwards between them; no thread per stream. Forwarding is payload-agnostic, so RFC 4733
//! DTMF, video and RTCP pass untouched. Destinations start from the SDP and then latch to the
//! source of the last packet received (symmetric RTP), which makes phones behind NAT work.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::PortRange;

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

/// One relayed media stream (one m= line). Dropping it stops its task.
#[derive(Debug)]
pub struct MediaStream {
    /// Relay port the caller sends to (advertised in the SDP we give the caller).
    pub caller_port: u16,
    /// Relay port the callee sends to.
    pub callee_port: u16,
    targets: watch::Sender<Targets>,
    task: JoinHandle<()>,
}

impl MediaStream {
    /// Updates the SDP-given destinations (e.g. after a re-INVITE); latching still wins for
    /// packets that arrive later.
    pub fn set_targets(&self, update: impl FnOnce(&mut Targets)) {
        self.targets.send_modify(update);
    }
}

impl Drop for MediaStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Allocates and runs relayed streams.
#[derive(Debug)]
pub struct Relay {
    pool: PortPool,
    stats: Arc<RelayStats>,
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
    UdpSocket::from_std(sock.into())
}

impl Relay {
    pub fn new(range: PortRange, stats: Arc<RelayStats>) -> Relay {
        Relay {
            pool: PortPool::new(range),
            stats,
        }
    }

    /// Switches to a new port range; streams in progress keep their ports.
    pub fn set_range(&mut self, range: PortRange) {
        self.pool = PortPool::new(range);
    }

    pub fn available(&self) -> usize {
        self.pool.available()
    }

    /// Binds the four sockets of one stream and starts its task. Must run inside a tokio
    /// runtime.
    pub fn allocate(
        &mut self,
        kind: MediaKind,
        caller_v6: bool,
        callee_v6: bool,
    ) -> io::Result<MediaStream> {
        let (caller_port, a_rtp, a_rtcp) = bind_pair(&mut self.pool, caller_v6)?;
        let (callee_port, b_rtp, b_rtcp) = match bind_pair(&mut self.pool, callee_v6) {
            Ok(x) => x,
            Err(e) => {
                self.pool.give(caller_port);
                return Err(e);
            }
        };
        let (tx, rx) = watch::channel(Targets::default());
        let stats = self.stats.clone();
        let task = tokio::spawn(relay_task([a_rtp, a_rtcp, b_rtp, b_rtcp], kind, rx, stats));
        Ok(MediaStream {
            caller_port,
            callee_port,
            targets: tx,
            task,
        })
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

/// Socket order: caller RTP, caller RTCP, callee RTP, callee RTCP.
async fn relay_task(
    socks: [UdpSocket; 4],
    kind: MediaKind,
    mut targets: watch::Receiver<Targets>,
    stats: Arc<RelayStats>,
) {
    // dest[i]: where packets *sent from* socket i go (the peer of socket i).
    let mut dest: [Option<SocketAddr>; 4] = [None; 4];
    let mut latched = [false; 4];
    let apply = |t: Targets, dest: &mut [Option<SocketAddr>; 4], latched: &[bool; 4]| {
        let want = [
            t.caller,
            t.caller.map(rtcp_of),
            t.callee,
            t.callee.map(rtcp_of),
        ];
        for i in 0..4 {
            if !latched[i] && want[i].is_some() {
                dest[i] = want[i];
            }
        }
    };
    apply(*targets.borrow(), &mut dest, &latched);
    let mut bufs = [[0u8; 2048]; 4];
    loop {
        let [b0, b1, b2, b3] = &mut bufs;
        let (i, res) = tokio::select! {
            r = socks[0].recv_from(b0) => (0, r),
            r = socks[1].recv_from(b1) => (1, r),
            r = socks[2].recv_from(b2) => (2, r),
            r = socks[3].recv_from(b3) => (3, r),
            changed = targets.changed() => {
                if changed.is_err() {
                    return;
                }
                // A new SDP (re-INVITE) may move a phone: let it re-latch.
                latched = [false; 4];
                apply(*targets.borrow(), &mut dest, &latched);
                continue;
            }
        };
        let Ok((n, from)) = res else { continue };
        // Symmetric RTP: answer where the packets come from.
        dest[i] = Some(from);
        latched[i] = true;
        let out = i ^ 2; // caller RTP <-> callee RTP, caller RTCP <-> callee RTCP
        if let Some(to) = dest[out] {
            if socks[out].send_to(&bufs[i][..n], to).await.is_ok() {
                let dir = if i < 2 {
                    Direction::ToCallee
                } else {
                    Direction::ToCaller
                };
                stats.count(kind, dir, n);
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
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
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
        assert_eq!(stats.packets.load(Ordering::Relaxed), 2);
        assert_eq!(stats.packets_of(MediaKind::Audio, Direction::ToCaller), 1);
        relay.release(s);
    }
}
