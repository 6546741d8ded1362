//! What the web admin needs from the PBX, as a trait the PBX implements over its `Store`
//! (kentongan-pbx depends on this crate to start the server, so this crate cannot depend on
//! it). Every method is blocking (SQLite, argon2): the server calls them off its event loop.

use std::net::IpAddr;
use std::time::Duration;

/// A backend failure (the database); shown to the admin as "the database failed".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// The role of a logged-in admin account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
}

/// One registered phone.
#[derive(Debug, Clone)]
pub struct Registration {
    pub extension: String,
    /// The Contact URI as the phone wrote it (a SIP-sourced string: rendered escaped).
    pub contact: String,
    pub source: String,
    pub transport: String,
    /// Seconds until the binding expires.
    pub expires_in: i64,
}

/// One call in progress.
#[derive(Debug, Clone)]
pub struct LiveCall {
    /// The caller's Call-ID, which a hang-up names (SIP-sourced: rendered escaped).
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    pub state: String,
    /// Seconds since the call started.
    pub age_s: i64,
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub registrations: Vec<Registration>,
    pub live_calls: Vec<LiveCall>,
    pub cdr_today: i64,
}

#[derive(Debug, Clone)]
pub struct ExtensionRow {
    pub extension: String,
    pub name: String,
    pub registered: usize,
}

/// One banned address, as `ban list` shows it (SIP shield, web logins, the kernel's flood
/// bans and the operator's own).
#[derive(Debug, Clone)]
pub struct BanEntry {
    pub addr: String,
    pub reason: String,
    /// `None` when the kernel does not say.
    pub seconds_left: Option<u64>,
}

/// A form field the backend refused, with the reason to show next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("{}", .0.message)]
    Field(FieldError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The CDR columns a list may be sorted by: the only sort orders there are, so a request can
/// never name a column (the store maps each to a fixed SQL column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CdrSort {
    #[default]
    Start,
    Caller,
    Callee,
    Duration,
    Disposition,
}

impl CdrSort {
    pub const ALL: [CdrSort; 5] = [
        CdrSort::Start,
        CdrSort::Caller,
        CdrSort::Callee,
        CdrSort::Duration,
        CdrSort::Disposition,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CdrSort::Start => "start",
            CdrSort::Caller => "caller",
            CdrSort::Callee => "callee",
            CdrSort::Duration => "duration",
            CdrSort::Disposition => "disposition",
        }
    }

    /// Anything but a known name is the default order, never an error.
    pub fn parse(s: &str) -> CdrSort {
        CdrSort::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .unwrap_or_default()
    }
}

/// A CDR list request: filters are matched exactly, as bound SQL parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrQuery {
    /// Caller or callee.
    pub extension: Option<String>,
    pub disposition: Option<String>,
    pub sort: CdrSort,
    pub descending: bool,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct CdrRow {
    pub caller: String,
    /// The caller's display name from the INVITE's From (SIP-sourced: rendered escaped).
    pub caller_name: String,
    pub callee: String,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub duration_s: f64,
    pub disposition: String,
}

/// One configured trunk as `trunk list` shows it (never its password). State and failure
/// text came from the provider: rendered escaped.
#[derive(Debug, Clone)]
pub struct TrunkRow {
    pub name: String,
    pub kind: String,
    pub address: Option<String>,
    pub channels_in_use: u32,
    /// `None`: unlimited.
    pub max_channels: Option<u32>,
    pub operator: Option<String>,
    pub state: String,
    pub last_failure: Option<String>,
    /// Seconds until the registration runs out, while registered.
    pub expires_in: Option<i64>,
    /// OPTIONS keepalives: `None` without `keepalive_seconds`.
    pub reachable: Option<bool>,
    pub down_reason: Option<String>,
}

/// One line of the installed rates file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRow {
    pub line: usize,
    pub trunk: String,
    /// With its `+`.
    pub prefix: String,
    pub rate_per_minute: String,
    pub connect_fee: String,
    pub increment_seconds: u32,
    /// Empty: all day.
    pub window: String,
}

/// The installed rates, or why there are none to show.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    /// `lcr.rates`, as configured.
    pub file: String,
    pub rows: Vec<RateRow>,
    /// No `[lcr]`, or the file is missing or broken: what is wrong and what to do.
    pub problem: Option<String>,
}

