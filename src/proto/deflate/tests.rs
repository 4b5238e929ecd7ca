use super::*;
use crate::proto::connection::Role;

fn exts(header: &str) -> Vec<ExtensionOffer> {
    crate::proto::handshake::parse_extensions(header).expect("test headers parse")
}

fn show(ext: &ExtensionOffer) -> String {
    ext.to_string()
}

fn params(snct: bool, cnct: bool, smwb: u8, cmwb: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: smwb,
        client_max_window_bits: cmwb,
        ..DeflateParams::default()
    }
}

fn plain() -> DeflateConfig {
    DeflateConfig {
        server_no_context_takeover: false,
        ..DeflateConfig::default()
    }
}

#[test]
fn server_picks_the_first_acceptable_offer() {
    const PMD: &str = "permessage-deflate";
    // (config, client's header, expected response, expected params)
    let lean = DeflateConfig::default();
    let p = plain();
    let mut small = plain();
    small.server_max_window_bits = 10;
    small.client_max_window_bits = 9;
    let mut strict = plain();
    strict.client_no_context_takeover = true;
    let cases: Vec<(&DeflateConfig, &str, Option<&str>, DeflateParams)> = vec![
        (&p, PMD, Some(PMD), params(false, false, 15, 15)),
        (
            &lean,
            PMD,
            Some("permessage-deflate; server_no_context_takeover"),
            params(true, false, 15, 15),
        ),
        (&p, "permessage-deflate; client_max_window_bits", Some(PMD), params(false, false, 15, 15)),
        (
            &p,
            "permessage-deflate; client_max_window_bits=10",
            Some("permessage-deflate; client_max_window_bits=10"),
            params(false, false, 15, 10),
        ),
        (
            &p,
            "permessage-deflate; server_max_window_bits=8",
            Some("permessage-deflate; server_max_window_bits=8"),
            params(false, false, 8, 15),
        ),
        (
            &p,
            "permessage-deflate; client_max_window_bits=8",
            Some("permessage-deflate; client_max_window_bits=8"),
            params(false, false, 15, 8),
        ),
        (
            &p,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            params(true, true, 15, 15),
        ),
        (
            &strict,
            PMD,
            Some("permessage-deflate; client_no_context_takeover"),
            params(false, true, 15, 15),
        ),
        // Our own limits: always for our direction, for the client's only when it allows.
        (
            &small,
            "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"),
            params(false, false, 10, 9),
        ),
        (
            &small,
            PMD,
            Some("permessage-deflate; server_max_window_bits=10"),
            params(false, false, 10, 15),
        ),
        (
            &small,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"),
            params(false, false, 10, 9),
        ),
        (
            &small,
            "permessage-deflate; server_max_window_bits=9",
            Some("permessage-deflate; server_max_window_bits=9"),
            params(false, false, 9, 15),
        ),
        // Invalid offers are skipped; the next acceptable one wins.
        (
            &p,
            "permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits=12, permessage-deflate",
            Some("permessage-deflate; client_max_window_bits=12"),
            params(false, false, 15, 12),
        ),
        (&p, "x-webkit-deflate-frame, PerMessage-Deflate", Some(PMD), params(false, false, 15, 15)),
        // A quoted value is the same token once unquoted (RFC 6455 §9.1).
        (
            &p,
            "permessage-deflate; server_max_window_bits=\"10\"",
            Some("permessage-deflate; server_max_window_bits=10"),
            params(false, false, 10, 15),
        ),
        (
            &p,
            "permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER",
            Some("permessage-deflate; server_no_context_takeover"),
            params(true, false, 15, 15),
        ),
    ];
    for (config, header, response, expected) in cases {
        let got = config.server_negotiate(&exts(header));
        let Some((answer, got)) = got else {
            panic!("{header:?} was declined");
        };
        assert_eq!(Some(show(&answer).as_str()), response, "{header:?}");
        assert_eq!(got, expected, "{header:?}");
    }
}

#[test]
fn server_declines_invalid_offers() {
    for header in [
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; foo",
        "x-webkit-deflate-frame",
    ] {
        assert_eq!(plain().server_negotiate(&exts(header)), None, "{header:?}");
    }
    // An empty value cannot come through the header grammar, but can be built by hand.
    let empty = ExtensionOffer::new(EXTENSION_NAME).with_param("client_max_window_bits", Some(""));
    assert_eq!(plain().server_negotiate(&[empty]), None);
}

