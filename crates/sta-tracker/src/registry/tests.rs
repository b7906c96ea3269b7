//! Registry behaviour on a fake clock: `now` is `t0 + offset`.

use super::*;

fn hash(n: u8) -> InfoHash {
    InfoHash([n; 20])
}

fn id(n: u32) -> PeerId {
    let mut b = *b"-TS0001-000000000000";
    b[8..12].copy_from_slice(&n.to_be_bytes());
    PeerId(b)
}

fn req(h: u8, peer: u32, left: u64, event: Event) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: hash(h),
        peer_id: id(peer),
        ip: format!("127.0.0.{}", peer % 250 + 1).parse().unwrap(),
        port: 10_000 + peer as u16,
        left,
        event,
        numwant: None,
    }
}

fn registry(limits: Limits) -> (Registry, Instant) {
    let t0 = Instant::now();
    (Registry::new(limits, t0, 99), t0)
}

fn ports(r: &AnnounceReply) -> Vec<u16> {
    let mut p: Vec<u16> = r.peers.iter().map(|p| p.addr.port()).collect();
    p.sort();
    p
}

#[test]
fn peers_find_each_other_but_never_themselves() {
    let (mut r, t0) = registry(Limits::default());
    let a = r.announce(t0, &req(1, 1, 100, Event::Started)).unwrap();
    assert!(a.peers.is_empty());
    assert_eq!((a.complete, a.incomplete), (0, 1));
    let b = r.announce(t0, &req(1, 2, 100, Event::Started)).unwrap();
    assert_eq!(ports(&b), vec![10_001]);
    assert_eq!(b.peers[0].peer_id, Some(id(1)));
    assert_eq!(b.peers[0].addr.ip().to_string(), "127.0.0.2");
    let a = r.announce(t0, &req(1, 1, 100, Event::None)).unwrap();
    assert_eq!(ports(&a), vec![10_002]);
    // Another torrent is another swarm.
    let c = r.announce(t0, &req(2, 3, 100, Event::Started)).unwrap();
    assert!(c.peers.is_empty());
    assert_eq!(r.totals().torrents, 2);
}

#[test]
fn seeders_get_only_leechers() {
    let (mut r, t0) = registry(Limits::default());
    for p in 0..5 {
        r.announce(t0, &req(1, p, 0, Event::Started)).unwrap();
    }
    for p in 5..8 {
        r.announce(t0, &req(1, p, 10, Event::Started)).unwrap();
    }
    let s = r.announce(t0, &req(1, 0, 0, Event::None)).unwrap();
    assert_eq!(ports(&s), vec![10_005, 10_006, 10_007]);
    assert_eq!((s.complete, s.incomplete), (5, 3));
    let l = r.announce(t0, &req(1, 5, 10, Event::None)).unwrap();
    assert_eq!(
        l.peers.len(),
        7,
        "a leecher gets seeders and other leechers"
    );
    assert!(!ports(&l).contains(&10_005));
}

#[test]
fn numwant_default_and_cap() {
    let (mut r, t0) = registry(Limits::default());
    for p in 0..300 {
        r.announce(t0, &req(1, p, 10, Event::Started)).unwrap();
    }
    let mut q = req(1, 1000, 10, Event::Started);
    assert_eq!(r.announce(t0, &q).unwrap().peers.len(), 50);
    q.numwant = Some(10_000);
    let many = r.announce(t0, &q).unwrap();
    assert_eq!(many.peers.len(), 200);
    let mut distinct = ports(&many);
    distinct.dedup();
    assert_eq!(distinct.len(), 200);
    q.numwant = Some(0);
    assert!(r.announce(t0, &q).unwrap().peers.is_empty());
}

#[test]
fn stopped_removes_at_once() {
    let (mut r, t0) = registry(Limits::default());
    r.announce(t0, &req(1, 1, 10, Event::Started)).unwrap();
    r.announce(t0, &req(1, 2, 0, Event::Started)).unwrap();
    let s = r.announce(t0, &req(1, 2, 0, Event::Stopped)).unwrap();
    assert_eq!((s.complete, s.incomplete), (0, 1));
    assert!(s.peers.is_empty());
    let a = r.announce(t0, &req(1, 1, 10, Event::None)).unwrap();
    assert!(a.peers.is_empty());
    // Stopping an unknown torrent creates nothing.
    r.announce(t0, &req(9, 1, 10, Event::Stopped)).unwrap();
    assert_eq!(r.totals().torrents, 1);
    assert_eq!((r.totals().seeders, r.totals().leechers), (0, 1));
}

#[test]
fn peers_expire_after_the_ttl() {
    let limits = Limits {
        ttl: Duration::from_secs(60),
        ..Limits::default()
    };
    let (mut r, t0) = registry(limits);
    r.announce(t0, &req(1, 1, 10, Event::Started)).unwrap();
    r.announce(t0 + Duration::from_secs(50), &req(1, 2, 10, Event::Started))
        .unwrap();
    // At 70 s peer 1 is stale: not handed out even before a sweep.
    let c = r
        .announce(t0 + Duration::from_secs(70), &req(1, 3, 10, Event::Started))
        .unwrap();
    assert_eq!(ports(&c), vec![10_002]);
    assert_eq!(r.sweep(t0 + Duration::from_secs(70)), 1);
    assert_eq!(r.scrape(&hash(1)).incomplete, 2);
    // Everyone gone: the torrent goes too.
    assert_eq!(r.sweep(t0 + Duration::from_secs(200)), 2);
    assert_eq!(r.totals(), Totals::default());
}

