use super::*;
use crate::rtp::{RtpBuilder, RtpHeader, RtpPacket};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The RFC 3711 B.3 master key and salt.
fn rfc_master() -> MasterKey {
    MasterKey::from_bytes(&hex(
        "E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6",
    ))
    .unwrap()
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    RtpBuilder::new(
        RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc,
        },
        payload,
    )
    .write_vec(&mut v)
    .unwrap();
    v
}

/// libsrtp's reference packets (srtp_driver.c, also in Jitsi's and pion's suites) under the
/// RFC 3711 B.3 master key: the RTP packet at ROC 0, the SRTCP packet at index 1.
#[test]
fn matches_the_libsrtp_reference_packets() {
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut packet = hex("800f1234decafbad cafebabe abababab abababababababab abababab");
    tx.protect_rtp(&mut packet).unwrap();
    assert_eq!(
        packet,
        hex("800f1234decafbad cafebabe4e55dc4c e79978d88ca4d215 949d2402b78d6acc 99ea179b8dbb")
    );
    let plain_rtcp = hex("81c8000bcafebabe abababababababab abababababababab");
    let mut rtcp = plain_rtcp.clone();
    tx.protect_rtcp(&mut rtcp).unwrap(); // index 0
    let mut rtcp = plain_rtcp.clone();
    tx.protect_rtcp(&mut rtcp).unwrap(); // index 1
    assert_eq!(
        rtcp,
        hex("81c8000bcafebabe 7128035be487b9bd bef89041f977a5a8 80000001993e08cd 54d6c1230798")
    );

    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    rx.unprotect_rtp(&mut packet).unwrap();
    assert_eq!(
        packet,
        hex("800f1234decafbad cafebabe abababab abababababababab abababab")
    );
    rx.unprotect_rtcp(&mut rtcp).unwrap();
    assert_eq!(rtcp, plain_rtcp);
}

#[test]
fn independent_contexts_from_the_same_key_round_trip_both_suites() {
    for profile in [
        SrtpProfile::AesCm128HmacSha1_80,
        SrtpProfile::AesCm128HmacSha1_32,
    ] {
        let key = MasterKey::from_bytes(&(0u8..30).collect::<Vec<_>>()).unwrap();
        let mut tx = SrtpContext::new(profile, &key);
        let mut rx = SrtpContext::new(profile, &key.clone());
        for seq in [65530u16, 65531, 7] {
            let plain = rtp(seq, 0xcafe_babe, &[0xab; 160]);
            let mut wire = plain.clone();
            tx.protect_rtp(&mut wire).unwrap();
            assert_eq!(wire.len(), plain.len() + profile.rtp_tag_len());
            assert_eq!(wire[..12], plain[..12], "header stays clear");
            assert_ne!(wire[12..172], plain[12..], "payload is encrypted");
            rx.unprotect_rtp(&mut wire).unwrap();
            assert_eq!(wire, plain);
        }
        let plain = hex("80c9000112345678");
        let mut wire = plain.clone();
        tx.protect_rtcp(&mut wire).unwrap();
        assert_eq!(wire.len(), plain.len() + 4 + 10);
        rx.unprotect_rtcp(&mut wire).unwrap();
        assert_eq!(wire, plain);
    }
}

#[test]
fn tampering_or_a_wrong_key_fails_authentication_and_changes_nothing() {
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut wire = rtp(100, 1, b"hello");
    tx.protect_rtp(&mut wire).unwrap();
    for i in 0..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        let before = bad.clone();
        let r = rx.unprotect_rtp(&mut bad);
        assert!(r.is_err(), "flipping byte {i} was accepted");
        assert_eq!(bad, before);
    }
    assert_eq!(rx.recv_roc(1), None, "no state from forged packets");
    let mut other = MasterKey::from_bytes(&[7; 30]).unwrap();
    other.salt = rfc_master().salt;
    let mut wrong = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &other);
    assert_eq!(
        wrong.unprotect_rtp(&mut wire.clone()),
        Err(SrtpError::AuthFailed)
    );
    rx.unprotect_rtp(&mut wire).unwrap();

    let mut rtcp = hex("80c9000100000001");
    tx.protect_rtcp(&mut rtcp).unwrap();
    let mut bad = rtcp.clone();
    bad[9] ^= 0x80;
    assert_eq!(rx.unprotect_rtcp(&mut bad), Err(SrtpError::AuthFailed));
    assert!(matches!(
        rx.unprotect_rtcp(&mut rtcp[..10].to_vec()),
        Err(SrtpError::TooShort { .. })
    ));
    assert!(matches!(
        rx.unprotect_rtp(&mut vec![0x80; 5]),
        Err(SrtpError::TooShort { .. })
    ));
}

