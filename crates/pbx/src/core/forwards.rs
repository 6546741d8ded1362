//! Forwarding and DND in the core: the daemon's copy of every extension's settings (changed by
//! feature codes here, by the CLI through the database), what [`forwarding::reach`] needs to
//! know about extensions, and carrying out its decisions for a new call or a call the ringing
//! extension did not take (busy, no answer).

use std::time::Duration;

use kentongan_sip::transaction::TxId;
use kentongan_sip::{Request, StatusCode};
use tracing::{info, warn};

use super::answered::App;
use super::calls::CallKey;
use super::{Clock, Pbx};
use crate::routing::forwarding::{self, Reach, Targets, Visited};
use crate::store::{CallSettings, Cdr, Extension, SettingsWrite, StoreError, Write};

/// What forwarding sees of the core at one instant.
struct CoreTargets<'a> {
    pbx: &'a Pbx,
    now_s: i64,
}

impl Targets for CoreTargets<'_> {
    fn settings(&self, ext: &Extension) -> CallSettings {
        self.pbx.settings.get(ext).cloned().unwrap_or_default()
    }
    fn registered(&self, ext: &Extension) -> bool {
        !self.pbx.registry.contacts(ext, self.now_s).is_empty()
    }
    fn in_call(&self, ext: &Extension) -> bool {
        self.pbx
            .calls
            .values()
            .any(|c| c.answer_ms.is_some() && (&c.caller == ext || &c.callee == ext))
    }
    fn exists(&self, ext: &Extension) -> bool {
        self.pbx.store.user_exists(&ext.0).unwrap_or(false)
    }
    fn no_answer_after(&self, ext: &Extension) -> Duration {
        Duration::from_secs(u64::from(self.pbx.config.forward_no_answer_seconds(&ext.0)))
    }
    fn voicemail_after(&self, _: &Extension) -> Option<Duration> {
        self.pbx
            .config
            .voicemail
            .as_ref()
            .filter(|v| v.enabled)
            .map(|v| Duration::from_secs(u64::from(v.ring_seconds)))
    }
}

/// The answer and CDR disposition of a call forwarding could not place.
fn failure(r: &Reach) -> (StatusCode, &'static str) {
    match r {
        Reach::Busy => (StatusCode::BUSY_HERE, "busy"),
        Reach::Loop(_) => (StatusCode::LOOP_DETECTED, "failed"),
        Reach::TooManyHops => (StatusCode::TOO_MANY_HOPS, "failed"),
        Reach::Unavailable | Reach::Ring(_) | Reach::Voicemail { .. } => {
            (StatusCode::TEMPORARILY_UNAVAILABLE, "unavailable")
        }
    }
}

impl Pbx {
    /// Re-reads every extension's settings (at start, and after another process committed).
    pub(super) fn load_settings(&mut self) -> Result<(), StoreError> {
        self.settings = self.store.all_call_settings()?;
        self.watchers.mark_dirty();
        Ok(())
    }

    /// A change a phone made with a feature code: into the batch and into our copy.
    pub(super) fn change_setting(&mut self, w: SettingsWrite) {
        let s = match &w {
            SettingsWrite::Forward { extension, .. }
            | SettingsWrite::Dnd { extension, .. }
            | SettingsWrite::CallWaiting { extension, .. } => {
                self.settings.entry(extension.clone()).or_default()
            }
        };
        match &w {
            SettingsWrite::Forward { kind, target, .. } => s.set_forward(*kind, target.clone()),
            SettingsWrite::Dnd { on, .. } => s.dnd = *on,
            SettingsWrite::CallWaiting { on, .. } => s.call_waiting_off = !*on,
        }
        info!(change = ?w, "settings changed by feature code");
        self.writes.push(Write::Settings(w));
    }

    pub(super) fn reach(&self, clock: Clock, visited: &mut Visited, ext: Extension) -> Reach {
        let t = CoreTargets {
            pbx: self,
            now_s: clock.unix_s(),
        };
        forwarding::reach(visited, ext, &t)
    }

    /// A new call to extension `callee`: rung, forwarded, or refused.
    pub(super) fn call_extension(
        &mut self,
        clock: Clock,
        tx: TxId,
        from: std::net::SocketAddr,
        req: Request,
        caller: Extension,
        callee: Extension,
    ) {
        let mut visited = Visited::new();
        let r = self.reach(clock, &mut visited, callee.clone());
        if visited.len() > 1 {
            info!(%caller, path = ?visited, "call forwarded");
        }
        match r {
            Reach::Ring(ring) => {
                self.bridge_to_extension(clock, tx, from, req, caller, ring, visited)
            }
            Reach::Voicemail { mailbox, greeting } => {
                info!(%caller, %mailbox, ?greeting, "call to voicemail");
                self.answer_with_app(
                    clock,
                    tx,
                    from,
                    req,
                    caller,
                    App::Voicemail { mailbox, greeting },
                )
            }
            other => {
                let (status, disposition) = failure(&other);
                if let Reach::Loop(at) = &other {
                    warn!(%caller, path = ?visited, %at, "forwarding loop; call refused");
                }
                self.reply(clock, tx, &req, status);
                let call_id = req.headers.call_id().unwrap_or("").to_owned();
                self.writes.push(Write::Cdr(Cdr {
                    caller_name: super::calls::caller_display_name(&req),
                    ..Cdr::refused(call_id, caller.0, callee.0, clock.unix_ms, disposition)
                }));
            }
        }
    }

    /// The ringing extension did not take the call (busy, no answer): on to `next`.
    pub(super) fn forward_call(&mut self, clock: Clock, key: CallKey, next: Extension) {
        let Some(mut visited) = self
            .calls
            .get_mut(&key)
            .map(|c| std::mem::take(&mut c.visited))
        else {
            return;
        };
        let r = self.reach(clock, &mut visited, next);
        if let Some(c) = self.calls.get_mut(&key) {
            info!(call = key, path = ?visited, "call forwarded");
            c.visited = visited;
        }
        match r {
            Reach::Ring(ring) => self.fork_to(clock, key, ring),
            Reach::Voicemail { mailbox, greeting } => {
                self.call_to_voicemail(clock, key, mailbox, greeting)
            }
            other => {
                if let Reach::Loop(at) = &other {
                    warn!(call = key, %at, "forwarding loop; call ended");
                }
                let (status, disposition) = failure(&other);
                self.fail_caller(clock, key, status);
                self.end_call(clock, key, disposition);
            }
        }
    }
}
