//! Streaming UTF-8 validation that fails at the first impossible byte.
//!
//! Text arrives in pieces: a frame split across reads, a message split across frames. The
//! validator carries the state of a code point that a piece ends inside, and reports an error
//! as soon as the bytes seen can no longer begin valid UTF-8, so a connection fails with 1007
//! in the middle of a frame rather than at the end of the message (Autobahn 6.4.x).
//!
//! ASCII is skipped a word or a 64-byte block at a time. Everything else runs through a
//! shift-based DFA: one table row per byte value holds every state's successor, packed as
//! 6-bit shift amounts in a `u64`, so a byte costs one load that does not depend on the
//! state and one shift that does. That is about 1.5-2x `str::from_utf8` on mixed text.

/// DFA states, as the bit offset (state × 6) of their successor in a [`TABLE`] row.
const ACCEPT: u64 = 0;
const REJECT: u64 = 6;
/// Expecting 1, 2 or 3 more continuation bytes (80-BF).
const CONT1: u64 = 12;
const CONT2: u64 = 18;
const CONT3: u64 = 24;
/// After E0: A0-BF (no overlong 3-byte forms). After ED: 80-9F (no surrogates).
const AFTER_E0: u64 = 30;
const AFTER_ED: u64 = 36;
/// After F0: 90-BF (no overlong 4-byte forms). After F4: 80-8F (nothing above U+10FFFF).
const AFTER_F0: u64 = 42;
const AFTER_F4: u64 = 48;

/// `next` if `ok`, else the dead state.
const fn or_reject(ok: bool, next: u64) -> u64 {
    if ok {
        next
    } else {
        REJECT
    }
}

/// Every state's successor on byte `b` (RFC 3629 §4), each at its state's offset.
const fn row(b: u8) -> u64 {
    let from_accept = match b {
        0x00..=0x7F => ACCEPT,
        0xC2..=0xDF => CONT1,
        0xE0 => AFTER_E0,
        0xED => AFTER_ED,
        0xE1..=0xEF => CONT2,
        0xF0 => AFTER_F0,
        0xF1..=0xF3 => CONT3,
        0xF4 => AFTER_F4,
        _ => REJECT, // 80-C1 cannot start a character, F5-FF never appear
    };
    let cont = matches!(b, 0x80..=0xBF);
    (from_accept << ACCEPT)
        | (REJECT << REJECT)
        | (or_reject(cont, ACCEPT) << CONT1)
        | (or_reject(cont, CONT1) << CONT2)
        | (or_reject(cont, CONT2) << CONT3)
        | (or_reject(matches!(b, 0xA0..=0xBF), CONT1) << AFTER_E0)
        | (or_reject(matches!(b, 0x80..=0x9F), CONT1) << AFTER_ED)
        | (or_reject(matches!(b, 0x90..=0xBF), CONT2) << AFTER_F0)
        | (or_reject(matches!(b, 0x80..=0x8F), CONT2) << AFTER_F4)
}

const TABLE: [u64; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = row(b as u8);
        b += 1;
    }
    table
};

/// Runs the DFA over `bytes` from `state`; returns the state after them.
///
/// A byte's step depends on the one before, so one chain runs at one shift per byte. Texts of
/// 64 bytes or more are cut in two where a character starts and the halves run as two
/// independent chains, which the CPU overlaps: the text is valid if the first half ends on a
/// character boundary and the second is valid from a fresh start.
fn run(state: u64, bytes: &[u8]) -> u64 {
    if bytes.len() < 64 {
        // Short (the caller skipped any leading ASCII): one plain chain.
        return run_bytes(state, bytes);
    }
    // A character starts at a byte that is not a continuation byte (80-BF); valid text
    // has one within four bytes of anywhere.
    let half = bytes.len() / 2;
    if let Some(offset) = bytes[half..]
        .iter()
        .take(4)
        .position(|&b| !(0x80..=0xBF).contains(&b))
    {
        let (first, second) = bytes.split_at(half + offset);
        let (first_chunks, first_tail) = first.as_chunks::<16>();
        let (second_chunks, second_tail) = second.as_chunks::<16>();
        let (mut s1, mut s2) = (state, ACCEPT);
        for (c1, c2) in first_chunks.iter().zip(second_chunks) {
            s1 = run_chunk(s1, c1);
            s2 = run_chunk(s2, c2);
            if s1 == REJECT || s2 == REJECT {
                return REJECT;
            }
        }
        let n = first_chunks.len().min(second_chunks.len());
        s1 = run_chunks(s1, &first_chunks[n..], first_tail);
        s2 = run_chunks(s2, &second_chunks[n..], second_tail);
        return if s1 == ACCEPT { s2 } else { REJECT };
    }
    let (chunks, tail) = bytes.as_chunks::<16>();
    run_chunks(state, chunks, tail)
}

