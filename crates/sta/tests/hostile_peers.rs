//! Misbehaving peers written in the test suite against real `sta` nodes:
//! corrupt data is caught, attributed and banned; garbage, huge lengths,
//! requests outside the torrent, floods and connection storms end those
//! connections while the node keeps answering and serving others.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sta_proto::wire::{BlockInfo, Handshake, Message};
use sta_proto::{InfoHash, PeerId};
use sta_testkit::files::{random_file, sha256_file};
use sta_testkit::peer::{CorruptSeeder, WirePeer, connect_from};
use sta_testkit::sta::{StaEnv, ready_peer_addr, torrent, wait_complete, wait_status};

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);

fn info_hash(env: &StaEnv, t: &std::path::Path) -> (InfoHash, u32) {
    let out = std::process::Command::new(&env.bin)
        .args(["info", "--json"])
        .arg(t)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        InfoHash::from_hex(v["info_hash"].as_str().unwrap()).unwrap(),
        v["pieces"].as_u64().unwrap() as u32,
    )
}

fn api_status(api: &str) -> Option<serde_json::Value> {
    let r = sta_testkit::http::request(api.parse().ok()?, "GET", "/api/status", &[], &[]).ok()?;
    serde_json::from_slice(&r.body).ok()
}

#[test]
fn corrupt_blocks_are_refetched_and_their_sender_banned() {
    let mut env = StaEnv::new(STA);
    let src = env.path("seed/c.bin");
    random_file(&src, 4 << 20, 11).unwrap();
    let t = env.create(&src, "", "256KiB").unwrap();
    let (ih, n) = info_hash(&env, &t);
    // A slow honest seeder and a fast liar.
    let (mut seeder, ready) = env
        .node(
            "seeder",
            "node",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("seed").to_str().unwrap(),
                "--role",
                "seeder",
                "--max-upload-rate",
                "1MiB",
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let liar = CorruptSeeder::start("127.0.0.66", ih, n).unwrap();
    let good = ready_peer_addr(&ready).to_string();
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--peer",
                &good,
                "--peer",
                &liar.addr.to_string(),
                "--exit-on-complete",
            ],
        )
        .unwrap();
    wait_complete(&mut leecher, T).unwrap();
    let last = leecher
        .wait_json("final status", T, |v| v["event"] == "stopped")
        .unwrap();
    let tt = torrent(&last);
    assert!(
        tt["hash_failures"].as_u64().unwrap() >= 1,
        "the liar's pieces must fail: {tt}"
    );
    assert_eq!(tt["banned"], 1, "the liar is banned");
    assert!(liar.blocks_sent.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(
        sha256_file(&src).unwrap(),
        sha256_file(&out.join("c.bin")).unwrap()
    );
}

#[test]
fn hostile_connections_are_cut_and_the_seeder_keeps_serving() {
    let mut env = StaEnv::new(STA);
    let src = env.path("seed/h.bin");
    random_file(&src, 2 << 20, 12).unwrap();
    let t = env.create(&src, "", "64KiB").unwrap();
    let (ih, n) = info_hash(&env, &t);
    let (mut seeder, ready) = env
        .node(
            "seeder",
            "node",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("seed").to_str().unwrap(),
                "--role",
                "seeder",
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let addr: SocketAddr = ready_peer_addr(&ready);
    let api = ready["api"].as_str().unwrap().to_string();
    let id = PeerId(*b"-XX0001-hostilehosti");

    // A handshake that never finishes: held open for the whole test.
    let mut stalled = connect_from(addr, "127.0.0.71").unwrap();
    std::io::Write::write_all(&mut stalled, &[19, b'B', b'i']).unwrap();

    // A storm of idle connections: the node must stay responsive.
    let storm: Vec<_> = (0..300)
        .filter_map(|i| connect_from(addr, &format!("127.0.1.{}", 1 + i % 250)).ok())
        .collect();
    assert!(storm.len() > 200);

    // Wrong info-hash: closed without an answer.
    let mut p = WirePeer::from_stream(connect_from(addr, "127.0.0.72").unwrap(), n);
    p.send_raw(&Handshake::new(InfoHash([9; 20]), id).encode())
        .unwrap();
    assert!(
        p.closed_within(Duration::from_secs(15)),
        "wrong info-hash must be refused"
    );

    // A 4 GiB length prefix: closed before anything is allocated.
    let (mut p, _) = WirePeer::connect(addr, "127.0.0.73", ih, id, n).unwrap();
    p.send_raw(&[0xff, 0xff, 0xff, 0xff, 7]).unwrap();
    assert!(
        p.closed_within(Duration::from_secs(15)),
        "huge length prefix must end the connection"
    );

    // Garbage bytes: closed.
    let (mut p, _) = WirePeer::connect(addr, "127.0.0.74", ih, id, n).unwrap();
    p.send_raw(&[0, 0, 0, 3, 4, 1, 2]).unwrap();
    assert!(
        p.closed_within(Duration::from_secs(15)),
        "malformed have must end the connection"
    );

    // A request beyond the torrent: closed.
    let (mut p, _) = WirePeer::connect(addr, "127.0.0.75", ih, id, n).unwrap();
    p.send(&Message::Request(BlockInfo {
        index: n,
        begin: 0,
        length: 16384,
    }))
    .unwrap();
    assert!(
        p.closed_within(Duration::from_secs(15)),
        "request past the last piece must end the connection"
    );
    let (mut p, _) = WirePeer::connect(addr, "127.0.0.76", ih, id, n).unwrap();
    p.send(&Message::Request(BlockInfo {
        index: 0,
        begin: 60000,
        length: 16384,
    }))
    .unwrap();
    assert!(
        p.closed_within(Duration::from_secs(15)),
        "request past the end of a piece must end the connection"
    );

    // A request flood from a peer that never reads: refused, then cut.
    let (mut p, _) = WirePeer::connect(addr, "127.0.0.77", ih, id, n).unwrap();
    p.send(&Message::Interested).unwrap();
    let deadline = Instant::now() + T;
    loop {
        match p.recv(Duration::from_secs(15)).unwrap() {
            Some(Message::Unchoke) => break,
            Some(_) => {}
            None => panic!("closed before unchoke"),
        }
        assert!(Instant::now() < deadline);
    }
    let mut flood = bytes::BytesMut::new();
    for i in 0..5000u32 {
        Message::Request(BlockInfo {
            index: i % n,
            begin: 0,
            length: 16384,
        })
        .encode(&mut flood);
    }
    let _ = p.send_raw(&flood);
    assert!(
        p.closed_within(Duration::from_secs(20)),
        "a request flood must end the connection"
    );

    // Through all this the node answers its API and serves an honest leecher.
    let st = api_status(&api).expect("control API answers");
    assert_eq!(st["torrents"][0]["state"], "seeding");
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--peer",
                &addr.to_string(),
                "--exit-on-complete",
            ],
        )
        .unwrap();
    wait_complete(&mut leecher, T).unwrap();
    assert_eq!(
        sha256_file(&src).unwrap(),
        sha256_file(&out.join("h.bin")).unwrap()
    );

    // Memory stays bounded.
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", seeder.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap())
        })
        .unwrap();
    assert!(rss_kib < 150 * 1024, "seeder RSS {rss_kib} KiB");
    drop(storm);
    drop(stalled);
}
