//! A running QEMU guest and the test driver's verbs on it.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use kentongan_guest_agent::Response;
use regex::Regex;
use serde_json::json;

use crate::agent::{AgentClient, AgentIoError};
use crate::config::{Accel, Firmware, MachineConfig, Proto, TimeScale};
use crate::error::VmError;
use crate::kvm;
use crate::qemu::{self, Resolved};
use crate::qmp::Qmp;

/// How long the appliance takes under KVM to start the guest agent; scaled like every timeout.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after a login prompt the agent may still take to answer (KVM time).
pub const LOGIN_GRACE: Duration = Duration::from_secs(15);
/// Default for one command in the guest (KVM time).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A QEMU guest started from a [`MachineConfig`].
///
/// Every timeout a method takes is the time the step needs under KVM; the machine stretches it
/// by its [`TimeScale`] (×4 under TCG, more with `KENTONGAN_VMTEST_TIME_FACTOR`).
///
/// **Invariant:** QEMU does not outlive the `Machine`: `Drop` kills it (also when a test
/// panics), and QEMU is started under `setpriv --pdeathsig KILL` so it dies with the thread
/// that started it even if the test process is killed outright. Keep a `Machine` on the thread
/// that started it.
pub struct Machine {
    child: Option<Child>,
    cfg: MachineConfig,
    resolved: Resolved,
    scale: TimeScale,
    agent: Option<AgentClient>,
    fatal: Vec<Regex>,
    secure_boot_denied: Regex,
    started: Instant,
    /// True while a stall may still be blamed on a KVM the probe chose (until the agent
    /// first answers): the machine is then restarted under TCG.
    may_fall_back: bool,
    /// Serial log size last seen, and when it last grew: how a stall is noticed.
    serial_seen: (u64, Instant),
    /// Starts the first QEMU with its CPU stopped (`-S`), a guest that hangs for sure: how the
    /// fallback is tested without a host whose KVM hangs.
    #[cfg(test)]
    freeze_first_launch: bool,
}

impl Machine {
    /// Prepares `run_dir`, resolves the accelerator and host ports, and starts QEMU. Returns at
    /// once; use the `wait_for_*` methods to follow the boot.
    pub fn start(cfg: MachineConfig) -> Result<Machine, VmError> {
        if let Some(iso) = cfg.iso.as_ref().filter(|iso| !iso.is_file()) {
            return Err(VmError::MissingIso(iso.clone()));
        }
        if let Some(disk) = cfg.extra_disks.iter().find(|d| !d.path.is_file()) {
            return Err(VmError::MissingDisk(disk.path.clone()));
        }
        if cfg.iso.is_none() && !cfg.extra_disks.iter().any(|d| d.boot) {
            return Err(VmError::NothingToBoot);
        }
        let run_dir_err = |source| VmError::RunDir {
            dir: cfg.run_dir.clone(),
            source,
        };
        fs::create_dir_all(&cfg.run_dir).map_err(run_dir_err)?;
        if let Some((code, vars)) = cfg.firmware.ovmf() {
            for f in [code, vars] {
                if !Path::new(f).is_file() {
                    return Err(VmError::MissingFirmware(f.into()));
                }
            }
        }
        let fatal = cfg
            .fatal_serial
            .iter()
            .map(|p| compile(p))
            .collect::<Result<Vec<_>, _>>()?;

        let choice = kvm::choose(cfg.accel, cfg.iso.as_deref(), &cfg.run_dir);
        let resolved = Resolved {
            accel: choice.accel,
            forwards: pick_ports(&cfg).map_err(|source| VmError::Io {
                context: "cannot find a free host port".into(),
                source,
            })?,
            serial_log: cfg.run_dir.join("serial.log"),
            qmp_socket: cfg.run_dir.join("qmp.sock"),
            agent_socket: cfg.run_dir.join("agent.sock"),
            ovmf_vars: cfg.run_dir.join("OVMF_VARS.fd"),
            token: random_token().map_err(|source| VmError::Io {
                context: "cannot read /dev/urandom".into(),
                source,
            })?,
        };
        let mut m = Machine {
            child: None,
            scale: TimeScale::from_env(choice.accel),
            cfg,
            resolved,
            agent: None,
            fatal,
            secure_boot_denied: compile(crate::config::SECURE_BOOT_DENIED)?,
            started: Instant::now(),
            may_fall_back: choice.may_fall_back,
            serial_seen: (0, Instant::now()),
            #[cfg(test)]
            freeze_first_launch: false,
        };
        m.note_accel(&choice.reason)?;
        m.launch()?;
        Ok(m)
    }

