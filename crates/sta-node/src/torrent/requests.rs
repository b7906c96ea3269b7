//! Keeping a torrent's request pipelines full: which blocks each peer is
//! asked for (the picker, with seeds spared for the pieces only they have),
//! moving requests from a slow seed to a leecher that has the piece, and
//! taking requests back from peers that stopped answering.

use std::time::{Duration, Instant};

use sta_proto::wire::Message;

use super::Torrent;
use crate::bitfield::Bitfield;
use crate::types::{BlockRef, PeerKey};

impl Torrent {
    /// Pieces a seed should be spared: the pieces that leechers unchoking us
    /// can give are left to them, and the seed is asked only for what nobody
    /// else has. A seed's upload is what a swarm runs short of first; spent
    /// on pieces the leechers already trade, it would make second copies
    /// instead of new ones.
    pub(super) fn spare_seed(&self, key: PeerKey) -> Option<Bitfield> {
        let me = self.peers.get(&key)?;
        // A plain random picker (the experiment that shows why piece choice
        // matters) takes pieces from anyone.
        if !me.state.have.is_complete() || self.p.config.picker == crate::picker::Strategy::Random {
            return None;
        }
        let others = || {
            self.peers
                .iter()
                .filter(|(k, p)| **k != key && !p.state.have.is_complete() && !p.state.peer_choking)
        };
        let busy_elsewhere = others().any(|(_, p)| p.state.outstanding() > 0);
        let best_other = others()
            .map(|(_, p)| p.down_meter.rate())
            .max()
            .unwrap_or(0);
        if !busy_elsewhere || me.down_meter.rate() >= best_other {
            return None;
        }
        let mut union = Bitfield::new(self.geo.num_pieces);
        for (_, p) in others() {
            for i in p.state.have.iter_ones() {
                union.set(i);
            }
        }
        Some(union)
    }

    /// `from`, a leecher that unchokes us, now has `piece`. Requests for it
    /// that have waited at a seed for over 200 ms are cancelled and
    /// the piece is taken from `from` instead. A seed that is slow to answer
    /// is short of upload; it serves the pieces it sent least often first, so
    /// such a request would come out at the very end as a second copy.
    pub(super) fn reroute(&mut self, from: PeerKey, piece: u32) {
        if self.picker.progress_of(piece).is_none()
            || self.p.config.picker == crate::picker::Strategy::Random
        {
            return;
        }
        let Some(x) = self.peers.get(&from) else {
            return;
        };
        if x.state.peer_choking || x.state.have.is_complete() {
            return;
        }
        let now = Instant::now();
        let patience = Duration::from_millis(200);
        let blocks: Vec<BlockRef> = (0..self.geo.blocks_in_piece(piece))
            .map(|b| self.geo.block(piece, b))
            .collect();
        let mut cancelled = Vec::new();
        for (k, p) in self.peers.iter_mut() {
            if *k == from || !p.state.have.is_complete() {
                continue;
            }
            for b in &blocks {
                if p.state
                    .requested_at(b)
                    .is_some_and(|t| now.duration_since(t) >= patience)
                    && p.state.cancel(b)
                {
                    cancelled.push((*k, *b));
                }
            }
        }
        if cancelled.is_empty() {
            return;
        }
        for (k, b) in cancelled {
            self.picker.on_request_dropped(b);
            self.send(k, Message::Cancel(b.to_wire()));
        }
        self.fill_requests(from);
    }

    /// Tops up a peer's request pipeline from the picker.
    pub(super) fn fill_requests(&mut self, key: PeerKey) {
        if self.paused || self.error.is_some() {
            return;
        }
        let avoid = self.spare_seed(key);
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let want = p.state.wants();
        if want == 0 {
            return;
        }
        let mut blocks: Vec<BlockRef> = Vec::with_capacity(want);
        let state = &p.state;
        self.picker.pick(
            key,
            &state.have,
            want,
            &|b| state.is_outstanding(b),
            avoid.as_ref(),
            &mut self.rng,
            &mut blocks,
        );
        if blocks.is_empty() {
            return;
        }
        p.state.on_requested(Instant::now(), &blocks);
        for b in blocks {
            self.send(key, Message::Request(b.to_wire()));
        }
    }

    pub(super) fn fill_all_requests(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill_requests(k);
        }
    }

    /// Releases the requests of peers that went silent.
    pub(super) fn check_timeouts(&mut self, now: Instant) {
        let timeout = Duration::from_secs(self.p.config.request_timeout_secs);
        let mut released = Vec::new();
        for (k, p) in self.peers.iter_mut() {
            let dropped = p.state.check_timeout(now, timeout);
            if !dropped.is_empty() {
                tracing::debug!(addr = %p.addr, blocks = dropped.len(), "peer snubbed us; re-requesting its blocks elsewhere");
                released.push((*k, dropped));
            }
        }
        for (k, dropped) in released {
            for b in &dropped {
                self.picker.on_request_dropped(*b);
                self.send(k, Message::Cancel(b.to_wire()));
            }
        }
    }
}
