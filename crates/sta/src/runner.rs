//! Running a node until it is told to stop: starts the session, its torrents
//! and the control API, prints the `ready` line and status (JSON lines for
//! scripts; a prompt, the dashboard or progress bars for people, and short
//! lines in the log when stdout is not a terminal), and turns completion,
//! errors, `quit` and signals into an exit code.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use sta_node::config::NodeConfig;
use sta_node::control::Controller;
use sta_node::session::Session;
use sta_node::snapshot::{TorrentSnapshot, TorrentState, node_snapshot};
use sta_node::torrent::Role;
use sta_proto::metainfo::Metainfo;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::progress::{Bars, ConciseLog, PROGRESS_EVERY};

pub const DEFAULT_API: &str = "127.0.0.1:6880";

pub struct ApiOptions {
    /// `None`: no API.
    pub addr: Option<SocketAddr>,
    /// Given by the user (a taken port is then an error, not a fallback).
    pub explicit: bool,
    pub token: Option<String>,
}

pub struct RunOptions {
    pub role: Role,
    pub dir: PathBuf,
    pub json: bool,
    pub exit_on_complete: bool,
    pub status_interval: Duration,
    pub torrent_limits: (Option<u64>, Option<u64>),
    pub api: ApiOptions,
    pub prompt: bool,
    pub tui: bool,
    /// Peers to dial directly (`--peer`), besides what trackers and magnets give.
    pub peers: Vec<String>,
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
    let code = rt.block_on(run_async(config, metas, opts));
    // Tasks still winding down (a slow tracker) must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn bind_api(a: &ApiOptions) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = a.addr else { return Ok(None) };
    if !addr.ip().is_loopback() && a.token.is_none() {
        anyhow::bail!(
            "the control API on {addr} would be reachable from other hosts: add --api-token TOKEN, or keep it on 127.0.0.1"
        );
    }
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !a.explicit && e.kind() == std::io::ErrorKind::AddrInUse => {
            // Another node has the default port: take any free one (it is written to the state folder).
            Ok(Some(
                tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?,
            ))
        }
        Err(e) => Err(e).with_context(|| {
            format!("cannot start the control API on {addr} (use --api ADDR or --no-api)")
        }),
    }
}

