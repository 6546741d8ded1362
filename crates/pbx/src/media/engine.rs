//! The media engine's thread: owns the sockets of every leg that ends in the PBX and drives
//! the sans-IO [`Engine`] with them, one frame every 20 ms.
//!
//! Like the relay, **one thread serves every engine leg** (never a thread or a task per
//! stream): the legs' sockets sit in one level-triggered epoll set with an eventfd that the
//! core rings when it leaves commands. The core talks to it only through [`EngineHost`]:
//! legs and rooms get their ids from the host at once (so the core can answer SIP without
//! waiting for the thread), commands are queued, and the engine's events come back through
//! a queue the core drains when the host's `notify` callback has woken the daemon.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kentongan_engine::{Engine, LegId, LegSpec, RecordSpec, RoomId, Sound};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tracing::debug;

pub use kentongan_engine::Event as MediaEvent;

const WAKE_TOKEN: u64 = u64::MAX;
const EVENTS: usize = 256;
const MAX_DATAGRAM: usize = 2048;

/// Engine-wide counters, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub legs: AtomicU64,
    pub rooms: AtomicU64,
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    /// Time spent running frames (decode, mix, encode), in microseconds.
    pub mix_us: AtomicU64,
    pub frames: AtomicU64,
}

/// A command for the engine, queued by the core.
#[derive(Debug)]
pub enum Command {
    Play { leg: LegId, sound: Sound, tag: u64 },
    StopPlaying(LegId),
    CreateRoom(RoomId),
    RemoveRoom(RoomId),
    Join { leg: LegId, room: RoomId },
    Leave(LegId),
    SetMuted { leg: LegId, muted: bool },
    SetListenGain { leg: LegId, gain_db: f32 },
    SetEcho { leg: LegId, on: bool },
    Record { leg: LegId, spec: RecordSpec },
    StopRecording(LegId),
}

enum Msg {
    AddLeg {
        id: LegId,
        spec: LegSpec,
        rtp: UdpSocket,
        rtcp: UdpSocket,
        remote: Option<SocketAddr>,
    },
    RemoveLeg(LegId),
    SetRemote(LegId, SocketAddr),
    Command(Command),
}

type Notify = Arc<dyn Fn() + Send + Sync>;

struct Shared {
    epoll: Epoll,
    wake: EventFd,
    inbox: Mutex<Vec<Msg>>,
    events: Mutex<VecDeque<MediaEvent>>,
    stop: AtomicBool,
    stats: Arc<EngineStats>,
    notify: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is one push or one drain: a panic cannot leave them
    // half-done, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The core's handle on the engine thread (started with the first leg).
pub struct EngineHost {
    shared: Option<Arc<Shared>>,
    next_leg: u32,
    next_room: u32,
    seed: u64,
    stats: Arc<EngineStats>,
    notify: Notify,
}

impl std::fmt::Debug for EngineHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHost")
            .field("running", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for EngineHost {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.stop.store(true, Ordering::Release);
            let _ = s.wake.write(1);
        }
    }
}

impl EngineHost {
    /// `notify` is called from the engine thread whenever events are waiting in
    /// [`EngineHost::poll_event`]; it must only wake the caller's loop.
    pub fn new(seed: u64, stats: Arc<EngineStats>, notify: Notify) -> EngineHost {
        EngineHost {
            shared: None,
            next_leg: 1,
            next_room: 1,
            seed,
            stats,
            notify,
        }
    }

    fn shared(&mut self) -> io::Result<Arc<Shared>> {
        if let Some(s) = &self.shared {
            return Ok(s.clone());
        }
        let shared = Arc::new(Shared {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            wake: EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?,
            inbox: Mutex::new(Vec::new()),
            events: Mutex::new(VecDeque::new()),
            stop: AtomicBool::new(false),
            stats: self.stats.clone(),
            notify: self.notify.clone(),
        });
        shared.epoll.add(
            &shared.wake,
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN),
        )?;
        let for_thread = shared.clone();
        let seed = self.seed;
        std::thread::Builder::new()
            .name("media-engine".into())
            .spawn(move || engine_thread(&for_thread, seed))?;
        self.shared = Some(shared.clone());
        Ok(shared)
    }

    fn send(&self, msg: Msg) {
        if let Some(s) = &self.shared {
            lock(&s.inbox).push(msg);
            let _ = s.wake.write(1);
        }
    }

    /// Hands a leg's bound sockets to the engine; media flows from the next frame on.
    /// `remote` is where the phone's SDP asked for RTP (latching to its packets refines it).
    pub fn add_leg(
        &mut self,
        spec: LegSpec,
        rtp: UdpSocket,
        rtcp: UdpSocket,
        remote: Option<SocketAddr>,
    ) -> io::Result<LegId> {
        let shared = self.shared()?;
        let id = LegId(self.next_leg);
        self.next_leg = self.next_leg.wrapping_add(1).max(1);
        lock(&shared.inbox).push(Msg::AddLeg {
            id,
            spec,
            rtp,
            rtcp,
            remote,
        });
        let _ = shared.wake.write(1);
        Ok(id)
    }

    /// Stops a leg and closes its sockets (its port goes back to the pool via the caller).
    pub fn remove_leg(&self, id: LegId) {
        self.send(Msg::RemoveLeg(id));
    }

    /// A new RTP destination from the phone's SDP (a re-INVITE).
    pub fn set_remote(&self, id: LegId, to: SocketAddr) {
        self.send(Msg::SetRemote(id, to));
    }

    pub fn create_room(&mut self) -> RoomId {
        let id = RoomId(self.next_room);
        self.next_room = self.next_room.wrapping_add(1).max(1);
        self.send(Msg::Command(Command::CreateRoom(id)));
        id
    }

    pub fn command(&self, cmd: Command) {
        self.send(Msg::Command(cmd));
    }

    /// The next event from the engine (DTMF pressed, a sound played, talking).
    pub fn poll_event(&self) -> Option<MediaEvent> {
        self.shared
            .as_ref()
            .and_then(|s| lock(&s.events).pop_front())
    }
}

