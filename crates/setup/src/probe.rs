//! Gathering [`Facts`] from the running machine: `lsblk` for disks, `/sys/class/net` for
//! interfaces, `/usr/share/zoneinfo` for time zones. Only the binary calls this; the validator
//! never does, so tests can describe any machine.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::facts::{Disk, Facts, Nic, Partition};

/// A fact could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("could not run lsblk: {0}")]
    Lsblk(String),
}

/// Everything [`Facts`] holds, read from this machine.
pub fn probe() -> Result<Facts, ProbeError> {
    let out = Command::new("lsblk")
        .args([
            "-J",
            "-b",
            "-o",
            "PATH,SIZE,TYPE,RM,RO,MODEL,FSTYPE,LABEL,PARTLABEL,MOUNTPOINT",
        ])
        .output()
        .map_err(|e| ProbeError::Lsblk(e.to_string()))?;
    if !out.status.success() {
        return Err(ProbeError::Lsblk(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    let disks = parse_lsblk(&String::from_utf8_lossy(&out.stdout))
        .map_err(|e| ProbeError::Lsblk(format!("unexpected output: {e}")))?;
    Ok(Facts {
        disks,
        nics: nics(Path::new("/sys/class/net")),
        timezones: timezones(Path::new("/usr/share/zoneinfo")),
    })
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn flag(v: &Value, k: &str) -> bool {
    // util-linux prints booleans in newer versions and "0"/"1" in older ones.
    match v.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

fn collect_parts(v: &Value, out: &mut Vec<Partition>) {
    for c in v
        .get("children")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(Partition {
            path: s(c, "path").unwrap_or_default(),
            fstype: s(c, "fstype"),
            label: s(c, "label"),
            partlabel: s(c, "partlabel"),
            mountpoint: s(c, "mountpoint"),
        });
        collect_parts(c, out);
    }
}

/// Disks (not partitions, CD drives, zram or loop devices) from `lsblk -J -b` output.
pub fn parse_lsblk(json: &str) -> Result<Vec<Disk>, serde_json::Error> {
    let v: Value = serde_json::from_str(json)?;
    let mut disks = Vec::new();
    for d in v
        .get("blockdevices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = s(d, "path").unwrap_or_default();
        if s(d, "type").as_deref() != Some("disk") || path.starts_with("/dev/zram") {
            continue;
        }
        let mut partitions = Vec::new();
        collect_parts(d, &mut partitions);
        disks.push(Disk {
            path,
            size_bytes: d.get("size").and_then(Value::as_u64).unwrap_or(0),
            model: s(d, "model").unwrap_or_default(),
            removable: flag(d, "rm"),
            read_only: flag(d, "ro"),
            fstype: s(d, "fstype"),
            label: s(d, "label"),
            mountpoint: s(d, "mountpoint"),
            partitions,
        });
    }
    Ok(disks)
}

/// Physical interfaces: those with a `device` link (virtual ones such as lo, bridges and
/// tunnels have none).
pub fn nics(sys_class_net: &Path) -> Vec<Nic> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(sys_class_net)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().join("device").exists() {
            continue;
        }
        let mac = std::fs::read_to_string(entry.path().join("address"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        out.push(Nic { name, mac });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Zone names under a zoneinfo tree: files starting with the `TZif` magic, without the
/// `posix/` and `right/` copies.
pub fn timezones(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().into_owned();
            if rel == "posix" || rel == "right" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if is_tzif(&path) {
                out.insert(rel);
            }
        }
    }
    out
}

fn is_tzif(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"TZif"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsblk_tree() {
        let json = r#"{"blockdevices":[
          {"path":"/dev/sda","size":8589934592,"type":"disk","rm":false,"ro":false,"model":"QEMU HARDDISK","fstype":null,"label":null,"partlabel":null,"mountpoint":null,
           "children":[{"path":"/dev/sda1","size":1,"type":"part","rm":false,"ro":false,"model":null,"fstype":"ext4","label":"data","partlabel":null,"mountpoint":null}]},
          {"path":"/dev/sr0","size":1,"type":"rom","rm":true,"ro":false,"model":null,"fstype":"iso9660","label":"KENTONGAN_LIVE","partlabel":null,"mountpoint":"/run/live/medium"},
          {"path":"/dev/vdb","size":1048576,"type":"disk","rm":"0","ro":"0","model":null,"fstype":"vfat","label":"KENTONGAN","partlabel":null,"mountpoint":null}
        ]}"#;
        let disks = parse_lsblk(json).unwrap();
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0].partitions[0].label.as_deref(), Some("data"));
        assert!(disks[0].has_data());
        assert!(disks[1].in_use().is_some());
    }

    #[test]
    fn zoneinfo_of_this_host() {
        let zones = timezones(Path::new("/usr/share/zoneinfo"));
        if !zones.is_empty() {
            assert!(zones.contains("Asia/Jakarta"));
            assert!(!zones.iter().any(|z| z.starts_with("posix/")));
        }
    }
}
