//! UDP answers, datagram in, datagram out, on a fake clock.

use std::sync::Arc;
use std::time::Duration;

use sta_proto::tracker::{Announce, Event};
use sta_proto::{InfoHash, PeerId};

use super::*;
use crate::config::TrackerConfig;
use crate::store::Store;

struct Env {
    core: Core,
    ids: ConnectionIds,
    t0: Instant,
}

fn env() -> Env {
    let t0 = Instant::now();
    let store = Arc::new(Store::open(None).unwrap());
    Env {
        core: Core::new(&TrackerConfig::default(), None, store, t0).unwrap(),
        ids: ConnectionIds::new([7; 16], t0),
        t0,
    }
}

impl Env {
    fn ask(&self, at: Duration, from: &str, req: &Request) -> Option<Response> {
        let mut b = Vec::new();
        req.write(&mut b);
        self.raw(at, from, &b)
    }

    fn raw(&self, at: Duration, from: &str, packet: &[u8]) -> Option<Response> {
        let from: SocketAddr = from.parse().unwrap();
        let mut out = Vec::new();
        let v6 = canonical_addr(from).is_ipv6();
        handle(&self.core, &self.ids, self.t0 + at, from, packet, &mut out)
            .then(|| Response::parse(&out, v6).unwrap())
    }

    fn connect(&self, at: Duration, from: &str) -> u64 {
        match self.ask(at, from, &Request::Connect { transaction_id: 5 }) {
            Some(Response::Connect {
                transaction_id: 5,
                connection_id,
            }) => connection_id,
            other => panic!("{other:?}"),
        }
    }
}

fn announce(peer: u8, left: u64) -> Announce {
    Announce {
        info_hash: InfoHash([9; 20]),
        peer_id: PeerId([peer; 20]),
        port: 6000 + u16::from(peer),
        uploaded: 0,
        downloaded: 0,
        left,
        event: Event::Started,
        numwant: None,
        key: Some(1),
        ip: None,
    }
}

fn error_text(r: Option<Response>) -> String {
    match r {
        Some(Response::Error {
            transaction_id: 77,
            message,
        }) => message,
        other => panic!("expected an error for transaction 77, got {other:?}"),
    }
}

