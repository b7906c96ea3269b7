//! The tracker under pressure, end to end: slow clients are cut off on
//! time, the connection cap holds, publishing is bounded (bodies at once,
//! bytes stored), and a flood of announces from many addresses past the
//! caps is refused with reasons, counted, kept in bounded memory, while an
//! honest client is still answered. Caps are set small through `--config`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sta_proto::tracker::http::HttpAnnounce;
use sta_proto::tracker::udp::Response;
use sta_proto::tracker::{Announce, AnnounceResponse, Event};
use sta_proto::{InfoHash, PeerId};
use sta_testkit::files::random_file;
use sta_testkit::http::{addr_of, get, post, request_on};
use sta_testkit::peer::connect_from;
use sta_testkit::sta::StaEnv;
use sta_testkit::udp::UdpClient;
use sta_testkit::{Proc, wait_until};

const STA: &str = env!("CARGO_BIN_EXE_sta");

fn announce(info_hash: InfoHash, peer: [u8; 4], port: u16, left: u64) -> Announce {
    let mut id = *b"-TS0001-000000000000";
    id[16..].copy_from_slice(&peer);
    Announce {
        info_hash,
        peer_id: PeerId(id),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event: Event::Started,
        numwant: None,
        key: None,
        ip: None,
    }
}

fn query(a: Announce) -> String {
    HttpAnnounce {
        announce: a,
        compact: true,
        no_peer_id: false,
    }
    .to_query()
}

/// A tracker started with `toml` as its `[tracker]` section.
fn tracker(env: &StaEnv, toml: &str) -> (Proc, SocketAddr, SocketAddr) {
    let conf = env.path("sta.toml");
    std::fs::write(&conf, format!("[tracker]\n{toml}")).unwrap();
    let (p, http, udp) = env
        .tracker(&["--config", conf.to_str().unwrap()])
        .expect("tracker starts");
    (p, addr_of(&http), addr_of(&udp))
}

/// A client that sends a request head one byte every 200 ms and never
/// finishes it. Reports how long the server let it live.
struct Slowloris {
    closed: mpsc::Receiver<Duration>,
}

impl Slowloris {
    fn start(to: SocketAddr, from: &str) -> Slowloris {
        let s = connect_from(to, from).expect("connect");
        let started = Instant::now();
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let head = b"GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for b in head.iter().cycle() {
                if w.write_all(&[*b]).is_err() {
                    return;
                }
                // The client's own pace, not a wait for the server.
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut buf = [0u8; 1024];
            // Whatever ends the read (EOF, a reset, an error page) is the
            // server giving up on us; a read timeout is not.
            let r = s.read(&mut buf);
            if !matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
            {
                let _ = tx.send(started.elapsed());
            }
        });
        Slowloris { closed: rx }
    }

    fn closed_within(&self, timeout: Duration) -> Option<Duration> {
        self.closed.recv_timeout(timeout).ok()
    }
}

