//! Latency samples and the summary line every load generator prints.

use std::time::Duration;

#[derive(Default)]
pub struct Samples {
    micros: Vec<u32>,
    pub ok: u64,
    pub failures: u64,
    pub timeouts: u64,
}

impl Samples {
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(d.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    fn pct(sorted: &[u32], p: f64) -> u32 {
        if sorted.is_empty() {
            return 0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }

    /// Prints the human summary on stderr and returns the JSON result.
    pub fn report(mut self, what: &str, elapsed: Duration) -> serde_json::Value {
        self.micros.sort_unstable();
        let secs = elapsed.as_secs_f64();
        let rate = self.ok as f64 / secs;
        let (p50, p99, max) = (
            Self::pct(&self.micros, 0.50),
            Self::pct(&self.micros, 0.99),
            self.micros.last().copied().unwrap_or(0),
        );
        eprintln!(
            "{what}: {} announces answered in {secs:.1} s = {rate:.0}/s; latency p50 {p50} µs, p99 {p99} µs, max {max} µs; {} failures, {} timeouts",
            self.ok, self.failures, self.timeouts
        );
        serde_json::json!({
            "load": what,
            "announces": self.ok,
            "seconds": (secs * 100.0).round() / 100.0,
            "announces_per_sec": rate.round(),
            "p50_us": p50,
            "p99_us": p99,
            "max_us": max,
            "failures": self.failures,
            "timeouts": self.timeouts,
        })
    }
}
