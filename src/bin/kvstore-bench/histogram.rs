//! Latency statistics: a fixed-size log-linear histogram (~0.8% precision,
//! nothing allocated while recording) and its percentile summary.

use std::time::Duration;

/// Values below `2 * SUB` get a bucket each; above, every power of two is cut
/// into `SUB` buckets, so a bucket is at most 1/128 (0.8%) of its values.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB as usize;

/// Log-linear histogram of nanoseconds (HdrHistogram's layout, simplified).
///
/// Nanoseconds rather than microseconds: loopback latencies are often 10 to
/// 50 µs, where whole microseconds would be a 2–10% error. All buckets
/// exist from the start (58 KiB), so recording never allocates.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    pub total: u64,
    sum: u128,
    max: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, sum: 0, max: 0 }
    }

    fn bucket(v: u64) -> usize {
        if v < 2 * SUB {
            v as usize
        } else {
            let shift = 63 - v.leading_zeros() - SUB_BITS;
            ((u64::from(shift) + 1) * SUB + ((v >> shift) - SUB)) as usize
        }
    }

    /// The largest value that falls in bucket `i`.
    fn bucket_high(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB {
            i
        } else {
            let shift = i / SUB - 1;
            let sub = i % SUB + SUB;
            (((u128::from(sub) + 1) << shift) - 1) as u64
        }
    }

    /// Records `n` samples of value `v`.
    fn record_n(&mut self, v: u64, n: u64) {
        self.counts[Histogram::bucket(v)] += n;
        self.total += n;
        self.sum += u128::from(v) * u128::from(n);
        self.max = self.max.max(v);
    }

    pub fn record_duration(&mut self, d: Duration, n: u64) {
        self.record_n(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), n);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// The value below or at which a fraction `q` of the samples fall
    /// (the highest value of that bucket, never above the true maximum).
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::bucket_high(i).min(self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    pub fn summary(&self) -> Latency {
        let ms = |ns: u64| ns as f64 / 1e6;
        Latency {
            mean: self.mean() / 1e6,
            p50: ms(self.quantile(0.50)),
            p99: ms(self.quantile(0.99)),
            p999: ms(self.quantile(0.999)),
            max: ms(self.max),
        }
    }
}

/// Latency percentiles in milliseconds.
pub struct Latency {
    mean: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    pub fn human(&self) -> String {
        format!(
            "mean {:.3}  p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            self.mean, self.p50, self.p99, self.p999, self.max
        )
    }
    pub fn json(&self) -> String {
        format!(
            "{{\"mean\":{:.4},\"p50\":{:.4},\"p99\":{:.4},\"p999\":{:.4},\"max\":{:.4}}}",
            self.mean, self.p50, self.p99, self.p999, self.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_contiguous_and_tight() {
        let mut prev_high = None;
        for i in 0..BUCKETS {
            let high = Histogram::bucket_high(i);
            let low = prev_high.map_or(0, |h: u64| h + 1);
            assert_eq!(Histogram::bucket(low), i);
            assert_eq!(Histogram::bucket(high), i);
            assert!((high - low) as f64 <= low as f64 / 128.0 + 1.0, "bucket {i}: {low}..={high}");
            prev_high = Some(high);
        }
        assert_eq!(prev_high, Some(u64::MAX));
    }

    #[test]
    fn histogram_percentiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for us in 1..=10_000u64 {
            h.record_n(us * 1000, 1);
        }
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.01;
        assert!(close(h.quantile(0.5), 5_000_000), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.99), 9_900_000), "{}", h.quantile(0.99));
        assert!(close(h.quantile(0.999), 9_990_000), "{}", h.quantile(0.999));
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.max, 10_000_000);
        assert!((h.mean() - 5_000_500.0).abs() < 1.0);

        // Small values are exact; a merged histogram answers for both.
        let mut a = Histogram::new();
        a.record_n(100, 99);
        let mut b = Histogram::new();
        b.record_n(200, 1);
        a.merge(&b);
        assert_eq!(a.quantile(0.5), 100);
        assert_eq!(a.quantile(0.99), 100);
        assert_eq!(a.quantile(0.999), 200);
        assert_eq!(a.total, 100);
    }
}
