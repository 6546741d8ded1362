//! Login throttling: a per-account backoff (doubling from 1 s to 5 min after each failure, so
//! guessing one account from many addresses stays slow) and a per-address failure count that
//! bans the address after `ban_after` failures (OWASP ASVS 6.3.1). Trusted networks are
//! never banned, only slowed. Time is passed in as `now` (time since the process started).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use kentongan_firewall::policy::Cidr;

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(300);
/// A quiet account or address is forgotten after this long (bounds the maps).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// At most this many accounts are tracked: names come from the form, so an attacker could
/// otherwise grow the map without end; beyond it the oldest entries are dropped.
const MAX_TRACKED: usize = 10_000;

/// Whether a login attempt may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The account is backing off: try again after this long (the password is not checked).
    Wait(Duration),
}

/// A ban to store (`Store::add_ban`) and hand to the firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub addr: IpAddr,
    pub duration: Duration,
    pub failures: u32,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Duration,
    last: Duration,
}

/// The login guard of one web server process.
#[derive(Debug)]
pub struct LoginGuard {
    trusted: Vec<Cidr>,
    ban_after: u32,
    ban_duration: Duration,
    accounts: HashMap<String, Backoff>,
    addresses: HashMap<IpAddr, (u32, Duration)>,
}

impl LoginGuard {
    /// `ban_after` failures from one address ban it for `ban_duration` (0: never ban).
    pub fn new(trusted: Vec<Cidr>, ban_after: u32, ban_duration: Duration) -> LoginGuard {
        LoginGuard {
            trusted,
            ban_after,
            ban_duration,
            accounts: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    pub fn check(&self, account: &str, now: Duration) -> Verdict {
        match self.accounts.get(account) {
            Some(b) if b.until > now => Verdict::Wait(b.until - now),
            _ => Verdict::Allow,
        }
    }

    /// Records a failed login; returns the ban when this failure is the address's last straw.
    pub fn failed(&mut self, addr: IpAddr, account: &str, now: Duration) -> Option<Ban> {
        self.forget(now);
        let b = self.accounts.entry(account.to_owned()).or_insert(Backoff {
            failures: 0,
            until: now,
            last: now,
        });
        b.failures = b.failures.saturating_add(1);
        let delay = FIRST_DELAY
            .saturating_mul(1 << (b.failures - 1).min(16))
            .min(MAX_DELAY);
        b.until = now + delay;
        b.last = now;
        let a = self.addresses.entry(addr).or_insert((0, now));
        a.0 = a.0.saturating_add(1);
        a.1 = now;
        let failures = a.0;
        let trusted = self.trusted.iter().any(|c| c.contains(addr));
        if self.ban_after > 0 && failures >= self.ban_after && !trusted {
            self.addresses.remove(&addr);
            return Some(Ban {
                addr,
                duration: self.ban_duration,
                failures,
            });
        }
        None
    }

    /// A successful login clears the account's backoff and the address's count.
    pub fn succeeded(&mut self, addr: IpAddr, account: &str) {
        self.accounts.remove(account);
        self.addresses.remove(&addr);
    }

    fn forget(&mut self, now: Duration) {
        let fresh = |last: Duration| now.saturating_sub(last) < FORGET_AFTER;
        self.accounts.retain(|_, b| fresh(b.last));
        self.addresses.retain(|_, a| fresh(a.1));
        if self.accounts.len() >= MAX_TRACKED {
            let mut lasts: Vec<Duration> = self.accounts.values().map(|b| b.last).collect();
            lasts.sort_unstable();
            let cut = lasts[lasts.len() / 2];
            self.accounts.retain(|_, b| b.last > cut);
        }
        if self.addresses.len() >= MAX_TRACKED {
            let mut lasts: Vec<Duration> = self.addresses.values().map(|a| a.1).collect();
            lasts.sort_unstable();
            let cut = lasts[lasts.len() / 2];
            self.addresses.retain(|_, a| a.1 > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn backoff_doubles_and_success_clears_it() {
        let mut g = LoginGuard::new(Vec::new(), 0, HOUR);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        g.failed(a, "admin", s(0));
        assert_eq!(g.check("admin", s(0)), Verdict::Wait(s(1)));
        assert_eq!(g.check("siti", s(0)), Verdict::Allow, "per account");
        g.failed(a, "admin", s(1));
        assert_eq!(g.check("admin", s(1)), Verdict::Wait(s(2)));
        for i in 0..20 {
            g.failed(a, "admin", s(10 + i));
        }
        assert_eq!(g.check("admin", s(29)), Verdict::Wait(MAX_DELAY));
        g.succeeded(a, "admin");
        assert_eq!(g.check("admin", s(29)), Verdict::Allow);
    }

    #[test]
    fn tenth_failure_bans_untrusted_only() {
        let trusted: Cidr = "192.168.1.0/24".parse().unwrap();
        let mut g = LoginGuard::new(vec![trusted], 10, HOUR);
        let evil: IpAddr = "203.0.113.9".parse().unwrap();
        let office: IpAddr = "192.168.1.20".parse().unwrap();
        for i in 0..9 {
            assert_eq!(g.failed(evil, &format!("guess{i}"), s(i)), None);
            assert_eq!(g.failed(office, "admin", s(i)), None);
        }
        let ban = g.failed(evil, "guess9", s(9)).unwrap();
        assert_eq!((ban.addr, ban.duration, ban.failures), (evil, HOUR, 10));
        for i in 9..30 {
            assert_eq!(
                g.failed(office, "admin", s(i)),
                None,
                "trusted is never banned"
            );
        }
    }

    #[test]
    fn quiet_sources_are_forgotten() {
        let mut g = LoginGuard::new(Vec::new(), 3, HOUR);
        let a: IpAddr = "2001:db8::5".parse().unwrap();
        g.failed(a, "x", s(0));
        g.failed(a, "x", s(1));
        assert_eq!(
            g.failed(a, "y", s(2) + FORGET_AFTER),
            None,
            "the count restarted"
        );
        assert_eq!(g.failed(a, "y", s(3) + FORGET_AFTER), None);
        assert!(g.failed(a, "y", s(4) + FORGET_AFTER).is_some());
    }
}
