//! The daemon's half of abuse protection, sans-IO: which datagrams to drop unanswered and which
//! sources to ban. Fed source addresses, raw bytes and time; returns verdicts and new [`Ban`]s
//! for the driver to persist (SQLite) and hand to the kernel (nftables). Expiry of a ban in the
//! kernel is nftables' own timeout; here it is only remembered so a ban also holds on a host
//! without the ruleset (a developer's laptop, a test without root).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::policy::Policy;

/// Sources whose failures are tracked at once; beyond this, stale entries are swept first.
const MAX_TRACKED: usize = 65_536;
/// Bans remembered in memory (nftables' own set holds 65,535 per family).
const MAX_BANNED: usize = 131_072;

/// User-Agent fragments of SIP scanners and war-dialers, matched case-insensitively. These
/// tools send nothing a phone would: dropping them unanswered gives a scan nothing to report.
pub const SCANNER_USER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "vaxsipuseragent",
    "sundayddr",
    "iwar",
    "sip-scan",
    "sipscan",
    "sivus",
    "pplsip",
];

/// Why a source was banned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanReason {
    /// `count` authentication failures within the window.
    AuthFailures { count: u32, window: Duration },
    /// A scanner's User-Agent (the fragment that matched).
    Scanner { user_agent: String },
    /// An operator's `ban add`.
    Manual,
}

impl fmt::Display for BanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanReason::AuthFailures { count, window } => write!(
                f,
                "{count} authentication failures in {}s",
                window.as_secs()
            ),
            BanReason::Scanner { user_agent } => write!(f, "scanner User-Agent {user_agent:?}"),
            BanReason::Manual => f.write_str("banned by the operator"),
        }
    }
}

impl BanReason {
    /// A short label for metrics: `auth`, `scanner` or `manual`.
    pub fn kind(&self) -> &'static str {
        match self {
            BanReason::AuthFailures { .. } => "auth",
            BanReason::Scanner { .. } => "scanner",
            BanReason::Manual => "manual",
        }
    }
}

/// A decision to ban `addr` until `expires_at` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub addr: IpAddr,
    pub reason: BanReason,
    pub banned_at: i64,
    pub expires_at: i64,
}

impl Ban {
    /// Seconds left at `now_unix`, at least 1 (nftables rejects a zero timeout).
    pub fn remaining(&self, now_unix: i64) -> u64 {
        u64::try_from(self.expires_at.saturating_sub(now_unix)).map_or(1, |s| s.max(1))
    }
}

/// What to do with one inbound datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Pass,
    /// The source is banned: drop without an answer.
    Banned,
    /// A scanner: drop without an answer; the source has just been banned.
    Scanner,
}

/// Ban bookkeeping for one daemon.
#[derive(Debug)]
pub struct Shield {
    policy: Policy,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    /// Banned sources and when their ban ends (unix seconds).
    banned: HashMap<IpAddr, i64>,
    new_bans: VecDeque<Ban>,
}

impl Shield {
    pub fn new(policy: Policy) -> Shield {
        Shield {
            policy,
            failures: HashMap::new(),
            banned: HashMap::new(),
            new_bans: VecDeque::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A reloaded policy; a source that is now trusted loses its ban here (the kernel set is
    /// the driver's to clean).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
        let policy = &self.policy;
        self.banned.retain(|a, _| !policy.is_trusted(*a));
        self.failures.retain(|a, _| !policy.is_trusted(*a));
    }

    /// Checks a datagram before it is parsed.
    pub fn screen(&mut self, now_unix: i64, from: IpAddr, datagram: &[u8]) -> Screen {
        let from = from.to_canonical();
        if self.is_banned(now_unix, from) {
            return Screen::Banned;
        }
        if self.policy.is_trusted(from) {
            return Screen::Pass;
        }
        match scanner_user_agent(datagram) {
            Some(ua) => {
                self.ban(
                    now_unix,
                    from,
                    BanReason::Scanner {
                        user_agent: ua.to_owned(),
                    },
                );
                Screen::Scanner
            }
            None => Screen::Pass,
        }
    }

    pub fn is_banned(&mut self, now_unix: i64, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        match self.banned.get(&addr) {
            Some(&until) if until > now_unix => true,
            Some(_) => {
                self.banned.remove(&addr);
                false
            }
            None => false,
        }
    }

    /// An authentication failure from `from`; returns true if it earned a ban.
    pub fn auth_failed(&mut self, now: Instant, now_unix: i64, from: IpAddr) -> bool {
        let from = from.to_canonical();
        if self.policy.is_trusted(from) || self.policy.ban_after_failures == 0 {
            return false;
        }
        let window = self.policy.ban_window;
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&from) {
            self.failures
                .retain(|_, t| t.back().is_some_and(|l| now.duration_since(*l) < window));
            if self.failures.len() >= MAX_TRACKED {
                return false;
            }
        }
        let times = self.failures.entry(from).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            times.pop_front();
        }
        times.push_back(now);
        let count = times.len() as u32;
        if count < self.policy.ban_after_failures {
            return false;
        }
        self.failures.remove(&from);
        self.ban(now_unix, from, BanReason::AuthFailures { count, window });
        true
    }

