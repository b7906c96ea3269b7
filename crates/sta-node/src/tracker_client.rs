//! Announcing to trackers: HTTP (BEP 3) and UDP (BEP 15), with multi-tracker
//! tiers (BEP 12). One task per torrent: `started` first, then a regular
//! re-announce at the tracker's interval, `completed` when asked, `stopped`
//! on shutdown. Failures back off exponentially up to a minute, so a tracker
//! that comes back is found soon; meanwhile the torrent keeps trading with
//! the peers it knows.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use sta_proto::tracker::http::HttpAnnounce;
use sta_proto::tracker::udp::{Request, Response};
use sta_proto::tracker::{Announce, AnnounceResponse, DEFAULT_NUMWANT, Event, PeerEntry};
use sta_proto::{InfoHash, PeerId};
use tokio::net::UdpSocket;

use crate::http_body::{MAX_TRACKER_RESPONSE, read_capped};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What the torrent reports in each announce.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnnounceStats {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// Port peers should connect to.
    pub port: u16,
    pub announce_ip: Option<IpAddr>,
    /// Source address for announces (the node's `--bind`).
    pub bind: Option<IpAddr>,
    pub key: u32,
}

/// Tracker state for status tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrackerStatus {
    pub url: String,
    /// "announcing", "ok", "error" or "stopped".
    pub state: String,
    pub error: Option<String>,
    pub seeders: u32,
    pub leechers: u32,
    pub peers_received: u64,
    pub announces: u64,
    /// Seconds until the next announce.
    pub next_announce_secs: u64,
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const UDP_TRY_TIMEOUT: Duration = Duration::from_secs(3);
const UDP_TRIES: u32 = 2;
const MIN_INTERVAL: u32 = 5;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("{0}")]
    Http(String),
    #[error("tracker refused: {0}")]
    Refused(String),
    #[error("invalid tracker response: {0}")]
    Invalid(String),
    #[error("no answer from UDP tracker")]
    UdpTimeout,
    #[error("unsupported tracker URL {0}")]
    Unsupported(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct TrackerClient {
    tiers: Vec<Vec<String>>,
    cfg: ClientConfig,
    http: reqwest::Client,
    /// The UDP tracker's connection id, when it was given, and the socket
    /// it was given to: trackers may tie the id to our address and port, so
    /// announces that use it go out from the same socket.
    udp_conn: Option<(String, u64, Instant, std::sync::Arc<UdpSocket>)>,
}

impl TrackerClient {
    pub fn new(mut tiers: Vec<Vec<String>>, cfg: ClientConfig) -> Self {
        // BEP 12: shuffle each tier once, then promote whichever answers.
        let mut rng = rand::rng();
        for t in &mut tiers {
            t.shuffle(&mut rng);
        }
        let mut b = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .user_agent(concat!("sta/", env!("CARGO_PKG_VERSION")));
        if let Some(ip) = cfg.bind.filter(|ip| !ip.is_unspecified()) {
            b = b.local_address(ip);
        }
        let http = b.build().expect("HTTP client without TLS builds");
        TrackerClient {
            tiers,
            cfg,
            http,
            udp_conn: None,
        }
    }

    /// Announces through the tiers in order; the first tracker to answer wins
    /// and moves to the front of its tier.
    pub async fn announce(
        &mut self,
        event: Event,
        stats: AnnounceStats,
    ) -> (String, Result<AnnounceResponse, AnnounceError>) {
        let mut last = (
            String::new(),
            Err(AnnounceError::Unsupported("no trackers".into())),
        );
        for t in 0..self.tiers.len() {
            for i in 0..self.tiers[t].len() {
                let url = self.tiers[t][i].clone();
                let r = self.announce_one(&url, event, stats).await;
                if r.is_ok() {
                    let u = self.tiers[t].remove(i);
                    self.tiers[t].insert(0, u);
                    return (url, r);
                }
                tracing::debug!(%url, error = %r.as_ref().err().map(ToString::to_string).unwrap_or_default(), "announce failed");
                last = (url, r);
            }
        }
        last
    }

    fn announce_msg(&self, event: Event, stats: AnnounceStats) -> Announce {
        Announce {
            info_hash: self.cfg.info_hash,
            peer_id: self.cfg.peer_id,
            port: self.cfg.port,
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
            left: stats.left,
            event,
            numwant: Some(if event == Event::Stopped {
                0
            } else {
                DEFAULT_NUMWANT
            }),
            key: Some(self.cfg.key),
            ip: self.cfg.announce_ip,
        }
    }

    async fn announce_one(
        &mut self,
        url: &str,
        event: Event,
        stats: AnnounceStats,
    ) -> Result<AnnounceResponse, AnnounceError> {
        let a = self.announce_msg(event, stats);
        if url.starts_with("http://") || url.starts_with("https://") {
            let q = HttpAnnounce {
                announce: a,
                compact: true,
                no_peer_id: true,
            }
            .to_query();
            let sep = if url.contains('?') { '&' } else { '?' };
            let resp = self
                .http
                .get(format!("{url}{sep}{q}"))
                .send()
                .await
                .map_err(|e| AnnounceError::Http(e.to_string()))?;
            let body = read_capped(resp, MAX_TRACKER_RESPONSE)
                .await
                .map_err(|e| AnnounceError::Http(e.to_string()))?;
            AnnounceResponse::parse(&body).map_err(|e| match e {
                sta_proto::tracker::http::ResponseError::Failure(r) => AnnounceError::Refused(r),
                other => AnnounceError::Invalid(other.to_string()),
            })
        } else if let Some(rest) = url.strip_prefix("udp://") {
            let hostport = rest.split('/').next().unwrap_or(rest).to_owned();
            self.announce_udp(url, &hostport, a).await
        } else {
            Err(AnnounceError::Unsupported(url.to_owned()))
        }
    }

    async fn announce_udp(
        &mut self,
        url: &str,
        hostport: &str,
        a: Announce,
    ) -> Result<AnnounceResponse, AnnounceError> {
        let addr: SocketAddr = tokio::net::lookup_host(hostport)
            .await?
            .next()
            .ok_or_else(|| AnnounceError::Unsupported(url.to_owned()))?;
        let local: SocketAddr = match (self.cfg.bind, addr) {
            (Some(ip), _) if ip.is_ipv4() == addr.is_ipv4() => SocketAddr::new(ip, 0),
            (_, SocketAddr::V4(_)) => "0.0.0.0:0".parse().expect("literal"),
            (_, SocketAddr::V6(_)) => "[::]:0".parse().expect("literal"),
        };
        let v6 = addr.is_ipv6();
        // Connection ids are good for a minute (BEP 15).
        let cached = match &self.udp_conn {
            Some((u, id, at, sock)) if u == url && at.elapsed() < Duration::from_secs(60) => {
                Some((*id, sock.clone()))
            }
            _ => None,
        };
        let (conn_id, sock) = match cached {
            Some(c) => c,
            None => {
                let sock = std::sync::Arc::new(UdpSocket::bind(local).await?);
                sock.connect(addr).await?;
                let tid = rand::random::<u32>();
                match udp_exchange(
                    &sock,
                    &Request::Connect {
                        transaction_id: tid,
                    },
                    tid,
                    v6,
                )
                .await?
                {
                    Response::Connect { connection_id, .. } => {
                        self.udp_conn =
                            Some((url.to_owned(), connection_id, Instant::now(), sock.clone()));
                        (connection_id, sock)
                    }
                    Response::Error { message, .. } => return Err(AnnounceError::Refused(message)),
                    _ => return Err(AnnounceError::Invalid("unexpected reply to connect".into())),
                }
            }
        };
        let tid = rand::random::<u32>();
        match udp_exchange(
            &sock,
            &Request::Announce {
                connection_id: conn_id,
                transaction_id: tid,
                announce: a,
            },
            tid,
            v6,
        )
        .await?
        {
            Response::Announce {
                interval,
                leechers,
                seeders,
                peers,
                ..
            } => Ok(AnnounceResponse {
                interval,
                min_interval: None,
                complete: seeders,
                incomplete: leechers,
                peers: peers
                    .into_iter()
                    .map(|addr| PeerEntry {
                        addr,
                        peer_id: None,
                    })
                    .collect(),
                warning: None,
            }),
            Response::Error { message, .. } => {
                self.udp_conn = None;
                Err(AnnounceError::Refused(message))
            }
            _ => Err(AnnounceError::Invalid(
                "unexpected reply to announce".into(),
            )),
        }
    }
}

async fn udp_exchange(
    sock: &UdpSocket,
    req: &Request,
    tid: u32,
    v6: bool,
) -> Result<Response, AnnounceError> {
    let mut out = Vec::with_capacity(100);
    req.write(&mut out);
    let mut buf = vec![0u8; 2048];
    for _ in 0..UDP_TRIES {
        sock.send(&out).await?;
        let deadline = tokio::time::Instant::now() + UDP_TRY_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(n)) => match Response::parse(&buf[..n], v6) {
                    Ok(r) if response_tid(&r) == tid => return Ok(r),
                    _ => continue, // stray or stale datagram
                },
            }
        }
    }
    Err(AnnounceError::UdpTimeout)
}

