//! `SplitMix64`: the one small seeded pseudo-random generator vitals uses.
//!
//! vitals needs randomness only to spread things apart: jitter between replicas' checks, the
//! two random choices of the load balancer, synthetic data in measurements. None of it has to
//! be unpredictable, and all of it should be reproducible from a seed, so that a test that
//! depends on a sequence can pin it. splitmix64 (Steele, Lea and Flood, 2014; the seeder of
//! Java's `SplittableRandom` and of xoshiro) is a few lines, passes BigCrush, and accepts any
//! seed, zero included.
//!
//! What it is not: a cryptographic generator (never use it for keys, tokens or nonces), nor a
//! source of seeds. The caller chooses the seed (a constant in tests, a per-process value in
//! production); like the rest of the core, nothing here reads the clock or the OS.

/// splitmix64, seeded by the caller. The same seed always gives the same sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `n` of 0 counts as 1 (and gives 0). The bias of a modulo is below
    /// 2⁻³² for any `n` under 2³², far below anything a spread of requests could show.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)`, from the top 53 bits (all an `f64` mantissa holds), so 1.0 is
    /// never returned and a delay of `max * fraction` stays below `max`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // The first outputs for seed 0 of the reference implementation
        // (https://prng.di.unimi.it/splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn below_and_fraction_stay_in_range() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..1000 {
            assert!(rng.below(3) < 3);
            let f = rng.fraction();
            assert!((0.0..1.0).contains(&f));
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }
}
