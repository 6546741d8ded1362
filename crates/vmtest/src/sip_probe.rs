//! A tiny SIP user agent on the host side of a port forward: enough to prove the guest's PBX
//! answers OPTIONS and lets an extension register through a digest challenge. It speaks plain
//! UDP over loopback and uses the sip crate for parsing and digest maths.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use kentongan_sip::auth::{respond, Challenge};
use kentongan_sip::{HeaderName, Message, Method, Response};

/// What a probe saw instead of what it wanted.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no SIP answer from 127.0.0.1:{port} within {}s", after.as_secs())]
    NoAnswer { port: u16, after: Duration },
    #[error("{what}: {status} {reason}")]
    Status {
        what: &'static str,
        status: u16,
        reason: String,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
}

pub struct SipProbe {
    socket: UdpSocket,
    port: u16,
    domain: String,
    seq: u32,
    /// Distinguishes this probe's Call-IDs, tags and branches from any other run's.
    salt: String,
    user_agent: String,
}

impl SipProbe {
    pub fn new(port: u16, domain: &str, salt: &str) -> Result<SipProbe, ProbeError> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(("127.0.0.1", port))?;
        Ok(SipProbe {
            socket,
            port,
            domain: domain.to_owned(),
            seq: 0,
            salt: salt.to_owned(),
            user_agent: "kentongan-vmtest".into(),
        })
    }

    /// Sends as another User-Agent (e.g. a scanner's, to prove it gets banned).
    pub fn with_user_agent(mut self, user_agent: &str) -> SipProbe {
        self.user_agent = user_agent.to_owned();
        self
    }

    /// Sends OPTIONS until a final answer arrives (the PBX may still be starting) or `timeout`
    /// passes; returns the answer.
    pub fn options(&mut self, timeout: Duration) -> Result<Response, ProbeError> {
        let deadline = Instant::now() + timeout;
        loop {
            let request =
                self.request("OPTIONS", "probe", &format!("sip:{}", self.domain), None, 0);
            match self.exchange(&request, Duration::from_secs(2)) {
                Ok(response) => return Ok(response),
                Err(ProbeError::NoAnswer { .. }) if Instant::now() < deadline => continue,
                Err(ProbeError::NoAnswer { .. }) => {
                    return Err(ProbeError::NoAnswer {
                        port: self.port,
                        after: timeout,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// REGISTER, answer the first digest challenge, and return the final answer.
    pub fn register(&mut self, user: &str, password: &str) -> Result<Response, ProbeError> {
        let uri = format!("sip:{}", self.domain);
        let first = self.request("REGISTER", user, &uri, None, 60);
        let challenge = self.exchange(&first, Duration::from_secs(5))?;
        if challenge.status.0 != 401 {
            return Err(ProbeError::Status {
                what: "REGISTER without credentials was not challenged",
                status: challenge.status.0,
                reason: challenge.reason,
            });
        }
        let header = challenge
            .headers
            .get_all(&HeaderName::WwwAuthenticate)
            .next()
            .ok_or_else(|| ProbeError::Protocol("401 without WWW-Authenticate".into()))?;
        let parsed = Challenge::parse(header.as_str()).map_err(|e| {
            ProbeError::Protocol(format!("bad challenge `{}`: {e}", header.as_str()))
        })?;
        let credentials = respond(
            &parsed,
            user,
            password,
            &Method::Register,
            &uri,
            &format!("{}c", self.salt),
            1,
        );
        let second = self.request("REGISTER", user, &uri, Some(&credentials.to_string()), 60);
        self.exchange(&second, Duration::from_secs(5))
    }

    fn request(
        &mut self,
        method: &str,
        user: &str,
        uri: &str,
        auth: Option<&str>,
        expires: u32,
    ) -> String {
        self.seq += 1;
        let local = self
            .socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "127.0.0.1:5060".into());
        let (salt, seq, domain, agent) = (&self.salt, self.seq, &self.domain, &self.user_agent);
        let mut text = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};rport;branch=z9hG4bK{salt}{seq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag={salt}\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: {salt}-{method}@kentongan-vmtest\r\n\
             CSeq: {seq} {method}\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             User-Agent: {agent}\r\n"
        );
        if method == "REGISTER" {
            text.push_str(&format!("Expires: {expires}\r\n"));
        }
        if let Some(auth) = auth {
            text.push_str(&format!("Authorization: {auth}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text
    }

    /// Sends `request` (resending per RFC 3261 timer A) and returns the first final answer.
    fn exchange(&mut self, request: &str, timeout: Duration) -> Result<Response, ProbeError> {
        let deadline = Instant::now() + timeout;
        let mut resend = Duration::from_millis(500);
        let mut buf = vec![0u8; 65_535];
        self.socket.send(request.as_bytes())?;
        let mut next_send = Instant::now() + resend;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ProbeError::NoAnswer {
                    port: self.port,
                    after: timeout,
                });
            }
            self.socket.set_read_timeout(Some(
                next_send
                    .min(deadline)
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(10)),
            ))?;
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    if let Ok(Message::Response(r)) = Message::parse(buf[..n].to_vec()) {
                        if r.status.0 >= 200 {
                            return Ok(r);
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    if Instant::now() >= next_send {
                        let _ = self.socket.send(request.as_bytes());
                        resend = (resend * 2).min(Duration::from_secs(4));
                        next_send = Instant::now() + resend;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Sends OPTIONS over a TCP connection to `127.0.0.1:port` and returns the status line of the
/// answer, or `None` if none came within `timeout` (connection refused, reset, closed or
/// silent: a firewall that drops leaves the host side of a QEMU forward hanging or closed).
pub fn tcp_options(port: u16, domain: &str, salt: &str, timeout: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    let local = stream.local_addr().ok()?;
    let request = format!(
        "OPTIONS sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK{salt}t\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{domain}>;tag={salt}\r\n\
         To: <sip:probe@{domain}>\r\n\
         Call-ID: {salt}-tcp@kentongan-vmtest\r\n\
         CSeq: 1 OPTIONS\r\n\
         User-Agent: kentongan-vmtest\r\n\
         Content-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .ok()?;
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = got.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&got[..end]).into_owned();
            return line.starts_with("SIP/2.0 ").then_some(line);
        }
    }
    None
}
