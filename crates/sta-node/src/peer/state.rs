//! The protocol state of one peer connection (BEP 3), sans-I/O: the torrent
//! feeds it each message with the time and gets back what happened, or a
//! violation that ends the connection. It checks everything a peer sends
//! against the torrent before the engine acts on it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sta_proto::wire::{BLOCK_LEN, BlockInfo, MAX_BLOCK_LEN, Message};

use crate::bitfield::{Bitfield, BitfieldError};
use crate::types::{BlockRef, Geometry};

/// Fewest and most requests kept outstanding to one peer.
pub const MIN_QUEUE: usize = 4;
pub const MAX_QUEUE: usize = 500;
/// Start with this many before the peer's rate is known.
pub const START_QUEUE: usize = 8;
/// Seconds of data a peer's queue should hold. libtorrent uses about 3; sta
/// uses 2 because a request waiting in a seed's queue is one that cannot move
/// to a leecher that gets the piece meanwhile (`torrent/requests.rs`), and 2 s
/// of a fast peer's rate still fills the 500-request cap on loopback.
const QUEUE_SECONDS: u64 = 2;
/// Unrequested blocks tolerated before the peer is dropped.
const MAX_UNREQUESTED: u32 = 32;
/// Requests for pieces we lack tolerated before the peer is dropped.
const MAX_BAD_REQUESTS: u32 = 64;
/// Cancelled or timed-out requests remembered so a late block still counts.
const RECENT_DROPPED: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("bad bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    #[error("have for piece {0}, past the last piece")]
    HaveOutOfRange(u32),
    #[error("request outside the torrent: {0:?}")]
    BadRequest(BlockInfo),
    #[error("block that does not fit the torrent: piece {index} offset {begin} length {length}")]
    BadBlock { index: u32, begin: u32, length: u32 },
    #[error("sent {0} blocks we never asked for")]
    Unrequested(u32),
    #[error("asked {0} times for pieces we do not have")]
    RequestsForMissingPieces(u32),
}

/// What a message means for the torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Nothing,
    /// The peer choked us; these requests of ours are void (BEP 3).
    Choked(Vec<BlockRef>),
    Unchoked,
    Interested,
    NotInterested,
    /// The peer now has this piece (first time we hear of it).
    Have(u32),
    /// The peer's bitfield is set.
    Bitfield,
    /// A later bitfield added these pieces.
    Haves(Vec<u32>),
    /// Block data. `requested`: it was outstanding (false for a late block
    /// after a cancel or timeout; still useful).
    Block {
        block: BlockRef,
        data: Bytes,
        requested: bool,
    },
    /// A valid request to serve (the peer is unchoked and we have the piece).
    Request(BlockRef),
    Cancel(BlockRef),
}

#[derive(Debug)]
pub struct PeerState {
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub have: Bitfield,
    /// A bitfield or have arrived. BEP 3 wants the bitfield first, but aria2
    /// sends a have first and then bitfields (sometimes twice): a later
    /// bitfield adds its pieces, like a batch of haves.
    seen_pieces: bool,
    outstanding: HashMap<BlockRef, Instant>,
    recently_dropped: VecDeque<BlockRef>,
    pub queue_target: usize,
    unrequested: u32,
    bad_requests: u32,
    pub connected_at: Instant,
    pub last_block_at: Option<Instant>,
    first_block_at: Option<Instant>,
    /// When the queue last went from empty to non-empty: a silent peer is
    /// timed from here, not from a block it never sent.
    waiting_since: Option<Instant>,
    pub snubbed: bool,
}

impl PeerState {
    pub fn new(num_pieces: u32, now: Instant) -> Self {
        PeerState {
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            have: Bitfield::new(num_pieces),
            seen_pieces: false,
            outstanding: HashMap::new(),
            recently_dropped: VecDeque::new(),
            queue_target: START_QUEUE,
            unrequested: 0,
            bad_requests: 0,
            connected_at: now,
            last_block_at: None,
            first_block_at: None,
            waiting_since: None,
            snubbed: false,
        }
    }

