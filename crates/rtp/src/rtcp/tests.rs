use super::*;
use proptest::prelude::*;

fn parse_all(buf: &[u8]) -> Result<Vec<RtcpPacket<'_>>, RtcpError> {
    parse_compound(buf).collect()
}

fn block(ssrc: u32) -> ReportBlock {
    ReportBlock {
        ssrc,
        fraction_lost: 51,
        cumulative_lost: -3,
        highest_seq: 65536 + 13,
        jitter: 9,
        last_sr: 0x3344_5566,
        delay_since_last_sr: 98304,
    }
}

#[test]
fn sr_with_report_then_sdes_cname_exact_bytes() {
    let packets = vec![
        RtcpPacket::SenderReport(SenderReport {
            ssrc: 0x0102_0304,
            info: SenderInfo {
                ntp_timestamp: 0xe000_0001_8000_0000,
                rtp_timestamp: 160,
                packet_count: 2,
                octet_count: 320,
            },
            reports: vec![block(0xaabb_ccdd)],
        }),
        RtcpPacket::Sdes(vec![SdesChunk::cname(0x0102_0304, b"pbx")]),
    ];
    let mut out = Vec::new();
    write_compound(&packets, &mut out).unwrap();
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0x81, 200, 0, 12, 1, 2, 3, 4,
        0xe0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 2, 0, 0, 1, 64,
        0xaa, 0xbb, 0xcc, 0xdd, 51, 0xff, 0xff, 0xfd, 0, 1, 0, 13, 0, 0, 0, 9,
        0x33, 0x44, 0x55, 0x66, 0, 1, 0x80, 0,
        0x81, 202, 0, 3, 1, 2, 3, 4, 1, 3, b'p', b'b', b'x', 0, 0, 0,
    ];
    assert_eq!(out, expected);
    let parsed = parse_all(&out).unwrap();
    assert_eq!(parsed, packets);
    let RtcpPacket::Sdes(chunks) = &parsed[1] else {
        panic!("not SDES")
    };
    assert_eq!(chunks[0].cname_text(), Some(&b"pbx"[..]));
}

#[test]
fn sdes_chunk_ending_on_a_word_boundary_gets_a_whole_null_word() {
    // Written after an unaligned prefix: alignment is relative to the packet.
    let mut out = vec![0xee];
    RtcpPacket::Sdes(vec![SdesChunk::cname(9, b"ab")])
        .write(&mut out)
        .unwrap();
    let out = &out[1..];
    // header, ssrc, [1, 2, a, b], [0, 0, 0, 0]
    assert_eq!(out.len(), 4 + 4 + 4 + 4);
    assert_eq!(&out[12..], &[0, 0, 0, 0]);
    assert_eq!(
        parse_all(out).unwrap(),
        vec![RtcpPacket::Sdes(vec![SdesChunk::cname(9, b"ab")])]
    );
}

