//! A client for rtpengine's "ng" control protocol: `<cookie> <bencoded dict>` over UDP, answered
//! with the same cookie. `offer` hands rtpengine the caller's SDP and returns the SDP for the
//! callee (with the relay port the callee sends to); `answer` does the same the other way.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::bencode::{self, Value};

pub struct NgClient {
    sock: UdpSocket,
    server: SocketAddr,
    cookie: u64,
}

/// The SDP of a phone that sends and receives PCMU at `media`.
pub fn phone_sdp(media: SocketAddr, session: u64) -> String {
    let ip = media.ip();
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    format!(
        "v=0\r\no=- {session} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        media.port()
    )
}

/// The port of the first m= line.
pub fn media_port(sdp: &str) -> Option<u16> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m="))
        .and_then(|m| m.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
}

impl NgClient {
    pub fn connect(server: SocketAddr) -> anyhow::Result<NgClient> {
        let bind: SocketAddr = if server.is_ipv6() {
            "[::1]:0".parse()?
        } else {
            "127.0.0.1:0".parse()?
        };
        let sock = UdpSocket::bind(bind)?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(NgClient {
            sock,
            server,
            cookie: u64::from(std::process::id()) << 32,
        })
    }

    /// Sends one command, retrying on silence, and returns the reply dictionary.
    pub fn request(&mut self, command: &Value) -> anyhow::Result<Value> {
        self.cookie += 1;
        let cookie = format!("{:x}", self.cookie);
        let mut msg = format!("{cookie} ").into_bytes();
        bencode::encode(command, &mut msg);
        let mut buf = vec![0u8; 65536];
        for _ in 0..6 {
            self.sock.send_to(&msg, self.server)?;
            loop {
                let n = match self.sock.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e.into()),
                };
                let reply = &buf[..n];
                let Some(rest) = reply
                    .strip_prefix(cookie.as_bytes())
                    .and_then(|r| r.strip_prefix(b" "))
                else {
                    continue; // a late answer to an earlier try
                };
                let v = bencode::decode(rest).context("rtpengine sent a malformed reply")?;
                match v.get("result").and_then(Value::as_str) {
                    Some("ok") => return Ok(v),
                    other => bail!(
                        "rtpengine answered {}: {}",
                        other.unwrap_or("?"),
                        v.get("error-reason")
                            .and_then(Value::as_str)
                            .unwrap_or("no reason given")
                    ),
                }
            }
        }
        Err(anyhow!("rtpengine did not answer on {}", self.server))
    }

    /// Sets up one call whose both phones are at `phone`; returns the relay ports
    /// (where the caller sends, where the callee sends).
    pub fn call(&mut self, call_id: &str, phone: SocketAddr) -> anyhow::Result<(u16, u16)> {
        let offer = self.request(&Value::dict([
            ("command", Value::str("offer")),
            ("call-id", Value::str(call_id)),
            ("from-tag", Value::str("caller")),
            ("sdp", Value::str(&phone_sdp(phone, 1))),
        ]))?;
        let to_callee = offer
            .get("sdp")
            .and_then(Value::as_str)
            .and_then(media_port)
            .context("rtpengine's offer reply has no m= port")?;
        let answer = self.request(&Value::dict([
            ("command", Value::str("answer")),
            ("call-id", Value::str(call_id)),
            ("from-tag", Value::str("caller")),
            ("to-tag", Value::str("callee")),
            ("sdp", Value::str(&phone_sdp(phone, 2))),
        ]))?;
        let to_caller = answer
            .get("sdp")
            .and_then(Value::as_str)
            .and_then(media_port)
            .context("rtpengine's answer reply has no m= port")?;
        // The caller sends to the port in the SDP the caller got (the answer's), and so on.
        Ok((to_caller, to_callee))
    }

    pub fn delete(&mut self, call_id: &str) -> anyhow::Result<()> {
        self.request(&Value::dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str(call_id)),
            ("from-tag", Value::str("caller")),
        ]))
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_carries_the_phone_address() {
        let sdp = phone_sdp("127.0.0.1:4000".parse().unwrap(), 7);
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        assert_eq!(media_port(&sdp), Some(4000));
        assert_eq!(
            media_port("v=0\r\nm=audio 30012 RTP/AVP 0 8\r\nm=video 1 RTP/AVP 96\r\n"),
            Some(30012)
        );
        assert_eq!(media_port("v=0\r\n"), None);
    }
}
