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

pub trait Backend: Send + Sync + 'static {
    /// Whether any admin account exists (no page works before one does).
    fn has_admins(&self) -> Result<bool, BackendError>;
    /// Checks a name and password. An unknown name costs the same time as a known one.
    fn authenticate(&self, name: &str, password: &str) -> Result<Option<Role>, BackendError>;
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
}
