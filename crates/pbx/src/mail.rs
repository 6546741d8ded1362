//! Voicemail to email: the mail for a queued message ([`compose`]: subject and body in the
//! mailbox language, the WAV attached as `audio/wav`) and the daemon's sender thread
//! ([`spawn_sender`]) that delivers the `email_queue` through `[voicemail] smtp`.
//!
//! The sender has a database connection of its own and writes only `email_queue` rows: a
//! mail the relay took is deleted, a failed try is kept with its error and retried with
//! backoff ([`retry_delay`]), so a relay that is down loses nothing. A mail is deleted only
//! after the relay accepted it, so a crash in between can send it twice, never lose it.
//! The caller's display name comes from SIP: control characters are dropped before it goes
//! into a header ([`clean_name`]); lettre encodes the rest (RFC 2047).

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use tracing::{info, warn};

use crate::config::{Language, SmtpRelay, SmtpSecurity};
use crate::store::{QueuedMail, Store};

/// What the sender needs from the config.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub relay: SmtpRelay,
    pub from: String,
    pub language: Language,
    /// Local time minus UTC, for the time written in the mail.
    pub utc_offset_s: i64,
}

/// Why a mail was not sent (kept as the queue row's `last_error`).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{what} address {address:?} is not usable: {source}")]
    Address {
        what: &'static str,
        address: String,
        source: lettre::address::AddressError,
    },
    #[error("the mail could not be built: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("bad content type: {0}")]
    ContentType(#[from] lettre::message::header::ContentTypeErr),
    #[error("the message file {path} could not be read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the certificate authorities for the relay, {path} (`voicemail.smtp_ca`), could not be read: {reason}")]
    Ca { path: String, reason: String },
    #[error("the relay {host}:{port} did not take the mail: {source}")]
    Send {
        host: String,
        port: u16,
        source: lettre::transport::smtp::Error,
    },
}

/// At most this long between tries.
const MAX_RETRY: Duration = Duration::from_secs(600);

/// How long after the `attempts`-th failed try the next one is made: 5 s, doubling, at most
/// ten minutes. Short first, so a relay restarted by an operator is used soon.
pub fn retry_delay(attempts: i64) -> Duration {
    let shift = attempts.clamp(1, 16) - 1;
    (Duration::from_secs(5) * (1u32 << shift)).min(MAX_RETRY)
}

/// A SIP display name fit for a header or a line of text: no control characters (so no
/// CR/LF), spaces collapsed, at most 64 characters.
pub fn clean_name(name: &str) -> String {
    let spaced: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(64)
        .collect()
}

/// "Budi (202)", or "202" without a name.
fn who(m: &QueuedMail) -> String {
    let caller = clean_name(&m.caller);
    match clean_name(&m.caller_name) {
        n if n.is_empty() || n == caller => caller,
        n => format!("{n} ({caller})"),
    }
}

