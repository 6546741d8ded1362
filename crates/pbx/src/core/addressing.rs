//! How we reach a peer: our address as it sees us, the transport, Via and Contact.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use kentongan_sip::{HeaderName, Request, Response};
use tracing::warn;

use super::{Clock, Pbx, TxUse, USER_AGENT};
use crate::config::ListenTransport;

impl Pbx {
    /// Our address as seen from `peer`: the listener's IP if it is specific, else the source
    /// address the kernel picks for that destination.
    pub(super) fn local_ip(&mut self, peer: SocketAddr) -> IpAddr {
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
    pub(super) fn transport_of(&self, peer: SocketAddr) -> ListenTransport {
        self.stream_peers
            .get(&peer)
            .copied()
            .unwrap_or(ListenTransport::Udp)
    }

    pub(super) fn local_port(&self, peer: SocketAddr) -> u16 {
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

    pub(super) fn host_port(&mut self, peer: SocketAddr) -> String {
        let ip = self.local_ip(peer);
        let port = self.local_port(peer);
        SocketAddr::new(ip, port).to_string()
    }

    pub(super) fn add_via(&mut self, req: &mut Request, peer: SocketAddr) {
        let branch = self.ep.new_branch();
        let hp = self.host_port(peer);
        let transport = self.transport_of(peer).to_string().to_ascii_uppercase();
        req.headers.push_front(
            HeaderName::Via,
            format!("SIP/2.0/{transport} {hp};branch={branch};rport"),
        );
    }

    pub(super) fn our_contact(&mut self, peer: SocketAddr) -> String {
        let param = match self.transport_of(peer) {
            ListenTransport::Udp => String::new(),
            t => format!(";transport={t}"),
        };
        format!("<sip:pbx@{}{param}>", self.host_port(peer))
    }

    pub(super) fn send(&mut self, clock: Clock, peer: SocketAddr, mut req: Request, usage: TxUse) {
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
}

/// Every response carries a Content-Length (required over TCP) and our Server header.
pub(super) fn finish_response(mut resp: Response) -> Response {
    if !resp.headers.contains(&HeaderName::ContentLength) && resp.body.is_empty() {
        resp.headers.set(HeaderName::ContentLength, "0");
    }
    resp.headers.push(HeaderName::Server, USER_AGENT);
    resp
}