    pub fn on_message(
        &mut self,
        now: Instant,
        msg: Message,
        geo: &Geometry,
        we_have: &Bitfield,
    ) -> Result<Event, Violation> {
        let first = !self.seen_pieces;
        if matches!(msg, Message::Have(_) | Message::Bitfield(_)) {
            self.seen_pieces = true;
        }
        Ok(match msg {
            Message::KeepAlive | Message::Port(_) | Message::Unknown { .. } => Event::Nothing,
            Message::Choke => {
                self.peer_choking = true;
                let dropped: Vec<BlockRef> = self.outstanding.drain().map(|(b, _)| b).collect();
                for b in &dropped {
                    self.remember_dropped(*b);
                }
                self.waiting_since = None;
                Event::Choked(dropped)
            }
            Message::Unchoke => {
                self.peer_choking = false;
                Event::Unchoked
            }
            Message::Interested => {
                self.peer_interested = true;
                Event::Interested
            }
            Message::NotInterested => {
                self.peer_interested = false;
                Event::NotInterested
            }
            Message::Have(i) => {
                if i >= geo.num_pieces {
                    return Err(Violation::HaveOutOfRange(i));
                }
                if self.have.set(i) {
                    Event::Have(i)
                } else {
                    Event::Nothing
                }
            }
            Message::Bitfield(bytes) => {
                let bits = Bitfield::from_wire(&bytes, geo.num_pieces)?;
                if first {
                    self.have = bits;
                    Event::Bitfield
                } else {
                    let new: Vec<u32> = bits.iter_ones().filter(|i| self.have.set(*i)).collect();
                    Event::Haves(new)
                }
            }
            Message::Request(b) => {
                let block = geo
                    .check(b, false, MAX_BLOCK_LEN)
                    .ok_or(Violation::BadRequest(b))?;
                if !we_have.has(block.piece) {
                    self.bad_requests += 1;
                    if self.bad_requests > MAX_BAD_REQUESTS {
                        return Err(Violation::RequestsForMissingPieces(self.bad_requests));
                    }
                    Event::Nothing
                } else if self.am_choking {
                    // Sent before our choke reached it: BEP 3 says drop it.
                    Event::Nothing
                } else {
                    Event::Request(block)
                }
            }
            Message::Cancel(b) => match geo.check(b, false, MAX_BLOCK_LEN) {
                Some(block) => Event::Cancel(block),
                None => Event::Nothing,
            },
            Message::Piece { index, begin, data } => {
                let info = BlockInfo {
                    index,
                    begin,
                    length: data.len() as u32,
                };
                let block = geo
                    .check(info, true, BLOCK_LEN)
                    .ok_or(Violation::BadBlock {
                        index,
                        begin,
                        length: info.length,
                    })?;
                if self.outstanding.remove(&block).is_some() {
                    self.last_block_at = Some(now);
                    self.first_block_at.get_or_insert(now);
                    self.snubbed = false;
                    self.waiting_since = if self.outstanding.is_empty() {
                        None
                    } else {
                        Some(now)
                    };
                    Event::Block {
                        block,
                        data,
                        requested: true,
                    }
                } else if let Some(pos) = self.recently_dropped.iter().position(|b| *b == block) {
                    self.recently_dropped.remove(pos);
                    self.last_block_at = Some(now);
                    Event::Block {
                        block,
                        data,
                        requested: false,
                    }
                } else {
                    self.unrequested += 1;
                    if self.unrequested > MAX_UNREQUESTED {
                        return Err(Violation::Unrequested(self.unrequested));
                    }
                    Event::Nothing
                }
            }
        })
    }

    fn remember_dropped(&mut self, b: BlockRef) {
        if self.recently_dropped.len() == RECENT_DROPPED {
            self.recently_dropped.pop_front();
        }
        self.recently_dropped.push_back(b);
    }

