//! Rate limits that hold, measured from the outside: a node's status lines give
//! its byte counters, read here against the test's own clock over a window of
//! about ten seconds. PLAN.md: at most 1.1× the limit and at least half of it
//! (the token bucket's precision is unit-tested on a fake clock). Also several
//! torrents in one node process, on one port, each with its own limit.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sta_testkit::files::{random_file, sha256_file};
use sta_testkit::proc::Proc;
use sta_testkit::sta::{StaEnv, wait_status};

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;
const WINDOW: Duration = Duration::from_secs(10);

/// Follows a node's status lines and returns each torrent's average rate
/// over about `WINDOW`, by the test's clock. A torrent's counters change
/// once a second (its tick), and the node prints every 0.1 s
/// (`--status-interval 0.1`), so the first line that shows a new value is at
/// most 0.1 s late: the window runs from one such change to another.
fn measure(p: &mut Proc, counter: &str, torrents: usize) -> Vec<f64> {
    let read = |v: &Value, i: usize| v["torrents"][i][counter].as_u64().unwrap_or(0);
    // Per torrent: the value on the previous line, the first change (time,
    // value) once bytes move, and the latest change.
    let mut prev = vec![0u64; torrents];
    let mut first: Vec<Option<(Instant, u64)>> = vec![None; torrents];
    let mut last: Vec<Option<(Instant, u64)>> = vec![None; torrents];
    let long_enough = |f: &Option<(Instant, u64)>, l: &Option<(Instant, u64)>| matches!((f, l), (Some(f), Some(l)) if l.0 - f.0 >= WINDOW);
    let mut moved_at = Instant::now();
    while !(0..torrents).all(|i| long_enough(&first[i], &last[i])) {
        let v = p
            .wait_json("status line", T, |v| v["event"] == "status")
            .unwrap();
        let now = Instant::now();
        // A transfer that ended before the window was full: stop waiting.
        assert!(
            now - moved_at < Duration::from_secs(5),
            "{counter} stopped moving before a {WINDOW:?} window was measured: {first:?} {last:?}"
        );
        if (0..torrents).any(|i| read(&v, i) != prev[i]) {
            moved_at = now;
        }
        for i in 0..torrents {
            let x = read(&v, i);
            if x != prev[i] {
                // The first change only marks the start of a clean tick.
                if prev[i] > 0 && first[i].is_none() {
                    first[i] = Some((now, x));
                } else if first[i].is_some() && !long_enough(&first[i], &last[i]) {
                    last[i] = Some((now, x));
                }
                prev[i] = x;
            }
        }
    }
    (0..torrents)
        .map(|i| {
            let (t0, a) = first[i].unwrap();
            let (t1, b) = last[i].unwrap();
            (b - a) as f64 / (t1 - t0).as_secs_f64()
        })
        .collect()
}

fn assert_near_limit(what: &str, rate: f64, limit: u64) {
    let ratio = rate / limit as f64;
    eprintln!("{what}: {:.0} B/s = {ratio:.3} × the limit", rate);
    assert!(ratio <= 1.1, "{what}: {rate:.0} B/s is over 1.1 × {limit}");
    assert!(
        ratio >= 0.5,
        "{what}: {rate:.0} B/s is under half of {limit}"
    );
}

fn seed_and_torrent(
    env: &StaEnv,
    name: &str,
    size: u64,
    seed: u64,
    announce: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = env.path(&format!("seed/{name}"));
    random_file(&src, size, seed).unwrap();
    let t = env.create(&src, announce, "64KiB").unwrap();
    (src, t)
}

fn start_seeder(env: &mut StaEnv, torrents: &[&Path], extra: &[&str]) -> Proc {
    let dir = env.path("seed");
    let mut args: Vec<&str> = torrents.iter().map(|t| t.to_str().unwrap()).collect();
    args.extend(["-o", dir.to_str().unwrap(), "--role", "seeder"]);
    args.extend(extra);
    let (mut seeder, _) = env.node("seeder", "node", &args).unwrap();
    seeder
        .wait_json("all seeding", T, |v| {
            v["event"] == "status"
                && v["torrents"].as_array().is_some_and(|ts| {
                    ts.len() == torrents.len() && ts.iter().all(|t| t["state"] == "seeding")
                })
        })
        .unwrap();
    seeder
}

