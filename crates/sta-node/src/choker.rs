//! Who we upload to: the classic BitTorrent choker. Sans-I/O: the torrent
//! calls [`Choker::handle_tick`] with the time and its peers' rates, then
//! drains [`Choker::poll_action`].
//!
//! - `upload_slots` regular slots, recomputed every `round` (10 s): while
//!   downloading, the interested peers that upload to us fastest
//!   (tit-for-tat); while seeding, those we have sent least so far: round
//!   robin by bytes, so every leecher gets a share of a seed and none falls
//!   behind the swarm (libtorrent's default seeding rule does the same; the
//!   upload-rate rule of BitTorrent 4 kept feeding the fastest peers while
//!   slow ones finished last).
//! - One optimistic unchoke, rotated every `optimistic_rounds` rounds (30 s),
//!   chosen at random among the choked interested peers, newly connected ones
//!   three times as likely.
//! - Anti-snubbing: while we want data from a peer, one that sent us no block
//!   for `snub_timeout` (60 s) loses its regular slot.
//! - Between rounds, a free regular slot is filled at once when a peer
//!   becomes interested, so a new swarm does not wait 10 s to start.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::types::PeerKey;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChokerConfig {
    /// Regular upload slots. Default 4.
    pub upload_slots: usize,
    /// Seconds between rechoke rounds. Default 10.
    pub round_secs: u64,
    /// Rounds between optimistic unchoke rotations. Default 3 (30 s).
    pub optimistic_rounds: u32,
    /// Seconds without a block before a peer counts as snubbing us. Default 60.
    pub snub_secs: u64,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            upload_slots: 4,
            round_secs: 10,
            optimistic_rounds: 3,
            snub_secs: 60,
        }
    }
}

/// What the choker needs to know about a peer.
#[derive(Debug, Clone)]
pub struct PeerRates {
    pub key: PeerKey,
    /// The peer is interested in what we have.
    pub interested: bool,
    /// We are interested in what the peer has.
    pub am_interested: bool,
    /// Bytes per second the peer sends us.
    pub down_rate: u64,
    /// Bytes per second we send the peer.
    pub up_rate: u64,
    /// Bytes we have sent the peer since it connected.
    pub uploaded: u64,
    pub connected_at: Instant,
    pub last_block_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChokeAction {
    Unchoke(PeerKey),
    Choke(PeerKey),
}

pub struct Choker {
    config: ChokerConfig,
    unchoked: BTreeSet<PeerKey>,
    optimistic: Option<PeerKey>,
    next_round: Instant,
    round: u64,
    out: VecDeque<ChokeAction>,
}

impl Choker {
    pub fn new(config: ChokerConfig, now: Instant) -> Self {
        Choker {
            config,
            unchoked: BTreeSet::new(),
            optimistic: None,
            next_round: now,
            round: 0,
            out: VecDeque::new(),
        }
    }

    pub fn set_upload_slots(&mut self, n: usize) {
        self.config.upload_slots = n;
    }

    pub fn poll_action(&mut self) -> Option<ChokeAction> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_round
    }

    pub fn is_unchoked(&self, key: PeerKey) -> bool {
        self.unchoked.contains(&key)
    }

    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    pub fn peer_removed(&mut self, key: PeerKey) {
        self.unchoked.remove(&key);
        if self.optimistic == Some(key) {
            self.optimistic = None;
        }
    }

    fn snubbed(&self, p: &PeerRates, now: Instant) -> bool {
        let limit = Duration::from_secs(self.config.snub_secs);
        p.am_interested && now.duration_since(p.last_block_at.unwrap_or(p.connected_at)) >= limit
    }

    /// Is this peer snubbing us right now (for peer tables)?
    pub fn is_snubbed(&self, p: &PeerRates, now: Instant) -> bool {
        self.snubbed(p, now)
    }

