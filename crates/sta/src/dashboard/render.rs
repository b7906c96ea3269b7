//! Drawing one dashboard frame from plain data. Pure: no I/O, so tests render
//! it on ratatui's test backend at any size.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Wrap,
};
use sta_node::control::{PeerSort, TorrentLine};
use sta_node::snapshot::TorrentSnapshot;
use sta_proto::units::{format_bytes, format_rate};

use crate::piece_map::{self, Cell as MapCell};

/// Everything one frame shows.
#[derive(Default, Clone)]
pub struct DashData {
    pub torrents: Vec<TorrentLine>,
    pub selected: usize,
    pub status: Option<TorrentSnapshot>,
    /// Piece states (`#`, `+`, `.`).
    pub pieces: String,
    pub sort: Option<PeerSort>,
    pub message: Option<String>,
    pub help: bool,
}

const HELP: &str = "q quit · p pause · r resume · ←/→ torrent · s sort peers · ? help";

pub fn draw(f: &mut Frame<'_>, d: &DashData) {
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(2),
            Constraint::Length(1),
            Constraint::Length(6),
            Constraint::Min(4),
            Constraint::Length(1),
        ])
        .split(area);
    header(f, rows[0], d);
    let progress = d.status.as_ref().map_or(0.0, |s| s.progress);
    f.render_widget(
        Gauge::default()
            .gauge_style(Style::default().fg(Color::Green))
            .ratio(progress.clamp(0.0, 1.0))
            .label(format!("{:.1}%", progress * 100.0)),
        rows[1],
    );
    piece_map_view(f, rows[2], &d.pieces);
    let mid = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(65), Constraint::Percentage(35)])
        .split(rows[3]);
    peers(f, mid[0], d);
    speed(f, mid[1], d);
    let footer = d.message.clone().unwrap_or_else(|| HELP.to_string());
    f.render_widget(
        Paragraph::new(footer).style(Style::default().fg(Color::DarkGray)),
        rows[4],
    );
    if d.help {
        help_popup(f, area);
    }
}

