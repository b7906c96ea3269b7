//! What both front ends call: the policy (allowlist, address trust), the
//! registry split into shards by a keyed hash of the info-hash, the counters
//! and the catalog. Each shard is a sans-I/O [`Registry`] behind its own
//! mutex, held only for one in-memory operation (never across an await), so
//! HTTP and UDP tasks on every core rarely meet.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use sta_proto::InfoHash;
use sta_proto::tracker::{Announce, ScrapeStats, canonical_addr};

use crate::catalog::Catalog;
use crate::config::TrackerConfig;
use crate::registry::{
    AnnounceReply, AnnounceRequest, Limits, Registry, RegistryError, TorrentRow, Totals,
};
use crate::stats::{ErrorKind, Gauges, Proto, Stats};
use crate::store::{Store, StoreError};

const SHARDS: usize = 16;

/// A refused request: what to count and what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub kind: ErrorKind,
    pub reason: String,
}

pub struct Core {
    shards: Box<[Mutex<Registry>]>,
    pick: RandomState,
    pub stats: Stats,
    pub catalog: Catalog,
    pub store: Arc<Store>,
    allow: Option<HashSet<InfoHash>>,
    trust_ip: bool,
    /// The configured totals, for failure reasons (the shards hold parts).
    max_torrents: usize,
    max_peers: usize,
    pub interval: u32,
    pub min_interval: u32,
    pub started: Instant,
}

impl Core {
    /// Builds the core; restores the catalog index and completed counters
    /// from `store`.
    pub fn new(
        c: &TrackerConfig,
        allow: Option<HashSet<InfoHash>>,
        store: Arc<Store>,
        now: Instant,
    ) -> Result<Core, StoreError> {
        let per = |n: usize| n.div_ceil(SHARDS).max(1);
        let limits = Limits {
            max_torrents: per(c.max_torrents),
            max_peers_per_torrent: c.max_peers_per_torrent,
            max_peers: per(c.max_peers),
            default_numwant: c.default_numwant,
            max_numwant: c.max_numwant,
            ttl: c.peer_ttl(),
        };
        let seed: u64 = rand::random();
        let shards: Box<[Mutex<Registry>]> = (0..SHARDS)
            .map(|i| {
                Mutex::new(Registry::new(
                    limits.clone(),
                    now,
                    seed.wrapping_add(i as u64),
                ))
            })
            .collect();
        let catalog = Catalog::load(
            store.clone(),
            c.max_catalog_torrents,
            c.max_torrent_bytes,
            c.max_catalog_bytes,
        )?;
        let core = Core {
            shards,
            pick: RandomState::new(),
            stats: Stats::default(),
            catalog,
            store,
            allow,
            trust_ip: c.trust_announce_ip,
            max_torrents: c.max_torrents,
            max_peers: c.max_peers,
            interval: c.interval_secs,
            min_interval: c.min_interval_secs(),
            started: now,
        };
        for (h, n) in core.store.completed(c.max_torrents / 2)? {
            core.shard(&h).restore_completed(h, n);
        }
        Ok(core)
    }

    fn shard(&self, h: &InfoHash) -> MutexGuard<'_, Registry> {
        let i = self.pick.hash_one(h) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn allowed(&self, h: &InfoHash) -> bool {
        match &self.allow {
            None => true,
            Some(list) => list.contains(h) || self.catalog.contains(h),
        }
    }

    /// Registers an announce and picks peers. `from` is the address the
    /// request came from; the announce's `ip` is used only when trusted.
    pub fn announce(
        &self,
        now: Instant,
        a: &Announce,
        from: IpAddr,
        proto: Proto,
    ) -> Result<AnnounceReply, Refused> {
        if !self.allowed(&a.info_hash) {
            self.stats.error(ErrorKind::NotAllowed);
            return Err(Refused {
                kind: ErrorKind::NotAllowed,
                reason: format!(
                    "torrent {} is not allowed here: this tracker serves only the torrents on its allowlist or in its catalog",
                    a.info_hash.to_hex()
                ),
            });
        }
        let ip = match (self.trust_ip, a.ip) {
            (true, Some(ip)) => ip,
            _ => from,
        };
        let ip = canonical_addr(std::net::SocketAddr::new(ip, 0)).ip();
        let req = AnnounceRequest {
            info_hash: a.info_hash,
            peer_id: a.peer_id,
            ip,
            port: a.port,
            left: a.left,
            event: a.event,
            numwant: a.numwant,
        };
        let r = self.shard(&a.info_hash).announce(now, &req);
        match r {
            Ok(reply) => {
                self.stats.announce(proto, a.event);
                Ok(reply)
            }
            Err(e) => {
                let kind = match e {
                    RegistryError::TooManyTorrents(_) => ErrorKind::TorrentCap,
                    RegistryError::TorrentFull(_) | RegistryError::TooManyPeers(_) => {
                        ErrorKind::PeerCap
                    }
                };
                self.stats.error(kind);
                // A shard's own cap is a share of the total: name the total
                // the operator configured, not the share.
                let reason = match e {
                    RegistryError::TooManyTorrents(_) => format!(
                        "tracker is full: no room for another torrent (it tracks at most {} in all); try again later",
                        self.max_torrents
                    ),
                    RegistryError::TooManyPeers(_) => format!(
                        "tracker is full: no room for another peer (it lists at most {} in all); try again later",
                        self.max_peers
                    ),
                    RegistryError::TorrentFull(_) => e.to_string(),
                };
                Err(Refused { kind, reason })
            }
        }
    }