#[test]
fn client_offers() {
    assert_eq!(
        show(&DeflateConfig::default().client_offer()),
        "permessage-deflate; server_no_context_takeover; client_max_window_bits"
    );
    assert_eq!(
        show(&plain().client_offer()),
        "permessage-deflate; client_max_window_bits"
    );
    let all = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 10,
        client_max_window_bits: 12,
        ..DeflateConfig::default()
    };
    assert_eq!(
        show(&all.client_offer()),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=12"
    );
}

#[test]
fn client_validates_the_response() {
    use NegotiationError as E;
    let lean = DeflateConfig::default();
    let p = plain();
    let mut limited = plain();
    limited.server_max_window_bits = 10;
    limited.client_max_window_bits = 12;
    let invalid = |param: &str, value: Option<&str>| E::InvalidValue {
        param: param.into(),
        value: value.map(Into::into),
    };
    type Case<'a> = (
        &'a DeflateConfig,
        &'a str,
        Result<Option<DeflateParams>, NegotiationError>,
    );
    let cases: Vec<Case> = vec![
        (&p, "x-other", Ok(None)),
        (
            &p,
            "permessage-deflate",
            Ok(Some(params(false, false, 15, 15))),
        ),
        (
            &lean,
            "permessage-deflate; server_no_context_takeover",
            Ok(Some(params(true, false, 15, 15))),
        ),
        (
            &lean,
            "permessage-deflate",
            Err(E::MissingServerNoContextTakeover),
        ),
        // The server may add restrictions we did not ask for.
        (
            &p,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            Ok(Some(params(true, true, 15, 15))),
        ),
        (
            &p,
            "permessage-deflate; server_max_window_bits=9",
            Ok(Some(params(false, false, 9, 15))),
        ),
        (
            &p,
            "permessage-deflate; client_max_window_bits=8",
            Ok(Some(params(false, false, 15, 8))),
        ),
        (
            &limited,
            "permessage-deflate; server_max_window_bits=10",
            Ok(Some(params(false, false, 10, 12))),
        ),
        (
            &limited,
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9",
            Ok(Some(params(false, false, 8, 9))),
        ),
        (
            &limited,
            "permessage-deflate; server_max_window_bits=11",
            Err(E::ServerWindowBitsNotHonoured {
                requested: 10,
                answered: Some(11),
            }),
        ),
        (
            &limited,
            "permessage-deflate",
            Err(E::ServerWindowBitsNotHonoured {
                requested: 10,
                answered: None,
            }),
        ),
        (
            &p,
            "permessage-deflate; client_max_window_bits",
            Err(invalid("client_max_window_bits", None)),
        ),
        (
            &p,
            "permessage-deflate; server_max_window_bits",
            Err(invalid("server_max_window_bits", None)),
        ),
        (
            &p,
            "permessage-deflate; server_max_window_bits=16",
            Err(invalid("server_max_window_bits", Some("16"))),
        ),
        (
            &p,
            "permessage-deflate; client_max_window_bits=7",
            Err(invalid("client_max_window_bits", Some("7"))),
        ),
        (
            &p,
            "permessage-deflate; server_no_context_takeover=yes",
            Err(invalid("server_no_context_takeover", Some("yes"))),
        ),
        (
            &p,
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            Err(E::DuplicateParameter("client_no_context_takeover".into())),
        ),
        (
            &p,
            "permessage-deflate; x",
            Err(E::UnknownParameter("x".into())),
        ),
        (
            &p,
            "permessage-deflate, permessage-deflate",
            Err(E::DuplicateExtension),
        ),
    ];
    for (config, header, expected) in cases {
        assert_eq!(
            config.client_accept_response(&exts(header)),
            expected,
            "{header:?}"
        );
    }
}