/// A seeder with an upload limit given by `flag` (the whole node, or each
/// torrent) serving one leecher.
fn seeder_upload_limit_holds(flag: &str) {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let (src, t) = seed_and_torrent(&env, "up.bin", 20 * MIB, 11, &announce);
    let limit = MIB;
    let mut seeder = start_seeder(&mut env, &[&t], &[flag, "1MiB", "--status-interval", "0.1"]);
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[t.to_str().unwrap(), "-o", out.to_str().unwrap()],
        )
        .unwrap();
    let rates = measure(&mut seeder, "uploaded", 1);
    assert_near_limit(&format!("seeder upload ({flag})"), rates[0], limit);
    wait_status(&mut leecher, "complete", T, |t| t["state"] == "seeding").unwrap();
    assert_eq!(
        sha256_file(&src).unwrap(),
        sha256_file(&out.join("up.bin")).unwrap()
    );
}

#[test]
fn the_seeders_upload_limit_holds_over_ten_seconds() {
    seeder_upload_limit_holds("--max-upload-rate");
}

#[test]
fn a_per_torrent_upload_limit_holds_over_ten_seconds() {
    seeder_upload_limit_holds("--torrent-upload-rate");
}

#[test]
fn the_leechers_download_limit_holds_over_ten_seconds() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let (src, t) = seed_and_torrent(&env, "down.bin", 30 * MIB, 12, &announce);
    let limit = 3 * MIB / 2;
    let _seeder = start_seeder(&mut env, &[&t], &[]);
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "leecher",
            "get",
            &[
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--max-download-rate",
                "1.5MiB",
                "--status-interval",
                "0.1",
            ],
        )
        .unwrap();
    let rates = measure(&mut leecher, "downloaded", 1);
    assert_near_limit("leecher download", rates[0], limit);
    wait_status(&mut leecher, "complete", T, |t| t["state"] == "seeding").unwrap();
    assert_eq!(
        sha256_file(&src).unwrap(),
        sha256_file(&out.join("down.bin")).unwrap()
    );
}

/// One node process, one port, two torrents: the seeder serves both, the
/// leecher fetches both at once with a limit on each torrent, and each copy
/// verifies.
#[test]
fn one_node_downloads_two_torrents_at_once_each_within_its_own_limit() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&[]).unwrap();
    let (src_a, ta) = seed_and_torrent(&env, "a.bin", 13 * MIB, 21, &announce);
    let (src_b, tb) = seed_and_torrent(&env, "b.bin", 13 * MIB + 4321, 22, &announce);
    let _seeder = start_seeder(&mut env, &[&ta, &tb], &[]);
    let out = env.path("leech");
    let (mut leecher, ready) = env
        .node(
            "leecher",
            "node",
            &[
                ta.to_str().unwrap(),
                tb.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--torrent-download-rate",
                "768KiB",
                "--status-interval",
                "0.1",
                "--exit-on-complete",
            ],
        )
        .unwrap();
    assert_eq!(
        ready["torrents"].as_array().map(Vec::len),
        Some(2),
        "{ready}"
    );
    let rates = measure(&mut leecher, "downloaded", 2);
    for (name, rate) in ["a.bin", "b.bin"].iter().zip(&rates) {
        assert_near_limit(name, *rate, 768 * 1024);
    }
    assert!(leecher.wait_exit(T).unwrap().success());
    assert_eq!(
        sha256_file(&src_a).unwrap(),
        sha256_file(&out.join("a.bin")).unwrap()
    );
    assert_eq!(
        sha256_file(&src_b).unwrap(),
        sha256_file(&out.join("b.bin")).unwrap()
    );
}
