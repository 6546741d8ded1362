//! SRTP and SRTCP (RFC 3711) with the two RFC 4568 suites AES_CM_128_HMAC_SHA1_80 and
//! AES_CM_128_HMAC_SHA1_32.
//!
//! An [`SrtpContext`] holds the session keys derived from one master key and salt (key
//! derivation rate 0) and per-SSRC state: for streams it sends, the rollover counter and the
//! SRTCP index; for streams it receives, the ROC estimate of §3.3.1 and a 64-packet replay
//! window (§3.3.2). Authentication tags are compared in constant time, and nothing about the
//! receive state changes until a packet has authenticated. Cipher and MAC are the RustCrypto
//! crates `aes`, `ctr`, `hmac`, `sha1` and `subtle`.
//!
//! Not supported: MKI, key lifetimes and re-keying (SDES offers without them, and a call
//! ends long before 2^31 packets), non-zero key derivation rates, the NULL cipher and
//! AES-GCM/256. [`crate::sdes`] refuses crypto lines asking for them.

mod crypto;

pub use crypto::{aes_cm_apply, derive, packet_iv, ReplayWindow, REPLAY_WINDOW};

use std::collections::HashMap;
use std::fmt;

use hmac::Mac;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::rtp::RtpPacket;
use crypto::{ReplayVerdict, SessionKeys};

/// The crypto suites this crate implements (RFC 4568 §6.2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// 80-bit tag: the one to offer.
    AesCm128HmacSha1_80,
    /// 32-bit tag on SRTP (SRTCP keeps 80 bits, RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
}

impl SrtpProfile {
    pub fn sdes_name(self) -> &'static str {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpProfile::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_sdes_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(SrtpProfile::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(SrtpProfile::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// Authentication tag length of SRTP packets in bytes.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 10,
            SrtpProfile::AesCm128HmacSha1_32 => 4,
        }
    }

    /// Authentication tag length of SRTCP packets in bytes (80 bits for both suites).
    pub fn rtcp_tag_len(self) -> usize {
        10
    }
}

/// Master key (16 bytes) and master salt (14 bytes); what SDES `inline:` carries.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; 16],
    pub salt: [u8; 14],
}

/// Length of key || salt.
pub const MASTER_LEN: usize = 30;

impl MasterKey {
    /// Splits 30 bytes of key || salt.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SrtpError> {
        if bytes.len() != MASTER_LEN {
            return Err(SrtpError::MasterKeyLength(bytes.len()));
        }
        let mut key = [0; 16];
        let mut salt = [0; 14];
        key.copy_from_slice(&bytes[..16]);
        salt.copy_from_slice(&bytes[16..]);
        Ok(MasterKey { key, salt })
    }

    pub fn to_bytes(&self) -> [u8; MASTER_LEN] {
        let mut out = [0; MASTER_LEN];
        out[..16].copy_from_slice(&self.key);
        out[16..].copy_from_slice(&self.salt);
        out
    }
}

