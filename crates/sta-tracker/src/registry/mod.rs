//! The swarm registry: which peers announce which torrents. Sans-I/O: time
//! comes in as `now: Instant`, randomness from a seed, and nothing here
//! touches a socket, a file or a clock. The front ends (`http`, `udp`) and the
//! shards around it (`shards`) own all of that.
//!
//! A peer is keyed by (info-hash, peer id); its address is what the front end
//! passes (the connection's, unless the tracker trusts the announce `ip`).
//! Peers of each address family live in their own [`peers::PeerSet`], since a
//! client can only use peers of the family it announced over. Peers expire
//! after `ttl` without an announce; `stopped` removes one at once.

mod peers;
mod rng;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sta_proto::tracker::{Event, PeerEntry, ScrapeStats};
use sta_proto::{InfoHash, PeerId};

pub use peers::AddrBytes;
use peers::{COUNTED, Peer, PeerSet};
pub use rng::Rng;

/// The caps and answers of one registry (one shard of the tracker).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_torrents: usize,
    pub max_peers_per_torrent: usize,
    pub max_peers: usize,
    pub default_numwant: u32,
    pub max_numwant: u32,
    /// A peer that has not announced for this long is dropped. At most 9 hours
    /// (ages are kept in 16-bit seconds).
    pub ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_torrents: 1_000_000,
            max_peers_per_torrent: 50_000,
            max_peers: 5_000_000,
            default_numwant: 50,
            max_numwant: 200,
            ttl: Duration::from_secs(600),
        }
    }
}

/// An announce as the registry sees it: the front end has already chosen
/// the peer's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub ip: IpAddr,
    pub port: u16,
    pub left: u64,
    pub event: Event,
    pub numwant: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceReply {
    /// Seeders, over both address families.
    pub complete: u32,
    /// Leechers, over both address families.
    pub incomplete: u32,
    /// Peers of the requester's address family, never the requester itself;
    /// leechers only when the requester is a seeder.
    pub peers: Vec<PeerEntry>,
}

/// Why an announce was refused; the text is the `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("tracker is full: it already tracks {0} torrents, the most it allows; try again later")]
    TooManyTorrents(usize),
    #[error("torrent is full: it has {0} peers, the most this tracker allows per torrent")]
    TorrentFull(usize),
    #[error("tracker is full: it already tracks {0} peers, the most it allows; try again later")]
    TooManyPeers(usize),
}

/// Counts over every torrent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub torrents: usize,
    pub seeders: usize,
    pub leechers: usize,
    pub completed: u64,
}

/// One torrent's line on the stats page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TorrentRow {
    pub info_hash: InfoHash,
    pub seeders: u32,
    pub leechers: u32,
    pub completed: u32,
}

#[derive(Debug, Default)]
struct Torrent {
    v4: PeerSet<[u8; 4]>,
    v6: Option<Box<PeerSet<[u8; 16]>>>,
    completed: u32,
    /// `completed` events not yet handed to `take_dirty`.
    unflushed: u32,
}

impl Torrent {
    fn seeders(&self) -> usize {
        self.v4.seeders() + self.v6.as_ref().map_or(0, |s| s.seeders())
    }
    fn leechers(&self) -> usize {
        self.v4.leechers() + self.v6.as_ref().map_or(0, |s| s.leechers())
    }
    fn peers(&self) -> usize {
        self.v4.len() + self.v6.as_ref().map_or(0, |s| s.len())
    }
}

pub struct Registry {
    torrents: HashMap<InfoHash, Torrent>,
    /// Keyed hashing of peer ids, which clients choose freely.
    hasher: RandomState,
    limits: Limits,
    epoch: Instant,
    rng: Rng,
    seeders: usize,
    leechers: usize,
    completed: u64,
    dirty: Vec<InfoHash>,
}

/// Seconds since the epoch, mod 2^16; ages are differences mod 2^16, exact
/// as long as the sweep runs more often than every 2^16 − ttl seconds.
fn tick(epoch: Instant, now: Instant) -> u16 {
    (now.saturating_duration_since(epoch).as_secs() & 0xffff) as u16
}

fn fresh(seen: u16, now: u16, ttl: u16) -> bool {
    now.wrapping_sub(seen) <= ttl
}

impl Registry {
    pub fn new(limits: Limits, now: Instant, seed: u64) -> Self {
        Registry {
            torrents: HashMap::new(),
            hasher: RandomState::new(),
            limits,
            epoch: now,
            rng: Rng::new(seed),
            seeders: 0,
            leechers: 0,
            completed: 0,
            dirty: Vec::new(),
        }
    }

    fn ttl16(&self) -> u16 {
        self.limits.ttl.as_secs().min(32_000) as u16
    }

