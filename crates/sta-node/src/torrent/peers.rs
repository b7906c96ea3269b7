//! Peer connections of a torrent: admitting them, handling their messages,
//! the choker's decisions, and removal (request pipelines are in `requests`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sta_proto::PeerId;
use sta_proto::wire::{BLOCK_LEN, Handshake, Message};
use tokio::net::TcpStream;

use super::{ConnResult, Known, Peer, Torrent};
use crate::choker::{ChokeAction, PeerRates};
use crate::peer::conn::{self, ConnContext, PeerEvent, WriterCmd};
use crate::peer::state::{Event, PeerState};
use crate::rate::RateMeter;
use crate::snapshot::TorrentState;
use crate::types::PeerKey;

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
            if self.known.len() >= self.p.config.max_known_peers
                && !self.known.contains_key(&addr)
                && !self.forget_a_failed_peer()
            {
                // Full of peers that may still answer: a tracker or peer
                // handing out endless addresses cannot grow this table.
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

    /// Makes room in a full table of known peers by dropping one that is not
    /// connected and has failed before; false when there is none.
    fn forget_a_failed_peer(&mut self) -> bool {
        let victim = self
            .known
            .iter()
            .filter(|(_, k)| !k.connected && k.failures > 0)
            .max_by_key(|(_, k)| k.failures)
            .map(|(a, _)| *a);
        victim.is_some_and(|a| self.known.remove(&a).is_some())
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
            max_queued: self.p.config.max_queued_requests,
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
