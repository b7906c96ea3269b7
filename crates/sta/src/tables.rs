//! Replies of the command language as text: the tables the prompt and
//! `sta ctl` print. One formatter, so both show exactly the same thing.

use std::fmt::Write;
use std::time::Duration;

use sta_node::control::{PeerSort, Reply};
use sta_node::snapshot::TorrentSnapshot;
use sta_proto::units::{format_bytes, format_limit, format_rate};

/// Formats a reply for a terminal `width` columns wide.
pub fn format_reply(r: &Reply, width: usize) -> String {
    let mut o = String::new();
    match r {
        Reply::Status { torrent, snapshot } => status(&mut o, *torrent, snapshot),
        Reply::Peers {
            torrent,
            sort,
            peers,
        } => {
            let by = match sort {
                PeerSort::Down => "download rate",
                PeerSort::Up => "upload rate",
                PeerSort::Progress => "progress",
                PeerSort::Addr => "address",
            };
            let _ = writeln!(
                o,
                "torrent {torrent}: {} peers, by {by} (flags: D/d we download, U/u we upload, capital = unchoked and interested, S snubbed, O optimistic, I incoming)",
                peers.len()
            );
            let _ = writeln!(
                o,
                "{:<22} {:<18} {:<6} {:>12} {:>12} {:>6} {:>10} {:>10}",
                "address", "client", "flags", "down", "up", "have", "received", "sent"
            );
            for p in peers {
                let _ = writeln!(
                    o,
                    "{:<22} {:<18} {:<6} {:>12} {:>12} {:>5.1}% {:>10} {:>10}",
                    p.addr,
                    truncate(&p.client, 18),
                    flags(p),
                    format_rate(p.down_rate),
                    format_rate(p.up_rate),
                    p.progress * 100.0,
                    format_bytes(p.downloaded),
                    format_bytes(p.uploaded)
                );
            }
        }
        Reply::Pieces {
            torrent,
            num_pieces,
            have,
            states,
            availability,
            rarest_missing,
        } => {
            let _ = writeln!(
                o,
                "torrent {torrent}: {have}/{num_pieces} pieces verified   {}",
                crate::piece_map::LEGEND
            );
            // The map fits the width, in at most 8 lines: one character per
            // piece when they fit, else each character stands for several.
            let cols = width.clamp(1, 200);
            let per = crate::piece_map::pieces_per_cell(states.len(), cols * 8);
            let cells: Vec<char> = crate::piece_map::cells(states, per)
                .into_iter()
                .map(crate::piece_map::Cell::glyph)
                .collect();
            if per > 1 {
                let _ = writeln!(o, "(each character is {per} pieces)");
            }
            for line in cells.chunks(cols) {
                let _ = writeln!(o, "{}", line.iter().collect::<String>());
            }
            if !availability.is_empty() {
                let min = availability.iter().min().copied().unwrap_or(0);
                let max = availability.iter().max().copied().unwrap_or(0);
                let avg = availability.iter().map(|a| f64::from(*a)).sum::<f64>()
                    / availability.len() as f64;
                let _ = writeln!(
                    o,
                    "availability among connected peers: min {min}, average {avg:.1}, max {max}"
                );
            }
            if !rarest_missing.is_empty() {
                let list: Vec<String> = rarest_missing
                    .iter()
                    .map(|(i, a)| format!("{i} ({a})"))
                    .collect();
                let _ = writeln!(
                    o,
                    "rarest missing pieces (copies among peers): {}",
                    list.join(", ")
                );
            }
        }
        Reply::Piece { torrent, detail: d } => {
            let _ = writeln!(
                o,
                "torrent {torrent}, piece {}: {} ({})",
                d.index,
                d.state,
                format_bytes(u64::from(d.length))
            );
            let _ = writeln!(
                o,
                "  blocks        {}/{} received",
                d.blocks_received, d.blocks_total
            );
            let _ = writeln!(o, "  availability  {} peers", d.availability);
            if !d.from_peers.is_empty() {
                let _ = writeln!(o, "  blocks from   {}", d.from_peers.join(", "));
            }
            let _ = writeln!(o, "  files         {}", d.files.join(", "));
        }
        Reply::Speed {
            torrent,
            name,
            down_rate,
            up_rate,
            avg_down,
            avg_up,
            down_history,
            up_history,
        } => {
            let _ = writeln!(o, "torrent {torrent}: {name}");
            let _ = writeln!(
                o,
                "  down {:>12} now, {:>12} average   {}",
                format_rate(*down_rate),
                format_rate(*avg_down),
                sparkline(down_history)
            );
            let _ = writeln!(
                o,
                "  up   {:>12} now, {:>12} average   {}",
                format_rate(*up_rate),
                format_rate(*avg_up),
                sparkline(up_history)
            );
            let _ = writeln!(o, "  (last minute, one mark per second)");
        }
        Reply::Torrents { torrents } => {
            let _ = writeln!(
                o,
                "  {:>2} {:<32} {:<11} {:>7} {:>10} {:>12} {:>12} {:>5}",
                "n", "name", "state", "done", "size", "down", "up", "peers"
            );
            for t in torrents {
                let _ = writeln!(
                    o,
                    "{} {:>2} {:<32} {:<11} {:>6.1}% {:>10} {:>12} {:>12} {:>5}",
                    if t.selected { '*' } else { ' ' },
                    t.n,
                    truncate(&t.name, 32),
                    t.state,
                    t.progress * 100.0,
                    format_bytes(t.total_length),
                    format_rate(t.down_rate),
                    format_rate(t.up_rate),
                    t.peers
                );
            }
        }
        Reply::Trackers { torrent, trackers } => {
            let _ = writeln!(o, "torrent {torrent}:");
            if trackers.is_empty() {
                let _ = writeln!(o, "  no tracker");
            }
            for t in trackers {
                let _ = writeln!(
                    o,
                    "  {}  {}  seeders {} leechers {}  peers received {}  announces {}  next in {} s{}",
                    t.url,
                    t.state,
                    t.seeders,
                    t.leechers,
                    t.peers_received,
                    t.announces,
                    t.next_announce_secs,
                    t.error
                        .as_ref()
                        .map(|e| format!("  ({e})"))
                        .unwrap_or_default()
                );
            }
        }
        Reply::Files { torrent, files } => {
            let _ = writeln!(o, "torrent {torrent}:");
            for f in files {
                let pct = if f.length == 0 {
                    100.0
                } else {
                    f.verified as f64 * 100.0 / f.length as f64
                };
                let _ = writeln!(
                    o,
                    "  {:>10} {:>6.1}%  {}",
                    format_bytes(f.length),
                    pct,
                    f.path
                );
            }
        }
        Reply::Done { message } => {
            let _ = writeln!(o, "{message}");
        }
        Reply::Help { text } => {
            let _ = writeln!(o, "{text}");
        }
        Reply::Quit => {
            let _ = writeln!(o, "stopping: announcing stopped and saving resume state");
        }
    }
    o
}

