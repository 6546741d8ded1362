//! The host end of the guest agent's virtio-serial port (a Unix socket QEMU listens on).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use kentongan_guest_agent::{
    decode_response, encode_request, take_frame, ProtocolError, Request, Response,
};

/// Why an exchange with the agent did not produce an answer.
#[derive(Debug)]
pub enum AgentIoError {
    /// Nothing (yet) within the deadline; the agent may not be up.
    NoAnswer,
    Io(std::io::Error),
    Protocol(ProtocolError),
}

pub struct AgentClient {
    stream: UnixStream,
    token: Vec<u8>,
    next_id: u32,
    /// Bytes of a frame not yet complete when the last read returned.
    pending: Vec<u8>,
}

impl AgentClient {
    pub fn connect(socket: &Path, token: &str) -> std::io::Result<AgentClient> {
        Ok(AgentClient {
            stream: UnixStream::connect(socket)?,
            token: token.as_bytes().to_vec(),
            next_id: 1,
            pending: Vec::new(),
        })
    }

    fn id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    pub fn ping(&mut self, wait: Duration) -> Result<Response, AgentIoError> {
        let id = self.id();
        let req = Request::Ping {
            id,
            token: self.token.clone(),
        };
        self.exchange(&req, wait)
    }

    pub fn exec(&mut self, command: &str, timeout: Duration) -> Result<Response, AgentIoError> {
        let id = self.id();
        let req = Request::Exec {
            id,
            token: self.token.clone(),
            command: command.to_owned(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        // Give the agent time to kill the command and send what it has.
        self.exchange(&req, timeout + Duration::from_secs(10))
    }

    /// Sends `req` and waits for the answer with its id. Answers to earlier requests (pings
    /// written before the agent was up, commands we gave up on) are dropped.
    fn exchange(&mut self, req: &Request, wait: Duration) -> Result<Response, AgentIoError> {
        self.stream
            .write_all(&encode_request(req))
            .map_err(AgentIoError::Io)?;
        let deadline = Instant::now() + wait;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            while let Some(body) = take_frame(&mut self.pending).map_err(|e| {
                self.pending.clear();
                AgentIoError::Protocol(e)
            })? {
                let resp = decode_response(&body).map_err(AgentIoError::Protocol)?;
                if resp.id() == req.id() {
                    return Ok(resp);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AgentIoError::NoAnswer);
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(500))))
                .map_err(AgentIoError::Io)?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(AgentIoError::Io(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "QEMU closed the agent socket",
                    )))
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(AgentIoError::Io(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kentongan_guest_agent::{decode_request, encode_response};
    use std::os::unix::net::UnixListener;

    /// A fake agent that first answers a stale id, then the real one in two pieces.
    #[test]
    fn stale_answers_are_skipped_and_split_frames_joined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let req = loop {
                let n = s.read(&mut chunk).expect("read");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(body) = take_frame(&mut buf).expect("frame") {
                    break decode_request(&body).expect("request");
                }
            };
            assert_eq!(req.token(), b"tok");
            let stale = encode_response(&Response::Pong { id: 999 });
            let real = encode_response(&Response::Exited {
                id: req.id(),
                status: 3,
                timed_out: false,
                stdout: b"hi\n".to_vec(),
                stderr: Vec::new(),
            });
            s.write_all(&stale).expect("write");
            s.write_all(&real[..5]).expect("write");
            s.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(&real[5..]).expect("write");
        });
        let mut client = AgentClient::connect(&sock, "tok").expect("connect");
        match client.exec("echo hi; exit 3", Duration::from_secs(5)) {
            Ok(Response::Exited { status, stdout, .. }) => {
                assert_eq!(status, 3);
                assert_eq!(stdout, b"hi\n");
            }
            other => panic!("unexpected {other:?}"),
        }
        server.join().expect("server thread");
    }

    #[test]
    fn silence_is_no_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let _listener = UnixListener::bind(&sock).expect("bind");
        let mut client = AgentClient::connect(&sock, "tok").expect("connect");
        assert!(matches!(
            client.ping(Duration::from_millis(200)),
            Err(AgentIoError::NoAnswer)
        ));
    }
}
