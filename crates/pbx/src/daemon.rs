//! The daemon's event loop: sockets, timers and signals around the sans-IO [`Pbx`].
//!
//! One reader task per SIP socket forwards datagrams into one channel; one loop owns the
//! [`Pbx`]: packet → `handle_datagram`; timer → `handle_timeout`; then `flush` (one SQLite
//! transaction for the batch) and only then the datagrams to send; one sleep re-armed at
//! `poll_timeout`. SIGHUP reloads the config (a bad file is logged and the old one keeps
//! serving); SIGTERM/SIGINT stop gracefully. `/metrics` is a tiny HTTP/1.0 responder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kentongan_sip::{Limits, StreamDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::config::{Config, ListenTransport};
use crate::core::{Clock, FirewallOp, Metrics, Pbx, PbxInit};
use crate::store::Store;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("could not listen on {what} {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no usable UDP or TCP listener in sip.listen")]
    NoUdp,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("could not create {path}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("no randomness from the kernel: {0}")]
    Random(String),
}

pub fn clock() -> Clock {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Clock {
        now: Instant::now(),
        unix_ms,
    }
}

fn random_secret() -> Result<[u8; 32], DaemonError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| DaemonError::Random(e.to_string()))?;
    Ok(b)
}

fn bind_sip_udp(addr: SocketAddr) -> Result<UdpSocket, DaemonError> {
    let err = |source| DaemonError::Bind {
        what: "SIP UDP",
        addr,
        source,
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(err)?;
    }
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    UdpSocket::from_std(sock.into()).map_err(err)
}

fn bind_sip_tcp(addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    let err = |source| DaemonError::Bind {
        what: "SIP TCP/TLS",
        addr,
        source,
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(err)?;
    }
    sock.set_reuse_address(true).map_err(err)?;
    sock.set_nonblocking(true).map_err(err)?;
    sock.bind(&addr.into()).map_err(err)?;
    sock.listen(1024).map_err(err)?;
    TcpListener::from_std(sock.into()).map_err(err)
}

/// Opens the database, creating its directory if needed.
pub fn open_store(config: &Config) -> Result<Store, DaemonError> {
    if let Some(dir) = config
        .database
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::StateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    Ok(Store::open(&config.database)?)
}

enum Inbound {
    /// What one wake-up of a UDP reader found queued: one channel message for many
    /// datagrams, which costs a loaded registrar less than one each.
    Datagrams(Vec<(SocketAddr, Bytes)>),
    Stream {
        from: SocketAddr,
        transport: ListenTransport,
        bytes: Bytes,
    },
    Closed {
        from: SocketAddr,
    },
}

/// The open TCP/TLS connections, by peer address: the writer's queue, and the handle whose
/// drop closes the connection (a banned source's connection is closed, not just ignored).
type Connections = Arc<Mutex<HashMap<SocketAddr, Connection>>>;

struct Connection {
    out: mpsc::Sender<Bytes>,
    _close: tokio::sync::oneshot::Sender<()>,
}

/// Hands `pkt` to the core; returns how many SIP messages that was.
fn feed(pbx: &mut Pbx, c: Clock, pkt: Inbound) -> usize {
    match pkt {
        Inbound::Datagrams(batch) => {
            let n = batch.len();
            for (from, bytes) in batch {
                pbx.handle_datagram_bytes(c, from, bytes);
            }
            return n;
        }
        Inbound::Stream {
            from,
            transport,
            bytes,
        } => pbx.handle_stream_message(c, from, transport, bytes),
        Inbound::Closed { from } => pbx.handle_stream_closed(from),
    }
    1
}

/// The most SIP messages handled before their answers go out: at ~20 µs each, answers wait
/// at most a few milliseconds. (Draining all that is queued instead once let a registration
/// storm build seconds of latency, past T1: every phone retransmitted, and the queue held
/// mostly retransmissions; throughput collapsed.)
const MESSAGES_PER_FLUSH: usize = 256;