async fn run_async(
    config: NodeConfig,
    metas: Vec<Metainfo>,
    opts: RunOptions,
) -> anyhow::Result<ExitCode> {
    let api_listener = bind_api(&opts.api).await?;
    let session = Session::start(config).await?;
    let mut handles = Vec::new();
    let mut direct: Vec<SocketAddr> = Vec::new();
    for p in &opts.peers {
        let found = tokio::net::lookup_host(p)
            .await
            .with_context(|| format!("cannot resolve peer {p}"))?;
        direct.extend(found);
    }
    for m in metas {
        let h = session.add_torrent(m, opts.dir.clone(), opts.role, opts.torrent_limits)?;
        if !direct.is_empty() {
            h.send(sta_node::torrent::TorrentCmd::AddPeers(direct.clone()))
                .await;
        }
        handles.push(h);
    }
    let state_dir = session.config.resolved_state_dir();
    let quit = CancellationToken::new();
    let api_addr = match api_listener {
        Some(l) => {
            let addr = l.local_addr()?;
            let s = session.clone();
            let (dir, token, q, stop) = (
                opts.dir.clone(),
                opts.api.token.clone(),
                quit.clone(),
                session.cancel_token(),
            );
            tokio::spawn(async move {
                if let Err(e) = sta_node::api::serve(l, s, dir, token, q, stop).await {
                    tracing::warn!(error = %e, "control API stopped");
                }
            });
            let _ = std::fs::create_dir_all(&state_dir);
            let _ = std::fs::write(state_dir.join("api.addr"), addr.to_string());
            Some(addr)
        }
        None => None,
    };
    let started = Instant::now();
    if opts.json {
        crate::output::json_line(&json!({
            "event": "ready",
            "peer": session.listen_addr.to_string(),
            "api": api_addr.map(|a| a.to_string()),
            "peer_id": String::from_utf8_lossy(&session.peer_id.0).into_owned(),
            "state_dir": state_dir,
            "torrents": handles.iter().map(|h| json!({"info_hash": h.info_hash.to_hex(), "name": h.name})).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "sta node listening on {} (peer id {}){}",
            session.listen_addr,
            String::from_utf8_lossy(&session.peer_id.0[..8]),
            api_addr
                .map(|a| format!(", control API on http://{a}"))
                .unwrap_or_default()
        );
        for (i, h) in handles.iter().enumerate() {
            println!("  {} {}  {}", i + 1, h.info_hash, h.name);
        }
    }
    let _term = opts.prompt.then(crate::prompt::TermGuard::save);
    // Ctrl-C typed at the prompt or the dashboard (a key in raw mode, not
    // SIGINT) lands here, so it exits 130 like Ctrl-C without them.
    let interrupt = CancellationToken::new();
    if opts.prompt {
        let controller = Controller::new(session.clone(), opts.dir.clone(), quit.clone());
        let printer = crate::prompt::start(
            tokio::runtime::Handle::current(),
            controller,
            Some(state_dir.join("history")),
            interrupt.clone(),
        )?;
        crate::logging::set_printer(Some(printer));
    }
    let dashboard = if opts.tui {
        let controller = Controller::new(session.clone(), opts.dir.clone(), quit.clone());
        // Logs would scribble over the full-screen view: keep them out of it.
        crate::logging::set_printer(Some(Box::new(|_| {})));
        Some(crate::dashboard::LocalDashboard::start(
            tokio::runtime::Handle::current(),
            controller,
            quit.clone(),
            interrupt.clone(),
        )?)
    } else {
        None
    };
    let bars = (!opts.json && !opts.prompt && !opts.tui && std::io::stdout().is_terminal())
        .then(|| Bars::new(&handles.iter().map(|h| h.name.clone()).collect::<Vec<_>>()));
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(opts.status_interval);
    // stdout is for scripts when it is not a terminal (JSON lines only), so
    // the people reading the log (a journal, a redirected stderr) get a
    // concise line there every few seconds; -q turns it off.
    let mut concise = (!std::io::stdout().is_terminal()).then(|| ConciseLog::new(PROGRESS_EVERY));
    let mut announced: HashSet<String> = HashSet::new();
    let state_changed = watch_states(&session);
    let exit = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break Exit::Interrupted,
            _ = sigterm.recv() => break Exit::Stopped,
            _ = quit.cancelled() => break Exit::Stopped,
            _ = interrupt.cancelled() => break Exit::Interrupted,
            _ = tick.tick() => {}
            _ = state_changed.notified() => {}
        }
        let snaps: Vec<TorrentSnapshot> = session.torrents().iter().map(|h| h.snapshot()).collect();
        // Before the JSON line: a reader that sees the line knows the log has been written.
        if let Some(c) = concise.as_mut() {
            c.log(Instant::now(), &snaps);
        }
        report(&opts, started, &snaps, &mut announced, bars.as_ref());
        if let Some(t) = snaps.iter().find(|t| t.state == TorrentState::Error) {
            break Exit::Failed(format!(
                "{}: {}",
                t.name,
                t.error.clone().unwrap_or_default()
            ));
        }
        if opts.exit_on_complete
            && !snaps.is_empty()
            && snaps.iter().all(|t| t.state == TorrentState::Seeding)
        {
            break Exit::Done;
        }
    };
    if let Some(b) = &bars {
        b.finish();
    }
    // The terminal is ours again before anything else is printed.
    if let Some(d) = dashboard {
        d.stop().await;
    }
    session.shutdown().await;
    crate::logging::set_printer(None);
    if let Some(addr) = api_addr {
        remove_api_addr(&state_dir, addr);
    }
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

/// Removes `api.addr` from the state folder if it still names `ours`: nodes
/// sharing a state folder each write it on start (the last one started
/// wins), and one that exits must not hide another that is still running.
fn remove_api_addr(state_dir: &std::path::Path, ours: SocketAddr) {
    let path = state_dir.join("api.addr");
    let holds_ours = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<SocketAddr>().ok())
        == Some(ours);
    if holds_ours {
        let _ = std::fs::remove_file(&path);
    }
}

/// Wakes the status loop when a torrent's state changes (checked, complete,
/// failed), so `complete` lines and `--exit-on-complete` do not wait for the
/// next status interval.
fn watch_states(session: &Session) -> std::sync::Arc<tokio::sync::Notify> {
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    for h in session.torrents() {
        let mut rx = h.snapshot.clone();
        let notify = notify.clone();
        tokio::spawn(async move {
            let mut last = rx.borrow().state;
            while rx.changed().await.is_ok() {
                let now = rx.borrow_and_update().state;
                if now != last {
                    last = now;
                    notify.notify_one();
                }
            }
        });
    }
    notify
}

fn report(
    opts: &RunOptions,
    started: Instant,
    snaps: &[TorrentSnapshot],
    announced: &mut HashSet<String>,
    bars: Option<&Bars>,
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
            } else if bars.is_none() {
                crate::logging::print_line(format!("{}: complete, seeding", t.name));
            }
        }
    }
    // Not JSON means stdout is a terminal: the prompt, the dashboard or bars.
    if opts.json {
        crate::output::json_line(&node_snapshot(elapsed, snaps));
    } else if let Some(b) = bars {
        b.update(snaps);
    }
}
