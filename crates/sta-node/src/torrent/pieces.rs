//! Blocks into pieces: buffering arriving blocks, hashing and writing
//! completed pieces off the actor, telling peers about new pieces, and
//! finding who sent bad data.
//!
//! A piece lives in memory until it is complete and verified, then is written
//! with positional writes: nothing unverified ever reaches the disk, and a
//! failed piece is simply dropped and downloaded again. The picker caps how
//! many pieces are in flight, which bounds this memory.

use std::net::IpAddr;
use std::time::Instant;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use sta_proto::wire::{BLOCK_LEN, Message};

use super::{PieceBuf, PieceResult, Torrent};
use crate::picker::Arrival;
use crate::snapshot::TorrentState;
use crate::types::{BlockRef, PeerKey};

/// Piece buffers kept for reuse once their piece is written.
const MAX_SPARE_BUFFERS: usize = 4;
/// Strikes before an address is banned for the session.
const BAN_STRIKES: u32 = 3;

impl Torrent {
    pub(super) fn on_block(&mut self, key: PeerKey, block: BlockRef, data: Bytes, requested: bool) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let n = data.len() as u64;
        p.downloaded += n;
        let ip = p.addr.ip();
        self.totals.downloaded += n;
        *self.totals.by_ip.entry(ip).or_default() += n;
        if p.state.have.is_complete() {
            self.totals.from_seeds += n;
        } else {
            self.totals.from_peers += n;
        }
        match self.picker.on_block_received(block, requested) {
            Arrival::Duplicate => self.totals.wasted += n,
            Arrival::Fresh {
                others_requested,
                piece_complete,
            } => {
                let plen = self.geo.piece_len(block.piece) as usize;
                let nblocks = self.geo.blocks_in_piece(block.piece) as usize;
                let spare = &mut self.spare_buffers;
                let buf = self.buffers.entry(block.piece).or_insert_with(|| {
                    // A reused buffer needs no zeroing: every block of the piece overwrites its part.
                    let mut data = spare.pop().unwrap_or_default();
                    data.resize(plen, 0);
                    PieceBuf {
                        data,
                        senders: vec![None; nblocks],
                    }
                });
                let at = block.offset as usize;
                buf.data[at..at + data.len()].copy_from_slice(&data);
                buf.senders[block.index_in_piece()] = Some((key, ip));
                if others_requested {
                    self.cancel_elsewhere(key, block);
                }
                if piece_complete {
                    self.verify_piece(block.piece);
                }
            }
        }
        self.fill_requests(key);
    }

    /// Endgame: the block is in, so the other peers need not send it.
    fn cancel_elsewhere(&mut self, from: PeerKey, block: BlockRef) {
        let others: Vec<PeerKey> = self
            .peers
            .iter_mut()
            .filter(|(k, _)| **k != from)
            .filter_map(|(k, p)| p.state.cancel(&block).then_some(*k))
            .collect();
        for k in others {
            self.picker.on_request_dropped(block);
            self.send(k, Message::Cancel(block.to_wire()));
        }
    }

    /// Hashes the piece and, if it matches, writes it, on a blocking thread.
    fn verify_piece(&mut self, index: u32) {
        let Some(buf) = self.buffers.remove(&index) else {
            return;
        };
        let expected = self.p.metainfo.info.pieces[index as usize];
        let tx = self.disk_tx.clone();
        let writer = self.writer.clone();
        let want_blocks = self.failed_blocks.contains_key(&index);
        self.tasks.spawn_blocking(move || {
            let hash_ok = <[u8; 20]>::from(Sha1::digest(&buf.data)) == expected;
            // Block hashes are only needed to attribute a failure, or to find
            // the culprit when a piece that failed before now passes.
            let block_hashes = if !hash_ok || want_blocks {
                buf.data
                    .chunks(BLOCK_LEN as usize)
                    .map(|c| Sha1::digest(c).into())
                    .collect()
            } else {
                Vec::new()
            };
            let r = PieceResult {
                index,
                hash_ok,
                write_error: None,
                block_hashes,
                senders: buf.senders,
                data: buf.data,
            };
            if hash_ok {
                // Good pieces go to the torrent's one writer thread.
                if let Err(std::sync::mpsc::SendError(r)) = writer.send(r) {
                    let _ = tx.blocking_send(PieceResult {
                        write_error: Some("storage writer stopped".into()),
                        ..r
                    });
                }
            } else {
                let _ = tx.blocking_send(r);
            }
        });
    }

    pub(super) fn on_piece_result(&mut self, mut r: PieceResult) {
        // A few spare buffers spare the allocator (pieces complete one after
        // another); more would only hold memory beyond the in-flight cap.
        if self.spare_buffers.len() < MAX_SPARE_BUFFERS {
            self.spare_buffers.push(std::mem::take(&mut r.data));
        }
        if let Some(e) = r.write_error {
            // Not marked verified: the data is not on disk. Stop downloading.
            let msg = format!("cannot write to {}: {e}", self.storage.root().display());
            tracing::error!("{msg}");
            self.picker.on_piece_failed(r.index);
            self.fail(msg);
            return;
        }
        if !r.hash_ok {
            self.totals.hash_failures += 1;
            self.picker.on_piece_failed(r.index);
            self.blame(r.index, &r.senders, &r.block_hashes);
            self.fill_all_requests();
            return;
        }
        if let Some(bad) = self.failed_blocks.remove(&r.index) {
            // The piece is good now: whoever sent a block that differed from it lied.
            for (i, good) in r.block_hashes.iter().enumerate() {
                if let Some(Some((ip, h))) = bad.get(i)
                    && h != good
                {
                    self.strike(*ip, BAN_STRIKES, "sent corrupt data");
                }
            }
        }
        self.picker.on_piece_verified(r.index);
        self.resume_dirty = true;
        // Tell peers; update our interest in each.
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in &keys {
            if self
                .peers
                .get(k)
                .is_some_and(|p| !p.state.have.has(r.index))
            {
                self.send(*k, Message::Have(r.index));
            }
        }
        for k in keys {
            self.update_interest(k);
        }
        if self.picker.is_complete() {
            self.on_complete();
        }
    }

    /// Records who sent the blocks of a failed piece. A piece from a single
    /// address bans it at once; shared pieces wait for the good copy.
    fn blame(&mut self, index: u32, senders: &[Option<(PeerKey, IpAddr)>], hashes: &[[u8; 20]]) {
        let ips: std::collections::BTreeSet<IpAddr> =
            senders.iter().flatten().map(|(_, ip)| *ip).collect();
        tracing::warn!(piece = index, senders = ?ips, "piece failed its hash check");
        if ips.len() == 1 {
            let ip = *ips.iter().next().expect("one");
            self.strike(ip, BAN_STRIKES, "sent a corrupt piece");
        } else {
            for ip in &ips {
                self.strike(*ip, 1, "took part in a corrupt piece");
            }
            let record = senders
                .iter()
                .zip(hashes)
                .map(|(s, h)| s.map(|(_, ip)| (ip, *h)))
                .collect();
            self.failed_blocks.insert(index, record);
        }
    }

    /// Counts strikes against an address; at the limit it is banned and
    /// every connection from it closed.
    pub(super) fn strike(&mut self, ip: IpAddr, n: u32, why: &str) {
        let s = self.strikes.entry(ip).or_default();
        *s += n;
        if *s >= BAN_STRIKES && self.banned.insert(ip) {
            tracing::warn!(%ip, reason = why, "banning peer address for this session");
            let keys: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(_, p)| p.addr.ip() == ip)
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                self.remove_peer(k, why);
            }
            self.known.retain(|a, _| a.ip() != ip);
        }
    }

    fn on_complete(&mut self) {
        if self.state == TorrentState::Seeding {
            return;
        }
        self.state = TorrentState::Seeding;
        self.completed_after = Some(self.started_at.elapsed().as_secs_f64());
        tracing::info!(name = %self.p.metainfo.info.name, secs = ?self.completed_after, "download complete");
        if let Err(e) = self.storage.create_empty_files() {
            tracing::warn!(error = %e, "cannot create empty files");
        }
        // Our own writes changed the files: this is the state to watch from now on.
        self.stamps = self.storage.file_stamps();
        if let Some(t) = &self.tracker {
            let _ = t.events.try_send(sta_proto::tracker::Event::Completed);
        }
        self.maybe_save_resume(Instant::now(), true);
        let seeds: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.state.have.is_complete())
            .map(|(k, _)| *k)
            .collect();
        for k in seeds {
            self.remove_peer(k, "both are seeds");
        }
    }

    pub(super) fn fail(&mut self, msg: String) {
        self.error = Some(msg);
        self.state = TorrentState::Error;
        for k in self.peers.keys().copied().collect::<Vec<_>>() {
            self.remove_peer(k, "torrent stopped on error");
        }
        self.stop_tracker();
    }
}