    /// How many more requests the pipeline wants now.
    pub fn wants(&self) -> usize {
        if self.peer_choking || !self.am_interested {
            0
        } else {
            self.queue_target.saturating_sub(self.outstanding.len())
        }
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    pub fn is_outstanding(&self, b: &BlockRef) -> bool {
        self.outstanding.contains_key(b)
    }

    /// When we requested `b` from this peer, if it is still outstanding.
    pub fn requested_at(&self, b: &BlockRef) -> Option<Instant> {
        self.outstanding.get(b).copied()
    }

    pub fn on_requested(&mut self, now: Instant, blocks: &[BlockRef]) {
        if self.outstanding.is_empty() && !blocks.is_empty() {
            self.waiting_since = Some(now);
        }
        for b in blocks {
            self.outstanding.insert(*b, now);
        }
    }

    /// We cancel our request for `b`; true when it was outstanding.
    pub fn cancel(&mut self, b: &BlockRef) -> bool {
        let was = self.outstanding.remove(b).is_some();
        if was {
            self.remember_dropped(*b);
        }
        was
    }

    /// All our outstanding requests (on disconnect, to give them back).
    pub fn take_outstanding(&mut self) -> Vec<BlockRef> {
        self.outstanding.drain().map(|(b, _)| b).collect()
    }

    /// Resizes the pipeline to about `QUEUE_SECONDS` of the peer's rate.
    pub fn update_queue(&mut self, now: Instant, down_rate: u64) {
        if self.snubbed {
            self.queue_target = 1;
            return;
        }
        // Until the peer has sent for a few seconds its measured rate says too
        // little: the queue may grow, but not shrink below the start depth.
        let Some(first) = self.first_block_at else {
            return;
        };
        let by_rate = (down_rate * QUEUE_SECONDS / u64::from(BLOCK_LEN)) as usize;
        let floor = if now.duration_since(first) < Duration::from_secs(QUEUE_SECONDS) {
            START_QUEUE
        } else {
            MIN_QUEUE
        };
        self.queue_target = by_rate.clamp(floor, MAX_QUEUE);
    }

    /// When the peer has sent nothing for `timeout` while we wait on it, it is
    /// snubbing us: its requests go back to the pool and its queue shrinks to
    /// one. Returns the requests released.
    pub fn check_timeout(&mut self, now: Instant, timeout: Duration) -> Vec<BlockRef> {
        match self.waiting_since {
            Some(since) if now.duration_since(since) >= timeout && !self.outstanding.is_empty() => {
                self.snubbed = true;
                self.queue_target = 1;
                self.waiting_since = None;
                let dropped = self.take_outstanding();
                for b in &dropped {
                    self.remember_dropped(*b);
                }
                dropped
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geometry {
        Geometry::new(32768, 32768 * 3 + 100)
    }

    fn st() -> PeerState {
        PeerState::new(4, Instant::now())
    }

    fn piece(index: u32, begin: u32, len: usize) -> Message {
        Message::Piece {
            index,
            begin,
            data: Bytes::from(vec![1u8; len]),
        }
    }

    #[test]
    fn bitfields_are_checked() {
        let g = geo();
        let have = Bitfield::new(4);
        let mut p = st();
        assert_eq!(
            p.on_message(
                Instant::now(),
                Message::Bitfield(Bytes::from_static(&[0xf0])),
                &g,
                &have
            ),
            Ok(Event::Bitfield)
        );
        assert!(p.have.is_complete());
        assert_eq!(
            p.on_message(
                Instant::now(),
                Message::Bitfield(Bytes::from_static(&[0xf0])),
                &g,
                &have
            ),
            Ok(Event::Haves(vec![]))
        );
        let mut q = st();
        assert!(matches!(
            q.on_message(
                Instant::now(),
                Message::Bitfield(Bytes::from_static(&[0xff])),
                &g,
                &have
            ),
            Err(Violation::Bitfield(_))
        ));
        let mut r = st();
        assert_eq!(
            r.on_message(Instant::now(), Message::Have(4), &g, &have),
            Err(Violation::HaveOutOfRange(4))
        );
    }

    #[test]
    fn extension_messages_may_precede_the_bitfield_but_haves_may_not() {
        let g = geo();
        let have = Bitfield::new(4);
        let mut p = st();
        p.on_message(Instant::now(), Message::KeepAlive, &g, &have)
            .unwrap();
        p.on_message(
            Instant::now(),
            Message::Unknown {
                id: 20,
                payload: Bytes::new(),
            },
            &g,
            &have,
        )
        .unwrap();
        assert_eq!(
            p.on_message(
                Instant::now(),
                Message::Bitfield(Bytes::from_static(&[0x80])),
                &g,
                &have
            ),
            Ok(Event::Bitfield)
        );
        // aria2: a have, then a bitfield, then the same bitfield again.
        let mut q = st();
        q.on_message(Instant::now(), Message::Have(1), &g, &have)
            .unwrap();
        assert_eq!(
            q.on_message(
                Instant::now(),
                Message::Bitfield(Bytes::from_static(&[0xc0])),
                &g,
                &have
            ),
            Ok(Event::Haves(vec![0]))
        );
        assert_eq!(
            q.on_message(
                Instant::now(),
                Message::Bitfield(Bytes::from_static(&[0xc0])),
                &g,
                &have
            ),
            Ok(Event::Haves(vec![]))
        );
        assert_eq!(q.have.count(), 2);
    }

    #[test]
    fn requests_are_checked_and_dropped_while_choked() {
        let g = geo();
        let mut have = Bitfield::new(4);
        have.set(0);
        let mut p = st();
        let req = |index, begin, length| {
            Message::Request(BlockInfo {
                index,
                begin,
                length,
            })
        };
        assert_eq!(
            p.on_message(Instant::now(), req(0, 0, 16384), &g, &have),
            Ok(Event::Nothing),
            "choked"
        );
        p.am_choking = false;
        assert!(matches!(
            p.on_message(Instant::now(), req(0, 0, 16384), &g, &have),
            Ok(Event::Request(_))
        ));
        assert!(matches!(
            p.on_message(Instant::now(), req(0, 32000, 16384), &g, &have),
            Err(Violation::BadRequest(_))
        ));
        assert!(matches!(
            p.on_message(Instant::now(), req(9, 0, 16384), &g, &have),
            Err(Violation::BadRequest(_))
        ));
        assert!(matches!(
            p.on_message(Instant::now(), req(0, 0, 1 << 20), &g, &have),
            Err(Violation::BadRequest(_))
        ));
        for _ in 0..MAX_BAD_REQUESTS {
            assert_eq!(
                p.on_message(Instant::now(), req(1, 0, 16384), &g, &have),
                Ok(Event::Nothing)
            );
        }
        assert!(matches!(
            p.on_message(Instant::now(), req(1, 0, 16384), &g, &have),
            Err(Violation::RequestsForMissingPieces(_))
        ));
    }

    #[test]
    fn blocks_must_be_requested_and_well_formed() {
        let g = geo();
        let have = Bitfield::new(4);
        let now = Instant::now();
        let mut p = st();
        let b = g.block(0, 1);
        p.on_requested(now, &[b]);
        assert!(matches!(
            p.on_message(now, piece(0, 16384, 16384), &g, &have),
            Ok(Event::Block {
                requested: true,
                ..
            })
        ));
        assert!(matches!(
            p.on_message(now, piece(0, 0, 100), &g, &have),
            Err(Violation::BadBlock { .. })
        ));
        // A late block after our cancel is still accepted.
        let c = g.block(1, 0);
        p.on_requested(now, &[c]);
        assert!(p.cancel(&c));
        assert!(matches!(
            p.on_message(now, piece(1, 0, 16384), &g, &have),
            Ok(Event::Block {
                requested: false,
                ..
            })
        ));
        for _ in 0..MAX_UNREQUESTED {
            assert_eq!(
                p.on_message(now, piece(2, 0, 16384), &g, &have),
                Ok(Event::Nothing)
            );
        }
        assert!(matches!(
            p.on_message(now, piece(2, 0, 16384), &g, &have),
            Err(Violation::Unrequested(_))
        ));
    }

    #[test]
    fn choke_voids_requests_and_timeout_snubs() {
        let g = geo();
        let have = Bitfield::new(4);
        let t0 = Instant::now();
        let mut p = st();
        p.am_interested = true;
        p.peer_choking = false;
        assert_eq!(p.wants(), START_QUEUE);
        let blocks = [g.block(0, 0), g.block(0, 1)];
        p.on_requested(t0, &blocks);
        assert_eq!(p.wants(), START_QUEUE - 2);
        assert!(
            p.check_timeout(t0 + Duration::from_secs(5), Duration::from_secs(30))
                .is_empty()
        );
        let released = p.check_timeout(t0 + Duration::from_secs(30), Duration::from_secs(30));
        assert_eq!(released.len(), 2);
        assert!(p.snubbed);
        assert_eq!(p.wants(), 1);
        p.on_requested(t0, &blocks[..1]);
        match p.on_message(t0, Message::Choke, &g, &have).unwrap() {
            Event::Choked(v) => assert_eq!(v, vec![blocks[0]]),
            e => panic!("{e:?}"),
        }
        assert_eq!(p.wants(), 0);
    }

    #[test]
    fn queue_follows_rate() {
        let t0 = Instant::now();
        let mut p = st();
        p.update_queue(t0, 100 << 20);
        assert_eq!(
            p.queue_target, START_QUEUE,
            "no block yet: the rate means nothing"
        );
        p.first_block_at = Some(t0);
        p.update_queue(t0, 100 << 20);
        assert_eq!(p.queue_target, MAX_QUEUE);
        p.update_queue(t0, 1000);
        assert_eq!(
            p.queue_target, START_QUEUE,
            "too early to shrink below the start depth"
        );
        let later = t0 + Duration::from_secs(5);
        p.update_queue(later, 1 << 20);
        assert_eq!(
            p.queue_target,
            64 * QUEUE_SECONDS as usize,
            "1 MiB/s fills the queue for QUEUE_SECONDS"
        );
        p.update_queue(later, 1000);
        assert_eq!(p.queue_target, MIN_QUEUE);
    }
}
