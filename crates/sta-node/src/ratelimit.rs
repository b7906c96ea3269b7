//! Rate limits that hold: a token bucket with debt. A transfer takes its
//! bytes at once and, when that leaves the bucket in debt, waits until the
//! debt is repaid at the configured rate. Over any window the bytes moved are
//! at most `burst + rate × window`, which keeps a 10 s average within a few
//! percent of the limit. [`TokenBucket`] is sans-I/O (time passed in);
//! [`RateLimiter`] wraps it for tasks to share.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Burst allowance: a tenth of a second of traffic, at least one 16 KiB block.
fn burst_for(rate: u64) -> f64 {
    (rate as f64 / 10.0).max(16_384.0)
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u64, now: Instant) -> Self {
        TokenBucket {
            rate,
            tokens: burst_for(rate),
            last: now,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.tokens = self.tokens.min(burst_for(rate));
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + dt * self.rate as f64).min(burst_for(self.rate));
    }

    /// Takes `n` bytes; returns how long to wait before sending them.
    pub fn take(&mut self, n: u64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 || self.rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }
}

/// A limiter shared by tasks; `None` rate means unlimited.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Mutex<Option<TokenBucket>>,
}

impl RateLimiter {
    pub fn new(rate: Option<u64>) -> Self {
        RateLimiter {
            bucket: Mutex::new(rate.map(|r| TokenBucket::new(r, Instant::now()))),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(None)
    }

    pub fn rate(&self) -> Option<u64> {
        self.bucket
            .lock()
            .expect("rate limiter")
            .as_ref()
            .map(TokenBucket::rate)
    }

    pub fn set_rate(&self, rate: Option<u64>) {
        let mut b = self.bucket.lock().expect("rate limiter");
        let now = Instant::now();
        *b = match (rate, b.take()) {
            (None, _) => None,
            (Some(r), Some(mut old)) => {
                old.set_rate(r, now);
                Some(old)
            }
            (Some(r), None) => Some(TokenBucket::new(r, now)),
        };
    }

    /// Waits until `n` bytes may pass.
    pub async fn acquire(&self, n: u64) {
        let wait = {
            let mut b = self.bucket.lock().expect("rate limiter");
            match b.as_mut() {
                None => return,
                Some(b) => b.take(n, Instant::now()),
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends 16 KiB blocks as fast as the bucket allows for `secs` seconds of
    /// fake time and returns the bytes that went out.
    fn simulate(rate: u64, secs: u64) -> u64 {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(rate, t0);
        let mut now = t0;
        let end = t0 + Duration::from_secs(secs);
        let mut sent = 0;
        loop {
            let wait = b.take(16_384, now);
            now += wait;
            if now > end {
                return sent;
            }
            sent += 16_384;
        }
    }

    #[test]
    fn ten_second_average_is_within_two_percent() {
        for rate in [100_000u64, 500 << 10, 2 << 20, 50 << 20] {
            let sent = simulate(rate, 10);
            let ratio = sent as f64 / (rate as f64 * 10.0);
            assert!((0.98..=1.02).contains(&ratio), "rate {rate}: ratio {ratio}");
        }
    }

    #[test]
    fn idle_time_does_not_bank_more_than_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100_000, t0);
        let later = t0 + Duration::from_secs(100);
        // After 100 s idle only the 10 KiB-or-one-block burst is free.
        assert_eq!(b.take(16_384, later), Duration::ZERO);
        let w = b.take(100_000, later);
        assert!(
            w >= Duration::from_millis(990) && w <= Duration::from_millis(1010),
            "{w:?}"
        );
    }

    #[test]
    fn rate_changes_apply() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        b.take(16_384, t0);
        b.set_rate(1_000_000, t0);
        let w = b.take(1_000_000, t0);
        assert!(
            w > Duration::from_millis(900) && w < Duration::from_millis(1100),
            "{w:?}"
        );
    }
}