impl fmt::Debug for MasterKey {
    // Keys must not end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    #[error("SRTP master key||salt must be 30 bytes, got {0}")]
    MasterKeyLength(usize),
    #[error("not an RTP packet: {0}")]
    Rtp(#[from] crate::rtp::RtpError),
    #[error("SRTCP packet too short: {got} bytes, at least {needed} needed")]
    TooShort { needed: usize, got: usize },
    #[error("authentication tag does not match (wrong key, or the packet was altered)")]
    AuthFailed,
    #[error("packet index {0} was already received (replay)")]
    Replayed(u64),
    #[error("packet index {0} is older than the 64-packet replay window")]
    TooOld(u64),
    #[error("the SRTP/SRTCP index space of SSRC {0:#010x} is exhausted; re-key the session")]
    IndexExhausted(u32),
}

#[derive(Debug, Clone, Copy, Default)]
struct RtpRecv {
    roc: u32,
    /// Highest sequence number authenticated (s_l of §3.3.1).
    s_l: u16,
    window: ReplayWindow,
}

#[derive(Debug, Clone, Copy, Default)]
struct RtpSend {
    roc: u32,
    last_seq: Option<u16>,
}

const SRTCP_INDEX_MAX: u32 = 0x7fff_ffff;

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

struct Half {
    keys: SessionKeys,
    mac: HmacSha1,
}

impl Half {
    fn new(master: &MasterKey, rtcp: bool) -> Self {
        let keys = SessionKeys::derive(&master.key, &master.salt, rtcp);
        let mac = keys.mac();
        Half { keys, mac }
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut m = self.mac.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let iv = packet_iv(&self.keys.salt, ssrc, index);
        aes_cm_apply(&self.keys.cipher, &iv, data);
    }
}

/// One SRTP crypto context: a master key used in one direction by one side. Protecting and
/// unprotecting keep separate per-SSRC state, but in practice each direction of a call has its
/// own context built from its own SDES key.
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Half,
    rtcp: Half,
    send: HashMap<u32, RtpSend>,
    recv: HashMap<u32, RtpRecv>,
    rtcp_send: HashMap<u32, u32>,
    rtcp_recv: HashMap<u32, ReplayWindow>,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("send_streams", &self.send.len())
            .field("recv_streams", &self.recv.len())
            .finish_non_exhaustive()
    }
}

