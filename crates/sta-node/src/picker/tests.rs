//! Unit tests of the piece picker, driven with a seeded random source.

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

fn pick(p: &mut Picker, peer: u64, has: &Bitfield, max: usize, rng: &mut StdRng) -> Vec<BlockRef> {
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