fn header(f: &mut Frame<'_>, area: Rect, d: &DashData) {
    let Some(s) = &d.status else {
        f.render_widget(Paragraph::new("waiting for the node..."), area);
        return;
    };
    let eta = match s.eta_secs {
        Some(0) => "done".to_string(),
        Some(e) => format!("{e} s"),
        None => "-".to_string(),
    };
    let line1 = Line::from(vec![
        Span::styled(
            format!("{}/{} ", d.selected, d.torrents.len().max(1)),
            Style::default().fg(Color::DarkGray),
        ),
        Span::styled(
            s.name.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  {}  ", s.state.as_str())),
        Span::raw(format!(
            "{} of {}",
            format_bytes(s.verified_bytes),
            format_bytes(s.total_length)
        )),
    ]);
    let line2 = Line::from(format!(
        "down {}  up {}  peers {} ({} seeds)  ratio {:.2}  eta {eta}",
        format_rate(s.down_rate),
        format_rate(s.up_rate),
        s.peers_connected,
        s.seeds_connected,
        s.ratio
    ));
    f.render_widget(Paragraph::new(vec![line1, line2]), area);
}

fn piece_map_view(f: &mut Frame<'_>, area: Rect, states: &str) {
    let block = Block::default()
        .borders(Borders::TOP)
        .title("pieces (green have, yellow downloading, part green some have, grey missing)");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let cells = (inner.width as usize) * (inner.height as usize);
    if cells == 0 || states.is_empty() {
        return;
    }
    let per = piece_map::pieces_per_cell(states.len(), cells);
    let spans: Vec<Span<'_>> = piece_map::cells(states, per)
        .into_iter()
        .map(|c| match c {
            MapCell::Have => Span::styled("▇", Style::default().fg(Color::Green)),
            MapCell::Downloading => Span::styled("▇", Style::default().fg(Color::Yellow)),
            // Shaded by how much of the cell is verified; the lowest and
            // highest marks are left to "none" and "all".
            MapCell::Partial(f) => {
                const MARKS: [&str; 5] = ["▂", "▃", "▄", "▅", "▆"];
                let i = ((f * MARKS.len() as f64) as usize).min(MARKS.len() - 1);
                Span::styled(
                    MARKS[i],
                    Style::default().fg(Color::Green).bg(Color::DarkGray),
                )
            }
            MapCell::Missing => Span::styled("▇", Style::default().fg(Color::DarkGray)),
        })
        .collect();
    let lines: Vec<Line<'_>> = spans
        .chunks(inner.width as usize)
        .map(|c| Line::from(c.to_vec()))
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}

fn peers(f: &mut Frame<'_>, area: Rect, d: &DashData) {
    let list = d
        .status
        .as_ref()
        .map(|s| s.peers.clone())
        .unwrap_or_default();
    let header = Row::new(["address", "client", "flags", "down", "up", "have"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = list.iter().map(|p| {
        let mut flags = String::new();
        if p.am_interested {
            flags.push(if p.peer_choking { 'd' } else { 'D' });
        }
        if p.peer_interested {
            flags.push(if p.am_choking { 'u' } else { 'U' });
        }
        if p.snubbed {
            flags.push('S');
        }
        if p.optimistic {
            flags.push('O');
        }
        Row::new([
            Cell::from(p.addr.clone()),
            Cell::from(p.client.clone()),
            Cell::from(flags),
            Cell::from(format_rate(p.down_rate)),
            Cell::from(format_rate(p.up_rate)),
            Cell::from(format!("{:.0}%", p.progress * 100.0)),
        ])
    });
    let sort = match d.sort.unwrap_or(PeerSort::Down) {
        PeerSort::Down => "down",
        PeerSort::Up => "up",
        PeerSort::Progress => "progress",
        PeerSort::Addr => "address",
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(21),
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(5),
        ],
    )
    .header(header)
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(format!("peers ({}, by {sort})", list.len())),
    );
    f.render_widget(table, area);
}

fn speed(f: &mut Frame<'_>, area: Rect, d: &DashData) {
    let halves = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(area);
    let (down, up, dr, ur) = d.status.as_ref().map_or((vec![], vec![], 0, 0), |s| {
        (
            s.down_history.clone(),
            s.up_history.clone(),
            s.down_rate,
            s.up_rate,
        )
    });
    f.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .title(format!("down {}", format_rate(dr))),
            )
            .data(&down)
            .style(Style::default().fg(Color::Cyan)),
        halves[0],
    );
    f.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .title(format!("up {}", format_rate(ur))),
            )
            .data(&up)
            .style(Style::default().fg(Color::Magenta)),
        halves[1],
    );
}