#[test]
fn both_sides_agree_for_every_combination() {
    let bits = [8, 9, 12, 15];
    let mut configs = Vec::new();
    for snct in [false, true] {
        for cnct in [false, true] {
            for smwb in bits {
                for cmwb in bits {
                    configs.push(DeflateConfig {
                        server_no_context_takeover: snct,
                        client_no_context_takeover: cnct,
                        server_max_window_bits: smwb,
                        client_max_window_bits: cmwb,
                        ..DeflateConfig::default()
                    });
                }
            }
        }
    }
    for client in &configs {
        for server in &configs {
            let (response, server_params) = server
                .server_negotiate(&[client.client_offer()])
                .expect("a client offer is always acceptable");
            let client_params = client
                .client_accept_response(std::slice::from_ref(&response))
                .unwrap_or_else(|e| panic!("{}: {e}", show(&response)))
                .expect("accepted");
            // The client may keep a smaller window than the server allowed (it announced it).
            assert_eq!(
                DeflateParams {
                    client_max_window_bits: server_params.client_max_window_bits,
                    ..client_params
                },
                server_params,
                "{client:?} / {server:?}"
            );
            assert!(client_params.client_max_window_bits <= server_params.client_max_window_bits);
            assert!(server_params.server_max_window_bits <= client.server_max_window_bits);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The codec against RFC 7692 §7.2.3
// ---------------------------------------------------------------------------------------------

fn codec(role: Role, params: DeflateParams) -> Codec {
    Codec::new(
        DeflateParams {
            compression_threshold: 0,
            ..params
        },
        role,
    )
}

fn inflate_message(codec: &mut Codec, pieces: &[&[u8]]) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for piece in pieces {
        codec.inflate(piece, &mut out, 1 << 20, None)?;
    }
    codec.finish_message(&mut out, 1 << 20, None)?;
    Ok(out)
}

use crate::proto::error::ProtocolError;

#[test]
fn rfc_7692_7_2_3_1_and_2_compressing_hello() {
    let mut c = codec(Role::Client, DeflateParams::default());
    assert_eq!(
        c.compress(b"Hello"),
        Some(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..])
    );
    // Context takeover: the second "Hello" refers back to the first.
    assert_eq!(
        c.compress(b"Hello"),
        Some(&[0xf2, 0x00, 0x11, 0x00, 0x00][..])
    );
    // client_no_context_takeover: the same bytes every time. ("Hello" itself would go out
    // uncompressed here: 7 compressed bytes are more than 5, and without context takeover
    // nothing is lost by sending the smaller form.)
    let mut c = codec(Role::Client, params(false, true, 15, 15));
    assert_eq!(c.compress(b"Hello"), None);
    let text = b"Hello, Hello, Hello, Hello";
    let first = c.compress(text).expect("compressible").to_vec();
    assert_eq!(c.compress(text), Some(&first[..]));
    let mut fresh = codec(Role::Client, DeflateParams::default());
    assert_eq!(fresh.compress(text), Some(&first[..]));
    assert_ne!(
        fresh.compress(text),
        Some(&first[..]),
        "with context takeover it shrinks"
    );
}

#[test]
fn data_after_a_final_block_is_invalid() {
    // "Hello" in a block with BFINAL set, then bytes past the end of the deflate stream:
    // they were inflated as a new stream, delivering garbage (found by an audit).
    let hello_final = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    for junk in [
        &b"JUNK"[..],
        &[0x00, 0x00],
        &[0x01],
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ] {
        let mut s = codec(Role::Server, DeflateParams::default());
        let message = [&hello_final[..], junk].concat();
        assert_eq!(
            inflate_message(&mut s, &[&message]),
            Err(ProtocolError::InvalidCompressedData),
            "{junk:02x?}"
        );
    }
}

#[test]
fn rfc_7692_7_2_3_decompressing_every_example() {
    let mut s = codec(Role::Server, DeflateParams::default());
    // §7.2.3.1, whole and in the 3 + 4 octet fragments.
    assert_eq!(
        inflate_message(&mut s, &[&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]]).unwrap(),
        b"Hello"
    );
    // §7.2.3.2: the second message uses the first one's window.
    assert_eq!(
        inflate_message(&mut s, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
        b"Hello"
    );
    let mut s = codec(Role::Server, DeflateParams::default());
    assert_eq!(
        inflate_message(&mut s, &[&[0xf2, 0x48, 0xcd], &[0xc9, 0xc9, 0x07, 0x00]]).unwrap(),
        b"Hello"
    );
    // §7.2.3.3: no compression (a stored block).
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(inflate_message(&mut s, &[&stored]).unwrap(), b"Hello");
    // §7.2.3.4: BFINAL set.
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(inflate_message(&mut s, &[&bfinal]).unwrap(), b"Hello");
    // The next message after a final block starts a fresh stream.
    assert_eq!(
        inflate_message(&mut s, &[&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]]).unwrap(),
        b"Hello"
    );
    // Without the 0x00 left of the empty stored block a sender must append (§7.2.1), and
    // byte by byte: the message and the next one still inflate.
    let pieces: Vec<&[u8]> = bfinal[..7].chunks(1).collect();
    assert_eq!(inflate_message(&mut s, &pieces).unwrap(), b"Hello");
    assert_eq!(
        inflate_message(&mut s, &[&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]]).unwrap(),
        b"Hello"
    );
    // §7.2.3.5: two blocks in one message.
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(inflate_message(&mut s, &[&two]).unwrap(), b"Hello");
    // And byte by byte.
    let pieces: Vec<&[u8]> = two.chunks(1).collect();
    assert_eq!(inflate_message(&mut s, &pieces).unwrap(), b"Hello");
    // §7.2.3.6: an empty message compresses to a single 0x00.
    assert_eq!(inflate_message(&mut s, &[&[0x00]]).unwrap(), b"");
}

