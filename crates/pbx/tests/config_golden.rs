//! Golden configuration cases: `config/ok/<case>.toml` must give `config/ok/<case>.json`,
//! `config/fail/<case>.toml` must fail with exactly `config/fail/<case>.txt`.
//! `KENTONGAN_BLESS=1 cargo test -p kentongan-pbx --test config_golden` rewrites expectations.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use kentongan_pbx::config::{Config, SmtpSecurity};

fn summary(c: &Config) -> String {
    let v = serde_json::json!({
        "domain": c.domain,
        "listen": c.listen.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        "auth_algorithms": c.auth_algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "tls_certificate": c.tls_certificate.as_ref().map(|p| p.display().to_string()),
        "tls_key": c.tls_key.as_ref().map(|p| p.display().to_string()),
        "rtp_ports": [c.rtp_ports.low, c.rtp_ports.high],
        "no_answer_seconds": c.no_answer.as_secs(),
        "database": c.database.display().to_string(),
        "metrics_listen": c.metrics_listen.to_string(),
        "firewall": {
            "trusted": c.firewall.trusted.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "ban_after_failures": c.firewall.ban_after_failures,
            "ban_window_seconds": c.firewall.ban_window.as_secs(),
            "ban_seconds": c.firewall.ban_duration.as_secs(),
            "sip_rate_limit": c.firewall.sip_rate_limit,
        },
        "prompts": {
            "directory": c.prompts.directory.display().to_string(),
            "language": c.prompts.language.code(),
        },
        // PINs are never shown, only whether a room has one.
        "conferences": c.conferences.iter().map(|r| serde_json::json!({
            "number": r.number,
            "name": r.name,
            "pin": r.pin.is_some(),
            "admin_pin": r.admin_pin.is_some(),
            "max_members": r.max_members,
            "video": r.video,
            "record": r.record,
        })).collect::<Vec<_>>(),
        "extension_settings": c.extension_settings.iter().map(|e| serde_json::json!({
            "number": e.number,
            "pickup_group": e.pickup_group,
            "forward_no_answer_seconds": e.forward_no_answer_seconds,
            "email": e.email,
        })).collect::<Vec<_>>(),
        "voicemail": c.voicemail.as_ref().map(|v| serde_json::json!({
            "enabled": v.enabled,
            "ring_seconds": v.ring_seconds,
            "max_message_seconds": v.max_message_seconds,
            "max_messages": v.max_messages,
            "access": v.access,
            "language": v.language.code(),
            "smtp": v.smtp.as_ref().map(|s| match s.security {
                SmtpSecurity::Plain => format!("smtp://{}:{}", s.host, s.port),
                SmtpSecurity::StartTls => format!("smtp://{}:{}?tls=starttls", s.host, s.port),
                SmtpSecurity::Tls => format!("smtps://{}:{}", s.host, s.port),
            }),
            "smtp_ca": v.smtp.as_ref().and_then(|s| s.ca.as_ref()).map(|p| p.display().to_string()),
            "from": v.from,
        })),
    });
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

fn cases(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config")
        .join(dir);
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn golden() {
    let bless = std::env::var_os("KENTONGAN_BLESS").is_some();
    let mut failures = Vec::new();
    for (dir, ok) in [("ok", true), ("fail", false)] {
        for case in cases(dir) {
            let text = std::fs::read_to_string(&case).unwrap();
            let got = match (Config::from_toml(&text), ok) {
                (Ok(c), true) => summary(&c),
                (Err(e), false) => format!("{e}\n"),
                (Ok(_), false) => "unexpectedly valid\n".to_owned(),
                (Err(e), true) => format!("unexpected error: {e}\n"),
            };
            let expected_path = case.with_extension(if ok { "json" } else { "txt" });
            if bless {
                std::fs::write(&expected_path, &got).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            if got != expected {
                failures.push(format!(
                    "{}:\n  expected: {expected:?}\n  got:      {got:?}",
                    case.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
