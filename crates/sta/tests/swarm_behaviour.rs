//! Swarm-level evidence for the piece picker and the choker, with real
//! processes: rarest first lets a seeder that stops after 1.5 copies still
//! feed 6 leechers, and one that stops after 1.2 copies feed 8, while with a
//! plain random picker the same 6-leecher swarm is left missing about a
//! tenth of the pieces; a rate-limited seeder uploads little more than one
//! copy to 8 leechers.

use std::time::{Duration, Instant};

use serde_json::Value;
use sta_testkit::Proc;
use sta_testkit::files::{random_file, sha256_file};
use sta_testkit::http::{addr_of, get};
use sta_testkit::sta::{StaEnv, latest_status, torrent, wait_complete, wait_status};

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);
/// The seeder's extra upload at the start and the end is a few pieces
/// whatever the size, so 8 MiB measures the steady state.
const SIZE8: u64 = 8 << 20;
/// 512 pieces: with this many, how many pieces a random picker leaves
/// behind varies little from run to run.
const PIECE: &str = "16KiB";
/// Leechers upload at a quarter of the seeder's rate each, as on home links:
/// a piece takes a while to spread, so which pieces a leecher asks the
/// seeder for matters.
const LEECHER_UP: &str = "512KiB";

struct Swarm {
    env: StaEnv,
    _tracker: Proc,
    seeder: Proc,
    leechers: Vec<(Proc, Value)>,
    src: std::path::PathBuf,
}

