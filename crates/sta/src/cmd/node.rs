//! `sta node`, `sta seed` and `sta get`: run a node with one or more torrents.
//! Flags shared by the three are in [`NodeArgs`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use sta_node::config::NodeConfig;
use sta_node::picker::Strategy;
use sta_node::torrent::Role;
use sta_proto::metainfo::Metainfo;
use sta_proto::units::parse_rate;

use crate::runner::{self, RunOptions};

/// A rate limit flag: bytes per second, or `None` for unlimited (`0`, `unlimited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

pub fn rate(s: &str) -> Result<Limit, String> {
    parse_rate(s).map(Limit).map_err(|e| e.to_string())
}

/// Flags every command that moves data takes.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Content folder: where the torrent's files are (seeding) or go (downloading).
    #[arg(short = 'o', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// sta.toml whose [node] section sets anything not given as a flag or STA_* variable.
    #[arg(long, env = "STA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Peer port to listen on (0 = any free port) [default: 6881].
    #[arg(short, long, env = "STA_PORT")]
    pub port: Option<u16>,
    /// Address to listen on and to connect and announce from.
    #[arg(long, env = "STA_BIND", value_name = "IP")]
    pub bind: Option<IpAddr>,
    /// Address to give trackers instead of the one they see (NAT).
    #[arg(long, env = "STA_ANNOUNCE_IP", value_name = "IP")]
    pub announce_ip: Option<IpAddr>,
    /// Port to give trackers instead of --port (NAT port forwarding).
    #[arg(long, value_name = "PORT")]
    pub announce_port: Option<u16>,
    /// Upload limit for this node, e.g. 2MiB, 500KiB (per second); 0 = unlimited.
    #[arg(long, alias = "upload-limit", env = "STA_MAX_UPLOAD_RATE", value_name = "RATE", value_parser = rate)]
    pub max_upload_rate: Option<Limit>,
    /// Download limit for this node (per second); 0 = unlimited.
    #[arg(long, alias = "download-limit", env = "STA_MAX_DOWNLOAD_RATE", value_name = "RATE", value_parser = rate)]
    pub max_download_rate: Option<Limit>,
    /// Upload limit for each torrent (per second).
    #[arg(long, value_name = "RATE", value_parser = rate)]
    pub torrent_upload_rate: Option<Limit>,
    /// Download limit for each torrent (per second).
    #[arg(long, value_name = "RATE", value_parser = rate)]
    pub torrent_download_rate: Option<Limit>,
    /// Where resume files go [default: $XDG_STATE_HOME/sta or ~/.local/state/sta].
    #[arg(long, env = "STA_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Peer connections per torrent.
    #[arg(long, value_name = "N")]
    pub max_peers: Option<usize>,
    /// Regular upload slots of the choker.
    #[arg(long, value_name = "N")]
    pub upload_slots: Option<usize>,
    /// Stop uploading after sending this many copies of the data.
    #[arg(long, value_name = "COPIES")]
    pub seed_limit_copies: Option<f64>,
    /// Piece picker (random exists only to show why rarest-first matters).
    #[arg(long, value_enum, hide = true)]
    pub picker: Option<PickerArg>,
    /// Serve order of queued requests (fifo exists only to isolate the picker in experiments).
    #[arg(long, value_enum, hide = true)]
    pub serve_order: Option<ServeOrderArg>,
    /// Also connect to this peer (host:port); repeat for more. Works without a tracker.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<String>,
    /// Exit 0 once every piece of every torrent is verified.
    #[arg(long)]
    pub exit_on_complete: bool,
    /// JSON lines on stdout (the default when stdout is not a terminal).
    #[arg(long)]
    pub json: bool,
    /// Seconds between status lines.
    #[arg(
        long,
        env = "STA_STATUS_INTERVAL",
        value_name = "SECS",
        default_value_t = 1.0
    )]
    pub status_interval: f64,
    /// Control API address (HTTP + JSON).
    #[arg(long, env = "STA_API", value_name = "ADDR", default_value = crate::runner::DEFAULT_API)]
    pub api: std::net::SocketAddr,
    /// No control API.
    #[arg(long, conflicts_with = "api_token")]
    pub no_api: bool,
    /// Token required from hosts other than this one (needed to bind the API off loopback).
    #[arg(long, env = "STA_API_TOKEN", value_name = "TOKEN")]
    pub api_token: Option<String>,
    /// No interactive prompt even on a terminal (progress bars instead).
    #[arg(long)]
    pub no_prompt: bool,
    /// Full-screen dashboard instead of the prompt (q stops the node).
    #[arg(long, conflicts_with = "no_prompt")]
    pub tui: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum ServeOrderArg {
    LeastSent,
    Fifo,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum PickerArg {
    RarestFirst,
    Random,
}

impl NodeArgs {
    /// The node's settings: the config file's [node] section (or the
    /// defaults), with every flag or variable given laid over it.
    pub fn node_config(&self) -> anyhow::Result<NodeConfig> {
        let mut c = match &self.config {
            Some(path) => crate::config::load(path)?.node,
            None => NodeConfig::default(),
        };
        if let Some(p) = self.port {
            c.port = p;
        }
        c.bind = self.bind.or(c.bind);
        c.announce_ip = self.announce_ip.or(c.announce_ip);
        c.announce_port = self.announce_port.or(c.announce_port);
        c.state_dir = self.state_dir.clone().or(c.state_dir);
        if let Some(Limit(r)) = self.max_upload_rate {
            c.max_upload_rate = r;
        }
        if let Some(Limit(r)) = self.max_download_rate {
            c.max_download_rate = r;
        }
        if let Some(n) = self.max_peers {
            c.max_peers_per_torrent = n;
        }
        if let Some(n) = self.upload_slots {
            c.choker.upload_slots = n;
        }
        c.seed_limit_copies = self.seed_limit_copies.or(c.seed_limit_copies);
        if let Some(p) = self.picker {
            c.picker = match p {
                PickerArg::RarestFirst => Strategy::RarestFirst,
                PickerArg::Random => Strategy::Random,
            };
        }
        if let Some(o) = self.serve_order {
            c.serve_order = match o {
                ServeOrderArg::LeastSent => sta_node::config::ServeOrder::LeastSent,
                ServeOrderArg::Fifo => sta_node::config::ServeOrder::Fifo,
            };
        }
        Ok(c)
    }

    fn run_options(&self, role: Role) -> RunOptions {
        use std::io::IsTerminal;
        let json = crate::output::json_mode(self.json);
        let explicit = std::env::args().any(|a| a == "--api" || a.starts_with("--api="))
            || std::env::var_os("STA_API").is_some();
        RunOptions {
            api: crate::runner::ApiOptions {
                addr: (!self.no_api).then_some(self.api),
                explicit,
                token: self.api_token.clone(),
            },
            prompt: !json
                && !self.no_prompt
                && !self.tui
                && std::io::stdin().is_terminal()
                && std::io::stdout().is_terminal(),
            tui: !json && self.tui && std::io::stdout().is_terminal(),
            role,
            dir: self.dir.clone(),
            json,
            peers: self.peers.clone(),
            exit_on_complete: self.exit_on_complete,
            status_interval: std::time::Duration::from_secs_f64(self.status_interval.max(0.1)),
            torrent_limits: (
                self.torrent_upload_rate.and_then(|l| l.0),
                self.torrent_download_rate.and_then(|l| l.0),
            ),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct NodeCmd {
    /// Torrent files (or magnet links) to serve.
    #[arg(required = true, value_name = "FILE.torrent|MAGNET")]
    pub torrents: Vec<String>,
    /// seeder: data must verify; leecher: download what is missing; auto: decide from the data.
    #[arg(long, value_enum, default_value = "auto")]
    pub role: RoleArg,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum RoleArg {
    Seeder,
    Leecher,
    Auto,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Seeder => Role::Seeder,
            RoleArg::Leecher => Role::Leecher,
            RoleArg::Auto => Role::Auto,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SeedCmd {
    /// A .torrent file, or the file or folder to share (a torrent is made next to it).
    #[arg(value_name = "FILE.torrent|PATH")]
    pub source: PathBuf,
    /// Tracker for a torrent made from PATH; repeat for more tiers.
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece length for a torrent made from PATH.
    #[arg(long, value_name = "SIZE|auto", default_value = "auto")]
    pub piece_length: String,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(clap::Args, Debug)]
pub struct GetCmd {
    /// A .torrent file, or a magnet link whose tracker has a catalog.
    #[arg(value_name = "FILE.torrent|MAGNET")]
    pub source: String,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Reads and checks a torrent file.
pub fn load_torrent(path: &Path) -> anyhow::Result<Metainfo> {
    Ok(sta_node::source::load_file(path)?)
}

/// Loads a torrent file or resolves a magnet link.
fn load_source(s: &str) -> anyhow::Result<Metainfo> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(sta_node::source::load(s))?)
}

pub fn run_node(mut a: NodeCmd) -> anyhow::Result<ExitCode> {
    let mut metas = Vec::new();
    for t in &a.torrents {
        metas.push(load_source(t)?);
        a.node.peers.extend(magnet_peers(t));
    }
    runner::run(
        a.node.node_config()?,
        metas,
        a.node.run_options(a.role.into()),
    )
}

/// Peers named by a magnet link's `x.pe`, to dial directly.
fn magnet_peers(s: &str) -> Vec<String> {
    sta_proto::magnet::Magnet::parse(s)
        .map(|m| m.peers)
        .unwrap_or_default()
}

pub fn run_get(mut a: GetCmd) -> anyhow::Result<ExitCode> {
    let m = load_source(&a.source)?;
    a.node.peers.extend(magnet_peers(&a.source));
    runner::run(
        a.node.node_config()?,
        vec![m],
        a.node.run_options(Role::Leecher),
    )
}

pub fn run_seed(mut a: SeedCmd) -> anyhow::Result<ExitCode> {
    let src = &a.source;
    let is_torrent = src.extension().is_some_and(|e| e == "torrent") && src.is_file();
    let meta = if is_torrent {
        load_torrent(src)?
    } else {
        if !src.exists() {
            bail!("{} does not exist", src.display());
        }
        let m = crate::cmd::create::make_beside(src, &a.trackers, &a.piece_length)?;
        // The data's folder is the content folder unless -o was given.
        if a.node.dir == Path::new(".") {
            a.node.dir = std::path::absolute(src)?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
        }
        m
    };
    runner::run(
        a.node.node_config()?,
        vec![meta],
        a.node.run_options(Role::Seeder),
    )
}
