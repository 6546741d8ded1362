//! The wire protocol between the boot-test host (`kentongan-vmtest`) and the guest agent
//! (`kentongan-guest-agent`, the binary of this package) over a virtio-serial port.
//!
//! This crate owns the framing ([`encode_request`], [`decode_request`], [`encode_response`],
//! [`decode_response`], [`take_frame`]) and the two message types [`Request`] and [`Response`].
//! It does no I/O itself and uses std only, so the agent binary stays tiny and the host shares
//! one definition of every byte.
//!
//! It deliberately does not decide *whether* the agent runs: the systemd unit in
//! `overlays/vmtest-agent/` starts it only when the hypervisor passed the
//! `kentongan.vmtest-token` credential, and every request must carry that token.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of body. A body starts with
//! [`MAGIC`] and a one-byte kind; strings are a 4-byte big-endian length and the bytes.
//!
//! ```
//! use kentongan_guest_agent::{decode_request, encode_request, take_frame, Request};
//! let req = Request::Exec { id: 7, token: b"s3cret".to_vec(), command: "uname -r".into(), timeout_ms: 5000 };
//! let mut wire = encode_request(&req);
//! let body = take_frame(&mut wire).expect("well-formed").expect("complete");
//! assert_eq!(decode_request(&body).expect("decodes"), req);
//! ```

/// First bytes of every body: a stray writer on the port (a getty, a kernel message) is told
/// apart from a request instead of being executed.
pub const MAGIC: &[u8; 4] = b"KGA1";

/// Frames above this are refused: output is capped well below it, so a larger length means the
/// stream is out of step.
pub const MAX_FRAME: usize = 16 << 20;

/// The agent keeps at most this much of a command's stdout and of its stderr.
pub const MAX_OUTPUT: usize = 4 << 20;

/// The name of the systemd credential holding the per-run token.
pub const CREDENTIAL: &str = "kentongan.vmtest-token";

/// The virtio-serial port name; the guest sees it as `/dev/virtio-ports/kentongan.agent`.
pub const PORT_NAME: &str = "kentongan.agent";

/// What the host asks. `id` pairs a response with its request: a request written before the
/// agent opened the port is answered late, and the host drops answers it no longer waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Answered with [`Response::Pong`] once the token checks out.
    Ping { id: u32, token: Vec<u8> },
    /// Run `sh -c command`; the agent kills it after `timeout_ms`.
    Exec {
        id: u32,
        token: Vec<u8>,
        command: String,
        timeout_ms: u32,
    },
}

impl Request {
    pub fn id(&self) -> u32 {
        match self {
            Request::Ping { id, .. } | Request::Exec { id, .. } => *id,
        }
    }

    pub fn token(&self) -> &[u8] {
        match self {
            Request::Ping { token, .. } | Request::Exec { token, .. } => token,
        }
    }
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Pong {
        id: u32,
    },
    /// The command ran. `status` is the exit code, or 128 + signal when it was killed (as a
    /// shell reports it); `timed_out` says the agent killed it.
    Exited {
        id: u32,
        status: i32,
        timed_out: bool,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// The token did not match; nothing ran.
    Denied {
        id: u32,
    },
    /// The request was malformed or the command could not be started.
    Failed {
        id: u32,
        message: String,
    },
}

impl Response {
    pub fn id(&self) -> u32 {
        match self {
            Response::Pong { id }
            | Response::Exited { id, .. }
            | Response::Denied { id }
            | Response::Failed { id, .. } => *id,
        }
    }
}

/// A body that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    BadMagic,
    UnknownKind(u8),
    Truncated,
    TrailingBytes(usize),
    NotUtf8,
    TooLarge(usize),
}

// Written out by hand rather than with thiserror: the agent binary stays std only.
impl std::error::Error for ProtocolError {}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::BadMagic => write!(f, "frame does not start with {MAGIC:?}"),
            ProtocolError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            ProtocolError::Truncated => write!(f, "frame ends inside a field"),
            ProtocolError::TrailingBytes(n) => write!(f, "{n} bytes after the last field"),
            ProtocolError::NotUtf8 => write!(f, "a text field is not UTF-8"),
            ProtocolError::TooLarge(n) => {
                write!(f, "frame of {n} bytes exceeds the {MAX_FRAME}-byte limit")
            }
        }
    }
}

const PING: u8 = 1;
const EXEC: u8 = 2;
const PONG: u8 = 101;
const EXITED: u8 = 102;
const DENIED: u8 = 103;
const FAILED: u8 = 104;

/// Removes one complete frame from the front of `buf` and returns its body; `Ok(None)` until
/// the whole frame has arrived.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, ProtocolError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let body = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok(Some(body))
}

pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut w = Writer::new();
    match req {
        Request::Ping { id, token } => {
            w.u8(PING);
            w.u32(*id);
            w.bytes(token);
        }
        Request::Exec {
            id,
            token,
            command,
            timeout_ms,
        } => {
            w.u8(EXEC);
            w.u32(*id);
            w.bytes(token);
            w.bytes(command.as_bytes());
            w.u32(*timeout_ms);
        }
    }
    w.finish()
}

pub fn decode_request(body: &[u8]) -> Result<Request, ProtocolError> {
    let mut r = Reader::new(body)?;
    let req = match r.u8()? {
        PING => Request::Ping {
            id: r.u32()?,
            token: r.bytes()?.to_vec(),
        },
        EXEC => Request::Exec {
            id: r.u32()?,
            token: r.bytes()?.to_vec(),
            command: r.text()?,
            timeout_ms: r.u32()?,
        },
        k => return Err(ProtocolError::UnknownKind(k)),
    };
    r.end()?;
    Ok(req)
}