/// One chain over whole chunks, then a tail.
fn run_chunks(mut state: u64, chunks: &[[u8; 16]], tail: &[u8]) -> u64 {
    for chunk in chunks {
        state = run_chunk(state, chunk);
        if state == REJECT {
            return REJECT;
        }
    }
    run_bytes(state, tail)
}

/// 16 bytes: skipped when the state is between characters and they are all ASCII.
#[inline(always)]
fn run_chunk(state: u64, chunk: &[u8; 16]) -> u64 {
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    if state == ACCEPT {
        let any = chunk
            .as_chunks::<8>()
            .0
            .iter()
            .fold(0, |any, w| any | u64::from_ne_bytes(*w));
        if any & HIGH_BITS == 0 {
            return ACCEPT;
        }
    }
    run_bytes(state, chunk)
}

#[inline(always)]
fn run_bytes(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        // `wrapping_shr` shifts by the low 6 bits only: the successor's offset lands in the
        // low 6 bits of the shifted row; the bits above are ignored by the next shift and
        // cleared at the end.
        state = TABLE[usize::from(b)].wrapping_shr(state as u32);
    }
    state & 63
}

/// Validates UTF-8 fed in arbitrary pieces.
///
/// ```
/// use rfc6455::proto::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// // "€" is E2 82 AC; split across two pieces it is still fine.
/// assert!(v.feed(b"price: \xE2\x82").is_ok());
/// assert!(v.feed(b"\xAC").is_ok());
/// assert!(v.finish().is_ok());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    /// The DFA state (a bit offset, see `ACCEPT`): where the last piece left off.
    state: u8,
}

/// The text was not valid UTF-8.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Validates the next piece. Fails when the bytes so far cannot be the start of valid UTF-8;
    /// a code point cut off at the end of `piece` is fine and is completed by the next call.
    #[inline]
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        let state = u64::from(self.state);
        if state == ACCEPT {
            let ascii = ascii_prefix_len(piece);
            if ascii == piece.len() {
                return Ok(());
            }
            piece = &piece[ascii..];
        }
        let state = run(state, piece);
        self.state = state as u8;
        if state == REJECT {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Ends the text: fails if it stopped inside a code point (or was invalid). Resets the
    /// validator.
    #[inline]
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = u64::from(self.state) == ACCEPT;
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Forgets any partial code point.
    pub fn reset(&mut self) {
        self.state = ACCEPT as u8;
    }
}