    pub fn handle_tick(
        &mut self,
        now: Instant,
        seeding: bool,
        peers: &[PeerRates],
        rng: &mut impl Rng,
    ) {
        // Forget peers that are gone.
        self.unchoked.retain(|k| peers.iter().any(|p| p.key == *k));
        if self.optimistic.is_some_and(|o| !self.unchoked.contains(&o)) {
            self.optimistic = None;
        }
        if now >= self.next_round {
            self.rechoke(now, seeding, peers, rng);
            self.next_round = now + Duration::from_secs(self.config.round_secs);
            self.round += 1;
        } else {
            self.fill_free_slots(now, seeding, peers);
        }
    }

    /// Interested, non-snubbed peers, best first.
    fn ranked<'a>(
        &self,
        now: Instant,
        seeding: bool,
        peers: &'a [PeerRates],
        rng: &mut impl Rng,
    ) -> Vec<&'a PeerRates> {
        let mut c: Vec<&PeerRates> = peers
            .iter()
            .filter(|p| p.interested && !self.snubbed(p, now))
            .collect();
        // Shuffle first so that equal rates (say, all zero at start) are not always won by the same peers.
        for i in (1..c.len()).rev() {
            let j = rng.random_range(0..=i);
            c.swap(i, j);
        }
        if seeding {
            c.sort_by_key(|p| p.uploaded);
        } else {
            c.sort_by_key(|p| std::cmp::Reverse(p.down_rate));
        }
        c
    }

    fn rechoke(&mut self, now: Instant, seeding: bool, peers: &[PeerRates], rng: &mut impl Rng) {
        let ranked = self.ranked(now, seeding, peers, rng);
        let regular: BTreeSet<PeerKey> = ranked
            .iter()
            .take(self.config.upload_slots)
            .map(|p| p.key)
            .collect();
        let rotate = self
            .round
            .is_multiple_of(u64::from(self.config.optimistic_rounds.max(1)));
        let keep = self.optimistic.filter(|o| {
            !rotate && !regular.contains(o) && peers.iter().any(|p| p.key == *o && p.interested)
        });
        // A rotation moves the slot on: the peer that held it is picked again
        // only when no other peer is waiting for it.
        let previous = self.optimistic;
        self.optimistic = keep.or_else(|| {
            self.choose_optimistic(now, peers, &regular, previous, rng)
                .or_else(|| self.choose_optimistic(now, peers, &regular, None, rng))
        });
        let mut next = regular;
        next.extend(self.optimistic);
        self.apply(next);
    }

    fn choose_optimistic(
        &self,
        now: Instant,
        peers: &[PeerRates],
        regular: &BTreeSet<PeerKey>,
        exclude: Option<PeerKey>,
        rng: &mut impl Rng,
    ) -> Option<PeerKey> {
        let fresh =
            Duration::from_secs(self.config.round_secs * u64::from(self.config.optimistic_rounds));
        let weighted: Vec<(PeerKey, u32)> = peers
            .iter()
            .filter(|p| p.interested && !regular.contains(&p.key) && Some(p.key) != exclude)
            .map(|p| {
                (
                    p.key,
                    if now.duration_since(p.connected_at) < fresh {
                        3
                    } else {
                        1
                    },
                )
            })
            .collect();
        let total: u32 = weighted.iter().map(|w| w.1).sum();
        if total == 0 {
            return None;
        }
        let mut pick = rng.random_range(0..total);
        for (k, w) in weighted {
            if pick < w {
                return Some(k);
            }
            pick -= w;
        }
        None
    }

    fn fill_free_slots(&mut self, now: Instant, seeding: bool, peers: &[PeerRates]) {
        let interested_unchoked = peers
            .iter()
            .filter(|p| {
                p.interested && self.unchoked.contains(&p.key) && Some(p.key) != self.optimistic
            })
            .count();
        let free = self.config.upload_slots.saturating_sub(interested_unchoked);
        if free == 0 {
            return;
        }
        let mut waiting: Vec<&PeerRates> = peers
            .iter()
            .filter(|p| p.interested && !self.unchoked.contains(&p.key) && !self.snubbed(p, now))
            .collect();
        if seeding {
            waiting.sort_by_key(|p| (p.uploaded, p.key));
        } else {
            waiting.sort_by_key(|p| (std::cmp::Reverse(p.down_rate), p.key));
        }
        let mut next = self.unchoked.clone();
        next.extend(waiting.iter().take(free).map(|p| p.key));
        self.apply(next);
    }

    fn apply(&mut self, next: BTreeSet<PeerKey>) {
        for k in self.unchoked.difference(&next) {
            self.out.push_back(ChokeAction::Choke(*k));
        }
        for k in next.difference(&self.unchoked) {
            self.out.push_back(ChokeAction::Unchoke(*k));
        }
        self.unchoked = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn peer(k: u64, down: u64, t0: Instant) -> PeerRates {
        PeerRates {
            key: PeerKey(k),
            interested: true,
            am_interested: true,
            down_rate: down,
            up_rate: 0,
            uploaded: 0,
            connected_at: t0,
            last_block_at: Some(t0),
        }
    }

    fn drain(c: &mut Choker) -> Vec<ChokeAction> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    fn unchoked(c: &Choker, n: u64) -> Vec<u64> {
        (0..n).filter(|k| c.is_unchoked(PeerKey(*k))).collect()
    }

    #[test]
    fn tit_for_tat_keeps_the_four_fastest_plus_one_optimistic() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = Choker::new(ChokerConfig::default(), t0);
        let mut peers: Vec<PeerRates> = (0..8).map(|k| peer(k, k * 1000, t0)).collect();
        c.handle_tick(t0, false, &peers, &mut rng);
        let on = unchoked(&c, 8);
        assert_eq!(on.len(), 5);
        for fast in [4, 5, 6, 7] {
            assert!(on.contains(&fast), "{on:?}");
        }
        let opt = c.optimistic().unwrap().0;
        assert!(opt < 4);
        // Rates change: peer 0 becomes the fastest; at the next round (10 s) it gets a regular slot.
        peers[0].down_rate = 100_000;
        for p in peers.iter_mut() {
            p.last_block_at = Some(t0 + Duration::from_secs(9));
        }
        c.handle_tick(t0 + Duration::from_secs(5), false, &peers, &mut rng);
        assert_eq!(unchoked(&c, 8), on, "no change between rounds");
        drain(&mut c);
        c.handle_tick(t0 + Duration::from_secs(10), false, &peers, &mut rng);
        let on2 = unchoked(&c, 8);
        assert!(on2.contains(&0));
        assert!(
            !on2.contains(&4) || c.optimistic() == Some(PeerKey(4)),
            "{on2:?}"
        );
        let actions = drain(&mut c);
        assert!(actions.contains(&ChokeAction::Unchoke(PeerKey(0))) || opt == 0);
    }

    #[test]
    fn optimistic_rotates_every_30_seconds_and_prefers_new_peers() {
        let t0 = Instant::now();
        let mut newcomer_wins = 0;
        let runs = 300;
        for seed in 0..runs {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut c = Choker::new(
                ChokerConfig {
                    upload_slots: 1,
                    ..Default::default()
                },
                t0,
            );
            // Peer 9 is fastest (regular slot); peers 0..=3 compete for the
            // optimistic slot.
            let mut peers: Vec<PeerRates> = (0..4).map(|k| peer(k, 0, t0)).collect();
            peers.push(peer(9, 1000, t0));
            let mut held = Vec::new();
            for r in 0..6u64 {
                let now = t0 + Duration::from_secs(10 * r);
                for p in peers.iter_mut() {
                    p.last_block_at = Some(now);
                }
                c.handle_tick(now, false, &peers, &mut rng);
                held.push(c.optimistic().expect("an optimistic unchoke"));
                assert!(unchoked(&c, 10).contains(&9), "the fastest keeps its slot");
            }
            // Rounds 0-2 (0-20 s) keep one peer, rounds 3-5 (30-50 s) another.
            assert!(held[..3].iter().all(|k| *k == held[0]), "{held:?}");
            assert!(held[3..].iter().all(|k| *k == held[3]), "{held:?}");
            assert_ne!(held[0], held[3], "rotated at 30 s");
            // At 60 s a newcomer connects right before the next rotation.
            let now = t0 + Duration::from_secs(60);
            peers.push(peer(4, 0, now));
            for p in peers.iter_mut() {
                p.last_block_at = Some(now);
            }
            c.handle_tick(now, false, &peers, &mut rng);
            let pick = c.optimistic().unwrap();
            assert_ne!(pick, held[3], "rotated at 60 s");
            if pick == PeerKey(4) {
                newcomer_wins += 1;
            }
        }
        // Candidates at 60 s: three old peers at weight 1 (the one that held
        // the slot is skipped) and the newcomer at 3: 3/6 = 50%, against the
        // 25% it would get without the weighting.
        let share = f64::from(newcomer_wins) / f64::from(runs as u32);
        assert!(share > 0.40 && share < 0.60, "newcomer share {share}");
    }

    #[test]
    fn snubbing_peer_loses_its_regular_slot() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(3);
        let mut c = Choker::new(
            ChokerConfig {
                upload_slots: 2,
                ..Default::default()
            },
            t0,
        );
        let mut peers: Vec<PeerRates> = (0..3).map(|k| peer(k, 1000 * (k + 1), t0)).collect();
        c.handle_tick(t0, false, &peers, &mut rng);
        assert!(c.is_unchoked(PeerKey(2)) && c.is_unchoked(PeerKey(1)));
        // Peer 2 stops sending anything for 60 s while we still want its data.
        let later = t0 + Duration::from_secs(60);
        peers[0].last_block_at = Some(later);
        peers[1].last_block_at = Some(later);
        c.handle_tick(later, false, &peers, &mut rng);
        assert!(c.is_snubbed(&peers[2], later));
        let regular: Vec<u64> = unchoked(&c, 3)
            .into_iter()
            .filter(|k| Some(PeerKey(*k)) != c.optimistic())
            .collect();
        assert_eq!(regular, vec![0, 1]);
    }

    #[test]
    fn seeding_serves_the_least_served_first_and_free_slots_fill_at_once() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(4);
        let mut c = Choker::new(
            ChokerConfig {
                upload_slots: 2,
                ..Default::default()
            },
            t0,
        );
        let regular = |c: &Choker| -> Vec<u64> {
            unchoked(c, 5)
                .into_iter()
                .filter(|k| Some(PeerKey(*k)) != c.optimistic())
                .collect()
        };
        // Peer 3 got the least from us, then 2, then 1; peer 0 is not interested.
        let mut peers: Vec<PeerRates> = (0..4)
            .map(|k| PeerRates {
                up_rate: 10 * k,
                uploaded: 1000 * (4 - k),
                down_rate: 0,
                am_interested: false,
                ..peer(k, 0, t0)
            })
            .collect();
        peers[0].interested = false;
        c.handle_tick(t0, true, &peers, &mut rng);
        assert_eq!(regular(&c), vec![2, 3], "the two least served");
        drain(&mut c);
        // A round later 2 and 3 have had their share: 1 is the least served.
        for p in &mut peers[2..] {
            p.uploaded += 10_000;
        }
        c.handle_tick(t0 + Duration::from_secs(10), true, &peers, &mut rng);
        assert!(regular(&c).contains(&1), "{:?}", regular(&c));
        drain(&mut c);
        // Between rounds a newcomer waits while both regular slots are taken,
        // and gets a slot at once when one frees.
        peers.push(peer(4, 0, t0));
        c.handle_tick(t0 + Duration::from_secs(11), true, &peers, &mut rng);
        let before = regular(&c);
        assert!(
            drain(&mut c)
                .iter()
                .all(|a| matches!(a, ChokeAction::Choke(_)))
                && before.len() == 2,
            "both regular slots taken: {before:?}"
        );
        let gone = before[0];
        peers.retain(|p| p.key != PeerKey(gone));
        c.peer_removed(PeerKey(gone));
        c.handle_tick(t0 + Duration::from_secs(12), true, &peers, &mut rng);
        let after = regular(&c);
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(!after.contains(&gone));
    }
}
