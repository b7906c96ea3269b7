//! Transfer rates from byte counters sampled once a second: a rolling
//! average for tables and the choker, and a minute of history for sparklines.

use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RateMeter {
    window: usize,
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// A meter averaging over the last `window` samples (one per tick).
    pub fn new(window: usize) -> Self {
        RateMeter {
            window: window.max(2),
            samples: VecDeque::new(),
        }
    }

    /// Records the cumulative byte count at `now`.
    pub fn sample(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        while self.samples.len() > self.window {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window.
    pub fn rate(&self) -> u64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                ((b1 - b0) as f64 / t1.duration_since(*t0).as_secs_f64()) as u64
            }
            _ => 0,
        }
    }
}

/// Per-second rates of the last minute.
#[derive(Debug, Clone, Default)]
pub struct History {
    last_total: Option<u64>,
    points: VecDeque<u64>,
}

impl History {
    pub const LEN: usize = 60;

    pub fn sample(&mut self, total: u64) {
        let delta = self.last_total.map_or(0, |l| total.saturating_sub(l));
        self.last_total = Some(total);
        self.points.push_back(delta);
        while self.points.len() > Self::LEN {
            self.points.pop_front();
        }
    }

    pub fn points(&self) -> Vec<u64> {
        self.points.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rolling_rate() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(5);
        for i in 0..10u64 {
            m.sample(t0 + Duration::from_secs(i), i * 1000);
        }
        assert_eq!(m.rate(), 1000);
        m.sample(t0 + Duration::from_secs(10), 9000);
        assert_eq!(m.rate(), 750);
    }

    #[test]
    fn history_keeps_a_minute() {
        let mut h = History::default();
        for i in 0..100u64 {
            h.sample(i * 10);
        }
        assert_eq!(h.points().len(), 60);
        assert!(h.points().iter().all(|p| *p == 10));
    }
}