fn minutes_seconds(ms: i64) -> String {
    let s = (ms + 500) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// `2026-12-03 17:30:05 WIB` in Indonesia's zones, else with the offset.
fn local_time(unix_ms: i64, utc_offset_s: i64) -> String {
    let local = unix_ms.div_euclid(1000) + utc_offset_s;
    let (y, mo, d) = crate::routing::hours::civil_date(local.div_euclid(86_400));
    let t = local.rem_euclid(86_400);
    let zone = match utc_offset_s {
        25_200 => "WIB".to_owned(),
        28_800 => "WITA".to_owned(),
        32_400 => "WIT".to_owned(),
        0 => "UTC".to_owned(),
        o => format!(
            "UTC{}{:02}:{:02}",
            if o < 0 { '-' } else { '+' },
            o.abs() / 3600,
            o.abs() % 3600 / 60
        ),
    };
    format!(
        "{y}-{mo:02}-{d:02} {:02}:{:02}:{:02} {zone}",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// The subject and the text body of the mail for `m`.
pub fn texts(m: &QueuedMail, language: Language, utc_offset_s: i64) -> (String, String) {
    let who = who(m);
    let length = minutes_seconds(m.duration_ms);
    let at = local_time(m.received_ms, utc_offset_s);
    let mailbox = clean_name(&m.mailbox);
    match language {
        Language::English => (
            format!("Voicemail from {who}, {length}"),
            format!(
                "You have a new voicemail in mailbox {mailbox}.\r\n\r\n\
                 From:     {who}\r\n\
                 Received: {at}\r\n\
                 Length:   {length}\r\n\r\n\
                 The message is attached as a WAV file. Dial *97 to listen to it by phone.\r\n"
            ),
        ),
        Language::Indonesian => (
            format!("Pesan suara dari {who}, {length}"),
            format!(
                "Ada pesan suara baru di kotak suara {mailbox}.\r\n\r\n\
                 Dari:     {who}\r\n\
                 Diterima: {at}\r\n\
                 Durasi:   {length}\r\n\r\n\
                 Pesan terlampir sebagai berkas WAV. Tekan *97 untuk mendengarkannya lewat telepon.\r\n"
            ),
        ),
    }
}

fn mailbox(what: &'static str, address: &str) -> Result<Mailbox, MailError> {
    address.parse().map_err(|source| MailError::Address {
        what,
        address: address.to_owned(),
        source,
    })
}

/// The mail announcing `m`, with its WAV (`wav`) attached.
pub fn compose(
    settings: &MailSettings,
    m: &QueuedMail,
    wav: Vec<u8>,
) -> Result<Message, MailError> {
    let (subject, body) = texts(m, settings.language, settings.utc_offset_s);
    let name = format!(
        "voicemail-{}-{}.wav",
        clean_name(&m.mailbox),
        m.voicemail_id
    );
    let audio = ContentType::parse("audio/wav")?;
    Ok(Message::builder()
        .from(mailbox("sender", &settings.from)?)
        .to(mailbox("recipient", &m.to)?)
        .subject(subject)
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(body))
                .singlepart(Attachment::new(name).body(wav, audio)),
        )?)
}

/// TLS towards the relay: its certificate checked against the system's authorities, or only
/// those of `voicemail.smtp_ca` (read at each try, so a fixed file needs no restart).
fn tls_parameters(relay: &SmtpRelay) -> Result<TlsParameters, MailError> {
    let mut b = TlsParameters::builder(relay.host.clone());
    if let Some(path) = &relay.ca {
        let ca_err = |reason: String| MailError::Ca {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ca_err("it holds no PEM certificate".into()));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| ca_err(e.to_string()))?;
        b = b
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    b.build().map_err(|source| MailError::Send {
        host: relay.host.clone(),
        port: relay.port,
        source,
    })
}

/// At the daemon's start: whether TLS towards the relay can be set up (`smtp_ca` readable),
/// so a wrong file is in the journal before the first voicemail waits on it.
pub fn check_relay(relay: &SmtpRelay) -> Result<(), MailError> {
    match relay.security {
        SmtpSecurity::Plain => Ok(()),
        SmtpSecurity::StartTls | SmtpSecurity::Tls => tls_parameters(relay).map(drop),
    }
}

fn transport(relay: &SmtpRelay) -> Result<SmtpTransport, MailError> {
    // builder_dangerous: no opportunistic STARTTLS on plain smtp:// (a local relay on
    // loopback is the normal case and usually has no certificate for its name). STARTTLS is
    // asked for with `?tls=starttls`, and then required: no mail goes out in the clear.
    let b = SmtpTransport::builder_dangerous(&relay.host)
        .port(relay.port)
        .timeout(Some(Duration::from_secs(30)));
    let b = match relay.security {
        SmtpSecurity::Plain => b,
        SmtpSecurity::StartTls => b.tls(Tls::Required(tls_parameters(relay)?)),
        SmtpSecurity::Tls => b.tls(Tls::Wrapper(tls_parameters(relay)?)),
    };
    Ok(b.build())
}

/// One try at `m`: the queue row is deleted when the relay took the mail (or its message was
/// deleted before it could be mailed), else kept with the error for the next try.
pub fn deliver(store: &Store, settings: &MailSettings, m: &QueuedMail, now_ms: i64) {
    let sent = match std::fs::read(&m.path) {
        Ok(wav) => compose(settings, m, wav).and_then(|mail| {
            transport(&settings.relay)?
                .send(&mail)
                .map(drop)
                .map_err(|source| MailError::Send {
                    host: settings.relay.host.clone(),
                    port: settings.relay.port,
                    source,
                })
        }),
        Err(source) => {
            if matches!(store.voicemail_by_id(m.voicemail_id), Ok(None)) {
                info!(mailbox = %m.mailbox, to = %m.to, "voicemail deleted before it was mailed; its mail is dropped");
                if let Err(e) = store.mail_done(m.id) {
                    warn!(error = %e, "voicemail mail queue could not be updated");
                }
                return;
            }
            Err(MailError::Read {
                path: m.path.clone(),
                source,
            })
        }
    };
    let recorded = match sent {
        Ok(()) => {
            info!(mailbox = %m.mailbox, to = %m.to, "voicemail mailed");
            store.mail_done(m.id)
        }
        Err(e) => {
            let delay = retry_delay(m.attempts + 1);
            warn!(
                mailbox = %m.mailbox, to = %m.to, error = %e, retry_in_s = delay.as_secs(),
                "voicemail mail not sent; retried later (check `voicemail.smtp` and that the relay accepts mail from this host; `voicemail queue` shows what waits)"
            );
            store.mail_failed(m.id, &e.to_string(), now_ms + delay.as_millis() as i64)
        }
    };
    if let Err(e) = recorded {
        warn!(error = %e, "voicemail mail queue could not be updated");
    }
}

/// Local time minus UTC from a TZif file (`/etc/localtime`); UTC when it cannot be read.
pub fn utc_offset_of(localtime: &Path) -> i64 {
    std::fs::read(localtime)
        .ok()
        .and_then(|b| crate::routing::outbound::posix_offset_seconds(&String::from_utf8_lossy(&b)))
        .unwrap_or(0)
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Starts the thread that delivers the queue of `database`, checking for due mail once a
/// second.
pub fn spawn_sender(database: PathBuf, settings: MailSettings) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("voicemail-mail".into())
        .spawn(move || {
            let store = loop {
                match Store::open(&database) {
                    Ok(s) => break s,
                    Err(e) => {
                        warn!(error = %e, "voicemail mail sender could not open the database; retrying");
                        std::thread::sleep(Duration::from_secs(5));
                    }
                }
            };
            loop {
                let now = unix_ms();
                match store.next_due_mail(now) {
                    Ok(Some(m)) => deliver(&store, &settings, &m, now),
                    Ok(None) => std::thread::sleep(Duration::from_secs(1)),
                    Err(e) => {
                        warn!(error = %e, "voicemail mail queue could not be read");
                        std::thread::sleep(Duration::from_secs(5));
                    }
                }
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn queued(name: &str) -> QueuedMail {
        QueuedMail {
            id: 1,
            voicemail_id: 7,
            mailbox: "201".into(),
            to: "ani@kantor.local".into(),
            caller: "202".into(),
            caller_name: name.into(),
            // 2026-12-03 10:30:05 UTC
            received_ms: 1_796_293_805_000,
            duration_ms: 65_400,
            path: "/nonexistent".into(),
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
        }
    }

    fn settings(language: Language) -> MailSettings {
        MailSettings {
            relay: SmtpRelay {
                security: SmtpSecurity::Plain,
                host: "127.0.0.1".into(),
                port: 25,
                ca: None,
            },
            from: "pbx@kantor.local".into(),
            language,
            utc_offset_s: 7 * 3600,
        }
    }

    #[test]
    fn subject_and_body_name_the_caller_time_and_length_in_both_languages() {
        let m = queued("Budi Santoso");
        let (s, b) = texts(&m, Language::English, 7 * 3600);
        assert_eq!(s, "Voicemail from Budi Santoso (202), 1:05");
        assert!(b.contains("mailbox 201"), "{b}");
        assert!(b.contains("Received: 2026-12-03 17:30:05 WIB"), "{b}");
        let (s, b) = texts(&m, Language::Indonesian, 7 * 3600);
        assert_eq!(s, "Pesan suara dari Budi Santoso (202), 1:05");
        assert!(b.contains("Durasi:   1:05"), "{b}");
        let (s, _) = texts(&queued(""), Language::English, 0);
        assert_eq!(s, "Voicemail from 202, 1:05");
        assert_eq!(local_time(0, -5 * 3600), "1969-12-31 19:00:00 UTC-05:00");
    }

    #[test]
    fn a_bad_smtp_ca_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let relay = |ca: &Path| SmtpRelay {
            security: SmtpSecurity::StartTls,
            host: "mail.kantor.local".into(),
            port: 25,
            ca: Some(ca.to_owned()),
        };
        let missing = dir.path().join("none.pem");
        let e = check_relay(&relay(&missing)).unwrap_err().to_string();
        assert!(
            e.contains(&missing.display().to_string()) && e.contains("voicemail.smtp_ca"),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = check_relay(&relay(&junk)).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        // Plain SMTP needs no certificates at all.
        let plain = SmtpRelay {
            security: SmtpSecurity::Plain,
            ..relay(&missing)
        };
        assert!(check_relay(&plain).is_ok());
    }

    #[test]
    fn a_display_name_cannot_add_headers() {
        let m = queued("Budi\r\nBcc: victim@example.com\r\n\r\nbody");
        let mail = compose(&settings(Language::English), &m, b"RIFFwav".to_vec()).unwrap();
        let raw = String::from_utf8_lossy(&mail.formatted()).into_owned();
        assert!(
            !raw.lines().any(|l| l.starts_with("Bcc:")),
            "a header was injected:\n{raw}"
        );
        assert!(
            raw.contains("Subject: Voicemail from Budi Bcc: victim@example.com body (202)"),
            "{raw}"
        );
        assert!(raw.contains("Content-Type: audio/wav"), "{raw}");
        assert!(raw.contains("voicemail-201-7.wav"), "{raw}");
        assert_eq!(clean_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn a_bad_recipient_is_an_error_not_a_panic() {
        let mut m = queued("");
        m.to = "not an address".into();
        let e = compose(&settings(Language::English), &m, Vec::new()).unwrap_err();
        assert!(e.to_string().contains("recipient address"), "{e}");
    }

    #[test]
    fn retries_back_off_from_five_seconds_to_ten_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(retry_delay(0).as_secs(), 5);
        assert_eq!(retry_delay(1_000).as_secs(), 600);
    }

    #[test]
    fn a_relay_that_is_down_keeps_the_mail_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("pbx.db")).unwrap();
        let ext = crate::store::Extension("201".into());
        store
            .add_user(&ext, "", "pbx.local", "pw-long-enough")
            .unwrap();
        store
            .set_user_email(&ext, Some("ani@kantor.local"))
            .unwrap();
        let wav = dir.path().join("m.wav");
        std::fs::write(&wav, b"RIFF").unwrap();
        let mut msg = crate::store::VoicemailMessage {
            id: 0,
            mailbox: "201".into(),
            caller: "202".into(),
            received_ms: 1_000,
            duration_ms: 3_000,
            status: "new".into(),
            path: wav.display().to_string(),
        };
        store
            .apply(
                &[crate::store::Write::Voicemail(
                    crate::store::VoicemailWrite::InsertAndMail {
                        message: msg.clone(),
                        caller_name: "Budi".into(),
                        to: None,
                    },
                )],
                0,
            )
            .unwrap();
        // A port nothing listens on: refused at once.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let mut s = settings(Language::English);
        s.relay.port = port;
        let m = store.next_due_mail(1_000).unwrap().unwrap();
        deliver(&store, &s, &m, 1_000);
        let q = store.mail_queue().unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].attempts, q[0].next_attempt_ms), (1, 6_000));
        let err = q[0].last_error.clone().unwrap();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");

        // The message deleted meanwhile: the mail is dropped, not retried for ever.
        msg.id = q[0].voicemail_id;
        assert!(store.delete_voicemail("201", msg.id).unwrap());
        deliver(&store, &s, &q[0], 6_000);
        assert!(store.mail_queue().unwrap().is_empty());
    }
}
