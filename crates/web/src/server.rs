//! The HTTPS listener: TLS with the PBX's certificate (tokio-rustls, as SIP/TLS), HTTP/1.1 by
//! hyper, the routes by axum. It runs on its own thread with its own single-threaded runtime,
//! so neither a slow page nor an argon2 verification ever delays the SIP loop, and a panic in
//! a page ends that request's task, not the daemon.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use kentongan_firewall::policy::Cidr;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use tracing::{debug, info, warn};

use crate::backend::Backend;
use crate::guard::LoginGuard;
use crate::session::Sessions;

/// What the daemon hands the web admin.
pub struct WebConfig {
    pub listen: Vec<SocketAddr>,
    pub tls: TlsAcceptor,
    pub session_idle: Duration,
    /// `[firewall] trusted`: slowed after failed logins, never banned.
    pub trusted: Vec<Cidr>,
    pub ban_after: u32,
    pub ban_duration: Duration,
    /// Shown on the dashboard.
    pub version: String,
    /// The pages' language for an account that never chose one (`[voicemail] language`).
    pub default_lang: crate::i18n::Lang,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("could not listen on web.listen {addr}; free the port or change `web.listen`")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not start the web admin's thread")]
    Thread(#[source] std::io::Error),
}

/// The peer of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

pub(crate) struct AppState {
    pub backend: Arc<dyn Backend>,
    pub sessions: Mutex<Sessions>,
    pub guard: Mutex<LoginGuard>,
    /// Addresses this server banned, until when: refused before the database is asked.
    pub banned: Mutex<HashMap<IpAddr, Instant>>,
    pub started: Instant,
    pub version: String,
    pub default_lang: crate::i18n::Lang,
    /// `[firewall] trusted`, as written, for the Firewall page.
    pub trusted: Vec<String>,
}

impl AppState {
    pub fn banned_here(&self, ip: IpAddr, now: Instant) -> bool {
        self.banned
            .lock()
            .map(|mut m| {
                m.retain(|_, until| *until > now);
                m.contains_key(&ip)
            })
            .unwrap_or(false)
    }
}

/// Binds every listener (so a taken port fails the daemon's start), then serves them on a
/// thread of their own until the process ends.
pub fn spawn(config: WebConfig, backend: Arc<dyn Backend>) -> Result<(), WebError> {
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let l = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| WebError::Bind {
                addr: *addr,
                source,
            })?;
        listeners.push(l);
    }
    let state = Arc::new(AppState {
        backend,
        sessions: Mutex::new(Sessions::new(config.session_idle)),
        trusted: config.trusted.iter().map(ToString::to_string).collect(),
        guard: Mutex::new(LoginGuard::new(
            config.trusted,
            config.ban_after,
            config.ban_duration,
        )),
        banned: Mutex::new(HashMap::new()),
        started: Instant::now(),
        version: config.version,
        default_lang: config.default_lang,
    });
    let tls = config.tls;
    std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    warn!(error = %e, "the web admin could not start its runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let router = crate::routes::router(state.clone());
                let mut tasks = Vec::new();
                for l in listeners {
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => {
                            if let Ok(a) = l.local_addr() {
                                info!(listen = %a, "web admin listening (HTTPS)");
                            }
                            tasks.push(tokio::spawn(accept_loop(
                                l,
                                tls.clone(),
                                router.clone(),
                                state.clone(),
                            )));
                        }
                        Err(e) => warn!(error = %e, "web admin listener unusable"),
                    }
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
        .map_err(WebError::Thread)?;
    Ok(())
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: TlsAcceptor,
    router: axum::Router,
    state: Arc<AppState>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "web accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tls = tls.clone();
        let router = router.clone();
        let state = state.clone();
        tokio::spawn(async move {
            // A banned source is dropped before the TLS handshake: it learns nothing.
            if state.banned_here(peer.ip(), Instant::now()) {
                return;
            }
            let backend = state.backend.clone();
            let ip = peer.ip();
            match tokio::task::spawn_blocking(move || backend.is_banned(ip)).await {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => return,
                Ok(Err(e)) => {
                    warn!(error = %e, "web admin could not read bans; connection refused");
                    return;
                }
                Err(_) => return,
            }
            let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await
            {
                Ok(Ok(s)) => s,
                _ => return,
            };
            let svc = hyper::service::service_fn(move |mut req| {
                req.extensions_mut().insert(Peer(peer));
                let mut r = router.clone();
                async move { r.call(req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
