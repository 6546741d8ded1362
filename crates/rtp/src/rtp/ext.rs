//! RFC 8285 header extension elements inside an RFC 3550 §5.3.1 extension.

use super::RtpError;

/// The profile word of the one-byte form.
pub const ONE_BYTE_PROFILE: u16 = 0xbede;
/// The two-byte form's profile word is 0x100 followed by 4 "appbits": 0x1000..=0x100f.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Which RFC 8285 element layout an extension uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionKind {
    /// ids 1..=14, 1..=16 data bytes.
    OneByte,
    /// ids 1..=255, 0..=255 data bytes.
    TwoByte,
}

impl ExtensionKind {
    pub fn from_profile(profile: u16) -> Option<Self> {
        if profile == ONE_BYTE_PROFILE {
            Some(ExtensionKind::OneByte)
        } else if profile & 0xfff0 == TWO_BYTE_PROFILE {
            Some(ExtensionKind::TwoByte)
        } else {
            None
        }
    }

    pub fn profile(self) -> u16 {
        match self {
            ExtensionKind::OneByte => ONE_BYTE_PROFILE,
            ExtensionKind::TwoByte => TWO_BYTE_PROFILE,
        }
    }
}

/// One element: its local id (negotiated with `a=extmap`) and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtElement<'a> {
    pub id: u8,
    pub data: &'a [u8],
}

/// Iterator over the elements of an extension. Padding bytes are skipped; an element running
/// past the end yields one error and ends the iteration.
#[derive(Debug, Clone)]
pub struct ExtElements<'a> {
    kind: ExtensionKind,
    rest: &'a [u8],
}

impl<'a> ExtElements<'a> {
    pub(super) fn new(kind: ExtensionKind, data: &'a [u8]) -> Self {
        ExtElements { kind, rest: data }
    }
}

impl<'a> Iterator for ExtElements<'a> {
    type Item = Result<ExtElement<'a>, RtpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, after) = self.rest.split_first()?;
            if first == 0 {
                self.rest = after;
                continue;
            }
            let (id, len, after) = match self.kind {
                ExtensionKind::OneByte => {
                    let id = first >> 4;
                    if id == 15 {
                        // RFC 8285 §4.2: id 15 means "stop processing this header".
                        self.rest = &[];
                        return None;
                    }
                    (id, usize::from(first & 0x0f) + 1, after)
                }
                ExtensionKind::TwoByte => match after.split_first() {
                    Some((&len, after)) => (first, usize::from(len), after),
                    None => {
                        self.rest = &[];
                        return Some(Err(RtpError::BadExtensionElement {
                            id: first,
                            why: "the length byte is missing",
                        }));
                    }
                },
            };
            if after.len() < len {
                self.rest = &[];
                return Some(Err(RtpError::BadExtensionElement {
                    id,
                    why: "its data runs past the end of the extension",
                }));
            }
            let (data, rest) = after.split_at(len);
            self.rest = rest;
            return Some(Ok(ExtElement { id, data }));
        }
    }
}

/// Collects RFC 8285 elements into extension data padded to a multiple of four bytes.
#[derive(Debug, Clone)]
pub struct ExtensionBuilder {
    kind: ExtensionKind,
    data: Vec<u8>,
}

impl ExtensionBuilder {
    pub fn new(kind: ExtensionKind) -> Self {
        ExtensionBuilder {
            kind,
            data: Vec::new(),
        }
    }

