//! The torrent actor: one task per torrent owns its picker, choker, peers,
//! piece buffers and statistics. Peer connection tasks, disk jobs, the
//! tracker client and the session talk to it only through bounded channels;
//! the UI reads the snapshot it publishes every tick.
//!
//! Split by concern: [`peers`] (connections and messages), [`pieces`]
//! (blocks, verification, completion), [`status`] (tracker, resume,
//! snapshots). This file holds the state and the event loop.

mod peers;
mod pieces;
mod requests;
mod status;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use sta_proto::metainfo::Metainfo;
use sta_proto::{InfoHash, PeerId};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bitfield::Bitfield;
use crate::choker::Choker;
use crate::config::NodeConfig;
use crate::peer::conn::{Counters, PeerEvent, WriterCmd};
use crate::peer::state::PeerState;
use crate::picker::{Picker, PickerConfig};
use crate::rate::{History, RateMeter};
use crate::ratelimit::RateLimiter;
use crate::snapshot::{PieceDetail, TorrentSnapshot, TorrentState};
use crate::storage::{Storage, StorageError};
use crate::types::{Geometry, PeerKey};

/// What the user asked this node to be for a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Seed: the data must verify completely, or the torrent fails.
    Seeder,
    /// Download whatever is missing, then seed.
    Leecher,
    /// Decide from what is on disk.
    #[default]
    Auto,
}

/// Everything a torrent needs from the session.
#[derive(Clone)]
pub struct TorrentParams {
    pub metainfo: Arc<Metainfo>,
    /// Content folder: the torrent's name is created inside it.
    pub dir: PathBuf,
    pub role: Role,
    pub peer_id: PeerId,
    /// Port announced to trackers.
    pub announce_port: u16,
    pub config: NodeConfig,
    pub global_up: Arc<RateLimiter>,
    pub global_down: Arc<RateLimiter>,
    /// Per-torrent limits, bytes per second.
    pub max_upload_rate: Option<u64>,
    pub max_download_rate: Option<u64>,
    /// Peer connections of the whole node, against `config.max_connections`.
    pub node_peers: Arc<std::sync::atomic::AtomicUsize>,
}

/// Commands from the session and the UI.
pub enum TorrentCmd {
    /// An incoming connection whose handshake prefix named this torrent.
    Incoming {
        stream: TcpStream,
        addr: SocketAddr,
    },
    AddPeers(Vec<SocketAddr>),
    Pause,
    Resume,
    /// `Some(limit)` changes that direction; `Some(None)` removes its limit.
    SetLimits {
        up: Option<Option<u64>>,
        down: Option<Option<u64>>,
    },
    PieceDetail(u32, oneshot::Sender<Option<PieceDetail>>),
}

/// The UI's and the session's grip on a running torrent.
#[derive(Clone)]
pub struct TorrentHandle {
    pub info_hash: InfoHash,
    pub name: String,
    pub tx: mpsc::Sender<TorrentCmd>,
    pub snapshot: watch::Receiver<TorrentSnapshot>,
    pub cancel: CancellationToken,
}

impl TorrentHandle {
    pub fn snapshot(&self) -> TorrentSnapshot {
        self.snapshot.borrow().clone()
    }
    pub async fn send(&self, cmd: TorrentCmd) -> bool {
        self.tx.send(cmd).await.is_ok()
    }
}

pub(crate) struct Peer {
    state: PeerState,
    addr: SocketAddr,
    peer_id: PeerId,
    incoming: bool,
    tx: mpsc::Sender<WriterCmd>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    down_meter: RateMeter,
    up_meter: RateMeter,
    /// Payload accepted from this peer.
    downloaded: u64,
}

struct Known {
    failures: u32,
    next_try: Instant,
    connected: bool,
}

/// Who sent a block of a failed piece, and the hash of what they sent.
type BlockSender = Option<(IpAddr, [u8; 20])>;

/// A piece being downloaded: its bytes and who sent each block.
struct PieceBuf {
    data: Vec<u8>,
    senders: Vec<Option<(PeerKey, IpAddr)>>,
}

/// The outcome of hashing (and, if good, writing) a completed piece.
struct PieceResult {
    index: u32,
    hash_ok: bool,
    write_error: Option<String>,
    /// Block hashes of the data, for finding who sent bad blocks.
    block_hashes: Vec<[u8; 20]>,
    senders: Vec<Option<(PeerKey, IpAddr)>>,
    /// The piece's buffer, handed back for reuse.
    data: Vec<u8>,
}

