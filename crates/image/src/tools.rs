//! Host tools: preflight checks and running them with their output kept in a stage log.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;

/// A host tool the build runs, and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTool {
    /// A command looked up in PATH, or an absolute path that must exist.
    pub command: &'static str,
    pub package: &'static str,
}

/// What every image build needs. Binaries additionally need cargo, which the Rust toolchain
/// provides rather than Debian.
pub const IMAGE_TOOLS: &[HostTool] = &[
    HostTool {
        command: "mmdebstrap",
        package: "mmdebstrap",
    },
    HostTool {
        command: "mksquashfs",
        package: "squashfs-tools",
    },
    HostTool {
        command: "xorriso",
        package: "xorriso",
    },
    HostTool {
        command: "grub-mkimage",
        package: "grub-common",
    },
    HostTool {
        command: "/usr/lib/grub/i386-pc/boot_hybrid.img",
        package: "grub-pc-bin",
    },
    HostTool {
        command: "/usr/lib/grub/x86_64-efi/linux.mod",
        package: "grub-efi-amd64-bin",
    },
    HostTool {
        command: "mcopy",
        package: "mtools",
    },
    HostTool {
        command: "mkfs.fat",
        package: "dosfstools",
    },
    HostTool {
        command: "dpkg-deb",
        package: "dpkg",
    },
    HostTool {
        command: "eatmydata",
        package: "eatmydata",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("missing host tools: {}", .0.iter().map(|t| format!("{} (package {})", t.command, t.package)).collect::<Vec<_>>().join(", "))]
    MissingTools(Vec<HostTool>),
    #[error("building an image needs root (it creates device nodes, mounts and chroots)")]
    NotRoot,
    #[error("cargo is not in PATH, but the recipe installs workspace binaries")]
    NoCargo,
}

impl PreflightError {
    pub fn hint(&self) -> String {
        match self {
            PreflightError::MissingTools(tools) => {
                let mut packages: Vec<&str> = tools.iter().map(|t| t.package).collect();
                packages.dedup();
                format!("apt-get install {}", packages.join(" "))
            }
            PreflightError::NotRoot => "run it as root, e.g. sudo kentongan build …".into(),
            PreflightError::NoCargo => {
                "install the Rust toolchain (scripts/build does), or remove [[binaries]]".into()
            }
        }
    }
}

/// Where `command` is found, if anywhere.
pub fn find_in_path(command: &str) -> Option<PathBuf> {
    if command.starts_with('/') {
        let path = PathBuf::from(command);
        return path.exists().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
}

pub fn missing(tools: &[HostTool]) -> Vec<HostTool> {
    tools
        .iter()
        .copied()
        .filter(|t| find_in_path(t.command).is_none())
        .collect()
}

/// Everything the build needs from the host, checked before any work starts.
pub fn preflight(needs_cargo: bool) -> Result<(), PreflightError> {
    let missing = missing(IMAGE_TOOLS);
    if !missing.is_empty() {
        return Err(PreflightError::MissingTools(missing));
    }
    if !is_root() {
        return Err(PreflightError::NotRoot);
    }
    if needs_cargo && find_in_path("cargo").is_none() {
        return Err(PreflightError::NoCargo);
    }
    Ok(())
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The first line a tool prints for `--version` (or `-version`), for stage keys.
pub fn version_of(command: &str, flag: &str) -> String {
    Command::new(command)
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("could not start {tool}: {source}")]
    Spawn {
        tool: String,
        source: std::io::Error,
    },
    #[error("{tool} failed ({status})")]
    Failed {
        tool: String,
        status: String,
        log: PathBuf,
        tail: Vec<String>,
    },
    #[error("cannot write log {}: {source}", log.display())]
    Log {
        log: PathBuf,
        source: std::io::Error,
    },
}

/// Runs `cmd`, appending everything it prints to `log`, and hands each output line to
/// `on_line` (progress bars show the latest). Fails with the log's tail when the tool fails.
pub fn run_logged(
    cmd: &mut Command,
    log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), ToolError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let mut log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| ToolError::Log {
            log: log.to_owned(),
            source,
        })?;
    let _ = writeln!(log_file, "$ {}", describe(cmd));
    let mut child = with_parent_death_signal(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ToolError::Spawn {
            tool: tool.clone(),
            source,
        })?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for line in rx {
        let _ = log_file.write_all(&line);
        let text = String::from_utf8_lossy(&line);
        // Progress meters redraw with \r: the last segment is the current state.
        let shown = text
            .split('\r')
            .map(str::trim_end)
            .rfind(|s| !s.is_empty())
            .unwrap_or("")
            .to_owned();
        if shown.is_empty() {
            continue;
        }
        on_line(&shown);
        tail.push_back(shown);
        if tail.len() > 20 {
            tail.pop_front();
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait().map_err(|source| ToolError::Spawn {
        tool: tool.clone(),
        source,
    })?;
    let _ = writeln!(log_file, "[{tool} exited: {status}]");
    if status.success() {
        Ok(())
    } else {
        Err(ToolError::Failed {
            tool,
            status: status.to_string(),
            log: log.to_owned(),
            tail: tail.into(),
        })
    }
}

/// The same command, run through `setpriv --pdeathsig TERM`: if the builder dies, even by
/// SIGKILL, its tools get SIGTERM and clean up (mmdebstrap unmounts its chroot) instead of
/// running on as orphans that write into a folder the next build removes.
fn with_parent_death_signal(cmd: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--pdeathsig", "TERM", "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.contains([' ', '\n', '\'', '"']) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn missing_tools_name_their_package() {
        let tools = [HostTool {
            command: "kentongan-no-such-tool",
            package: "no-such-package",
        }];
        let err = PreflightError::MissingTools(missing(&tools));
        assert_eq!(
            err.to_string(),
            "missing host tools: kentongan-no-such-tool (package no-such-package)"
        );
        assert_eq!(err.hint(), "apt-get install no-such-package");
    }

    #[test]
    fn a_failing_tool_reports_its_tail_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut lines = Vec::new();
        let err = run_logged(
            Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"]),
            &log,
            &mut |l| lines.push(l.to_owned()),
        )
        .unwrap_err();
        match err {
            ToolError::Failed { tail, .. } => {
                assert!(tail.contains(&"one".to_string()) && tail.contains(&"two".to_string()))
            }
            other => panic!("unexpected {other:?}"),
        }
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("one") && logged.contains("exited"));
        assert_eq!(lines.len(), 2);
    }
}