#[test]
fn replays_and_too_old_packets_are_refused() {
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut sent = Vec::new();
    for seq in 0..100u16 {
        let mut w = rtp(seq, 9, b"x");
        tx.protect_rtp(&mut w).unwrap();
        sent.push(w);
    }
    for w in &sent[10..] {
        rx.unprotect_rtp(&mut w.clone()).unwrap();
    }
    assert_eq!(
        rx.unprotect_rtp(&mut sent[99].clone()),
        Err(SrtpError::Replayed(99))
    );
    // 99 - 36 = 63: still inside the 64-packet window, never received.
    assert_eq!(
        rx.unprotect_rtp(&mut sent[9].clone()),
        Err(SrtpError::TooOld(9))
    );
    let mut rtcp = hex("80c9000100000009");
    tx.protect_rtcp(&mut rtcp).unwrap();
    rx.unprotect_rtcp(&mut rtcp.clone()).unwrap();
    assert_eq!(rx.unprotect_rtcp(&mut rtcp), Err(SrtpError::Replayed(0)));
}

#[test]
fn roc_follows_the_sequence_wrap_and_late_packets_from_before_it() {
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &rfc_master());
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &rfc_master());
    let mut wire = |seq| {
        let mut w = rtp(seq, 5, &seq.to_be_bytes());
        tx.protect_rtp(&mut w).unwrap();
        w
    };
    let a = wire(65534);
    let b = wire(65535);
    let c = wire(0); // ROC 1 from here
    let d = wire(1);
    for w in [&a, &c, &d] {
        let mut w = w.clone();
        rx.unprotect_rtp(&mut w).unwrap();
    }
    assert_eq!(rx.recv_roc(5), Some(1));
    // 65535 arrives after the wrap: it belongs to ROC 0 (v = ROC - 1) and still decrypts.
    let mut late = b.clone();
    rx.unprotect_rtp(&mut late).unwrap();
    assert_eq!(&late[12..], &65535u16.to_be_bytes());
    assert_eq!(rx.recv_roc(5), Some(1));
    // The ROC is inside the tag: a receiver joining after the wrap starts at ROC 0 (§3.3.1)
    // and cannot authenticate a ROC-1 packet.
    let mut fresh = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &rfc_master());
    assert_eq!(
        fresh.unprotect_rtp(&mut c.clone()),
        Err(SrtpError::AuthFailed)
    );
}

#[test]
fn master_key_length_is_checked_and_debug_hides_it() {
    assert_eq!(
        MasterKey::from_bytes(&[0; 29]),
        Err(SrtpError::MasterKeyLength(29))
    );
    let k = MasterKey::from_bytes(&[0x41; 30]).unwrap();
    assert_eq!(k.to_bytes(), [0x41; 30]);
    assert_eq!(format!("{k:?}"), "MasterKey(..)");
    let ctx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &k);
    assert!(!format!("{ctx:?}").contains("41"));
}

/// RTP padding is encrypted with the payload, so its count byte is ciphertext on the wire;
/// a receiver that read it before decrypting would reject most padded packets.
#[test]
fn padded_packets_with_extensions_round_trip() {
    let mut tx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_80, &rfc_master());
    for seq in 0..64u16 {
        let mut plain = Vec::new();
        RtpBuilder {
            extension: Some(crate::rtp::Extension {
                profile: 0xbede,
                data: &[0x10, 0xaa, 0, 0],
            }),
            padding: 3,
            ..RtpBuilder::new(
                RtpHeader {
                    sequence: seq,
                    ssrc: 3,
                    ..RtpHeader::default()
                },
                &[1, 2, 3, 4, 5],
            )
        }
        .write_vec(&mut plain)
        .unwrap();
        let mut wire = plain.clone();
        tx.protect_rtp(&mut wire).unwrap();
        assert_eq!(wire[..20], plain[..20], "header and extension stay clear");
        rx.unprotect_rtp(&mut wire).unwrap();
        assert_eq!(wire, plain);
        let p = RtpPacket::parse(&wire).unwrap();
        assert_eq!((p.payload, p.padding), (&[1u8, 2, 3, 4, 5][..], 3));
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn unprotect_never_panics_and_never_accepts_noise(
            bytes in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut rx = SrtpContext::new(SrtpProfile::AesCm128HmacSha1_32, &rfc_master());
            let mut b = bytes.clone();
            // A random 32-bit tag matches by chance once in 2^32: never in these runs.
            prop_assert!(rx.unprotect_rtp(&mut b).is_err());
            prop_assert_eq!(&b, &bytes);
            prop_assert!(rx.unprotect_rtcp(&mut b).is_err());
            prop_assert_eq!(&b, &bytes);
        }

        #[test]
        fn protect_then_unprotect_is_identity(
            seqs in proptest::collection::vec(any::<u16>(), 1..20),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            short in any::<bool>(),
        ) {
            let profile = if short { SrtpProfile::AesCm128HmacSha1_32 } else { SrtpProfile::AesCm128HmacSha1_80 };
            let mut tx = SrtpContext::new(profile, &rfc_master());
            let mut rx = SrtpContext::new(profile, &rfc_master());
            // In-order sending from a random start, as a real sender does.
            let start = seqs[0];
            for i in 0..seqs.len() as u16 {
                let plain = rtp(start.wrapping_add(i), 42, &payload);
                let mut wire = plain.clone();
                tx.protect_rtp(&mut wire).unwrap();
                rx.unprotect_rtp(&mut wire).unwrap();
                prop_assert_eq!(wire, plain);
            }
        }
    }
}
