//! The primitives under SRTP: AES counter mode (RFC 3711 §4.1.1), the AES-CM key derivation
//! PRF (§4.3) and the replay window (§3.3.2).

use aes::cipher::{KeyInit, KeyIvInit, StreamCipher};
use aes::Aes128;
use ctr::Ctr128BE;

/// Session key derivation labels (RFC 3711 §4.3.1, §4.3.2).
pub(super) const LABEL_RTP_ENCRYPTION: u8 = 0x00;
pub(super) const LABEL_RTP_AUTH: u8 = 0x01;
pub(super) const LABEL_RTP_SALT: u8 = 0x02;
pub(super) const LABEL_RTCP_ENCRYPTION: u8 = 0x03;
pub(super) const LABEL_RTCP_AUTH: u8 = 0x04;
pub(super) const LABEL_RTCP_SALT: u8 = 0x05;

/// XORs the AES-CM keystream that starts at counter block `iv` into `data`.
pub fn aes_cm_apply(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    let mut c = Ctr128BE::<Aes128>::new(key.into(), iv.into());
    c.apply_keystream(data);
}

/// The counter block of RFC 3711 §4.1.1: (salt · 2^16) ⊕ (SSRC · 2^64) ⊕ (index · 2^16).
/// `index` is the 48-bit SRTP packet index or the 31-bit SRTCP index.
pub fn packet_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
        iv[4 + i] ^= b;
    }
    // index · 2^16 occupies bytes 8..14.
    for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
        iv[8 + i] ^= b;
    }
    iv
}

/// The AES-CM PRF of RFC 3711 §4.3.3 with key derivation rate 0 (the default, and the only
/// rate SDES without a KDR parameter uses): fills `out` with the session key for `label`.
pub fn derive(master_key: &[u8; 16], master_salt: &[u8; 14], label: u8, out: &mut [u8]) {
    // x = master salt ⊕ (label || index DIV kdr), with the label at byte 7 of the 14; DIV by
    // a zero rate is defined as zero, so only the label is mixed in.
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    aes_cm_apply(master_key, &iv, out);
}

/// The session keys of one direction-independent half (SRTP or SRTCP) of a crypto context.
#[derive(Clone)]
pub(super) struct SessionKeys {
    pub cipher: [u8; 16],
    pub salt: [u8; 14],
    pub auth: [u8; 20],
}

impl SessionKeys {
    pub fn derive(master_key: &[u8; 16], master_salt: &[u8; 14], rtcp: bool) -> Self {
        let (le, la, ls) = if rtcp {
            (LABEL_RTCP_ENCRYPTION, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)
        } else {
            (LABEL_RTP_ENCRYPTION, LABEL_RTP_AUTH, LABEL_RTP_SALT)
        };
        let mut k = SessionKeys {
            cipher: [0; 16],
            salt: [0; 14],
            auth: [0; 20],
        };
        derive(master_key, master_salt, le, &mut k.cipher);
        derive(master_key, master_salt, la, &mut k.auth);
        derive(master_key, master_salt, ls, &mut k.salt);
        k
    }

    pub fn mac(&self) -> hmac::Hmac<sha1::Sha1> {
        // HMAC zero-pads a key shorter than the 64-byte SHA-1 block (RFC 2104 §2), so keying
        // with the padded block is the same MAC and needs no fallible constructor.
        let mut block = [0u8; 64];
        block[..20].copy_from_slice(&self.auth);
        <hmac::Hmac<sha1::Sha1> as KeyInit>::new(&block.into())
    }
}

/// Why the replay window refuses an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    Fresh,
    Replayed,
    TooOld,
}

/// The sliding window of RFC 3711 §3.3.2: the highest index accepted and a bitmask of the
/// 64 indices at and below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayWindow {
    top: Option<u64>,
    bits: u64,
}

/// Width of the replay window (the minimum RFC 3711 allows).
pub const REPLAY_WINDOW: u64 = 64;

