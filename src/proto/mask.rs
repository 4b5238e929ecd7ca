//! Masking (RFC 6455 §5.3): XOR with a 4-byte key, in place, resumable at any key offset.
//!
//! Payloads arrive split across reads, so the function takes the offset into the key at which
//! `buf` starts and returns the offset at which the next piece starts. The bulk is done 64 bytes
//! at a time as `u128` words, which the compiler turns into vector XORs without `unsafe`.

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
    let offset = offset & 3;
    let key = [
        key[offset],
        key[(offset + 1) & 3],
        key[(offset + 2) & 3],
        key[(offset + 3) & 3],
    ];
    // The key repeated over a word. Both halves are equal, so this is the same on either
    // endianness, and XOR with a word read by `from_ne_bytes` is XOR byte by byte.
    let key32 = u64::from(u32::from_ne_bytes(key));
    let key64 = key32 | (key32 << 32);
    let key128 = u128::from(key64) | (u128::from(key64) << 64);
    let (chunks, tail) = buf.as_chunks_mut::<64>();
    let key_block = key128.to_ne_bytes();
    for chunk in chunks {
        for block in chunk.as_chunks_mut::<16>().0 {
            for (b, k) in block.iter_mut().zip(key_block) {
                *b ^= k;
            }
        }
    }
    // 64 and 8 are multiples of 4, so each piece starts at key offset 0 of the rotated key. The
    // up to 63 bytes left take at most 7 word XORs and 7 byte XORs rather than a byte loop.
    let (words, bytes) = tail.as_chunks_mut::<8>();
    for word in words {
        *word = (u64::from_ne_bytes(*word) ^ key64).to_ne_bytes();
    }
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
    (offset + buf.len()) & 3
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
        let source: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in [0, 1, 3, 4, 5, 63, 64, 65, 127, 128, 200, 291] {
                for offset in 0..4 {
                    let mut fast = source[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    let next = apply_mask(&mut fast, key, offset);
                    naive(&mut slow, key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                    assert_eq!(next, (offset + len) % 4);
                }
            }
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
