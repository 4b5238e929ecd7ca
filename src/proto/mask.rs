//! Masking (RFC 6455 §5.3): XOR with a 4-byte key, in place, resumable at any key offset.
//!
//! Payloads arrive split across reads, so the function takes the offset into the key at which
//! `buf` starts and returns the offset at which the next piece starts. The bulk is done 64 bytes
//! at a time as `u64` words, which the compiler turns into vector XORs without `unsafe`.

/// XORs `buf` with `key`, where `buf[0]` lines up with `key[offset % 4]`.
///
/// Returns the key offset for the byte after `buf`, so a payload can be masked piece by piece:
///
/// ```
/// use rfc6455::proto::apply_mask;
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut whole = *b"Hello, world";
/// let mut split = whole;
/// apply_mask(&mut whole, key, 0);
/// let next = apply_mask(&mut split[..5], key, 0);
/// apply_mask(&mut split[5..], key, next);
/// assert_eq!(whole, split);
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let next = (offset + buf.len()) & 3;
    if buf.len() < 128 {
        mask_words(buf, key, offset);
        return next;
    }
    // Unaligned vector loads and stores that straddle a cache line cost extra; payloads
    // usually start at an odd offset (after a 2-14 byte header), so do the few bytes before
    // the next 64-byte boundary first and the bulk from the boundary on.
    let head = buf.as_ptr().align_offset(64).min(buf.len());
    let (head, body) = buf.split_at_mut(head);
    mask_words(head, key, offset);
    mask_words(body, key, offset + head.len());
    next
}

/// [`apply_mask`] without the alignment step.
#[inline]
fn mask_words(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as a word whose first byte in memory is `key[offset]`: a rotation, whose
    // direction depends on which end of the word the first byte sits at.
    let shift = 8 * (offset & 3) as u32;
    let key32 = if cfg!(target_endian = "little") {
        u32::from_ne_bytes(key).rotate_right(shift)
    } else {
        u32::from_ne_bytes(key).rotate_left(shift)
    };
    // 64, 8 and 4 are multiples of 4, so every piece below starts at the rotated key's first
    // byte. XOR of a word read with `from_ne_bytes` is XOR byte by byte.
    let key64 = u64::from(key32) | (u64::from(key32) << 32);
    let (chunks, tail) = buf.as_chunks_mut::<64>();
    for chunk in chunks {
        // Eight u64 XORs with one key: the compiler makes them 16-byte vector XORs on the
        // default target and one 64-byte XOR with AVX-512. (Sixteen u32 words here made
        // LLVM vectorise across chunks with gather/scatter under `-C target-cpu=native`:
        // five times slower.)
        for word in chunk.as_chunks_mut::<8>().0 {
            *word = (u64::from_ne_bytes(*word) ^ key64).to_ne_bytes();
        }
    }
    // The up to 63 bytes left: at most 7 u64 XORs and 7 byte XORs, not a byte loop.
    let (words, bytes) = tail.as_chunks_mut::<8>();
    for word in words {
        *word = (u64::from_ne_bytes(*word) ^ key64).to_ne_bytes();
    }
    let key = key32.to_ne_bytes();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Appends `src` to `out` masked with `key` (from `key[0]`): what a client does with every
/// payload it sends.
///
/// From 4 to 16 KiB it copies, then masks in place: source and copy fit in a core's L1 cache,
/// where the copy (the platform's `memcpy`) and the vector XOR pass are faster than one pass
/// that does both (`mask_copy` in benches/codec.rs, on a 48 KiB L1: 8 KiB 180 against 196 ns,
/// 16 KiB 340 against 408; level at 4 KiB). Otherwise it does both in one pass, each byte
/// read and written once: below 4 KiB that is a little faster (2 KiB 52.8 against 55.3 ns),
/// and from 32 KiB on the second pass misses the cache (64 KiB 2.23 against 3.36 µs). The
/// copy also wins at 24 KiB here; the switch stops at 16 KiB for cores with a 32 KiB L1.
///
/// ```
/// use rfc6455::proto::{apply_mask, extend_masked};
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut out = b"header".to_vec();
/// extend_masked(&mut out, b"Hello", key);
/// apply_mask(&mut out[6..], key, 0);
/// assert_eq!(out, b"headerHello");
/// ```
pub fn extend_masked(out: &mut Vec<u8>, src: &[u8], key: [u8; 4]) {
    if (4 << 10..=16 << 10).contains(&src.len()) {
        let at = out.len();
        out.extend_from_slice(src);
        apply_mask(&mut out[at..], key, 0);
        return;
    }
    let key64 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let (words, tail) = src.as_chunks::<8>();
    out.reserve(src.len());
    // `extend` over an iterator of known length writes straight into the reserved room;
    // the compiler vectorises the word XORs.
    out.extend(
        words
            .iter()
            .flat_map(|w| (u64::from_ne_bytes(*w) ^ key64).to_ne_bytes()),
    );
    // Words are 8 bytes, so the tail starts at key[0] again.
    out.extend(tail.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_the_definition_at_every_length_offset_and_alignment() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let source: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        // Starts across a whole cache line, so the aligned bulk begins at every head length.
        for start in 0..70 {
            for len in [0, 1, 3, 4, 5, 63, 64, 65, 127, 128, 200, 291] {
                for offset in 0..4 {
                    // Masked in place inside the whole buffer: a copy would lose the alignment.
                    let mut fast = source.clone();
                    let mut slow = source.clone();
                    let next = apply_mask(&mut fast[start..start + len], key, offset);
                    naive(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                    assert_eq!(next, (offset + len) % 4);
                }
            }
        }
    }

    #[test]
    fn extend_masked_is_copy_then_mask_at_every_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let source: Vec<u8> = (0..20_000u32).map(|i| (i * 13 + 1) as u8).collect();
        // Every length to 300, and around where it switches to copy-then-mask and back.
        let around = [4095, 4096, 4097, 9999, 16383, 16384, 16385, 20_000];
        for len in (0..300).chain(around) {
            let mut fused = vec![0xEE; len % 5];
            let mut slow = fused.clone();
            extend_masked(&mut fused, &source[..len], key);
            let start = slow.len();
            slow.extend_from_slice(&source[..len]);
            naive(&mut slow[start..], key, 0);
            assert_eq!(fused, slow, "len {len}");
        }
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }
}
