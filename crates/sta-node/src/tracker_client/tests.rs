//! The tracker client against tiny HTTP trackers on loopback: tier order and
//! promotion (BEP 12), the re-announce schedule, back-off, and a hostile
//! tracker's oversized answer.

use super::*;
use crate::http_body::test_server::{Hits, serve};
use tokio::net::TcpListener;

/// An HTTP tracker that answers every announce with `body`.
async fn tracker(body: Vec<u8>) -> (String, Hits) {
    let (base, hits) = serve(body, false).await;
    (format!("{base}/announce"), hits)
}

/// A URL whose port refuses connections at once.
async fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/announce", l.local_addr().unwrap());
    drop(l);
    url
}

fn response(interval: u32, min_interval: Option<u32>, peer: &str) -> AnnounceResponse {
    AnnounceResponse {
        interval,
        min_interval,
        complete: 1,
        incomplete: 2,
        peers: vec![PeerEntry {
            addr: peer.parse().unwrap(),
            peer_id: None,
        }],
        warning: None,
    }
}

fn client(tiers: Vec<Vec<String>>) -> TrackerClient {
    TrackerClient::new(
        tiers,
        ClientConfig {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            port: 6881,
            announce_ip: None,
            bind: None,
            key: 7,
        },
    )
}

#[tokio::test]
async fn tiers_are_tried_in_order_and_the_tracker_that_answers_is_promoted() {
    let (live, hits) = tracker(response(300, None, "127.0.0.9:7000").encode(true, true)).await;
    let (backup, backup_hits) =
        tracker(response(300, None, "127.0.0.8:7000").encode(true, true)).await;
    let dead = dead_url().await;
    // Tier 0 holds a dead and a live tracker; tier 1 must not be asked while
    // tier 0 answers.
    let mut c = client(vec![vec![dead.clone(), live.clone()], vec![backup.clone()]]);
    let (url, r) = c.announce(Event::Started, AnnounceStats::default()).await;
    assert_eq!(url, live);
    assert_eq!(r.unwrap().peers[0].addr, "127.0.0.9:7000".parse().unwrap());
    assert_eq!(
        c.tiers[0][0], live,
        "the tracker that answered leads its tier"
    );
    assert_eq!(backup_hits.get(), 0);

    // The next announce goes straight to it.
    let (url, r) = c.announce(Event::None, AnnounceStats::default()).await;
    assert_eq!(url, live);
    assert!(r.is_ok());
    assert_eq!(hits.get(), 2);

    // With tier 0 all dead, tier 1 answers.
    let mut c = client(vec![vec![dead.clone()], vec![backup.clone()]]);
    let (url, r) = c.announce(Event::Started, AnnounceStats::default()).await;
    assert_eq!(url, backup);
    assert!(r.is_ok());
}

#[tokio::test]
async fn a_refusal_and_an_oversized_answer_are_errors() {
    let (refusing, _) = tracker(sta_proto::tracker::http::encode_failure("unknown torrent")).await;
    let mut c = client(vec![vec![refusing]]);
    let (_, r) = c.announce(Event::Started, AnnounceStats::default()).await;
    assert!(
        matches!(&r, Err(AnnounceError::Refused(m)) if m == "unknown torrent"),
        "{r:?}"
    );

    let (huge, _) = tracker(vec![b'x'; MAX_TRACKER_RESPONSE + 1]).await;
    let mut c = client(vec![vec![huge]]);
    let (_, r) = c.announce(Event::Started, AnnounceStats::default()).await;
    assert!(
        matches!(&r, Err(AnnounceError::Http(m)) if m.contains("larger than")),
        "{r:?}"
    );
}

#[test]
fn the_schedule_follows_interval_not_min_interval() {
    let wait = |i, m| reannounce_wait(&response(i, m, "127.0.0.1:1")).as_secs();
    assert_eq!(wait(300, Some(30)), 300, "min interval is not the schedule");
    assert_eq!(wait(20, Some(60)), 60, "never sooner than min interval");
    assert_eq!(
        wait(1, None),
        u64::from(MIN_INTERVAL),
        "a floor for tiny intervals"
    );
}

#[test]
fn back_off_doubles_up_to_a_minute() {
    let secs: Vec<u64> = (1..=8).map(|f| backoff(f).as_secs()).collect();
    assert_eq!(secs, [4, 8, 16, 32, 60, 60, 60, 60]);
}

#[tokio::test]
async fn the_loop_announces_started_then_delivers_peers_and_stops_on_cancel() {
    let (url, hits) = tracker(response(300, Some(30), "127.0.0.7:7000").encode(true, true)).await;
    let (_stats_tx, stats) = watch::channel(AnnounceStats::default());
    let (_events_tx, events) = mpsc::channel(4);
    let (peers_tx, mut peers) = mpsc::channel(4);
    let (status_tx, status) = watch::channel(TrackerStatus::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(
        client(vec![vec![url]]),
        stats,
        events,
        peers_tx,
        status_tx,
        cancel.clone(),
    ));
    let got = tokio::time::timeout(Duration::from_secs(10), peers.recv())
        .await
        .expect("peers within 10 s")
        .unwrap();
    assert_eq!(got, vec!["127.0.0.7:7000".parse::<SocketAddr>().unwrap()]);
    assert_eq!(status.borrow().next_announce_secs, 300);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops within 10 s")
        .unwrap();
    assert_eq!(status.borrow().state, "stopped");
    // `started`, then `stopped` on the way out.
    assert_eq!(hits.get(), 2);
}
