//! The peers of one torrent and one address family, stored lean: one dense
//! vector of 30-byte (IPv4) or 42-byte (IPv6) records, seeders first, then
//! leechers. Small swarms are searched linearly; from `INDEX_AT` peers on, a
//! table of 4-byte positions keyed by peer id finds a peer in O(1). Sampling
//! walks the vector from a random start with a random stride coprime to its
//! length, so every peer is equally likely and no allocation is needed.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashTable;

use super::rng::Rng;

/// From this many peers on, a position index replaces the linear search.
const INDEX_AT: usize = 24;

/// An IP address stored as its raw bytes (4 or 16), so a record stays small.
pub trait AddrBytes: Copy + Eq + std::fmt::Debug {
    fn from_ip(ip: IpAddr) -> Option<Self>;
    fn to_ip(self) -> IpAddr;
}

impl AddrBytes for [u8; 4] {
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(v4) => Some(v4.octets()),
            IpAddr::V6(_) => None,
        }
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
}

impl AddrBytes for [u8; 16] {
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(v6) => Some(v6.octets()),
            IpAddr::V4(_) => None,
        }
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
}

/// One peer. `seen` is the second (mod 2^16, see `Registry`) of its last announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer<A> {
    pub id: [u8; 20],
    pub ip: A,
    pub port: u16,
    pub seen: u16,
    /// `COUNTED`: its `completed` event was counted already.
    pub flags: u8,
}

pub const COUNTED: u8 = 1;

#[derive(Debug, Default)]
pub struct PeerSet<A> {
    /// `[0, seeders)` are seeders, `[seeders, len)` leechers.
    peers: Vec<Peer<A>>,
    seeders: u32,
    index: Option<Box<HashTable<u32>>>,
}