#[test]
fn a_slow_client_is_cut_off_on_time_while_announces_go_on() {
    let env = StaEnv::new(STA);
    let (_p, http, _) = tracker(&env, "http_request_timeout_secs = 2\n");
    let slow = Slowloris::start(http, "127.0.0.20");
    // Served meanwhile.
    for i in 0..5u8 {
        let r = get(
            http,
            &format!(
                "/announce?{}",
                query(announce(InfoHash([1; 20]), [0, 0, 0, i], 7000, 0))
            ),
        );
        AnnounceResponse::parse(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    }
    let lived = slow
        .closed_within(Duration::from_secs(15))
        .expect("the slow client is cut off");
    // The head deadline (2 s), not the connection lifetime (120 s).
    assert!(
        lived >= Duration::from_millis(1500) && lived < Duration::from_secs(6),
        "cut off after {lived:?}"
    );
    let r = get(
        http,
        &format!(
            "/announce?{}",
            query(announce(InfoHash([1; 20]), [0, 0, 1, 0], 7000, 0))
        ),
    );
    assert_eq!(AnnounceResponse::parse(&r.body).unwrap().complete, 6);
}

#[test]
fn the_connection_cap_holds_and_frees_up() {
    let env = StaEnv::new(STA);
    let (_p, http, udp) = tracker(
        &env,
        "http_max_connections = 4\nhttp_request_timeout_secs = 3\n",
    );
    let slow: Vec<Slowloris> = (0..4)
        .map(|i| Slowloris::start(http, &format!("127.0.0.{}", 30 + i)))
        .collect();
    // The fifth is closed at accept, before a byte is read.
    let mut fifth = connect_from(http, "127.0.0.40").unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = fifth.write_all(b"GET /stats.json HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut got = Vec::new();
    match fifth.read_to_end(&mut got) {
        Ok(_) => assert!(got.is_empty(), "over the cap, yet answered: {got:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // UDP is not held up by a full HTTP side.
    let mut c = UdpClient::new(udp, "127.0.0.41");
    let id = c.connect();
    assert!(matches!(
        c.announce(id, announce(InfoHash([2; 20]), [0, 0, 0, 1], 7000, 0)),
        Response::Announce { seeders: 1, .. }
    ));
    // The slow ones are cut off by the head deadline; HTTP serves again.
    for s in &slow {
        s.closed_within(Duration::from_secs(15))
            .expect("a slow client holding a slot is cut off");
    }
    let mut stats = serde_json::Value::Null;
    wait_until(
        "HTTP to serve again",
        Duration::from_secs(10),
        || match sta_testkit::http::request(http, "GET", "/stats.json", &[], &[]) {
            Ok(r) if r.status == 200 => {
                stats = r.json();
                true
            }
            _ => false,
        },
    )
    .unwrap();
    assert!(
        stats["errors"]["http_connections_full"].as_u64().unwrap() >= 1,
        "{}",
        stats["errors"]
    );
    let r = get(
        http,
        &format!(
            "/announce?{}",
            query(announce(InfoHash([2; 20]), [0, 0, 0, 2], 7001, 5))
        ),
    );
    assert_eq!(AnnounceResponse::parse(&r.body).unwrap().peers.len(), 1);
}

#[test]
fn publishing_is_bounded_in_bodies_at_once_and_bytes_stored() {
    let env = StaEnv::new(STA);
    let mut torrents = Vec::new();
    for (i, name) in ["first.bin", "second.bin", "third.bin"].iter().enumerate() {
        let src = env.path(name);
        random_file(&src, 40_000, i as u64).unwrap();
        let t = env
            .create(&src, "http://127.0.0.1:1/announce", "16KiB")
            .unwrap();
        torrents.push(std::fs::read(t).unwrap());
    }
    // Room for the first two torrents, not the third.
    let room = torrents[0].len() + torrents[1].len();
    let (_p, http, _) = tracker(
        &env,
        &format!(
            "publish_concurrency = 1\nhttp_request_timeout_secs = 30\nmax_catalog_bytes = {room}\n"
        ),
    );
    // One publish whose body trickles in holds the only slot...
    let open_slow = || {
        let mut s = TcpStream::connect(http).unwrap();
        s.write_all(
            b"POST /torrents HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nd8:announce",
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s
    };
    let mut slow = open_slow();
    // ...so another is refused at once, before its body is read. Which of
    // two arriving together gets the slot is up to the server: while the
    // probe wins (400, not a torrent) and the slow one was answered, start
    // the slow one again.
    let mut busy = None;
    wait_until("a publish to be refused as busy", Duration::from_secs(10), || {
        let r = post(http, "/torrents", &[], b"not a torrent");
        match r.status {
            503 => {
                busy = Some(r);
                true
            }
            400 => {
                let mut b = [0u8; 1];
                if !matches!(slow.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                    slow = open_slow();
                }
                false
            }
            s => panic!("unexpected HTTP {s}: {}", r.text()),
        }
    })
    .unwrap();
    let busy = busy.unwrap();
    assert_eq!(busy.header("retry-after"), Some("5"));
    assert!(
        busy.json()["error"]
            .as_str()
            .unwrap()
            .contains("1 publishes are already in progress"),
        "{}",
        busy.text()
    );
    // Announces do not wait for publishing.
    let r = get(
        http,
        &format!(
            "/announce?{}",
            query(announce(InfoHash([3; 20]), [0, 0, 0, 1], 7000, 0))
        ),
    );
    AnnounceResponse::parse(&r.body).unwrap();
    drop(slow);
    let mut first = None;
    wait_until("the slot to be free again", Duration::from_secs(10), || {
        let r = post(http, "/torrents", &[], &torrents[0]);
        if r.status == 503 {
            return false;
        }
        first = Some(r.status);
        true
    })
    .unwrap();
    assert_eq!(first, Some(201));
    assert_eq!(post(http, "/torrents", &[], &torrents[1]).status, 201);
    // The store is full: a new torrent is refused, one already there is not.
    let full = post(http, "/torrents", &[], &torrents[2]);
    assert_eq!(full.status, 507, "{}", full.text());
    let msg = full.json()["error"].as_str().unwrap().to_owned();
    assert!(
        msg.contains(&format!("it stores {room} bytes")) && msg.contains("max_catalog_bytes"),
        "{msg}"
    );
    assert_eq!(post(http, "/torrents", &[], &torrents[0]).status, 200);
    let stats = get(http, "/stats.json").json();
    assert!(stats["errors"]["publish_busy"].as_u64().unwrap() >= 1);
    assert_eq!(stats["errors"]["catalog_full"], 1);
    assert_eq!(stats["catalog_bytes"], room);
    assert_eq!(stats["catalog_torrents"], 2);
}

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

fn is_cap_refusal(reason: &str) -> bool {
    reason.starts_with("tracker is full: no room for another")
        || reason.starts_with("torrent is full: it has 4 peers")
}

#[test]
fn an_announce_flood_from_many_addresses_is_capped_counted_and_honest_clients_still_served() {
    let env = StaEnv::new(STA);
    let (p, http, udp) = tracker(
        &env,
        "max_torrents = 32\nmax_peers_per_torrent = 4\nmax_peers = 64\n",
    );
    let pid = p.pid();
    let honest = InfoHash([0xee; 20]);
    // An honest pair on one torrent, over each transport, before the flood.
    let mut u = UdpClient::new(udp, "127.0.0.2");
    let mut uid = u.connect();
    let honest_udp = |u: &mut UdpClient, id: u64| match u
        .announce(id, announce(honest, [9, 9, 9, 1], 6001, 0))
    {
        Response::Announce { peers, .. } => peers,
        other => panic!("the honest UDP client was refused: {other:?}"),
    };
    honest_udp(&mut u, uid);
    let honest_http = || {
        let r = get(
            http,
            &format!(
                "/announce?{}",
                query(announce(honest, [9, 9, 9, 2], 6002, 5))
            ),
        );
        AnnounceResponse::parse(&r.body)
            .unwrap_or_else(|e| panic!("the honest HTTP client was refused: {e}"))
    };
    assert_eq!(honest_http().peers.len(), 1);
    let rss_before = rss_bytes(pid);

    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut forged = 0u64;
    // UDP: 120 addresses in 127.1.0.0/16, 20 announces each; half for torrents
    // of their own, half for 8 shared ones (which fill up with peers).
    for a in 0..120u16 {
        let [hi, lo] = a.to_be_bytes();
        let mut c = UdpClient::new(udp, &format!("127.1.{hi}.{}", lo + 1));
        let id = c.connect();
        for j in 0..20u8 {
            let h = if j % 2 == 0 {
                InfoHash([1, hi, lo, j, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            } else {
                InfoHash([
                    2,
                    j % 8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ])
            };
            match c.announce(id, announce(h, [1, hi, lo, j], 7000, 10)) {
                Response::Announce { .. } => accepted += 1,
                Response::Error { message, .. } => {
                    assert!(is_cap_refusal(&message), "unclear refusal: {message}");
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        // Made-up connection ids: refused and counted, nothing registered.
        for guess in [u64::from(a) << 20, 0x0417_2710_1980 ^ u64::from(a)] {
            match c.announce(guess, announce(InfoHash([3; 20]), [3, hi, lo, 0], 7000, 10)) {
                Response::Error { message, .. } => {
                    assert!(message.contains("connection id"), "{message}")
                }
                other => panic!("a forged id was accepted: {other:?}"),
            }
            forged += 1;
        }
        if a % 20 == 0 {
            // Connection ids last a minute or two; a fresh one costs nothing.
            uid = u.connect();
            assert!(!honest_udp(&mut u, uid).is_empty());
            assert_eq!(honest_http().peers.len(), 1);
        }
    }
    // HTTP: 40 addresses in 127.2.0.0/16, a connection from each per announce.
    for a in 0..40u8 {
        let from = format!("127.2.0.{}", a + 1);
        for j in 0..10u8 {
            let h = InfoHash([4, a, j, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            let s = connect_from(http, &from).unwrap();
            let target = format!("/announce?{}", query(announce(h, [4, a, j, 0], 7000, 10)));
            let r = request_on(s, http, "GET", &target, &[]).unwrap();
            assert_eq!(r.status, 200);
            match AnnounceResponse::parse(&r.body) {
                Ok(_) => accepted += 1,
                Err(sta_proto::tracker::http::ResponseError::Failure(f)) => {
                    assert!(is_cap_refusal(&f), "unclear refusal: {f}");
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        if a % 10 == 0 {
            assert_eq!(honest_http().peers.len(), 1);
        }
    }
    // After the flood the honest pair still finds each other.
    uid = u.connect();
    assert_eq!(
        honest_udp(&mut u, uid),
        vec!["127.0.0.1:6002".parse::<SocketAddr>().unwrap()]
    );
    let r = honest_http();
    assert_eq!(r.peers.len(), 1);
    assert_eq!(
        r.peers[0].addr,
        "127.0.0.2:6001".parse::<SocketAddr>().unwrap()
    );

    let stats = get(http, "/stats.json").json();
    let e = &stats["errors"];
    // Every refusal a client saw is counted, by kind, and nothing else is.
    assert!(
        refused > 2000,
        "the flood went past the caps: {refused} refused"
    );
    assert_eq!(
        e["torrent_cap"].as_u64().unwrap() + e["peer_cap"].as_u64().unwrap(),
        refused
    );
    assert!(
        e["torrent_cap"].as_u64().unwrap() > 0 && e["peer_cap"].as_u64().unwrap() > 0,
        "{e}"
    );
    assert_eq!(e["udp_bad_connection_id"].as_u64().unwrap(), forged);
    let metrics = get(http, "/metrics").text();
    assert!(
        metrics.contains(&format!(
            "sta_tracker_errors_total{{kind=\"udp_bad_connection_id\"}} {forged}\n"
        )),
        "{metrics}"
    );
    // The registry holds no more than the caps allow.
    assert!(stats["torrents"].as_u64().unwrap() <= 32, "{stats}");
    let peers = stats["seeders"].as_u64().unwrap() + stats["leechers"].as_u64().unwrap();
    assert!(peers <= 64, "{peers} peers listed");
    assert!(accepted + 2 >= peers);
    // Memory: a few MiB at most over the flood (the caps keep the registry
    // small; nothing is kept per refused request or per UDP connect).
    let grown = rss_bytes(pid).saturating_sub(rss_before);
    assert!(
        grown < 16 << 20,
        "RSS grew by {grown} bytes during the flood"
    );
}