/// What a rates upload did: the whole file went in, or nothing did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub rates: usize,
    pub trunks: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Every bad line, as `line N: what is wrong`, in line order; nothing was loaded.
    #[error("{} bad line(s)", .0.len())]
    Lines(Vec<String>),
    /// The upload could not be installed (no `[lcr]`, an unwritable folder): what and how to fix.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A route of an explanation, in rank order.
#[derive(Debug, Clone)]
pub struct RouteRow {
    pub rank: usize,
    pub trunk: String,
    pub kind: String,
    /// The cost of the explained call length, or empty (emergency calls are not priced).
    pub cost: String,
    pub why: String,
}

/// `lcr explain` for one number.
#[derive(Debug, Clone)]
pub struct Explained {
    pub dialled: String,
    pub number: String,
    pub class: String,
    pub operator: Option<String>,
    /// The call length the costs are for.
    pub seconds: u32,
    pub routes: Vec<RouteRow>,
    /// Trunks left out, and why.
    pub not_used: Vec<(String, String)>,
    pub note: Option<String>,
}

/// One line of `report savings`.
#[derive(Debug, Clone)]
pub struct SavingsRow {
    pub trunk: String,
    pub calls: u64,
    pub seconds: u64,
    pub actual: String,
    pub most_expensive: String,
    pub saved: String,
}

/// `report savings --month` for one month.
#[derive(Debug, Clone)]
pub struct Savings {
    pub month: String,
    pub rows: Vec<SavingsRow>,
    pub total: SavingsRow,
    /// Calls left out: their trunk or number no longer parses against the configuration.
    pub skipped: usize,
}

/// A mailbox (an extension) and its message counts.
#[derive(Debug, Clone)]
pub struct MailboxRow {
    pub mailbox: String,
    pub name: String,
    pub new: u32,
    pub old: u32,
}

/// One stored voicemail message.
#[derive(Debug, Clone)]
pub struct VoicemailRow {
    pub id: i64,
    /// The caller as the PBX knew it (SIP-sourced: rendered escaped).
    pub caller: String,
    /// Unix milliseconds.
    pub received_ms: i64,
    pub duration_ms: i64,
    /// `new` or `old`.
    pub status: String,
}

/// One stored call recording.
#[derive(Debug, Clone)]
pub struct RecordingItem {
    pub id: i64,
    /// SIP-sourced: rendered escaped.
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// One trunk's use over the Reports page's 30 days.
#[derive(Debug, Clone)]
pub struct TrunkUse {
    pub trunk: String,
    pub seconds: u64,
    /// Ten-thousandths of the currency.
    pub cost: i64,
}

/// The Reports page's data.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    /// The last 30 local days, oldest first, each as days since 1970-01-01 (local) and the
    /// calls that started then; days without calls are there with 0.
    pub calls_per_day: Vec<(i64, u64)>,
    /// Answered trunk calls of those days, per trunk.
    pub per_trunk: Vec<TrunkUse>,
    /// The last months (YYYY-MM, oldest first) and what LCR saved in each, in ten-thousandths.
    pub saved_per_month: Vec<(String, i64)>,
    /// Why there is no savings data (no `[lcr]`, a broken rates file).
    pub savings_problem: Option<String>,
}

/// A member of a conference room, as the daemon mirrors it.
#[derive(Debug, Clone)]
pub struct RoomMember {
    /// The member's number within the daemon's run (what mute and kick name).
    pub member: i64,
    /// Who called in (the From user: SIP-sourced, rendered escaped).
    pub extension: String,
    pub admin: bool,
    pub muted: bool,
    pub talking: bool,
    pub joined_ms: i64,
}

/// A `[[conference]]` room and who is in it now.
#[derive(Debug, Clone)]
pub struct RoomRow {
    pub number: String,
    pub name: String,
    pub locked: bool,
    pub max_members: u32,
    pub members: Vec<RoomMember>,
}

/// What the page asks the daemon to do to a member (`conference mute|kick`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    /// Mutes the member, or unmutes a muted one.
    Mute,
    /// Hangs the member up.
    Kick,
}

