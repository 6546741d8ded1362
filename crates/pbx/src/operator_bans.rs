//! Bans an operator sets or lifts by hand (`ban add` / `ban remove` and the web admin's Firewall
//! page): one set of rules for both. The kernel's ban set is changed first, so a refusal from
//! nftables leaves the database as it was; the daemon's own shield follows the stored rows.

use std::net::IpAddr;
use std::time::Duration;

use kentongan_firewall::nft::{self, NftError};

use crate::config::Config;
use crate::store::{Store, StoreError, StoredBan};

#[derive(Debug, thiserror::Error)]
pub enum BanError {
    #[error("{0:?} is not an IP address")]
    NotAnAddress(String),
    #[error("{0} is in `firewall.trusted`, and trusted sources are never banned")]
    Trusted(IpAddr),
    #[error("{0} is not banned")]
    NotBanned(IpAddr),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One banned address, as `ban list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BanRow {
    pub addr: String,
    pub seconds_left: Option<u64>,
    pub reason: String,
    /// `None` for the kernel's own flood bans.
    pub banned_at: Option<i64>,
}

/// Every ban: the stored ones, then those the kernel made on its own (SIP floods), which are
/// only visible to root with the table loaded.
pub fn list(store: Option<&Store>, now: i64) -> Result<Vec<BanRow>, StoreError> {
    let mut rows: Vec<BanRow> = match store {
        Some(store) => store
            .bans(now)?
            .into_iter()
            .map(|b| BanRow {
                seconds_left: u64::try_from(b.expires_at - now).ok(),
                addr: b.addr,
                reason: b.reason,
                banned_at: Some(b.banned_at),
            })
            .collect(),
        None => Vec::new(),
    };
    if let Ok(kernel) = nft::banned() {
        for (addr, left) in kernel {
            let addr = addr.to_string();
            if !rows.iter().any(|r| r.addr == addr) {
                rows.push(BanRow {
                    addr,
                    seconds_left: left.map(|ms| ms / 1000),
                    reason: "SIP flood (banned by the kernel firewall)".into(),
                    banned_at: None,
                });
            }
        }
    }
    Ok(rows)
}

/// One address as `ban list` prints them (IPv4-mapped IPv6 becomes IPv4).
pub fn parse_addr(s: &str) -> Result<IpAddr, BanError> {
    s.trim()
        .parse::<IpAddr>()
        .map(|a| a.to_canonical())
        .map_err(|_| BanError::NotAnAddress(s.to_owned()))
}

/// Bans `ip` for `duration` in the kernel (when the firewall table is loaded) and the database.
pub fn add(
    config: &Config,
    store: &Store,
    ip: IpAddr,
    duration: Duration,
    reason: &str,
    now: i64,
) -> Result<(), BanError> {
    if config.firewall.is_trusted(ip) {
        return Err(BanError::Trusted(ip));
    }
    let secs = duration.as_secs().max(1);
    match nft::add_bans(&[(ip, secs)]) {
        // Without the table the daemon's shield still drops the source from the stored row.
        Ok(()) | Err(NftError::NoTable) => {}
        Err(e) => return Err(e.into()),
    }
    store.add_ban(&StoredBan {
        addr: ip.to_string(),
        reason: reason.to_owned(),
        banned_at: now,
        expires_at: now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
    })?;
    Ok(())
}

/// Lifts the ban on `ip` in the kernel (nothing there when the table is not loaded) and the
/// database.
pub fn lift(store: Option<&Store>, ip: IpAddr) -> Result<(), BanError> {
    let in_kernel = nft::remove_ban(ip)?;
    let in_db = match store {
        Some(store) => store.remove_ban(&ip.to_string())?,
        None => false,
    };
    if !in_kernel && !in_db {
        return Err(BanError::NotBanned(ip));
    }
    Ok(())
}
