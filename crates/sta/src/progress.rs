//! What a node shows people about its progress besides the prompt and the
//! dashboard: progress bars on a terminal (`--no-prompt`), and concise lines
//! in the log when stdout is not a terminal (stdout then carries JSON only).

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sta_node::snapshot::{TorrentSnapshot, TorrentState};
use sta_proto::units::{format_bytes, format_rate};

/// Seconds between concise progress lines in the log.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The log target of concise progress lines (shown by default, off with -q).
pub const PROGRESS_TARGET: &str = "sta::progress";

/// Concise progress lines in the log, at most one per torrent every `every`,
/// and at once when a torrent changes state.
pub struct ConciseLog {
    every: Duration,
    last: Option<Instant>,
    states: Vec<TorrentState>,
}

impl ConciseLog {
    pub fn new(every: Duration) -> Self {
        ConciseLog {
            every,
            last: None,
            states: Vec::new(),
        }
    }

    /// Whether a line is due at `now` for these snapshots.
    fn due(&mut self, now: Instant, snaps: &[TorrentSnapshot]) -> bool {
        let states: Vec<TorrentState> = snaps.iter().map(|t| t.state).collect();
        let changed = states != self.states;
        self.states = states;
        let due = changed || self.last.is_none_or(|at| now - at >= self.every);
        if due {
            self.last = Some(now);
        }
        due
    }

    pub fn log(&mut self, now: Instant, snaps: &[TorrentSnapshot]) {
        if self.due(now, snaps) {
            for t in snaps {
                tracing::info!(target: PROGRESS_TARGET, "{}", human_line(t));
            }
        }
    }
}

/// Progress bars when the prompt is off and stdout is a terminal.
pub struct Bars {
    _mp: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl Bars {
    pub fn new(names: &[String]) -> Self {
        let mp = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix} {bar:30} {percent:>3}% {msg}")
            .expect("static template");
        let bars = names
            .iter()
            .map(|n| {
                let b = mp.add(ProgressBar::new(1000));
                b.set_style(style.clone());
                b.set_prefix(n.chars().take(24).collect::<String>());
                b
            })
            .collect();
        Bars { _mp: mp, bars }
    }

    pub fn update(&self, snaps: &[TorrentSnapshot]) {
        for (t, b) in snaps.iter().zip(&self.bars) {
            let p = if t.state == TorrentState::Checking {
                t.check_progress
            } else {
                t.progress
            };
            b.set_position((p * 1000.0) as u64);
            b.set_message(format!(
                "{}  down {}  up {}  peers {}",
                t.state.as_str(),
                format_rate(t.down_rate),
                format_rate(t.up_rate),
                t.peers_connected
            ));
        }
    }

    pub fn finish(&self) {
        for b in &self.bars {
            b.finish();
        }
    }
}

/// `[ 45.2%] name  downloading  down 12.3 MiB/s  up 1.0 MiB/s  peers 3 (1 seed)  eta 1m20s`
pub fn human_line(t: &TorrentSnapshot) -> String {
    let pct = if t.state == TorrentState::Checking {
        t.check_progress * 100.0
    } else {
        t.progress * 100.0
    };
    let eta = match t.eta_secs {
        Some(0) | None => String::new(),
        Some(s) => format!(
            "  eta {}",
            humantime::format_duration(Duration::from_secs(s))
        ),
    };
    format!(
        "[{pct:5.1}%] {}  {}  down {}  up {}  peers {} ({} seeds)  {} of {}{eta}",
        t.name,
        t.state.as_str(),
        format_rate(t.down_rate),
        format_rate(t.up_rate),
        t.peers_connected,
        t.seeds_connected,
        format_bytes(t.verified_bytes),
        format_bytes(t.total_length),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(state: TorrentState) -> TorrentSnapshot {
        TorrentSnapshot {
            name: "x.bin".into(),
            state,
            ..Default::default()
        }
    }

    #[test]
    fn concise_lines_come_every_few_seconds_and_on_state_changes() {
        let mut c = ConciseLog::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let down = [snap(TorrentState::Downloading)];
        assert!(c.due(t0, &down), "the first one at once");
        assert!(!c.due(t0 + Duration::from_secs(1), &down));
        assert!(!c.due(t0 + Duration::from_millis(4900), &down));
        assert!(c.due(t0 + Duration::from_secs(5), &down));
        let seeding = [snap(TorrentState::Seeding)];
        assert!(
            c.due(t0 + Duration::from_secs(6), &seeding),
            "completion at once"
        );
        assert!(!c.due(t0 + Duration::from_secs(7), &seeding));
    }

    #[test]
    fn a_concise_line_says_what_matters() {
        let t = TorrentSnapshot {
            name: "x.bin".into(),
            state: TorrentState::Downloading,
            progress: 0.452,
            total_length: 100 << 20,
            verified_bytes: 45 << 20,
            down_rate: 2 << 20,
            peers_connected: 3,
            seeds_connected: 1,
            eta_secs: Some(80),
            ..Default::default()
        };
        assert_eq!(
            human_line(&t),
            "[ 45.2%] x.bin  downloading  down 2.00 MiB/s  up 0 B/s  peers 3 (1 seeds)  45.0 MiB of 100 MiB  eta 1m 20s"
        );
    }
}
