//! [`Facts`]: what the validator needs to know about the machine (disks, network interfaces,
//! time zones). The binary gathers them ([`crate::probe`]); tests write them by hand, so the
//! validator never looks at the machine it runs on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::validate::Bilingual;

/// Everything about the machine that an answer file is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub nics: Vec<Nic>,
    /// Zone names such as `Asia/Jakarta` (from `/usr/share/zoneinfo` on the live system).
    #[serde(default)]
    pub timezones: BTreeSet<String>,
}

/// A whole disk (`lsblk` type `disk`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub path: String,
    pub size_bytes: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub removable: bool,
    #[serde(default)]
    pub read_only: bool,
    /// A filesystem written straight onto the disk, without a partition table.
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub path: String,
    #[serde(default)]
    pub fstype: Option<String>,
    /// Filesystem label.
    #[serde(default)]
    pub label: Option<String>,
    /// GPT partition name.
    #[serde(default)]
    pub partlabel: Option<String>,
    #[serde(default)]
    pub mountpoint: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub name: String,
    #[serde(default)]
    pub mac: String,
}

/// The label of the volume that carries `answer.toml` for an unattended install.
pub const ANSWER_LABEL: &str = "KENTONGAN";
/// GPT name of the root partition while an install is in progress; renamed when it finishes.
pub const INCOMPLETE_PARTLABEL: &str = "KENTONGAN-INCOMPLETE";
/// GPT name of a finished Kentongan root partition.
pub const ROOT_PARTLABEL: &str = "KENTONGAN-ROOT";
/// Disks smaller than this cannot hold the system and its call records.
pub const MIN_DISK_BYTES: u64 = 4 * 1024 * 1024 * 1024;

impl Disk {
    /// Why this disk must never be installed on, whatever the answer file says: it holds the
    /// running live system, the answer volume, or something mounted.
    pub fn in_use(&self) -> Option<Bilingual> {
        let labelled = |l: &Option<String>| l.as_deref() == Some(ANSWER_LABEL);
        if labelled(&self.label) || self.partitions.iter().any(|p| labelled(&p.label)) {
            return Some(Bilingual::new(
                format!("it holds the `{ANSWER_LABEL}` answer volume"),
                format!("disk ini memuat volume jawaban `{ANSWER_LABEL}`"),
            ));
        }
        let mounted = self
            .mountpoint
            .iter()
            .chain(self.partitions.iter().filter_map(|p| p.mountpoint.as_ref()))
            .next();
        match mounted {
            Some(m) if m.starts_with("/run/live") => Some(Bilingual::new(
                "it holds the running live system",
                "disk ini memuat sistem live yang sedang berjalan",
            )),
            Some(m) => Some(Bilingual::new(
                format!("it is in use (mounted at {m})"),
                format!("disk ini sedang dipakai (terpasang di {m})"),
            )),
            None => None,
        }
    }

    /// True when the disk holds anything: partitions or a filesystem. A half-finished
    /// Kentongan install does not count, so that a rerun works without `wipe = true`.
    pub fn has_data(&self) -> bool {
        let ours = |p: &Partition| {
            p.partlabel.as_deref().is_some_and(|l| {
                l == INCOMPLETE_PARTLABEL || l == "KENTONGAN-ESP" || l == "bios-boot"
            })
        };
        let incomplete = self
            .partitions
            .iter()
            .any(|p| p.partlabel.as_deref() == Some(INCOMPLETE_PARTLABEL));
        if incomplete && self.partitions.iter().all(ours) {
            return false;
        }
        self.fstype.is_some() || !self.partitions.is_empty()
    }
}
