//! The web admin's view of the PBX: [`kentongan_web::backend::Backend`] over a `Store` of
//! its own (its own SQLite connection, so a page never waits for the SIP loop's), and
//! [`start`], which the daemon calls when `[web]` is present. Adding an extension goes
//! through [`new_extension`], the same rules as `user add`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kentongan_web::backend::{
    AddError, AdminRow, Backend, BackendError, BanEntry, CdrQuery, CdrRow, CdrSort, Dashboard,
    Explained, ExtensionRow, FieldError, ImportError, Imported, LiveCall, MailboxRow, MemberAction,
    MohFile, MohList, RateRow, Rates, RecordingItem, Registration, Reports, Role as WebRole,
    RoomMember, RoomRow, RouteRow, Routing, Savings, SavingsRow, TrunkRow, TrunkUse, VoicemailRow,
};
use kentongan_web::i18n::Lang;
use kentongan_web::server::{WebConfig, WebError};

use crate::admins::{self, AdminName, Role};
use crate::config::Config;
use crate::lcr_admin::{self, LcrError};
use crate::media::moh_files::{self, MohError};
use crate::operator_bans::{self, BanError};
use crate::store::{CdrFilter, CdrOrder, Extension, Store, StoreError};

/// Generated SIP passwords: 20 characters from 56 (no 0/O, 1/l/I), about 116 bits.
const PASSWORD_ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
const PASSWORD_LEN: usize = 20;

/// Checks a new extension's number and name as `user add` does: a valid number, not a
/// conference room's, and a name of at most 64 characters without control characters.
pub fn new_extension(config: &Config, number: &str, name: &str) -> Result<Extension, FieldError> {
    let ext = Extension::parse(number.trim()).ok_or_else(|| FieldError {
        field: "extension",
        message: "use 1 to 32 letters, digits, '.', '-' or '_', e.g. 205".into(),
    })?;
    if let Some(room) = config.conferences.iter().find(|r| r.number == ext.0) {
        return Err(FieldError {
            field: "extension",
            message: format!(
                "{ext} is the number of conference room {:?}; pick another",
                room.name
            ),
        });
    }
    if let Some(g) = config.ring_groups.iter().find(|g| g.number == ext.0) {
        return Err(FieldError {
            field: "extension",
            message: format!(
                "{ext} is the number of ring group {:?}; pick another",
                g.name
            ),
        });
    }
    let parking = &config.parking;
    if std::iter::once(parking.park_number())
        .chain(parking.slots())
        .any(|n| n == ext.0)
    {
        return Err(FieldError {
            field: "extension",
            message: format!("{ext} is a parking number (`[parking] slots`); pick another"),
        });
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(FieldError {
            field: "name",
            message: "use at most 64 characters and no control characters".into(),
        });
    }
    Ok(ext)
}

