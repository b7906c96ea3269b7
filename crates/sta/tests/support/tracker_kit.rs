//! Helpers shared by the `sta tracker` end-to-end tests (tracker.rs,
//! tracker_catalog.rs): announces built and sent like a client's, refusals
//! read back, a tracker started on kernel-chosen ports.
#![allow(dead_code)] // each test binary uses its own share

use std::net::SocketAddr;
use std::process::Command;

use sta_proto::tracker::http::HttpAnnounce;
use sta_proto::tracker::{Announce, AnnounceResponse, Event};
use sta_proto::{InfoHash, PeerId};
use sta_testkit::Proc;
use sta_testkit::http::{addr_of, get};
use sta_testkit::sta::StaEnv;

pub const STA: &str = env!("CARGO_BIN_EXE_sta");

pub fn announce(h: u8, peer: u8, port: u16, left: u64, event: Event) -> Announce {
    let mut id = *b"-TS0001-000000000000";
    id[19] = peer;
    Announce {
        info_hash: InfoHash([h; 20]),
        peer_id: PeerId(id),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        numwant: None,
        key: None,
        ip: None,
    }
}

pub fn http_announce(
    addr: SocketAddr,
    a: Announce,
    compact: bool,
    no_peer_id: bool,
) -> AnnounceResponse {
    let q = HttpAnnounce {
        announce: a,
        compact,
        no_peer_id,
    }
    .to_query();
    let r = get(addr, &format!("/announce?{q}"));
    assert_eq!(r.status, 200);
    AnnounceResponse::parse(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

pub fn failure(addr: SocketAddr, target: &str) -> String {
    let r = get(addr, target);
    assert_eq!(r.status, 200, "refusals are HTTP 200");
    match AnnounceResponse::parse(&r.body) {
        Err(sta_proto::tracker::http::ResponseError::Failure(f)) => f,
        other => panic!("{target}: expected a failure reason, got {other:?}"),
    }
}

pub fn start(env: &StaEnv, extra: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let (p, http, udp) = env.tracker(extra).expect("tracker starts");
    (p, addr_of(&http), addr_of(&udp))
}

pub fn publish(torrent: &std::path::Path, tracker: &str, extra: &[&str]) -> std::process::Output {
    Command::new(STA)
        .arg("publish")
        .arg(torrent)
        .args(["--tracker", tracker])
        .args(extra)
        .output()
        .expect("sta publish runs")
}
