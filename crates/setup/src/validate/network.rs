//! The `[network]` table: interface, IPv4 (DHCP or a static address and its gateway), IPv6
//! and DNS servers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Ipv4Plan, Ipv6Plan, NetworkPlan, Problem};
use crate::answer::NetworkAnswer;
use crate::facts::Facts;
use crate::net::{Cidr, CidrError};

pub(super) fn check_network(
    p: &mut Vec<Problem>,
    n: &NetworkAnswer,
    facts: &Facts,
) -> Option<NetworkPlan> {
    let before = p.len();
    let interface = match &n.interface {
        Some(name) if !facts.nics.iter().any(|nic| &nic.name == name) => {
            let names: Vec<&str> = facts.nics.iter().map(|n| n.name.as_str()).collect();
            p.push(Problem::new(
                "network.interface",
                format!(
                    "is {name:?}, which is not a network interface here; use one of: {}",
                    if names.is_empty() {
                        "(none found)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
                format!(
                    "bernilai {name:?}, yang bukan antarmuka jaringan di mesin ini; gunakan salah satu dari: {}",
                    if names.is_empty() {
                        "(tidak ada)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
            None
        }
        other => other.clone(),
    };

    let ipv4 = match n.mode.as_deref() {
        None => {
            p.push(Problem::new(
                "network.mode",
                "is missing; use \"dhcp\" or \"static\"",
                "belum diisi; gunakan \"dhcp\" atau \"static\"",
            ));
            None
        }
        Some("dhcp") => {
            for (key, v) in [("address", &n.address), ("gateway", &n.gateway)] {
                if v.is_some() {
                    p.push(Problem::new(
                        &format!("network.{key}"),
                        "is only used with `mode = \"static\"`; remove it or set `network.mode = \"static\"`",
                        "hanya dipakai bersama `mode = \"static\"`; hapus, atau setel `network.mode = \"static\"`",
                    ));
                }
            }
            Some(Ipv4Plan::Dhcp)
        }
        Some("static") => {
            if interface.is_none() && n.interface.is_none() && facts.nics.len() > 1 {
                let names: Vec<&str> = facts.nics.iter().map(|n| n.name.as_str()).collect();
                p.push(Problem::new(
                    "network.interface",
                    format!(
                        "is missing and this machine has {} network interfaces; name the one for the static address: {}",
                        names.len(),
                        names.join(", ")
                    ),
                    format!(
                        "belum diisi, padahal mesin ini memiliki {} antarmuka jaringan; sebutkan antarmuka untuk alamat statis: {}",
                        names.len(),
                        names.join(", ")
                    ),
                ));
            }
            check_static4(p, n)
        }
        Some(other) => {
            p.push(Problem::new(
                "network.mode",
                format!("is {other:?}; use \"dhcp\" or \"static\""),
                format!("bernilai {other:?}; gunakan \"dhcp\" atau \"static\""),
            ));
            None
        }
    };

    let ipv6 = match n.ipv6.as_deref().unwrap_or("auto") {
        "auto" => Some(Ipv6Plan::Auto),
        "off" => Some(Ipv6Plan::Off),
        text => match Cidr::parse(text) {
            Ok(c) if c.addr.is_ipv6() => {
                let gateway = n.ipv6_gateway.as_deref().and_then(|g| match g.parse::<Ipv6Addr>() {
                    Ok(a) if a.is_unicast_link_local() || c.contains(IpAddr::V6(a)) => Some(a),
                    _ => {
                        p.push(Problem::new(
                            "network.ipv6_gateway",
                            format!("is {g:?}; use an IPv6 address inside {} or a link-local fe80:: address", c.network()),
                            format!("bernilai {g:?}; gunakan alamat IPv6 di dalam {} atau alamat link-local fe80::", c.network()),
                        ));
                        None
                    }
                });
                Some(Ipv6Plan::Static {
                    address: c,
                    gateway,
                })
            }
            _ => {
                p.push(Problem::new(
                    "network.ipv6",
                    format!("is {text:?}; use \"auto\", \"off\" or an address with prefix length such as \"2001:db8::10/64\""),
                    format!("bernilai {text:?}; gunakan \"auto\", \"off\", atau alamat dengan panjang prefiks seperti \"2001:db8::10/64\""),
                ));
                None
            }
        },
    };
    if n.ipv6_gateway.is_some() && !matches!(ipv6, Some(Ipv6Plan::Static { .. })) && ipv6.is_some()
    {
        p.push(Problem::new(
            "network.ipv6_gateway",
            "is only used with a static `network.ipv6` address; remove it",
            "hanya dipakai bersama alamat `network.ipv6` yang statis; hapus",
        ));
    }

    let mut dns = Vec::new();
    for (i, d) in n.dns.iter().enumerate() {
        match d.parse::<IpAddr>() {
            Ok(a) => dns.push(a),
            Err(_) => p.push(Problem::new(
                &format!("network.dns[{i}]"),
                format!("is {d:?}, which is not an IP address; write servers as addresses, e.g. \"10.0.2.3\" or \"2001:4860:4860::8888\""),
                format!("bernilai {d:?}, yang bukan alamat IP; tulis server sebagai alamat, contoh \"10.0.2.3\" atau \"2001:4860:4860::8888\""),
            )),
        }
    }
    if matches!(ipv4, Some(Ipv4Plan::Static { .. })) && n.dns.is_empty() {
        p.push(Problem::new(
            "network.dns",
            "is empty with a static address; list at least one server, e.g. dns = [\"10.0.2.3\"]",
            "kosong, padahal alamatnya statis; isi minimal satu server, contoh dns = [\"10.0.2.3\"]",
        ));
    }

    if p.len() != before {
        return None;
    }
    Some(NetworkPlan {
        interface,
        ipv4: ipv4?,
        ipv6: ipv6?,
        dns,
    })
}

fn check_static4(p: &mut Vec<Problem>, n: &NetworkAnswer) -> Option<Ipv4Plan> {
    let Some(text) = n.address.as_deref() else {
        p.push(Problem::new(
            "network.address",
            "is missing; `mode = \"static\"` needs an address with prefix length, e.g. \"192.0.2.10/24\"",
            "belum diisi; `mode = \"static\"` memerlukan alamat dengan panjang prefiks, contoh \"192.0.2.10/24\"",
        ));
        return None;
    };
    let address = match Cidr::parse(text) {
        Ok(c) if c.addr.is_ipv4() => c,
        Ok(_) => {
            p.push(Problem::new(
                "network.address",
                format!("is {text:?}, an IPv6 address; put it in `network.ipv6` and an IPv4 address here"),
                format!("bernilai {text:?}, sebuah alamat IPv6; tulis di `network.ipv6` dan isi alamat IPv4 di sini"),
            ));
            return None;
        }
        Err(CidrError::NoPrefix) => {
            p.push(Problem::new(
                "network.address",
                format!("needs a prefix length, e.g. \"{text}/24\""),
                format!("harus memiliki panjang prefiks, contoh \"{text}/24\""),
            ));
            return None;
        }
        Err(CidrError::BadPrefix { .. }) => {
            p.push(Problem::new(
                "network.address",
                format!("is {text:?}; the prefix length must be 1 to 32, e.g. \"192.0.2.10/24\""),
                format!("bernilai {text:?}; panjang prefiks harus 1 sampai 32, contoh \"192.0.2.10/24\""),
            ));
            return None;
        }
        Err(CidrError::BadAddress) => {
            p.push(Problem::new(
                "network.address",
                format!(
                    "is {text:?}, which is not an IPv4 address; write it like \"192.0.2.10/24\""
                ),
                format!(
                    "bernilai {text:?}, yang bukan alamat IPv4; tulis seperti \"192.0.2.10/24\""
                ),
            ));
            return None;
        }
    };
    if address.prefix == 0
        || (address.prefix <= 30
            && (!address.has_host_bits() || address.broadcast() == Some(address.addr)))
    {
        p.push(Problem::new(
            "network.address",
            format!(
                "is {text:?}, the network or broadcast address of its subnet; use a host address such as {}",
                host_example(&address)
            ),
            format!(
                "bernilai {text:?}, yaitu alamat jaringan atau alamat broadcast subnetnya; gunakan alamat perangkat seperti {}",
                host_example(&address)
            ),
        ));
        return None;
    }
    let gateway = match n.gateway.as_deref() {
        None => None,
        Some(g) => match g.parse::<Ipv4Addr>() {
            Ok(a) if IpAddr::V4(a) == address.addr => {
                p.push(Problem::new(
                    "network.gateway",
                    format!("is {g:?}, the machine's own address; use the router's address"),
                    format!(
                        "bernilai {g:?}, yaitu alamat mesin ini sendiri; gunakan alamat router"
                    ),
                ));
                return None;
            }
            Ok(a) if address.contains(IpAddr::V4(a)) => Some(a),
            Ok(_) => {
                p.push(Problem::new(
                    "network.gateway",
                    format!(
                        "is {g:?}, outside the subnet {} of `network.address`; use a router inside it, or fix the prefix length",
                        address.network()
                    ),
                    format!(
                        "bernilai {g:?}, di luar subnet {} dari `network.address`; gunakan router di dalam subnet itu, atau perbaiki panjang prefiksnya",
                        address.network()
                    ),
                ));
                return None;
            }
            Err(_) => {
                p.push(Problem::new(
                    "network.gateway",
                    format!("is {g:?}, which is not an IPv4 address; write it like \"192.0.2.1\""),
                    format!("bernilai {g:?}, yang bukan alamat IPv4; tulis seperti \"192.0.2.1\""),
                ));
                return None;
            }
        },
    };
    Some(Ipv4Plan::Static { address, gateway })
}

fn host_example(c: &Cidr) -> String {
    match c.network().addr {
        IpAddr::V4(a) => format!(
            "{}/{}",
            Ipv4Addr::from(u32::from(a).wrapping_add(10)),
            c.prefix
        ),
        IpAddr::V6(a) => format!("{a}/{}", c.prefix),
    }
}
