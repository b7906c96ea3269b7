//! `sta tracker` with real clients from Debian: pairs that find each other
//! only through it and complete a download, over HTTP and over `udp://`.
//! Each client has DHT, local discovery, PEX and port mapping off, so the
//! tracker is the only way they can meet (settings in `common::clients`).
//!
//! Loopback quirks handled here:
//! - Transmission 3.00 never dials a 127.x peer it learns from a tracker; it
//!   does accept connections. So with a Transmission leecher, the libtorrent
//!   seeder re-announces (ignoring min interval) once the tracker lists the
//!   leecher, learns it, and dials it.
//! - aria2c 1.36 reaches `udp://` trackers only through its DHT socket; the
//!   UDP case turns DHT on with no entry point and an empty routing table.
//! - libtorrent drops a second connection from an IP it already knows unless
//!   `allow_multiple_connections_per_ip` is on (lt_peer.py turns it on), and
//!   binds its announces and connections to its own 127.0.0.x.
//!
//! With CI=true a missing client fails the test instead of skipping it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sta_proto::InfoHash;
use sta_proto::tracker::http::{parse_scrape, scrape_query};
use sta_testkit::files::{random_file, sha256_file};
use sta_testkit::http::{addr_of, get};
use sta_testkit::reference::{Aria2, LtPeer, Transmission};
use sta_testkit::sta::StaEnv;
use sta_testkit::tools::{require_libtorrent, require_tool};
use sta_testkit::wait_until;

const STA: &str = env!("CARGO_BIN_EXE_sta");
const SIZE: u64 = 2 * 1024 * 1024;

fn ltpeer() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ltpeer.py")
}

struct Swarm {
    env: StaEnv,
    http: SocketAddr,
    torrent: PathBuf,
    info_hash: InfoHash,
    seed_dir: PathBuf,
    sha: String,
    _tracker: sta_testkit::Proc,
}