fn help_popup(f: &mut Frame<'_>, area: Rect) {
    let w = area.width.min(60);
    let h = area.height.min(12);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let text = "q         leave the dashboard\n\
                p / r     pause / resume this torrent\n\
                ← / →     previous / next torrent\n\
                s         sort peers: down, up, progress, address\n\
                ?         show or hide this help\n\n\
                Flags: D/d we download (unchoked/choked), U/u we upload,\n\
                S snubbed, O optimistic unchoke.";
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title("help")),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use sta_node::snapshot::{PeerSnapshot, TorrentState};

    fn data() -> DashData {
        let status = TorrentSnapshot {
            name: "ubuntu.iso".into(),
            state: TorrentState::Downloading,
            total_length: 4 << 30,
            verified_bytes: 1 << 30,
            progress: 0.25,
            down_rate: 12 << 20,
            up_rate: 1 << 20,
            peers_connected: 2,
            seeds_connected: 1,
            eta_secs: Some(256),
            down_history: (0..60).collect(),
            up_history: (0..60).rev().collect(),
            peers: vec![
                PeerSnapshot {
                    addr: "127.0.0.2:6881".into(),
                    client: "sta 0.0.0.1".into(),
                    am_interested: true,
                    down_rate: 10 << 20,
                    progress: 1.0,
                    ..Default::default()
                },
                PeerSnapshot {
                    addr: "127.0.0.3:6881".into(),
                    client: "Transmission 3.0.0.0".into(),
                    peer_interested: true,
                    progress: 0.5,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        // Verified, then alternating verified and missing (mixed cells when
        // two pieces share a cell), then in flight, then missing.
        let pieces: String = std::iter::repeat_n('#', 250)
            .chain("#.".repeat(20).chars())
            .chain(std::iter::repeat_n('+', 10))
            .chain(std::iter::repeat_n('.', 700))
            .collect();
        DashData {
            torrents: vec![],
            selected: 1,
            status: Some(status),
            pieces,
            ..Default::default()
        }
    }

    fn buffer(w: u16, h: u16, d: &DashData) -> ratatui::buffer::Buffer {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, d)).unwrap();
        t.backend().buffer().clone()
    }

    fn render(w: u16, h: u16, d: &DashData) -> String {
        let buf = buffer(w, h, d);
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn renders_at_many_sizes_without_panicking() {
        let d = data();
        let mut with_help = d.clone();
        with_help.help = true;
        let mut lots = d.clone();
        if let Some(s) = lots.status.as_mut() {
            s.peers = (0..500)
                .map(|i| PeerSnapshot {
                    addr: format!("127.0.{}.{}:6881", i / 250, i % 250),
                    client: "a client with a very long name indeed".into(),
                    ..Default::default()
                })
                .collect();
        }
        lots.pieces = ".".repeat(200_000);
        lots.message = Some("x".repeat(500));
        for (w, h) in [
            (0, 0),
            (1, 1),
            (2, 1),
            (1, 5),
            (5, 2),
            (10, 3),
            (20, 6),
            (40, 10),
            (80, 24),
            (100, 24),
            (200, 60),
            (500, 200),
        ] {
            for dd in [&d, &with_help, &lots, &DashData::default()] {
                render(w, h, dd);
            }
        }
    }

    /// The checked-in frame: what a user sees at 100×24 for [`data`]. On a
    /// deliberate change of the layout, rewrite it with
    /// `STA_UPDATE_FRAMES=1 cargo nextest run -E 'test(dashboard_frame)'` and
    /// review the diff.
    #[test]
    fn dashboard_frame_matches_the_checked_in_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/dashboard/testdata/frame_100x24.txt"
        );
        let text = render(100, 24, &data()) + "\n";
        if std::env::var_os("STA_UPDATE_FRAMES").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let want = std::fs::read_to_string(path).unwrap();
        assert!(
            text == want,
            "the frame differs from {path}:\n--- got ---\n{text}--- want ---\n{want}"
        );
    }

    #[test]
    fn a_frame_shows_what_matters() {
        let text = render(100, 24, &data());
        let expected_lines = [
            "1/1 ubuntu.iso  downloading  1.00 GiB of 4.00 GiB",
            "down 12.0 MiB/s  up 1.00 MiB/s  peers 2 (1 seeds)  ratio 0.00  eta 256 s",
        ];
        for l in expected_lines {
            assert!(text.contains(l), "missing {l:?} in\n{text}");
        }
        assert!(text.contains("25.0%"));
        assert!(text.contains("127.0.0.2:6881") && text.contains("Transmission"));
        assert!(text.contains("peers (2, by down)"));
        assert!(text.contains("q quit"));
    }

    /// Colours of the map at 100×24 (500 cells, two pieces each): 125 cells
    /// have, the 20 mixed ones are shaded (not yellow), 5 in flight, 350 missing.
    #[test]
    fn the_piece_map_colours_tell_the_truth() {
        let buf = buffer(100, 24, &data());
        let (mut have, mut partial, mut down, mut missing) = (0, 0, 0, 0);
        for y in 4..9 {
            for x in 0..100 {
                let c = &buf[(x, y)];
                match (c.fg, c.bg, c.symbol()) {
                    (Color::Green, Color::DarkGray, _) => partial += 1,
                    (Color::Green, _, "▇") => have += 1,
                    (Color::Yellow, _, "▇") => down += 1,
                    (Color::DarkGray, _, "▇") => missing += 1,
                    other => panic!("unexpected cell {other:?} at {x},{y}"),
                }
            }
        }
        assert_eq!((have, partial, down, missing), (125, 20, 5, 350));
    }
}