pub fn encode_response(resp: &Response) -> Vec<u8> {
    let mut w = Writer::new();
    match resp {
        Response::Pong { id } => {
            w.u8(PONG);
            w.u32(*id);
        }
        Response::Exited {
            id,
            status,
            timed_out,
            stdout,
            stderr,
        } => {
            w.u8(EXITED);
            w.u32(*id);
            w.u32(*status as u32);
            w.u8(u8::from(*timed_out));
            w.bytes(stdout);
            w.bytes(stderr);
        }
        Response::Denied { id } => {
            w.u8(DENIED);
            w.u32(*id);
        }
        Response::Failed { id, message } => {
            w.u8(FAILED);
            w.u32(*id);
            w.bytes(message.as_bytes());
        }
    }
    w.finish()
}

pub fn decode_response(body: &[u8]) -> Result<Response, ProtocolError> {
    let mut r = Reader::new(body)?;
    let resp = match r.u8()? {
        PONG => Response::Pong { id: r.u32()? },
        EXITED => Response::Exited {
            id: r.u32()?,
            status: r.u32()? as i32,
            timed_out: r.u8()? != 0,
            stdout: r.bytes()?.to_vec(),
            stderr: r.bytes()?.to_vec(),
        },
        DENIED => Response::Denied { id: r.u32()? },
        FAILED => Response::Failed {
            id: r.u32()?,
            message: r.text()?,
        },
        k => return Err(ProtocolError::UnknownKind(k)),
    };
    r.end()?;
    Ok(resp)
}

/// Compares in time independent of where the inputs differ, so the agent's answer time tells
/// nothing about the token.
pub fn tokens_match(expected: &[u8], given: &[u8]) -> bool {
    if expected.len() != given.len() || expected.is_empty() {
        return false;
    }
    expected
        .iter()
        .zip(given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Writer {
        let mut v = vec![0; 4];
        v.extend_from_slice(MAGIC);
        Writer(v)
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        self.0
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(body: &'a [u8]) -> Result<Reader<'a>, ProtocolError> {
        match body.strip_prefix(MAGIC.as_slice()) {
            Some(rest) => Ok(Reader(rest)),
            None => Err(ProtocolError::BadMagic),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.0.len() < n {
            return Err(ProtocolError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Result<String, ProtocolError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| ProtocolError::NotUtf8)
    }
    fn end(&self) -> Result<(), ProtocolError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(ProtocolError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_req(req: Request) {
        let mut wire = encode_request(&req);
        let body = take_frame(&mut wire)
            .expect("frame ok")
            .expect("frame complete");
        assert!(wire.is_empty());
        assert_eq!(decode_request(&body).expect("decodes"), req);
    }

    fn roundtrip_resp(resp: Response) {
        let mut wire = encode_response(&resp);
        let body = take_frame(&mut wire)
            .expect("frame ok")
            .expect("frame complete");
        assert_eq!(decode_response(&body).expect("decodes"), resp);
    }

    #[test]
    fn requests_roundtrip() {
        roundtrip_req(Request::Ping {
            id: 1,
            token: b"abc".to_vec(),
        });
        roundtrip_req(Request::Exec {
            id: u32::MAX,
            token: vec![0, 255, 7],
            command: "echo 'héllo' | tr a-z A-Z".into(),
            timeout_ms: 30_000,
        });
    }

    #[test]
    fn responses_roundtrip() {
        roundtrip_resp(Response::Pong { id: 3 });
        roundtrip_resp(Response::Exited {
            id: 4,
            status: -1,
            timed_out: true,
            stdout: b"out\n".to_vec(),
            stderr: vec![0xff, 0],
        });
        roundtrip_resp(Response::Denied { id: 5 });
        roundtrip_resp(Response::Failed {
            id: 6,
            message: "no sh".into(),
        });
    }

    #[test]
    fn frames_arrive_in_pieces() {
        let wire = [
            encode_request(&Request::Ping {
                id: 1,
                token: b"t".to_vec(),
            }),
            encode_request(&Request::Ping {
                id: 2,
                token: b"t".to_vec(),
            }),
        ]
        .concat();
        let mut buf = Vec::new();
        let mut ids = Vec::new();
        for byte in wire {
            buf.push(byte);
            while let Some(body) = take_frame(&mut buf).expect("frame ok") {
                ids.push(decode_request(&body).expect("decodes").id());
            }
        }
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode_request(b"login: "), Err(ProtocolError::BadMagic));
        assert_eq!(
            decode_request(b"KGA1\x09"),
            Err(ProtocolError::UnknownKind(9))
        );
        assert_eq!(
            decode_request(b"KGA1\x01\0\0"),
            Err(ProtocolError::Truncated)
        );
        let mut body = encode_request(&Request::Ping {
            id: 1,
            token: vec![],
        });
        body.push(0);
        assert_eq!(
            decode_request(&body[4..]),
            Err(ProtocolError::TrailingBytes(1))
        );
        let mut huge = vec![0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            take_frame(&mut huge),
            Err(ProtocolError::TooLarge(_))
        ));
        assert_eq!(take_frame(&mut vec![0, 0]), Ok(None));
    }

    #[test]
    fn token_comparison() {
        assert!(tokens_match(b"abc", b"abc"));
        assert!(!tokens_match(b"abc", b"abd"));
        assert!(!tokens_match(b"abc", b"ab"));
        assert!(!tokens_match(b"", b""));
    }
}
