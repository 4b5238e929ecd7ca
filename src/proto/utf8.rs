//! Streaming UTF-8 validation that fails at the first impossible byte.
//!
//! Text arrives in pieces: a frame split across reads, a message split across frames. The
//! validator keeps the (at most three) bytes of a code point that a piece ends inside, and
//! reports an error as soon as the bytes seen can no longer begin valid UTF-8, so a connection
//! fails with 1007 in the middle of a frame rather than at the end of the message
//! (Autobahn 6.4.x). ASCII is skipped 64 bytes at a time; the rest is `std::str::from_utf8`.

use std::str;

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
    partial: [u8; 4],
    partial_len: u8,
}

/// The text was not valid UTF-8.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Validates the next piece. Fails when the bytes so far cannot be the start of valid UTF-8;
    /// a code point cut off at the end of `piece` is fine and is completed by the next call.
    #[inline]
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = self.partial_len as usize;
            let need = utf8_width(self.partial[0]).saturating_sub(have);
            let take = need.min(piece.len());
            self.partial[have..have + take].copy_from_slice(&piece[..take]);
            let now = have + take;
            match str::from_utf8(&self.partial[..now]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    // Still incomplete: `piece` ran out.
                    self.partial_len = now as u8;
                    return Ok(());
                }
            }
            piece = &piece[take..];
        }
        let ascii = ascii_prefix_len(piece);
        if ascii == piece.len() {
            return Ok(());
        }
        piece = &piece[ascii..];
        match str::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let rest = &piece[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.partial_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the text: fails if it stopped inside a code point. Resets the validator.
    #[inline]
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.partial_len != 0;
        self.partial_len = 0;
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Forgets any partial code point.
    pub fn reset(&mut self) {
        self.partial_len = 0;
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

/// The length of the sequence a leading byte starts (1 for anything that cannot lead one;
/// `from_utf8` then reports it).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