    pub fn announce(
        &mut self,
        now: Instant,
        req: &AnnounceRequest,
    ) -> Result<AnnounceReply, RegistryError> {
        let now16 = tick(self.epoch, now);
        let ttl = self.ttl16();
        if req.event == Event::Stopped {
            let Some(t) = self.torrents.get_mut(&req.info_hash) else {
                return Ok(AnnounceReply::default());
            };
            let before = (t.seeders(), t.leechers());
            if let Some(i) = t.v4.find(&req.peer_id.0, &self.hasher) {
                t.v4.remove(i, &self.hasher);
            }
            if let Some(v6) = &mut t.v6
                && let Some(i) = v6.find(&req.peer_id.0, &self.hasher)
            {
                v6.remove(i, &self.hasher);
            }
            let after = (t.seeders(), t.leechers());
            self.seeders = self.seeders + after.0 - before.0;
            self.leechers = self.leechers + after.1 - before.1;
            return Ok(AnnounceReply {
                complete: after.0 as u32,
                incomplete: after.1 as u32,
                peers: Vec::new(),
            });
        }
        if !self.torrents.contains_key(&req.info_hash)
            && self.torrents.len() >= self.limits.max_torrents
        {
            return Err(RegistryError::TooManyTorrents(self.limits.max_torrents));
        }
        let all_peers = self.seeders + self.leechers;
        let t = self.torrents.entry(req.info_hash).or_default();
        let before = (t.seeders(), t.leechers());
        let room = if t.peers() >= self.limits.max_peers_per_torrent {
            Err(RegistryError::TorrentFull(
                self.limits.max_peers_per_torrent,
            ))
        } else if all_peers >= self.limits.max_peers {
            Err(RegistryError::TooManyPeers(self.limits.max_peers))
        } else {
            Ok(())
        };
        let want = req
            .numwant
            .unwrap_or(self.limits.default_numwant)
            .min(self.limits.max_numwant) as usize;
        let mut found = Vec::new();
        let ctx = Ctx {
            req,
            now16,
            ttl,
            want,
            h: &self.hasher,
        };
        // A peer that moved to the other address family leaves its old entry.
        let result = match req.ip {
            IpAddr::V4(v4) => {
                if let Some(v6) = &mut t.v6
                    && let Some(i) = v6.find(&req.peer_id.0, &self.hasher)
                {
                    v6.remove(i, &self.hasher);
                }
                serve(
                    &mut t.v4,
                    v4.octets(),
                    &ctx,
                    room,
                    &mut self.rng,
                    &mut found,
                )
            }
            IpAddr::V6(v6) => {
                if let Some(i) = t.v4.find(&req.peer_id.0, &self.hasher) {
                    t.v4.remove(i, &self.hasher);
                }
                let set = t.v6.get_or_insert_with(Default::default);
                serve(set, v6.octets(), &ctx, room, &mut self.rng, &mut found)
            }
        };
        let after = (t.seeders(), t.leechers());
        self.seeders = self.seeders + after.0 - before.0;
        self.leechers = self.leechers + after.1 - before.1;
        match result {
            Ok(counted) => {
                if counted {
                    t.completed = t.completed.saturating_add(1);
                    self.completed += 1;
                    if t.unflushed == 0 {
                        self.dirty.push(req.info_hash);
                    }
                    t.unflushed = t.unflushed.saturating_add(1);
                }
                Ok(AnnounceReply {
                    complete: after.0 as u32,
                    incomplete: after.1 as u32,
                    peers: found
                        .into_iter()
                        .map(|(ip, port, id)| PeerEntry {
                            addr: SocketAddr::new(ip, port),
                            peer_id: Some(PeerId(id)),
                        })
                        .collect(),
                })
            }
            Err(e) => {
                if t.peers() == 0 && t.completed == 0 {
                    self.torrents.remove(&req.info_hash);
                }
                Err(e)
            }
        }
    }

    /// Counters of one torrent; zeros for a torrent nobody announced.
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeStats {
        self.torrents
            .get(info_hash)
            .map(|t| ScrapeStats {
                complete: t.seeders() as u32,
                downloaded: t.completed,
                incomplete: t.leechers() as u32,
            })
            .unwrap_or_default()
    }

