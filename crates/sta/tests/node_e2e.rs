//! End to end with real `sta` processes on loopback: a tracker, a seeder and
//! leechers, each on its own 127.0.0.x; every copy's SHA-256 must equal the
//! source.

use std::path::Path;
use std::time::Duration;

use sta_testkit::files::{random_file, sha256_file};
use sta_testkit::sta::{StaEnv, latest_status, torrent, wait_complete, wait_status};

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);

fn assert_same_tree(a: &Path, b: &Path) {
    if a.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            assert_same_tree(&a.join(&n), &b.join(&n));
        }
    } else {
        assert_eq!(
            sha256_file(a).unwrap(),
            sha256_file(b).unwrap_or_else(|e| panic!("{}: {e}", b.display())),
            "{}",
            b.display()
        );
    }
}

#[test]
fn one_seeder_one_leecher_single_file_with_short_last_piece() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let src = env.path("seed/data.bin");
    random_file(&src, 3 * 1024 * 1024 + 1234, 1).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let (_seeder, _) = env.seeder("seeder", &t, &env.path("seed"), &[]).unwrap();
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--exit-on-complete",
            ],
        )
        .unwrap();
    let done = wait_complete(&mut leecher, T).unwrap();
    assert_eq!(done["downloaded"], 3 * 1024 * 1024 + 1234);
    assert!(leecher.wait_exit(T).unwrap().success());
    assert_same_tree(&src, &out.join("data.bin"));
}

/// `sta seed PATH` with data and no torrent: the torrent is made beside the
/// data, announced to `-t`, and a leecher given that torrent gets the data;
/// a second start reuses the torrent it made.
#[test]
fn seeding_a_path_makes_the_torrent_beside_it() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let root = env.path("seed/photos");
    random_file(&root.join("one.jpg"), 300_000, 7).unwrap();
    random_file(&root.join("sub/two.jpg"), 123_457, 8).unwrap();
    let args = [
        root.to_str().unwrap(),
        "-t",
        &announce,
        "--piece-length",
        "32KiB",
    ];
    let (mut seeder, _) = env.node("seeder", "seed", &args).unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let made = env.path("seed/photos.torrent");
    let meta = sta_proto::metainfo::parse(&std::fs::read(&made).unwrap()).unwrap();
    assert_eq!(meta.info.name, "photos");
    assert_eq!(meta.info.piece_length, 32 << 10);
    assert_eq!(meta.trackers, vec![vec![announce.clone()]]);
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[
                made.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--exit-on-complete",
            ],
        )
        .unwrap();
    wait_complete(&mut leecher, T).unwrap();
    assert!(leecher.wait_exit(T).unwrap().success());
    assert_same_tree(&root, &out.join("photos"));
    assert!(seeder.terminate(T).unwrap().success());

    // Started again on the same path, it seeds the torrent it made.
    let before = std::fs::read(&made).unwrap();
    let (mut again, _) = env.node("seeder2", "seed", &args).unwrap();
    let s = wait_status(&mut again, "seeding", T, |t| t["state"] == "seeding").unwrap();
    assert_eq!(torrent(&s)["info_hash"], meta.info_hash.to_hex());
    assert_eq!(std::fs::read(&made).unwrap(), before);
    assert!(again.terminate(T).unwrap().success());

    // Asked for another tracker, it refuses to seed the old torrent silently.
    let other = "http://127.0.0.1:9/announce";
    let out = std::process::Command::new(STA)
        .args(["seed", root.to_str().unwrap(), "-t", other, "--no-api"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("already exists and announces to"), "{err}");
    assert_eq!(std::fs::read(&made).unwrap(), before);
}

