//! `kentongan-guest-agent`: runs shell commands for the boot-test host, inside a test VM only.
//!
//! It owns one loop: read a framed [`Request`] from the virtio-serial port
//! `/dev/virtio-ports/kentongan.agent`, check its token against the systemd credential
//! `kentongan.vmtest-token`, run `sh -c COMMAND` as root and write back a [`Response`]. Requests
//! run one at a time; the host waits for each answer.
//!
//! It deliberately does not decide whether to run: its unit starts it only when the hypervisor
//! passed the credential (SMBIOS type 11) and the port exists, which never happens on a real
//! machine. Without a token it exits with an error instead of serving.
//!
//! ```text
//! qemu … -smbios type=11,value=io.systemd.credential:kentongan.vmtest-token=RANDOM \
//!        -device virtio-serial -chardev socket,id=agent,path=agent.sock,server=on,wait=off \
//!        -device virtserialport,chardev=agent,name=kentongan.agent
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kentongan_guest_agent::{
    decode_request, encode_response, take_frame, tokens_match, Request, Response, CREDENTIAL,
    MAX_OUTPUT, PORT_NAME,
};

fn main() -> ExitCode {
    let port = PathBuf::from("/dev/virtio-ports").join(PORT_NAME);
    let token = match read_token() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kentongan-guest-agent: no usable {CREDENTIAL} credential: {e}");
            return ExitCode::from(1);
        }
    };
    match serve(&port, &token) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kentongan-guest-agent: {}: {e}", port.display());
            ExitCode::from(1)
        }
    }
}

/// The unit's `LoadCredential=` puts the token under `$CREDENTIALS_DIRECTORY`; the system store
/// is the fallback for a manual start while debugging.
fn read_token() -> std::io::Result<Vec<u8>> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/credentials/@system"));
    let mut token = std::fs::read(dir.join(CREDENTIAL))?;
    while token.last().is_some_and(u8::is_ascii_whitespace) {
        token.pop();
    }
    // A short token could be guessed over the port; the host makes 32 random bytes, hex.
    if token.len() < 16 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "token shorter than 16 bytes",
        ));
    }
    Ok(token)
}

fn serve(port: &Path, token: &[u8]) -> std::io::Result<()> {
    let mut dev = open_when_present(port, Duration::from_secs(120))?;
    eprintln!("kentongan-guest-agent: ready on {}", port.display());
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = dev.read(&mut chunk)?;
        if n == 0 {
            // The host side is not connected: virtio-serial reports end of file until it is.
            thread::sleep(Duration::from_millis(200));
            continue;
        }
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let body = match take_frame(&mut buf) {
                Ok(Some(body)) => body,
                Ok(None) => break,
                Err(e) => {
                    // Out of step: drop what we have; the host times out and reconnects.
                    eprintln!("kentongan-guest-agent: dropping input: {e}");
                    buf.clear();
                    break;
                }
            };
            let response = match decode_request(&body) {
                Ok(req) => handle(req, token),
                Err(e) => Response::Failed {
                    id: 0,
                    message: e.to_string(),
                },
            };
            dev.write_all(&encode_response(&response))?;
            dev.flush()?;
        }
    }
}

/// udev may create the port's link after systemd started us; give it time rather than fail.
fn open_when_present(port: &Path, patience: Duration) -> std::io::Result<File> {
    let deadline = Instant::now() + patience;
    loop {
        match OpenOptions::new().read(true).write(true).open(port) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(250));
            }
            other => return other,
        }
    }
}

fn handle(req: Request, token: &[u8]) -> Response {
    if !tokens_match(token, req.token()) {
        eprintln!("kentongan-guest-agent: denied request {}", req.id());
        return Response::Denied { id: req.id() };
    }
    match req {
        Request::Ping { id, .. } => Response::Pong { id },
        Request::Exec {
            id,
            command,
            timeout_ms,
            ..
        } => match run(&command, Duration::from_millis(u64::from(timeout_ms))) {
            Ok((status, timed_out, stdout, stderr)) => Response::Exited {
                id,
                status,
                timed_out,
                stdout,
                stderr,
            },
            Err(e) => Response::Failed {
                id,
                message: format!("cannot run sh: {e}"),
            },
        },
    }
}

type Outcome = (i32, bool, Vec<u8>, Vec<u8>);

fn run(command: &str, timeout: Duration) -> std::io::Result<Outcome> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .spawn()?;
    // Both pipes are drained on their own threads so a chatty command cannot fill one and
    // block while we wait on the other.
    let out = child.stdout.take().map(|p| thread::spawn(move || drain(p)));
    let err = child.stderr.take().map(|p| thread::spawn(move || drain(p)));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    let join =
        |h: Option<thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok((code, timed_out, join(out), join(err)))
}

/// Reads a pipe to its end, keeping the first [`MAX_OUTPUT`] bytes.
fn drain(mut pipe: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut chunk) {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}