#[test]
fn ages_survive_the_16_bit_wrap() {
    let limits = Limits {
        ttl: Duration::from_secs(60),
        ..Limits::default()
    };
    let (mut r, t0) = registry(limits);
    let mut now = t0;
    // A peer that keeps announcing through several wraps of the 16-bit clock.
    for _ in 0..(3 * 65_536 / 50) {
        now += Duration::from_secs(50);
        r.announce(now, &req(1, 1, 10, Event::None)).unwrap();
        r.sweep(now);
        assert_eq!(r.scrape(&hash(1)).incomplete, 1);
    }
}

#[test]
fn completed_is_counted_once_per_peer() {
    let (mut r, t0) = registry(Limits::default());
    r.announce(t0, &req(1, 1, 10, Event::Started)).unwrap();
    r.announce(t0, &req(1, 1, 0, Event::Completed)).unwrap();
    r.announce(t0, &req(1, 1, 0, Event::Completed)).unwrap();
    r.announce(t0, &req(1, 2, 0, Event::Completed)).unwrap();
    let s = r.scrape(&hash(1));
    assert_eq!((s.complete, s.incomplete, s.downloaded), (2, 0, 2));
    assert_eq!(r.take_dirty(), vec![(hash(1), 2)]);
    assert!(r.take_dirty().is_empty());
    assert_eq!(r.totals().completed, 2);
    // After everyone leaves, the counter stays.
    r.announce(t0, &req(1, 1, 0, Event::Stopped)).unwrap();
    r.announce(t0, &req(1, 2, 0, Event::Stopped)).unwrap();
    r.sweep(t0);
    assert_eq!(r.scrape(&hash(1)).downloaded, 2);
}

#[test]
fn caps_refuse_with_a_reason() {
    let limits = Limits {
        max_torrents: 2,
        max_peers_per_torrent: 3,
        max_peers: 5,
        ..Limits::default()
    };
    let (mut r, t0) = registry(limits);
    for p in 0..3 {
        r.announce(t0, &req(1, p, 10, Event::Started)).unwrap();
    }
    let e = r.announce(t0, &req(1, 3, 10, Event::Started)).unwrap_err();
    assert_eq!(e, RegistryError::TorrentFull(3));
    assert!(e.to_string().contains("3 peers"), "{e}");
    // Known peers of a full torrent keep announcing.
    r.announce(t0, &req(1, 0, 0, Event::None)).unwrap();
    r.announce(t0, &req(2, 10, 10, Event::Started)).unwrap();
    r.announce(t0, &req(2, 11, 10, Event::Started)).unwrap();
    let e = r.announce(t0, &req(2, 12, 10, Event::Started)).unwrap_err();
    assert_eq!(e, RegistryError::TooManyPeers(5));
    let e = r.announce(t0, &req(3, 20, 10, Event::Started)).unwrap_err();
    assert_eq!(e, RegistryError::TooManyTorrents(2));
    assert!(e.to_string().contains("2 torrents"));
    assert_eq!(r.totals().torrents, 2);
}

#[test]
fn families_are_separate_and_a_moving_peer_is_not_listed_twice() {
    let (mut r, t0) = registry(Limits::default());
    let mut v6 = req(1, 1, 10, Event::Started);
    v6.ip = "::1".parse().unwrap();
    r.announce(t0, &v6).unwrap();
    let v4 = r.announce(t0, &req(1, 2, 10, Event::Started)).unwrap();
    assert!(v4.peers.is_empty(), "an IPv4 client gets IPv4 peers only");
    assert_eq!(v4.incomplete, 2, "counts cover both families");
    let mut v6b = req(1, 3, 10, Event::Started);
    v6b.ip = "::2".parse().unwrap();
    let got = r.announce(t0, &v6b).unwrap();
    assert_eq!(got.peers.len(), 1);
    assert!(got.peers[0].addr.is_ipv6());
    // Peer 1 comes back over IPv4: one entry, in the IPv4 set.
    r.announce(t0, &req(1, 1, 10, Event::None)).unwrap();
    assert_eq!(r.scrape(&hash(1)).incomplete, 3);
    let got = r.announce(t0, &v6b).unwrap();
    assert!(got.peers.is_empty());
}

#[test]
fn restored_counters_and_top_rows() {
    let (mut r, t0) = registry(Limits::default());
    assert!(r.restore_completed(hash(7), 41));
    r.announce(t0, &req(7, 1, 0, Event::Completed)).unwrap();
    assert_eq!(r.scrape(&hash(7)).downloaded, 42);
    for p in 0..3 {
        r.announce(t0, &req(8, p, 10, Event::Started)).unwrap();
    }
    let top = r.top(1);
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].info_hash, hash(8));
    assert_eq!(r.totals().completed, 42);
}

#[test]
fn many_peers_in_one_torrent() {
    let (mut r, t0) = registry(Limits::default());
    for p in 0..5000 {
        r.announce(t0, &req(1, p, u64::from(p % 3), Event::Started))
            .unwrap();
    }
    for p in (0..5000).step_by(2) {
        r.announce(t0, &req(1, p, 0, Event::Stopped)).unwrap();
    }
    let s = r.scrape(&hash(1));
    assert_eq!(s.complete + s.incomplete, 2500);
    let got = r.announce(t0, &req(1, 1, 5, Event::None)).unwrap();
    assert_eq!(got.peers.len(), 50);
    assert!(got.peers.iter().all(|p| p.addr.port() % 2 == 1));
}
