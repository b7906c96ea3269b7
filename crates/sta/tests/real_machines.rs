//! What running on real machines relies on: `--announce-ip`/`--announce-port`
//! for nodes behind NAT (and the tracker's `--trust-announce-ip` that makes
//! the address count), the config file and the precedence flag > `STA_*`
//! variable > file, and a clear error when the peer port is taken.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sta_proto::tracker::http::HttpAnnounce;
use sta_proto::tracker::{Announce, AnnounceResponse, Event};
use sta_proto::{InfoHash, PeerId};
use sta_testkit::files::random_file;
use sta_testkit::http::{addr_of, get};
use sta_testkit::proc::Proc;
use sta_testkit::reference::free_port;
use sta_testkit::sta::{StaEnv, ready_peer_addr, wait_status};

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);

fn info_hash(t: &Path) -> InfoHash {
    let out = Command::new(STA)
        .args(["info", "--json"])
        .arg(t)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    InfoHash::from_hex(v["info_hash"].as_str().unwrap()).unwrap()
}

/// The peers a tracker hands a newcomer for `ih`.
fn peers_from(announce_url: &str, ih: InfoHash) -> Vec<SocketAddr> {
    let q = HttpAnnounce {
        announce: Announce {
            info_hash: ih,
            peer_id: PeerId(*b"-TS0001-realmachines"),
            port: 1,
            uploaded: 0,
            downloaded: 0,
            left: 1,
            event: Event::Started,
            numwant: Some(50),
            key: None,
            ip: None,
        },
        compact: true,
        no_peer_id: true,
    };
    let r = get(
        addr_of(announce_url),
        &format!("/announce?{}", q.to_query()),
    );
    let resp = AnnounceResponse::parse(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    resp.peers.into_iter().map(|p| p.addr).collect()
}

/// A seeder announcing `--announce-ip 127.0.0.77 --announce-port 40077` to a
/// tracker run with `trust` or without; returns what the tracker hands out
/// and the seeder's real peer address.
fn announced(env: &mut StaEnv, name: &str, trust: bool) -> (Vec<SocketAddr>, SocketAddr) {
    let extra: &[&str] = if trust { &["--trust-announce-ip"] } else { &[] };
    let (tracker, announce, _) = env.tracker(extra).unwrap();
    let src = env.path(&format!("seed-{name}/{name}.bin"));
    random_file(&src, 100_000, 60).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let dir = env.path(&format!("seed-{name}"));
    let (mut seeder, ready) = env
        .node(
            name,
            "node",
            &[
                t.to_str().unwrap(),
                "-o",
                dir.to_str().unwrap(),
                "--role",
                "seeder",
                "--announce-ip",
                "127.0.0.77",
                "--announce-port",
                "40077",
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "a successful announce", T, |t| {
        t["trackers"][0]["announces"].as_u64().unwrap_or(0) >= 1
            && t["trackers"][0]["state"] == "ok"
    })
    .unwrap();
    let peers = peers_from(&announce, info_hash(&t));
    drop((seeder, tracker));
    (peers, ready_peer_addr(&ready))
}

#[test]
fn announce_ip_counts_only_at_a_tracker_that_trusts_it_and_announce_port_always() {
    let mut env = StaEnv::new(STA);
    let (peers, real) = announced(&mut env, "trusted", true);
    assert_eq!(
        peers,
        ["127.0.0.77:40077".parse::<SocketAddr>().unwrap()],
        "a trusting tracker lists the announced address (the node is at {real})"
    );
    let (peers, real) = announced(&mut env, "untrusted", false);
    assert_eq!(
        peers,
        [SocketAddr::new(real.ip(), 40077)],
        "without --trust-announce-ip the tracker takes the source address, and the announced port"
    );
}

/// A node started with `envs` set and `flags` given, reading `cfg`; returns
/// the peer address it listens on.
fn listens_on(
    env: &StaEnv,
    cfg: &Path,
    t: &Path,
    envs: &[(&str, String)],
    flags: &[&str],
) -> SocketAddr {
    let mut cmd = Command::new(STA);
    cmd.args(["node", "--json", "--no-api", "--config"])
        .arg(cfg)
        .arg("--state-dir")
        .arg(env.path("state-precedence"))
        .arg("-o")
        .arg(env.path("seed"))
        .args(flags)
        .arg(t);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn_with("precedence", &mut cmd, &env.logs()).unwrap();
    let ready = p.wait_ready(T).unwrap();
    ready_peer_addr(&ready)
}

#[test]
fn a_flag_wins_over_the_environment_which_wins_over_the_file() {
    let env = StaEnv::new(STA);
    let src = env.path("seed/p.bin");
    random_file(&src, 50_000, 61).unwrap();
    let t = env.create(&src, "", "16KiB").unwrap();
    let (file_port, env_port, flag_port) = (
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    let cfg = env.path("sta.toml");
    std::fs::write(
        &cfg,
        format!("[node]\nport = {file_port}\nbind = \"127.0.0.50\"\n"),
    )
    .unwrap();
    let at = |ip: &str, port: u16| SocketAddr::new(ip.parse().unwrap(), port);
    // The file alone.
    assert_eq!(
        listens_on(&env, &cfg, &t, &[], &[]),
        at("127.0.0.50", file_port)
    );
    // STA_PORT and STA_BIND over the file.
    let vars = [
        ("STA_PORT", env_port.to_string()),
        ("STA_BIND", "127.0.0.51".to_string()),
    ];
    assert_eq!(
        listens_on(&env, &cfg, &t, &vars, &[]),
        at("127.0.0.51", env_port)
    );
    // Flags over both.
    let flag = flag_port.to_string();
    assert_eq!(
        listens_on(
            &env,
            &cfg,
            &t,
            &vars,
            &["-p", &flag, "--bind", "127.0.0.52"]
        ),
        at("127.0.0.52", flag_port)
    );
}

#[test]
fn a_taken_peer_port_is_a_clear_error() {
    let env = StaEnv::new(STA);
    let src = env.path("seed/busy.bin");
    random_file(&src, 50_000, 62).unwrap();
    let t = env.create(&src, "", "16KiB").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(STA)
        .args([
            "node",
            "--json",
            "--no-api",
            "--bind",
            "127.0.0.1",
            "-p",
            &port,
        ])
        .arg("--state-dir")
        .arg(env.path("state-busy"))
        .arg("-o")
        .arg(env.path("seed"))
        .arg(&t)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "the error names the address: {err}"
    );
    assert!(
        err.to_lowercase().contains("in use") || err.contains("taken"),
        "the error says the port is taken: {err}"
    );
    assert!(
        err.contains("-p") || err.contains("--port"),
        "the error says what to do: {err}"
    );
    assert!(out.stdout.is_empty(), "no ready line");
}

#[test]
fn config_file_sets_the_node_and_flags_win_over_it() {
    let mut env = StaEnv::new(STA);
    let src = env.path("seed/cfg.bin");
    random_file(&src, 100_000, 23).unwrap();
    let t = env.create(&src, "", "16KiB").unwrap();
    let port = sta_testkit::reference::free_port("127.0.0.1");
    let cfg = env.path("sta.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nport = {port}\nmax_upload_rate = 1048576\n\n[node.choker]\nupload_slots = 2\n"
        ),
    )
    .unwrap();
    let (_seeder, ready) = env
        .node(
            "seeder",
            "node",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("seed").to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
            ],
        )
        .unwrap();
    // -p 0 (a flag, given by env.node) wins over the file's port.
    assert_ne!(ready_peer_addr(&ready).port(), port);
    let mut all: Vec<String> = vec![
        "node".into(),
        t.display().to_string(),
        "-o".into(),
        env.path("seed").display().to_string(),
    ];
    all.extend([
        "--json".into(),
        "--bind".into(),
        "127.0.0.99".into(),
        "--no-api".into(),
        "--config".into(),
        cfg.display().to_string(),
    ]);
    all.extend([
        "--state-dir".into(),
        env.path("state-cfg").display().to_string(),
    ]);
    let mut p = sta_testkit::Proc::spawn("from-file", STA, &all, &env.logs()).unwrap();
    let ready = p.wait_ready(T).unwrap();
    assert_eq!(
        ready_peer_addr(&ready).port(),
        port,
        "the file's port is used"
    );
    let st = wait_status(&mut p, "status", T, |_| true).unwrap();
    assert_eq!(
        st["torrents"][0]["max_upload_rate"],
        serde_json::Value::Null,
        "per-torrent limit unset"
    );
    // A typo is an error that names the key.
    std::fs::write(&cfg, "[node]\nprot = 1\n").unwrap();
    let out = Command::new(STA)
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("prot"));
    let ex = Command::new(STA)
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ex.stdout).contains("[node.choker]"));
}
