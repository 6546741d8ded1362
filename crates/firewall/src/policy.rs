//! Who is trusted and when a source gets banned: the `[firewall]` settings as typed values.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// An IPv4 or IPv6 network, `192.168.1.0/24` or `2001:db8::/64`; a bare address is one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("is not an IPv4 or IPv6 address or network; write it like \"192.168.1.0/24\", \"2001:db8::/64\" or \"10.0.0.7\"")]
    NotAnAddress,
    #[error("has prefix length {prefix}, more than the {max} bits of the address")]
    PrefixTooLong { prefix: String, max: u8 },
    #[error("has host bits set; write the network as {network}")]
    HostBits { network: String },
}

impl Cidr {
    /// The network's first address and prefix length.
    pub fn new(network: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let network = network.to_canonical();
        let max = max_prefix(network);
        if prefix > max {
            return Err(CidrError::PrefixTooLong {
                prefix: prefix.to_string(),
                max,
            });
        }
        let masked = mask(network, prefix);
        if masked != network {
            return Err(CidrError::HostBits {
                network: Cidr {
                    network: masked,
                    prefix,
                }
                .to_string(),
            });
        }
        Ok(Cidr { network, prefix })
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::NotAnAddress)?;
        let prefix = match prefix {
            None => max_prefix(addr.to_canonical()),
            Some(p) => match p.parse::<u8>() {
                Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(CidrError::PrefixTooLong {
                        prefix: p.to_owned(),
                        max: max_prefix(addr.to_canonical()),
                    })
                }
                _ => return Err(CidrError::NotAnAddress),
            },
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The `[firewall]` settings: trusted networks and the ban thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Never banned, never rate-limited; the only sources allowed to SSH and admin ports.
    pub trusted: Vec<Cidr>,
    /// Authentication failures from one source within `ban_window` that earn a ban.
    pub ban_after_failures: u32,
    pub ban_window: Duration,
    pub ban_duration: Duration,
    /// SIP packets per second one untrusted source may send before the kernel bans it.
    pub sip_rate_limit: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            trusted: Vec::new(),
            ban_after_failures: 5,
            ban_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(3600),
            sip_rate_limit: 200,
        }
    }
}

impl Policy {
    pub fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_networks_and_hosts() {
        let c: Cidr = "192.168.1.0/24".parse().unwrap();
        assert!(c.contains(ip("192.168.1.77")));
        assert!(!c.contains(ip("192.168.2.1")));
        assert!(!c.contains(ip("::1")));
        let host: Cidr = "10.0.0.7".parse().unwrap();
        assert_eq!(host.to_string(), "10.0.0.7/32");
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        // A v4-mapped address is the v4 address it maps.
        assert!(c.contains(ip("::ffff:192.168.1.3")));
    }

    #[test]
    fn rejects_bad_networks_with_the_fix() {
        assert_eq!(
            "192.168.1.5/24".parse::<Cidr>(),
            Err(CidrError::HostBits {
                network: "192.168.1.0/24".into()
            })
        );
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong { max: 32, .. })
        ));
        assert!(matches!(
            "10.0.0.0/999".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong { .. })
        ));
        for bad in [
            "",
            "lan",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
        ] {
            assert_eq!(bad.parse::<Cidr>(), Err(CidrError::NotAnAddress), "{bad}");
        }
    }

    #[test]
    fn trusted_sources() {
        let p = Policy {
            trusted: vec!["10.0.2.0/24".parse().unwrap(), "fd00::/8".parse().unwrap()],
            ..Policy::default()
        };
        assert!(p.is_trusted(ip("10.0.2.2")));
        assert!(p.is_trusted(ip("fd12::1")));
        assert!(!p.is_trusted(ip("10.0.3.2")));
        assert!(!Policy::default().is_trusted(ip("127.0.0.1")));
    }
}