enum ConnResult {
    Ready {
        stream: TcpStream,
        addr: SocketAddr,
        peer_id: PeerId,
        incoming: bool,
    },
    Failed {
        addr: SocketAddr,
        incoming: bool,
        error: String,
    },
}

struct Check {
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct Totals {
    downloaded: u64,
    /// Uploaded by peers already gone (live peers' counters hold the rest).
    uploaded_closed: u64,
    /// Totals carried over from earlier runs (resume file).
    uploaded_before: u64,
    downloaded_before: u64,
    wasted: u64,
    from_seeds: u64,
    from_peers: u64,
    hash_failures: u32,
    /// Payload received per peer address, over the whole run.
    by_ip: HashMap<IpAddr, u64>,
}

struct TrackerLink {
    events: mpsc::Sender<sta_proto::tracker::Event>,
    stats: watch::Sender<crate::tracker_client::AnnounceStats>,
    status: watch::Receiver<crate::tracker_client::TrackerStatus>,
    cancel: CancellationToken,
}

pub(crate) struct Torrent {
    p: TorrentParams,
    geo: Geometry,
    storage: Arc<Storage>,
    picker: Picker,
    choker: Choker,
    state: TorrentState,
    error: Option<String>,
    paused: bool,
    upload_stopped: bool,
    peers: HashMap<PeerKey, Peer>,
    next_key: u64,
    known: HashMap<SocketAddr, Known>,
    connecting: usize,
    buffers: HashMap<u32, PieceBuf>,
    /// Spent piece buffers kept for reuse: allocating a fresh megabyte per
    /// piece costs page faults and zeroing on every piece.
    spare_buffers: Vec<Vec<u8>>,
    /// Block hashes of pieces that failed, to find the culprit once the piece passes.
    failed_blocks: HashMap<u32, Vec<BlockSender>>,
    strikes: HashMap<IpAddr, u32>,
    banned: HashSet<IpAddr>,
    totals: Totals,
    up_limit: Arc<RateLimiter>,
    down_limit: Arc<RateLimiter>,
    sent: Arc<crate::peer::conn::SentCounts>,
    /// Bytes left under `--seed-limit-copies`, drawn by every peer writer.
    upload_budget: Option<Arc<std::sync::atomic::AtomicU64>>,
    down_meter: RateMeter,
    up_meter: RateMeter,
    down_hist: History,
    up_hist: History,
    started_at: Instant,
    completed_after: Option<f64>,
    verified_at_start: u64,
    events_tx: mpsc::Sender<PeerEvent>,
    disk_tx: mpsc::Sender<PieceResult>,
    /// Verified pieces on their way to the writer thread.
    writer: std::sync::mpsc::Sender<PieceResult>,
    conn_tx: mpsc::Sender<ConnResult>,
    tracker: Option<TrackerLink>,
    tracker_peers_tx: mpsc::Sender<Vec<SocketAddr>>,
    snapshot_tx: watch::Sender<TorrentSnapshot>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    rng: StdRng,
    check: Option<Check>,
    resume_dirty: bool,
    last_resume_save: Instant,
    /// File sizes and times as last seen, to notice changes behind our back.
    stamps: Vec<Option<(u64, i128)>>,
    last_stamp_check: Instant,
    last_keepalive: Instant,
    check_tx: mpsc::Sender<Bitfield>,
    /// Serialises resume saves; holds the sequence number last written.
    resume_lock: Arc<std::sync::Mutex<u64>>,
    resume_seq: u64,
}

struct Channels {
    events_rx: mpsc::Receiver<PeerEvent>,
    disk_rx: mpsc::Receiver<PieceResult>,
    conn_rx: mpsc::Receiver<ConnResult>,
    cmd_rx: mpsc::Receiver<TorrentCmd>,
    tracker_peers_rx: mpsc::Receiver<Vec<SocketAddr>>,
    check_rx: mpsc::Receiver<Bitfield>,
}

/// Pieces that may be in flight at once: what `max_inflight_bytes` holds, and
/// at least one, so a torrent whose pieces are larger than the cap still
/// downloads (one piece at a time, from every peer that has it).
fn max_partial_pieces(config: &crate::config::NodeConfig, piece_length: u32) -> usize {
    (config.max_inflight_bytes / u64::from(piece_length)).max(1) as usize
}

/// Starts a torrent task: check the data, then download and seed.
pub fn spawn(
    p: TorrentParams,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) -> Result<TorrentHandle, StorageError> {
    let info = &p.metainfo.info;
    let geo = Geometry::new(info.piece_length, info.total_length);
    let storage = Arc::new(Storage::new(info, &p.dir)?);
    let (events_tx, events_rx) = mpsc::channel(512);
    let max_partial = max_partial_pieces(&p.config, info.piece_length);
    let (disk_tx, disk_rx) = mpsc::channel(max_partial + 16);
    let (conn_tx, conn_rx) = mpsc::channel(64);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (tracker_peers_tx, tracker_peers_rx) = mpsc::channel(16);
    let (check_tx, check_rx) = mpsc::channel(1);
    let (snapshot_tx, snapshot_rx) = watch::channel(TorrentSnapshot {
        info_hash: p.metainfo.info_hash.to_hex(),
        name: info.name.clone(),
        ..Default::default()
    });
    let now = Instant::now();
    let picker_cfg = PickerConfig {
        strategy: p.config.picker,
        max_partial,
        ..Default::default()
    };
    let handle = TorrentHandle {
        info_hash: p.metainfo.info_hash,
        name: info.name.clone(),
        tx: cmd_tx,
        snapshot: snapshot_rx,
        cancel: cancel.clone(),
    };
    let writer = spawn_writer(storage.clone(), disk_tx.clone());
    let t = Torrent {
        writer,
        geo,
        picker: Picker::new(geo, Bitfield::new(geo.num_pieces), picker_cfg),
        choker: Choker::new(p.config.choker.clone(), now),
        up_limit: Arc::new(RateLimiter::new(p.max_upload_rate)),
        sent: Arc::new(crate::peer::conn::SentCounts::new(
            geo.num_pieces,
            geo.piece_length,
            p.config.serve_order == crate::config::ServeOrder::Fifo,
        )),
        upload_budget: p.config.seed_limit_copies.map(|copies| {
            let bytes = copies.max(0.0) * p.metainfo.info.total_length as f64;
            Arc::new(std::sync::atomic::AtomicU64::new(bytes as u64))
        }),
        down_limit: Arc::new(RateLimiter::new(p.max_download_rate)),
        p,
        storage,
        state: TorrentState::Checking,
        error: None,
        paused: false,
        upload_stopped: false,
        peers: HashMap::new(),
        next_key: 1,
        known: HashMap::new(),
        connecting: 0,
        buffers: HashMap::new(),
        spare_buffers: Vec::new(),
        failed_blocks: HashMap::new(),
        strikes: HashMap::new(),
        banned: HashSet::new(),
        totals: Totals::default(),
        down_meter: RateMeter::new(5),
        up_meter: RateMeter::new(5),
        down_hist: History::default(),
        up_hist: History::default(),
        started_at: now,
        completed_after: None,
        verified_at_start: 0,
        events_tx,
        disk_tx,
        conn_tx,
        tracker: None,
        tracker_peers_tx,
        snapshot_tx,
        tasks: tasks.clone(),
        cancel,
        rng: StdRng::from_rng(&mut rand::rng()),
        check: None,
        resume_dirty: false,
        last_resume_save: now,
        stamps: Vec::new(),
        last_stamp_check: now,
        last_keepalive: now,
        check_tx,
        resume_lock: Arc::new(std::sync::Mutex::new(0)),
        resume_seq: 0,
    };
    let ch = Channels {
        events_rx,
        disk_rx,
        conn_rx,
        cmd_rx,
        tracker_peers_rx,
        check_rx,
    };
    tasks.spawn(t.run(ch));
    Ok(handle)
}

/// One thread writes a torrent's verified pieces, in the order they were
/// verified. Buffered writes to one file serialise on the inode lock anyway;
/// from several threads they would only spin against each other.
fn spawn_writer(
    storage: Arc<Storage>,
    done: mpsc::Sender<PieceResult>,
) -> std::sync::mpsc::Sender<PieceResult> {
    let (tx, rx) = std::sync::mpsc::channel::<PieceResult>();
    let spawned = std::thread::Builder::new()
        .name("sta-writer".into())
        .spawn(move || {
            // Ends when the torrent (every sender) is gone.
            while let Ok(mut r) = rx.recv() {
                let offset = storage.piece_offset(r.index);
                r.write_error = storage.write(offset, &r.data).err().map(|e| {
                    // Exit code 1 must say what to do (PLAN.md): a full disk is
                    // the usual cause, and nothing verified is lost by it.
                    if e.kind() == std::io::ErrorKind::StorageFull {
                        format!("{e}: the disk is full; free some space and start again (verified pieces are kept)")
                    } else {
                        e.to_string()
                    }
                });
                if done.blocking_send(r).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the storage writer thread");
    }
    tx
}

impl Torrent {
    async fn run(mut self, mut ch: Channels) {
        self.start_check(true);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A change of state (checked, complete, failed) is published at once,
        // not at the next tick: scripts wait on it.
        let mut published = self.state;
        loop {
            if self.state != published {
                published = self.state;
                self.publish_snapshot(Instant::now());
            }
            // Rare messages first, the busy peer stream last: under a full
            // stream of blocks, ticks, commands and new connections still run.
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                _ = tick.tick() => self.on_tick(),
                Some(cmd) = ch.cmd_rx.recv() => self.on_cmd(cmd),
                Some(c) = ch.conn_rx.recv() => self.on_conn_result(c),
                Some(list) = ch.tracker_peers_rx.recv() => self.add_known(list),
                Some(have) = ch.check_rx.recv() => self.on_check_done(have),
                Some(r) = ch.disk_rx.recv() => self.on_piece_result(r),
                Some(ev) = ch.events_rx.recv() => {
                    self.on_peer_event(ev);
                    // Drain a batch before looking at the others again.
                    for _ in 0..64 {
                        match ch.events_rx.try_recv() {
                            Ok(ev) => self.on_peer_event(ev),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
        self.shutdown().await;
    }

    fn on_cmd(&mut self, cmd: TorrentCmd) {
        match cmd {
            TorrentCmd::Incoming { stream, addr } => self.accept_incoming(stream, addr),
            TorrentCmd::AddPeers(list) => self.add_known(list),
            TorrentCmd::Pause => self.pause(),
            TorrentCmd::Resume => self.resume(),
            TorrentCmd::SetLimits { up, down } => {
                if let Some(u) = up {
                    self.up_limit.set_rate(u);
                }
                if let Some(d) = down {
                    self.down_limit.set_rate(d);
                }
            }
            TorrentCmd::PieceDetail(i, reply) => {
                let _ = reply.send(self.piece_detail(i));
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.sample_rates(now);
        if matches!(
            self.state,
            TorrentState::Downloading | TorrentState::Seeding
        ) && !self.paused
        {
            self.check_timeouts(now);
            self.run_choker(now);
            self.connect_more(now);
            self.fill_all_requests();
            if now.duration_since(self.last_keepalive) >= Duration::from_secs(90) {
                self.last_keepalive = now;
                for k in self.peers.keys().copied().collect::<Vec<_>>() {
                    self.send(k, sta_proto::wire::Message::KeepAlive);
                }
            }
            self.watch_files(now);
            self.maybe_save_resume(now, false);
        }
        self.update_tracker_stats();
        self.publish_snapshot(now);
    }

    fn pause(&mut self) {
        if self.paused || self.state == TorrentState::Checking {
            return;
        }
        self.paused = true;
        for k in self.peers.keys().copied().collect::<Vec<_>>() {
            self.remove_peer(k, "torrent paused");
        }
        self.stop_tracker();
        self.maybe_save_resume(Instant::now(), true);
    }

    fn resume(&mut self) {
        if !self.paused {
            return;
        }
        self.paused = false;
        for k in self.known.values_mut() {
            k.next_try = Instant::now();
        }
        self.start_tracker();
    }

    /// Graceful end: peers closed, `stopped` announced, resume state saved.
    async fn shutdown(mut self) {
        for k in self.peers.keys().copied().collect::<Vec<_>>() {
            self.remove_peer(k, "shutting down");
        }
        if let Some(c) = &self.check {
            c.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if self.state != TorrentState::Checking {
            self.maybe_save_resume(Instant::now(), true);
        }
        if let Some(t) = self.tracker.take() {
            t.cancel.cancel();
        }
        self.publish_snapshot(Instant::now());
    }
}