    /// Bans `addr` for the policy's ban duration (trusted sources never).
    pub fn ban(&mut self, now_unix: i64, addr: IpAddr, reason: BanReason) -> Option<Ban> {
        let addr = addr.to_canonical();
        if self.policy.is_trusted(addr) {
            return None;
        }
        if self.banned.len() >= MAX_BANNED {
            self.banned.retain(|_, until| *until > now_unix);
            if self.banned.len() >= MAX_BANNED {
                return None;
            }
        }
        let secs = i64::try_from(self.policy.ban_duration.as_secs())
            .unwrap_or(i64::MAX)
            .max(1);
        let ban = Ban {
            addr,
            reason,
            banned_at: now_unix,
            expires_at: now_unix.saturating_add(secs),
        };
        self.banned.insert(addr, ban.expires_at);
        self.new_bans.push_back(ban.clone());
        Some(ban)
    }

    /// Bans made since the last call, oldest first: the driver stores and applies them.
    pub fn poll_ban(&mut self) -> Option<Ban> {
        self.new_bans.pop_front()
    }

    /// Replaces the remembered bans with the stored ones (at start, and after an operator's
    /// `ban add`/`ban remove` changed the database). Returns the addresses no longer banned.
    pub fn sync(&mut self, now_unix: i64, stored: &[(IpAddr, i64)]) -> Vec<IpAddr> {
        let fresh: HashMap<IpAddr, i64> = stored
            .iter()
            .filter(|(a, until)| *until > now_unix && !self.policy.is_trusted(*a))
            .map(|(a, until)| (a.to_canonical(), *until))
            .collect();
        let lifted: Vec<IpAddr> = self
            .banned
            .keys()
            .filter(|a| !fresh.contains_key(a))
            .copied()
            .collect();
        for a in &lifted {
            self.failures.remove(a);
        }
        self.banned = fresh;
        lifted
    }

    /// Forgets expired bans and stale failure counts.
    pub fn sweep(&mut self, now: Instant, now_unix: i64) {
        self.banned.retain(|_, until| *until > now_unix);
        let window = self.policy.ban_window;
        self.failures
            .retain(|_, t| t.back().is_some_and(|l| now.duration_since(*l) < window));
    }

    pub fn active_bans(&self) -> usize {
        self.banned.len()
    }
}