/// Datagrams a UDP reader hands over in one channel message.
const DATAGRAMS_PER_BATCH: usize = 32;

async fn serve_stream(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    tx: mpsc::Sender<Inbound>,
    conns: Connections,
) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tx, conns) = (tx.clone(), conns.clone());
        match &tls {
            None => {
                let (rd, wr) = stream.into_split();
                tokio::spawn(connection(rd, wr, from, ListenTransport::Tcp, tx, conns));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(s)) => {
                            let (rd, wr) = tokio::io::split(s);
                            connection(rd, wr, from, ListenTransport::Tls, tx, conns).await;
                        }
                        _ => debug!(%from, "TLS handshake failed"),
                    }
                });
            }
        }
    }
}

/// One TCP or TLS connection: a writer task fed by the core loop, and this reader that frames
/// messages with the sip crate's `StreamDecoder`.
async fn connection<R, W>(
    mut rd: R,
    mut wr: W,
    from: SocketAddr,
    transport: ListenTransport,
    tx: mpsc::Sender<Inbound>,
    conns: Connections,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    let (close_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    if let Ok(mut map) = conns.lock() {
        map.insert(
            from,
            Connection {
                out: out_tx,
                _close: close_tx,
            },
        );
    }
    tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                return;
            }
        }
    });
    let mut decoder = StreamDecoder::new(Limits::default());
    let mut buf = vec![0u8; 16384];
    'conn: loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            // Our entry left the map (the source was banned): hang up.
            _ = &mut closed => break,
        };
        decoder.extend(&buf[..n]);
        while let Some(msg) = decoder.next_message() {
            match msg {
                Ok(m) => {
                    let bytes = m.to_bytes();
                    let inbound = Inbound::Stream {
                        from,
                        transport,
                        bytes,
                    };
                    if tx.send(inbound).await.is_err() {
                        break 'conn;
                    }
                }
                Err(e) => {
                    debug!(%from, error = %e, "bad framing on a stream connection; closing it");
                    break 'conn;
                }
            }
        }
    }
    if let Ok(mut map) = conns.lock() {
        map.remove(&from);
    }
    let _ = tx.send(Inbound::Closed { from }).await;
}

/// Runs the daemon until SIGTERM/SIGINT.
/// `[[ring_group]]` against the user directory (members, mailboxes and clashes with
/// extensions), which the file alone cannot show.
/// The park number and slots too: an extension with one of those numbers could no longer be
/// called (services are matched before extensions).
pub fn check_ring_groups(config: &Config, store: &Store) -> Result<(), crate::config::ConfigError> {
    let plan = crate::routing::Dialplan::new(config);
    let exists = |e: &crate::store::Extension| store.user_exists(&e.0).unwrap_or(false);
    crate::config::check_against_directory(&config.ring_groups, &exists, &|n| {
        plan.service(n).is_some()
    })?;
    crate::config::check_parking_against_directory(&config.parking, &exists)
}

