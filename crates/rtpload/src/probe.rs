//! The probe packet: a valid RTP header (PCMU, 20 ms of G.711: 160 payload bytes, 172 in all)
//! whose payload starts with what the receiver needs: which leg sent it, in which step, whether
//! it counts, and when it left.

/// RTP header + one 20 ms G.711 frame.
pub const PACKET_LEN: usize = 12 + 160;
pub const MAGIC: &[u8; 4] = b"KtRL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub leg: u32,
    pub seq: u16,
    pub step: u32,
    /// Sent inside the measured window of its step (warm-up and priming packets are not).
    pub measured: bool,
    /// Nanoseconds since the generator's epoch.
    pub sent_ns: u64,
}

impl Probe {
    pub fn write(&self, buf: &mut [u8; PACKET_LEN]) {
        buf[0] = 0x80; // V=2
        buf[1] = 0; // PT 0 (PCMU)
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(self.seq) * 160).to_be_bytes());
        buf[8..12].copy_from_slice(&(0x4b00_0000 ^ self.leg).to_be_bytes());
        buf[12..16].copy_from_slice(MAGIC);
        buf[16..20].copy_from_slice(&self.leg.to_le_bytes());
        buf[20..24].copy_from_slice(&self.step.to_le_bytes());
        buf[24..32].copy_from_slice(&self.sent_ns.to_le_bytes());
        buf[32] = u8::from(self.measured);
    }

    pub fn read(buf: &[u8]) -> Option<Probe> {
        if buf.len() < 33 || &buf[12..16] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| buf[i..i + 4].try_into().ok().map(u32::from_le_bytes);
        Some(Probe {
            leg: u32_at(16)?,
            seq: u16::from_be_bytes([buf[2], buf[3]]),
            step: u32_at(20)?,
            measured: buf[32] == 1,
            sent_ns: u64::from_le_bytes(buf[24..32].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let p = Probe {
            leg: 1999,
            seq: 65535,
            step: 3,
            measured: true,
            sent_ns: 123_456_789_012,
        };
        let mut buf = [0u8; PACKET_LEN];
        p.write(&mut buf);
        assert_eq!(buf[0] >> 6, 2, "RTP version 2");
        assert_eq!(Probe::read(&buf), Some(p));
        assert_eq!(Probe::read(&buf[..20]), None);
        buf[12] = b'x';
        assert_eq!(Probe::read(&buf), None);
    }
}
