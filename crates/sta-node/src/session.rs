//! A node: one listening port shared by any number of torrents. Incoming
//! connections are routed by the info-hash in their handshake; everything
//! else belongs to the torrents. Rate limits for the whole node live here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::RngExt;
use sta_proto::metainfo::Metainfo;
use sta_proto::{InfoHash, PeerId};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::NodeConfig;
use crate::peer::conn::read_handshake_prefix;
use crate::ratelimit::RateLimiter;
use crate::storage::StorageError;
use crate::torrent::{self, Role, TorrentCmd, TorrentHandle, TorrentParams};

/// Incoming connections allowed to sit in their handshake at once. Beyond
/// this the oldest is dropped for the newcomer: a flood of idle connections
/// cannot pin memory, nor lock out a real peer, which finishes its handshake
/// in milliseconds.
const MAX_PENDING_HANDSHAKES: usize = 128;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot listen on {addr}: {error}{hint}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
        hint: &'static str,
    },
    #[error("torrent {0} is already in this node")]
    Duplicate(InfoHash),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// sta's peer id: Azureus style, `-ST` + version + random characters.
pub fn new_peer_id() -> PeerId {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(b"-ST0001-");
    let mut rng = rand::rng();
    for b in &mut id[8..] {
        *b = CHARS[rng.random_range(0..CHARS.len())];
    }
    PeerId(id)
}

struct Shared {
    torrents: RwLock<Vec<TorrentHandle>>,
}

impl Shared {
    fn find(&self, h: &InfoHash) -> Option<TorrentHandle> {
        self.torrents
            .read()
            .expect("torrents")
            .iter()
            .find(|t| t.info_hash == *h)
            .cloned()
    }
}

#[derive(Clone)]
pub struct Session {
    pub config: NodeConfig,
    pub peer_id: PeerId,
    /// Where peers reach us.
    pub listen_addr: SocketAddr,
    pub global_up: Arc<RateLimiter>,
    pub global_down: Arc<RateLimiter>,
    shared: Arc<Shared>,
    node_peers: Arc<AtomicUsize>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Session {
    /// Binds the peer port and starts accepting connections.
    pub async fn start(config: NodeConfig) -> Result<Session, SessionError> {
        let ip = config.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = SocketAddr::new(ip, config.port);
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            let hint = if error.kind() == std::io::ErrorKind::AddrInUse {
                " (the port is taken: pick another with -p/--port, or 0 for any free port)"
            } else {
                ""
            };
            SessionError::Bind { addr, error, hint }
        })?;
        let listen_addr = listener.local_addr().map_err(|error| SessionError::Bind {
            addr,
            error,
            hint: "",
        })?;
        let s = Session {
            global_up: Arc::new(RateLimiter::new(config.max_upload_rate)),
            global_down: Arc::new(RateLimiter::new(config.max_download_rate)),
            config,
            peer_id: new_peer_id(),
            listen_addr,
            shared: Arc::new(Shared {
                torrents: RwLock::new(Vec::new()),
            }),
            node_peers: Arc::new(AtomicUsize::new(0)),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        };
        s.tasks
            .spawn(accept_loop(listener, s.shared.clone(), s.cancel.clone()));
        Ok(s)
    }

    /// Adds a torrent, stored under `dir`; it checks its data and starts.
    pub fn add_torrent(
        &self,
        metainfo: Metainfo,
        dir: PathBuf,
        role: Role,
        limits: (Option<u64>, Option<u64>),
    ) -> Result<TorrentHandle, SessionError> {
        let mut list = self.shared.torrents.write().expect("torrents");
        if list.iter().any(|t| t.info_hash == metainfo.info_hash) {
            return Err(SessionError::Duplicate(metainfo.info_hash));
        }
        let params = TorrentParams {
            metainfo: Arc::new(metainfo),
            dir,
            role,
            peer_id: self.peer_id,
            announce_port: self.config.announce_port.unwrap_or(self.listen_addr.port()),
            config: self.config.clone(),
            global_up: self.global_up.clone(),
            global_down: self.global_down.clone(),
            max_upload_rate: limits.0,
            max_download_rate: limits.1,
            node_peers: self.node_peers.clone(),
        };
        let h = torrent::spawn(params, &self.tasks, self.cancel.child_token())?;
        list.push(h.clone());
        Ok(h)
    }

    /// Stops a torrent (announcing `stopped`, saving resume state) and forgets it.
    pub fn remove_torrent(&self, info_hash: &InfoHash) -> bool {
        let mut list = self.shared.torrents.write().expect("torrents");
        let Some(pos) = list.iter().position(|t| t.info_hash == *info_hash) else {
            return false;
        };
        let h = list.remove(pos);
        h.cancel.cancel();
        true
    }

    pub fn torrents(&self) -> Vec<TorrentHandle> {
        self.shared.torrents.read().expect("torrents").clone()
    }

    pub fn set_global_limits(&self, up: Option<Option<u64>>, down: Option<Option<u64>>) {
        if let Some(u) = up {
            self.global_up.set_rate(u);
        }
        if let Some(d) = down {
            self.global_down.set_rate(d);
        }
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops every torrent gracefully and waits (bounded) for their tasks.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within 10 s");
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let pending: Arc<std::sync::Mutex<std::collections::VecDeque<(u64, CancellationToken)>>> =
        Arc::default();
    let mut next_id = 0u64;
    loop {
        let (mut stream, addr) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors or similar: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let id = next_id;
        let evict = cancel.child_token();
        {
            let mut p = pending.lock().expect("pending handshakes");
            if p.len() >= MAX_PENDING_HANDSHAKES
                && let Some((_, oldest)) = p.pop_front()
            {
                oldest.cancel();
            }
            p.push_back((id, evict.clone()));
        }
        let (shared, pending) = (shared.clone(), pending.clone());
        tokio::spawn(async move {
            let prefix = tokio::select! {
                _ = evict.cancelled() => {
                    tracing::debug!(%addr, "dropping an idle handshake for a newer connection");
                    return;
                }
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_handshake_prefix(&mut stream)) => r,
            };
            pending
                .lock()
                .expect("pending handshakes")
                .retain(|(i, _)| *i != id);
            match prefix {
                Ok(Ok((_reserved, info_hash))) => match shared.find(&info_hash) {
                    Some(t) => {
                        let _ = t.send(TorrentCmd::Incoming { stream, addr }).await;
                    }
                    None => {
                        tracing::debug!(%addr, %info_hash, "incoming peer for a torrent we do not have")
                    }
                },
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "bad incoming handshake"),
                Err(_) => tracing::debug!(%addr, "incoming handshake timed out"),
            }
        });
    }
}
