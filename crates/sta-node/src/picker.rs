//! The piece picker: which blocks to request from which peer. Sans-I/O:
//! randomness is passed in, and the torrent actor tells it what happened.
//!
//! - Rarest first: availability is counted from bitfields and haves (and
//!   uncounted when peers leave); the rarest piece the peer has is started,
//!   random among equals so that peers do not all chase the same piece.
//! - Random first: until `random_first` pieces are verified, new pieces are
//!   picked at random, so a new peer quickly has something to trade.
//! - Strict priority: blocks of pieces already started are requested before
//!   any new piece; a peer first finishes pieces it started itself (piece
//!   affinity), so a slow peer holds back only its own pieces, and its
//!   timed-out requests go back to the pool for others.
//! - Endgame: once every missing block is requested, the remaining blocks are
//!   requested from every peer that has them (up to `endgame_duplicates`
//!   requests per block); the actor cancels duplicates on arrival.
//! - In-flight memory: at most `max_partial` pieces are in progress at once.

use std::collections::BTreeMap;

use rand::{Rng, RngExt};

use crate::bitfield::Bitfield;
use crate::types::{BlockRef, Geometry, PeerKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    RarestFirst,
    /// Plain random choice: only for experiments that show why rarest first matters.
    Random,
}

#[derive(Debug, Clone)]
pub struct PickerConfig {
    pub strategy: Strategy,
    pub random_first: u32,
    pub max_partial: usize,
    pub endgame_duplicates: u8,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            strategy: Strategy::RarestFirst,
            random_first: 4,
            max_partial: 64,
            endgame_duplicates: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockState {
    Missing,
    /// Requested this many times (more than once only in endgame).
    Requested(u8),
    Received,
}

#[derive(Debug, Clone)]
struct Partial {
    blocks: Vec<BlockState>,
    missing: u32,
    received: u32,
    owner: Option<PeerKey>,
}

/// What a block's arrival means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// New data. `others_requested`: other peers still have it requested
    /// (cancel them). `piece_complete`: every block of the piece is in.
    Fresh {
        others_requested: bool,
        piece_complete: bool,
    },
    /// Already received (endgame race) or of a piece not in progress.
    Duplicate,
}

/// The state of one piece, for piece maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceState {
    Have,
    Downloading,
    Missing,
}

pub struct Picker {
    geo: Geometry,
    config: PickerConfig,
    have: Bitfield,
    availability: Vec<u16>,
    partial: BTreeMap<u32, Partial>,
    /// Missing blocks over all partial pieces.
    missing_blocks: u64,
}

impl Picker {
    pub fn new(geo: Geometry, have: Bitfield, config: PickerConfig) -> Self {
        Picker {
            availability: vec![0; geo.num_pieces as usize],
            geo,
            config,
            have,
            partial: BTreeMap::new(),
            missing_blocks: 0,
        }
    }

    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    pub fn availability(&self, piece: u32) -> u16 {
        self.availability.get(piece as usize).copied().unwrap_or(0)
    }

    pub fn set_strategy(&mut self, s: Strategy) {
        self.config.strategy = s;
    }

    pub fn peer_bitfield(&mut self, bits: &Bitfield) {
        for i in bits.iter_ones() {
            self.availability[i as usize] = self.availability[i as usize].saturating_add(1);
        }
    }

    pub fn peer_have(&mut self, piece: u32) {
        if let Some(a) = self.availability.get_mut(piece as usize) {
            *a = a.saturating_add(1);
        }
    }

    pub fn peer_lost(&mut self, bits: &Bitfield) {
        for i in bits.iter_ones() {
            self.availability[i as usize] = self.availability[i as usize].saturating_sub(1);
        }
    }

    /// Releases piece ownership held by a departed peer.
    pub fn peer_gone(&mut self, peer: PeerKey) {
        for p in self.partial.values_mut() {
            if p.owner == Some(peer) {
                p.owner = None;
            }
        }
    }

    /// Does `peer_has` hold a piece we still need?
    pub fn interesting(&self, peer_has: &Bitfield) -> bool {
        if peer_has.is_complete() {
            return !self.have.is_complete();
        }
        peer_has.iter_ones().any(|i| !self.have.has(i))
    }

    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    /// Pieces neither verified nor started.
    fn unstarted(&self) -> u64 {
        u64::from(self.geo.num_pieces) - u64::from(self.have.count()) - self.partial.len() as u64
    }

    pub fn in_endgame(&self) -> bool {
        self.unstarted() == 0 && self.missing_blocks == 0 && !self.have.is_complete()
    }

