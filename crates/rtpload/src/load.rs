//! The generator: one UDP socket plays every phone. Each relayed call has two legs (the relay
//! port the caller sends to and the one the callee sends to); the generator sends to all legs
//! round-robin at a fixed total rate, so each leg gets an evenly spaced stream, and the relay
//! latches every leg's far side to the generator's socket (symmetric RTP), so everything the
//! relay forwards comes back to the same socket. Sending and receiving are batched
//! (sendmmsg/recvmmsg, up to 64 packets per call); between bursts it sleeps in ppoll with a
//! 1 µs timer slack, so it wakes as soon as a packet is back or the next burst is due.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, sockopt, ControlMessage, MsgFlags, MultiHeaders,
    SockaddrStorage,
};
use nix::sys::time::TimeSpec;

use crate::probe::{Probe, PACKET_LEN};
use crate::procfs;
use crate::sweep::{quantile, StepResult};

const BATCH: usize = 64;

pub struct Generator {
    sock: UdpSocket,
    legs: Vec<SockaddrStorage>,
    seq: Vec<u16>,
    next_leg: usize,
    epoch: Instant,
    send_hdrs: MultiHeaders<SockaddrStorage>,
    recv_hdrs: MultiHeaders<SockaddrStorage>,
    send_bufs: Vec<[u8; PACKET_LEN]>,
    recv_bufs: Vec<[u8; 2048]>,
}

/// What one receive pass saw.
#[derive(Default)]
struct Received {
    packets: usize,
}

impl Generator {
    /// `sock` is the phones' socket (its address is in every SDP); `legs` the relay addresses
    /// to send to.
    pub fn new(sock: UdpSocket, legs: &[SocketAddr]) -> anyhow::Result<Generator> {
        sock.set_nonblocking(true)?;
        // ppoll wakes up on time instead of up to 50 µs late.
        let _ = nix::sys::prctl::set_timerslack(1000);
        // Room for a second of the highest rate: a busy machine may preempt the generator, and
        // drops in its own socket must not be blamed on the relay. FORCE needs CAP_NET_ADMIN;
        // without it the kernel's rmem_max caps the plain option.
        let want = 64 << 20;
        if setsockopt(&sock, sockopt::RcvBufForce, &want).is_err() {
            setsockopt(&sock, sockopt::RcvBuf, &want).context("SO_RCVBUF")?;
        }
        let _ = setsockopt(&sock, sockopt::SndBufForce, &(8 << 20));
        Ok(Generator {
            sock,
            legs: legs.iter().map(|&a| SockaddrStorage::from(a)).collect(),
            seq: vec![0; legs.len()],
            next_leg: 0,
            epoch: Instant::now(),
            send_hdrs: MultiHeaders::preallocate(BATCH, None),
            recv_hdrs: MultiHeaders::preallocate(BATCH, None),
            send_bufs: vec![[0u8; PACKET_LEN]; BATCH],
            recv_bufs: vec![[0u8; 2048]; BATCH],
        })
    }