#[test]
fn one_seeder_one_leecher_multi_file_nested_with_empty_files() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let root = env.path("seed/album");
    random_file(&root.join("a/b/deep.bin"), 700_001, 2).unwrap();
    random_file(&root.join("a/mid.bin"), 16_383, 3).unwrap();
    random_file(&root.join("top.bin"), 1_000_000, 4).unwrap();
    std::fs::write(root.join("a/empty.txt"), b"").unwrap();
    let t = env.create(&root, &announce, "64KiB").unwrap();
    let (mut seeder, _) = env
        .node(
            "seeder",
            "seed",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("seed").to_str().unwrap(),
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--exit-on-complete",
            ],
        )
        .unwrap();
    wait_complete(&mut leecher, T).unwrap();
    assert!(leecher.wait_exit(T).unwrap().success());
    assert_same_tree(&root, &out.join("album"));
    assert_eq!(
        std::fs::metadata(out.join("album/a/empty.txt"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn one_seeder_five_leechers_trade_among_themselves() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let size: u64 = 8 << 20;
    let src = env.path("seed/big.bin");
    random_file(&src, size, 5).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    // The seeder's upload is capped so leechers must get most pieces from each other.
    let (mut seeder, _) = env
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
                "2MiB",
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let mut leechers = Vec::new();
    for i in 0..5 {
        let out = env.path(&format!("leech{i}"));
        let (p, _) = env
            .node(
                &format!("leecher{i}"),
                "node",
                &[t.to_str().unwrap(), "-o", out.to_str().unwrap()],
            )
            .unwrap();
        leechers.push((p, out));
    }
    let mut from_peers = 0;
    for (p, out) in leechers.iter_mut() {
        let done = wait_complete(p, Duration::from_secs(90)).unwrap();
        assert!(done["downloaded"].as_u64().unwrap() >= size);
        assert_same_tree(&src, &out.join("big.bin"));
    }
    for (p, _) in leechers.iter_mut() {
        let last = latest_status(p, T).unwrap();
        from_peers += torrent(&last)["downloaded_from_peers"].as_u64().unwrap();
    }
    // The newest line, after every leecher completed: all the seeder sent.
    let s = latest_status(&mut seeder, T).unwrap();
    let uploaded = torrent(&s)["uploaded"].as_u64().unwrap();
    assert!(
        uploaded < 3 * size,
        "seeder uploaded {uploaded} bytes: {:.2} copies",
        uploaded as f64 / size as f64
    );
    assert!(
        from_peers > size,
        "leechers got only {from_peers} bytes from each other"
    );
}

#[test]
fn resume_after_kill_9_fetches_only_what_is_missing() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let size: u64 = 6 << 20;
    let src = env.path("seed/r.bin");
    random_file(&src, size, 6).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    let (mut seeder, _) = env
        .node(
            "seeder",
            "seed",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("seed").to_str().unwrap(),
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let out = env.path("leech");
    let state = env.path("state-resumer");
    let args = [
        t.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--max-download-rate",
        "512KiB",
        "--exit-on-complete",
    ];
    let (mut first, _) = env.node("resumer", "get", &args).unwrap();
    let half = wait_status(&mut first, "half way", T, |t| {
        t["progress"].as_f64().unwrap() >= 0.5
    })
    .unwrap();
    let verified_before = torrent(&half)["verified_bytes"].as_u64().unwrap();
    first.kill();
    // Same state folder and content folder: only the missing part is fetched.
    let mut all: Vec<String> = vec![
        "get".into(),
        "--json".into(),
        "-p".into(),
        "0".into(),
        "--bind".into(),
        env.next_ip(),
    ];
    all.extend(["--state-dir".to_string(), state.display().to_string()]);
    all.extend([
        t.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--exit-on-complete".into(),
    ]);
    let mut second = sta_testkit::Proc::spawn("resumer2", STA, &all, &env.logs()).unwrap();
    second.wait_ready(T).unwrap();
    let started = wait_status(&mut second, "check done", T, |t| t["state"] != "checking").unwrap();
    let verified_start = torrent(&started)["verified_at_start"].as_u64().unwrap();
    assert!(
        verified_start >= verified_before,
        "lost verified data: {verified_start} < {verified_before}"
    );
    let done = wait_complete(&mut second, T)
        .unwrap_or_else(|e| panic!("{e}\nall lines: {:#?}", second.seen));
    let downloaded = done["downloaded"].as_u64().unwrap();
    let piece = 64 * 1024;
    assert!(
        downloaded <= size - verified_start + piece,
        "second run downloaded {downloaded}, missing was {}",
        size - verified_start
    );
    assert!(second.wait_exit(T).unwrap().success());
    assert_same_tree(&src, &out.join("r.bin"));
}

#[test]
fn seeder_with_bad_data_exits_naming_the_file() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let src = env.path("seed/bad.bin");
    random_file(&src, 1 << 20, 7).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    // Flip one byte after the torrent was made.
    let mut data = std::fs::read(&src).unwrap();
    data[300_000] ^= 0xff;
    std::fs::write(&src, data).unwrap();
    let (mut seeder, _) = env
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
    let st = seeder.wait_exit(T).unwrap();
    assert_eq!(st.code(), Some(1));
    let err = std::fs::read_to_string(&seeder.stderr_path).unwrap();
    assert!(
        err.contains("does not verify") && err.contains("bad.bin"),
        "{err}"
    );
}

/// `sta get MAGNET` through an sta tracker's catalog, with the torrent's only
/// tracker on UDP: the leecher fetches the `.torrent` from the catalog named
/// by the magnet's `tr`, checks its info-hash, and finds the seeder through
/// UDP announces (BEP 15); no HTTP announce is made.
#[test]
fn a_magnet_resolved_through_the_catalog_downloads_with_udp_announces() {
    let mut env = StaEnv::new(STA);
    let (_tracker, http_announce, udp_announce) = env.tracker(&[]).unwrap();
    let src = env.path("seed/m.bin");
    random_file(&src, 2 * 1024 * 1024 + 77, 9).unwrap();
    let t = env.create(&src, &udp_announce, "64KiB").unwrap();
    let (_seeder, _) = env.seeder("seeder", &t, &env.path("seed"), &[]).unwrap();
    let out = std::process::Command::new(STA)
        .arg("publish")
        .arg(&t)
        .args(["--tracker", &http_announce])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let magnet = stdout
        .lines()
        .find_map(|l| l.strip_prefix("magnet"))
        .map(|m| m.trim().to_owned())
        .unwrap_or_else(|| panic!("no magnet in: {stdout}"));
    assert!(magnet.starts_with("magnet:?xt=urn:btih:"), "{magnet}");
    let dir = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[&magnet, "-o", dir.to_str().unwrap(), "--exit-on-complete"],
        )
        .unwrap();
    wait_complete(&mut leecher, T).unwrap();
    assert!(leecher.wait_exit(T).unwrap().success());
    assert_same_tree(&src, &dir.join("m.bin"));
    let http = http_announce
        .strip_prefix("http://")
        .unwrap()
        .trim_end_matches("/announce");
    let stats: serde_json::Value =
        sta_testkit::http::get(sta_testkit::http::addr_of(http), "/stats.json").json();
    let udp = &stats["announces"]["udp"];
    assert!(udp["started"].as_u64() >= Some(2), "{stats}");
    assert!(udp["completed"].as_u64() >= Some(1), "{stats}");
    let http_total: u64 = stats["announces"]["http"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(http_total, 0, "every announce went over UDP: {stats}");
    // Announces reuse the socket their connection id was given to.
    assert_eq!(stats["errors"]["udp_bad_connection_id"], 0, "{stats}");
}
