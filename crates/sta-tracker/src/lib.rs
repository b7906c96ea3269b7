//! sta-tracker: a BitTorrent tracker. The swarm registry ([`registry`],
//! sans-I/O) answers announces and scrapes arriving over HTTP ([`http`],
//! BEP 3/23/7) and UDP ([`udp`], BEP 15); [`catalog`] keeps published
//! torrents so magnet links naming this tracker can be resolved; [`store`]
//! keeps the catalog and completed counters across restarts; [`stats`]
//! renders counters for people and for Prometheus.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sta_tracker::TrackerError> {
//! let bound = sta_tracker::Tracker::bind(sta_tracker::TrackerConfig::default()).await?;
//! println!("HTTP on {:?}, UDP on {:?}", bound.http_addr(), bound.udp_addr());
//! bound.run(tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```

pub mod catalog;
pub mod config;
pub mod conn_id;
pub mod core;
pub mod http;
pub mod registry;
pub mod stats;
pub mod store;
pub mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

pub use config::{Bind, TrackerConfig};

use crate::conn_id::ConnectionIds;
use crate::core::Core;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("invalid tracker settings: {0}")]
    Config(String),
    #[error("cannot listen for {proto} on {addr}: {error}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot read the allowlist {path}: {error}")]
    Allowlist { path: PathBuf, error: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl TrackerError {
    /// True when a listen address is taken by another program.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, TrackerError::Bind { error, .. } if error.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// Entry point: `Tracker::bind(config)` then `run(cancel)`.
pub struct Tracker;

impl Tracker {
    /// Reads the allowlist, opens the store and binds the sockets; nothing
    /// is served until [`BoundTracker::run`].
    pub async fn bind(config: TrackerConfig) -> Result<BoundTracker, TrackerError> {
        config.validate().map_err(TrackerError::Config)?;
        let allow = match &config.allowlist {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| TrackerError::Allowlist {
                    path: path.clone(),
                    error: e.to_string(),
                })?;
                Some(
                    core::parse_allowlist(&text).map_err(|error| TrackerError::Allowlist {
                        path: path.clone(),
                        error,
                    })?,
                )
            }
        };
        let store = Arc::new(Store::open(config.data_dir.as_deref())?);
        let now = Instant::now();
        let core = Arc::new(Core::new(&config, allow, store, now)?);
        let http = match config.http.addr() {
            None => None,
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|error| TrackerError::Bind {
                            proto: "HTTP",
                            addr,
                            error,
                        })?,
                )
            }
        };
        let udp = match config.udp.addr() {
            None => None,
            Some(addr) => Some(Arc::new(udp::bind(addr).map_err(|error| {
                TrackerError::Bind {
                    proto: "UDP",
                    addr,
                    error,
                }
            })?)),
        };
        Ok(BoundTracker {
            http_addr: http.as_ref().and_then(|l| l.local_addr().ok()),
            udp_addr: udp.as_ref().and_then(|s| s.local_addr().ok()),
            http,
            udp,
            core,
            config,
        })
    }
}

/// A tracker whose sockets are bound, ready to serve.
pub struct BoundTracker {
    http_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
    http: Option<TcpListener>,
    udp: Option<Arc<UdpSocket>>,
    core: Arc<Core>,
    config: TrackerConfig,
}

impl BoundTracker {
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Serves until `cancel` fires, then stops accepting, lets open HTTP
    /// requests finish briefly and writes the completed counters.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), TrackerError> {
        let BoundTracker {
            http,
            udp,
            core,
            config,
            http_addr,
            ..
        } = self;
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(listener) = http {
            let state = http::AppState {
                core: core.clone(),
                publish: config.publish,
                token: config.publish_token.as_deref().map(Arc::from),
                request_timeout: Duration::from_secs(config.http_request_timeout_secs.max(1)),
                max_torrent_bytes: config.max_torrent_bytes,
                publish_slots: Arc::new(tokio::sync::Semaphore::new(config.publish_concurrency)),
                publish_concurrency: config.publish_concurrency,
                local: http_addr,
            };
            let (config, cancel) = (config.clone(), cancel.clone());
            tasks.spawn(async move { http::serve(listener, state, &config, cancel).await });
        }
        if let Some(socket) = udp {
            let ids = ConnectionIds::new(rand::random(), Instant::now());
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            for _ in 0..workers {
                tasks.spawn(udp::serve(
                    socket.clone(),
                    core.clone(),
                    ids.clone(),
                    cancel.clone(),
                ));
            }
        }
        tasks.spawn(maintain(core.clone(), config.interval_secs, cancel.clone()));
        while tasks.join_next().await.is_some() {}
        let c = core.clone();
        match tokio::task::spawn_blocking(move || c.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Ok(()),
        }
    }
}

/// Once a second: a rate sample. Every half interval (1 to 60 s): expire
/// peers. Every 5 s: write completed counters.
async fn maintain(core: Arc<Core>, interval_secs: u32, cancel: CancellationToken) {
    let sweep_every = u64::from(interval_secs / 2).clamp(1, 60);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        let now = Instant::now();
        core.stats.tick(now);
        if n.is_multiple_of(sweep_every) {
            let c = core.clone();
            let _ = tokio::task::spawn_blocking(move || c.sweep(now)).await;
        }
        if n.is_multiple_of(5) {
            let c = core.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || c.flush()).await {
                tracing::warn!("could not save completed counters: {e}");
            }
        }
    }
}
