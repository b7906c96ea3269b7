//! Node settings: the `[node]` section of sta.toml, with defaults and units.
//! Flags and `STA_*` variables override these in the command line layer.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::choker::ChokerConfig;
use crate::picker::Strategy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ServeOrder {
    #[default]
    LeastSent,
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Peer port to listen on; 0 picks a free one. Default 6881.
    pub port: u16,
    /// Address to listen on and to connect and announce from. Default: all interfaces.
    pub bind: Option<IpAddr>,
    /// Address to give trackers (for nodes behind NAT); default: what the tracker sees.
    pub announce_ip: Option<IpAddr>,
    /// Port to give trackers instead of `port` (NAT port forwarding).
    pub announce_port: Option<u16>,
    /// Where resume files go. Default: $XDG_STATE_HOME/sta or ~/.local/state/sta.
    pub state_dir: Option<PathBuf>,
    /// Upload limit for the whole node, bytes per second; none = unlimited.
    pub max_upload_rate: Option<u64>,
    /// Download limit for the whole node, bytes per second; none = unlimited.
    pub max_download_rate: Option<u64>,
    /// Peer connections per torrent. Default 50.
    pub max_peers_per_torrent: usize,
    /// Peer connections for the whole node. Default 200.
    pub max_connections: usize,
    /// Outgoing connection attempts under way at once, per torrent. Default 8.
    pub max_half_open: usize,
    /// Peer addresses remembered per torrent (from trackers and incoming
    /// connections). Default 2000.
    pub max_known_peers: usize,
    /// Block requests a peer may have queued with us; more are refused, and
    /// as many again past the cap ends the connection. Default 1000.
    pub max_queued_requests: usize,
    /// Memory for pieces being downloaded, per torrent, in bytes. Default 32 MiB.
    pub max_inflight_bytes: u64,
    /// Seconds without a block before a peer's requests go to others. Default 20.
    pub request_timeout_secs: u64,
    /// Stop uploading once this many copies of the data were sent (test and lab use).
    pub seed_limit_copies: Option<f64>,
    /// Piece selection strategy. Default rarest-first.
    pub picker: Strategy,
    /// Order in which a peer's queued requests are served: pieces sent least
    /// often first (default), or first come first served (for experiments).
    pub serve_order: ServeOrder,
    pub choker: ChokerConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            port: 6881,
            bind: None,
            announce_ip: None,
            announce_port: None,
            state_dir: None,
            max_upload_rate: None,
            max_download_rate: None,
            max_peers_per_torrent: 50,
            max_connections: 200,
            max_half_open: 8,
            max_known_peers: 2000,
            max_queued_requests: 1000,
            max_inflight_bytes: 32 << 20,
            request_timeout_secs: 20,
            seed_limit_copies: None,
            picker: Strategy::RarestFirst,
            serve_order: ServeOrder::LeastSent,
            choker: ChokerConfig::default(),
        }
    }
}

impl NodeConfig {
    /// The resume-state folder: configured, else XDG state home, else ~/.local/state/sta.
    pub fn resolved_state_dir(&self) -> PathBuf {
        if let Some(d) = &self.state_dir {
            return d.clone();
        }
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("sta");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/state/sta")
    }
}