    /// Starts QEMU for the resolved configuration, with a fresh serial transcript and UEFI
    /// variable store.
    fn launch(&mut self) -> Result<(), VmError> {
        let cfg = &self.cfg;
        let r = &self.resolved;
        let run_dir_err = |source| VmError::RunDir {
            dir: cfg.run_dir.clone(),
            source,
        };
        // A fresh transcript per run: a stale one would satisfy wait_for_serial by itself.
        for stale in [&r.serial_log, &r.qmp_socket, &r.agent_socket] {
            match fs::remove_file(stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(run_dir_err(e)),
                _ => {}
            }
        }
        if let Some((_, vars)) = cfg.firmware.ovmf() {
            fs::copy(vars, &r.ovmf_vars).map_err(run_dir_err)?;
        }
        #[allow(unused_mut)]
        let mut args = qemu::args(cfg, r);
        #[cfg(test)]
        if self.freeze_first_launch {
            args.push("-S".into());
        }
        fs::write(
            cfg.run_dir.join("qemu.cmdline"),
            format!("{} {}\n", qemu::QEMU, args.join(" ")),
        )
        .map_err(run_dir_err)?;
        let log = fs::File::create(cfg.run_dir.join("qemu.log")).map_err(run_dir_err)?;
        let log2 = log.try_clone().map_err(run_dir_err)?;
        let mut cmd = launcher();
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().map_err(|source| VmError::Spawn {
            program: qemu::QEMU.into(),
            source,
        })?;
        self.child = Some(child);
        self.agent = None;
        self.started = Instant::now();
        self.serial_seen = (0, Instant::now());
        Ok(())
    }

    /// Appends the accelerator decision to `accel.log`, so a slow or failed run says why it
    /// ran under what it did.
    fn note_accel(&self, reason: &str) -> Result<(), VmError> {
        use std::io::Write;
        let path = self.cfg.run_dir.join("accel.log");
        let accel = qemu::accel_name(self.resolved.accel);
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{accel}: {reason}"))
            .map_err(|source| VmError::RunDir {
                dir: self.cfg.run_dir.clone(),
                source,
            })
    }

    /// The reason to give up on KVM for this guest, if its serial console says it hangs.
    fn kvm_stall(&mut self) -> Option<String> {
        if !self.may_fall_back {
            return None;
        }
        let len = fs::metadata(&self.resolved.serial_log)
            .map(|m| m.len())
            .unwrap_or(0);
        if len != self.serial_seen.0 {
            self.serial_seen = (len, Instant::now());
            return None;
        }
        let quiet = self.serial_seen.1.elapsed();
        let last = if len > 0 {
            self.serial_tail(1)
        } else {
            String::new()
        };
        kvm::judge_quiet(len, &last, quiet)
    }

    /// Restarts a guest that stalled under KVM under TCG, keeping the stalled transcript as
    /// `serial-kvm-stalled.log`; every later machine runs under TCG too.
    fn fall_back_to_tcg(&mut self, reason: &str) -> Result<(), VmError> {
        kvm::mark_kvm_broken(reason);
        self.kill();
        let _ = fs::copy(
            &self.resolved.serial_log,
            self.cfg.run_dir.join("serial-kvm-stalled.log"),
        );
        self.resolved.accel = Accel::Tcg;
        self.scale = TimeScale::from_env(Accel::Tcg);
        self.may_fall_back = false;
        #[cfg(test)]
        {
            self.freeze_first_launch = false;
        }
        self.note_accel(&format!("restarted under TCG: {reason} under KVM"))?;
        self.launch()
    }

    /// Runs a boot-phase wait; when it stalls under a probed KVM, restarts the guest under TCG
    /// and runs the wait again from the start.
    fn with_kvm_fallback<T>(
        &mut self,
        mut wait: impl FnMut(&mut Machine) -> Result<T, VmError>,
    ) -> Result<T, VmError> {
        match wait(self) {
            Err(VmError::KvmStalled { reason, .. }) => {
                self.fall_back_to_tcg(&reason)?;
                wait(self)
            }
            other => other,
        }
    }