pub async fn run(config_path: &Path, config: Config) -> anyhow::Result<()> {
    let store = open_store(&config)?;
    // Not fatal: extensions may be added after the groups are written (the call then skips
    // the missing member); `check-config` makes it an error.
    if let Err(e) = check_ring_groups(&config, &store) {
        warn!("{e}");
    }
    store.disable_autocheckpoint()?;
    let db_path = config.database.clone();
    std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || {
            crate::store::checkpoint_loop(&db_path, std::time::Duration::from_secs(1))
        })?;
    if let Some(vm) = config.voicemail.as_ref().filter(|v| v.enabled) {
        if let (Some(relay), Some(from)) = (&vm.smtp, &vm.from) {
            crate::mail::spawn_sender(
                config.database.clone(),
                crate::mail::MailSettings {
                    relay: relay.clone(),
                    from: from.clone(),
                    language: vm.language,
                    utc_offset_s: crate::mail::utc_offset_of(Path::new("/etc/localtime")),
                },
            )?;
            if let Err(e) = crate::mail::check_relay(relay) {
                warn!(error = %e, "voicemail mails cannot be sent until this is fixed; they wait in `voicemail queue`");
            }
            info!(relay = %format!("{}:{}", relay.host, relay.port), security = ?relay.security, "voicemail to email on");
        }
    }
    let mut sockets: Vec<Arc<UdpSocket>> = Vec::new();
    let mut tcp_listeners: Vec<(TcpListener, Option<TlsAcceptor>)> = Vec::new();
    for l in &config.listen {
        match l.transport {
            ListenTransport::Udp => match bind_sip_udp(l.addr) {
                Ok(s) => {
                    sockets.push(Arc::new(s));
                    info!(listen = %l, "listening");
                }
                // A host without IPv6 still serves IPv4 from the same config.
                Err(DaemonError::Bind { source, .. })
                    if l.addr.is_ipv6()
                        && l.addr.ip().is_unspecified()
                        && source.raw_os_error() == Some(97) =>
                {
                    warn!(listen = %l, "IPv6 is not available on this host; skipped");
                }
                Err(e) => return Err(e.into()),
            },
            ListenTransport::Tcp | ListenTransport::Tls => {
                let listener = match bind_sip_tcp(l.addr) {
                    Ok(x) => x,
                    Err(DaemonError::Bind { source, .. })
                        if l.addr.is_ipv6()
                            && l.addr.ip().is_unspecified()
                            && source.raw_os_error() == Some(97) =>
                    {
                        warn!(listen = %l, "IPv6 is not available on this host; skipped");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let tls = if l.transport == ListenTransport::Tls {
                    Some(crate::tls::acceptor(&config)?)
                } else {
                    None
                };
                info!(listen = %l, "listening");
                tcp_listeners.push((listener, tls));
            }
        }
    }
    if sockets.is_empty() && tcp_listeners.is_empty() {
        return Err(DaemonError::NoUdp.into());
    }
    let metrics = Arc::new(Metrics::default());
    let metrics_listener = TcpListener::bind(config.metrics_listen)
        .await
        .map_err(|source| DaemonError::Bind {
            what: "metrics",
            addr: config.metrics_listen,
            source,
        })?;
    tokio::spawn(serve_metrics(metrics_listener, metrics.clone()));
    crate::web::start(&config)?;
    let firewall = spawn_firewall()?;
    let secret = random_secret()?;
    let mut seed_bytes = [0u8; 8];
    getrandom::getrandom(&mut seed_bytes).map_err(|e| DaemonError::Random(e.to_string()))?;
    // The media engine's thread rings this when it has events (DTMF, a prompt played).
    let media_ready = Arc::new(tokio::sync::Notify::new());
    let media_notify = {
        let n = media_ready.clone();
        Arc::new(move || n.notify_one()) as Arc<dyn Fn() + Send + Sync>
    };
    let mut pbx = Pbx::new(PbxInit {
        config: config.clone(),
        store,
        metrics: metrics.clone(),
        secret,
        seed: u64::from_le_bytes(seed_bytes),
        clock: clock(),
        media_notify,
    })?;

    // Bounded to about 8,192 datagrams: beyond that the kernel's socket buffer drops, which
    // phones recover from by retransmitting, instead of an ever longer queue here.
    let (tx, mut rx) = mpsc::channel::<Inbound>(8192 / DATAGRAMS_PER_BATCH);
    for s in &sockets {
        let s = s.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                if let Err(e) = s.readable().await {
                    warn!(error = %e, "SIP socket receive error");
                    continue;
                }
                let mut batch = Vec::new();
                while batch.len() < DATAGRAMS_PER_BATCH {
                    match s.try_recv_from(&mut buf) {
                        Ok((n, from)) => batch.push((from, Bytes::copy_from_slice(&buf[..n]))),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            warn!(error = %e, "SIP socket receive error");
                            break;
                        }
                    }
                }
                if !batch.is_empty() && tx.send(Inbound::Datagrams(batch)).await.is_err() {
                    return;
                }
            }
        });
    }
    let conns: Connections = Arc::default();
    for (l, tls) in tcp_listeners {
        tokio::spawn(serve_stream(l, tls, tx.clone(), conns.clone()));
    }
    drop(tx);
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut keepalive = tokio::time::interval(std::time::Duration::from_secs(25));
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for room in config.conferences.iter().filter(|r| r.video || r.record) {
        warn!(
            room = %room.number,
            "`video`/`record` are not implemented yet: this room has audio only and is not recorded"
        );
    }
    info!(domain = %config.domain, "kentongan-pbx ready");
    // The family of each socket, asked once: getsockname per datagram showed in profiles.
    let families: Vec<(bool, Arc<UdpSocket>)> = sockets
        .iter()
        .filter_map(|s| Some((s.local_addr().ok()?.is_ipv4(), s.clone())))
        .collect();
    let send_socket = |to: &SocketAddr| {
        families
            .iter()
            .find(|(v4, _)| *v4 == to.is_ipv4())
            .map(|(_, s)| s)
    };
    loop {
        let deadline = tokio::time::Instant::from_std(pbx.poll_timeout());
        let stop = tokio::select! {
            pkt = rx.recv() => {
                let Some(pkt) = pkt else { break };
                let c = clock();
                let mut handled = feed(&mut pbx, c, pkt);
                // Batch what is already queued into the same transaction.
                while handled < MESSAGES_PER_FLUSH {
                    match rx.try_recv() {
                        Ok(p) => handled += feed(&mut pbx, c, p),
                        Err(_) => break,
                    }
                }
                false
            }
            _ = tokio::time::sleep_until(deadline) => {
                pbx.handle_timeout(clock());
                false
            }
            _ = media_ready.notified() => {
                pbx.handle_media(clock());
                false
            }
            _ = keepalive.tick() => {
                for to in pbx.keepalive_targets(clock()) {
                    if let Some(s) = send_socket(&to) {
                        let _ = s.send_to(b"\r\n\r\n", to).await;
                    }
                }
                false
            }
            _ = hup.recv() => {
                reload(&mut pbx, config_path);
                false
            }
            _ = term.recv() => true,
            _ = int.recv() => true,
        };
        if stop {
            info!("stopping: ending calls");
            pbx.shutdown(clock());
        }
        if let Err(e) = pbx.flush(clock()) {
            error!(error = %e, "database write failed; answers of this batch dropped");
            while pbx.poll_transmit().is_some() {}
            continue;
        }
        for op in pbx.take_firewall_ops() {
            if let FirewallOp::Ban(bans) = &op {
                hang_up(&conns, bans);
            }
            if firewall.send(op).is_err() {
                warn!("the firewall thread has stopped; bans are kept in the daemon only");
            }
        }
        while let Some(t) = pbx.poll_transmit() {
            let conn = conns
                .lock()
                .ok()
                .and_then(|m| m.get(&t.to).map(|c| c.out.clone()));
            if let Some(conn) = conn {
                if conn.try_send(t.bytes).is_err() {
                    warn!(to = %t.to, "TCP connection congested or closed; message dropped");
                }
                continue;
            }
            match send_socket(&t.to) {
                Some(s) => {
                    if let Err(e) = s.send_to(&t.bytes, t.to).await {
                        warn!(to = %t.to, error = %e, "send failed");
                    }
                }
                None => warn!(to = %t.to, "no socket of that address family"),
            }
        }
        if stop {
            break;
        }
    }
    info!("stopped");
    Ok(())
}