impl MemberAction {
    /// The command's action as the conference commands table (and the CLI) name it.
    pub fn name(self) -> &'static str {
        match self {
            MemberAction::Mute => "mute",
            MemberAction::Kick => "kick",
        }
    }
}

/// The call routing the configuration file holds (its source of truth: shown, not edited),
/// each value as the file would say it.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    pub dids: Vec<DidRow>,
    pub ring_groups: Vec<RingGroupRow>,
    pub ivrs: Vec<IvrRow>,
    pub office_hours: Vec<OfficeHoursRow>,
}

#[derive(Debug, Clone)]
pub struct DidRow {
    pub number: String,
    pub to: String,
    /// Empty: from any trunk.
    pub trunk: String,
}

#[derive(Debug, Clone)]
pub struct RingGroupRow {
    pub number: String,
    pub name: String,
    pub strategy: String,
    pub members: String,
    pub ring_seconds: u32,
    /// Empty: the caller gets 480.
    pub no_answer: String,
}

#[derive(Debug, Clone)]
pub struct IvrRow {
    pub number: String,
    pub greeting: String,
    /// `KEY → TARGET`, in key order.
    pub options: Vec<String>,
    /// Empty: goodbye and hang up.
    pub invalid: String,
    pub timeout_s: u64,
    pub retries: u32,
    pub direct_dial: bool,
}

#[derive(Debug, Clone)]
pub struct OfficeHoursRow {
    pub name: String,
    pub timezone: String,
    pub open: Vec<String>,
    /// Empty: no holidays file.
    pub holidays: String,
    pub in_hours: String,
    pub after_hours: String,
}

/// A file in `[music_on_hold] directory`.
#[derive(Debug, Clone)]
pub struct MohFile {
    pub name: String,
    pub duration_ms: u64,
    pub rate_hz: u32,
    /// Why hold music skips it (not a WAV the media crate reads); empty: it plays.
    pub problem: String,
}

#[derive(Debug, Clone, Default)]
pub struct MohList {
    pub directory: String,
    pub files: Vec<MohFile>,
    /// The directory cannot be read (absent: no files yet, the built-in tune plays).
    pub problem: Option<String>,
}

/// One admin account as `admin list` shows it (never its hash).
#[derive(Debug, Clone)]
pub struct AdminRow {
    pub name: String,
    pub role: Role,
    /// Unix seconds.
    pub created: i64,
}