    fn stall_check(&mut self) -> Result<(), VmError> {
        match self.kvm_stall() {
            Some(reason) => Err(VmError::KvmStalled {
                reason,
                serial: self.serial_log().to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The accelerator in use (never [`Accel::Auto`]).
    pub fn accel(&self) -> Accel {
        self.resolved.accel
    }

    pub fn time_scale(&self) -> TimeScale {
        self.scale
    }

    pub fn run_dir(&self) -> &Path {
        &self.cfg.run_dir
    }

    pub fn serial_log(&self) -> &Path {
        &self.resolved.serial_log
    }

    /// Time since QEMU was started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The loopback port forwarded to `guest_port`.
    pub fn host_port(&self, proto: Proto, guest_port: u16) -> Option<u16> {
        self.resolved
            .forwards
            .iter()
            .find(|(p, _, g)| *p == proto && *g == guest_port)
            .map(|(_, h, _)| *h)
    }

    /// The serial output so far, without terminal escapes and carriage returns.
    pub fn serial_text(&self) -> String {
        fs::read(&self.resolved.serial_log)
            .map(|b| clean_serial(&String::from_utf8_lossy(&b)))
            .unwrap_or_default()
    }

    /// The last `lines` lines of the serial output, for failure messages.
    pub fn serial_tail(&self, lines: usize) -> String {
        let text = self.serial_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the guest powers itself off (QEMU exits; a reboot ends QEMU too, as it
    /// runs with `-no-reboot`). Fails on a fatal serial line, a QEMU error exit, or `timeout`.
    pub fn wait_for_shutdown(&mut self, timeout: Duration) -> Result<(), VmError> {
        let what = "the guest to power off";
        self.poll_slowly(what, timeout, |m| {
            let Some(child) = m.child.as_mut() else {
                return Ok(Some(()));
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    m.child = None;
                    m.agent = None;
                    if status.success() {
                        Ok(Some(()))
                    } else {
                        Err(VmError::QemuExited {
                            status: status.to_string(),
                            during: what.into(),
                            serial: m.serial_log().to_owned(),
                        })
                    }
                }
                // `poll_slowly` checks the serial console for fatal lines meanwhile.
                Ok(None) => Ok(None),
                Err(source) => Err(VmError::Io {
                    context: "cannot wait for QEMU".into(),
                    source,
                }),
            }
        })
    }

    /// Waits until the serial output (since power-on) matches `pattern`; returns the match.
    pub fn wait_for_serial(&mut self, pattern: &str, timeout: Duration) -> Result<String, VmError> {
        let re = compile(pattern)?;
        let what = format!("serial output matching `{pattern}`");
        self.with_kvm_fallback(|m| {
            m.poll(&what, timeout, |m| {
                if let Some(found) = re.find(&m.serial_text()) {
                    return Ok(Some(found.as_str().to_owned()));
                }
                m.stall_check()?;
                Ok(None)
            })
        })
    }

    /// Waits until the guest agent answers: systemd got as far as starting it.
    pub fn wait_for_agent(&mut self, timeout: Duration) -> Result<(), VmError> {
        if self.agent.is_some() {
            return Ok(());
        }
        self.with_kvm_fallback(|m| m.wait_for_agent_once(timeout))?;
        // From here on a slow guest is the guest's doing, not KVM's.
        self.may_fall_back = false;
        Ok(())
    }

    fn wait_for_agent_once(&mut self, timeout: Duration) -> Result<(), VmError> {
        let what = "the guest agent (the guest did not reach multi-user.target, or the image lacks overlays/vmtest-agent)";
        // The agent and the serial getty both start with multi-user.target: once a login
        // prompt shows, an agent that is coming answers within seconds. Waiting out the whole
        // boot timeout after that only delays the verdict on an image without one.
        let login = compile(r"(?m)^\S+ login: ")?;
        let grace = self.scale.scale(LOGIN_GRACE);
        let mut login_seen: Option<Instant> = None;
        self.poll(what, timeout, |m| {
            if login_seen.is_none() && login.is_match(&m.serial_text()) {
                login_seen = Some(Instant::now());
            }
            if login_seen.is_some_and(|t| t.elapsed() > grace) {
                return Err(m.agent_error(&format!(
                    "the guest showed a login prompt {}s ago but the agent never answered: \
                     the image lacks overlays/vmtest-agent or the kentongan-guest-agent binary, \
                     or systemd did not import the kentongan.vmtest-token credential",
                    grace.as_secs()
                )));
            }
            let client = match &mut m.agent {
                Some(c) => c,
                None => match AgentClient::connect(&m.resolved.agent_socket, &m.resolved.token) {
                    Ok(c) => m.agent.insert(c),
                    // QEMU has not created the socket yet.
                    Err(_) => return m.stall_check().map(|()| None),
                },
            };
            match client.ping(Duration::from_secs(1)) {
                Ok(Response::Pong { .. }) => Ok(Some(())),
                Ok(Response::Denied { .. }) => {
                    Err(m.agent_error("the agent refused this run's token"))
                }
                Ok(other) => Err(m.agent_error(&format!("unexpected answer {other:?}"))),
                Err(AgentIoError::NoAnswer) => m.stall_check().map(|()| None),
                Err(AgentIoError::Protocol(e)) => {
                    m.agent = None;
                    Err(m.agent_error(&e.to_string()))
                }
                Err(AgentIoError::Io(_)) => {
                    m.agent = None;
                    m.stall_check().map(|()| None)
                }
            }
        })
    }

    /// Runs `sh -c command` as root in the guest; waits for the agent first if need be.
    pub fn execute_with_timeout(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, VmError> {
        self.wait_for_agent(BOOT_TIMEOUT)?;
        let wall = self.scale.scale(timeout);
        let Some(client) = self.agent.as_mut() else {
            return Err(self.agent_error("not connected"));
        };
        match client.exec(command, wall) {
            Ok(Response::Exited {
                status,
                timed_out,
                stdout,
                stderr,
                ..
            }) => {
                if timed_out {
                    return Err(VmError::Timeout {
                        what: format!("`{command}` to finish in the guest"),
                        after: wall,
                        serial: self.serial_log().to_owned(),
                    });
                }
                Ok(CommandOutput {
                    status,
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                })
            }
            Ok(Response::Failed { message, .. }) => Err(self.agent_error(&message)),
            Ok(other) => Err(self.agent_error(&format!("unexpected answer {other:?}"))),
            Err(AgentIoError::NoAnswer) => {
                self.check_alive("a command in the guest")?;
                Err(VmError::Timeout {
                    what: format!("an answer to `{command}`"),
                    after: wall,
                    serial: self.serial_log().to_owned(),
                })
            }
            Err(AgentIoError::Io(e)) => {
                self.agent = None;
                self.check_alive("a command in the guest")?;
                Err(self.agent_error(&e.to_string()))
            }
            Err(AgentIoError::Protocol(e)) => {
                self.agent = None;
                Err(self.agent_error(&e.to_string()))
            }
        }
    }

    /// `(exit status, stdout)` of `sh -c command` in the guest.
    pub fn execute(&mut self, command: &str) -> Result<(i32, String), VmError> {
        let out = self.execute_with_timeout(command, COMMAND_TIMEOUT)?;
        Ok((out.status, out.stdout))
    }

    /// The stdout of `command`, or [`VmError::CommandFailed`] if it exits non-zero.
    pub fn succeed(&mut self, command: &str) -> Result<String, VmError> {
        let out = self.execute_with_timeout(command, COMMAND_TIMEOUT)?;
        if out.status != 0 {
            return Err(VmError::CommandFailed {
                command: command.to_owned(),
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
                serial: self.serial_log().to_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// Retries `command` once a second until it exits 0; returns its stdout.
    pub fn wait_until_succeeds(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<String, VmError> {
        let what = format!("`{command}` to succeed in the guest");
        self.wait_for_agent(BOOT_TIMEOUT)?;
        self.poll_slowly(&what, timeout, |m| {
            let out = m.execute_with_timeout(command, COMMAND_TIMEOUT)?;
            Ok((out.status == 0).then_some(out.stdout))
        })
    }

    /// Waits until systemd reports `unit` active; fails at once if it failed.
    pub fn wait_for_unit(&mut self, unit: &str, timeout: Duration) -> Result<(), VmError> {
        let what = format!("unit {unit} to become active");
        let query = format!("systemctl show --property=ActiveState --value -- '{unit}'");
        self.wait_for_agent(BOOT_TIMEOUT)?;
        self.poll_slowly(&what, timeout, |m| {
            let state = m.succeed(&query)?.trim().to_owned();
            match state.as_str() {
                "active" => Ok(Some(())),
                "failed" => Err(VmError::UnitFailed {
                    unit: unit.to_owned(),
                    state,
                    serial: m.serial_log().to_owned(),
                }),
                _ => Ok(None),
            }
        })
    }

    /// Waits until something in the guest listens on `port`.
    pub fn wait_for_open_port(
        &mut self,
        proto: Proto,
        port: u16,
        timeout: Duration,
    ) -> Result<(), VmError> {
        let flag = match proto {
            Proto::Tcp => "t",
            Proto::Udp => "u",
        };
        let query = format!("ss -Hln{flag} 'sport = :{port}'");
        let what = format!("{} port {port} to be open in the guest", proto.as_str());
        self.wait_for_agent(BOOT_TIMEOUT)?;
        self.poll_slowly(&what, timeout, |m| {
            Ok((!m.succeed(&query)?.trim().is_empty()).then_some(()))
        })
    }

    /// Runs one QMP command whose answer is empty (key presses).
    pub(crate) fn qmp_send(
        &self,
        command: &str,
        arguments: serde_json::Value,
    ) -> Result<(), VmError> {
        let mut qmp = Qmp::connect(&self.resolved.qmp_socket).map_err(|message| VmError::Qmp {
            command: command.into(),
            message,
        })?;
        qmp.execute(command, arguments)
            .map_err(|message| VmError::Qmp {
                command: command.into(),
                message,
            })?;
        Ok(())
    }

    /// Saves what the screen shows: PNG when `path` ends in `.png`, else PPM.
    pub fn screendump(&self, path: &Path) -> Result<(), VmError> {
        let qmp_err = |message: String| VmError::Qmp {
            command: "screendump".into(),
            message,
        };
        let mut qmp = Qmp::connect(&self.resolved.qmp_socket).map_err(qmp_err)?;
        let file = path.display().to_string();
        let args = if path.extension().is_some_and(|e| e == "png") {
            json!({ "filename": file, "format": "png" })
        } else {
            json!({ "filename": file })
        };
        qmp.execute("screendump", args).map_err(qmp_err)?;
        Ok(())
    }

    /// Powers the guest off (through the agent if it is up, else an ACPI power button) and
    /// waits for QEMU to exit; kills it when it does not.
    pub fn shutdown(&mut self) -> Result<(), VmError> {
        if self.child.is_none() {
            return Ok(());
        }
        let mut asked = false;
        if let Some(agent) = self.agent.as_mut() {
            // No answer comes back once poweroff is under way; the exit of QEMU is the answer.
            let _ = agent.exec("systemctl --no-block poweroff", Duration::from_secs(5));
            asked = true;
        }
        if !asked {
            if let Ok(mut qmp) = Qmp::connect(&self.resolved.qmp_socket) {
                let _ = qmp.execute("system_powerdown", json!({}));
            }
        }
        self.agent = None;
        let deadline = Instant::now() + self.scale.scale(Duration::from_secs(30));
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return Ok(());
                }
            }
            thread::sleep(Duration::from_millis(200));
        }
        self.kill();
        Ok(())
    }

    /// Stops QEMU at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn agent_error(&self, message: &str) -> VmError {
        VmError::Agent {
            message: message.to_owned(),
            serial: self.serial_log().to_owned(),
        }
    }

    /// Fails if QEMU is gone or the serial console shows a fatal line.
    fn check_alive(&mut self, during: &str) -> Result<(), VmError> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(VmError::QemuExited {
                    status: status.to_string(),
                    during: during.to_owned(),
                    serial: self.serial_log().to_owned(),
                });
            }
        } else {
            return Err(VmError::QemuExited {
                status: "stopped".into(),
                during: during.to_owned(),
                serial: self.serial_log().to_owned(),
            });
        }
        let text = self.serial_text();
        if self.cfg.firmware == Firmware::UefiSecureBoot {
            if let Some(found) = self.secure_boot_denied.find(&text) {
                return Err(VmError::SecureBootRefused {
                    line: found.as_str().trim().to_owned(),
                    serial: self.serial_log().to_owned(),
                });
            }
        }
        for re in &self.fatal {
            if let Some(found) = re.find(&text) {
                let line = text[found.start()..]
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                return Err(VmError::GuestFailed {
                    during: during.to_owned(),
                    line,
                    serial: self.serial_log().to_owned(),
                });
            }
        }
        Ok(())
    }

    fn poll<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        step: impl FnMut(&mut Machine) -> Result<Option<T>, VmError>,
    ) -> Result<T, VmError> {
        self.poll_every(what, timeout, Duration::from_millis(200), step)
    }

    fn poll_slowly<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        step: impl FnMut(&mut Machine) -> Result<Option<T>, VmError>,
    ) -> Result<T, VmError> {
        self.poll_every(what, timeout, Duration::from_secs(1), step)
    }

    fn poll_every<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        every: Duration,
        mut step: impl FnMut(&mut Machine) -> Result<Option<T>, VmError>,
    ) -> Result<T, VmError> {
        let wall = self.scale.scale(timeout);
        let deadline = Instant::now() + wall;
        loop {
            if let Some(v) = step(self)? {
                return Ok(v);
            }
            self.check_alive(what)?;
            if Instant::now() >= deadline {
                return Err(VmError::Timeout {
                    what: what.to_owned(),
                    after: wall,
                    serial: self.serial_log().to_owned(),
                });
            }
            thread::sleep(every);
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

fn compile(pattern: &str) -> Result<Regex, VmError> {
    Regex::new(pattern).map_err(|e| VmError::Pattern {
        pattern: pattern.to_owned(),
        source: Box::new(e),
    })
}

/// `program` found in `PATH`.
pub(crate) fn find_program(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `setpriv --pdeathsig KILL qemu…` when util-linux has it: QEMU then dies with us even when
/// we are SIGKILLed and no destructor runs. Without it, only `Drop` protects.
pub(crate) fn launcher() -> Command {
    let setpriv = Path::new("/usr/bin/setpriv");
    if setpriv.is_file() {
        let mut cmd = Command::new(setpriv);
        cmd.args(["--pdeathsig", "KILL", "--", qemu::QEMU]);
        cmd
    } else {
        Command::new(qemu::QEMU)
    }
}

/// Drops terminal escapes (GRUB's menu is full of them) and carriage returns, so patterns
/// match the text a person would see.
pub fn clean_serial(raw: &str) -> String {
    static ESCAPES: OnceLock<Option<Regex>> = OnceLock::new();
    let re = ESCAPES.get_or_init(|| {
        Regex::new(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78cDEHM])").ok()
    });
    let text = match re {
        Some(re) => re.replace_all(raw, ""),
        None => raw.into(),
    };
    text.replace('\r', "")
}

pub(crate) fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Chooses a free loopback port for each forward that asked for one. The port is free when
/// chosen; QEMU binds it a moment later, a race we accept for a test harness.
fn pick_ports(cfg: &MachineConfig) -> std::io::Result<Vec<(Proto, u16, u16)>> {
    let mut out: Vec<(Proto, u16, u16)> = Vec::new();
    let mut held_udp = Vec::new();
    let mut held_tcp = Vec::new();
    for f in &cfg.forwards {
        let host = if f.host_port != 0 {
            f.host_port
        } else {
            // Holding each socket until all are chosen keeps two forwards off the same port.
            match f.proto {
                Proto::Udp => {
                    let s = UdpSocket::bind("127.0.0.1:0")?;
                    let port = s.local_addr()?.port();
                    held_udp.push(s);
                    port
                }
                Proto::Tcp => {
                    let s = TcpListener::bind("127.0.0.1:0")?;
                    let port = s.local_addr()?.port();
                    held_tcp.push(s);
                    port
                }
            }
        };
        out.push((f.proto, host, f.guest_port));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Disk, Forward};

    #[test]
    fn serial_is_cleaned() {
        let raw = "\x1b[0;30;47mWelc\x1b[09;04Home to GRUB!\r\n\x1b[?25lkentongan login: ";
        assert_eq!(clean_serial(raw), "Welcome to GRUB!\nkentongan login: ");
    }

    #[test]
    fn ports_are_distinct_and_fixed_ones_kept() {
        let mut cfg = MachineConfig::new("/x.iso", "/tmp/x");
        cfg.forwards = vec![
            Forward::to_guest(Proto::Udp, 5060),
            Forward::to_guest(Proto::Udp, 5062),
            Forward::to_guest(Proto::Tcp, 5060),
            Forward {
                proto: Proto::Tcp,
                host_port: 4444,
                guest_port: 22,
            },
        ];
        let ports = pick_ports(&cfg).expect("free ports");
        assert_eq!(ports.len(), 4);
        assert_ne!(ports[0].1, ports[1].1);
        assert!(ports[..3].iter().all(|(_, h, _)| *h != 0));
        assert_eq!(ports[3], (Proto::Tcp, 4444, 22));
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = random_token().expect("urandom");
        let b = random_token().expect("urandom");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    /// A boot sector that writes `kvm-fallback-ok` to COM1 and halts.
    fn serial_hello_disk(path: &Path) -> Disk {
        let mut sector = vec![
            0xFA, // cli
            0x31, 0xC0, // xor ax, ax
            0x8E, 0xD8, // mov ds, ax
            0xBE, 0x16, 0x7C, // mov si, 0x7c16 (the message)
            0xBA, 0xF8, 0x03, // mov dx, 0x3f8
            0xAC, // next: lodsb
            0x84, 0xC0, // test al, al
            0x74, 0x03, // jz done
            0xEE, // out dx, al
            0xEB, 0xF8, // jmp next
            0xF4, // done: hlt
            0xEB, 0xFD, // jmp done
        ];
        sector.extend_from_slice(b"kvm-fallback-ok\r\n\0");
        sector.resize(510, 0);
        sector.extend_from_slice(&[0x55, 0xAA]);
        // Smaller images look like floppies to SeaBIOS, which then will not boot them.
        sector.resize(1024 * 1024, 0);
        fs::write(path, sector).expect("write boot sector");
        Disk::new(path, crate::config::DiskFormat::Raw)
    }

    /// The whole fallback on a real QEMU: the first guest hangs with an empty console (its CPU
    /// never starts, as CI's KVM guests hung), the machine notices, restarts it under TCG with
    /// the reason on record, and the wait that was under way succeeds.
    #[test]
    fn a_guest_that_stays_silent_under_probed_kvm_is_restarted_under_tcg() {
        if find_program(qemu::QEMU).is_none() {
            panic!(
                "{} is missing: scripts/test installs qemu-system-x86",
                qemu::QEMU
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        kvm::keep_verdicts_in(dir.path());
        let disk = serial_hello_disk(&dir.path().join("hello.img"));
        let mut cfg = MachineConfig::from_disk(disk, dir.path().join("run"));
        cfg.accel = Accel::Tcg;
        let mut m = Machine::start(cfg).expect("start");
        // Pretend the probe chose KVM and the guest then hung: relaunch frozen.
        m.kill();
        m.may_fall_back = true;
        m.freeze_first_launch = true;
        m.launch().expect("relaunch frozen");
        let t0 = Instant::now();
        let seen = m
            .wait_for_serial("kvm-fallback-ok", Duration::from_secs(30))
            .expect("the restarted guest prints its line");
        assert_eq!(seen, "kvm-fallback-ok");
        assert!(
            t0.elapsed() >= kvm::KVM_SILENT_START,
            "restarted before the silence bound"
        );
        assert_eq!(m.accel(), Accel::Tcg);
        let log = fs::read_to_string(m.run_dir().join("accel.log")).expect("accel.log");
        assert!(
            log.lines()
                .last()
                .is_some_and(|l| l
                    .starts_with("tcg: restarted under TCG: the serial console stayed empty for")),
            "{log}"
        );
        assert!(m.run_dir().join("serial-kvm-stalled.log").is_file());
        // Later machines of this process and of this host boot are not given KVM again.
        let later = kvm::choose(Accel::Auto, None, dir.path());
        assert_eq!(later.accel, Accel::Tcg);
        assert!(!later.may_fall_back);
    }

    #[test]
    fn missing_iso_is_reported_before_anything_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = MachineConfig::new(dir.path().join("nope.iso"), dir.path().join("run"));
        match Machine::start(cfg) {
            Err(VmError::MissingIso(p)) => assert!(p.ends_with("nope.iso")),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("started without an ISO"),
        }
    }
}