/// Closes the TCP/TLS connections of newly banned sources: dropping an entry ends its writer
/// (the queue closes) and its reader (the close handle's receiver wakes).
fn hang_up(conns: &Connections, bans: &[(std::net::IpAddr, u64)]) {
    if let Ok(mut map) = conns.lock() {
        map.retain(|peer, _| {
            let banned = bans.iter().any(|(ip, _)| *ip == peer.ip());
            if banned {
                info!(%peer, "closing the connection of a banned source");
            }
            !banned
        });
    }
}

/// The thread that runs `nft` for the daemon, so a slow or missing `nft` never stalls SIP.
/// Bans queued while one `nft` runs go out together in the next.
fn spawn_firewall() -> std::io::Result<std::sync::mpsc::Sender<FirewallOp>> {
    let (tx, rx) = std::sync::mpsc::channel::<FirewallOp>();
    std::thread::Builder::new()
        .name("firewall".into())
        .spawn(move || {
            let mut last_error = String::new();
            let mut report = |what: &str, r: Result<(), kentongan_firewall::nft::NftError>| {
                match r {
                    Ok(()) => last_error.clear(),
                    // Once per distinct failure: a host without the ruleset would log every ban.
                    Err(e) if e.to_string() != last_error => {
                        last_error = e.to_string();
                        warn!(error = %e, "{what}; the daemon still drops banned sources itself");
                    }
                    Err(_) => {}
                }
            };
            while let Ok(first) = rx.recv() {
                let mut bans = Vec::new();
                for op in std::iter::once(first).chain(rx.try_iter()) {
                    match op {
                        FirewallOp::Ban(b) => bans.extend(b),
                        FirewallOp::Reload {
                            ruleset,
                            bans: kept,
                        } => {
                            if !kentongan_firewall::nft::table_loaded() {
                                continue;
                            }
                            let r = kentongan_firewall::nft::load(&ruleset);
                            let ok = r.is_ok();
                            report("could not reload the firewall ruleset", r);
                            if ok {
                                info!("firewall ruleset reloaded");
                                bans.extend(kept);
                            }
                        }
                    }
                }
                if !bans.is_empty() {
                    let r = kentongan_firewall::nft::add_bans(&bans);
                    report("could not add bans to the kernel firewall", r);
                }
            }
        })?;
    Ok(tx)
}

