//! Addresses with a prefix length (`10.0.2.15/24`), the only network arithmetic the installer
//! needs: parsing, "is this address in that subnet", and the host-bits check for subnets.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

/// An address and its prefix length, as written in the answer file: `10.0.2.15/24`,
/// `2001:db8::10/64`. Used both for interface addresses (host bits set) and subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Why a string is not a [`Cidr`]; the validator turns it into an operator message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    NoPrefix,
    BadAddress,
    BadPrefix { max: u8 },
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| CidrError::BadAddress)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.ok_or(CidrError::NoPrefix)?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or(CidrError::BadPrefix { max })?;
        Ok(Cidr { addr, prefix })
    }

    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn mask(&self) -> u128 {
        let (_, width) = Cidr::bits(self.addr);
        if self.prefix == 0 {
            return 0;
        }
        let ones = u128::MAX << (128 - u32::from(self.prefix));
        ones >> (128 - u32::from(width))
    }

    /// The subnet this address belongs to, with the host bits cleared.
    pub fn network(&self) -> Cidr {
        let (bits, _) = Cidr::bits(self.addr);
        Cidr {
            addr: from_bits(self.addr, bits & self.mask()),
            prefix: self.prefix,
        }
    }

    /// The IPv4 broadcast address of the subnet (`None` for IPv6, which has none).
    pub fn broadcast(&self) -> Option<IpAddr> {
        match self.addr {
            IpAddr::V4(_) => {
                let (bits, _) = Cidr::bits(self.addr);
                let host = !self.mask() & u128::from(u32::MAX);
                Some(from_bits(self.addr, (bits & self.mask()) | host))
            }
            IpAddr::V6(_) => None,
        }
    }

    /// True when `ip` is of the same family and inside this subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (a, _) = Cidr::bits(self.addr);
        let (b, _) = Cidr::bits(ip);
        a & self.mask() == b & self.mask()
    }

    pub fn has_host_bits(&self) -> bool {
        self.network().addr != self.addr
    }
}

fn from_bits(family: IpAddr, bits: u128) -> IpAddr {
    match family {
        // Truncation is intended: an IPv4 value only ever occupies the low 32 bits.
        IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_arithmetic() {
        let c = Cidr::parse("10.0.2.15/24").unwrap();
        assert_eq!(c.network().to_string(), "10.0.2.0/24");
        assert_eq!(c.broadcast().unwrap().to_string(), "10.0.2.255");
        assert!(c.contains("10.0.2.2".parse().unwrap()));
        assert!(!c.contains("10.0.3.2".parse().unwrap()));
        assert!(c.has_host_bits());
        let v6 = Cidr::parse("2001:db8::10/64").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.1"), Err(CidrError::NoPrefix));
        assert_eq!(
            Cidr::parse("10.0.0.1/33"),
            Err(CidrError::BadPrefix { max: 32 })
        );
        assert_eq!(Cidr::parse("10.0.0/8"), Err(CidrError::BadAddress));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
