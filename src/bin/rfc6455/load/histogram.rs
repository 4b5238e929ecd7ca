//! A log-linear latency histogram in the style of HdrHistogram: fixed memory, no allocation
//! per sample, bounded relative error.
//!
//! Values below 2^[`SUB_BITS`] get a bucket each. Above that, every power of two
//! `[2^e, 2^(e+1))` is cut into 2^[`SUB_BITS`] equal buckets, so a bucket's width is at most
//! 1/128 of its lower bound: any value read back is within 0.8% of a recorded one.
//! The whole `u64` range fits in 7,424 buckets (58 KiB).

/// Linear sub-buckets per power of two, as bits.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Buckets for exact values `0..2*SUB`, then `SUB` for each exponent from `SUB_BITS + 1` to 63.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of values (here: nanoseconds) in log-linear buckets.
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < (2 * SUB) as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // > SUB_BITS
    let top = (v >> (e - SUB_BITS)) as usize; // in SUB..2*SUB
    (e - SUB_BITS) as usize * SUB + top
}

/// The largest value that lands in bucket `i`.
fn highest(i: usize) -> u64 {
    if i < 2 * SUB {
        return i as u64;
    }
    let shift = (i / SUB - 1) as u32; // e - SUB_BITS
    let top = (SUB + i % SUB) as u128;
    // The last bucket ends at 2^64 - 1: compute in u128 so its end does not overflow.
    let end = ((top + 1) << shift) - 1;
    u64::try_from(end).unwrap_or(u64::MAX)
}

impl Histogram {
    /// Adds one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value recorded (exact), 0 when empty.
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// The arithmetic mean, 0 when empty.
    pub fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the highest value of the bucket holding the
    /// `ceil(q * count)`-th smallest sample, capped at the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        assert_eq!(BUCKETS, 7424);
        let mut last = 0;
        for v in (0..1_000_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= last || v > 1_000_000);
            last = i;
            assert!(highest(i) >= v, "{v}: bucket {i} ends at {}", highest(i));
            // Relative error bound: the bucket is at most v/128 wide.
            assert!(highest(i) - v <= v / SUB as u64, "{v}: {}", highest(i));
        }
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(highest(i)), i, "bucket {i}");
            assert_eq!(index(highest(i) + 1), i + 1, "bucket {i}");
        }
        assert_eq!(highest(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!(
            (5_000_000..=5_000_000 + 5_000_000 / 128).contains(&p50),
            "{p50}"
        );
        let p99 = h.quantile(0.99);
        assert!(
            (9_900_000..=9_900_000 + 9_900_000 / 128).contains(&p99),
            "{p99}"
        );
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.max(), 10_000_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.mean(), 5_000_500);
        let mut g = Histogram::default();
        g.record(1);
        g.merge(&h);
        assert_eq!(g.count(), 10_001);
        assert_eq!(g.min(), 1);
    }
}
