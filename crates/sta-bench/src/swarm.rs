//! The simulated population: info-hashes, peers and the event mix they
//! announce with. Peer p belongs to torrent p mod T; a quarter of the peers
//! start as seeders. A peer's first announce is `started`; after that a
//! leecher sometimes completes (and becomes a seeder), any peer sometimes
//! stops (and starts again later), and otherwise it re-announces.

use sta_proto::tracker::{Announce, Event};
use sta_proto::{InfoHash, PeerId};

/// SplitMix64, for a reproducible request mix.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Torrent i's info-hash: 20 bytes of SplitMix64 seeded by i.
pub fn info_hash(i: u32) -> InfoHash {
    let mut r = Rng(0x5741_2d74_7261_636b ^ u64::from(i));
    let mut h = [0u8; 20];
    for c in h.chunks_mut(8) {
        let b = r.next().to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
    InfoHash(h)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Off,
    Leecher,
    Seeder,
}

pub struct Swarm {
    hashes: Vec<InfoHash>,
    state: Vec<State>,
    rng: Rng,
    numwant: u32,
}

impl Swarm {
    pub fn new(torrents: u32, peers: u32, numwant: u32, seed: u64) -> Swarm {
        Swarm {
            hashes: (0..torrents.max(1)).map(info_hash).collect(),
            state: vec![State::Off; peers.max(1) as usize],
            rng: Rng(seed),
            numwant,
        }
    }

    pub fn peers(&self) -> u32 {
        self.state.len() as u32
    }

    fn make(&self, p: u32, event: Event, seeder: bool) -> Announce {
        let mut id = *b"-SB0001-000000000000";
        id[8..12].copy_from_slice(&p.to_be_bytes());
        let t = p as usize % self.hashes.len();
        Announce {
            info_hash: self.hashes[t],
            peer_id: PeerId(id),
            // Unique within a torrent although every peer shares 127.0.0.1.
            port: 10_000 + (p as usize / self.hashes.len()) as u16 % 50_000,
            uploaded: 0,
            downloaded: 0,
            left: if seeder { 0 } else { 1 << 20 },
            event,
            numwant: Some(self.numwant),
            key: Some(p),
            ip: None,
        }
    }

    /// Peer p's first announce (the fill phase).
    pub fn start(&mut self, p: u32) -> Announce {
        let seeder = p.is_multiple_of(4);
        self.state[p as usize] = if seeder {
            State::Seeder
        } else {
            State::Leecher
        };
        self.make(p, Event::Started, seeder)
    }

    /// The next announce of a random peer.
    pub fn next(&mut self) -> Announce {
        let p = self.rng.below(self.peers());
        let roll = self.rng.below(1000);
        match self.state[p as usize] {
            State::Off => self.start(p),
            _ if roll < 20 => {
                let seeder = self.state[p as usize] == State::Seeder;
                self.state[p as usize] = State::Off;
                self.make(p, Event::Stopped, seeder)
            }
            State::Leecher if roll < 70 => {
                self.state[p as usize] = State::Seeder;
                self.make(p, Event::Completed, true)
            }
            s => self.make(p, Event::None, s == State::Seeder),
        }
    }
}
