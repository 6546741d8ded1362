//! RFC 3842 `application/simple-message-summary` bodies (message-waiting indication).
//!
//! Only voice messages are counted: the PBX has voicemail and nothing else that waits.

use crate::text::trim_ws;
use crate::uri::Uri;

/// Content-Type of a message-summary body.
pub const MESSAGE_SUMMARY_TYPE: &str = "application/simple-message-summary";

/// New/old counts, each with the urgent subset, as in `Voice-Message: 2/8 (1/0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCounts {
    pub new: u32,
    pub old: u32,
    pub new_urgent: u32,
    pub old_urgent: u32,
}

/// A mailbox's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// The mailbox to call, e.g. `sip:*97@pbx.local`. A typed URI, so the body cannot carry
    /// a CR/LF that would forge a line.
    pub account: Option<Uri>,
    pub voice: MessageCounts,
}

/// Why a message-summary body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    #[error("message-summary body is not UTF-8")]
    NotUtf8,
    #[error("message-summary body has no Messages-Waiting line (RFC 3842 §5.2 requires it first)")]
    MissingWaiting,
    #[error("Messages-Waiting must be yes or no, found {0:?}")]
    BadWaiting(String),
    #[error("Message-Account is not a URI: {0}")]
    BadAccount(&'static str),
    #[error("Voice-Message counts are not `new/old` or `new/old (urgent/urgent)`: {0:?}")]
    BadCounts(String),
}

impl MessageSummary {
    /// Whether any new message waits (the phone's lamp).
    pub fn waiting(&self) -> bool {
        self.voice.new > 0
    }

    pub fn to_body(&self) -> String {
        let c = &self.voice;
        let mut s = format!(
            "Messages-Waiting: {}\r\n",
            if self.waiting() { "yes" } else { "no" }
        );
        if let Some(a) = &self.account {
            s.push_str(&format!("Message-Account: {a}\r\n"));
        }
        s.push_str(&format!(
            "Voice-Message: {}/{} ({}/{})\r\n",
            c.new, c.old, c.new_urgent, c.old_urgent
        ));
        s
    }

    /// Parses a body (for tests and for a PBX relaying a trunk's MWI). `Messages-Waiting`
    /// must come first; unknown message classes are skipped, as RFC 3842 §5.2 allows.
    pub fn parse(body: &[u8]) -> Result<MessageSummary, SummaryError> {
        let text = std::str::from_utf8(body).map_err(|_| SummaryError::NotUtf8)?;
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let first = lines.find(|l| !trim_ws(l).is_empty());
        let waiting = first
            .and_then(|l| header_value(l, "Messages-Waiting"))
            .ok_or(SummaryError::MissingWaiting)?;
        if !waiting.eq_ignore_ascii_case("yes") && !waiting.eq_ignore_ascii_case("no") {
            return Err(SummaryError::BadWaiting(waiting.to_owned()));
        }
        let mut out = MessageSummary {
            account: None,
            voice: MessageCounts::default(),
        };
        for line in lines {
            if let Some(v) = header_value(line, "Message-Account") {
                out.account = Some(Uri::parse(v).map_err(SummaryError::BadAccount)?);
            } else if let Some(v) = header_value(line, "Voice-Message") {
                out.voice = parse_counts(v).ok_or_else(|| SummaryError::BadCounts(v.to_owned()))?;
            }
        }
        Ok(out)
    }
}

fn header_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (n, v) = line.split_once(':')?;
    trim_ws(n).eq_ignore_ascii_case(name).then(|| trim_ws(v))
}

fn parse_counts(v: &str) -> Option<MessageCounts> {
    fn pair(s: &str) -> Option<(u32, u32)> {
        let (a, b) = s.split_once('/')?;
        Some((trim_ws(a).parse().ok()?, trim_ws(b).parse().ok()?))
    }
    let (plain, urgent) = match v.split_once('(') {
        Some((p, rest)) => (p, Some(rest.strip_suffix(')')?)),
        None => (v, None),
    };
    let (new, old) = pair(plain)?;
    let (new_urgent, old_urgent) = match urgent {
        Some(u) => pair(u)?,
        None => (0, 0),
    };
    Some(MessageCounts {
        new,
        old,
        new_urgent,
        old_urgent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_golden_bytes_and_round_trip() {
        let s = MessageSummary {
            account: Some(Uri::parse("sip:*97@pbx.local").unwrap()),
            voice: MessageCounts {
                new: 2,
                old: 8,
                new_urgent: 1,
                old_urgent: 0,
            },
        };
        let body = s.to_body();
        assert_eq!(
            body,
            "Messages-Waiting: yes\r\nMessage-Account: sip:*97@pbx.local\r\n\
             Voice-Message: 2/8 (1/0)\r\n"
        );
        assert_eq!(MessageSummary::parse(body.as_bytes()).unwrap(), s);
    }

    #[test]
    fn nothing_new_is_no() {
        let s = MessageSummary {
            account: None,
            voice: MessageCounts {
                old: 3,
                ..MessageCounts::default()
            },
        };
        assert_eq!(
            s.to_body(),
            "Messages-Waiting: no\r\nVoice-Message: 0/3 (0/0)\r\n"
        );
    }

    #[test]
    fn parses_rfc3842_example_and_rejects_garbage() {
        let body = b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\n\
Voice-Message: 2/8 (0/2)\r\nFax-Message: 0/1\r\n";
        let s = MessageSummary::parse(&body[..]).unwrap();
        assert_eq!(s.voice.old_urgent, 2);
        assert_eq!(
            MessageSummary::parse(b"Voice-Message: 1/2\r\n"),
            Err(SummaryError::MissingWaiting)
        );
        assert_eq!(
            MessageSummary::parse(b"Messages-Waiting: maybe\r\n"),
            Err(SummaryError::BadWaiting("maybe".into()))
        );
        assert!(matches!(
            MessageSummary::parse(b"Messages-Waiting: yes\r\nVoice-Message: 1/x\r\n"),
            Err(SummaryError::BadCounts(_))
        ));
        assert_eq!(MessageSummary::parse(&[0xff]), Err(SummaryError::NotUtf8));
    }
}