    pub fn legs(&self) -> usize {
        self.legs.len()
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Sends up to `n` (≤ BATCH) packets to the next legs; returns how many left.
    fn send_batch(&mut self, n: usize, step: u32, measured: bool) -> anyhow::Result<usize> {
        let n = n.min(BATCH);
        let sent_ns = self.now_ns();
        let mut addrs = Vec::with_capacity(n);
        let first = self.next_leg;
        for (i, buf) in self.send_bufs.iter_mut().take(n).enumerate() {
            let leg = (first + i) % self.legs.len();
            let seq = self.seq[leg];
            Probe {
                leg: leg as u32,
                seq,
                step,
                measured,
                sent_ns,
            }
            .write(buf);
            addrs.push(Some(self.legs[leg]));
        }
        let iovs: Vec<[IoSlice<'_>; 1]> = self.send_bufs[..n]
            .iter()
            .map(|b| [IoSlice::new(&b[..])])
            .collect();
        let sent = match sendmmsg(
            self.sock.as_raw_fd(),
            &mut self.send_hdrs,
            &iovs,
            &addrs,
            [] as [ControlMessage<'_>; 0],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(r) => r.count(),
            Err(Errno::EAGAIN | Errno::ENOBUFS | Errno::ECONNREFUSED) => 0,
            Err(e) => return Err(e).context("sendmmsg"),
        };
        for i in 0..sent {
            let leg = (first + i) % self.legs.len();
            self.seq[leg] = self.seq[leg].wrapping_add(1);
        }
        self.next_leg = (first + sent) % self.legs.len();
        Ok(sent)
    }

    /// Receives what is queued (without waiting) and hands each probe to `seen` with the
    /// receive time.
    fn receive(&mut self, mut seen: impl FnMut(Probe, u64)) -> anyhow::Result<Received> {
        let mut got = Received::default();
        loop {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
                .recv_bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            let lens: Vec<usize> = match recvmmsg(
                self.sock.as_raw_fd(),
                &mut self.recv_hdrs,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(r) => r
                    .map(|m: nix::sys::socket::RecvMsg<'_, '_, SockaddrStorage>| m.bytes)
                    .collect(),
                Err(Errno::EAGAIN | Errno::ECONNREFUSED) => Vec::new(),
                Err(e) => return Err(e).context("recvmmsg"),
            };
            let now = self.epoch.elapsed().as_nanos() as u64;
            for (buf, &len) in self.recv_bufs.iter().zip(&lens) {
                if let Some(p) = Probe::read(&buf[..len]) {
                    seen(p, now);
                }
            }
            got.packets += lens.len();
            if lens.len() < BATCH {
                return Ok(got);
            }
        }
    }

    /// Sends `rounds` packets to every leg, `gap` apart, so that the relay latches both sides
    /// of every call to this socket; returns how many legs had a packet delivered in the last
    /// round (all of them when the setup worked).
    pub fn prime(&mut self, rounds: u32, gap: Duration) -> anyhow::Result<usize> {
        let mut delivered = vec![false; self.legs.len()];
        for round in 0..rounds {
            let step = u32::MAX - round;
            let last = round + 1 == rounds;
            let mut mark = |p: Probe, _| {
                if last && p.step == step {
                    if let Some(d) = delivered.get_mut(p.leg as usize) {
                        *d = true;
                    }
                }
            };
            self.next_leg = 0;
            let mut left = self.legs.len();
            while left > 0 {
                left -= self.send_batch(left.min(BATCH), step, false)?;
                self.receive(&mut mark)?;
            }
            let until = Instant::now() + gap;
            while Instant::now() < until {
                self.receive(&mut mark)?;
                self.wait(Duration::from_millis(1))?;
            }
        }
        self.next_leg = 0;
        Ok(delivered.iter().filter(|&&d| d).count())
    }

    /// Waits until the socket is readable or `limit` has passed.
    fn wait(&self, limit: Duration) -> anyhow::Result<()> {
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        match ppoll(&mut fds, Some(TimeSpec::from_duration(limit)), None) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(e).context("ppoll"),
        }
    }

    /// One step: `warmup` at `rate` (not counted), then `window` measured, then up to `drain`
    /// for the measured packets still in flight. `relay_pid` is sampled for CPU time.
    ///
    /// Packets go out in small bursts (200 µs worth, at most 64). Between bursts the generator
    /// spins on its non-blocking socket instead of sleeping: a sleeping receiver makes every
    /// packet the relay sends pay for waking it up (on this VM that was 15 % of the relay's
    /// CPU, a cost no relay pays for phones on other machines), and a wake-up delay would be
    /// added to every latency sample. The generator therefore always uses its whole core;
    /// `generator_busy` is the share of its loop that found work.
    pub fn run_step(
        &mut self,
        step: u32,
        rate: u64,
        warmup: Duration,
        window: Duration,
        drain: Duration,
        relay_pid: Option<u32>,
    ) -> anyhow::Result<StepResult> {
        let start = Instant::now();
        let window_start = start + warmup;
        let send_end = window_start + window;
        let burst = (rate / 5000).clamp(1, BATCH as u64);
        let me = std::process::id();
        let mut sent_total: u64 = 0;
        let mut sent_measured: u64 = 0;
        let mut received: u64 = 0;
        let mut lat_us: Vec<u32> =
            Vec::with_capacity((rate as f64 * window.as_secs_f64() * 1.1) as usize);
        let (mut cpu_start, mut cpu_end) = (None, None);
        let (mut gen_start, mut gen_end) = (None, None);
        let mut window_open = false;
        let mut last = Instant::now();
        let mut max_stall = Duration::ZERO;
        let mut idle = Duration::ZERO;
        loop {
            let now = Instant::now();
            let in_window = now >= window_start && now < send_end;
            if in_window {
                max_stall = max_stall.max(now - last);
                if !window_open {
                    window_open = true;
                    cpu_start = relay_pid.and_then(procfs::cpu_seconds);
                    gen_start = procfs::cpu_seconds(me);
                }
            }
            last = now;
            if now >= send_end && cpu_end.is_none() && gen_end.is_none() {
                cpu_end = relay_pid.and_then(procfs::cpu_seconds);
                gen_end = procfs::cpu_seconds(me);
            }
            let mut worked = false;
            if now < send_end {
                let due = ((now - start).as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
                let lag = due.saturating_sub(sent_total);
                if lag >= burst {
                    let n = self.send_batch(lag.min(BATCH as u64) as usize, step, in_window)?;
                    sent_total += n as u64;
                    if in_window {
                        sent_measured += n as u64;
                    }
                    worked |= n > 0;
                }
            } else if received >= sent_measured || now >= send_end + drain {
                break;
            }
            let got = self.receive(|p, at| {
                if p.step == step && p.measured {
                    received += 1;
                    let us = at.saturating_sub(p.sent_ns) / 1000;
                    lat_us.push(us.min(u64::from(u32::MAX)) as u32);
                }
            })?;
            worked |= got.packets > 0;
            if !worked && in_window {
                idle += now.elapsed();
            }
        }
        lat_us.sort_unstable();
        let secs = window.as_secs_f64();
        // A short stall (another process got the core) is made up right after; falling short
        // over the whole window means the generator cannot sustain the rate.
        let behind = (sent_measured as f64) < 0.98 * rate as f64 * secs;
        let per_sec = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a) / secs),
            _ => None,
        };
        Ok(StepResult {
            offered_pps: rate,
            sent: sent_measured,
            received,
            delivered_pps: received as f64 / secs,
            loss: if sent_measured == 0 {
                0.0
            } else {
                1.0 - received as f64 / sent_measured as f64
            },
            p50_us: quantile(&lat_us, 0.50),
            p99_us: quantile(&lat_us, 0.99),
            max_us: quantile(&lat_us, 1.0),
            relay_cpu: per_sec(cpu_start, cpu_end),
            generator_behind: behind,
            generator_max_stall_us: max_stall.as_micros() as u64,
            generator_cpu: per_sec(gen_start, gen_end),
            generator_busy: 1.0 - idle.as_secs_f64() / secs,
        })
    }
}
