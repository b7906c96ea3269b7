//! Read-only pictures of the engine for the UI, the control API and JSON
//! status lines. The torrent actor publishes one per tick through a `watch`
//! channel; readers clone the latest and never touch engine state.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::tracker_client::TrackerStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TorrentState {
    #[default]
    Checking,
    Downloading,
    Seeding,
    Paused,
    Error,
}

impl TorrentState {
    pub fn as_str(self) -> &'static str {
        match self {
            TorrentState::Checking => "checking",
            TorrentState::Downloading => "downloading",
            TorrentState::Seeding => "seeding",
            TorrentState::Paused => "paused",
            TorrentState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PeerSnapshot {
    pub addr: String,
    pub client: String,
    pub peer_id: String,
    pub incoming: bool,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub snubbed: bool,
    pub optimistic: bool,
    pub down_rate: u64,
    pub up_rate: u64,
    /// Payload bytes received from / sent to this peer.
    pub downloaded: u64,
    pub uploaded: u64,
    /// Pieces the peer has, and its progress (0..1).
    pub pieces: u32,
    pub progress: f64,
    pub requests_out: usize,
    pub queue_target: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SourceSnapshot {
    pub ip: String,
    pub downloaded: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FileSnapshot {
    pub path: String,
    pub length: u64,
    /// Bytes of verified pieces that fall in this file.
    pub verified: u64,
}

/// The piece map: one state per piece plus availability. Kept out of the
/// per-second JSON lines (it can be large); served by the `pieces` API.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PieceMap {
    /// One character per piece: `#` verified, `+` downloading, `.` missing.
    pub states: String,
    /// Number of connected peers that have each piece.
    pub availability: Vec<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TorrentSnapshot {
    pub info_hash: String,
    pub name: String,
    pub state: TorrentState,
    pub error: Option<String>,
    pub dir: String,
    pub total_length: u64,
    pub piece_length: u32,
    pub num_pieces: u32,
    pub have_pieces: u32,
    pub verified_bytes: u64,
    /// Bytes found verified by the start-up check (or trusted from the resume file).
    pub verified_at_start: u64,
    pub progress: f64,
    /// Progress of the initial check (0..1) while `state` is checking.
    pub check_progress: f64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub wasted: u64,
    /// Payload from peers that were seeds when they sent it, and from others.
    pub downloaded_from_seeds: u64,
    pub downloaded_from_peers: u64,
    pub hash_failures: u32,
    /// Payload received from each peer address during this run, largest first.
    pub sources: Vec<SourceSnapshot>,
    pub ratio: f64,
    pub down_rate: u64,
    pub up_rate: u64,
    pub eta_secs: Option<u64>,
    pub peers_connected: usize,
    pub seeds_connected: usize,
    pub peers_known: usize,
    pub banned: usize,
    pub max_upload_rate: Option<u64>,
    pub max_download_rate: Option<u64>,
    /// Seconds since this torrent started in this node.
    pub active_secs: f64,
    /// Seconds from start until every piece was verified (when it happened here).
    pub completed_after_secs: Option<f64>,
    pub trackers: Vec<TrackerStatus>,
    pub peers: Vec<PeerSnapshot>,
    pub files: Vec<FileSnapshot>,
    /// Per-second download and upload rates over the last minute.
    pub down_history: Vec<u64>,
    pub up_history: Vec<u64>,
    #[serde(skip)]
    pub pieces: Arc<PieceMap>,
}

/// Detail of one piece for `pieces N`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PieceDetail {
    pub index: u32,
    pub length: u32,
    pub state: String,
    pub availability: u16,
    pub blocks_received: u32,
    pub blocks_total: u32,
    /// Peers that sent blocks of this piece (while it is in progress).
    pub from_peers: Vec<String>,
    /// Files the piece covers.
    pub files: Vec<String>,
}

/// The status object of a whole node: what JSON status lines and the
/// control API's `/api/status` carry.
pub fn node_snapshot(elapsed: f64, torrents: &[TorrentSnapshot]) -> serde_json::Value {
    serde_json::json!({
        "event": "status",
        "elapsed": elapsed,
        "down_rate": torrents.iter().map(|t| t.down_rate).sum::<u64>(),
        "up_rate": torrents.iter().map(|t| t.up_rate).sum::<u64>(),
        "torrents": torrents,
    })
}