    /// Adds one element; ids and lengths outside the form's range are refused.
    pub fn push(&mut self, id: u8, data: &[u8]) -> Result<(), RtpError> {
        match self.kind {
            ExtensionKind::OneByte => {
                if !(1..=14).contains(&id) {
                    return Err(RtpError::BadExtensionElement {
                        id,
                        why: "one-byte elements need an id of 1..=14",
                    });
                }
                if data.is_empty() || data.len() > 16 {
                    return Err(RtpError::BadExtensionElement {
                        id,
                        why: "one-byte elements carry 1..=16 bytes; use the two-byte form",
                    });
                }
                self.data.push((id << 4) | (data.len() - 1) as u8);
            }
            ExtensionKind::TwoByte => {
                if id == 0 {
                    return Err(RtpError::BadExtensionElement {
                        id,
                        why: "id 0 is padding",
                    });
                }
                let Ok(len) = u8::try_from(data.len()) else {
                    return Err(RtpError::BadExtensionElement {
                        id,
                        why: "two-byte elements carry at most 255 bytes",
                    });
                };
                self.data.extend_from_slice(&[id, len]);
            }
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    /// The profile word and the padded data, ready for [`super::Extension`].
    pub fn finish(mut self) -> (u16, Vec<u8>) {
        while self.data.len() % 4 != 0 {
            self.data.push(0);
        }
        (self.kind.profile(), self.data)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::Extension;
    use super::*;

    fn elements(profile: u16, data: &[u8]) -> Vec<Result<(u8, Vec<u8>), RtpError>> {
        Extension { profile, data }
            .elements()
            .unwrap()
            .map(|r| r.map(|e| (e.id, e.data.to_vec())))
            .collect()
    }

    #[test]
    fn one_byte_elements_skip_padding_and_stop_at_15() {
        // RFC 8285 §4.2 example shape: id 1 len 1, padding, id 2 len 2, id 15 stops.
        let data = [0x10, 0xaa, 0x00, 0x21, 0xbb, 0xcc, 0xf0, 0x33];
        assert_eq!(
            elements(ONE_BYTE_PROFILE, &data),
            vec![Ok((1, vec![0xaa])), Ok((2, vec![0xbb, 0xcc]))]
        );
    }

    #[test]
    fn two_byte_elements_allow_empty_data_and_app_bits() {
        let data = [0x05, 0x00, 0x00, 0x07, 0x02, 0x01, 0x02, 0x00];
        assert_eq!(
            elements(0x1003, &data),
            vec![Ok((5, vec![])), Ok((7, vec![1, 2]))]
        );
    }

    #[test]
    fn overrunning_elements_are_one_error() {
        let e = elements(ONE_BYTE_PROFILE, &[0x13, 1, 2]);
        assert_eq!(e.len(), 1);
        assert!(e[0].is_err());
        let e = elements(TWO_BYTE_PROFILE, &[0x09]);
        assert_eq!(e.len(), 1);
        assert!(e[0].is_err());
    }

    #[test]
    fn other_profiles_have_no_elements() {
        assert!(Extension {
            profile: 0x0001,
            data: &[]
        }
        .elements()
        .is_none());
    }

    #[test]
    fn builder_round_trips_and_pads() {
        let mut b = ExtensionBuilder::new(ExtensionKind::OneByte);
        b.push(3, &[1, 2, 3]).unwrap();
        b.push(14, &[9]).unwrap();
        assert!(b.push(15, &[1]).is_err());
        assert!(b.push(1, &[]).is_err());
        assert!(b.push(1, &[0; 17]).is_err());
        let (profile, data) = b.finish();
        assert_eq!(profile, ONE_BYTE_PROFILE);
        assert_eq!(data, vec![0x32, 1, 2, 3, 0xe0, 9, 0, 0]);
        assert_eq!(
            elements(profile, &data),
            vec![Ok((3, vec![1, 2, 3])), Ok((14, vec![9]))]
        );

        let mut b = ExtensionBuilder::new(ExtensionKind::TwoByte);
        b.push(200, &[0; 20]).unwrap();
        b.push(1, &[]).unwrap();
        assert!(b.push(0, &[]).is_err());
        assert!(b.push(2, &[0; 256]).is_err());
        let (profile, data) = b.finish();
        assert_eq!(data.len() % 4, 0);
        assert_eq!(
            elements(profile, &data),
            vec![Ok((200, vec![0; 20])), Ok((1, vec![]))]
        );
    }
}
