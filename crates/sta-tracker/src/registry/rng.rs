//! A small seeded generator for peer sampling. The registry takes its seed
//! from the caller, so tests are deterministic and the registry reads no
//! entropy source itself. Not for secrets: connection ids use SipHash keys.

/// SplitMix64: tiny, fast, and good enough to pick peers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; `n` must be at least 1.
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: no modulo bias worth measuring for n << 2^64.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A step in `[1, n)` sharing no factor with `n`, so that
    /// `start + k * step (mod n)` visits every position once.
    pub fn coprime_stride(&mut self, n: usize) -> usize {
        if n <= 2 {
            return 1;
        }
        for _ in 0..8 {
            let s = 1 + self.below(n - 1);
            if gcd(s, n) == 1 {
                return s;
            }
        }
        1
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stride_visits_everything_once() {
        let mut r = Rng::new(42);
        for n in 1..200 {
            let s = r.coprime_stride(n);
            let start = r.below(n);
            let mut seen = vec![false; n];
            for k in 0..n {
                seen[(start + k * s) % n] = true;
            }
            assert!(seen.iter().all(|&b| b), "n={n} stride={s}");
        }
    }
}