/// How many bytes at the start of `bytes` are ASCII: all of them, or a count that may stop
/// short of the first non-ASCII byte (by up to 63 bytes), from where `str::from_utf8` goes on.
///
/// Whole 64-byte blocks are ORed together as eight `u64` words, which the compiler
/// vectorises; the rest is ORed a word at a time, and its last few bytes are checked with a
/// word that overlaps the one before. So a 16-byte ASCII text is two loads and one test,
/// where `str::from_utf8` would walk it byte by byte.
#[inline]
fn ascii_prefix_len(bytes: &[u8]) -> usize {
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    let word = |w: &[u8; 8]| u64::from_ne_bytes(*w);
    let (blocks, rest) = bytes.as_chunks::<64>();
    let mut n = 0;
    for block in blocks {
        let any = block
            .as_chunks::<8>()
            .0
            .iter()
            .fold(0, |any, w| any | word(w));
        if any & HIGH_BITS != 0 {
            return n;
        }
        n += 64;
    }
    let (words, tail) = rest.as_chunks::<8>();
    let mut any = words.iter().fold(0, |any, w| any | word(w));
    if !tail.is_empty() {
        any |= match bytes.last_chunk::<8>() {
            Some(last) => word(last),
            // Shorter than a word: every byte's top bit lands on bit 7, one of `HIGH_BITS`.
            None => tail.iter().fold(0, |any, &b| any | u64::from(b)),
        };
    }
    if any & HIGH_BITS != 0 {
        n
    } else {
        bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str;

    fn validate_split(bytes: &[u8], at: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &cut in at {
            v.feed(&bytes[start..cut])?;
            start = cut;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn agrees_with_std_for_every_two_way_and_one_byte_split() {
        let cases: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            "\u{10FFFF}\u{FFFF}\u{800}\u{80}".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xf0\x8f\xbf\xbf",
            b"\xed\xbf\xbf",
            b"\xf8\x88\x80\x80\x80",
            b"abc\xe2\x82",
            b"\x80",
        ];
        for bytes in cases {
            let expected = str::from_utf8(bytes).is_ok();
            for cut in 0..=bytes.len() {
                assert_eq!(
                    validate_split(bytes, &[cut]).is_ok(),
                    expected,
                    "{bytes:x?} cut at {cut}"
                );
            }
            let every: Vec<usize> = (1..bytes.len()).collect();
            assert_eq!(
                validate_split(bytes, &every).is_ok(),
                expected,
                "{bytes:x?} byte by byte"
            );
        }
    }

    #[test]
    fn short_texts_with_one_high_byte_anywhere_agree_with_std() {
        // Lengths around the word and block sizes, where the word-at-a-time ASCII check and
        // its overlapping last word decide alone.
        for len in 0..140 {
            let ascii = vec![b'x'; len];
            assert!(validate_split(&ascii, &[]).is_ok(), "ascii len {len}");
            for at in 0..len {
                for high in [0x80, 0xC3, 0xE2, 0xF0, 0xFF] {
                    let mut bytes = ascii.clone();
                    bytes[at] = high;
                    assert_eq!(
                        validate_split(&bytes, &[]).is_ok(),
                        str::from_utf8(&bytes).is_ok(),
                        "len {len}, {high:#x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn ascii_blocks_around_non_ascii_at_every_position() {
        let base = vec![b'a'; 200];
        for at in 0..base.len() - 1 {
            let mut good = base.clone();
            good[at..at + 2].copy_from_slice("é".as_bytes());
            assert!(validate_split(&good, &[]).is_ok(), "é at {at}");
            assert!(
                validate_split(&good, &[at + 1]).is_ok(),
                "é at {at}, cut inside"
            );
            let mut bad = base.clone();
            bad[at] = 0xC3; // a lead byte followed by ASCII
            assert_eq!(validate_split(&bad, &[]), Err(InvalidUtf8), "bad at {at}");
            let mut stray = base.clone();
            stray[at] = 0x80;
            assert_eq!(
                validate_split(&stray, &[]),
                Err(InvalidUtf8),
                "stray at {at}"
            );
        }
        assert_eq!(ascii_prefix_len(&base), 200);
        let mut late = base.clone();
        late[199] = 0xC3;
        assert_eq!(
            ascii_prefix_len(&late),
            192,
            "stops at the block, not the byte"
        );
    }

    /// Every sequence of up to four bytes whose first two bytes are anything and whose last
    /// two cover each class of byte: the DFA accepts exactly what std accepts, and rejects
    /// exactly the prefixes std says no continuation can repair.
    #[test]
    fn the_dfa_agrees_with_std_on_every_short_sequence() {
        const LATER: [u8; 10] = [0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC2, 0xF4];
        let check = |bytes: &[u8]| {
            let state = run(ACCEPT, bytes);
            let (valid, dead) = match str::from_utf8(bytes) {
                Ok(_) => (true, false),
                Err(e) => (false, e.error_len().is_some()),
            };
            assert_eq!(state == ACCEPT, valid, "{bytes:02x?}");
            assert_eq!(state == REJECT, dead, "{bytes:02x?}");
        };
        for a in 0..=255u8 {
            check(&[a]);
            for b in 0..=255u8 {
                check(&[a, b]);
                for c in LATER {
                    check(&[a, b, c]);
                    for d in LATER {
                        check(&[a, b, c, d]);
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_split_agree_with_std(
            pieces in proptest::collection::vec(
                prop_oneof![
                    "\\PC{0,12}".prop_map(String::into_bytes),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ],
                0..8,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let bytes = pieces.concat();
            let mut at: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            at.sort_unstable();
            prop_assert_eq!(validate_split(&bytes, &at).is_ok(), str::from_utf8(&bytes).is_ok());
        }
    }

    #[test]
    fn fails_at_the_first_impossible_byte_not_at_the_end() {
        // F4 90 is already beyond U+10FFFF: the validator must not wait for more bytes.
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"ok \xF4").is_ok());
        assert_eq!(v.feed(b"\x90"), Err(InvalidUtf8));
        // A surrogate's second byte.
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"\xED").is_ok());
        assert_eq!(v.feed(b"\xA0"), Err(InvalidUtf8));
    }
}