    pub fn scrape(&self, hashes: &[InfoHash], proto: Proto) -> Vec<ScrapeStats> {
        self.stats.scrape(proto);
        hashes.iter().map(|h| self.shard(h).scrape(h)).collect()
    }

    /// One torrent's counters, for pages; not counted as a scrape.
    pub fn scrape_quiet(&self, h: &InfoHash) -> ScrapeStats {
        self.shard(h).scrape(h)
    }

    /// Expires old peers in every shard, one shard locked at a time.
    pub fn sweep(&self, now: Instant) {
        for s in self.shards.iter() {
            let n = s.lock().unwrap_or_else(|e| e.into_inner()).sweep(now);
            self.stats.expired(n);
        }
    }

    /// Writes completed counts gained since the last flush. Blocking.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut deltas = Vec::new();
        for s in self.shards.iter() {
            deltas.extend(s.lock().unwrap_or_else(|e| e.into_inner()).take_dirty());
        }
        self.store.add_completed(&deltas)
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.shards.iter() {
            let x = s.lock().unwrap_or_else(|e| e.into_inner()).totals();
            t.torrents += x.torrents;
            t.seeders += x.seeders;
            t.leechers += x.leechers;
            t.completed += x.completed;
        }
        t
    }

    /// The `n` busiest torrents over all shards.
    pub fn top(&self, n: usize) -> Vec<TorrentRow> {
        let mut rows: Vec<TorrentRow> = self
            .shards
            .iter()
            .flat_map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).top(n))
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.seeders + r.leechers, r.completed)));
        rows.truncate(n);
        rows
    }

    pub fn gauges(&self, now: Instant) -> Gauges {
        let t = self.totals();
        Gauges {
            torrents: t.torrents,
            seeders: t.seeders,
            leechers: t.leechers,
            completed: t.completed,
            catalog: self.catalog.len(),
            catalog_bytes: self.catalog.stored_bytes(),
            rss_bytes: crate::stats::rss_bytes(),
            uptime_secs: now.saturating_duration_since(self.started).as_secs(),
        }
    }
}

/// Reads an allowlist: one hex info-hash a line; blank lines and `#`
/// comments are skipped; anything else is an error naming the line.
pub fn parse_allowlist(text: &str) -> Result<HashSet<InfoHash>, String> {
    let mut out = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let h = InfoHash::from_hex(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        out.insert(h);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sta_proto::PeerId;
    use sta_proto::tracker::Event;

    fn announce(h: u8, ip: Option<IpAddr>) -> Announce {
        Announce {
            info_hash: InfoHash([h; 20]),
            peer_id: PeerId([1; 20]),
            port: 7000,
            uploaded: 0,
            downloaded: 0,
            left: 5,
            event: Event::Started,
            numwant: None,
            key: None,
            ip,
        }
    }

    fn core(c: &TrackerConfig, allow: Option<HashSet<InfoHash>>) -> Core {
        let store = Arc::new(Store::open(None).unwrap());
        Core::new(c, allow, store, Instant::now()).unwrap()
    }

    #[test]
    fn allowlist_file_and_refusal() {
        let text = format!(
            "# private\n{}\n\n  {}  # second\n",
            "aa".repeat(20),
            "0b".repeat(20)
        );
        let list = parse_allowlist(&text).unwrap();
        assert_eq!(list.len(), 2);
        assert!(parse_allowlist("xyz\n").unwrap_err().starts_with("line 1:"));
        let c = core(&TrackerConfig::default(), Some(list));
        let now = Instant::now();
        let from: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            c.announce(now, &announce(0xaa, None), from, Proto::Http)
                .is_ok()
        );
        let e = c
            .announce(now, &announce(0xcc, None), from, Proto::Http)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotAllowed);
        assert!(e.reason.contains("not allowed"), "{}", e.reason);
        assert_eq!(c.stats.errors_of(ErrorKind::NotAllowed), 1);
    }

    #[test]
    fn announce_ip_only_when_trusted() {
        let claimed: IpAddr = "10.9.9.9".parse().unwrap();
        let from: IpAddr = "127.0.0.3".parse().unwrap();
        let now = Instant::now();
        for trust in [false, true] {
            let c = core(
                &TrackerConfig {
                    trust_announce_ip: trust,
                    ..TrackerConfig::default()
                },
                None,
            );
            c.announce(now, &announce(1, Some(claimed)), from, Proto::Udp)
                .unwrap();
            let mut other = announce(1, None);
            other.peer_id = PeerId([2; 20]);
            let got = c.announce(now, &other, from, Proto::Udp).unwrap();
            let want = if trust { claimed } else { from };
            assert_eq!(got.peers[0].addr.ip(), want);
        }
    }

    #[test]
    fn caps_are_counted_by_kind() {
        let c = core(
            &TrackerConfig {
                max_peers_per_torrent: 1,
                ..TrackerConfig::default()
            },
            None,
        );
        let now = Instant::now();
        let from: IpAddr = "127.0.0.1".parse().unwrap();
        c.announce(now, &announce(1, None), from, Proto::Http)
            .unwrap();
        let mut second = announce(1, None);
        second.peer_id = PeerId([2; 20]);
        let e = c.announce(now, &second, from, Proto::Http).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PeerCap);
        assert!(e.reason.starts_with("torrent is full"));
        assert_eq!(c.totals().leechers, 1);
    }
}