#[test]
fn rfc_7692_7_2_3_3_level_0_is_the_stored_block_example() {
    let mut c = codec(
        Role::Server,
        DeflateParams {
            compression_level: 0,
            ..DeflateParams::default()
        },
    );
    assert_eq!(
        c.compress(b"Hello"),
        Some(&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00][..])
    );
}

#[test]
fn no_context_takeover_resets_the_decompressor() {
    // The second message of §7.2.3.2 needs the first one's window: without it, it fails.
    let mut s = codec(Role::Server, params(false, true, 15, 15));
    assert_eq!(
        inflate_message(&mut s, &[&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]]).unwrap(),
        b"Hello"
    );
    assert_eq!(
        inflate_message(&mut s, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]),
        Err(ProtocolError::InvalidCompressedData)
    );
}

#[test]
fn corrupt_data_is_1007() {
    let mut s = codec(Role::Server, DeflateParams::default());
    // BTYPE 11 is reserved.
    assert_eq!(
        inflate_message(&mut s, &[&[0xff, 0xff]]),
        Err(ProtocolError::InvalidCompressedData)
    );
    assert_eq!(ProtocolError::InvalidCompressedData.close_code().0, 1007);
}

#[test]
fn threshold_and_incompressible_data_go_out_uncompressed() {
    let mut c = Codec::new(params(true, false, 15, 15), Role::Server);
    assert_eq!(
        c.compress(b"short"),
        None,
        "under the 64-byte default threshold"
    );
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..1000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    assert_eq!(
        c.compress(&noise),
        None,
        "no context takeover: the smaller form wins"
    );
    assert!(c.compress(&[b'a'; 1000]).is_some());
}

// ---------------------------------------------------------------------------------------------
// Window bits 8: a 9-bit zlib-rs window never reaches back more than 256 bytes
// ---------------------------------------------------------------------------------------------