/// RFC 3711 §3.3.1: the ROC a packet with sequence `seq` most likely belongs to, given the
/// highest authenticated `s_l` and its `roc`. Returns (v, index) or `None` when v would be -1
/// at ROC 0 (a packet from before the stream began).
fn estimate_index(roc: u32, s_l: u16, seq: u16) -> Option<(u32, u64)> {
    let v = if s_l < 32768 {
        if u32::from(seq) > u32::from(s_l) + 32768 {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if u32::from(s_l) - 32768 > u32::from(seq) {
        roc.wrapping_add(1)
    } else {
        roc
    };
    Some((v, (u64::from(v) << 16) | u64::from(seq)))
}

impl SrtpContext {
    pub fn new(profile: SrtpProfile, master: &MasterKey) -> Self {
        SrtpContext {
            profile,
            rtp: Half::new(master, false),
            rtcp: Half::new(master, true),
            send: HashMap::new(),
            recv: HashMap::new(),
            rtcp_send: HashMap::new(),
            rtcp_recv: HashMap::new(),
        }
    }

    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Encrypts an RTP packet in place and appends its tag. The rollover counter advances
    /// when the sequence number wraps; a jump of more than half the space back is not a wrap.
    pub fn protect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let p = RtpPacket::parse_without_padding(packet)?;
        let (ssrc, seq, header_len) = (p.header.ssrc, p.header.sequence, p.header_len());
        let st = self.send.entry(ssrc).or_default();
        if let Some(last) = st.last_seq {
            if seq < last && last - seq > 32768 {
                st.roc = st
                    .roc
                    .checked_add(1)
                    .ok_or(SrtpError::IndexExhausted(ssrc))?;
            }
        }
        let newer = st
            .last_seq
            .map_or(true, |last| (seq.wrapping_sub(last) as i16) > 0);
        if newer {
            st.last_seq = Some(seq);
        }
        let roc = st.roc;
        let index = (u64::from(roc) << 16) | u64::from(seq);
        self.rtp.crypt(ssrc, index, &mut packet[header_len..]);
        let tag = self.rtp.tag(&[packet, &roc.to_be_bytes()]);
        packet.extend_from_slice(&tag[..self.profile.rtp_tag_len()]);
        Ok(())
    }

    /// Authenticates, replay-checks and decrypts an SRTP packet in place, removing the tag.
    /// On error the packet is left as received and no state changes.
    pub fn unprotect_rtp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        let body_len = packet
            .len()
            .checked_sub(tag_len)
            .ok_or(SrtpError::TooShort {
                needed: tag_len + 12,
                got: packet.len(),
            })?;
        let p = RtpPacket::parse_without_padding(&packet[..body_len])?;
        let (ssrc, seq, header_len) = (p.header.ssrc, p.header.sequence, p.header_len());
        // A new stream starts at ROC 0 with s_l = its first sequence number (§3.3.1).
        let st = self.recv.get(&ssrc).copied().unwrap_or(RtpRecv {
            roc: 0,
            s_l: seq,
            window: ReplayWindow::default(),
        });
        let (v, index) =
            estimate_index(st.roc, st.s_l, seq).ok_or(SrtpError::TooOld(u64::from(seq)))?;
        match st.window.check(index) {
            ReplayVerdict::Fresh => {}
            ReplayVerdict::Replayed => return Err(SrtpError::Replayed(index)),
            ReplayVerdict::TooOld => return Err(SrtpError::TooOld(index)),
        }
        let expected = self.rtp.tag(&[&packet[..body_len], &v.to_be_bytes()]);
        if !bool::from(expected[..tag_len].ct_eq(&packet[body_len..])) {
            return Err(SrtpError::AuthFailed);
        }
        let mut st = st;
        if v == st.roc.wrapping_add(1) {
            st.roc = v;
            st.s_l = seq;
        } else if v == st.roc && seq > st.s_l {
            st.s_l = seq;
        }
        st.window.accept(index);
        self.recv.insert(ssrc, st);
        packet.truncate(body_len);
        self.rtp.crypt(ssrc, index, &mut packet[header_len..]);
        Ok(())
    }

    /// Encrypts a (compound) RTCP packet in place and appends E‖index and the tag. The index
    /// counts from 0 per sender SSRC.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < 8 {
            return Err(SrtpError::TooShort {
                needed: 8,
                got: packet.len(),
            });
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let next = self.rtcp_send.entry(ssrc).or_insert(0);
        let index = *next;
        if index > SRTCP_INDEX_MAX {
            return Err(SrtpError::IndexExhausted(ssrc));
        }
        *next += 1;
        self.protect_rtcp_at(packet, ssrc, index);
        Ok(())
    }

    fn protect_rtcp_at(&self, packet: &mut Vec<u8>, ssrc: u32, index: u32) {
        self.rtcp.crypt(ssrc, u64::from(index), &mut packet[8..]);
        packet.extend_from_slice(&(0x8000_0000 | index).to_be_bytes());
        let tag = self.rtcp.tag(&[packet]);
        packet.extend_from_slice(&tag[..self.profile.rtcp_tag_len()]);
    }

    /// Authenticates, replay-checks and (when the E bit is set) decrypts an SRTCP packet in
    /// place, removing the trailer. On error nothing changes.
    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = self.profile.rtcp_tag_len();
        let needed = 8 + 4 + tag_len;
        if packet.len() < needed {
            return Err(SrtpError::TooShort {
                needed,
                got: packet.len(),
            });
        }
        let auth_len = packet.len() - tag_len;
        let expected = self.rtcp.tag(&[&packet[..auth_len]]);
        if !bool::from(expected[..tag_len].ct_eq(&packet[auth_len..])) {
            return Err(SrtpError::AuthFailed);
        }
        let e_index = &packet[auth_len - 4..auth_len];
        let word = u32::from_be_bytes([e_index[0], e_index[1], e_index[2], e_index[3]]);
        let encrypted = word & 0x8000_0000 != 0;
        let index = u64::from(word & SRTCP_INDEX_MAX);
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let window = self.rtcp_recv.entry(ssrc).or_default();
        match window.check(index) {
            ReplayVerdict::Fresh => window.accept(index),
            ReplayVerdict::Replayed => return Err(SrtpError::Replayed(index)),
            ReplayVerdict::TooOld => return Err(SrtpError::TooOld(index)),
        }
        packet.truncate(auth_len - 4);
        if encrypted {
            self.rtcp.crypt(ssrc, index, &mut packet[8..]);
        }
        Ok(())
    }

    /// The rollover counter of a received stream, once one packet has authenticated.
    pub fn recv_roc(&self, ssrc: u32) -> Option<u32> {
        self.recv.get(&ssrc).map(|s| s.roc)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
