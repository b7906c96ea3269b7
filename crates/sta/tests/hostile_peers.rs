//! Misbehaving peers written in the test suite against real `sta` nodes:
//! corrupt data is caught, attributed and banned; garbage, huge lengths,
//! requests outside the torrent, floods and a storm of thousands of idle
//! connections end those connections (a stalled handshake within the
//! handshake timeout) while the node keeps answering its control API and
//! serving an honest leecher.

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
    let (seeder, ready) = env.seeder("seeder", &t, &env.path("seed"), &[]).unwrap();
    let addr: SocketAddr = ready_peer_addr(&ready);
    let api = ready["api"].as_str().unwrap().to_string();
    let id = PeerId(*b"-XX0001-hostilehosti");

    // A handshake that never finishes: the node must close it within its
    // handshake timeout (10 s). Checked after the next few attacks, which
    // complete their handshakes and so never crowd it out of the pending cap.
    let mut stalled = WirePeer::from_stream(connect_from(addr, "127.0.0.71").unwrap(), n);
    stalled.send_raw(&[19, b'B', b'i']).unwrap();
    let stalled_at = Instant::now();

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

    let left = (HANDSHAKE_TIMEOUT + Duration::from_secs(2)).saturating_sub(stalled_at.elapsed());
    assert!(
        stalled.closed_within(left),
        "a handshake that never finishes must be closed within {HANDSHAKE_TIMEOUT:?}"
    );
    eprintln!("stalled handshake closed after {:?}", stalled_at.elapsed());

    // A storm: thousands of connections that never say anything, opened
    // without pause and STORM_OPEN of them held open at a time, from many
    // addresses, until the test stops it. Meanwhile the node must answer its
    // API and serve an honest leecher.
    raise_open_files_limit(STORM_OPEN as u64 + 1024);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let storm = {
        let (stop, opened) = (stop.clone(), opened.clone());
        std::thread::spawn(move || storm_until(addr, &stop, &opened))
    };
    use std::sync::atomic::Ordering::Relaxed;
    sta_testkit::wait_until("the storm to open its first connections", T, || {
        opened.load(Relaxed) >= STORM_OPEN
    })
    .unwrap();
    let st = api_status(&api).expect("the control API answers during the storm");
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
    assert!(api_status(&api).is_some(), "the control API still answers");
    assert!(!storm.is_finished(), "the storm was still raging");
    stop.store(true, Relaxed);
    let total = storm.join().unwrap();
    eprintln!("the storm opened {total} connections");
    assert!(total >= STORM_OPEN, "{total}");
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
}

/// The node's handshake timeout (crates/sta-node/src/session.rs).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections the storm holds open at once.
const STORM_OPEN: usize = 2000;

/// Opens connections to `addr` from 127.0.1.1 to 127.0.8.250 in turn until
/// `stop`, keeping the newest [`STORM_OPEN`] open; returns how many it opened.
fn storm_until(
    addr: SocketAddr,
    stop: &std::sync::atomic::AtomicBool,
    opened: &std::sync::atomic::AtomicUsize,
) -> usize {
    use std::sync::atomic::Ordering::Relaxed;
    let mut open = std::collections::VecDeque::with_capacity(STORM_OPEN);
    let mut i = 0usize;
    while !stop.load(Relaxed) {
        let from = format!("127.0.{}.{}", 1 + (i / 250) % 8, 1 + i % 250);
        i += 1;
        if let Ok(s) = connect_from(addr, &from) {
            if open.len() == STORM_OPEN {
                open.pop_front();
            }
            open.push_back(s);
            opened.fetch_add(1, Relaxed);
        }
    }
    opened.load(Relaxed)
}

/// Raises this process's soft limit on open files to at least `want` (up
/// to the hard limit), for the storm's client sockets.
fn raise_open_files_limit(want: u64) {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        if r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        }
        assert!(
            r.rlim_cur >= want,
            "the storm needs {want} open files; the hard limit is {}",
            r.rlim_max
        );
    }
}
