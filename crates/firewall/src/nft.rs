//! Talking to the kernel through Debian's `nft`: load the ruleset, add and remove bans, read
//! the drop counters. Blocking; the daemon calls it off its event loop.

use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::ruleset::{FAMILY, TABLE};

/// Why an nft command failed, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("`nft` is not installed (install the Debian package nftables)")]
    NotInstalled,
    #[error("`nft` was refused: changing the firewall needs root or CAP_NET_ADMIN")]
    NotPermitted,
    #[error(
        "the firewall table {FAMILY} {TABLE} is not loaded (run `kentongan-pbx firewall apply`)"
    )]
    NoTable,
    #[error("`nft {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("could not run `nft`: {0}")]
    Io(#[from] std::io::Error),
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(NftError::NotInstalled),
        Err(e) => return Err(e.into()),
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if stderr.contains("Operation not permitted") {
        return Err(NftError::NotPermitted);
    }
    if stderr.contains("No such file or directory") && stderr.contains(TABLE) {
        return Err(NftError::NoTable);
    }
    Err(NftError::Failed {
        command: args.join(" "),
        stderr: first_lines(&stderr, 6),
    })
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// Loads a ruleset (one atomic nft transaction).
pub fn load(ruleset: &str) -> Result<(), NftError> {
    nft(&["-f", "-"], Some(ruleset)).map(drop)
}

/// Checks a ruleset without loading it.
pub fn check(ruleset: &str) -> Result<(), NftError> {
    nft(&["--check", "-f", "-"], Some(ruleset)).map(drop)
}

fn set_for(addr: &IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "banned4"
    } else {
        "banned6"
    }
}

/// Adds bans (address, seconds) to the kernel's ban sets in one transaction. Adding a banned
/// address again renews its timeout.
pub fn add_bans(bans: &[(IpAddr, u64)]) -> Result<(), NftError> {
    if bans.is_empty() {
        return Ok(());
    }
    let mut script = String::new();
    for (addr, secs) in bans {
        let addr = addr.to_canonical();
        script.push_str(&format!(
            "add element {FAMILY} {TABLE} {} {{ {addr} timeout {}s }}\n",
            set_for(&addr),
            (*secs).max(1)
        ));
    }
    nft(&["-f", "-"], Some(&script)).map(drop)
}

/// Removes a ban from the kernel; `Ok(false)` if the address was not in the set.
pub fn remove_ban(addr: IpAddr) -> Result<bool, NftError> {
    let addr = addr.to_canonical();
    let element = format!("{{ {addr} }}");
    match nft(
        &["delete", "element", FAMILY, TABLE, set_for(&addr), &element],
        None,
    ) {
        Ok(_) => Ok(true),
        Err(NftError::NoTable) => Ok(false),
        Err(NftError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Whether the appliance's table is loaded in this network namespace.
pub fn table_loaded() -> bool {
    nft(&["list", "table", FAMILY, TABLE], None).is_ok()
}

/// The packets counted by the table's named counters (`banned_drops`, `flood_drops`).
pub fn counters() -> Result<Vec<(String, u64)>, NftError> {
    let json = nft(&["-j", "list", "counters", "table", FAMILY, TABLE], None)?;
    Ok(parse_counters(&json))
}

fn parse_counters(json: &str) -> Vec<(String, u64)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v.get("nftables")
        .and_then(|x| x.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("counter"))
                .filter_map(|c| {
                    Some((
                        c.get("name")?.as_str()?.to_owned(),
                        c.get("packets")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The addresses in the kernel's ban sets with their seconds left.
pub fn banned() -> Result<Vec<(IpAddr, Option<u64>)>, NftError> {
    let mut all = Vec::new();
    for set in ["banned4", "banned6"] {
        let json = nft(&["-j", "list", "set", FAMILY, TABLE, set], None)?;
        all.extend(parse_set(&json));
    }
    Ok(all)
}

fn parse_set(json: &str) -> Vec<(IpAddr, Option<u64>)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let elems = v
        .get("nftables")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("set")?.get("elem")?.as_array())
        .flatten();
    elems
        .filter_map(|e| match e {
            serde_json::Value::String(s) => Some((s.parse().ok()?, None)),
            other => {
                let el = other.get("elem")?;
                let addr = el.get("val")?.as_str()?.parse().ok()?;
                Some((addr, el.get("expires").and_then(|x| x.as_u64())))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_counters() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", "name": "banned_drops", "table": "kentongan", "handle": 4, "packets": 17, "bytes": 900}}, {"counter": {"family": "inet", "name": "flood_drops", "table": "kentongan", "handle": 5, "packets": 0, "bytes": 0}}]}"#;
        assert_eq!(
            parse_counters(json),
            vec![("banned_drops".into(), 17), ("flood_drops".into(), 0)]
        );
        assert!(parse_counters("not json").is_empty());
    }

    #[test]
    fn reads_set_elements_with_and_without_timeouts() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"set": {"family": "inet", "name": "banned4", "table": "kentongan", "type": "ipv4_addr", "flags": ["timeout", "dynamic"], "elem": [{"elem": {"val": "10.1.1.1", "timeout": 100, "expires": 97}}, "10.1.1.2"]}}]}"#;
        assert_eq!(
            parse_set(json),
            vec![
                ("10.1.1.1".parse().unwrap(), Some(97)),
                ("10.1.1.2".parse().unwrap(), None)
            ]
        );
    }
}
