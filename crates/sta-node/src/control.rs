//! The one command language of a running node, shared by the interactive
//! prompt, the control API and `sta ctl`: parsing a line into a [`Command`]
//! and executing it against the session into a [`Reply`] (plain data; the
//! command line layer turns replies into tables).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sta_proto::units::parse_rate;
use tokio_util::sync::CancellationToken;

use crate::session::Session;
use crate::snapshot::{FileSnapshot, PeerSnapshot, PieceDetail, TorrentSnapshot};
use crate::torrent::{Role, TorrentCmd, TorrentHandle};
use crate::tracker_client::TrackerStatus;

/// Which torrent a command is about: the selected one or a number (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Selected,
    Number(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerSort {
    Down,
    Up,
    Progress,
    Addr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Status(Target),
    Peers(Target, PeerSort),
    Pieces(Target, Option<u32>),
    Speed(Target),
    Torrents,
    Add {
        source: String,
        dir: Option<PathBuf>,
    },
    Remove(usize),
    Select(usize),
    Trackers(Target),
    Files(Target),
    Pause(Target),
    Resume(Target),
    /// `None` target: the whole node.
    Limit {
        up: bool,
        rate: Option<u64>,
        target: Option<Target>,
    },
    Help,
    Quit,
}

/// Every command name, for tab completion and help.
pub const COMMANDS: &[&str] = &[
    "status", "peers", "pieces", "speed", "speeds", "torrents", "add", "remove", "select",
    "trackers", "files", "pause", "resume", "limit", "help", "quit",
];

pub const HELP: &str = "\
status [N]                 state, progress, bytes, ratio, rates, ETA, peers, tracker
peers [N] [down|up|progress|addr]   one row per peer, sorted by download rate by default
pieces [#N]                piece map, availability, rarest missing pieces
pieces P [#N]              details of piece P
speed [N]                  current and average rates, last minute (alias: speeds)
torrents                   one line per torrent; * marks the selected one
add FILE.torrent|MAGNET [-o DIR]   add a torrent to this node
remove N                   stop torrent N (announces stopped, saves resume state)
select N                   commands act on torrent N from now on
trackers [N]               tracker state, seeders and leechers it reports
files [N]                  files with size and verified bytes
pause [N] / resume [N]     disconnect and stop / start again
limit up|down RATE [#N]    rate limit for the node (or torrent N); 0 = unlimited
help                       this list
quit                       stop gracefully: announce stopped, save resume state
N is a torrent number (see `torrents`); #N works everywhere.";

fn number(s: &str, what: &str) -> Result<usize, String> {
    s.trim_start_matches('#')
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{what} must be a number from 1, got {s:?}"))
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&cmd, rest)) = words.split_first() else {
        return Err("empty command; type help".into());
    };
    // `#N` anywhere names the torrent.
    let mut target = Target::Selected;
    let mut args: Vec<&str> = Vec::new();
    for w in rest {
        if let Some(n) = w.strip_prefix('#') {
            target = Target::Number(number(n, "torrent")?);
        } else {
            args.push(w);
        }
    }
    let bare_target = |args: &[&str]| -> Result<Target, String> {
        match args {
            [] => Ok(target),
            [n] => Ok(Target::Number(number(n, "torrent")?)),
            _ => Err(format!("too many arguments for {cmd}; type help")),
        }
    };
    Ok(match cmd.to_ascii_lowercase().as_str() {
        "status" | "st" => Command::Status(bare_target(&args)?),
        "peers" => {
            let mut sort = PeerSort::Down;
            let mut t = target;
            for a in &args {
                match *a {
                    "down" => sort = PeerSort::Down,
                    "up" => sort = PeerSort::Up,
                    "progress" => sort = PeerSort::Progress,
                    "addr" => sort = PeerSort::Addr,
                    n => t = Target::Number(number(n, "torrent")?),
                }
            }
            Command::Peers(t, sort)
        }
        "pieces" => match args.as_slice() {
            [] => Command::Pieces(target, None),
            [p] => Command::Pieces(
                target,
                Some(
                    p.parse()
                        .map_err(|_| format!("piece must be a number, got {p:?}"))?,
                ),
            ),
            _ => return Err("usage: pieces [P] [#N]".into()),
        },
        "speed" | "speeds" => Command::Speed(bare_target(&args)?),
        "torrents" | "list" => Command::Torrents,
        "add" => {
            let mut source = None;
            let mut dir = None;
            let mut it = args.iter();
            while let Some(a) = it.next() {
                match *a {
                    "-o" | "--dir" => {
                        dir = Some(PathBuf::from(it.next().ok_or("-o needs a folder")?))
                    }
                    s if source.is_none() => source = Some(s.to_string()),
                    s => {
                        return Err(format!(
                            "unexpected {s:?}; usage: add FILE.torrent|MAGNET [-o DIR]"
                        ));
                    }
                }
            }
            Command::Add {
                source: source.ok_or("usage: add FILE.torrent|MAGNET [-o DIR]")?,
                dir,
            }
        }
        "remove" | "rm" => match (args.as_slice(), target) {
            ([n], _) => Command::Remove(number(n, "torrent")?),
            ([], Target::Number(n)) => Command::Remove(n),
            _ => return Err("usage: remove N".into()),
        },
        "select" => match (args.as_slice(), target) {
            ([n], _) => Command::Select(number(n, "torrent")?),
            ([], Target::Number(n)) => Command::Select(n),
            _ => return Err("usage: select N".into()),
        },
        "trackers" => Command::Trackers(bare_target(&args)?),
        "files" => Command::Files(bare_target(&args)?),
        "pause" => Command::Pause(bare_target(&args)?),
        "resume" => Command::Resume(bare_target(&args)?),
        "limit" => {
            match args.as_slice() {
                [dir @ ("up" | "down"), rate] => Command::Limit {
                    up: *dir == "up",
                    rate: parse_rate(rate).map_err(|e| e.to_string())?,
                    target: rest.iter().any(|w| w.starts_with('#')).then_some(target),
                },
                _ => return Err(
                    "usage: limit up|down RATE [#N]   (RATE like 2MiB or 500KiB; 0 = unlimited)"
                        .into(),
                ),
            }
        }
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        other => {
            // The first character, not the first byte: a command typed as
            // `é` must get the hint, not a panic on a char boundary.
            let first = other.chars().next();
            let near: Vec<&&str> = COMMANDS
                .iter()
                .filter(|c| first.is_some_and(|f| c.starts_with(f)))
                .collect();
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!(
                    " (did you mean {}?)",
                    near.iter().map(|c| **c).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(format!(
                "unknown command {other:?}{hint}; type help for the list"
            ));
        }
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorrentLine {
    pub n: usize,
    pub selected: bool,
    pub name: String,
    pub info_hash: String,
    pub state: String,
    pub progress: f64,
    pub down_rate: u64,
    pub up_rate: u64,
    pub peers: usize,
    pub total_length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Status {
        torrent: usize,
        snapshot: Box<TorrentSnapshot>,
    },
    Peers {
        torrent: usize,
        sort: PeerSort,
        peers: Vec<PeerSnapshot>,
    },
    Pieces {
        torrent: usize,
        num_pieces: u32,
        have: u32,
        states: String,
        availability: Vec<u16>,
        rarest_missing: Vec<(u32, u16)>,
    },
    Piece {
        torrent: usize,
        detail: PieceDetail,
    },
    Speed {
        torrent: usize,
        name: String,
        down_rate: u64,
        up_rate: u64,
        avg_down: u64,
        avg_up: u64,
        down_history: Vec<u64>,
        up_history: Vec<u64>,
    },
    Torrents {
        torrents: Vec<TorrentLine>,
    },
    Trackers {
        torrent: usize,
        trackers: Vec<TrackerStatus>,
    },
    Files {
        torrent: usize,
        files: Vec<FileSnapshot>,
    },
    Done {
        message: String,
    },
    Help {
        text: String,
    },
    Quit,
}

/// Executes commands for one client (each prompt or API caller has its own selection).
pub struct Controller {
    pub session: Session,
    pub selected: usize,
    /// Folder for `add` without `-o`.
    pub default_dir: PathBuf,
    /// Cancelled by `quit`.
    pub quit: CancellationToken,
}

impl Controller {
    pub fn new(session: Session, default_dir: PathBuf, quit: CancellationToken) -> Self {
        Controller {
            session,
            selected: 1,
            default_dir,
            quit,
        }
    }

    fn pick(&self, t: Target) -> Result<(usize, TorrentHandle), String> {
        let list = self.session.torrents();
        let n = match t {
            Target::Selected => self.selected,
            Target::Number(n) => n,
        };
        if list.is_empty() {
            return Err("no torrents in this node; add one with: add FILE.torrent".into());
        }
        list.get(n.wrapping_sub(1))
            .cloned()
            .map(|h| (n, h))
            .ok_or_else(|| {
                format!(
                    "no torrent {n}: this node has {} (see torrents)",
                    list.len()
                )
            })
    }

    pub async fn execute(&mut self, cmd: Command) -> Result<Reply, String> {
        Ok(match cmd {
            Command::Status(t) => {
                let (n, h) = self.pick(t)?;
                Reply::Status {
                    torrent: n,
                    snapshot: Box::new(h.snapshot()),
                }
            }
            Command::Peers(t, sort) => {
                let (n, h) = self.pick(t)?;
                let mut peers = h.snapshot().peers;
                match sort {
                    PeerSort::Down => peers.sort_by(|a, b| {
                        b.down_rate
                            .cmp(&a.down_rate)
                            .then(b.downloaded.cmp(&a.downloaded))
                    }),
                    PeerSort::Up => peers.sort_by(|a, b| {
                        b.up_rate.cmp(&a.up_rate).then(b.uploaded.cmp(&a.uploaded))
                    }),
                    PeerSort::Progress => peers.sort_by(|a, b| b.progress.total_cmp(&a.progress)),
                    PeerSort::Addr => peers.sort_by(|a, b| a.addr.cmp(&b.addr)),
                }
                Reply::Peers {
                    torrent: n,
                    sort,
                    peers,
                }
            }
            Command::Pieces(t, None) => {
                let (n, h) = self.pick(t)?;
                let s = h.snapshot();
                let map = s.pieces.clone();
                let mut rarest: Vec<(u32, u16)> = map
                    .states
                    .bytes()
                    .enumerate()
                    .filter(|(_, c)| *c != b'#')
                    .map(|(i, _)| (i as u32, map.availability.get(i).copied().unwrap_or(0)))
                    .collect();
                rarest.sort_by_key(|(i, a)| (*a, *i));
                rarest.truncate(10);
                Reply::Pieces {
                    torrent: n,
                    num_pieces: s.num_pieces,
                    have: s.have_pieces,
                    states: map.states.clone(),
                    availability: map.availability.clone(),
                    rarest_missing: rarest,
                }
            }
            Command::Pieces(t, Some(p)) => {
                let (n, h) = self.pick(t)?;
                let (tx, rx) = tokio::sync::oneshot::channel();
                if !h.send(TorrentCmd::PieceDetail(p, tx)).await {
                    return Err("torrent is stopping".into());
                }
                let detail = rx.await.map_err(|_| "torrent is stopping".to_string())?;
                let detail = detail.ok_or_else(|| {
                    format!(
                        "no piece {p}: the torrent has pieces 0 to {}",
                        h.snapshot().num_pieces.saturating_sub(1)
                    )
                })?;
                Reply::Piece { torrent: n, detail }
            }
            Command::Speed(t) => {
                let (n, h) = self.pick(t)?;
                let s = h.snapshot();
                let secs = s.active_secs.max(1.0);
                Reply::Speed {
                    torrent: n,
                    name: s.name,
                    down_rate: s.down_rate,
                    up_rate: s.up_rate,
                    avg_down: (s.downloaded as f64 / secs) as u64,
                    avg_up: (s.uploaded as f64 / secs) as u64,
                    down_history: s.down_history,
                    up_history: s.up_history,
                }
            }
            Command::Torrents => Reply::Torrents {
                torrents: self
                    .session
                    .torrents()
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let s = h.snapshot();
                        TorrentLine {
                            n: i + 1,
                            selected: i + 1 == self.selected,
                            name: s.name,
                            info_hash: s.info_hash,
                            state: s.state.as_str().into(),
                            progress: s.progress,
                            down_rate: s.down_rate,
                            up_rate: s.up_rate,
                            peers: s.peers_connected,
                            total_length: s.total_length,
                        }
                    })
                    .collect(),
            },
            Command::Add { source, dir } => {
                let meta = crate::source::load(&source)
                    .await
                    .map_err(|e| e.to_string())?;
                let name = meta.info.name.clone();
                let dir = dir.unwrap_or_else(|| self.default_dir.clone());
                self.session
                    .add_torrent(meta, dir, Role::Auto, (None, None))
                    .map_err(|e| e.to_string())?;
                let n = self.session.torrents().len();
                Reply::Done {
                    message: format!("added torrent {n}: {name}"),
                }
            }
            Command::Remove(n) => {
                let (_, h) = self.pick(Target::Number(n))?;
                self.session.remove_torrent(&h.info_hash);
                if self.selected > self.session.torrents().len() {
                    self.selected = 1;
                }
                Reply::Done {
                    message: format!("removed torrent {n}: {}", h.name),
                }
            }
            Command::Select(n) => {
                let (_, h) = self.pick(Target::Number(n))?;
                self.selected = n;
                Reply::Done {
                    message: format!("selected torrent {n}: {}", h.name),
                }
            }
            Command::Trackers(t) => {
                let (n, h) = self.pick(t)?;
                Reply::Trackers {
                    torrent: n,
                    trackers: h.snapshot().trackers,
                }
            }
            Command::Files(t) => {
                let (n, h) = self.pick(t)?;
                Reply::Files {
                    torrent: n,
                    files: h.snapshot().files,
                }
            }
            Command::Pause(t) | Command::Resume(t) => {
                let pause = matches!(cmd, Command::Pause(_));
                let (n, h) = self.pick(t)?;
                h.send(if pause {
                    TorrentCmd::Pause
                } else {
                    TorrentCmd::Resume
                })
                .await;
                Reply::Done {
                    message: format!(
                        "{} torrent {n}: {}",
                        if pause { "paused" } else { "resumed" },
                        h.name
                    ),
                }
            }
            Command::Limit { up, rate, target } => {
                let shown = sta_proto::units::format_limit(rate);
                let dir = if up { "upload" } else { "download" };
                match target {
                    None => {
                        let l = Some(rate);
                        if up {
                            self.session.set_global_limits(l, None)
                        } else {
                            self.session.set_global_limits(None, l)
                        }
                        Reply::Done {
                            message: format!("node {dir} limit: {shown}"),
                        }
                    }
                    Some(t) => {
                        let (n, h) = self.pick(t)?;
                        let (u, d) = if up {
                            (Some(rate), None)
                        } else {
                            (None, Some(rate))
                        };
                        h.send(TorrentCmd::SetLimits { up: u, down: d }).await;
                        Reply::Done {
                            message: format!("torrent {n} {dir} limit: {shown}"),
                        }
                    }
                }
            }
            Command::Help => Reply::Help { text: HELP.into() },
            Command::Quit => {
                self.quit.cancel();
                Reply::Quit
            }
        })
    }
}

#[cfg(test)]
mod tests;
