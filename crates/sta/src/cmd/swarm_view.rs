//! What `sta swarm` shows: live progress per node (bars on a terminal, a
//! line per node every two seconds otherwise) and the final table.

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sta_proto::units::{format_bytes, format_rate};

pub struct Row {
    pub name: String,
    pub ip: String,
    progress: f64,
    down_rate: u64,
    up_rate: u64,
    peers: u64,
    uploaded: u64,
    downloaded: u64,
    sources: Vec<(String, u64)>,
    /// When the node's `complete` line arrived.
    completed_at: Option<f64>,
    done_after: Option<f64>,
    verified: Option<bool>,
}

impl Row {
    pub fn new(name: &str, ip: &str) -> Self {
        Row {
            name: name.into(),
            ip: ip.into(),
            progress: 0.0,
            down_rate: 0,
            up_rate: 0,
            peers: 0,
            uploaded: 0,
            downloaded: 0,
            sources: vec![],
            completed_at: None,
            done_after: None,
            verified: None,
        }
    }

    fn received_from(&self, ip: &str) -> u64 {
        self.sources
            .iter()
            .filter(|(i, _)| i == ip)
            .map(|(_, n)| n)
            .sum()
    }
}

pub struct View {
    rows: Vec<Row>,
    bars: Option<(MultiProgress, Vec<ProgressBar>)>,
}

impl View {
    pub fn new(rows: Vec<Row>, tty: bool) -> Self {
        let bars = tty.then(|| {
            let mp = MultiProgress::new();
            let style = ProgressStyle::with_template("{prefix:>10} {bar:30} {percent:>3}% {msg}")
                .expect("static template");
            let bars = rows
                .iter()
                .map(|r| {
                    let b = mp.add(ProgressBar::new(1000));
                    b.set_style(style.clone());
                    b.set_prefix(r.name.clone());
                    b
                })
                .collect();
            (mp, bars)
        });
        View { rows, bars }
    }

    pub fn is_tty(&self) -> bool {
        self.bars.is_some()
    }

    pub fn name(&self, node: usize) -> &str {
        self.rows.get(node).map_or("?", |r| r.name.as_str())
    }

    pub fn update(&mut self, node: usize, v: &Value, started: Instant) {
        let Some(r) = self.rows.get_mut(node) else {
            return;
        };
        // The `complete` line is followed at once by a status line with the
        // final counters; the node counts as done when that one is read, so
        // the summary never shows figures from before the last piece.
        if v["event"] == "complete" && node > 0 && r.completed_at.is_none() {
            r.completed_at = Some(started.elapsed().as_secs_f64());
        }
        if v["event"] != "status" {
            return;
        }
        let t = &v["torrents"][0];
        r.progress = t["progress"].as_f64().unwrap_or(0.0);
        r.down_rate = t["down_rate"].as_u64().unwrap_or(0);
        r.up_rate = t["up_rate"].as_u64().unwrap_or(0);
        r.peers = t["peers_connected"].as_u64().unwrap_or(0);
        r.uploaded = t["uploaded"].as_u64().unwrap_or(0);
        r.downloaded = t["downloaded"].as_u64().unwrap_or(0);
        if let Some(list) = t["sources"].as_array() {
            r.sources = list
                .iter()
                .filter_map(|s| Some((s["ip"].as_str()?.to_owned(), s["downloaded"].as_u64()?)))
                .collect();
        }
        if node > 0 && r.progress >= 1.0 && r.done_after.is_none() {
            r.done_after = Some(
                r.completed_at
                    .unwrap_or_else(|| started.elapsed().as_secs_f64()),
            );
        }
    }

    pub fn all_leechers_done(&self) -> bool {
        self.rows.iter().skip(1).all(|r| r.done_after.is_some())
    }

    pub fn set_verified(&mut self, node: usize, ok: bool) {
        if let Some(r) = self.rows.get_mut(node) {
            r.verified = Some(ok);
        }
    }

    fn status(r: &Row) -> String {
        format!(
            "down {:>12}  up {:>12}  peers {}",
            format_rate(r.down_rate),
            format_rate(r.up_rate),
            r.peers
        )
    }

    pub fn draw(&self) {
        if let Some((_, bars)) = &self.bars {
            for (r, b) in self.rows.iter().zip(bars) {
                b.set_position((r.progress * 1000.0) as u64);
                b.set_message(Self::status(r));
            }
        }
    }

    pub fn print_lines(&self) {
        for r in &self.rows {
            println!(
                "{:>10} {:>6.1}%  {}",
                r.name,
                r.progress * 100.0,
                Self::status(r)
            );
        }
    }

    pub fn finish(&self) {
        if let Some((_, bars)) = &self.bars {
            self.draw();
            for b in bars {
                b.finish();
            }
        } else {
            self.print_lines();
        }
    }

    pub fn print_table(&self, size: u64, seeder_ip: &str) {
        println!(
            "{:<10} {:>8} {:>12} {:>12} {:>12} {:>14}  copy",
            "node", "time", "from seeder", "from peers", "uploaded", "avg rate"
        );
        for (i, r) in self.rows.iter().enumerate() {
            let from_seeder = r.received_from(seeder_ip);
            let from_peers = r.downloaded.saturating_sub(from_seeder);
            let (time, avg) = match r.done_after {
                Some(t) if i > 0 => (
                    format!("{t:.1} s"),
                    format_rate((size as f64 / t.max(1e-3)) as u64),
                ),
                _ => ("-".into(), "-".into()),
            };
            let copy = match r.verified {
                Some(true) => "SHA-256 ok",
                Some(false) => "SHA-256 MISMATCH",
                None => "source",
            };
            println!(
                "{:<10} {:>8} {:>12} {:>12} {:>12} {:>14}  {copy}",
                r.name,
                time,
                if i == 0 {
                    "-".into()
                } else {
                    format_bytes(from_seeder)
                },
                if i == 0 {
                    "-".into()
                } else {
                    format_bytes(from_peers)
                },
                format_bytes(r.uploaded),
                avg
            );
        }
    }

    pub fn json(&self, seeder_ip: &str) -> Value {
        self.rows
            .iter()
            .map(|r| {
                let from_seeder = r.received_from(seeder_ip);
                json!({
                    "name": r.name,
                    "ip": r.ip,
                    "time": r.done_after,
                    "downloaded": r.downloaded,
                    "from_seeder": from_seeder,
                    "from_peers": r.downloaded.saturating_sub(from_seeder),
                    "uploaded": r.uploaded,
                    "verified": r.verified,
                })
            })
            .collect()
    }
}