pub trait Backend: Send + Sync + 'static {
    /// Whether any admin account exists (no page works before one does).
    fn has_admins(&self) -> Result<bool, BackendError>;
    /// Checks a name and password. An unknown name costs the same time as a known one.
    fn authenticate(&self, name: &str, password: &str) -> Result<Option<Role>, BackendError>;
    /// Every admin account, by name.
    fn admins(&self) -> Result<Vec<AdminRow>, BackendError>;
    /// `admin add NAME --role ROLE`: the CLI's name and password rules.
    fn add_admin(&self, name: &str, password: &str, role: Role) -> Result<(), AddError>;
    /// `admin remove NAME`: the last `admin`-role account stays.
    fn remove_admin(&self, name: &str) -> Result<(), AddError>;
    /// `admin passwd NAME`: the CLI's password rules.
    fn set_admin_password(&self, name: &str, password: &str) -> Result<(), AddError>;
    /// The page language the account last chose, if it ever did.
    fn admin_language(&self, name: &str) -> Result<Option<crate::i18n::Lang>, BackendError>;
    /// Remembers the account's page language for its next login.
    fn set_admin_language(&self, name: &str, lang: crate::i18n::Lang) -> Result<(), BackendError>;
    /// Stores a ban in the same table as the SIP shield's, which the daemon applies.
    fn ban(&self, addr: IpAddr, duration: Duration, reason: &str) -> Result<(), BackendError>;
    /// Whether `addr` is banned now (by the web login or by SIP).
    fn is_banned(&self, addr: IpAddr) -> Result<bool, BackendError>;
    fn dashboard(&self) -> Result<Dashboard, BackendError>;
    fn extensions(&self) -> Result<Vec<ExtensionRow>, BackendError>;
    /// Adds an extension with a generated password, which is returned (shown once).
    fn add_extension(&self, extension: &str, name: &str) -> Result<String, AddError>;
    /// False if there was no such extension.
    fn remove_extension(&self, extension: &str) -> Result<bool, BackendError>;
    /// One page of CDRs and the number of rows matching the filters.
    fn cdrs(&self, query: &CdrQuery) -> Result<(Vec<CdrRow>, u64), BackendError>;
    /// The dispositions present in the CDR, for the filter's choices.
    fn dispositions(&self) -> Result<Vec<String>, BackendError>;
    /// Every banned address.
    fn bans(&self) -> Result<Vec<BanEntry>, BackendError>;
    /// Bans `addr` for `hours`, both as typed into the form, by the rules of `ban add` (a
    /// trusted address never); returns the address as stored.
    fn add_ban(&self, addr: &str, hours: &str) -> Result<String, AddError>;
    /// Lifts the ban on `addr`; a field error when it is not banned.
    fn lift_ban(&self, addr: &str) -> Result<String, AddError>;
    /// Every `[[trunk]]` with its registration state and channels in use (`trunk list`).
    fn trunks(&self) -> Result<Vec<TrunkRow>, BackendError>;
    /// The installed rates file (`lcr.rates`) in file order.
    fn rates(&self) -> Result<Rates, BackendError>;
    /// Validates `csv` as `lcr import` does and installs it whole, or changes nothing.
    fn import_rates(&self, csv: &str) -> Result<Imported, ImportError>;
    /// `lcr explain NUMBER [--at "mon 10:00"]`; `at` empty means now. Field errors name
    /// `number` or `at`.
    fn explain(&self, number: &str, at: &str) -> Result<Explained, AddError>;
    /// `report savings --month YYYY-MM`; a field error names `month`.
    fn savings(&self, month: &str) -> Result<Savings, AddError>;
    /// Every extension's mailbox with its new and old message counts.
    fn mailboxes(&self) -> Result<Vec<MailboxRow>, BackendError>;
    /// A mailbox's messages, oldest first (`voicemail list`); empty for no such mailbox.
    fn voicemail(&self, mailbox: &str) -> Result<Vec<VoicemailRow>, BackendError>;
    /// The WAV file of message `id` of `mailbox`, from its database row; `None` if there is
    /// no such message.
    fn voicemail_file(
        &self,
        mailbox: &str,
        id: i64,
    ) -> Result<Option<std::path::PathBuf>, BackendError>;
    /// Deletes a message as `voicemail delete` does; false if there was none.
    fn delete_voicemail(&self, mailbox: &str, id: i64) -> Result<bool, BackendError>;
    /// Every stored call recording, oldest first (`recordings list`).
    fn recordings(&self) -> Result<Vec<RecordingItem>, BackendError>;
    /// The WAV file of recording `id`, from its database row.
    fn recording_file(&self, id: i64) -> Result<Option<std::path::PathBuf>, BackendError>;
    /// Calls per day, minutes and cost per trunk, savings per month.
    fn reports(&self) -> Result<Reports, BackendError>;
    /// Asks the daemon to hang up the live call `call_id` (it does within a second); false
    /// when no such call is live.
    fn hang_up(&self, call_id: &str) -> Result<bool, BackendError>;
    /// The WAV files of `[music_on_hold] directory`, in the order they play.
    fn music_on_hold(&self) -> Result<MohList, BackendError>;
    /// Adds a music file: a safe name ending in `.wav` not yet taken, and a mono WAV at 8, 16
    /// or 48 kHz; written to a temporary file and renamed, so hold music never reads half.
    fn add_music_on_hold(&self, name: &str, wav: &[u8]) -> Result<(), AddError>;
    /// Deletes a music file by name; false when there is none.
    fn delete_music_on_hold(&self, name: &str) -> Result<bool, AddError>;
    /// DIDs, ring groups, IVRs and office hours as configured.
    fn routing(&self) -> Result<Routing, BackendError>;
    /// The configured rooms with their live members.
    fn conferences(&self) -> Result<Vec<RoomRow>, BackendError>;
    /// Leaves a mute or kick for the daemon (it carries it out within a second), by the
    /// rules of `conference mute|kick`: the room must be configured, the member in it.
    fn conference_member(
        &self,
        room: &str,
        member: i64,
        action: MemberAction,
    ) -> Result<(), AddError>;
}