impl<A: AddrBytes> PeerSet<A> {
    #[cfg(test)]
    pub fn new() -> Self {
        PeerSet {
            peers: Vec::new(),
            seeders: 0,
            index: None,
        }
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn seeders(&self) -> usize {
        self.seeders as usize
    }

    pub fn leechers(&self) -> usize {
        self.peers.len() - self.seeders as usize
    }

    pub fn get(&self, i: usize) -> Option<&Peer<A>> {
        self.peers.get(i)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Peer<A>> {
        self.peers.get_mut(i)
    }

    #[cfg(test)]
    pub fn is_seeder(&self, i: usize) -> bool {
        i < self.seeders as usize
    }

    pub fn find(&self, id: &[u8; 20], h: &impl BuildHasher) -> Option<usize> {
        match &self.index {
            Some(t) => t
                .find(h.hash_one(id), |&i| {
                    self.peers.get(i as usize).is_some_and(|p| &p.id == id)
                })
                .map(|&i| i as usize),
            None => self.peers.iter().position(|p| &p.id == id),
        }
    }

    /// Adds a peer that is not in the set yet; returns its position.
    pub fn insert(&mut self, peer: Peer<A>, seeder: bool, h: &impl BuildHasher) -> usize {
        let i = self.peers.len();
        if i == self.peers.capacity() {
            // Grow by half, not double: most swarms are small, and spare
            // records are most of what a small swarm would waste.
            self.peers.reserve_exact(i / 2 + 1);
        }
        self.peers.push(peer);
        if let Some(t) = &mut self.index {
            let peers = &self.peers;
            t.insert_unique(h.hash_one(peer.id), i as u32, |&j| {
                h.hash_one(peers[j as usize].id)
            });
        } else if self.peers.len() >= INDEX_AT {
            self.build_index(h);
        }
        if seeder {
            self.set_seeder(i, true, h)
        } else {
            i
        }
    }

    /// Moves peer `i` into the seeder or leecher part; returns its new position.
    pub fn set_seeder(&mut self, i: usize, seeder: bool, h: &impl BuildHasher) -> usize {
        let s = self.seeders as usize;
        if seeder && i >= s {
            self.swap(i, s, h);
            self.seeders += 1;
            s
        } else if !seeder && i < s {
            self.swap(i, s - 1, h);
            self.seeders -= 1;
            s - 1
        } else {
            i
        }
    }

    /// Removes peer `i`. Only positions at or after `i` change, so a caller
    /// walking the set backwards can remove as it goes.
    pub fn remove(&mut self, i: usize, h: &impl BuildHasher) {
        if i >= self.peers.len() {
            return;
        }
        let i = self.set_seeder(i, false, h);
        let last = self.peers.len() - 1;
        self.swap(i, last, h);
        let gone = self.peers.pop().expect("not empty");
        if let Some(t) = &mut self.index
            && let Ok(e) = t.find_entry(h.hash_one(gone.id), |&j| j as usize == last)
        {
            e.remove();
        }
        if self.peers.len() < INDEX_AT / 2 {
            self.index = None;
        }
    }

    /// Releases spare capacity after many removals.
    pub fn shrink(&mut self, h: &impl BuildHasher) {
        if self.peers.capacity() > 8 && self.peers.len() < self.peers.capacity() / 4 {
            self.peers.shrink_to(self.peers.len() * 2);
            if self.index.is_some() {
                self.build_index(h);
            }
        }
    }

    fn build_index(&mut self, h: &impl BuildHasher) {
        let mut t = HashTable::with_capacity(self.peers.len());
        for (i, p) in self.peers.iter().enumerate() {
            let peers = &self.peers;
            t.insert_unique(h.hash_one(p.id), i as u32, |&j| {
                h.hash_one(peers[j as usize].id)
            });
        }
        self.index = Some(Box::new(t));
    }

    fn swap(&mut self, a: usize, b: usize, h: &impl BuildHasher) {
        if a == b {
            return;
        }
        if let Some(t) = &mut self.index {
            // Entries hold positions only, so each is found by (hash of its id,
            // old position). `a`'s entry goes through a placeholder first so
            // that the lookup of `b`'s entry cannot pick it up.
            const MOVING: u32 = u32::MAX;
            let (id_a, id_b) = (self.peers[a].id, self.peers[b].id);
            if let Some(e) = t.find_mut(h.hash_one(id_a), |&j| j as usize == a) {
                *e = MOVING;
            }
            if let Some(e) = t.find_mut(h.hash_one(id_b), |&j| j as usize == b) {
                *e = a as u32;
            }
            if let Some(e) = t.find_mut(h.hash_one(id_a), |&j| j == MOVING) {
                *e = b as u32;
            }
        }
        self.peers.swap(a, b);
    }

    /// Appends up to `want` peers (all peers, or the leechers only), skipping
    /// position `skip` (the requester) and peers that `keep` rejects.
    pub fn sample(
        &self,
        from_leechers_only: bool,
        skip: Option<usize>,
        want: usize,
        rng: &mut Rng,
        mut keep: impl FnMut(&Peer<A>) -> bool,
        out: &mut Vec<(IpAddr, u16, [u8; 20])>,
    ) {
        let lo = if from_leechers_only {
            self.seeders as usize
        } else {
            0
        };
        let n = self.peers.len() - lo;
        if n == 0 || want == 0 {
            return;
        }
        let start = rng.below(n);
        let stride = if n <= want + 1 {
            1
        } else {
            rng.coprime_stride(n)
        };
        let mut taken = 0;
        let mut pos = start;
        for _ in 0..n {
            let i = lo + pos;
            if Some(i) != skip {
                let p = &self.peers[i];
                if keep(p) {
                    out.push((p.ip.to_ip(), p.port, p.id));
                    taken += 1;
                    if taken == want {
                        break;
                    }
                }
            }
            pos = (pos + stride) % n;
        }
    }

    #[cfg(test)]
    pub fn check_invariants(&self, h: &impl BuildHasher) {
        assert!(self.seeders as usize <= self.peers.len());
        if let Some(t) = &self.index {
            assert_eq!(t.len(), self.peers.len());
            for (i, p) in self.peers.iter().enumerate() {
                assert_eq!(self.find(&p.id, h), Some(i));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    fn peer(n: u32) -> Peer<[u8; 4]> {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&n.to_be_bytes());
        Peer {
            id,
            ip: [127, 0, 0, 1],
            port: n as u16,
            seen: 0,
            flags: 0,
        }
    }

    #[test]
    fn records_are_small() {
        assert_eq!(std::mem::size_of::<Peer<[u8; 4]>>(), 30);
        assert_eq!(std::mem::size_of::<Peer<[u8; 16]>>(), 42);
        assert_eq!(std::mem::size_of::<PeerSet<[u8; 4]>>(), 40);
    }

    #[test]
    fn insert_find_move_remove_keep_the_index_right() {
        let h = RandomState::new();
        let mut rng = Rng::new(7);
        let mut s = PeerSet::new();
        let mut live: Vec<u32> = Vec::new();
        for round in 0..2000u32 {
            let op = rng.below(4);
            if op < 2 || live.is_empty() {
                let n = round;
                s.insert(peer(n), rng.below(2) == 0, &h);
                live.push(n);
            } else if op == 2 {
                let k = live.swap_remove(rng.below(live.len()));
                let i = s.find(&peer(k).id, &h).unwrap();
                s.remove(i, &h);
            } else {
                let k = live[rng.below(live.len())];
                let i = s.find(&peer(k).id, &h).unwrap();
                let to = !s.is_seeder(i);
                let j = s.set_seeder(i, to, &h);
                assert_eq!(s.is_seeder(j), to);
                assert_eq!(s.get(j).unwrap().id, peer(k).id);
            }
            s.check_invariants(&h);
            assert_eq!(s.len(), live.len());
            for k in &live {
                assert!(s.find(&peer(*k).id, &h).is_some());
            }
        }
    }

    #[test]
    fn sample_is_distinct_skips_and_filters() {
        let h = RandomState::new();
        let mut rng = Rng::new(1);
        let mut s = PeerSet::new();
        for n in 0..100 {
            s.insert(peer(n), n < 30, &h);
        }
        let mut out = Vec::new();
        s.sample(false, Some(5), 50, &mut rng, |_| true, &mut out);
        assert_eq!(out.len(), 50);
        let mut ports: Vec<u16> = out.iter().map(|p| p.1).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 50);
        let skipped = s.get(5).unwrap().port;
        assert!(!ports.contains(&skipped));
        out.clear();
        s.sample(true, None, 200, &mut rng, |_| true, &mut out);
        assert_eq!(out.len(), 70, "leechers only");
        assert!(out.iter().all(|p| p.1 >= 30));
        out.clear();
        s.sample(
            false,
            None,
            200,
            &mut rng,
            |p| p.port.is_multiple_of(2),
            &mut out,
        );
        assert_eq!(out.len(), 50);
    }

    #[test]
    fn sampling_is_spread_over_all_peers() {
        let h = RandomState::new();
        let mut rng = Rng::new(3);
        let mut s = PeerSet::new();
        for n in 0..40 {
            s.insert(peer(n), false, &h);
        }
        let mut hits = [0u32; 40];
        let mut out = Vec::new();
        for _ in 0..4000 {
            out.clear();
            s.sample(false, None, 10, &mut rng, |_| true, &mut out);
            for p in &out {
                hits[p.1 as usize] += 1;
            }
        }
        // Each peer is expected 1000 times.
        assert!(hits.iter().all(|&c| (700..1300).contains(&c)), "{hits:?}");
    }
}