/// A tracker, a seeder limited to 1 MiB/s with `seeder_args`, and `n`
/// leechers started together with `leecher_args`.
fn swarm(n: usize, size: u64, seeder_args: &[&str], leecher_args: &[&str]) -> Swarm {
    let mut env = StaEnv::new(STA);
    let (tracker, announce, _) = env.tracker(&["--interval", "2"]).unwrap();
    let src = env.path("seed/s.bin");
    random_file(&src, size, 41).unwrap();
    let t = env.create(&src, &announce, PIECE).unwrap();
    let seed_dir = env.path("seed");
    let mut args = vec![
        t.to_str().unwrap(),
        "-o",
        seed_dir.to_str().unwrap(),
        "--role",
        "seeder",
    ];
    args.extend_from_slice(seeder_args);
    let (mut seeder, _) = env.node("seeder", "node", &args).unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let mut leechers = Vec::new();
    for i in 0..n {
        let out = env.path(&format!("leech{i}"));
        let mut args = vec![
            t.to_str().unwrap().to_string(),
            "-o".into(),
            out.display().to_string(),
        ];
        args.extend(leecher_args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        leechers.push(env.node(&format!("leecher{i}"), "node", &refs).unwrap());
    }
    Swarm {
        env,
        _tracker: tracker,
        seeder,
        leechers,
        src,
    }
}

/// Piece states of every leecher through its control API, OR-ed together.
fn swarm_has(s: &Swarm) -> (usize, usize) {
    let mut union: Vec<bool> = Vec::new();
    for (_, ready) in &s.leechers {
        let api = addr_of(ready["api"].as_str().unwrap());
        let r = get(api, "/api/pieces").json();
        let states = r["states"].as_str().unwrap();
        union.resize(states.len(), false);
        for (u, c) in union.iter_mut().zip(states.bytes()) {
            *u |= c == b'#';
        }
    }
    (union.iter().filter(|h| **h).count(), union.len())
}

fn uploaded(p: &mut Proc) -> u64 {
    // The newest status, then the next one, so the figure is current.
    latest_status(p, T).unwrap();
    let st = wait_status(p, "seeder status", T, |_| true).unwrap();
    torrent(&st)["uploaded"].as_u64().unwrap()
}

/// `n` leechers, a seeder at 2 MiB/s that stops after `copies` copies.
fn limited_swarm(n: usize, copies: &str, leecher_args: &[&str], seeder_extra: &[&str]) -> Swarm {
    let mut seeder = vec!["--max-upload-rate", "2MiB", "--seed-limit-copies", copies];
    seeder.extend_from_slice(seeder_extra);
    let mut leecher = vec!["--max-upload-rate", LEECHER_UP];
    leecher.extend_from_slice(leecher_args);
    swarm(n, SIZE8, &seeder, &leecher)
}

fn all_complete_and_verified(s: &mut Swarm, copies: f64) {
    let n = s.leechers.len();
    for (p, _) in s.leechers.iter_mut() {
        wait_complete(p, T).unwrap();
    }
    let up = uploaded(&mut s.seeder);
    eprintln!(
        "rarest first: all {n} leechers complete; the seeder sent {:.2} copies (limit {copies})",
        up as f64 / SIZE8 as f64
    );
    assert!(
        up as f64 <= (copies + 0.05) * SIZE8 as f64,
        "the seeder stopped near {copies} copies: {up}"
    );
    for i in 0..n {
        let copy = s.env.path(&format!("leech{i}/s.bin"));
        assert_eq!(sha256_file(&s.src).unwrap(), sha256_file(&copy).unwrap());
    }
}

#[test]
fn rarest_first_lets_six_leechers_finish_after_the_seeder_stops_at_1_5_copies() {
    let mut s = limited_swarm(6, "1.5", &[], &[]);
    all_complete_and_verified(&mut s, 1.5);
}

#[test]
fn rarest_first_lets_eight_leechers_finish_when_the_seeder_stops_at_1_2_copies() {
    let mut s = limited_swarm(8, "1.2", &[], &[]);
    all_complete_and_verified(&mut s, 1.2);
}

#[test]
fn a_random_picker_leaves_pieces_missing_for_six_leechers_when_the_seeder_stops_at_1_5_copies() {
    // The first test's swarm run the way a naive client runs it: the
    // test-only random picker (random piece choice, and none of the seed
    // sparing that comes with rarest first, see torrent/requests.rs) and a
    // seeder serving requests in arrival order. Leechers ask the seeder for
    // pieces other leechers already hold, so 1.5 copies leave pieces that
    // never reached any leecher.
    let mut s = limited_swarm(
        6,
        "1.5",
        &["--picker", "random"],
        &["--serve-order", "fifo"],
    );
    let deadline = Instant::now() + T;
    // The seeder stops within a block of its limit (a block taken from the
    // budget by a connection that then closes is not counted as sent).
    loop {
        let up = uploaded(&mut s.seeder);
        if up + (64 << 10) >= (15 * SIZE8) / 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the seeder never sent 1.5 copies: {up} bytes"
        );
    }
    // The leechers trade what the swarm holds until the union stops growing.
    let mut last = (0, 1);
    let settle = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_secs(2)); // sampling interval of a measurement, not a synchronisation
        let now = swarm_has(&s);
        if now == last || Instant::now() > settle {
            last = now;
            break;
        }
        last = now;
    }
    let (have, total) = last;
    eprintln!(
        "random picker: the swarm holds {have}/{total} pieces after the seeder stopped at 1.5 copies"
    );
    assert!(
        have < total,
        "with a random picker some pieces never left the seeder: the swarm has {have}/{total}"
    );
}

#[test]
fn a_rate_limited_seeder_uploads_little_more_than_one_copy_to_eight_leechers() {
    let mut s = swarm(8, SIZE8, &["--max-upload-rate", "2MiB"], &[]);
    for (p, _) in s.leechers.iter_mut() {
        wait_complete(p, Duration::from_secs(90)).unwrap();
    }
    let up = uploaded(&mut s.seeder);
    let copies = up as f64 / SIZE8 as f64;
    eprintln!("rate-limited seeder uploaded {copies:.2} copies to 8 leechers");
    assert!(
        copies <= 1.3,
        "the seeder uploaded {copies:.2} copies to 8 leechers"
    );
    for i in 0..8 {
        let copy = s.env.path(&format!("leech{i}/s.bin"));
        assert_eq!(sha256_file(&s.src).unwrap(), sha256_file(&copy).unwrap());
    }
}
