//! Message framing for stream transports (TCP, TLS): RFC 3261 §18.3.

use bytes::{Buf, BytesMut};

use crate::message::{find_head_end, leading_crlf, parse_with, Framing, Limits, Message};
use crate::text::trim_ws;
use crate::ParseError;

/// Reassembles messages from a byte stream. Feed whatever the socket returned with
/// [`StreamDecoder::extend`], then call [`StreamDecoder::next_message`] until it returns
/// `None`. A returned error means the stream cannot be resynchronised: close the connection.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: BytesMut,
    limits: Limits,
    keepalives: usize,
}

impl StreamDecoder {
    pub fn new(limits: Limits) -> Self {
        StreamDecoder {
            buf: BytesMut::new(),
            limits,
            keepalives: 0,
        }
    }

    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// CRLF keep-alive pings seen so far (RFC 5626 §4.4.1); the daemon may answer them.
    pub fn keepalives(&self) -> usize {
        self.keepalives
    }

    pub fn next_message(&mut self) -> Option<Result<Message, ParseError>> {
        let skip = leading_crlf(&self.buf);
        if skip > 0 {
            self.keepalives += skip / 4 + usize::from(skip % 4 >= 2);
            self.buf.advance(skip);
        }
        if self.buf.is_empty() {
            return None;
        }
        let head_end = match find_head_end(&self.buf) {
            Some(e) => e,
            None if self.buf.len() > self.limits.max_message_size => {
                return Some(Err(ParseError::TooLarge {
                    limit: self.limits.max_message_size,
                }))
            }
            None => return None,
        };
        let body_len = match declared_length(&self.buf[..head_end]) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        let total = head_end + body_len;
        if total > self.limits.max_message_size {
            return Some(Err(ParseError::TooLarge {
                limit: self.limits.max_message_size,
            }));
        }
        if self.buf.len() < total {
            return None;
        }
        let frame = self.buf.split_to(total).freeze();
        Some(parse_with(frame, &self.limits, Framing::Stream))
    }
}

/// Finds Content-Length (or `l`) in a raw header section without a full parse.
fn declared_length(head: &[u8]) -> Result<usize, ParseError> {
    let text = std::str::from_utf8(head).map_err(|_| ParseError::HeaderLine {
        line: 0,
        reason: "header section is not UTF-8",
    })?;
    for line in text.split('\n').skip(1) {
        let line = line.trim_end_matches('\r');
        if let Some((name, value)) = line.split_once(':') {
            let name = trim_ws(name);
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                return crate::text::parse_u32(trim_ws(value))
                    .map(|n| n as usize)
                    .map_err(|r| ParseError::header("Content-Length", r));
            }
        }
    }
    Err(ParseError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP h.example.com;branch=z9hG4bKabc\r\n\
To: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\n\
Call-ID: x1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nabcd";

    #[test]
    fn reassembles_partial_reads_byte_by_byte() {
        let mut d = StreamDecoder::default();
        for (i, b) in MSG.iter().enumerate() {
            d.extend(&[*b]);
            let got = d.next_message();
            if i + 1 < MSG.len() {
                assert!(got.is_none(), "early message at byte {i}");
            } else {
                let Some(Ok(Message::Request(r))) = got else {
                    panic!("no message")
                };
                assert_eq!(&r.body[..], b"abcd");
            }
        }
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn splits_several_messages_in_one_read_with_keepalives() {
        let mut d = StreamDecoder::default();
        let mut data = b"\r\n\r\n".to_vec();
        data.extend_from_slice(MSG);
        data.extend_from_slice(MSG);
        d.extend(&data);
        assert!(matches!(d.next_message(), Some(Ok(_))));
        assert!(matches!(d.next_message(), Some(Ok(_))));
        assert!(d.next_message().is_none());
        assert_eq!(d.keepalives(), 1);
    }

    #[test]
    fn missing_content_length_is_fatal_on_streams() {
        let mut d = StreamDecoder::default();
        d.extend(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n");
        assert_eq!(
            d.next_message(),
            Some(Err(ParseError::MissingContentLength))
        );
    }

    #[test]
    fn oversized_headers_are_rejected_before_buffering_forever() {
        let mut d = StreamDecoder::new(Limits {
            max_message_size: 64,
            max_headers: 10,
        });
        d.extend(&[b'a'; 100]);
        assert!(matches!(
            d.next_message(),
            Some(Err(ParseError::TooLarge { .. }))
        ));
    }
}