fn status(o: &mut String, n: usize, s: &TorrentSnapshot) {
    let pct = s.progress * 100.0;
    let _ = writeln!(o, "torrent {n}: {}", s.name);
    let state = if s.state.as_str() == "checking" {
        format!("checking ({:.1}%)", s.check_progress * 100.0)
    } else {
        s.state.as_str().to_string()
    };
    let _ = writeln!(
        o,
        "  state       {state}{}",
        s.error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "  progress    {pct:.1}%  {} of {} verified ({}/{} pieces)",
        format_bytes(s.verified_bytes),
        format_bytes(s.total_length),
        s.have_pieces,
        s.num_pieces
    );
    let _ = writeln!(
        o,
        "  downloaded  {}  (wasted {}, hash failures {})",
        format_bytes(s.downloaded),
        format_bytes(s.wasted),
        s.hash_failures
    );
    let _ = writeln!(
        o,
        "  uploaded    {}  ratio {:.2}",
        format_bytes(s.uploaded),
        s.ratio
    );
    let eta = match s.eta_secs {
        Some(0) => "done".to_string(),
        Some(e) => humantime::format_duration(Duration::from_secs(e)).to_string(),
        None => "unknown".to_string(),
    };
    let _ = writeln!(
        o,
        "  rates       down {}  up {}  eta {eta}",
        format_rate(s.down_rate),
        format_rate(s.up_rate)
    );
    let _ = writeln!(
        o,
        "  limits      down {}  up {}",
        format_limit(s.max_download_rate),
        format_limit(s.max_upload_rate)
    );
    let _ = writeln!(
        o,
        "  peers       {} connected ({} seeds), {} known, {} banned",
        s.peers_connected, s.seeds_connected, s.peers_known, s.banned
    );
    for t in &s.trackers {
        let _ = writeln!(
            o,
            "  tracker     {} {}  seeders {} leechers {}{}",
            t.url,
            t.state,
            t.seeders,
            t.leechers,
            t.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    if s.trackers.is_empty() {
        let _ = writeln!(o, "  tracker     none");
    }
}

fn flags(p: &sta_node::snapshot::PeerSnapshot) -> String {
    let mut f = String::new();
    // D: we download from it (it unchoked us and we are interested); d: interested but choked.
    if p.am_interested {
        f.push(if p.peer_choking { 'd' } else { 'D' });
    }
    if p.peer_interested {
        f.push(if p.am_choking { 'u' } else { 'U' });
    }
    if p.snubbed {
        f.push('S');
    }
    if p.optimistic {
        f.push('O');
    }
    if p.incoming {
        f.push('I');
    }
    f
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// `▁▂▃▅▇` marks scaled to the largest value.
pub fn sparkline(points: &[u64]) -> String {
    const MARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = points.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return "▁".repeat(points.len().max(1));
    }
    points
        .iter()
        .map(|p| MARKS[((*p as f64 / max as f64) * 7.0).round() as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales() {
        assert_eq!(sparkline(&[0, 5, 10]), "▁▅█");
        assert_eq!(sparkline(&[]), "▁");
    }

    #[test]
    fn piece_map_fits_the_width() {
        let states: String = std::iter::repeat_n('#', 500)
            .chain(std::iter::repeat_n('.', 1500))
            .collect();
        let r = Reply::Pieces {
            torrent: 1,
            num_pieces: 2000,
            have: 500,
            states,
            availability: vec![1; 2000],
            rarest_missing: vec![(600, 1)],
        };
        let text = format_reply(&r, 40);
        let map: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("(each character"))
            .skip(1)
            .take_while(|l| l.chars().all(|c| "#+:.".contains(c)))
            .collect();
        assert!(!map.is_empty() && map.len() <= 8, "{text}");
        assert!(map.iter().all(|l| l.chars().count() <= 40), "{text}");
        assert!(text.contains("each character is 7 pieces"));
        // 500 verified then 1500 missing, 7 to a cell: 71 cells of `#`, one
        // mixed cell (pieces 497..504), then missing ones.
        let joined = map.concat();
        assert_eq!(joined.len(), 2000usize.div_ceil(7));
        assert_eq!(joined.matches('#').count(), 71, "{text}");
        assert_eq!(joined.matches(':').count(), 1, "{text}");
        assert_eq!(joined.matches('+').count(), 0, "{text}");
        assert!(text.contains("rarest missing pieces (copies among peers): 600 (1)"));
    }
}
