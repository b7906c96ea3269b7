//! `sta tracker` end to end: the real binary on loopback ports chosen by the
//! kernel, driven over HTTP and UDP like clients drive it: announce and
//! scrape in both transports and both peer-list forms, `stopped` and expiry,
//! refusals with their `failure reason`, the stats pages, IPv6 and the
//! config file. The catalog is in tracker_catalog.rs.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use sta_proto::InfoHash;
use sta_proto::tracker::http::{HttpAnnounce, parse_scrape, scrape_query};
use sta_proto::tracker::udp::Response;
use sta_proto::tracker::{AnnounceResponse, Event};
use sta_testkit::files::random_file;
use sta_testkit::http::{Outcome, get, request_exchange};
use sta_testkit::sta::StaEnv;
use sta_testkit::tools::require_ipv6;
use sta_testkit::udp::UdpClient;
use sta_testkit::{Proc, wait_until};

#[path = "support/tracker_kit.rs"]
mod kit;
use kit::{STA, announce, failure, http_announce, publish, start};

#[test]
fn http_announce_compact_and_dict_forms() {
    let env = StaEnv::new(STA);
    let (mut p, http, _) = start(&env, &[]);
    let first = http_announce(http, announce(1, 1, 7001, 0, Event::Started), true, false);
    assert_eq!((first.complete, first.incomplete), (1, 0));
    assert!(first.peers.is_empty());
    assert_eq!(first.interval, 300);
    assert_eq!(first.min_interval, Some(30));

    // Compact (BEP 23): 6 bytes a peer, the address the request came from.
    let q = HttpAnnounce {
        announce: announce(1, 2, 7002, 100, Event::Started),
        compact: true,
        no_peer_id: false,
    }
    .to_query();
    let raw = get(http, &format!("/announce?{q}")).body;
    let needle = b"5:peers6:";
    let at = raw
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("compact peers");
    assert_eq!(&raw[at + 9..at + 15], &[127, 0, 0, 1, 0x1b, 0x59]);

    // Dictionary form with and without peer ids.
    let dict = http_announce(
        http,
        announce(1, 3, 7003, 100, Event::Started),
        false,
        false,
    );
    assert_eq!(dict.peers.len(), 2);
    let seeder = dict.peers.iter().find(|p| p.addr.port() == 7001).unwrap();
    assert_eq!(
        seeder.peer_id,
        Some(announce(1, 1, 0, 0, Event::None).peer_id)
    );
    let bare = http_announce(http, announce(1, 3, 7003, 100, Event::None), false, true);
    assert!(bare.peers.iter().all(|p| p.peer_id.is_none()));
    // The seeder hears only of leechers, never of itself.
    let s = http_announce(http, announce(1, 1, 7001, 0, Event::None), true, false);
    let mut ports: Vec<u16> = s.peers.iter().map(|p| p.addr.port()).collect();
    ports.sort();
    assert_eq!(ports, vec![7002, 7003]);
    assert_eq!((s.complete, s.incomplete), (1, 2));

    // Scrape, one and many hashes.
    let r = get(
        http,
        &format!(
            "/scrape?{}",
            scrape_query(&[InfoHash([1; 20]), InfoHash([2; 20])])
        ),
    );
    let files = parse_scrape(&r.body).unwrap();
    let one = files
        .iter()
        .find(|(h, _)| *h == InfoHash([1; 20]))
        .unwrap()
        .1;
    assert_eq!((one.complete, one.incomplete, one.downloaded), (1, 2, 0));
    assert_eq!(
        p.terminate(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn udp_announce_scrape_and_forged_ids() {
    let env = StaEnv::new(STA);
    let (mut p, http, udp) = start(&env, &[]);
    let mut a = UdpClient::new(udp, "127.0.0.2");
    let mut b = UdpClient::new(udp, "127.0.0.3");
    let ca = a.connect();
    match a.announce(ca, announce(5, 1, 7001, 0, Event::Started)) {
        Response::Announce {
            seeders: 1,
            leechers: 0,
            peers,
            interval: 300,
            ..
        } => assert!(peers.is_empty()),
        other => panic!("{other:?}"),
    }
    let cb = b.connect();
    match b.announce(cb, announce(5, 2, 7002, 10, Event::Started)) {
        Response::Announce { peers, .. } => {
            assert_eq!(peers, vec!["127.0.0.2:7001".parse().unwrap()])
        }
        other => panic!("{other:?}"),
    }
    match b.scrape(cb, vec![InfoHash([5; 20])]) {
        Response::Scrape { stats, .. } => {
            assert_eq!((stats[0].complete, stats[0].incomplete), (1, 1))
        }
        other => panic!("{other:?}"),
    }
    // A's id does not work from B's address; a made-up id does not work at all.
    for forged in [ca, 0x0417_2710_1980, 42] {
        match b.announce(forged, announce(5, 3, 7003, 10, Event::Started)) {
            Response::Error { message, .. } => {
                assert!(message.contains("connection id"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Malformed with a transaction id: an error; too short for one: silence.
    let mut junk = vec![0u8; 16];
    junk[8..12].copy_from_slice(&9u32.to_be_bytes());
    let answer = b.raw(&junk).expect("an error reply");
    assert_eq!(&answer[..4], &3u32.to_be_bytes());
    let stats = get(http, "/stats.json").json();
    assert_eq!(stats["errors"]["udp_bad_connection_id"], 3);
    assert_eq!(stats["errors"]["udp_malformed"], 1);
    assert_eq!(stats["announces"]["udp"]["started"], 2);
    assert_eq!(stats["udp_connects"], 2);
    // Over HTTP the same swarm is visible (one registry for both transports).
    let h = http_announce(http, announce(5, 9, 7009, 10, Event::Started), true, false);
    assert_eq!(h.peers.len(), 2);
    assert_eq!(
        p.terminate(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn udp_over_ipv6() {
    if !require_ipv6() {
        return;
    }
    let env = StaEnv::new(STA);
    let mut args = vec![
        "tracker",
        "--http",
        "off",
        "--udp",
        "[::1]:0",
        "--json",
        "--data-dir",
    ];
    let data = env.path("v6");
    let data = data.to_str().unwrap();
    args.push(data);
    let mut p = Proc::spawn("tracker6", STA, &args, &env.logs()).unwrap();
    let ready = p.wait_ready(Duration::from_secs(20)).unwrap();
    assert!(ready["http"].is_null());
    let udp: SocketAddr = ready["udp"].as_str().unwrap().parse().unwrap();
    let mut a = UdpClient::new(udp, "::1");
    let mut b = UdpClient::new(udp, "::1");
    let ca = a.connect();
    a.announce(ca, announce(6, 1, 7001, 0, Event::Started));
    let cb = b.connect();
    match b.announce(cb, announce(6, 2, 7002, 10, Event::Started)) {
        Response::Announce { peers, .. } => assert_eq!(peers, vec!["[::1]:7001".parse().unwrap()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.terminate(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn stopped_leaves_at_once_and_silent_peers_expire() {
    let env = StaEnv::new(STA);
    // interval 1 s: peers expire after 2 s without an announce.
    let (_p, http, _) = start(&env, &["--interval", "1"]);
    http_announce(http, announce(7, 1, 7001, 0, Event::Started), true, false);
    let b = http_announce(http, announce(7, 2, 7002, 10, Event::Started), true, false);
    assert_eq!(b.peers.len(), 1);
    let gone = http_announce(http, announce(7, 1, 7001, 0, Event::Stopped), true, false);
    assert_eq!((gone.complete, gone.incomplete), (0, 1));
    let b = http_announce(http, announce(7, 2, 7002, 10, Event::None), true, false);
    assert!(b.peers.is_empty(), "a stopped peer is not handed out");
    // Peer 2 now goes silent: the tracker forgets it.
    let scrape = || {
        let r = get(
            http,
            &format!("/scrape?{}", scrape_query(&[InfoHash([7; 20])])),
        );
        parse_scrape(&r.body).unwrap()[0].1
    };
    assert_eq!(scrape().incomplete, 1);
    wait_until("the silent peer to expire", Duration::from_secs(10), || {
        scrape().incomplete == 0
    })
    .unwrap();
    let stats = get(http, "/stats.json").json();
    assert_eq!(stats["expired_peers"], 1);
    assert_eq!(stats["announces"]["http"]["stopped"], 1);
}

#[test]
fn bad_requests_get_a_failure_reason_and_are_counted() {
    let env = StaEnv::new(STA);
    let (_p, http, _) = start(&env, &[]);
    let ok = HttpAnnounce {
        announce: announce(8, 1, 6881, 0, Event::Started),
        compact: true,
        no_peer_id: false,
    }
    .to_query();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            ok.replace("info_hash=", "x="),
            "missing parameter `info_hash`",
            "missing_param",
        ),
        (
            "info_hash=abc&peer_id=-TS0001-000000000001&port=1&left=0".into(),
            "info_hash must be 20 bytes, got 3",
            "bad_info_hash",
        ),
        (
            ok.replace("peer_id=", "peer_id=x&y="),
            "peer_id must be 20 bytes, got 1",
            "bad_peer_id",
        ),
        (
            ok.replace("port=6881", "port=0"),
            "port must be a number from 1 to 65535",
            "bad_port",
        ),
        (
            ok.replace("port=6881", "port=http"),
            "port must be a number from 1 to 65535",
            "bad_port",
        ),
        (
            ok.replace("event=started", "event=finished"),
            "unknown event \"finished\"",
            "bad_event",
        ),
        (
            ok.replace("left=0", "left=lots"),
            "parameter `left` is malformed",
            "malformed_param",
        ),
        (
            format!("{ok}&pad={}", "a".repeat(9000)),
            "query string longer than",
            "query_too_long",
        ),
    ];
    for (q, want, _) in &cases {
        let f = failure(http, &format!("/announce?{q}"));
        assert!(f.contains(want), "{q:.80}: {f}");
    }
    let f = failure(http, "/scrape");
    assert!(f.contains("at least one info_hash"), "{f}");
    let many = scrape_query(&vec![InfoHash([1; 20]); 101]);
    assert!(failure(http, &format!("/scrape?{many}")).contains("more than 100"));
    // A request head over 16 KiB is cut off, not buffered.
    let huge = format!("/announce?{ok}&pad={}", "a".repeat(40_000));
    match request_exchange(http, "GET", &huge, &[], &[], Duration::from_secs(10)) {
        Ok(Outcome::Answered(r)) => assert_eq!(r.status, 431, "{}", r.text()),
        other => panic!("an oversized head must get 431, got {other:?}"),
    }
    let stats = get(http, "/stats.json").json();
    for (_, _, kind) in &cases {
        assert!(
            stats["errors"][kind].as_u64().unwrap() >= 1,
            "{kind} counted: {}",
            stats["errors"]
        );
    }
    assert_eq!(stats["errors"]["bad_port"], 2);
    assert_eq!(stats["errors"]["too_many_hashes"], 1);
    let metrics = get(http, "/metrics").text();
    assert!(
        metrics.contains("sta_tracker_errors_total{kind=\"bad_port\"} 2"),
        "{metrics}"
    );
    // The cut-off head is not counted as an announce.
    assert_eq!(stats["announces_total"], 0);
    // Still serving.
    http_announce(http, announce(8, 1, 6881, 0, Event::Started), true, false);
}

#[test]
fn allowlist_makes_a_private_tracker() {
    let env = StaEnv::new(STA);
    let list = env.path("allow.txt");
    std::fs::write(&list, format!("# ours\n{}\n", InfoHash([9; 20]).to_hex())).unwrap();
    let list = list.to_str().unwrap();

    // Publishing would add torrents to the private tracker: without a token
    // (or --no-publish) it does not start, and says what to add.
    let out = Command::new(STA)
        .args([
            "tracker",
            "--http",
            "127.0.0.1:0",
            "--udp",
            "off",
            "--allowlist",
            list,
        ])
        .arg("--data-dir")
        .arg(env.path("refused"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--publish-token") && err.contains("--no-publish"),
        "{err}"
    );

    let (_p, http, _) = start(&env, &["--allowlist", list, "--publish-token", "s3cret"]);
    http_announce(http, announce(9, 1, 7001, 0, Event::Started), true, false);
    let src = env.path("private.bin");
    random_file(&src, 50_000, 3).unwrap();
    let torrent = env
        .create(&src, &format!("http://{http}/announce"), "16KiB")
        .unwrap();
    let hash = sta_proto::metainfo::parse(&std::fs::read(&torrent).unwrap())
        .unwrap()
        .info_hash;
    let q = |h: InfoHash| {
        let mut a = announce(0, 1, 7001, 0, Event::Started);
        a.info_hash = h;
        HttpAnnounce {
            announce: a,
            compact: true,
            no_peer_id: false,
        }
        .to_query()
    };
    let f = failure(http, &format!("/announce?{}", q(hash)));
    assert!(f.contains("not allowed here"), "{f}");
    // Publishing without the token is refused, so it stays not allowed...
    let url = format!("http://{http}/announce");
    let out = publish(&torrent, &url, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a token"));
    let f = failure(http, &format!("/announce?{}", q(hash)));
    assert!(f.contains("not allowed here"), "{f}");
    // ...and a token holder's publish makes it tracked.
    assert!(
        publish(&torrent, &url, &["--token", "s3cret"])
            .status
            .success()
    );
    http_announce(
        http,
        {
            let mut a = announce(0, 1, 7001, 0, Event::Started);
            a.info_hash = hash;
            a
        },
        true,
        false,
    );
    let stats = get(http, "/stats.json").json();
    assert_eq!(stats["errors"]["not_allowed"], 2);
    assert_eq!(stats["errors"]["publish_refused"], 1);
}

#[test]
fn stats_pages() {
    let env = StaEnv::new(STA);
    let (_p, http, _) = start(&env, &[]);
    http_announce(http, announce(11, 1, 7001, 0, Event::Started), true, false);
    http_announce(http, announce(11, 2, 7002, 9, Event::Started), true, false);
    let page = get(http, "/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let text = page.text();
    for want in [
        "torrents",
        "seeders",
        "leechers",
        "completed",
        "announces per second",
        &InfoHash([11; 20]).to_hex(),
    ] {
        assert!(text.contains(want), "page lacks {want}: {text}");
    }
    let j = get(http, "/stats.json").json();
    assert_eq!(
        (
            j["torrents"].as_u64(),
            j["seeders"].as_u64(),
            j["leechers"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(
        j["torrents_top"][0]["info_hash"],
        InfoHash([11; 20]).to_hex()
    );
    let m = get(http, "/metrics");
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = m.text();
    assert!(
        m.contains("sta_tracker_seeders 1\n") && m.contains("sta_tracker_leechers 1\n"),
        "{m}"
    );
    assert!(m.contains("sta_tracker_announces_total{proto=\"http\",event=\"started\"} 2\n"));
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let env = StaEnv::new(STA);
    let (_p, http, _) = start(&env, &[]);
    let out = Command::new(STA)
        .args([
            "tracker",
            "--http",
            &http.to_string(),
            "--udp",
            "off",
            "--data-dir",
        ])
        .arg(env.path("second"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for HTTP on {http}")) && err.contains("another"),
        "{err}"
    );
}

#[test]
fn http_over_ipv6_answers_with_peers6() {
    if !require_ipv6() {
        return;
    }
    let env = StaEnv::new(STA);
    let data = env.path("v6http");
    let args = [
        "tracker",
        "--http",
        "[::1]:0",
        "--udp",
        "off",
        "--json",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let mut p = Proc::spawn("tracker6http", STA, &args, &env.logs()).unwrap();
    let ready = p.wait_ready(Duration::from_secs(20)).unwrap();
    let http: SocketAddr = ready["http"].as_str().unwrap().parse().unwrap();
    assert!(http.is_ipv6());
    http_announce(http, announce(13, 1, 7001, 0, Event::Started), true, false);
    let q = HttpAnnounce {
        announce: announce(13, 2, 7002, 10, Event::Started),
        compact: true,
        no_peer_id: false,
    }
    .to_query();
    let raw = get(http, &format!("/announce?{q}")).body;
    // BEP 7: 18 bytes a peer (16 of address, 2 of port) under `peers6`.
    let needle = b"6:peers618:";
    let at = raw
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("no peers6 of one peer: {}", String::from_utf8_lossy(&raw)));
    let entry = &raw[at + needle.len()..at + needle.len() + 18];
    assert_eq!(&entry[..16], &std::net::Ipv6Addr::LOCALHOST.octets());
    assert_eq!(&entry[16..], &7001u16.to_be_bytes());
    let parsed = AnnounceResponse::parse(&raw).unwrap();
    assert_eq!(parsed.peers.len(), 1);
    assert_eq!(parsed.peers[0].addr, "[::1]:7001".parse().unwrap());
    assert_eq!(
        p.terminate(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn config_file_sets_the_tracker_and_flags_win() {
    let env = StaEnv::new(STA);
    let conf = env.path("sta.toml");
    std::fs::write(
        &conf,
        "[tracker]\ninterval_secs = 77\nmin_interval_secs = 7\nmax_peers_per_torrent = 1\n",
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    // From the file: the interval and the per-torrent cap.
    let (mut p, http, _) = start(&env, &["--config", conf]);
    let r = http_announce(http, announce(14, 1, 7001, 0, Event::Started), true, false);
    assert_eq!((r.interval, r.min_interval), (77, Some(7)));
    let q = HttpAnnounce {
        announce: announce(14, 2, 7002, 10, Event::Started),
        compact: true,
        no_peer_id: false,
    }
    .to_query();
    let f = failure(http, &format!("/announce?{q}"));
    assert!(f.starts_with("torrent is full: it has 1 peers"), "{f}");
    p.terminate(Duration::from_secs(10)).unwrap();
    // A flag overrides the file; the rest of the file still applies.
    let (_p, http, _) = start(&env, &["--config", conf, "--interval", "55"]);
    let r = http_announce(http, announce(14, 1, 7001, 0, Event::Started), true, false);
    assert_eq!((r.interval, r.min_interval), (55, Some(7)));
    assert!(failure(http, &format!("/announce?{q}")).starts_with("torrent is full"));
    // A typo in the file is an error naming the key.
    std::fs::write(env.path("bad.toml"), "[tracker]\nintervall = 5\n").unwrap();
    let out = Command::new(STA)
        .args(["tracker", "--config"])
        .arg(env.path("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("intervall"), "{err}");
}