impl ReplayWindow {
    pub fn check(&self, index: u64) -> ReplayVerdict {
        let Some(top) = self.top else {
            return ReplayVerdict::Fresh;
        };
        if index > top {
            return ReplayVerdict::Fresh;
        }
        let back = top - index;
        if back >= REPLAY_WINDOW {
            ReplayVerdict::TooOld
        } else if self.bits & (1 << back) != 0 {
            ReplayVerdict::Replayed
        } else {
            ReplayVerdict::Fresh
        }
    }

    /// Records an index that [`check`](Self::check) found fresh and that authenticated.
    pub fn accept(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => {
                let back = top - index;
                if back < REPLAY_WINDOW {
                    self.bits |= 1 << back;
                }
            }
            Some(top) => {
                let shift = index - top;
                self.bits = if shift >= REPLAY_WINDOW {
                    0
                } else {
                    self.bits << shift
                };
                self.bits |= 1;
                self.top = Some(index);
            }
            None => {
                self.bits = 1;
                self.top = Some(index);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    /// RFC 3711 Appendix B.2: the keystream segment of 65282 blocks, checked at the six
    /// blocks the RFC lists.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let key = arr::<16>("2B7E151628AED2A6ABF7158809CF4F3C");
        let salt = arr::<14>("F0F1F2F3F4F5F6F7F8F9FAFBFCFD");
        let iv = packet_iv(&salt, 0, 0);
        assert_eq!(iv.to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
        let mut ks = vec![0u8; 65282 * 16];
        aes_cm_apply(&key, &iv, &mut ks);
        let block = |n: usize| ks[n * 16..(n + 1) * 16].to_vec();
        assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
        assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
        assert_eq!(block(0xfeff), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
        assert_eq!(block(0xff00), hex("362B7C3C6773516318A077D7FC5073AE"));
        assert_eq!(block(0xff01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
    }

    /// RFC 3711 Appendix B.3: cipher key, cipher salt and the full 94-octet auth-label output.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let mk = arr::<16>("E1F97A0D3E018BE0D64FA32C06DE4139");
        let ms = arr::<14>("0EC675AD498AFEEBB6960B3AABE6");
        let mut cipher = [0u8; 16];
        derive(&mk, &ms, LABEL_RTP_ENCRYPTION, &mut cipher);
        assert_eq!(cipher.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut salt = [0u8; 14];
        derive(&mk, &ms, LABEL_RTP_SALT, &mut salt);
        assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 94];
        derive(&mk, &ms, LABEL_RTP_AUTH, &mut auth);
        assert_eq!(
            auth.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
        let k = SessionKeys::derive(&mk, &ms, false);
        assert_eq!(k.cipher, cipher);
        assert_eq!(k.salt, salt);
        assert_eq!(k.auth[..], auth[..20]);
    }

    #[test]
    fn iv_mixes_ssrc_and_index() {
        let iv = packet_iv(&[0; 14], 0x0102_0304, 0x0000_aabb_ccdd_eeff);
        assert_eq!(iv.to_vec(), hex("00000000 01020304 aabbccddeeff 0000"));
    }

    #[test]
    fn replay_window_accepts_each_index_once_within_64() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(100), ReplayVerdict::Fresh);
        w.accept(100);
        assert_eq!(w.check(100), ReplayVerdict::Replayed);
        assert_eq!(w.check(99), ReplayVerdict::Fresh);
        w.accept(99);
        assert_eq!(w.check(99), ReplayVerdict::Replayed);
        assert_eq!(w.check(37), ReplayVerdict::Fresh);
        assert_eq!(w.check(36), ReplayVerdict::TooOld);
        w.accept(130);
        assert_eq!(w.check(100), ReplayVerdict::Replayed);
        assert_eq!(w.check(99), ReplayVerdict::Replayed);
        assert_eq!(w.check(67), ReplayVerdict::Fresh);
        assert_eq!(w.check(66), ReplayVerdict::TooOld);
        w.accept(1000);
        assert_eq!(w.check(130), ReplayVerdict::TooOld);
        assert_eq!(w.check(999), ReplayVerdict::Fresh);
        assert_eq!(w.check(1000), ReplayVerdict::Replayed);
    }
}