/// A tracker, a file in `seed/` and a torrent of it naming `which` of the
/// tracker's URLs ("http" or "udp") as its only tracker.
fn swarm(which: &str) -> Swarm {
    let env = StaEnv::new(STA);
    let (tracker, http_url, udp_url) = env.tracker(&[]).expect("tracker starts");
    let seed_dir = env.path("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let src = seed_dir.join("interop.bin");
    random_file(&src, SIZE, 3).unwrap();
    let url = if which == "udp" { &udp_url } else { &http_url };
    let torrent = env.create(&src, url, "64KiB").unwrap();
    let info_hash = sta_proto::metainfo::parse(&std::fs::read(&torrent).unwrap())
        .unwrap()
        .info_hash;
    Swarm {
        http: addr_of(&http_url),
        sha: sha256_file(&src).unwrap(),
        env,
        torrent,
        info_hash,
        seed_dir,
        _tracker: tracker,
    }
}

impl Swarm {
    fn scrape(&self) -> sta_proto::tracker::ScrapeStats {
        let r = get(
            self.http,
            &format!("/scrape?{}", scrape_query(&[self.info_hash])),
        );
        parse_scrape(&r.body).unwrap()[0].1
    }

    fn stats(&self) -> serde_json::Value {
        get(self.http, "/stats.json").json()
    }

    fn assert_copy(&self, dir: &std::path::Path) {
        let got = sha256_file(&dir.join("interop.bin")).unwrap();
        assert_eq!(got, self.sha, "the downloaded copy matches the original");
    }
}

fn clients_present(tools: &[&str]) -> bool {
    require_libtorrent() && tools.iter().all(|t| require_tool(t))
}

/// A python3-libtorrent seeder on 127.0.0.2 and a transmission-daemon
/// leecher on `tr_ip`, both announcing only to the sta tracker over `proto`
/// (`http` or `udp`). Returns the tracker's `/stats.json` once the download
/// is complete, verified and counted.
fn transmission_downloads_from_libtorrent(proto: &str, tr_ip: &str) -> serde_json::Value {
    let s = swarm(proto);
    let logs = s.env.logs();
    let seeder = LtPeer::seed(
        &ltpeer(),
        &s.torrent,
        &s.seed_dir,
        "127.0.0.2",
        &logs,
        "lt-seeder",
    )
    .unwrap();
    wait_until(
        "the tracker to list the seeder",
        Duration::from_secs(20),
        || s.scrape().complete == 1,
    )
    .unwrap();
    // Over UDP Transmission sends its announces from the socket bound to its
    // bind-address-ipv4, so the tracker sees tr_ip either way.
    let tr = Transmission::start(
        &s.env.path("tr-config"),
        &s.env.path("tr"),
        tr_ip,
        &logs,
        "tr-leecher",
    )
    .unwrap();
    tr.add(&s.torrent).unwrap();
    wait_until(
        "the tracker to list the leecher",
        Duration::from_secs(30),
        || s.scrape().incomplete == 1,
    )
    .unwrap();
    // Transmission will not dial 127.x peers: the seeder re-announces, learns
    // the leecher's address from the tracker and dials.
    seeder.reannounce();
    tr.wait_complete(Duration::from_secs(50)).unwrap();
    s.assert_copy(&tr.dir);
    // Transmission reports the download.
    wait_until("completed to be counted", Duration::from_secs(20), || {
        s.scrape().downloaded == 1
    })
    .unwrap();
    s.stats()
}

#[test]
fn transmission_downloads_from_libtorrent_through_http_tracker() {
    if !clients_present(&["transmission-daemon"]) {
        return;
    }
    let st = transmission_downloads_from_libtorrent("http", "127.0.0.5");
    assert!(
        st["announces"]["http"]["started"].as_u64().unwrap() >= 2,
        "{st}"
    );
}

#[test]
fn transmission_downloads_from_libtorrent_through_udp_tracker() {
    if !clients_present(&["transmission-daemon"]) {
        return;
    }
    // The torrent names only `udp://`: both clients announce over BEP 15.
    let st = transmission_downloads_from_libtorrent("udp", "127.0.0.6");
    assert!(
        st["announces"]["udp"]["started"].as_u64().unwrap() >= 2,
        "{st}"
    );
    assert!(
        st["announces"]["udp"]["completed"].as_u64().unwrap() >= 1,
        "{st}"
    );
    assert_eq!(
        st["announces"]["http"],
        serde_json::json!({"none": 0, "started": 0, "completed": 0, "stopped": 0}),
        "the torrent names only the UDP tracker"
    );
}

#[test]
fn libtorrent_pair_through_udp_tracker() {
    if !clients_present(&[]) {
        return;
    }
    let s = swarm("udp");
    let logs = s.env.logs();
    let _seeder = LtPeer::seed(
        &ltpeer(),
        &s.torrent,
        &s.seed_dir,
        "127.0.0.2",
        &logs,
        "lt-seeder",
    )
    .unwrap();
    wait_until(
        "the tracker to list the seeder",
        Duration::from_secs(20),
        || s.scrape().complete == 1,
    )
    .unwrap();
    let leech_dir = s.env.path("lt-leech");
    let mut leecher = LtPeer::start(
        &ltpeer(),
        false,
        &s.torrent,
        &leech_dir,
        "127.0.0.3",
        &logs,
        "lt-leecher",
    )
    .unwrap();
    leecher.wait_complete(Duration::from_secs(40)).unwrap();
    s.assert_copy(&leech_dir);
    let st = s.stats();
    assert!(
        st["announces"]["udp"]["started"].as_u64().unwrap() >= 2,
        "{st}"
    );
    assert!(st["udp_connects"].as_u64().unwrap() >= 2);
    assert_eq!(
        st["announces"]["http"]["started"], 0,
        "the torrent names only the UDP tracker"
    );
    wait_until(
        "the leecher to report completion",
        Duration::from_secs(20),
        || s.scrape().downloaded == 1,
    )
    .unwrap();
}

#[test]
fn aria2c_announces_and_receives_peers() {
    if !clients_present(&["aria2c"]) {
        return;
    }
    for which in ["http", "udp"] {
        let s = swarm(which);
        let logs = s.env.logs();
        let _seeder = LtPeer::seed(
            &ltpeer(),
            &s.torrent,
            &s.seed_dir,
            "127.0.0.2",
            &logs,
            "lt-seeder",
        )
        .unwrap();
        wait_until(
            "the tracker to list the seeder",
            Duration::from_secs(20),
            || s.scrape().complete == 1,
        )
        .unwrap();
        let dir = s.env.path("aria2");
        let mut aria = Aria2::start(
            false,
            which == "udp",
            &s.torrent,
            &dir,
            "127.0.0.4",
            &logs,
            "aria2c",
        )
        .unwrap();
        // aria2c can only have found the seeder through the tracker.
        aria.wait_done(Duration::from_secs(40)).unwrap();
        s.assert_copy(&dir);
        let st = s.stats();
        let n = st["announces"][which]["started"].as_u64().unwrap();
        assert!(n >= 2, "{which}: aria2c announced: {st}");
    }
}