#[test]
fn pli_and_fir_exact_bytes() {
    let mut out = Vec::new();
    RtcpPacket::Pli(Pli {
        sender_ssrc: 1,
        media_ssrc: 2,
    })
    .write(&mut out)
    .unwrap();
    assert_eq!(out, vec![0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
    out.clear();
    RtcpPacket::Fir(Fir {
        sender_ssrc: 1,
        entries: vec![FirEntry { ssrc: 2, seq: 7 }],
    })
    .write(&mut out)
    .unwrap();
    assert_eq!(
        out,
        vec![0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 7, 0, 0, 0]
    );
    assert_eq!(
        parse_all(&out).unwrap(),
        vec![RtcpPacket::Fir(Fir {
            sender_ssrc: 1,
            entries: vec![FirEntry { ssrc: 2, seq: 7 }],
        })]
    );
}

#[test]
fn nack_packs_runs_across_the_wrap() {
    // Unordered, one duplicate; 1 and 2 were received, so their bits stay clear.
    let n = Nack::from_lost(1, 2, &[65534, 3, 65535, 0, 65534, 40]);
    assert_eq!(n.pairs, vec![(65534, 0b10011), (40, 0)]);
    assert_eq!(n.lost().collect::<Vec<_>>(), vec![65534, 65535, 0, 3, 40]);
    let mut out = Vec::new();
    RtcpPacket::Nack(n.clone()).write(&mut out).unwrap();
    assert_eq!(&out[..4], &[0x81, 205, 0, 4]);
    assert_eq!(parse_all(&out).unwrap(), vec![RtcpPacket::Nack(n)]);
    assert!(Nack::from_lost(1, 2, &[]).pairs.is_empty());
}

#[test]
fn remb_encodes_mantissa_and_exponent() {
    let r = Remb {
        sender_ssrc: 1,
        bitrate: 1_000_000,
        ssrcs: vec![5, 6],
    };
    let mut out = Vec::new();
    RtcpPacket::Remb(r.clone()).write(&mut out).unwrap();
    // 1_000_000 = 250_000 << 2.
    assert_eq!(
        &out[12..20],
        &[b'R', b'E', b'M', b'B', 2, (2 << 2) | 3, 0xd0, 0x90]
    );
    assert_eq!(parse_all(&out).unwrap(), vec![RtcpPacket::Remb(r)]);
}

#[test]
fn remb_with_a_huge_exponent_saturates() {
    // exp 63, mantissa 0x3ffff: far beyond 64 bits.
    let buf = [
        0x8f, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, b'R', b'E', b'M', b'B', 0, 0xff, 0xff, 0xff,
    ];
    let RtcpPacket::Remb(r) = &parse_all(&buf).unwrap()[0] else {
        panic!("not REMB")
    };
    assert_eq!(r.bitrate, u64::MAX);
}

#[test]
fn bye_app_and_padding() {
    let bye = RtcpPacket::Bye(Bye {
        sources: vec![7],
        reason: Some(b"done"),
    });
    let mut out = Vec::new();
    bye.write(&mut out).unwrap();
    assert_eq!(
        out,
        vec![0x81, 203, 0, 3, 0, 0, 0, 7, 4, b'd', b'o', b'n', b'e', 0, 0, 0]
    );
    // An APP packet with 4 bytes of padding, then an RR.
    let mut buf = vec![
        0xa0, 204, 0, 3, 0, 0, 0, 1, b'n', b'a', b'm', b'e', 0, 0, 0, 4,
    ];
    buf.extend_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 9]);
    let parsed = parse_all(&buf).unwrap();
    assert_eq!(
        parsed[0],
        RtcpPacket::Other {
            packet_type: 204,
            count: 0,
            raw: &buf[..16]
        }
    );
    assert_eq!(
        parsed[1],
        RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: 9,
            reports: vec![]
        })
    );
    let mut again = Vec::new();
    write_compound(&parsed, &mut again).unwrap();
    assert_eq!(again, buf);
}

#[test]
fn broken_packets_are_errors() {
    assert_eq!(
        parse_all(&[0x40, 201, 0, 1, 0, 0, 0, 0]),
        Err(RtcpError::BadVersion(1))
    );
    assert!(matches!(
        parse_all(&[0x80, 201, 0, 2, 0, 0, 0, 0]),
        Err(RtcpError::TooShort { .. })
    ));
    // RR claiming one report block without the bytes.
    assert!(matches!(
        parse_all(&[0x81, 201, 0, 1, 0, 0, 0, 0]),
        Err(RtcpError::TooShort { .. })
    ));
    assert_eq!(
        parse_all(&[0xa0, 201, 0, 1, 0, 0, 0, 9]),
        Err(RtcpError::BadPadding(9))
    );
    // The error ends the iteration.
    let mut it = parse_compound(&[0x80, 201, 0, 9, 0]);
    assert!(matches!(it.next(), Some(Err(_))));
    assert!(it.next().is_none());
}

#[test]
fn build_refuses_what_does_not_fit() {
    let mut out = vec![1, 2];
    let rr = RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: 1,
        reports: vec![block(1); 32],
    });
    assert_eq!(
        rr.write(&mut out),
        Err(RtcpError::TooMany {
            what: "report blocks",
            count: 32
        })
    );
    let bad = RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: 1,
        reports: vec![ReportBlock {
            cumulative_lost: 0x80_0000,
            ..block(1)
        }],
    });
    assert!(matches!(
        write_compound(
            &[
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: 1,
                    reports: vec![block(1)]
                }),
                bad
            ],
            &mut out
        ),
        Err(RtcpError::OutOfRange { .. })
    ));
    let long = [0u8; 256];
    let sdes = RtcpPacket::Sdes(vec![SdesChunk::cname(1, &long)]);
    assert_eq!(
        sdes.write(&mut out),
        Err(RtcpError::SdesItemTooLong { kind: 1, len: 256 })
    );
    assert_eq!(out, vec![1, 2]);
}

