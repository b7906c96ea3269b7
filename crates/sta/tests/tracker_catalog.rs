//! The tracker's catalog end to end: `sta publish` → list → fetch the same
//! bytes → restart → still there, and the ways publishing is refused.

use std::time::Duration;

use sta_proto::tracker::Event;
use sta_proto::tracker::http::{parse_scrape, scrape_query};
use sta_testkit::files::random_file;
use sta_testkit::http::{Outcome, addr_of, get, post, request_exchange};
use sta_testkit::sta::StaEnv;

#[path = "support/tracker_kit.rs"]
mod kit;
use kit::{STA, announce, http_announce, publish};

#[test]
fn catalog_publish_list_fetch_and_survive_a_restart() {
    let env = StaEnv::new(STA);
    let src = env.path("catalog sample.bin");
    random_file(&src, 300_000, 7).unwrap();
    let (mut p, announce_url, _) = env.tracker(&[]).unwrap();
    let http = addr_of(&announce_url);
    let torrent = env.create(&src, &announce_url, "16KiB").unwrap();
    let bytes = std::fs::read(&torrent).unwrap();
    let meta = sta_proto::metainfo::parse(&bytes).unwrap();
    let hex = meta.info_hash.to_hex();

    let out = publish(&torrent, &announce_url, &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["info_hash"], hex);
    assert_eq!(answer["new"], true);
    // Publishing again is fine and changes nothing.
    let again = publish(&torrent, &format!("udp://{http}"), &[]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already published"));

    let list = get(http, "/torrents.json").json();
    let row = &list["torrents"][0];
    assert_eq!(row["name"], "catalog sample.bin");
    assert_eq!(row["size"], 300_000);
    assert_eq!(row["info_hash"], hex);
    let magnet = sta_proto::magnet::Magnet::parse(row["magnet"].as_str().unwrap()).unwrap();
    assert_eq!(magnet.info_hash, meta.info_hash);
    assert_eq!(magnet.trackers, vec![format!("http://{http}/announce")]);
    assert_eq!(
        get(http, "/torrents?format=json").json()["torrents"][0]["info_hash"],
        hex
    );
    assert_eq!(
        get(http, "/torrents.json?q=SAMPLE").json()["torrents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(http, "/torrents.json?q=nothing-like-it").json()["torrents"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let html = get(http, "/torrents?q=catalog").text();
    assert!(html.contains("<form") && html.contains("catalog sample.bin") && html.contains(&hex));

    let fetched = get(http, &format!("/torrents/{hex}.torrent"));
    assert_eq!(fetched.status, 200);
    assert_eq!(
        fetched.header("content-type"),
        Some("application/x-bittorrent")
    );
    assert_eq!(fetched.body, bytes, "the exact bytes published");
    assert_eq!(
        get(http, &format!("/torrents/{}.torrent", "0".repeat(40))).status,
        404
    );

    // A download completes; the counter must survive the restart.
    let mut a = announce(0, 1, 7001, 0, Event::Completed);
    a.info_hash = meta.info_hash;
    http_announce(http, a, true, false);
    assert_eq!(
        p.terminate(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );

    let (_p2, announce2, _) = env.tracker(&[]).unwrap();
    let http2 = addr_of(&announce2);
    let list = get(http2, "/torrents.json").json();
    assert_eq!(list["torrents"][0]["info_hash"], hex);
    assert_eq!(list["torrents"][0]["completed"], 1);
    assert_eq!(get(http2, &format!("/torrents/{hex}.torrent")).body, bytes);
    let r = get(
        http2,
        &format!("/scrape?{}", scrape_query(&[meta.info_hash])),
    );
    assert_eq!(parse_scrape(&r.body).unwrap()[0].1.downloaded, 1);
}

#[test]
fn publishing_can_be_refused() {
    let env = StaEnv::new(STA);
    let src = env.path("x.bin");
    random_file(&src, 50_000, 1).unwrap();
    let torrent = env
        .create(&src, "http://127.0.0.1:1/announce", "16KiB")
        .unwrap();

    let (_p, url, _) = env.tracker(&["--no-publish"]).unwrap();
    let out = publish(&torrent, &url, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("publishing is turned off"));

    let env2 = StaEnv::new(STA);
    let (_p2, url2, _) = env2.tracker(&["--publish-token", "s3cret"]).unwrap();
    let out = publish(&torrent, &url2, &["--token", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a token"));
    assert!(
        publish(&torrent, &url2, &["--token", "s3cret"])
            .status
            .success()
    );

    // Not a torrent, and too large: refused by the tracker itself.
    let http2 = addr_of(&url2);
    let auth = [("Authorization", "Bearer s3cret")];
    let r = post(http2, "/torrents", &auth, b"d4:spam4:eggse");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("not a usable torrent")
    );
    // Declared too large: 413 before the body is read (the answer arrives
    // while the client is still sending).
    let big = vec![b'x'; 11 * 1024 * 1024];
    match request_exchange(
        http2,
        "POST",
        "/torrents",
        &auth,
        &big,
        Duration::from_secs(10),
    ) {
        Ok(Outcome::Answered(r)) => {
            assert_eq!(r.status, 413, "{}", r.text());
            assert!(
                r.text().contains("larger than the 10485760 bytes"),
                "{}",
                r.text()
            );
        }
        other => panic!("an oversized publish must get 413, got {other:?}"),
    }
    // Still serving announces and publishes.
    http_announce(http2, announce(12, 1, 7001, 0, Event::Started), true, false);
    let stats = get(http2, "/stats.json").json();
    assert!(stats["errors"]["publish_invalid"].as_u64().unwrap() >= 1);
    assert_eq!(stats["errors"]["publish_refused"], 1);
}