    /// Appends up to `max` blocks for `peer` to `out`. `pending(b)` says
    /// whether this peer already has `b` requested (endgame must not repeat).
    /// `avoid`: pieces to leave to other peers (a slow seed is asked only for
    /// what nobody else can give; see the torrent's `fill_requests`).
    #[allow(clippy::too_many_arguments)]
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        max: usize,
        pending: &dyn Fn(&BlockRef) -> bool,
        avoid: Option<&Bitfield>,
        rng: &mut impl Rng,
        out: &mut Vec<BlockRef>,
    ) {
        let start = out.len();
        let want = |out: &Vec<BlockRef>| out.len() - start < max;
        let avoided = |i: u32| avoid.is_some_and(|a| a.has(i));
        // 1. Pieces in progress: own first, then anyone's (a piece with no owner is adopted).
        for own in [true, false] {
            let indices: Vec<u32> = self
                .partial
                .iter()
                .filter(|(i, p)| {
                    p.missing > 0
                        && (p.owner == Some(peer)) == own
                        && peer_has.has(**i)
                        && (own || !avoided(**i))
                })
                .map(|(i, _)| *i)
                .collect();
            for i in indices {
                if !want(out) {
                    return;
                }
                self.take_missing(i, peer, max - (out.len() - start), out);
            }
        }
        // 2. New pieces.
        while want(out) && self.partial.len() < self.config.max_partial {
            let Some(i) = self.choose_new(peer_has, avoid, rng) else {
                break;
            };
            let n = self.geo.blocks_in_piece(i);
            self.partial.insert(
                i,
                Partial {
                    blocks: vec![BlockState::Missing; n as usize],
                    missing: n,
                    received: 0,
                    owner: Some(peer),
                },
            );
            self.missing_blocks += u64::from(n);
            self.take_missing(i, peer, max - (out.len() - start), out);
        }
        // 3. Endgame: duplicate requests for blocks still outstanding elsewhere
        // (not from a peer we are sparing).
        if out.len() == start && avoid.is_none() && self.in_endgame() {
            let cap = self.config.endgame_duplicates;
            for (&i, p) in self.partial.iter_mut() {
                if !peer_has.has(i) {
                    continue;
                }
                for (bi, st) in p.blocks.iter_mut().enumerate() {
                    if out.len() - start >= max {
                        return;
                    }
                    if let BlockState::Requested(n) = st {
                        let b = self.geo.block(i, bi as u32);
                        if *n < cap && !pending(&b) {
                            *n += 1;
                            out.push(b);
                        }
                    }
                }
            }
        }
    }

    fn take_missing(&mut self, piece: u32, peer: PeerKey, max: usize, out: &mut Vec<BlockRef>) {
        let geo = self.geo;
        let Some(p) = self.partial.get_mut(&piece) else {
            return;
        };
        if p.owner.is_none() {
            p.owner = Some(peer);
        }
        let mut taken = 0;
        for (bi, st) in p.blocks.iter_mut().enumerate() {
            if taken == max {
                break;
            }
            if *st == BlockState::Missing {
                *st = BlockState::Requested(1);
                p.missing -= 1;
                taken += 1;
                out.push(geo.block(piece, bi as u32));
            }
        }
        self.missing_blocks -= taken as u64;
    }

    fn choose_new(
        &self,
        peer_has: &Bitfield,
        avoid: Option<&Bitfield>,
        rng: &mut impl Rng,
    ) -> Option<u32> {
        let random = self.config.strategy == Strategy::Random
            || self.have.count() < self.config.random_first;
        let mut best: Option<u32> = None;
        let mut best_avail = u16::MAX;
        let mut ties = 0u32;
        for i in peer_has.iter_ones() {
            if self.have.has(i) || self.partial.contains_key(&i) || avoid.is_some_and(|a| a.has(i))
            {
                continue;
            }
            let a = if random {
                0
            } else {
                self.availability[i as usize]
            };
            if a < best_avail {
                best_avail = a;
                best = Some(i);
                ties = 1;
            } else if a == best_avail {
                // Reservoir sampling: each of the equals wins with the same chance.
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = Some(i);
                }
            }
        }
        best
    }

    /// A block arrived. `from_requester`: the sending peer had it requested.
    pub fn on_block_received(&mut self, b: BlockRef, from_requester: bool) -> Arrival {
        let Some(p) = self.partial.get_mut(&b.piece) else {
            return Arrival::Duplicate;
        };
        let Some(st) = p.blocks.get_mut(b.index_in_piece()) else {
            return Arrival::Duplicate;
        };
        let others = match *st {
            BlockState::Received => return Arrival::Duplicate,
            BlockState::Missing => {
                p.missing -= 1;
                self.missing_blocks -= 1;
                false
            }
            BlockState::Requested(n) => n > u8::from(from_requester),
        };
        *st = BlockState::Received;
        p.received += 1;
        Arrival::Fresh {
            others_requested: others,
            piece_complete: p.received as usize == p.blocks.len(),
        }
    }

    /// A request was cancelled, timed out or lost with its peer.
    pub fn on_request_dropped(&mut self, b: BlockRef) {
        let Some(p) = self.partial.get_mut(&b.piece) else {
            return;
        };
        let Some(st) = p.blocks.get_mut(b.index_in_piece()) else {
            return;
        };
        match *st {
            BlockState::Requested(1) => {
                *st = BlockState::Missing;
                p.missing += 1;
                self.missing_blocks += 1;
            }
            BlockState::Requested(n) => *st = BlockState::Requested(n - 1),
            _ => {}
        }
    }

    pub fn on_piece_verified(&mut self, piece: u32) {
        if let Some(p) = self.partial.remove(&piece) {
            self.missing_blocks -= u64::from(p.missing);
        }
        self.have.set(piece);
    }

    /// The piece failed its hash: every block is needed again, from anyone.
    pub fn on_piece_failed(&mut self, piece: u32) {
        if let Some(p) = self.partial.get_mut(&piece) {
            let n = p.blocks.len() as u32;
            self.missing_blocks += u64::from(n - p.missing);
            p.blocks.fill(BlockState::Missing);
            p.missing = n;
            p.received = 0;
            p.owner = None;
        }
    }

    /// Forgets a verified piece (its data turned out bad on disk).
    pub fn on_piece_lost(&mut self, piece: u32) {
        self.have.clear(piece);
    }

    pub fn piece_state(&self, piece: u32) -> PieceState {
        if self.have.has(piece) {
            PieceState::Have
        } else if self.partial.contains_key(&piece) {
            PieceState::Downloading
        } else {
            PieceState::Missing
        }
    }

    /// Received and total blocks of a piece in progress.
    pub fn progress_of(&self, piece: u32) -> Option<(u32, u32)> {
        self.partial
            .get(&piece)
            .map(|p| (p.received, p.blocks.len() as u32))
    }

    pub fn partial_count(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests;