    /// Drops peers older than the ttl, and torrents left with nobody. An
    /// empty torrent keeps its `completed` counter while the registry is
    /// below half its torrent cap (the counter is also on disk).
    /// Returns the number of peers dropped.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let now16 = tick(self.epoch, now);
        let ttl = self.ttl16();
        let h = &self.hasher;
        let mut dropped = 0;
        for t in self.torrents.values_mut() {
            dropped += expire(&mut t.v4, now16, ttl, h);
            if let Some(v6) = &mut t.v6 {
                dropped += expire(v6, now16, ttl, h);
                if v6.is_empty() {
                    t.v6 = None;
                }
            }
        }
        let crowded = self.torrents.len() > self.limits.max_torrents / 2;
        self.torrents
            .retain(|_, t| t.peers() > 0 || t.unflushed > 0 || (t.completed > 0 && !crowded));
        self.recount();
        dropped
    }

    fn recount(&mut self) {
        let (mut s, mut l, mut c) = (0, 0, 0u64);
        for t in self.torrents.values() {
            s += t.seeders();
            l += t.leechers();
            c += u64::from(t.completed);
        }
        (self.seeders, self.leechers, self.completed) = (s, l, c);
    }

    /// `completed` counts gained since the last call, to be added on disk.
    pub fn take_dirty(&mut self) -> Vec<(InfoHash, u32)> {
        let mut out = Vec::with_capacity(self.dirty.len());
        for h in self.dirty.drain(..) {
            if let Some(t) = self.torrents.get_mut(&h) {
                out.push((h, std::mem::take(&mut t.unflushed)));
            }
        }
        out
    }

    /// Restores a `completed` counter read from disk at start-up.
    pub fn restore_completed(&mut self, info_hash: InfoHash, completed: u32) -> bool {
        if self.torrents.len() >= self.limits.max_torrents
            && !self.torrents.contains_key(&info_hash)
        {
            return false;
        }
        let t = self.torrents.entry(info_hash).or_default();
        self.completed += u64::from(completed.saturating_sub(t.completed));
        t.completed = t.completed.max(completed);
        true
    }

    pub fn totals(&self) -> Totals {
        Totals {
            torrents: self.torrents.len(),
            seeders: self.seeders,
            leechers: self.leechers,
            completed: self.completed,
        }
    }

    /// The `n` torrents with the most peers.
    pub fn top(&self, n: usize) -> Vec<TorrentRow> {
        let mut rows: Vec<TorrentRow> = self
            .torrents
            .iter()
            .map(|(h, t)| TorrentRow {
                info_hash: *h,
                seeders: t.seeders() as u32,
                leechers: t.leechers() as u32,
                completed: t.completed,
            })
            .collect();
        let key = |r: &TorrentRow| std::cmp::Reverse((r.seeders + r.leechers, r.completed));
        if rows.len() > n {
            rows.select_nth_unstable_by_key(n, key);
            rows.truncate(n);
        }
        rows.sort_by_key(key);
        rows
    }
}

struct Ctx<'a> {
    req: &'a AnnounceRequest,
    now16: u16,
    ttl: u16,
    want: usize,
    h: &'a RandomState,
}

/// Adds or refreshes the requester in `set`, then samples peers for it.
/// Returns whether this announce counts as a download.
fn serve<A: AddrBytes>(
    set: &mut PeerSet<A>,
    ip: A,
    c: &Ctx<'_>,
    room: Result<(), RegistryError>,
    rng: &mut Rng,
    out: &mut Vec<(IpAddr, u16, [u8; 20])>,
) -> Result<bool, RegistryError> {
    let req = c.req;
    let seeder = req.left == 0;
    let completed = req.event == Event::Completed;
    let (pos, counted) = match set.find(&req.peer_id.0, c.h) {
        Some(i) => {
            let mut counted = false;
            if let Some(p) = set.get_mut(i) {
                p.ip = ip;
                p.port = req.port;
                p.seen = c.now16;
                counted = completed && p.flags & COUNTED == 0;
                if counted {
                    p.flags |= COUNTED;
                }
            }
            (set.set_seeder(i, seeder, c.h), counted)
        }
        None => {
            room?;
            let peer = Peer {
                id: req.peer_id.0,
                ip,
                port: req.port,
                seen: c.now16,
                flags: if completed { COUNTED } else { 0 },
            };
            (set.insert(peer, seeder, c.h), completed)
        }
    };
    let (now16, ttl) = (c.now16, c.ttl);
    set.sample(
        seeder,
        Some(pos),
        c.want,
        rng,
        |p| fresh(p.seen, now16, ttl),
        out,
    );
    Ok(counted)
}

fn expire<A: AddrBytes>(set: &mut PeerSet<A>, now16: u16, ttl: u16, h: &RandomState) -> usize {
    let mut dropped = 0;
    for i in (0..set.len()).rev() {
        if set.get(i).is_some_and(|p| !fresh(p.seen, now16, ttl)) {
            set.remove(i, h);
            dropped += 1;
        }
    }
    if dropped > 0 {
        set.shrink(h);
    }
    dropped
}

#[cfg(test)]
mod tests;