fn response_tid(r: &Response) -> u32 {
    match r {
        Response::Connect { transaction_id, .. }
        | Response::Announce { transaction_id, .. }
        | Response::Scrape { transaction_id, .. }
        | Response::Error { transaction_id, .. } => *transaction_id,
    }
}

/// How long to wait before the next regular announce: the tracker's
/// `interval` (BEP 3), never less than its `min interval` nor than a floor
/// that protects trackers from misconfigured tiny intervals. `min interval`
/// only bounds announces the user forces; it is not the schedule.
fn reannounce_wait(resp: &AnnounceResponse) -> Duration {
    let secs = resp
        .interval
        .max(resp.min_interval.unwrap_or(0))
        .max(MIN_INTERVAL);
    Duration::from_secs(u64::from(secs))
}

/// Exponential back-off after `failures` failed announces in a row: 4 s,
/// 8 s, ... up to a minute, so a tracker that returns is found soon.
fn backoff(failures: u32) -> Duration {
    (Duration::from_secs(2) * 2u32.saturating_pow(failures.min(6))).min(MAX_BACKOFF)
}

/// Runs the announce loop until `cancel`, then announces `stopped`.
pub async fn run(
    mut client: TrackerClient,
    stats: watch::Receiver<AnnounceStats>,
    mut events: mpsc::Receiver<Event>,
    peers: mpsc::Sender<Vec<SocketAddr>>,
    status: watch::Sender<TrackerStatus>,
    cancel: CancellationToken,
) {
    if client.tiers.iter().all(Vec::is_empty) {
        return;
    }
    let mut event = Event::Started;
    let mut failures = 0u32;
    let mut announces = 0u64;
    let mut received = 0u64;
    loop {
        status.send_modify(|s| s.state = "announcing".into());
        let now_stats = *stats.borrow();
        let (url, r) = client.announce(event, now_stats).await;
        announces += 1;
        let wait = match r {
            Ok(resp) => {
                failures = 0;
                event = Event::None;
                received += resp.peers.len() as u64;
                let wait = reannounce_wait(&resp);
                status.send_replace(TrackerStatus {
                    url,
                    state: "ok".into(),
                    error: resp.warning,
                    seeders: resp.complete,
                    leechers: resp.incomplete,
                    peers_received: received,
                    announces,
                    next_announce_secs: wait.as_secs(),
                });
                let list: Vec<SocketAddr> = resp.peers.iter().map(|p| p.addr).collect();
                if !list.is_empty() && peers.send(list).await.is_err() {
                    return;
                }
                wait
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures);
                tracing::warn!(%url, error = %e, retry_in = ?wait, "announce failed");
                status.send_modify(|s| {
                    s.url = url.clone();
                    s.state = "error".into();
                    s.error = Some(e.to_string());
                    s.announces = announces;
                    s.next_announce_secs = wait.as_secs();
                });
                wait
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            e = events.recv() => match e {
                Some(e) => event = e,
                None => break,
            },
        }
    }
    // A `completed` not yet announced (a node that exits as soon as it has
    // every piece) goes out before `stopped`, so the tracker counts the
    // download. Both are bounded in time: shutdown never hangs on a dead tracker.
    let final_stats = *stats.borrow();
    let mut completed = event == Event::Completed;
    while let Ok(e) = events.try_recv() {
        completed |= e == Event::Completed;
    }
    if completed {
        let done = tokio::time::timeout(
            Duration::from_secs(3),
            client.announce(Event::Completed, final_stats),
        )
        .await;
        if let Ok((url, Err(e))) = done {
            tracing::debug!(%url, error = %e, "completed announce failed");
        }
    }
    let stop = tokio::time::timeout(
        Duration::from_secs(3),
        client.announce(Event::Stopped, final_stats),
    )
    .await;
    if let Ok((url, Err(e))) = stop {
        tracing::debug!(%url, error = %e, "stopped announce failed");
    }
    status.send_modify(|s| s.state = "stopped".into());
}

#[cfg(test)]
mod tests;
