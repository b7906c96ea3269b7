//! Small shared types of the engine.

use sta_proto::wire::{BLOCK_LEN, BlockInfo};

/// Identifies one peer connection inside a torrent (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u64);

/// A block of a piece we have checked against the torrent's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    pub piece: u32,
    pub offset: u32,
    pub len: u32,
}

impl BlockRef {
    pub fn index_in_piece(&self) -> usize {
        (self.offset / BLOCK_LEN) as usize
    }
    pub fn to_wire(self) -> BlockInfo {
        BlockInfo {
            index: self.piece,
            begin: self.offset,
            length: self.len,
        }
    }
}

/// Piece geometry: how many pieces and blocks, and how long each is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub piece_length: u32,
    pub total_length: u64,
    pub num_pieces: u32,
}

impl Geometry {
    pub fn new(piece_length: u32, total_length: u64) -> Self {
        Geometry {
            piece_length,
            total_length,
            num_pieces: total_length.div_ceil(u64::from(piece_length)) as u32,
        }
    }

    pub fn piece_len(&self, piece: u32) -> u32 {
        let start = u64::from(piece) * u64::from(self.piece_length);
        (self.total_length.saturating_sub(start)).min(u64::from(self.piece_length)) as u32
    }

    pub fn blocks_in_piece(&self, piece: u32) -> u32 {
        self.piece_len(piece).div_ceil(BLOCK_LEN)
    }

    pub fn block(&self, piece: u32, index: u32) -> BlockRef {
        let offset = index * BLOCK_LEN;
        BlockRef {
            piece,
            offset,
            len: (self.piece_len(piece) - offset).min(BLOCK_LEN),
        }
    }

    /// Checks a wire block against the layout: piece in range, offset and
    /// length inside the piece. `aligned` also requires our 16 KiB grid
    /// (for blocks we requested); requests from peers only need to fit.
    pub fn check(&self, b: BlockInfo, aligned: bool, max_len: u32) -> Option<BlockRef> {
        if b.index >= self.num_pieces || b.length == 0 || b.length > max_len {
            return None;
        }
        let plen = self.piece_len(b.index);
        if u64::from(b.begin) + u64::from(b.length) > u64::from(plen) {
            return None;
        }
        let r = BlockRef {
            piece: b.index,
            offset: b.begin,
            len: b.length,
        };
        if aligned
            && (!b.begin.is_multiple_of(BLOCK_LEN) || r != self.block(b.index, b.begin / BLOCK_LEN))
        {
            return None;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_of_a_short_last_piece() {
        let g = Geometry::new(32768, 70_000);
        assert_eq!(g.num_pieces, 3);
        assert_eq!(g.piece_len(2), 70_000 - 65536);
        assert_eq!(g.blocks_in_piece(0), 2);
        assert_eq!(g.blocks_in_piece(2), 1);
        assert_eq!(
            g.block(2, 0),
            BlockRef {
                piece: 2,
                offset: 0,
                len: 4464
            }
        );
    }

    #[test]
    fn check_rejects_out_of_range_blocks() {
        let g = Geometry::new(32768, 70_000);
        let b = |index, begin, length| BlockInfo {
            index,
            begin,
            length,
        };
        assert!(g.check(b(0, 16384, 16384), true, BLOCK_LEN).is_some());
        assert!(g.check(b(3, 0, 16384), true, BLOCK_LEN).is_none());
        assert!(g.check(b(2, 0, 16384), true, BLOCK_LEN).is_none());
        assert!(g.check(b(2, 0, 4464), true, BLOCK_LEN).is_some());
        assert!(g.check(b(0, 100, 16384), true, BLOCK_LEN).is_none());
        assert!(g.check(b(0, 100, 16384), false, BLOCK_LEN).is_some());
        assert!(g.check(b(0, 0, 0), false, BLOCK_LEN).is_none());
        assert!(g.check(b(0, u32::MAX, 16384), false, BLOCK_LEN).is_none());
        assert!(g.check(b(0, 0, 32768), false, BLOCK_LEN).is_none());
    }
}