fn reload(pbx: &mut Pbx, path: &Path) {
    let loaded = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))
        .and_then(|t| Config::from_toml(&t).map_err(|e| e.to_string()));
    match loaded {
        Ok(cfg) => {
            let secret = match random_secret() {
                Ok(s) => s,
                Err(e) => {
                    error!(error = %e, "reload failed; keeping the old configuration");
                    return;
                }
            };
            let restart = pbx.reload(cfg, secret, clock());
            if restart.is_empty() {
                info!(config = %path.display(), "configuration reloaded");
            } else {
                warn!(keys = ?restart, "configuration reloaded; these keys take effect at the next restart");
            }
        }
        Err(e) => {
            error!(config = %path.display(), error = %e, "reload failed; keeping the old configuration")
        }
    }
}

/// The kernel firewall's drop counters in Prometheus text; empty where the table is absent.
fn kernel_counters() -> String {
    let Ok(counters) = kentongan_firewall::nft::counters() else {
        return String::new();
    };
    let mut s = String::from(
        "# HELP kentongan_firewall_dropped_packets_total Packets the kernel firewall dropped, by rule.\n\
         # TYPE kentongan_firewall_dropped_packets_total counter\n",
    );
    for (name, packets) in counters {
        let rule = name.trim_end_matches("_drops");
        s.push_str(&format!(
            "kentongan_firewall_dropped_packets_total{{rule=\"{rule}\"}} {packets}\n"
        ));
    }
    s
}

async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = if path == "/metrics" {
                let kernel = tokio::task::spawn_blocking(kernel_counters)
                    .await
                    .unwrap_or_default();
                ("200 OK", metrics.render() + &kernel)
            } else {
                ("404 Not Found", "see /metrics\n".to_owned())
            };
            let resp = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        });
    }
}
