//! `[web]`: where the web admin (`kentongan-web`) listens and how long a session may idle.
//! Without a `[web]` table the web admin is off and the firewall opens no port for it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

pub(super) const KEYS: &[(&str, super::Kind)] = &[
    ("listen", super::Kind::StrList),
    ("session_idle_minutes", super::Kind::Int),
    ("tls_certificate", super::Kind::Str),
    ("tls_key", super::Kind::Str),
];

const DEFAULT_IDLE_MINUTES: u64 = 30;

/// The validated `[web]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    /// HTTPS listeners (there is no plain-HTTP listener at all).
    pub listen: Vec<SocketAddr>,
    pub session_idle: std::time::Duration,
    /// PEM chain and key; both or neither (then the PBX's certificate next to the database).
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    #[serde(default = "default_listen")]
    listen: Vec<String>,
    session_idle_minutes: Option<i64>,
    tls_certificate: Option<String>,
    tls_key: Option<String>,
}

fn default_listen() -> Vec<String> {
    vec!["0.0.0.0:443".into()]
}

pub(super) fn validate(raw: RawWeb) -> Result<Web, ConfigError> {
    let mut listen = Vec::new();
    for (i, l) in raw.listen.iter().enumerate() {
        let addr: SocketAddr = l.trim().parse().map_err(|_| {
            ConfigError::at(
                &format!("web.listen[{i}]"),
                format!("must be an IP address and port such as \"0.0.0.0:443\", not {l:?}"),
            )
        })?;
        if !listen.contains(&addr) {
            listen.push(addr);
        }
    }
    if listen.is_empty() {
        return Err(ConfigError::at(
            "web.listen",
            "is empty; give at least one address such as \"0.0.0.0:443\", or remove [web] to turn the web admin off",
        ));
    }
    let minutes = match raw.session_idle_minutes {
        None => DEFAULT_IDLE_MINUTES,
        Some(n @ 1..=1440) => n as u64,
        Some(n) => {
            return Err(ConfigError::at(
                "web.session_idle_minutes",
                format!("is {n}; use a whole number of minutes from 1 to 1440 (default {DEFAULT_IDLE_MINUTES})"),
            ))
        }
    };
    let (tls_certificate, tls_key) = match (raw.tls_certificate, raw.tls_key) {
        (Some(c), Some(k)) => (Some(PathBuf::from(c)), Some(PathBuf::from(k))),
        (None, None) => (None, None),
        (Some(_), None) => {
            return Err(ConfigError::at(
                "web.tls_key",
                "is missing while `web.tls_certificate` is set; give both PEM files, or neither to use the PBX's certificate",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::at(
                "web.tls_certificate",
                "is missing while `web.tls_key` is set; give both PEM files, or neither to use the PBX's certificate",
            ))
        }
    };
    Ok(Web {
        listen,
        session_idle: std::time::Duration::from_secs(minutes * 60),
        tls_certificate,
        tls_key,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const SIP: &str = "[sip]\ndomain = \"pbx.local\"\n";

    #[test]
    fn absent_means_off_and_no_port() {
        let c = Config::from_toml(SIP).unwrap();
        assert_eq!(c.web, None);
        assert!(c.firewall_ports().admin_tcp.is_empty());
    }

    #[test]
    fn defaults_and_firewall_port() {
        let c = Config::from_toml(&format!("{SIP}[web]\n")).unwrap();
        let web = c.web.clone().unwrap();
        assert_eq!(web.listen, vec!["0.0.0.0:443".parse().unwrap()]);
        assert_eq!(web.session_idle.as_secs(), 30 * 60);
        assert_eq!(c.firewall_ports().admin_tcp, vec![443]);
    }

    #[test]
    fn errors_name_the_key() {
        for (body, key) in [
            ("listen = [\"443\"]", "web.listen[0]"),
            ("listen = []", "web.listen"),
            ("session_idle_minutes = 0", "web.session_idle_minutes"),
            ("tls_key = \"/k.pem\"", "web.tls_certificate"),
            ("port = 443", "web.port"),
        ] {
            let e = Config::from_toml(&format!("{SIP}[web]\n{body}\n")).unwrap_err();
            assert!(e.to_string().contains(&format!("`{key}`")), "{body}: {e}");
        }
    }
}
