use crate::message::StatusCode;

/// Why a message could not be parsed. Each variant maps to the response a server should
/// send ([`ParseError::status`]) and a reason phrase that names what was wrong, so a daemon
/// can answer `400 Bad Request (invalid CSeq header: number out of range)` without guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("incomplete message: the header section has no end")]
    Incomplete,
    #[error("message larger than the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    #[error("unsupported SIP version {0:?}")]
    Version(String),
    #[error("invalid Request-URI: {0}")]
    RequestUri(&'static str),
    #[error("malformed header line {line}: {reason}")]
    HeaderLine { line: usize, reason: &'static str },
    #[error("invalid {header} header: {reason}")]
    Header {
        header: String,
        reason: &'static str,
    },
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{0} header appears more than once")]
    Duplicate(&'static str),
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { method: String, cseq: String },
    #[error("Content-Length {declared} is larger than the {available} body bytes received")]
    BodyTooShort { declared: usize, available: usize },
    #[error("Content-Length is required on stream transports")]
    MissingContentLength,
}

impl ParseError {
    /// Builds [`ParseError::Header`].
    pub fn header(header: impl Into<String>, reason: &'static str) -> Self {
        ParseError::Header {
            header: header.into(),
            reason,
        }
    }

    /// The status code a UAS should answer with when the message was a request.
    pub fn status(&self) -> StatusCode {
        match self {
            ParseError::Version(_) => StatusCode::VERSION_NOT_SUPPORTED,
            ParseError::TooLarge { .. } => StatusCode::MESSAGE_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A reason phrase for the error response, e.g. `Bad Request (invalid CSeq header: ...)`.
    /// Control characters are stripped because the text may echo attacker-controlled names.
    pub fn reason_phrase(&self) -> String {
        let base = self.status().canonical_reason().unwrap_or("Bad Request");
        let detail: String = self
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(120)
            .collect();
        format!("{base} ({detail})")
    }
}