/// Reads a raw deflate stream and returns the largest match distance in it (a test-only
/// decoder in the manner of zlib's puff.c: it checks structure, not output).
fn max_distance(stream: &[u8]) -> usize {
    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
    }
    impl Bits<'_> {
        fn bits(&mut self, n: u32) -> Option<usize> {
            let mut v = 0;
            for i in 0..n {
                let byte = *self.data.get(self.pos / 8)?;
                v |= usize::from((byte >> (self.pos % 8)) & 1) << i;
                self.pos += 1;
            }
            Some(v)
        }
        fn decode(&mut self, (count, symbol): &(Vec<usize>, Vec<usize>)) -> Option<usize> {
            let (mut code, mut first, mut index) = (0, 0, 0);
            for &n in &count[1..16] {
                code |= self.bits(1)?;
                if code < first + n {
                    return Some(symbol[index + code - first]);
                }
                index += n;
                first = (first + n) << 1;
                code <<= 1;
            }
            None
        }
    }
    fn table(lengths: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let mut count = vec![0; 16];
        for &l in lengths {
            count[l] += 1;
        }
        count[0] = 0;
        let mut symbol: Vec<usize> = (0..lengths.len()).filter(|&s| lengths[s] != 0).collect();
        symbol.sort_by_key(|&s| lengths[s]);
        (count, symbol)
    }
    const LBASE: [usize; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEXT: [u32; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DBASE: [usize; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DEXT: [u32; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    let mut b = Bits {
        data: stream,
        pos: 0,
    };
    let mut max = 0;
    while let Some(header) = b.bits(3) {
        let (lit, dist) = match header >> 1 {
            0 => {
                b.pos = b.pos.div_ceil(8) * 8;
                let len = b.bits(16).expect("stored LEN");
                b.bits(16).expect("stored NLEN");
                b.pos += 8 * len;
                continue;
            }
            1 => {
                let mut l = vec![8; 144];
                l.extend([9; 112]);
                l.extend([7; 24]);
                l.extend([8; 8]);
                (table(&l), table(&[5; 30]))
            }
            2 => {
                let hlit = b.bits(5).expect("HLIT") + 257;
                let hdist = b.bits(5).expect("HDIST") + 1;
                let hclen = b.bits(4).expect("HCLEN") + 4;
                const ORDER: [usize; 19] = [
                    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                ];
                let mut cl = [0; 19];
                for &i in &ORDER[..hclen] {
                    cl[i] = b.bits(3).expect("code length");
                }
                let cl = table(&cl);
                let mut lengths = Vec::new();
                while lengths.len() < hlit + hdist {
                    let sym = b.decode(&cl).expect("length symbol");
                    let (value, repeat) = match sym {
                        0..=15 => (sym, 1),
                        16 => (
                            *lengths.last().expect("a previous length"),
                            3 + b.bits(2).expect("repeat"),
                        ),
                        17 => (0, 3 + b.bits(3).expect("repeat")),
                        _ => (0, 11 + b.bits(7).expect("repeat")),
                    };
                    lengths.extend(std::iter::repeat_n(value, repeat));
                }
                (table(&lengths[..hlit]), table(&lengths[hlit..]))
            }
            _ => panic!("reserved block type"),
        };
        loop {
            let sym = b.decode(&lit).expect("literal/length");
            if sym < 256 {
                continue;
            }
            if sym == 256 {
                break;
            }
            let i = sym - 257;
            b.bits(LEXT[i]).expect("length extra");
            let _ = LBASE[i];
            let d = b.decode(&dist).expect("distance");
            max = max.max(DBASE[d] + b.bits(DEXT[d]).expect("distance extra"));
        }
        if header & 1 == 1 {
            break;
        }
    }
    max
}

#[test]
fn window_9_output_fits_a_256_byte_window() {
    // Text whose repeats are 300 bytes apart, plus short-range ones: a 15-bit window uses
    // distances over 256; the 9-bit one we use for an agreed 8 must not.
    let block: Vec<u8> = (0..300u32)
        .map(|i| b"abcdefghij klmnop"[(i.wrapping_mul(7919) % 17) as usize])
        .collect();
    let data: Vec<u8> = block.repeat(40);
    let mut wide = 0;
    for level in 1..=9 {
        for (bits, takeover) in [(8, true), (8, false), (15, true)] {
            let p = DeflateParams {
                compression_level: level,
                ..params(!takeover, false, bits, 15)
            };
            let mut c = codec(Role::Server, p);
            let mut stream = Vec::new();
            for piece in data.chunks(1000) {
                stream.extend(c.compress(piece).expect("compressible"));
                stream.extend(TAIL_FOR_TESTS);
            }
            let d = max_distance(&stream);
            if bits == 8 {
                assert!(
                    d <= 256,
                    "level {level}: distance {d} with an agreed 8-bit window"
                );
            } else {
                wide = wide.max(d);
            }
        }
    }
    assert!(
        wide > 256,
        "the checker sees long distances when they exist ({wide})"
    );
}

const TAIL_FOR_TESTS: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
