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
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use sta_proto::wire::BLOCK_LEN;

    const P: u32 = BLOCK_LEN * 4;

    fn picker(pieces: u32) -> Picker {
        let geo = Geometry::new(P, u64::from(P) * u64::from(pieces));
        Picker::new(
            geo,
            Bitfield::new(pieces),
            PickerConfig {
                random_first: 0,
                ..Default::default()
            },
        )
    }

    fn bits(n: u32, ones: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(n);
        for i in ones {
            b.set(*i);
        }
        b
    }

    fn pick(
        p: &mut Picker,
        peer: u64,
        has: &Bitfield,
        max: usize,
        rng: &mut StdRng,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        p.pick(PeerKey(peer), has, max, &|_| false, None, rng, &mut out);
        out
    }

    #[test]
    fn rarest_piece_first_random_among_equals() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..40 {
            let mut p = picker(8);
            p.peer_bitfield(&Bitfield::full(8));
            p.peer_bitfield(&bits(8, &[0, 1, 2, 3, 4, 5]));
            // Pieces 6 and 7 are the rarest (one copy each).
            let mut r = StdRng::seed_from_u64(seed);
            let out = pick(&mut p, 1, &Bitfield::full(8), 1, &mut r);
            assert!(out[0].piece == 6 || out[0].piece == 7, "{out:?}");
            seen.insert(out[0].piece);
        }
        assert_eq!(seen.len(), 2, "ties must be broken at random");
        let _ = &mut rng;
    }

    #[test]
    fn started_pieces_are_finished_before_new_ones() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut p = picker(4);
        p.peer_bitfield(&Bitfield::full(4));
        let first = pick(&mut p, 1, &Bitfield::full(4), 2, &mut rng);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|b| b.piece == first[0].piece));
        // Another peer continues the same piece before starting another.
        let second = pick(&mut p, 2, &Bitfield::full(4), 2, &mut rng);
        assert!(
            second.iter().all(|b| b.piece == first[0].piece),
            "{second:?}"
        );
        let third = pick(&mut p, 2, &Bitfield::full(4), 1, &mut rng);
        assert_ne!(third[0].piece, first[0].piece);
    }

    #[test]
    fn random_first_then_rarest() {
        let geo = Geometry::new(P, u64::from(P) * 50);
        let mut p = Picker::new(
            geo,
            Bitfield::new(50),
            PickerConfig {
                random_first: 2,
                ..Default::default()
            },
        );
        p.peer_bitfield(&Bitfield::full(50));
        p.peer_bitfield(&bits(50, &(0..49).collect::<Vec<_>>()));
        // Piece 49 is rarest, but with nothing verified yet the pick is random.
        let mut hits = 0;
        for seed in 0..20 {
            let mut q = Picker::new(
                geo,
                Bitfield::new(50),
                PickerConfig {
                    random_first: 2,
                    ..Default::default()
                },
            );
            q.availability = p.availability.clone();
            let out = pick(
                &mut q,
                1,
                &Bitfield::full(50),
                1,
                &mut StdRng::seed_from_u64(seed),
            );
            hits += u32::from(out[0].piece == 49);
        }
        assert!(
            hits < 5,
            "random first should rarely hit the rarest piece: {hits}"
        );
        p.on_piece_verified(0);
        p.on_piece_verified(1);
        let out = pick(
            &mut p,
            1,
            &Bitfield::full(50),
            1,
            &mut StdRng::seed_from_u64(3),
        );
        assert_eq!(out[0].piece, 49);
    }

    #[test]
    fn only_pieces_the_peer_has_and_we_lack() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut p = picker(4);
        p.on_piece_verified(1);
        let has = bits(4, &[1, 2]);
        p.peer_bitfield(&has);
        let out = pick(&mut p, 1, &has, 100, &mut rng);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|b| b.piece == 2));
        assert!(pick(&mut p, 1, &has, 100, &mut rng).is_empty());
        assert!(p.interesting(&has));
        assert!(!p.interesting(&bits(4, &[1])));
    }

    #[test]
    fn endgame_duplicates_and_cancel_signal() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut p = picker(1);
        let all = Bitfield::full(1);
        p.peer_bitfield(&all);
        let a = pick(&mut p, 1, &all, 10, &mut rng);
        assert_eq!(a.len(), 4);
        assert!(p.in_endgame());
        let a_set: std::collections::HashSet<BlockRef> = a.iter().copied().collect();
        let mut b = Vec::new();
        p.pick(PeerKey(2), &all, 10, &|_| false, None, &mut rng, &mut b);
        assert_eq!(
            b.len(),
            4,
            "endgame requests the same blocks from another peer"
        );
        // Peer 1 must not be given its own blocks again.
        let mut again = Vec::new();
        p.pick(
            PeerKey(1),
            &all,
            10,
            &|x| a_set.contains(x),
            None,
            &mut rng,
            &mut again,
        );
        assert!(again.is_empty());
        assert_eq!(
            p.on_block_received(a[0], true),
            Arrival::Fresh {
                others_requested: true,
                piece_complete: false
            }
        );
        assert_eq!(p.on_block_received(a[0], true), Arrival::Duplicate);
        for blk in &a[1..] {
            p.on_block_received(*blk, true);
        }
        assert!(matches!(
            p.on_block_received(a[3], true),
            Arrival::Duplicate
        ));
    }

    #[test]
    fn dropped_requests_return_to_the_pool_and_failed_pieces_restart() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut p = picker(1);
        let all = Bitfield::full(1);
        let a = pick(&mut p, 1, &all, 2, &mut rng);
        p.on_request_dropped(a[0]);
        let b = pick(&mut p, 2, &all, 1, &mut rng);
        assert_eq!(b, vec![a[0]]);
        let rest = pick(&mut p, 2, &all, 10, &mut rng);
        for blk in a
            .iter()
            .chain(&b)
            .chain(&rest)
            .collect::<std::collections::BTreeSet<_>>()
        {
            p.on_block_received(*blk, true);
        }
        assert_eq!(p.progress_of(0), Some((4, 4)));
        p.on_piece_failed(0);
        assert_eq!(pick(&mut p, 3, &all, 10, &mut rng).len(), 4);
        p.on_piece_verified(0);
        assert!(p.is_complete());
        assert!(!p.in_endgame());
    }

    #[test]
    fn a_spared_peer_gets_only_pieces_nobody_else_has() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut p = picker(4);
        let all = Bitfield::full(4);
        // Another peer can give pieces 0, 1 and 2: from the spared seed, only piece 3.
        let elsewhere = bits(4, &[0, 1, 2]);
        let mut out = Vec::new();
        p.pick(
            PeerKey(1),
            &all,
            100,
            &|_| false,
            Some(&elsewhere),
            &mut rng,
            &mut out,
        );
        assert!(
            out.iter().all(|b| b.piece == 3) && out.len() == 4,
            "{out:?}"
        );
        let mut more = Vec::new();
        p.pick(
            PeerKey(1),
            &all,
            100,
            &|_| false,
            Some(&elsewhere),
            &mut rng,
            &mut more,
        );
        assert!(more.is_empty());
    }

    #[test]
    fn partial_pieces_are_capped() {
        let geo = Geometry::new(P, u64::from(P) * 10);
        let mut p = Picker::new(
            geo,
            Bitfield::new(10),
            PickerConfig {
                max_partial: 2,
                random_first: 0,
                ..Default::default()
            },
        );
        let all = Bitfield::full(10);
        let out = pick(&mut p, 1, &all, 100, &mut StdRng::seed_from_u64(7));
        assert_eq!(out.len(), 8);
        assert_eq!(p.partial_count(), 2);
    }

    #[test]
    fn availability_follows_peers() {
        let mut p = picker(3);
        let b = bits(3, &[0, 2]);
        p.peer_bitfield(&b);
        p.peer_have(1);
        assert_eq!(
            (p.availability(0), p.availability(1), p.availability(2)),
            (1, 1, 1)
        );
        p.peer_lost(&b);
        assert_eq!((p.availability(0), p.availability(1)), (0, 1));
    }
}
