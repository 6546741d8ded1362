//! The core's side of the firewall: bans the shield decides go to SQLite and to `nft`.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use kentongan_firewall::shield::Ban;
use tracing::{info, warn};

use super::{Clock, FirewallOp, Pbx};
use crate::store::{StoreError, StoredBan, Write};

impl Pbx {
    pub(super) fn stored_bans(&self, clock: Clock) -> Result<Vec<(IpAddr, u64)>, StoreError> {
        let now = clock.unix_s();
        Ok(self
            .store
            .bans(now)?
            .iter()
            .filter_map(|b| {
                let addr: IpAddr = b.addr.parse().ok()?;
                let left = u64::try_from(b.expires_at - now).ok()?.max(1);
                Some((addr, left))
            })
            .filter(|(a, _)| !self.config.firewall.is_trusted(*a))
            .collect())
    }

    /// Reads the stored bans into the shield (at start, and when the CLI changed them).
    pub(super) fn load_bans(&mut self, clock: Clock) -> Result<(), StoreError> {
        let now = clock.unix_s();
        let stored: Vec<(IpAddr, i64)> = self
            .store
            .bans(now)?
            .iter()
            .filter_map(|b| Some((b.addr.parse().ok()?, b.expires_at)))
            .collect();
        for lifted in self.shield.sync(now, &stored) {
            info!(source = %lifted, "ban lifted");
        }
        self.metrics
            .bans_active
            .store(self.shield.active_bans() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Moves the shield's new bans into the batch's writes and the firewall's work.
    pub(super) fn take_bans(&mut self) {
        let mut kernel = Vec::new();
        while let Some(ban) = self.shield.poll_ban() {
            let Ban {
                addr,
                reason,
                banned_at,
                expires_at,
            } = &ban;
            warn!(source = %addr, %reason, seconds = expires_at - banned_at, "source banned");
            match reason.kind() {
                "scanner" => &self.metrics.bans_scanner,
                _ => &self.metrics.bans_auth,
            }
            .fetch_add(1, Ordering::Relaxed);
            self.writes.push(Write::Ban(StoredBan {
                addr: addr.to_string(),
                reason: reason.to_string(),
                banned_at: *banned_at,
                expires_at: *expires_at,
            }));
            kernel.push((*addr, ban.remaining(*banned_at)));
        }
        if !kernel.is_empty() {
            self.firewall.push(FirewallOp::Ban(kernel));
            self.metrics
                .bans_active
                .store(self.shield.active_bans() as u64, Ordering::Relaxed);
        }
    }

    /// Firewall work from the last batch, to do once its writes are committed.
    pub fn take_firewall_ops(&mut self) -> Vec<FirewallOp> {
        std::mem::take(&mut self.firewall)
    }

    /// Picks up an operator's `ban add`/`ban remove` (another connection's commit).
    pub(super) fn sync_bans_if_changed(&mut self, clock: Clock) -> Result<(), StoreError> {
        let version = self.store.data_version()?;
        if version != self.db_version {
            self.db_version = version;
            self.ha1_cache.clear();
            self.load_bans(clock)?;
            self.load_settings()?;
            self.run_conference_commands(clock);
            self.run_call_commands(clock);
            self.recheck_mwi();
        }
        Ok(())
    }
}
