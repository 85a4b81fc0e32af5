//! Key choice: where each connection's keys come from (uniform random, or a
//! sequential walk for the prefill). Kept apart from encoding because it is
//! the only per-request computation besides patching the digits.

/// SplitMix64: tiny, fast, and good enough to pick keys uniformly.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-24
    /// for any keyspace up to 10^12).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Where a connection's keys come from.
#[derive(Clone, Debug)]
pub enum Keys {
    /// Uniform over `0..n`.
    Random { rng: Rng, n: u64 },
    /// `next`, `next + 1`, ...: the prefill phase walks each connection's slice of the keyspace.
    Seq { next: u64 },
}

impl Keys {
    pub fn next(&mut self) -> u64 {
        match self {
            Keys::Random { rng, n } => rng.below(*n),
            Keys::Seq { next } => {
                *next += 1;
                *next - 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::share;

    #[test]
    fn keys_are_uniform_and_in_range() {
        let mut rng = Rng(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let k = rng.below(10);
            counts[k as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
        assert_eq!((0..4).map(|i| share(10, 4, i)).collect::<Vec<_>>(), [3, 3, 2, 2]);
    }
}
