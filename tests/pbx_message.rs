//! SIP MESSAGE between extensions: delivered at once to a registered phone, and kept (across
//! a `kill -9` too) for an offline one until it registers. The sender is sipp (with digest
//! auth); the recipient is a small phone written here on a raw UDP socket.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use harness::*;
use kentongan_sip::auth::{respond, Challenge};
use kentongan_sip::{HeaderName, Message, Method, Request, Response, StatusCode};

/// A minimal phone: registers with digest auth and answers MESSAGEs with 200.
struct RawPhone {
    sock: UdpSocket,
    ext: String,
    local: SocketAddr,
    cseq: u32,
}

impl RawPhone {
    fn new(ip: &str, ext: &str) -> RawPhone {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = sock.local_addr().unwrap();
        RawPhone {
            sock,
            ext: ext.into(),
            local,
            cseq: 0,
        }
    }

    fn recv(&self, deadline: Instant) -> Option<Message> {
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                if let Ok(m) = Message::parse(buf[..n].to_vec()) {
                    return Some(m);
                }
            }
        }
        None
    }

    fn register(&mut self, pbx: &Pbx, password: &str, collected: &mut Vec<Request>) {
        let mut auth = String::new();
        for _ in 0..2 {
            self.cseq += 1;
            let (ext, local, n) = (&self.ext, self.local, self.cseq);
            let req = format!(
                "REGISTER sip:pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKr{n};rport\r\n\
                 From: <sip:{ext}@pbx.local>;tag=r1\r\nTo: <sip:{ext}@pbx.local>\r\n\
                 Call-ID: reg-{ext}\r\nCSeq: {n} REGISTER\r\nContact: <sip:{ext}@{local}>\r\n\
                 {auth}Expires: 600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            self.sock.send_to(req.as_bytes(), pbx.sip()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match self.recv(deadline) {
                    Some(Message::Response(r)) if r.status == StatusCode::UNAUTHORIZED => {
                        let ch = Challenge::parse(
                            r.headers.get_str(&HeaderName::WwwAuthenticate).unwrap(),
                        )
                        .unwrap();
                        let c = respond(
                            &ch,
                            ext,
                            password,
                            &Method::Register,
                            "sip:pbx.local",
                            "cn",
                            1,
                        );
                        auth = format!("Authorization: {c}\r\n");
                        break;
                    }
                    Some(Message::Response(r)) if r.status == StatusCode::OK => return,
                    Some(Message::Request(r)) => collected.push(self.answer(r)),
                    Some(other) => panic!("unexpected {other:?}"),
                    None => panic!("no answer to REGISTER"),
                }
            }
        }
        panic!("REGISTER not accepted");
    }

    fn answer(&self, req: Request) -> Request {
        let resp = Response::for_request(&req, StatusCode::OK, Some("ph1"));
        let to: SocketAddr = {
            let via = req.headers.top_via().unwrap();
            format!("{}:{}", via.host, via.port.unwrap_or(5060))
                .parse()
                .unwrap()
        };
        self.sock.send_to(&resp.to_bytes(), to).unwrap();
        req
    }

    /// Collects MESSAGE requests (answering each) for `within`.
    fn messages(&self, within: Duration, collected: &mut Vec<Request>) {
        let deadline = Instant::now() + within;
        while let Some(m) = self.recv(deadline) {
            if let Message::Request(r) = m {
                collected.push(self.answer(r));
            }
        }
    }
}

fn send_im(pbx: &Pbx, from: &str, to: &str, tag: &str) {
    let inf = csv(
        pbx,
        &format!("im-{tag}.csv"),
        &[
            from,
            "pbx.local",
            &auth(from, &format!("pw{from}")),
            to,
            tag,
        ],
    );
    let (code, out) = sipp(
        pbx,
        "message.xml",
        &[
            "-inf",
            &inf,
            "-i",
            "127.0.0.2",
            "-p",
            &ports(32060).to_string(),
        ],
        Duration::from_secs(40),
    );
    assert_eq!(code, 0, "MESSAGE not accepted: {out}");
}

fn bodies(reqs: &[Request]) -> Vec<String> {
    let mut v: Vec<String> = reqs
        .iter()
        .filter(|r| r.method == Method::Message)
        .map(|r| String::from_utf8_lossy(&r.body).trim().to_owned())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn message_to_online_and_offline_extension() {
    let mut pbx = Pbx::start(ports(29060));
    pbx.add_user("201", "pw201");
    pbx.add_user("202", "pw202");
    // 202 is offline: the message is kept, also across a crash.
    send_im(&pbx, "201", "202", "offline");
    pbx.kill9();
    pbx.spawn();
    let mut phone = RawPhone::new("127.0.0.3", "202");
    let mut got = Vec::new();
    phone.register(&pbx, "pw202", &mut got);
    phone.messages(Duration::from_secs(2), &mut got);
    assert_eq!(bodies(&got), ["kentongan-im-offline"]);
    let from = got[0].headers.from().unwrap();
    assert_eq!(from.uri.user(), Some("201"));
    // Now online: delivered at once, and the delivered one is not sent again.
    send_im(&pbx, "201", "202", "online");
    let mut got = Vec::new();
    phone.messages(Duration::from_secs(2), &mut got);
    assert_eq!(bodies(&got), ["kentongan-im-online"]);
    assert_eq!(pbx.metric("kentongan_messages_total"), 1);
    // Delivered messages are gone from the store: registering again brings nothing.
    let mut again = Vec::new();
    phone.register(&pbx, "pw202", &mut again);
    phone.messages(Duration::from_secs(1), &mut again);
    assert!(bodies(&again).is_empty(), "{:?}", bodies(&again));
}