fn arb_block() -> impl Strategy<Value = ReportBlock> + Clone {
    (
        any::<u32>(),
        any::<u8>(),
        -0x80_0000i32..=0x7f_ffff,
        any::<[u32; 4]>(),
    )
        .prop_map(|(ssrc, f, c, w)| ReportBlock {
            ssrc,
            fraction_lost: f,
            cumulative_lost: c,
            highest_seq: w[0],
            jitter: w[1],
            last_sr: w[2],
            delay_since_last_sr: w[3],
        })
}

static TEXTS: [&[u8]; 4] = [b"", b"a", b"cname@host", &[0xff; 255]];

fn arb_packet() -> impl Strategy<Value = RtcpPacket<'static>> {
    let blocks = proptest::collection::vec(arb_block(), 0..4);
    let text = proptest::sample::select(&TEXTS[..]);
    prop_oneof![
        (any::<u32>(), any::<[u32; 5]>(), blocks.clone()).prop_map(|(ssrc, w, reports)| {
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                info: SenderInfo {
                    ntp_timestamp: u64::from(w[0]) << 32 | u64::from(w[1]),
                    rtp_timestamp: w[2],
                    packet_count: w[3],
                    octet_count: w[4],
                },
                reports,
            })
        }),
        (any::<u32>(), blocks).prop_map(|(ssrc, reports)| RtcpPacket::ReceiverReport(
            ReceiverReport { ssrc, reports }
        )),
        proptest::collection::vec(
            (
                any::<u32>(),
                proptest::collection::vec((1u8..=8, text.clone()), 0..3)
            ),
            0..3
        )
        .prop_map(|chunks| RtcpPacket::Sdes(
            chunks
                .into_iter()
                .map(|(ssrc, items)| SdesChunk {
                    ssrc,
                    items: items
                        .into_iter()
                        .map(|(kind, text)| SdesItem { kind, text })
                        .collect()
                })
                .collect()
        )),
        (
            proptest::collection::vec(any::<u32>(), 0..4),
            proptest::option::of(text)
        )
            .prop_map(|(sources, reason)| RtcpPacket::Bye(Bye { sources, reason })),
        (
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<(u16, u16)>(), 0..4)
        )
            .prop_map(|(s, m, pairs)| RtcpPacket::Nack(Nack {
                sender_ssrc: s,
                media_ssrc: m,
                pairs
            })),
        (any::<u32>(), any::<u32>()).prop_map(|(s, m)| RtcpPacket::Pli(Pli {
            sender_ssrc: s,
            media_ssrc: m
        })),
        (
            any::<u32>(),
            proptest::collection::vec(any::<(u32, u8)>(), 0..4)
        )
            .prop_map(|(s, e)| RtcpPacket::Fir(Fir {
                sender_ssrc: s,
                entries: e
                    .into_iter()
                    .map(|(ssrc, seq)| FirEntry { ssrc, seq })
                    .collect()
            })),
        (
            any::<u32>(),
            0u64..(1 << 18),
            0u32..40,
            proptest::collection::vec(any::<u32>(), 0..3)
        )
            .prop_map(|(s, m, e, ssrcs)| RtcpPacket::Remb(Remb {
                sender_ssrc: s,
                bitrate: m << e,
                ssrcs
            })),
    ]
}

proptest! {
    #[test]
    fn parse_inverts_build(packets in proptest::collection::vec(
        arb_packet(),
        1..5,
    )) {
        let mut out = Vec::new();
        write_compound(&packets, &mut out).unwrap();
        prop_assert_eq!(out.len() % 4, 0);
        prop_assert_eq!(parse_all(&out).unwrap(), packets);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for p in parse_compound(&bytes).flatten() {
            let mut out = Vec::new();
            // What parsed can be written again (possibly normalised).
            if let RtcpPacket::Nack(n) = &p {
                let _ = n.lost().count();
            }
            let _ = p.write(&mut out);
        }
    }

    #[test]
    fn parse_never_panics_on_valid_headers(
        count in 0u8..32, pt in 200u8..=206, words in 0u16..8,
        body in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut bytes = vec![0x80 | count, pt];
        bytes.extend_from_slice(&words.to_be_bytes());
        bytes.extend_from_slice(&body);
        for p in parse_compound(&bytes).flatten() {
            let _ = p.write(&mut Vec::new());
        }
    }
}