#[test]
fn connect_announce_scrape() {
    let e = env();
    let from_a = "127.0.0.2:6001";
    let cid = e.connect(Duration::ZERO, from_a);
    let r = e.ask(
        Duration::from_secs(1),
        from_a,
        &Request::Announce {
            connection_id: cid,
            transaction_id: 8,
            announce: announce(1, 0),
        },
    );
    assert!(matches!(
        r,
        Some(Response::Announce { transaction_id: 8, interval: 300, seeders: 1, leechers: 0, ref peers }) if peers.is_empty()
    ));
    let from_b = "127.0.0.3:6002";
    let cid_b = e.connect(Duration::ZERO, from_b);
    let r = e.ask(
        Duration::from_secs(2),
        from_b,
        &Request::Announce {
            connection_id: cid_b,
            transaction_id: 9,
            announce: announce(2, 10),
        },
    );
    match r {
        Some(Response::Announce { peers, .. }) => {
            assert_eq!(peers, vec!["127.0.0.2:6001".parse().unwrap()])
        }
        other => panic!("{other:?}"),
    }
    let r = e.ask(
        Duration::from_secs(3),
        from_b,
        &Request::Scrape {
            connection_id: cid_b,
            transaction_id: 10,
            info_hashes: vec![InfoHash([9; 20]), InfoHash([1; 20])],
        },
    );
    match r {
        Some(Response::Scrape { stats, .. }) => {
            assert_eq!((stats[0].complete, stats[0].incomplete), (1, 1));
            assert_eq!(stats[1].complete + stats[1].incomplete, 0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn forged_and_expired_ids_are_refused_and_counted() {
    let e = env();
    let from = "127.0.0.2:6001";
    let send = |at: u64, cid: u64| {
        e.ask(
            Duration::from_secs(at),
            from,
            &Request::Announce {
                connection_id: cid,
                transaction_id: 77,
                announce: announce(1, 0),
            },
        )
    };
    assert!(error_text(send(0, 0x0417_2710_1980)).contains("connection id"));
    assert!(error_text(send(0, 12345)).contains("connection id"));
    // An id issued to another address does not work from here.
    let theirs = e.connect(Duration::ZERO, "127.0.0.9:6001");
    assert!(error_text(send(0, theirs)).contains("connection id"));
    let cid = e.connect(Duration::ZERO, from);
    assert!(matches!(send(59, cid), Some(Response::Announce { .. })));
    assert!(matches!(send(119, cid), Some(Response::Announce { .. })));
    assert!(error_text(send(120, cid)).contains("expired"));
    let scrape = e.ask(
        Duration::ZERO,
        from,
        &Request::Scrape {
            connection_id: 1,
            transaction_id: 77,
            info_hashes: vec![InfoHash([9; 20])],
        },
    );
    assert!(error_text(scrape).contains("connection id"));
    assert_eq!(e.core.stats.errors_of(ErrorKind::UdpConnectionId), 5);
    assert_eq!(e.core.totals().seeders, 1, "only the valid announces count");
}

#[test]
fn malformed_packets_get_an_error_or_are_dropped() {
    let e = env();
    let from = "127.0.0.2:6001";
    // Too short to carry a transaction id: dropped.
    assert!(e.raw(Duration::ZERO, from, &[]).is_none());
    assert!(e.raw(Duration::ZERO, from, &[1; 15]).is_none());
    assert_eq!(e.core.stats.errors_of(ErrorKind::UdpDropped), 2);
    // Connect without the protocol magic.
    let mut p = vec![0u8; 16];
    p[12..16].copy_from_slice(&77u32.to_be_bytes());
    assert!(error_text(e.raw(Duration::ZERO, from, &p)).contains("protocol id"));
    // Unknown action.
    p[8..12].copy_from_slice(&9u32.to_be_bytes());
    assert!(error_text(e.raw(Duration::ZERO, from, &p)).contains("unknown action 9"));
    // Truncated announce.
    let cid = e.connect(Duration::ZERO, from);
    let mut a = Vec::new();
    Request::Announce {
        connection_id: cid,
        transaction_id: 77,
        announce: announce(1, 0),
    }
    .write(&mut a);
    assert!(error_text(e.raw(Duration::ZERO, from, &a[..60])).contains("too short"));
    // Bad event number.
    let mut bad = a.clone();
    bad[80..84].copy_from_slice(&7u32.to_be_bytes());
    assert!(error_text(e.raw(Duration::ZERO, from, &bad)).contains("event"));
    // Port 0.
    let mut zero = announce(1, 0);
    zero.port = 0;
    let r = e.ask(
        Duration::ZERO,
        from,
        &Request::Announce {
            connection_id: cid,
            transaction_id: 77,
            announce: zero,
        },
    );
    assert!(error_text(r).contains("port"));
    // Scrape with too many hashes.
    let mut s = Vec::new();
    Request::Scrape {
        connection_id: cid,
        transaction_id: 77,
        info_hashes: vec![InfoHash([1; 20]); 75],
    }
    .write(&mut s);
    assert!(error_text(e.raw(Duration::ZERO, from, &s)).contains("scrape"));
    assert_eq!(e.core.stats.errors_of(ErrorKind::UdpMalformed), 5);
    assert_eq!(e.core.stats.errors_of(ErrorKind::BadPort), 1);
}

#[test]
fn ipv6_and_mapped_clients() {
    let e = env();
    for (from, peer) in [("[::1]:6001", 1), ("[::1]:6002", 2)] {
        let cid = e.connect(Duration::ZERO, from);
        let r = e.ask(
            Duration::ZERO,
            from,
            &Request::Announce {
                connection_id: cid,
                transaction_id: 1,
                announce: announce(peer, 10),
            },
        );
        if peer == 2 {
            match r {
                Some(Response::Announce { peers, .. }) => {
                    assert_eq!(peers, vec!["[::1]:6001".parse().unwrap()])
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // An IPv4 client on a dual-stack socket gets 6-byte IPv4 entries only.
    let from = "[::ffff:127.0.0.5]:6003";
    let cid = e.connect(Duration::ZERO, from);
    let _ = e.ask(
        Duration::ZERO,
        "[::ffff:127.0.0.4]:6004",
        &Request::Connect { transaction_id: 1 },
    );
    let mut pkt = Vec::new();
    Request::Announce {
        connection_id: cid,
        transaction_id: 1,
        announce: announce(3, 10),
    }
    .write(&mut pkt);
    let mut out = Vec::new();
    assert!(handle(
        &e.core,
        &e.ids,
        e.t0,
        from.parse().unwrap(),
        &pkt,
        &mut out
    ));
    assert_eq!(out.len(), 20, "no IPv4 peers yet, and no IPv6 ones leak in");
    assert_eq!(e.core.totals().leechers, 3);
}