struct LegSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Where the phone's SDP asked for RTP, then where its packets come from (symmetric RTP).
    remote: Option<SocketAddr>,
}

fn token(id: LegId, rtcp: bool) -> u64 {
    (u64::from(id.0) << 1) | u64::from(rtcp)
}

fn engine_thread(shared: &Shared, seed: u64) {
    let mut engine = Engine::new(Instant::now(), seed);
    let mut legs: HashMap<LegId, LegSockets> = HashMap::new();
    let mut events = vec![EpollEvent::empty(); EVENTS];
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let wait = engine
            .poll_timeout()
            .saturating_duration_since(Instant::now());
        let timeout = EpollTimeout::try_from(wait).unwrap_or(EpollTimeout::NONE);
        let n = match shared.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => {
                tracing::error!(error = %e, "epoll_wait failed; the media engine stops");
                return;
            }
        };
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        for ev in &events[..n] {
            let t = ev.data();
            if t == WAKE_TOKEN {
                let _ = shared.wake.read();
                let msgs = std::mem::take(&mut *lock(&shared.inbox));
                for m in msgs {
                    apply(shared, &mut engine, &mut legs, m);
                }
                continue;
            }
            let id = LegId((t >> 1) as u32);
            let Some(leg) = legs.get_mut(&id) else {
                continue;
            };
            if t & 1 == 1 {
                // RTCP: read to keep the socket drained; reports are not used yet.
                let _ = leg.rtcp.recv_from(&mut buf);
                continue;
            }
            if let Ok((len, from)) = leg.rtp.recv_from(&mut buf) {
                leg.remote = Some(from);
                shared.stats.packets_in.fetch_add(1, Ordering::Relaxed);
                engine.handle_rtp(now, id, &buf[..len]);
            }
        }
        if now >= engine.poll_timeout() {
            let started = Instant::now();
            engine.handle_tick(now);
            shared
                .stats
                .mix_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            shared.stats.frames.fetch_add(1, Ordering::Relaxed);
            while let Some((id, len)) = engine.poll_transmit(&mut buf) {
                if let Some(leg) = legs.get(&id) {
                    if let Some(to) = leg.remote {
                        if leg.rtp.send_to(&buf[..len], to).is_ok() {
                            shared.stats.packets_out.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        let mut woke = false;
        while let Some(e) = engine.poll_event() {
            lock(&shared.events).push_back(e);
            woke = true;
        }
        if woke {
            (shared.notify)();
        }
    }
}

fn apply(shared: &Shared, engine: &mut Engine, legs: &mut HashMap<LegId, LegSockets>, m: Msg) {
    let result = match m {
        Msg::AddLeg {
            id,
            spec,
            rtp,
            rtcp,
            remote,
        } => {
            let added = engine.add_leg_with_id(id, spec).and_then(|()| {
                let a = shared
                    .epoll
                    .add(&rtp, EpollEvent::new(EpollFlags::EPOLLIN, token(id, false)));
                let b = shared
                    .epoll
                    .add(&rtcp, EpollEvent::new(EpollFlags::EPOLLIN, token(id, true)));
                if a.is_err() || b.is_err() {
                    let _ = engine.remove_leg(id);
                    return Err(kentongan_engine::EngineError::NoLeg(id));
                }
                Ok(())
            });
            if added.is_ok() {
                legs.insert(id, LegSockets { rtp, rtcp, remote });
            }
            added
        }
        Msg::RemoveLeg(id) => {
            if let Some(l) = legs.remove(&id) {
                // Explicitly: a leg's sockets may be duplicates of the relay's (music on
                // hold), and epoll forgets a socket only when its last descriptor closes.
                let _ = shared.epoll.delete(&l.rtp);
                let _ = shared.epoll.delete(&l.rtcp);
            }
            engine.remove_leg(id)
        }
        Msg::SetRemote(id, to) => {
            if let Some(l) = legs.get_mut(&id) {
                l.remote = Some(to);
            }
            Ok(())
        }
        Msg::Command(c) => match c {
            Command::Play { leg, sound, tag } => engine.play(leg, sound, tag),
            Command::StopPlaying(leg) => engine.stop_playing(leg),
            Command::CreateRoom(room) => {
                engine.create_room_with_id(room);
                Ok(())
            }
            Command::RemoveRoom(room) => engine.remove_room(room),
            Command::Join { leg, room } => engine.join(leg, room),
            Command::Leave(leg) => engine.leave(leg),
            Command::SetMuted { leg, muted } => engine.set_muted(leg, muted),
            Command::SetListenGain { leg, gain_db } => engine.set_listen_gain(leg, gain_db),
            Command::SetEcho { leg, on } => engine.set_echo(leg, on),
            Command::Record { leg, spec } => engine.record(leg, spec),
            Command::StopRecording(leg) => engine.stop_recording(leg),
        },
    };
    if let Err(e) = result {
        debug!(error = %e, "media engine command not applied");
    }
    shared
        .stats
        .legs
        .store(engine.leg_count() as u64, Ordering::Relaxed);
    shared
        .stats
        .rooms
        .store(engine.room_count() as u64, Ordering::Relaxed);
}
