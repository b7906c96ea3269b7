//! Peer connections of a torrent: admitting them, handling their messages,
//! keeping request pipelines full, the choker's decisions, and removal.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sta_proto::PeerId;
use sta_proto::wire::{BLOCK_LEN, Handshake, Message};
use tokio::net::TcpStream;

use super::{ConnResult, Known, Peer, Torrent};
use crate::bitfield::Bitfield;
use crate::choker::{ChokeAction, PeerRates};
use crate::peer::conn::{self, ConnContext, PeerEvent, WriterCmd};
use crate::peer::state::{Event, PeerState};
use crate::rate::RateMeter;
use crate::snapshot::TorrentState;
use crate::types::{BlockRef, PeerKey};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Torrent {
    fn handshake(&self) -> Handshake {
        Handshake::new(self.p.metainfo.info_hash, self.p.peer_id)
    }

    fn accepting(&self) -> bool {
        matches!(
            self.state,
            TorrentState::Downloading | TorrentState::Seeding
        ) && !self.paused
    }

    pub(super) fn add_known(&mut self, list: Vec<SocketAddr>) {
        let now = Instant::now();
        for addr in list {
            let addr = sta_proto::tracker::canonical_addr(addr);
            if addr.port() == 0 || self.banned.contains(&addr.ip()) {
                continue;
            }
            self.known.entry(addr).or_insert(Known {
                failures: 0,
                next_try: now,
                connected: false,
            });
        }
        if self.accepting() {
            self.connect_more(now);
        }
    }

    /// Dials known peers while there is room.
    pub(super) fn connect_more(&mut self, now: Instant) {
        if !self.accepting() {
            return;
        }
        let cfg = &self.p.config;
        let room = cfg
            .max_peers_per_torrent
            .saturating_sub(self.peers.len() + self.connecting);
        let slots = cfg.max_half_open.saturating_sub(self.connecting).min(room);
        if slots == 0 {
            return;
        }
        let targets: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|(a, k)| !k.connected && k.next_try <= now && !self.banned.contains(&a.ip()))
            .map(|(a, _)| *a)
            .take(slots)
            .collect();
        for addr in targets {
            if let Some(k) = self.known.get_mut(&addr) {
                k.connected = true; // reserved until the attempt ends
            }
            self.connecting += 1;
            let tx = self.conn_tx.clone();
            let hs = self.handshake();
            let bind = self.p.config.bind;
            let cancel = self.cancel.clone();
            self.tasks.spawn(async move {
                let attempt = async {
                    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, conn::connect(addr, bind))
                        .await
                        .map_err(|_| "connect timed out".to_string())?
                        .map_err(|e| e.to_string())?;
                    let theirs = tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        conn::handshake_outgoing(&mut s, &hs),
                    )
                    .await
                    .map_err(|_| "handshake timed out".to_string())?
                    .map_err(|e| e.to_string())?;
                    Ok::<_, String>((s, theirs.peer_id))
                };
                let r = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = attempt => r,
                };
                let msg = match r {
                    Ok((stream, peer_id)) => ConnResult::Ready {
                        stream,
                        addr,
                        peer_id,
                        incoming: false,
                    },
                    Err(error) => ConnResult::Failed {
                        addr,
                        incoming: false,
                        error,
                    },
                };
                let _ = tx.send(msg).await;
            });
        }
    }

    /// The session routed an incoming connection here; finish its handshake.
    pub(super) fn accept_incoming(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        let addr = sta_proto::tracker::canonical_addr(addr);
        let full = self.peers.len() + self.connecting >= self.p.config.max_peers_per_torrent;
        if !self.accepting() || full || self.banned.contains(&addr.ip()) {
            return; // dropping the stream closes it
        }
        self.connecting += 1;
        let tx = self.conn_tx.clone();
        let hs = self.handshake();
        self.tasks.spawn(async move {
            let r =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, conn::finish_incoming(&mut stream, &hs))
                    .await;
            let msg = match r {
                Ok(Ok(peer_id)) => ConnResult::Ready {
                    stream,
                    addr,
                    peer_id,
                    incoming: true,
                },
                Ok(Err(e)) => ConnResult::Failed {
                    addr,
                    incoming: true,
                    error: e.to_string(),
                },
                Err(_) => ConnResult::Failed {
                    addr,
                    incoming: true,
                    error: "handshake timed out".into(),
                },
            };
            let _ = tx.send(msg).await;
        });
    }

    pub(super) fn on_conn_result(&mut self, r: ConnResult) {
        self.connecting = self.connecting.saturating_sub(1);
        let now = Instant::now();
        match r {
            ConnResult::Failed {
                addr,
                incoming,
                error,
            } => {
                tracing::debug!(%addr, %error, "connection failed");
                if !incoming && let Some(k) = self.known.get_mut(&addr) {
                    k.connected = false;
                    k.failures += 1;
                    let backoff = Duration::from_secs(5) * 2u32.saturating_pow(k.failures.min(6));
                    k.next_try = now + backoff.min(Duration::from_secs(300));
                    if k.failures > 10 {
                        self.known.remove(&addr);
                    }
                }
            }
            ConnResult::Ready {
                stream,
                addr,
                peer_id,
                incoming,
            } => {
                let keep = self.admit(&peer_id, addr, incoming);
                if !keep {
                    if !incoming && let Some(k) = self.known.get_mut(&addr) {
                        k.connected = false;
                        k.next_try = now + Duration::from_secs(60);
                        if peer_id == self.p.peer_id {
                            self.known.remove(&addr);
                        }
                    }
                    return;
                }
                self.add_peer(stream, addr, peer_id, incoming, now);
            }
        }
    }

    /// Decides whether a new connection stays: not ourselves, not banned, not
    /// over the limit, and one connection per peer id (on a simultaneous
    /// open, both sides keep the one the smaller peer id initiated).
    fn admit(&mut self, peer_id: &PeerId, addr: SocketAddr, incoming: bool) -> bool {
        if *peer_id == self.p.peer_id || self.banned.contains(&addr.ip()) || !self.accepting() {
            return false;
        }
        if let Some((&old, old_peer)) = self.peers.iter().find(|(_, p)| p.peer_id == *peer_id) {
            let prefer_incoming = self.p.peer_id > *peer_id;
            if incoming == prefer_incoming && old_peer.incoming != prefer_incoming {
                self.remove_peer(old, "duplicate connection");
                return true;
            }
            return false;
        }
        self.peers.len() < self.p.config.max_peers_per_torrent
            && self.p.node_peers.load(Ordering::Relaxed) < self.p.config.max_connections
    }

    fn add_peer(
        &mut self,
        stream: TcpStream,
        addr: SocketAddr,
        peer_id: PeerId,
        incoming: bool,
        now: Instant,
    ) {
        let key = PeerKey(self.next_key);
        self.next_key += 1;
        let cancel = self.cancel.child_token();
        let ctx = ConnContext {
            storage: self.storage.clone(),
            piece_length: u64::from(self.geo.piece_length),
            upload: vec![self.up_limit.clone(), self.p.global_up.clone()],
            download: vec![self.down_limit.clone(), self.p.global_down.clone()],
            events: self.events_tx.clone(),
            sent: self.sent.clone(),
            upload_budget: self.upload_budget.clone(),
        };
        let (tx, counters) = conn::spawn(
            stream,
            key,
            self.geo.num_pieces,
            ctx,
            &self.tasks,
            cancel.clone(),
        );
        tracing::debug!(%addr, client = %peer_id.client_name(), incoming, "peer connected");
        if let Some(k) = self.known.get_mut(&addr) {
            k.connected = true;
            k.failures = 0;
        }
        let peer = Peer {
            state: PeerState::new(self.geo.num_pieces, now),
            addr,
            peer_id,
            incoming,
            tx,
            counters,
            cancel,
            down_meter: RateMeter::new(5),
            up_meter: RateMeter::new(5),
            downloaded: 0,
        };
        self.peers.insert(key, peer);
        self.p.node_peers.fetch_add(1, Ordering::Relaxed);
        if self.picker.have().count() > 0 {
            self.send(key, Message::Bitfield(self.picker.have().to_wire()));
        }
    }

    /// Queues a message for a peer. A peer whose queue is full is not reading
    /// what we send: it is dropped rather than allowed to grow our memory.
    pub(super) fn send(&mut self, key: PeerKey, msg: Message) {
        self.send_cmd(key, WriterCmd::Send(msg));
    }

    pub(super) fn send_cmd(&mut self, key: PeerKey, cmd: WriterCmd) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = p.tx.try_send(cmd) {
            self.remove_peer(key, "peer is not reading (send queue full)");
        }
    }

    pub(super) fn on_peer_event(&mut self, ev: PeerEvent) {
        match ev {
            PeerEvent::Gone(key, why) => self.remove_peer(key, &why),
            PeerEvent::Message(key, msg) => self.on_message(key, msg),
        }
    }

    fn on_message(&mut self, key: PeerKey, msg: Message) {
        let now = Instant::now();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let event = match peer
            .state
            .on_message(now, msg, &self.geo, self.picker.have())
        {
            Ok(e) => e,
            Err(v) => {
                tracing::info!(addr = %peer.addr, violation = %v, "dropping misbehaving peer");
                let ip = peer.addr.ip();
                self.remove_peer(key, &v.to_string());
                self.strike(ip, 1, "protocol violations");
                return;
            }
        };
        match event {
            Event::Nothing | Event::NotInterested => {}
            // A free upload slot goes to a newly interested peer at once, not at the next tick.
            Event::Interested => self.run_choker(now),
            Event::Choked(dropped) => {
                for b in dropped {
                    self.picker.on_request_dropped(b);
                }
            }
            Event::Unchoked => self.fill_requests(key),
            Event::Have(i) => {
                self.picker.peer_have(i);
                self.reroute(key, i);
                self.update_interest(key);
                self.drop_if_both_seeds(key);
            }
            Event::Haves(list) => {
                for i in list {
                    self.picker.peer_have(i);
                    self.reroute(key, i);
                }
                self.update_interest(key);
                self.drop_if_both_seeds(key);
            }
            Event::Bitfield => {
                if let Some(p) = self.peers.get(&key) {
                    let bits = p.state.have.clone();
                    self.picker.peer_bitfield(&bits);
                }
                self.update_interest(key);
                self.drop_if_both_seeds(key);
            }
            Event::Block {
                block,
                data,
                requested,
            } => self.on_block(key, block, data, requested),
            Event::Request(b) => {
                if !self.upload_stopped {
                    self.send_cmd(key, WriterCmd::Serve(b));
                }
            }
            Event::Cancel(b) => self.send_cmd(key, WriterCmd::Unserve(b)),
        }
    }

    /// Sends interested / not interested when that changes.
    pub(super) fn update_interest(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        let want = !self.picker.is_complete() && self.picker.interesting(&p.state.have);
        if want != p.state.am_interested {
            if let Some(p) = self.peers.get_mut(&key) {
                p.state.am_interested = want;
            }
            self.send(
                key,
                if want {
                    Message::Interested
                } else {
                    Message::NotInterested
                },
            );
        }
        if want {
            self.fill_requests(key);
        }
    }

    fn drop_if_both_seeds(&mut self, key: PeerKey) {
        if self.picker.is_complete()
            && self
                .peers
                .get(&key)
                .is_some_and(|p| p.state.have.is_complete())
        {
            self.remove_peer(key, "both are seeds");
        }
    }

    /// Pieces a seed should be spared: the pieces that leechers unchoking us
    /// can give are left to them, and the seed is asked only for what nobody
    /// else has. A seed's upload is what a swarm runs short of first; spent
    /// on pieces the leechers already trade, it would make second copies
    /// instead of new ones.
    fn spare_seed(&self, key: PeerKey) -> Option<Bitfield> {
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
    fn reroute(&mut self, from: PeerKey, piece: u32) {
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

    /// Samples per-peer and torrent rates, resizes request queues.
    pub(super) fn sample_rates(&mut self, now: Instant) {
        let mut uploaded_live = 0;
        for p in self.peers.values_mut() {
            let up = p.counters.uploaded.load(Ordering::Relaxed);
            uploaded_live += up;
            p.up_meter.sample(now, up);
            p.down_meter.sample(now, p.downloaded);
            p.state.update_queue(now, p.down_meter.rate());
        }
        let uploaded = self.totals.uploaded_closed + uploaded_live;
        self.down_meter.sample(now, self.totals.downloaded);
        self.up_meter.sample(now, uploaded);
        self.down_hist.sample(self.totals.downloaded);
        self.up_hist.sample(uploaded);
        if let Some(copies) = self.p.config.seed_limit_copies
            && !self.upload_stopped
            && (uploaded as f64 >= copies * self.p.metainfo.info.total_length as f64
                || self
                    .upload_budget
                    .as_ref()
                    .is_some_and(|b| b.load(Ordering::Acquire) < u64::from(BLOCK_LEN)))
        {
            tracing::info!(copies, "seed limit reached: no more uploads");
            self.upload_stopped = true;
            for k in self.peers.keys().copied().collect::<Vec<_>>() {
                if let Some(p) = self.peers.get_mut(&k)
                    && !p.state.am_choking
                {
                    p.state.am_choking = true;
                    self.send(k, Message::Choke);
                }
            }
        }
    }

    pub(super) fn uploaded_total(&self) -> u64 {
        self.totals.uploaded_closed
            + self
                .peers
                .values()
                .map(|p| p.counters.uploaded.load(Ordering::Relaxed))
                .sum::<u64>()
    }

    pub(super) fn rates_for_choker(&self) -> Vec<PeerRates> {
        self.peers
            .iter()
            .map(|(k, p)| PeerRates {
                key: *k,
                interested: p.state.peer_interested,
                am_interested: p.state.am_interested,
                down_rate: p.down_meter.rate(),
                up_rate: p.up_meter.rate(),
                uploaded: p.counters.uploaded.load(Ordering::Relaxed),
                connected_at: p.state.connected_at,
                last_block_at: p.state.last_block_at,
            })
            .collect()
    }

    pub(super) fn run_choker(&mut self, now: Instant) {
        if self.upload_stopped {
            return;
        }
        let rates = self.rates_for_choker();
        let seeding = self.picker.is_complete();
        self.choker.handle_tick(now, seeding, &rates, &mut self.rng);
        while let Some(a) = self.choker.poll_action() {
            let (key, choke) = match a {
                ChokeAction::Choke(k) => (k, true),
                ChokeAction::Unchoke(k) => (k, false),
            };
            if let Some(p) = self.peers.get_mut(&key)
                && p.state.am_choking != choke
            {
                p.state.am_choking = choke;
                self.send(
                    key,
                    if choke {
                        Message::Choke
                    } else {
                        Message::Unchoke
                    },
                );
            }
        }
    }

    /// Forgets a peer: closes it, gives its requests back, uncounts its pieces.
    pub(super) fn remove_peer(&mut self, key: PeerKey, why: &str) {
        let Some(mut p) = self.peers.remove(&key) else {
            return;
        };
        self.p.node_peers.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(addr = %p.addr, reason = why, "peer removed");
        p.cancel.cancel();
        self.totals.uploaded_closed += p.counters.uploaded.load(Ordering::Relaxed);
        for b in p.state.take_outstanding() {
            self.picker.on_request_dropped(b);
        }
        self.picker.peer_lost(&p.state.have);
        self.picker.peer_gone(key);
        self.choker.peer_removed(key);
        if let Some(k) = self.known.get_mut(&p.addr) {
            k.connected = false;
            k.next_try = Instant::now() + Duration::from_secs(10);
        }
    }
}
