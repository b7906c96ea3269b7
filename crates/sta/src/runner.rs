//! Running a node until it is told to stop: starts the session and its
//! torrents, prints the `ready` line and status (JSON lines for scripts, a
//! short line for people), and turns completion, errors and signals into an
//! exit code.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;
use sta_node::config::NodeConfig;
use sta_node::session::Session;
use sta_node::snapshot::{TorrentSnapshot, TorrentState};
use sta_node::torrent::Role;
use sta_proto::metainfo::Metainfo;
use sta_proto::units::{format_bytes, format_rate};
use tokio::signal::unix::{SignalKind, signal};

pub struct RunOptions {
    pub role: Role,
    pub dir: PathBuf,
    pub json: bool,
    pub exit_on_complete: bool,
    pub status_interval: Duration,
    pub torrent_limits: (Option<u64>, Option<u64>),
}

enum Exit {
    Done,
    Stopped,
    Interrupted,
    Failed(String),
}

pub fn run(config: NodeConfig, metas: Vec<Metainfo>, opts: RunOptions) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(config, metas, opts))
}

/// The status line every reader of a node sees: the same object the control API serves.
pub fn node_snapshot(elapsed: f64, torrents: &[TorrentSnapshot]) -> serde_json::Value {
    json!({
        "event": "status",
        "elapsed": elapsed,
        "down_rate": torrents.iter().map(|t| t.down_rate).sum::<u64>(),
        "up_rate": torrents.iter().map(|t| t.up_rate).sum::<u64>(),
        "torrents": torrents,
    })
}

async fn run_async(
    config: NodeConfig,
    metas: Vec<Metainfo>,
    opts: RunOptions,
) -> anyhow::Result<ExitCode> {
    let session = Session::start(config).await?;
    let mut handles = Vec::new();
    for m in metas {
        handles.push(session.add_torrent(m, opts.dir.clone(), opts.role, opts.torrent_limits)?);
    }
    let started = Instant::now();
    if opts.json {
        crate::output::json_line(&json!({
            "event": "ready",
            "peer": session.listen_addr.to_string(),
            "peer_id": String::from_utf8_lossy(&session.peer_id.0).into_owned(),
            "state_dir": session.config.resolved_state_dir(),
            "torrents": handles.iter().map(|h| json!({"info_hash": h.info_hash.to_hex(), "name": h.name})).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "sta node listening on {} (peer id {})",
            session.listen_addr,
            String::from_utf8_lossy(&session.peer_id.0[..8])
        );
        for h in &handles {
            println!("  {}  {}", h.info_hash, h.name);
        }
    }
    let mut sigterm = signal(SignalKind::terminate())?;
    let interval = if opts.json {
        opts.status_interval
    } else {
        opts.status_interval.max(Duration::from_secs(2))
    };
    let mut tick = tokio::time::interval(interval);
    let mut announced: HashSet<String> = HashSet::new();
    let exit = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Exit::Interrupted,
            _ = sigterm.recv() => break Exit::Stopped,
            _ = tick.tick() => {
                let snaps: Vec<TorrentSnapshot> = session.torrents().iter().map(|h| h.snapshot()).collect();
                report(&opts, started, &snaps, &mut announced);
                if let Some(t) = snaps.iter().find(|t| t.state == TorrentState::Error) {
                    break Exit::Failed(format!("{}: {}", t.name, t.error.clone().unwrap_or_default()));
                }
                if opts.exit_on_complete && !snaps.is_empty() && snaps.iter().all(|t| t.state == TorrentState::Seeding) {
                    break Exit::Done;
                }
            }
        }
    };
    session.shutdown().await;
    let snaps: Vec<TorrentSnapshot> = session.torrents().iter().map(|h| h.snapshot()).collect();
    if opts.json {
        let mut last = node_snapshot(started.elapsed().as_secs_f64(), &snaps);
        last["event"] = json!("stopped");
        crate::output::json_line(&last);
    }
    Ok(match exit {
        Exit::Done | Exit::Stopped => ExitCode::SUCCESS,
        Exit::Interrupted => ExitCode::from(130),
        Exit::Failed(msg) => {
            eprintln!("sta: error: {msg}");
            ExitCode::from(1)
        }
    })
}

fn report(
    opts: &RunOptions,
    started: Instant,
    snaps: &[TorrentSnapshot],
    announced: &mut HashSet<String>,
) {
    let elapsed = started.elapsed().as_secs_f64();
    for t in snaps {
        if t.state == TorrentState::Seeding && announced.insert(t.info_hash.clone()) {
            if opts.json {
                crate::output::json_line(&json!({
                    "event": "complete",
                    "info_hash": t.info_hash,
                    "name": t.name,
                    "downloaded": t.downloaded,
                    "completed_after_secs": t.completed_after_secs,
                    "elapsed": elapsed,
                }));
            } else {
                println!("{}: complete, seeding", t.name);
            }
        }
    }
    if opts.json {
        crate::output::json_line(&node_snapshot(elapsed, snaps));
    } else {
        for t in snaps {
            println!("{}", human_line(t));
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