/// A random SIP password from the kernel's randomness.
pub fn generate_password() -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < PASSWORD_LEN {
        getrandom::getrandom(&mut buf)?;
        // Rejection sampling keeps every character equally likely.
        let limit = (256 / PASSWORD_ALPHABET.len() * PASSWORD_ALPHABET.len()) as u8;
        for b in buf.iter().filter(|b| **b < limit) {
            if out.len() == PASSWORD_LEN {
                break;
            }
            out.push(PASSWORD_ALPHABET[*b as usize % PASSWORD_ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

struct PbxBackend {
    store: Mutex<Store>,
    config: Config,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn db(e: StoreError) -> BackendError {
    BackendError(e.to_string())
}

impl PbxBackend {
    fn store(&self) -> Result<std::sync::MutexGuard<'_, Store>, BackendError> {
        self.store
            .lock()
            .map_err(|_| BackendError("the web admin's database handle is poisoned".into()))
    }
}

fn field(field: &'static str, message: String) -> AddError {
    AddError::Field(FieldError { field, message })
}

fn web_role(r: Role) -> WebRole {
    match r {
        Role::Admin => WebRole::Admin,
        Role::Operator => WebRole::Operator,
    }
}

/// A refused music file, next to the field it is about.
fn moh_error(e: MohError) -> AddError {
    let field = match e {
        MohError::Name | MohError::Exists(_) => "name",
        _ => "wav",
    };
    AddError::Field(FieldError {
        field,
        message: e.to_string(),
    })
}

impl Backend for PbxBackend {
    fn has_admins(&self) -> Result<bool, BackendError> {
        Ok(self.store()?.admin_count().map_err(db)? > 0)
    }

    fn authenticate(&self, name: &str, password: &str) -> Result<Option<WebRole>, BackendError> {
        let creds = match AdminName::parse(name) {
            Ok(n) => self.store()?.admin_credentials(&n).map_err(db)?,
            Err(_) => None,
        };
        let Some((role, hash)) = creds else {
            admins::verify_dummy(password);
            return Ok(None);
        };
        if !admins::verify_password(&hash, password) {
            return Ok(None);
        }
        Ok(Some(match role {
            Role::Admin => WebRole::Admin,
            Role::Operator => WebRole::Operator,
        }))
    }

    fn admins(&self) -> Result<Vec<AdminRow>, BackendError> {
        Ok(self
            .store()?
            .admins()
            .map_err(db)?
            .into_iter()
            .map(|a| AdminRow {
                name: a.name.to_string(),
                role: web_role(a.role),
                created: a.created,
            })
            .collect())
    }

    fn add_admin(&self, name: &str, password: &str, role: WebRole) -> Result<(), AddError> {
        let name = AdminName::parse(name.trim()).map_err(|e| field("name", e.to_string()))?;
        let hash = admins::AdminPassword::new(&name, password)
            .and_then(|p| p.hash())
            .map_err(|e| field("password", e.to_string()))?;
        let role = match role {
            WebRole::Admin => Role::Admin,
            WebRole::Operator => Role::Operator,
        };
        let now = unix_ms() / 1000;
        match self.store()?.add_admin(&name, &hash, role, now) {
            Ok(()) => Ok(()),
            Err(e @ StoreError::AdminExists(_)) => Err(field("name", e.to_string())),
            Err(e) => Err(db(e).into()),
        }
    }

    fn remove_admin(&self, name: &str) -> Result<(), AddError> {
        let name = AdminName::parse(name.trim()).map_err(|e| field("name", e.to_string()))?;
        match self.store()?.remove_admin(&name) {
            Ok(()) => Ok(()),
            Err(e @ (StoreError::NoSuchAdmin(_) | StoreError::LastAdmin(_))) => {
                Err(field("name", e.to_string()))
            }
            Err(e) => Err(db(e).into()),
        }
    }

    fn set_admin_password(&self, name: &str, password: &str) -> Result<(), AddError> {
        let name = AdminName::parse(name.trim()).map_err(|e| field("name", e.to_string()))?;
        let hash = admins::AdminPassword::new(&name, password)
            .and_then(|p| p.hash())
            .map_err(|e| field("password", e.to_string()))?;
        match self.store()?.set_admin_hash(&name, &hash) {
            Ok(()) => Ok(()),
            Err(e @ StoreError::NoSuchAdmin(_)) => Err(field("name", e.to_string())),
            Err(e) => Err(db(e).into()),
        }
    }

    fn admin_language(&self, name: &str) -> Result<Option<Lang>, BackendError> {
        let Ok(n) = AdminName::parse(name) else {
            return Ok(None);
        };
        let code = self.store()?.admin_language(&n).map_err(db)?;
        // A code this build does not know (a newer one's) is no choice: the default applies.
        Ok(code.as_deref().and_then(Lang::parse))
    }

    fn set_admin_language(&self, name: &str, lang: Lang) -> Result<(), BackendError> {
        let n = AdminName::parse(name).map_err(|e| BackendError(e.to_string()))?;
        self.store()?
            .set_admin_language(&n, lang.code())
            .map_err(db)
    }

    fn ban(&self, addr: IpAddr, duration: Duration, reason: &str) -> Result<(), BackendError> {
        // As `ban add` does: the kernel's set (when loaded) and the stored row, which the
        // daemon's shield picks up through `data_version`.
        let store = self.store()?;
        operator_bans::add(
            &self.config,
            &store,
            addr,
            duration,
            reason,
            unix_ms() / 1000,
        )
        .map_err(|e| BackendError(e.to_string()))
    }

    fn is_banned(&self, addr: IpAddr) -> Result<bool, BackendError> {
        self.store()?
            .is_banned(&addr.to_string(), unix_ms() / 1000)
            .map_err(db)
    }

    fn dashboard(&self) -> Result<Dashboard, BackendError> {
        let now_ms = unix_ms();
        let store = self.store()?;
        let registrations = store
            .bindings(now_ms / 1000)
            .map_err(db)?
            .into_iter()
            .map(|b| Registration {
                extension: b.extension.0,
                contact: b.contact,
                source: b.source,
                transport: b.transport,
                expires_in: b.expires_at - now_ms / 1000,
            })
            .collect();
        let live_calls = store
            .live_calls()
            .map_err(db)?
            .into_iter()
            .map(|c| LiveCall {
                call_id: c.call_id,
                caller: c.caller,
                callee: c.callee,
                state: c.state,
                age_s: (now_ms - c.start_ms).max(0) / 1000,
            })
            .collect();
        // Today in UTC (the appliance's time zone is not known to the daemon yet).
        let midnight = now_ms - now_ms.rem_euclid(86_400_000);
        let cdr_today = store.cdr_count_since(midnight).map_err(db)?;
        Ok(Dashboard {
            registrations,
            live_calls,
            cdr_today,
        })
    }

    fn extensions(&self) -> Result<Vec<ExtensionRow>, BackendError> {
        let store = self.store()?;
        let bindings = store.bindings(unix_ms() / 1000).map_err(db)?;
        Ok(store
            .users()
            .map_err(db)?
            .into_iter()
            .map(|u| ExtensionRow {
                registered: bindings
                    .iter()
                    .filter(|b| b.extension == u.extension)
                    .count(),
                extension: u.extension.0,
                name: u.name,
            })
            .collect())
    }

    fn add_extension(&self, number: &str, name: &str) -> Result<String, AddError> {
        let ext = new_extension(&self.config, number, name).map_err(AddError::Field)?;
        let password =
            generate_password().map_err(|e| BackendError(format!("no randomness: {e}")))?;
        match self
            .store()?
            .add_user(&ext, name.trim(), &self.config.domain, &password)
        {
            Ok(()) => Ok(password),
            Err(StoreError::UserExists(_)) => Err(AddError::Field(FieldError {
                field: "extension",
                message: format!("extension {ext} exists already"),
            })),
            Err(e) => Err(AddError::Backend(db(e))),
        }
    }

    fn remove_extension(&self, number: &str) -> Result<bool, BackendError> {
        let Some(ext) = Extension::parse(number) else {
            return Ok(false);
        };
        match self.store()?.remove_user(&ext) {
            Ok(()) => Ok(true),
            Err(StoreError::NoSuchUser(_)) => Ok(false),
            Err(e) => Err(db(e)),
        }
    }

    fn cdrs(&self, q: &CdrQuery) -> Result<(Vec<CdrRow>, u64), BackendError> {
        let filter = CdrFilter {
            extension: q.extension.clone(),
            disposition: q.disposition.clone(),
            order: match q.sort {
                CdrSort::Start => CdrOrder::Start,
                CdrSort::Caller => CdrOrder::Caller,
                CdrSort::Callee => CdrOrder::Callee,
                CdrSort::Duration => CdrOrder::Duration,
                CdrSort::Disposition => CdrOrder::Disposition,
            },
            descending: q.descending,
            offset: q.offset,
            limit: q.limit,
        };
        let (rows, total) = self.store()?.cdr_page(&filter).map_err(db)?;
        let rows = rows
            .into_iter()
            .map(|c| CdrRow {
                caller: c.caller,
                caller_name: c.caller_name,
                callee: c.callee,
                start_ms: c.start_ms,
                duration_s: c.duration_s,
                disposition: c.disposition,
            })
            .collect();
        Ok((rows, total))
    }

    fn dispositions(&self) -> Result<Vec<String>, BackendError> {
        self.store()?.cdr_dispositions().map_err(db)
    }

    fn bans(&self) -> Result<Vec<BanEntry>, BackendError> {
        let store = self.store()?;
        Ok(operator_bans::list(Some(&store), unix_ms() / 1000)
            .map_err(db)?
            .into_iter()
            .map(|b| BanEntry {
                addr: b.addr,
                reason: b.reason,
                seconds_left: b.seconds_left,
            })
            .collect())
    }

    fn add_ban(&self, addr: &str, hours: &str) -> Result<String, AddError> {
        let field = |field, message: String| AddError::Field(FieldError { field, message });
        let ip = operator_bans::parse_addr(addr).map_err(|_| {
            field(
                "addr",
                "Give one IPv4 or IPv6 address, e.g. 203.0.113.7.".into(),
            )
        })?;
        let hours: u64 = match hours.trim().parse() {
            Ok(h) if (1..=MAX_BAN_HOURS).contains(&h) => h,
            _ => {
                return Err(field(
                    "hours",
                    format!("Give a whole number of hours from 1 to {MAX_BAN_HOURS}."),
                ))
            }
        };
        let store = self.store()?;
        match operator_bans::add(
            &self.config,
            &store,
            ip,
            Duration::from_secs(hours * 3600),
            "banned by the operator (web admin)",
            unix_ms() / 1000,
        ) {
            Ok(()) => Ok(ip.to_string()),
            Err(BanError::Trusted(_)) => Err(field(
                "addr",
                format!("{ip} is in a trusted network, and trusted sources are never banned; remove its network from [firewall] trusted first."),
            )),
            Err(e) => Err(AddError::Backend(BackendError(e.to_string()))),
        }
    }

    fn lift_ban(&self, addr: &str) -> Result<String, AddError> {
        let field = |message: String| {
            AddError::Field(FieldError {
                field: "addr",
                message,
            })
        };
        let ip = operator_bans::parse_addr(addr)
            .map_err(|_| field(format!("{addr:?} is not an IP address.")))?;
        let store = self.store()?;
        match operator_bans::lift(Some(&store), ip) {
            Ok(()) => Ok(ip.to_string()),
            Err(BanError::NotBanned(_)) => Err(field(format!("{ip} is not banned."))),
            Err(e) => Err(AddError::Backend(BackendError(e.to_string()))),
        }
    }

    fn trunks(&self) -> Result<Vec<TrunkRow>, BackendError> {
        let now = unix_ms() / 1000;
        let store = self.store()?;
        Ok(lcr_admin::trunk_status(&self.config, &store, now)
            .map_err(db)?
            .into_iter()
            .map(|t| TrunkRow {
                expires_in: t
                    .expires_at
                    .filter(|_| t.state == "registered")
                    .map(|e| (e - now).max(0)),
                name: t.name,
                kind: t.kind.to_owned(),
                address: t.address,
                channels_in_use: t.channels_in_use,
                max_channels: t.max_channels,
                operator: t.operator,
                state: t.state,
                last_failure: t.last_failure,
                reachable: t.reachable,
                down_reason: t.down_reason,
            })
            .collect())
    }

    fn rates(&self) -> Result<Rates, BackendError> {
        let lcr = match lcr_admin::lcr_config(&self.config) {
            Ok(l) => l,
            Err(e) => {
                return Ok(Rates {
                    problem: Some(sentence(&e)),
                    ..Rates::default()
                })
            }
        };
        let file = lcr.rates.display().to_string();
        match lcr_admin::read_rates(&self.config, &lcr.rates) {
            Ok((_, table)) => Ok(Rates {
                file,
                rows: table
                    .rates()
                    .iter()
                    .map(|r| RateRow {
                        line: r.line,
                        trunk: r.trunk.to_string(),
                        prefix: format!("+{}", r.prefix),
                        rate_per_minute: r.rate_per_minute.to_string(),
                        connect_fee: r.connect_fee.to_string(),
                        increment_seconds: r.increment_seconds,
                        window: r.window.map(|w| w.to_string()).unwrap_or_default(),
                    })
                    .collect(),
                problem: None,
            }),
            Err(e) => Ok(Rates {
                file,
                rows: Vec::new(),
                problem: Some(sentence(&e)),
            }),
        }
    }

    fn import_rates(&self, csv: &str) -> Result<Imported, ImportError> {
        match lcr_admin::import_rates(&self.config, "the upload", csv) {
            Ok(t) => Ok(Imported {
                rates: t.rates().len(),
                trunks: t.trunks().len(),
            }),
            Err(LcrError::Csv { errors, .. }) if errors.errors.is_empty() => {
                Err(ImportError::Refused(
                    "The file has no rates; give at least one line like `provider,+62,650,0,60`."
                        .into(),
                ))
            }
            Err(LcrError::Csv { errors, .. }) => Err(ImportError::Lines(
                errors.errors.iter().map(|e| e.to_string()).collect(),
            )),
            Err(LcrError::Store(e)) => Err(ImportError::Backend(db(e))),
            Err(e) => Err(ImportError::Refused(sentence(&e))),
        }
    }

    fn explain(&self, number: &str, at: &str) -> Result<Explained, AddError> {
        let field = |field, message: String| AddError::Field(FieldError { field, message });
        let at = if at.trim().is_empty() {
            lcr_admin::now_local().ok_or_else(|| {
                field(
                    "at",
                    "The clock gives no time of day; give one, e.g. mon 10:00.".into(),
                )
            })?
        } else {
            lcr_admin::parse_at(at).ok_or_else(|| {
                field(
                    "at",
                    "Give a weekday and a time, e.g. mon 10:00 or sat 21:30.".into(),
                )
            })?
        };
        let store = self.store()?;
        let x = match lcr_admin::explain_number(&self.config, &store, number.trim(), at) {
            Ok(x) => x,
            Err(LcrError::Store(e)) => return Err(AddError::Backend(db(e))),
            Err(e) => return Err(field("number", sentence(&e))),
        };
        Ok(Explained {
            dialled: x.dialled,
            number: x.number,
            class: x.class.name().to_owned(),
            operator: x.operator,
            seconds: x.seconds,
            routes: x
                .routes
                .into_iter()
                .map(|r| RouteRow {
                    rank: r.rank,
                    trunk: r.trunk,
                    kind: r.kind.to_owned(),
                    cost: r.cost.map(|c| c.to_string()).unwrap_or_default(),
                    why: r.why,
                })
                .collect(),
            not_used: x.not_used.into_iter().map(|n| (n.trunk, n.why)).collect(),
            note: x.note,
        })
    }

    fn savings(&self, month: &str) -> Result<Savings, AddError> {
        let store = self.store()?;
        let (report, skipped) = match lcr_admin::savings_report(&self.config, &store, month.trim())
        {
            Ok(r) => r,
            Err(LcrError::Store(e)) => return Err(AddError::Backend(db(e))),
            Err(e) => {
                return Err(AddError::Field(FieldError {
                    field: "month",
                    message: sentence(&e),
                }))
            }
        };
        let row = |l: kentongan_lcr::savings::SavingsLine| SavingsRow {
            trunk: l.trunk,
            calls: l.calls,
            seconds: l.seconds,
            actual: l.actual.to_string(),
            most_expensive: l.most_expensive.to_string(),
            saved: l.saved.to_string(),
        };
        Ok(Savings {
            month: report.month,
            rows: report.trunks.into_iter().map(row).collect(),
            total: row(report.total),
            skipped,
        })
    }

    fn mailboxes(&self) -> Result<Vec<MailboxRow>, BackendError> {
        let store = self.store()?;
        let counts = store.voicemail_all_counts().map_err(db)?;
        Ok(store
            .users()
            .map_err(db)?
            .into_iter()
            .map(|u| {
                let (new, old) = counts
                    .iter()
                    .find(|(m, _, _)| *m == u.extension.0)
                    .map_or((0, 0), |(_, n, o)| (*n, *o));
                MailboxRow {
                    mailbox: u.extension.0,
                    name: u.name,
                    new,
                    old,
                }
            })
            .collect())
    }

    fn voicemail(&self, mailbox: &str) -> Result<Vec<VoicemailRow>, BackendError> {
        Ok(self
            .store()?
            .voicemail_list(mailbox)
            .map_err(db)?
            .into_iter()
            .map(|m| VoicemailRow {
                id: m.id,
                caller: m.caller,
                received_ms: m.received_ms,
                duration_ms: m.duration_ms,
                status: m.status,
            })
            .collect())
    }

    fn voicemail_file(&self, mailbox: &str, id: i64) -> Result<Option<PathBuf>, BackendError> {
        Ok(self
            .store()?
            .voicemail_message(mailbox, id)
            .map_err(db)?
            .map(|m| PathBuf::from(m.path)))
    }

    fn delete_voicemail(&self, mailbox: &str, id: i64) -> Result<bool, BackendError> {
        self.store()?.delete_voicemail(mailbox, id).map_err(db)
    }

    fn recordings(&self) -> Result<Vec<RecordingItem>, BackendError> {
        Ok(self
            .store()?
            .recordings()
            .map_err(db)?
            .into_iter()
            .map(|r| RecordingItem {
                id: r.id,
                call_id: r.call_id,
                caller: r.caller,
                callee: r.callee,
                start_ms: r.start_ms,
                duration_ms: r.duration_ms,
            })
            .collect())
    }

    fn recording_file(&self, id: i64) -> Result<Option<PathBuf>, BackendError> {
        Ok(self
            .store()?
            .recordings()
            .map_err(db)?
            .into_iter()
            .find(|r| r.id == id)
            .map(|r| PathBuf::from(r.path)))
    }

    fn hang_up(&self, call_id: &str) -> Result<bool, BackendError> {
        self.store()?.request_hangup(call_id).map_err(db)
    }

    fn music_on_hold(&self) -> Result<MohList, BackendError> {
        let dir = &self.config.music_on_hold;
        let (files, problem) = match moh_files::list(dir) {
            Ok(f) => (f, None),
            Err(e) => (
                Vec::new(),
                Some(format!(
                    "{} cannot be read ({e}); check [music_on_hold] directory and its permissions",
                    dir.display()
                )),
            ),
        };
        Ok(MohList {
            directory: dir.display().to_string(),
            files: files
                .into_iter()
                .map(|f| MohFile {
                    name: f.name,
                    duration_ms: f.duration_ms,
                    rate_hz: f.rate_hz,
                    problem: f.problem,
                })
                .collect(),
            problem,
        })
    }

    fn add_music_on_hold(&self, name: &str, wav: &[u8]) -> Result<(), AddError> {
        moh_files::add(&self.config.music_on_hold, name.trim(), wav)
            .map(|_| ())
            .map_err(moh_error)
    }

    fn delete_music_on_hold(&self, name: &str) -> Result<bool, AddError> {
        moh_files::delete(&self.config.music_on_hold, name.trim()).map_err(moh_error)
    }

    fn routing(&self) -> Result<Routing, BackendError> {
        Ok(crate::web_routing::routing(&self.config))
    }

    fn conferences(&self) -> Result<Vec<RoomRow>, BackendError> {
        let store = self.store()?;
        let members = store.conference_members().map_err(db)?;
        let locked = store.locked_rooms().map_err(db)?;
        Ok(self
            .config
            .conferences
            .iter()
            .map(|r| RoomRow {
                number: r.number.clone(),
                name: r.name.clone(),
                locked: locked.contains(&r.number),
                max_members: r.max_members,
                members: members
                    .iter()
                    .filter(|m| m.room == r.number)
                    .map(|m| RoomMember {
                        member: m.member,
                        extension: m.extension.clone(),
                        admin: m.admin,
                        muted: m.muted,
                        talking: m.talking,
                        joined_ms: m.joined_ms,
                    })
                    .collect(),
            })
            .collect())
    }

    fn conference_member(
        &self,
        room: &str,
        member: i64,
        action: MemberAction,
    ) -> Result<(), AddError> {
        // The checks of `conference mute|kick`, with the CLI's words.
        if !self.config.conferences.iter().any(|r| r.number == room) {
            return Err(AddError::Field(FieldError {
                field: "room",
                message: format!("there is no conference room {room:?}"),
            }));
        }
        let store = self.store()?;
        let members = store.conference_members().map_err(db)?;
        if !members.iter().any(|m| m.member == member && m.room == room) {
            return Err(AddError::Field(FieldError {
                field: "member",
                message: format!("room {room} has no member {member}; it may have left"),
            }));
        }
        store
            .add_conference_command(room, action.name(), Some(member))
            .map_err(db)?;
        Ok(())
    }

    fn reports(&self) -> Result<Reports, BackendError> {
        const DAY: i64 = 86_400_000;
        let now = unix_ms();
        let offset = lcr_admin::local_offset_seconds() * 1000;
        let today = (now + offset).div_euclid(DAY);
        let first = today - 29;
        let since = first * DAY - offset;
        let store = self.store()?;
        let counts = store.cdr_calls_per_day(since, offset).map_err(db)?;
        let calls_per_day = (first..=today)
            .map(|d| {
                let n = counts.iter().find(|(c, _)| *c == d).map_or(0, |(_, n)| *n);
                (d, n)
            })
            .collect();
        let mut per_trunk: Vec<TrunkUse> = Vec::new();
        for c in store.outbound_cdrs_between(since, now + 1).map_err(db)? {
            let Some(out) = c.outbound else { continue };
            let Some(trunk) = out.trunk else { continue };
            let i = match per_trunk.iter().position(|t| t.trunk == trunk) {
                Some(i) => i,
                None => {
                    per_trunk.push(TrunkUse {
                        trunk,
                        seconds: 0,
                        cost: 0,
                    });
                    per_trunk.len() - 1
                }
            };
            per_trunk[i].seconds += c.duration_s.max(0.0).ceil() as u64;
            per_trunk[i].cost = per_trunk[i]
                .cost
                .saturating_add(out.cost.map_or(0, |m| m.ten_thousandths()));
        }
        per_trunk.sort_by(|a, b| a.trunk.cmp(&b.trunk));
        // The last six local months, this one included.
        let (mut y, mut m) = lcr_admin::month_of_day(today);
        let mut months = Vec::new();
        for _ in 0..6 {
            months.push(format!("{y:04}-{m:02}"));
            (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
        }
        months.reverse();
        let mut saved_per_month = Vec::new();
        let mut savings_problem = None;
        for month in months {
            match lcr_admin::savings_report(&self.config, &store, &month) {
                Ok((r, _)) => saved_per_month.push((month, r.total.saved.ten_thousandths())),
                Err(LcrError::Store(e)) => return Err(db(e)),
                Err(e) => {
                    savings_problem = Some(sentence(&e));
                    break;
                }
            }
        }
        Ok(Reports {
            calls_per_day,
            per_trunk,
            saved_per_month,
            savings_problem,
        })
    }
}

/// An LCR error for a page: what is wrong, then what to do.
fn sentence(e: &LcrError) -> String {
    format!("{e}; {}.", e.hint().trim_end_matches('.'))
}

/// The longest ban the Firewall page sets by hand (a year); longer is a firewall rule's job.
const MAX_BAN_HOURS: u64 = 8760;

/// Why the web admin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Web(#[from] WebError),
}

/// Starts the web admin when `[web]` is present: HTTPS with `[web] tls_certificate`/`tls_key`,
/// or else the PBX's own certificate (the one SIP/TLS uses).
pub fn start(config: &Config) -> Result<(), StartError> {
    let Some(web) = &config.web else {
        return Ok(());
    };
    let mut tls_config = config.clone();
    if let (Some(c), Some(k)) = (&web.tls_certificate, &web.tls_key) {
        tls_config.tls_certificate = Some(c.clone());
        tls_config.tls_key = Some(k.clone());
    }
    let tls = crate::tls::acceptor(&tls_config)?;
    let backend = Arc::new(PbxBackend {
        store: Mutex::new(Store::open(&config.database)?),
        config: config.clone(),
    });
    kentongan_web::server::spawn(
        WebConfig {
            listen: web.listen.clone(),
            tls,
            session_idle: web.session_idle,
            trusted: config.firewall.trusted.clone(),
            ban_after: config.firewall.ban_after_failures,
            ban_duration: config.firewall.ban_duration,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // The language the office's callers hear is the one its admins read; without a
            // `[voicemail]` table, the appliance's own default, Bahasa Indonesia.
            default_lang: match config.voicemail.as_ref().map(|v| v.language) {
                Some(crate::config::Language::English) => Lang::En,
                Some(crate::config::Language::Indonesian) | None => Lang::Id,
            },
        },
        backend,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_from_the_alphabet() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
    }

    #[test]
    fn new_extensions_follow_user_add() {
        let c = Config::from_toml(
            "[sip]\ndomain = \"pbx.local\"\n[[conference]]\nnumber = \"800\"\nname = \"Rapat\"\n",
        )
        .unwrap();
        assert_eq!(new_extension(&c, "205", "Ani").unwrap().0, "205");
        for bad in ["", "2 05", "205'; DROP TABLE users;--", "<b>"] {
            assert_eq!(
                new_extension(&c, bad, "").unwrap_err().field,
                "extension",
                "{bad}"
            );
        }
        assert!(new_extension(&c, "800", "")
            .unwrap_err()
            .message
            .contains("Rapat"));
        assert_eq!(new_extension(&c, "206", "a\nb").unwrap_err().field, "name");
    }

    #[test]
    fn ring_group_and_parking_numbers_are_not_extensions() {
        let c = Config::from_toml(
            "[sip]\ndomain = \"pbx.local\"\n[[ring_group]]\nnumber = \"600\"\nname = \"Sales\"\nmembers = [\"201\"]\n",
        )
        .unwrap();
        assert!(new_extension(&c, "600", "")
            .unwrap_err()
            .message
            .contains("ring group \"Sales\""));
        for n in ["70", "71", "78"] {
            let e = new_extension(&c, n, "").unwrap_err();
            assert!(e.message.contains("parking number"), "{n}: {}", e.message);
        }
        assert!(new_extension(&c, "79", "").is_ok());
    }
}