/// The scanner fragment in a datagram's User-Agent header, if any. Works on raw bytes so a
/// scanner is dropped before a parser spends anything on it; only the header section is read.
pub fn scanner_user_agent(datagram: &[u8]) -> Option<&'static str> {
    // Every datagram passes here: lines are found with memchr and only those starting with
    // a 'U' are compared, which keeps this a small part of a registrar's work.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', datagram).chain(std::iter::once(datagram.len()));
    for end in ends {
        let line = &datagram[start..end];
        start = (end + 1).min(datagram.len());
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        const NAME: &[u8] = b"user-agent";
        if !matches!(line[0], b'U' | b'u')
            || line.len() <= NAME.len()
            || !line[..NAME.len()].eq_ignore_ascii_case(NAME)
        {
            continue;
        }
        let rest = &line[NAME.len()..];
        let rest = trim_start(rest);
        let Some(value) = rest.strip_prefix(b":") else {
            continue;
        };
        return SCANNER_USER_AGENTS
            .iter()
            .find(|frag| contains_ignore_case(value, frag.as_bytes()))
            .copied();
    }
    None
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
    &b[n..]
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn shield() -> Shield {
        Shield::new(Policy {
            trusted: vec!["10.0.2.0/24".parse().unwrap()],
            ..Policy::default()
        })
    }

    const SVMAP: &[u8] = b"OPTIONS sip:100@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-1\r\nFrom: \"sipvicious\"<sip:100@1.1.1.1>;tag=1\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\nUser-Agent: friendly-scanner\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn finds_scanner_user_agents_in_the_header_section_only() {
        assert_eq!(scanner_user_agent(SVMAP), Some("friendly-scanner"));
        assert_eq!(
            scanner_user_agent(b"REGISTER sip:x SIP/2.0\nuser-agent  :  VaxSIPUserAgent/3.1\n\n"),
            Some("vaxsipuseragent")
        );
        assert_eq!(
            scanner_user_agent(b"REGISTER sip:x SIP/2.0\r\nUser-Agent: baresip v2.0\r\n\r\n"),
            None
        );
        // In the body it is just text.
        assert_eq!(
            scanner_user_agent(
                b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 30\r\n\r\nUser-Agent: friendly-scanner"
            ),
            None
        );
        // A header whose name merely starts the same is not the User-Agent.
        assert_eq!(
            scanner_user_agent(b"OPTIONS sip:x SIP/2.0\r\nUser-Agent-X: sipcli\r\n\r\n"),
            None
        );
        assert_eq!(scanner_user_agent(b""), None);
    }

    #[test]
    fn a_scanner_is_dropped_and_banned_but_never_a_trusted_one() {
        let mut s = shield();
        assert_eq!(s.screen(1000, ip("203.0.113.5"), SVMAP), Screen::Scanner);
        let ban = s.poll_ban().unwrap();
        assert_eq!(ban.addr, ip("203.0.113.5"));
        assert_eq!(ban.expires_at, 1000 + 3600);
        assert_eq!(ban.reason.kind(), "scanner");
        assert_eq!(s.screen(1001, ip("203.0.113.5"), b"x"), Screen::Banned);
        assert_eq!(s.screen(1000 + 3600, ip("203.0.113.5"), b"x"), Screen::Pass);
        assert_eq!(s.screen(1000, ip("10.0.2.2"), SVMAP), Screen::Pass);
        assert_eq!(s.poll_ban(), None);
    }

    #[test]
    fn the_fifth_failure_within_the_window_bans() {
        let mut s = shield();
        let t0 = Instant::now();
        let attacker = ip("198.51.100.7");
        for i in 0..4 {
            assert!(!s.auth_failed(t0 + Duration::from_secs(i), 50, attacker));
        }
        assert!(s.auth_failed(t0 + Duration::from_secs(4), 54, attacker));
        let ban = s.poll_ban().unwrap();
        assert_eq!(
            ban.reason,
            BanReason::AuthFailures {
                count: 5,
                window: Duration::from_secs(60)
            }
        );
        assert!(s.is_banned(55, attacker));
        assert_eq!(ban.remaining(54), 3600);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_ban() {
        let mut s = shield();
        let t0 = Instant::now();
        let phone = ip("198.51.100.8");
        for i in 0..20 {
            assert!(!s.auth_failed(t0 + Duration::from_secs(i * 16), 0, phone));
        }
        assert_eq!(s.poll_ban(), None);
    }

    #[test]
    fn trusted_sources_are_never_banned() {
        let mut s = shield();
        let t0 = Instant::now();
        for i in 0..50 {
            assert!(!s.auth_failed(t0 + Duration::from_millis(i), 0, ip("10.0.2.9")));
        }
        assert_eq!(s.ban(0, ip("10.0.2.9"), BanReason::Manual), None);
        assert_eq!(s.poll_ban(), None);
    }

    #[test]
    fn sync_lifts_what_the_operator_removed_and_forgets_its_failures() {
        let mut s = shield();
        let t0 = Instant::now();
        let a = ip("198.51.100.1");
        let b = ip("2001:db8::1");
        s.ban(100, a, BanReason::Manual);
        for _ in 0..4 {
            s.auth_failed(t0, 100, b);
        }
        s.sync(100, &[(a, 200), (b, 300)]);
        assert!(s.is_banned(101, b));
        let lifted = s.sync(101, &[(a, 200)]);
        assert_eq!(lifted, vec![b]);
        assert!(!s.is_banned(101, b));
        // The earlier failures of b were forgotten with the ban.
        assert!(!s.auth_failed(t0, 101, b));
        // Expired stored bans are not restored.
        s.sync(250, &[(a, 200)]);
        assert_eq!(s.active_bans(), 0);
    }

    #[test]
    fn a_policy_reload_that_trusts_a_banned_source_lifts_it() {
        let mut s = shield();
        s.ban(0, ip("192.0.2.1"), BanReason::Manual);
        s.set_policy(Policy {
            trusted: vec!["192.0.2.0/24".parse().unwrap()],
            ..Policy::default()
        });
        assert!(!s.is_banned(1, ip("192.0.2.1")));
    }
}
