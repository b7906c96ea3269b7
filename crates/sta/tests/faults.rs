//! Faults, end to end with real `sta` processes on loopback: a seeder killed
//! mid-download, a leecher killed again and again, the tracker killed and
//! restarted, a full disk, files changed behind a seeder's back, and graceful
//! stops on SIGTERM and Ctrl-C. Each test waits for events (status lines, the
//! control API, tracker counters) with deadlines, and ends by comparing the
//! SHA-256 of every copy with the source.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sta_testkit::files::{random_file, sha256_file};
use sta_testkit::http::{addr_of, get};
use sta_testkit::proc::{Proc, wait_until};
use sta_testkit::reference::free_port;
use sta_testkit::sta::{StaEnv, ready_peer_addr, torrent, wait_complete, wait_status};

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------- helpers

/// A node that can be stopped and started again as the same peer: same
/// address, same state folder (resume files), same content folder.
struct NodeSpec {
    name: String,
    ip: String,
    state: PathBuf,
}

impl NodeSpec {
    fn new(env: &mut StaEnv, name: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            ip: env.next_ip(),
            state: env.path(&format!("state-{name}")),
        }
    }

    /// Starts `sta CMD --json -p 0 --bind IP --state-dir S --api 127.0.0.1:0 ARGS`
    /// and waits for its ready line. `run` tells restarts apart in the logs.
    fn start(&self, env: &StaEnv, run: u32, cmd: &str, args: &[&str]) -> Node {
        let mut all: Vec<String> = vec![cmd.into(), "--json".into(), "-p".into(), "0".into()];
        all.extend(["--bind".into(), self.ip.clone()]);
        all.extend(["--state-dir".into(), self.state.display().to_string()]);
        all.extend(["--api".into(), "127.0.0.1:0".into()]);
        all.extend(args.iter().map(|s| s.to_string()));
        let name = format!("{}-{run}", self.name);
        let mut proc = Proc::spawn(&name, STA, &all, &env.logs()).unwrap();
        let ready = proc
            .wait_ready(T)
            .unwrap_or_else(|e| panic!("{name} not ready: {e}"));
        let api = ready["api"].as_str().unwrap().parse().unwrap();
        Node {
            peer: ready_peer_addr(&ready),
            api,
            proc,
        }
    }
}

struct Node {
    proc: Proc,
    peer: SocketAddr,
    api: SocketAddr,
}

impl Node {
    /// The first torrent's snapshot as the node sees it now (control API).
    fn now(&self) -> Value {
        let r = get(self.api, "/api/status");
        r.json()["torrents"][0].clone()
    }

    /// The piece map now: one character per piece, `#` verified.
    fn pieces(&self) -> Vec<bool> {
        let r = get(self.api, "/api/pieces?torrent=1");
        r.json()["states"]
            .as_str()
            .unwrap()
            .bytes()
            .map(|c| c == b'#')
            .collect()
    }

    /// Skips the status lines already printed: what is read next is newer
    /// than this call.
    fn drain(&mut self) {
        while self.proc.next_line(Instant::now()).is_some() {}
    }

    fn wait(&mut self, what: &str, pred: impl FnMut(&Value) -> bool) -> Value {
        let v = wait_status(&mut self.proc, what, T, pred).unwrap_or_else(|e| panic!("{e}"));
        torrent(&v).clone()
    }

    /// The first torrent of the last status (or `stopped`) line read so far.
    fn last_line(&self) -> Value {
        let v = self
            .proc
            .seen
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["torrents"].is_array())
            .expect("a status line");
        torrent(&v).clone()
    }

    fn complete(&mut self) -> Value {
        wait_complete(&mut self.proc, T).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned number: {v}"))
}

/// Bytes this snapshot says came from `ip` during the run.
fn from_ip(t: &Value, ip: &str) -> u64 {
    t["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ip"] == ip)
        .map_or(0, |s| u(&s["downloaded"]))
}

fn count(pieces: &[bool]) -> usize {
    pieces.iter().filter(|p| **p).count()
}

fn union(a: &[bool], b: &[bool]) -> Vec<bool> {
    a.iter().zip(b).map(|(x, y)| *x || *y).collect()
}

fn assert_same_file(src: &Path, copy: &Path) {
    assert_eq!(
        sha256_file(src).unwrap(),
        sha256_file(copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display())),
        "{} differs from the source",
        copy.display()
    );
}

fn assert_same_tree(src: &Path, copy: &Path) {
    if src.is_dir() {
        for e in std::fs::read_dir(src).unwrap() {
            let n = e.unwrap().file_name();
            assert_same_tree(&src.join(&n), &copy.join(&n));
        }
    } else {
        assert_same_file(src, copy);
    }
}

/// A tracker on a fixed loopback port (HTTP and UDP), so it can be killed and
/// started again at the same address with the same data folder.
struct TrackerSpec {
    port: u16,
    data: PathBuf,
    interval: &'static str,
}

impl TrackerSpec {
    fn new(env: &StaEnv, interval: &'static str) -> TrackerSpec {
        TrackerSpec {
            port: free_port("127.0.0.1"),
            data: env.path("tracker-data"),
            interval,
        }
    }

    fn announce(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    fn http(&self) -> SocketAddr {
        addr_of(&self.announce())
    }

    fn start(&self, env: &StaEnv, run: u32) -> Proc {
        let at = format!("127.0.0.1:{}", self.port);
        let data = self.data.display().to_string();
        let args = [
            "tracker",
            "--http",
            &at,
            "--udp",
            &at,
            "--json",
            "--data-dir",
            &data,
            "--interval",
            self.interval,
        ];
        let mut p = Proc::spawn(&format!("tracker-{run}"), STA, &args, &env.logs()).unwrap();
        p.wait_ready(T).unwrap();
        p
    }

    fn stats(&self) -> Value {
        get(self.http(), "/stats.json").json()
    }
}

fn info_hash(t: &Path) -> String {
    let out = Command::new(STA)
        .args(["info", "--json"])
        .arg(t)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["info_hash"].as_str().unwrap().to_owned()
}

/// Pieces a resume file records as verified.
fn resume_pieces(state: &Path, info_hash: &str, num_pieces: usize) -> Vec<bool> {
    let path = state.join(format!("{info_hash}.resume"));
    let v: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    let hex = v["have"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    (0..num_pieces)
        .map(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect()
}

/// Reads `len` bytes at `offset`, or fewer at the end of the file.
fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    buf
}

// ------------------------------------------------- 1. the seeder is killed

/// Two leechers share a capped seeder; their own uploads are capped lower, so
/// between them they hold every piece well before either is complete. The
/// seeder is then killed with SIGKILL and they finish from each other.
#[test]
fn seeder_killed_when_the_swarm_has_every_piece_leechers_finish_from_each_other() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&["--interval", "5"]).unwrap();
    let size: u64 = 4 << 20;
    let src = env.path("seed/s.bin");
    random_file(&src, size, 101).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let t = t.to_str().unwrap();
    let seed_dir = env.path("seed");
    let seeder_spec = NodeSpec::new(&mut env, "seeder");
    let mut seeder = seeder_spec.start(
        &env,
        1,
        "node",
        &[
            t,
            "-o",
            seed_dir.to_str().unwrap(),
            "--role",
            "seeder",
            "--max-upload-rate",
            "1MiB",
        ],
    );
    seeder.wait("seeding", |t| t["state"] == "seeding");
    let mut leechers = Vec::new();
    for i in 0..2 {
        let spec = NodeSpec::new(&mut env, &format!("leecher{i}"));
        let out = env.path(&format!("leech{i}"));
        let n = spec.start(
            &env,
            1,
            "node",
            &[
                t,
                "-o",
                out.to_str().unwrap(),
                "--max-upload-rate",
                "192KiB",
            ],
        );
        leechers.push((spec, n, out));
    }
    // Wait until the two leechers between them hold every piece.
    let mut held = (Vec::new(), Vec::new());
    wait_until("the leechers to hold every piece between them", T, || {
        held = (leechers[0].1.pieces(), leechers[1].1.pieces());
        count(&union(&held.0, &held.1)) == held.0.len()
    })
    .unwrap();
    seeder.proc.kill();
    let n = held.0.len();
    let (a, b) = (&held.0, &held.1);
    eprintln!(
        "seeder killed; leechers held {} and {} of {n} pieces",
        count(a),
        count(b)
    );
    assert!(
        count(a) < n && count(b) < n,
        "a leecher was already complete when the seeder died ({} and {} of {n}): the test proves nothing",
        count(a),
        count(b)
    );
    assert!(
        a.iter().zip(b).any(|(x, y)| *x && !*y) && a.iter().zip(b).any(|(x, y)| !*x && *y),
        "one leecher holds every piece of the other: they do not hold different parts"
    );
    // Once a leecher has seen the seeder go, its count of bytes from the
    // seeder is final: whatever it lacks must come from the other leecher.
    let mut from_seeder_at_kill = Vec::new();
    for (_, node, _) in leechers.iter_mut() {
        node.drain();
        let t = node.wait("the seeder's connection to close", |t| {
            !t["peers"].as_array().unwrap().iter().any(|p| {
                p["addr"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{}:", seeder_spec.ip))
            })
        });
        assert!(u(&t["have_pieces"]) < n as u64);
        from_seeder_at_kill.push(from_ip(&t, &seeder_spec.ip));
    }
    for (i, (spec, node, out)) in leechers.iter_mut().enumerate() {
        node.complete();
        let last = node.now();
        assert_eq!(u(&last["have_pieces"]), n as u64, "{}", spec.name);
        assert_eq!(
            from_ip(&last, &seeder_spec.ip),
            from_seeder_at_kill[i],
            "{} got data from a dead seeder",
            spec.name
        );
        assert_same_file(&src, &out.join("s.bin"));
    }
}

/// The seeder dies while the leechers between them still lack pieces: they
/// trade what they have, then wait (connected, downloading, no error) until
/// the seeder comes back on the same data, and then finish.
#[test]
fn seeder_killed_before_the_swarm_has_every_piece_leechers_wait_and_finish_when_it_returns() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&["--interval", "5"]).unwrap();
    let size: u64 = 4 << 20;
    let src = env.path("seed/w.bin");
    random_file(&src, size, 102).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let t = t.to_str().unwrap();
    let seed_dir = env.path("seed");
    let seed_dir = seed_dir.to_str().unwrap();
    let seeder_spec = NodeSpec::new(&mut env, "seeder");
    let seeder_args = [
        t,
        "-o",
        seed_dir,
        "--role",
        "seeder",
        "--max-upload-rate",
        "256KiB",
    ];
    let mut seeder = seeder_spec.start(&env, 1, "node", &seeder_args);
    seeder.wait("seeding", |t| t["state"] == "seeding");
    let mut leechers = Vec::new();
    for i in 0..2 {
        let spec = NodeSpec::new(&mut env, &format!("leecher{i}"));
        let out = env.path(&format!("leech{i}"));
        let n = spec.start(&env, 1, "node", &[t, "-o", out.to_str().unwrap()]);
        leechers.push((spec, n, out));
    }
    // A quarter of the pieces are in the swarm, each leecher holding some.
    let mut n = 0;
    wait_until("a quarter of the pieces to reach the leechers", T, || {
        let (a, b) = (leechers[0].1.pieces(), leechers[1].1.pieces());
        n = a.len();
        count(&a) > 0 && count(&b) > 0 && count(&union(&a, &b)) * 4 >= n
    })
    .unwrap();
    seeder.proc.kill();
    // They trade what they have until both hold the same pieces, and keep
    // holding them for a second (blocks the seeder sent before it died may
    // still complete a piece).
    let mut swarm = Vec::new();
    let mut since: Option<(Vec<bool>, Instant)> = None;
    wait_until("the leechers to trade what they have", T, || {
        let (a, b) = (leechers[0].1.pieces(), leechers[1].1.pieces());
        if a != b {
            since = None;
            return false;
        }
        match &since {
            Some((p, at)) if *p == a => {
                swarm = a;
                at.elapsed() >= Duration::from_secs(1)
            }
            _ => {
                since = Some((a, Instant::now()));
                false
            }
        }
    })
    .unwrap();
    let in_swarm = count(&swarm);
    eprintln!("seeder killed; the swarm holds {in_swarm} of {n} pieces");
    assert!(
        in_swarm < n,
        "the swarm already had every piece: the test proves nothing"
    );
    // And then they wait: three more status lines each with the same pieces,
    // still downloading, still connected to each other, no error.
    for (spec, node, _) in leechers.iter_mut() {
        node.drain();
        for _ in 0..3 {
            let s = node.wait("a status line", |_| true);
            assert_eq!(s["state"], "downloading", "{}: {s}", spec.name);
            assert!(s["error"].is_null(), "{}: {s}", spec.name);
            assert_eq!(u(&s["have_pieces"]), in_swarm as u64, "{}", spec.name);
            assert_eq!(u(&s["peers_connected"]), 1, "{}: {s}", spec.name);
        }
    }
    let before: Vec<u64> = leechers
        .iter()
        .map(|(_, n, _)| from_ip(&n.now(), &seeder_spec.ip))
        .collect();
    // The seeder comes back at the same address on the same data (its resume
    // file is trusted) and finds the leechers through the tracker.
    let _seeder = seeder_spec.start(&env, 2, "node", &seeder_args[..5]);
    for (i, (spec, node, out)) in leechers.iter_mut().enumerate() {
        node.complete();
        let last = node.now();
        assert!(
            from_ip(&last, &seeder_spec.ip) > before[i],
            "{} finished without the returning seeder: {last}",
            spec.name
        );
        assert_same_file(&src, &out.join("w.bin"));
    }
}

// ----------------------------------------- 2. a leecher is killed, again

/// A multi-file download is killed with SIGKILL three times. Each restart
/// finds at least what was verified before the kill, and no run downloads
/// more than what its start-up check found missing (plus the pieces that
/// were in flight when it was killed).
#[test]
fn leecher_killed_three_times_on_a_multi_file_torrent_never_fetches_a_verified_piece_again() {
    let mut env = StaEnv::new(STA);
    let (_tracker, announce, _) = env.tracker(&["--interval", "5"]).unwrap();
    let root = env.path("seed/set");
    let files = [
        ("a.bin", 2_500_000u64),
        ("sub/b.bin", 3_000_001),
        ("sub/deeper/c.bin", 700_000),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        random_file(&root.join(name), *len, 201 + i as u64).unwrap();
    }
    std::fs::write(root.join("sub/empty"), b"").unwrap();
    let size: u64 = files.iter().map(|f| f.1).sum();
    let piece: u64 = 64 * 1024;
    let t = env.create(&root, &announce, "64KiB").unwrap();
    let t = t.to_str().unwrap();
    let seed_dir = env.path("seed");
    let mut seeder = NodeSpec::new(&mut env, "seeder").start(
        &env,
        1,
        "node",
        &[t, "-o", seed_dir.to_str().unwrap(), "--role", "seeder"],
    );
    seeder.wait("seeding", |t| t["state"] == "seeding");
    let out = env.path("leech");
    let spec = NodeSpec::new(&mut env, "leecher");
    let args = [
        t,
        "-o",
        out.to_str().unwrap(),
        "--max-download-rate",
        "1MiB",
        "--exit-on-complete",
    ];
    // What a run may receive beyond the pieces it verifies: blocks of the
    // pieces in flight when it is killed (partly received, then lost).
    let slack = 8 * piece;
    // Each killed run verifies about a mebibyte more than it started with.
    let step = 1 << 20;
    let mut verified_before_kill = 0u64;
    for run in 1..=4u32 {
        let mut node = spec.start(&env, run, "get", &args);
        let first = node.wait("the start-up check", |t| t["state"] != "checking");
        let at_start = u(&first["verified_at_start"]);
        assert!(
            at_start >= verified_before_kill,
            "run {run} lost verified data: {at_start} < {verified_before_kill}"
        );
        if run == 4 {
            let done = node.complete();
            let got = u(&done["downloaded"]);
            eprintln!("run {run}: verified {at_start} at start, downloaded {got} to complete");
            assert!(
                got <= size - at_start + slack,
                "the last run downloaded {got} bytes but only {} were missing",
                size - at_start
            );
            assert!(node.proc.wait_exit(T).unwrap().success());
            break;
        }
        let s = if u(&first["verified_bytes"]) >= at_start + step {
            first
        } else {
            node.wait("a mebibyte more", |t| {
                u(&t["verified_bytes"]) >= at_start + step
            })
        };
        node.proc.kill();
        verified_before_kill = u(&s["verified_bytes"]);
        let got = u(&s["downloaded"]);
        eprintln!(
            "run {run}: verified {at_start} at start, {verified_before_kill} at the kill, downloaded {got}"
        );
        assert!(verified_before_kill < size, "run {run} was complete");
        assert!(
            got <= verified_before_kill - at_start + slack,
            "run {run} downloaded {got} bytes to verify {} new ones",
            verified_before_kill - at_start
        );
    }
    assert_same_tree(&root, &out.join("set"));
}

// -------------------------------------------- 3. the tracker is killed

/// The tracker is killed with SIGKILL mid-download. The leecher keeps
/// downloading from the seeder it knows while both report the tracker down;
/// the tracker comes back on the same port and data folder, both announce to
/// it again, and a leecher that starts afterwards finds them through it.
#[test]
fn tracker_killed_and_restarted_nodes_keep_trading_announce_again_and_newcomers_join() {
    let mut env = StaEnv::new(STA);
    let trk = TrackerSpec::new(&env, "5");
    let mut tracker = trk.start(&env, 1);
    let size: u64 = 8 << 20;
    let src = env.path("seed/k.bin");
    random_file(&src, size, 301).unwrap();
    let t = env.create(&src, &trk.announce(), "64KiB").unwrap();
    let t = t.to_str().unwrap();
    let seed_dir = env.path("seed");
    let seeder_spec = NodeSpec::new(&mut env, "seeder");
    let mut seeder = seeder_spec.start(
        &env,
        1,
        "node",
        &[
            t,
            "-o",
            seed_dir.to_str().unwrap(),
            "--role",
            "seeder",
            "--max-upload-rate",
            "1MiB",
        ],
    );
    seeder.wait("seeding", |t| t["state"] == "seeding");
    let first_spec = NodeSpec::new(&mut env, "first");
    let out1 = env.path("leech1");
    let mut first = first_spec.start(&env, 1, "node", &[t, "-o", out1.to_str().unwrap()]);
    let at_kill = first.wait("some progress", |t| t["progress"].as_f64().unwrap() >= 0.1);
    tracker.kill();
    let at_kill = u(&at_kill["verified_bytes"]);
    // While it is down, both nodes see their announces fail, and the leecher
    // keeps downloading from the seeder it already knows.
    let tracker_down = |t: &Value| t["trackers"][0]["state"] == "error";
    let during = first.wait("the tracker to be reported down", tracker_down);
    seeder.wait("the tracker to be reported down", tracker_down);
    let during = u(&during["verified_bytes"]);
    assert!(
        during > at_kill,
        "no progress while the tracker was down: {during} <= {at_kill}"
    );
    eprintln!("tracker down: leecher went from {at_kill} to {during} bytes");
    // Back on the same port with the same data folder (peers live in memory:
    // it knows them again only when they announce).
    let _tracker = trk.start(&env, 2);
    wait_until("both nodes to announce again", T, || {
        let s = trk.stats();
        u(&s["seeders"]) + u(&s["leechers"]) == 2
    })
    .unwrap();
    for n in [&mut first, &mut seeder] {
        n.drain();
        n.wait("the tracker to be reported up", |t| {
            t["trackers"][0]["state"] == "ok"
        });
    }
    // A newcomer knows only the tracker, and completes through it.
    let late_spec = NodeSpec::new(&mut env, "late");
    let out2 = env.path("leech2");
    let mut late = late_spec.start(
        &env,
        1,
        "get",
        &[t, "-o", out2.to_str().unwrap(), "--exit-on-complete"],
    );
    late.complete();
    assert!(late.proc.wait_exit(T).unwrap().success());
    let last = late.last_line();
    assert!(
        from_ip(&last, &seeder_spec.ip) + from_ip(&last, &first_spec.ip) >= size,
        "the newcomer got its data from peers the tracker named: {last}"
    );
    first.complete();
    assert_same_file(&src, &out1.join("k.bin"));
    assert_same_file(&src, &out2.join("k.bin"));
}

// ---------------------------------------------------------- 4. disk full

/// A tmpfs mounted for one test, unmounted when dropped (even on failure).
/// Declare it after the `StaEnv` and before the processes that use it, so
/// they are killed first and the folder is removed after.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` when this machine does not let us mount (not root, in a
    /// container without the capability): the caller skips, except under CI.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir: dir.into() }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("cannot mount a tmpfs (CI needs root for this test): {why}");
                }
                eprintln!("skipping: cannot mount a tmpfs here ({why})");
                None
            }
        }
    }

    /// Grows (or shrinks) the file system in place; its files stay.
    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(st.success(), "remount {} failed", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy: detach it now, the kernel frees it when it can.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The download folder is a 1 MiB tmpfs and the file is 3 MiB. The leecher
/// stops with exit code 1 and a message naming the full disk; its resume
/// file records only pieces that are on disk and correct. After the file
/// system grows, a restart keeps those pieces and completes.
#[test]
fn disk_full_is_a_clear_error_records_only_pieces_on_disk_and_a_restart_completes() {
    let mut env = StaEnv::new(STA);
    let mnt = env.path("small-disk");
    let Some(disk) = Tmpfs::mount(&mnt, "1m") else {
        return;
    };
    let (_tracker, announce, _) = env.tracker(&["--interval", "5"]).unwrap();
    let size: u64 = 3 << 20;
    let piece: u64 = 64 * 1024;
    let n = (size / piece) as usize;
    let src = env.path("seed/d.bin");
    random_file(&src, size, 401).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    let ih = info_hash(&t);
    let t = t.to_str().unwrap();
    let seed_dir = env.path("seed");
    let mut seeder = NodeSpec::new(&mut env, "seeder").start(
        &env,
        1,
        "node",
        &[t, "-o", seed_dir.to_str().unwrap(), "--role", "seeder"],
    );
    seeder.wait("seeding", |t| t["state"] == "seeding");
    let spec = NodeSpec::new(&mut env, "leecher");
    let args = [t, "-o", mnt.to_str().unwrap(), "--exit-on-complete"];
    let mut leecher = spec.start(&env, 1, "get", &args);
    let st = leecher.proc.wait_exit(T).unwrap();
    let err = std::fs::read_to_string(&leecher.proc.stderr_path).unwrap();
    assert_eq!(st.code(), Some(1), "{err}");
    eprintln!(
        "the leecher said: {}",
        err.lines().last().unwrap_or_default()
    );
    assert!(
        err.contains("No space left on device")
            && err.contains("the disk is full; free some space and start again")
            && err.contains(mnt.to_str().unwrap()),
        "the error does not name the full disk and the folder, or say what to do: {err}"
    );
    let last = leecher.last_line();
    assert_eq!(last["state"], "error", "{last}");
    assert!(
        last["error"].as_str().unwrap().contains("No space left"),
        "{last}"
    );
    // Every piece the resume file records is on disk and correct.
    let copy = mnt.join("d.bin");
    let recorded = resume_pieces(&spec.state, &ih, n);
    let good: Vec<bool> = (0..n)
        .map(|i| {
            let at = i as u64 * piece;
            read_at(&copy, at, piece as usize) == read_at(&src, at, piece as usize)
        })
        .collect();
    eprintln!(
        "disk full: {} pieces recorded, {} correct on disk, of {n}",
        count(&recorded),
        count(&good)
    );
    assert!(
        count(&recorded) > 0,
        "nothing was recorded before the disk filled"
    );
    for i in 0..n {
        assert!(
            !recorded[i] || good[i],
            "piece {i} is recorded but not on disk"
        );
    }
    // Space is freed: the restart keeps what was verified and fetches the rest.
    disk.resize("8m");
    let mut again = spec.start(&env, 2, "get", &args);
    let first = again.wait("the start-up check", |t| t["state"] != "checking");
    let at_start = u(&first["verified_at_start"]);
    assert!(
        at_start >= count(&recorded) as u64 * piece && at_start <= count(&good) as u64 * piece,
        "verified at start {at_start}: recorded {} pieces, {} good on disk",
        count(&recorded),
        count(&good)
    );
    let done = again.complete();
    assert!(
        u(&done["downloaded"]) <= size - at_start + 4 * piece,
        "{done}"
    );
    assert!(again.proc.wait_exit(T).unwrap().success());
    assert_same_file(&src, &copy);
}

// ------------------------------------- 5. files changed behind our back

/// One byte of a seeder's file is changed while it seeds. Within seconds it
/// notices (size and time changed), rechecks, and no longer has that piece.
/// A leecher that then downloads from it gets every other piece, no bad
/// data, and waits for the missing one; a second seeder with good data
/// arrives, and both the leecher and the first seeder fetch the piece from
/// it and end with correct files.
#[test]
fn files_changed_while_seeding_are_rechecked_the_bad_piece_is_not_served_and_fetched_again() {
    let mut env = StaEnv::new(STA);
    let size: u64 = 2 << 20;
    let piece: u64 = 64 * 1024;
    let n = size / piece;
    let bad_piece = 5u64;
    let src = env.path("orig/m.bin");
    random_file(&src, size, 501).unwrap();
    let t = env.create(&src, "", "64KiB").unwrap();
    let t = t.to_str().unwrap();
    let dir1 = env.path("seed1");
    let dir2 = env.path("seed2");
    for d in [&dir1, &dir2] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::copy(&src, d.join("m.bin")).unwrap();
    }
    let mut first = NodeSpec::new(&mut env, "seeder1").start(
        &env,
        1,
        "node",
        &[t, "-o", dir1.to_str().unwrap(), "--role", "seeder"],
    );
    first.wait("seeding", |t| t["state"] == "seeding");
    // Change one byte in the middle of piece 5 (same size, new mtime).
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir1.join("m.bin"))
            .unwrap();
        let at = bad_piece * piece + 1234;
        let old = read_at(&dir1.join("m.bin"), at, 1)[0];
        f.write_all_at(&[!old], at).unwrap();
    }
    let noticed = first.wait("the change to be noticed", |t| {
        t["state"] != "checking" && u(&t["have_pieces"]) < n
    });
    assert_eq!(u(&noticed["have_pieces"]), n - 1, "{noticed}");
    assert_eq!(noticed["state"], "downloading", "{noticed}");
    assert!(!first.pieces()[bad_piece as usize]);
    // A leecher gets every piece but that one from it, and no bad data.
    let out = env.path("leech");
    let mut leecher = NodeSpec::new(&mut env, "leecher").start(
        &env,
        1,
        "node",
        &[
            t,
            "-o",
            out.to_str().unwrap(),
            "--peer",
            &first.peer.to_string(),
        ],
    );
    let stuck = leecher.wait("all pieces the seeder still has", |t| {
        u(&t["have_pieces"]) == n - 1
    });
    let held = leecher.pieces();
    assert!(!held[bad_piece as usize], "the changed piece was served");
    assert_eq!(
        u(&stuck["hash_failures"]),
        0,
        "bad data was served: {stuck}"
    );
    // A second seeder with good data: both fetch the piece from it.
    let second_spec = NodeSpec::new(&mut env, "seeder2");
    let _second = second_spec.start(
        &env,
        1,
        "node",
        &[
            t,
            "-o",
            dir2.to_str().unwrap(),
            "--role",
            "seeder",
            "--peer",
            &first.peer.to_string(),
            "--peer",
            &leecher.peer.to_string(),
        ],
    );
    leecher.complete();
    let repaired = first.wait("the first seeder to repair its copy", |t| {
        t["state"] == "seeding" && u(&t["have_pieces"]) == n
    });
    let fetched = from_ip(&repaired, &second_spec.ip);
    assert!(
        (piece..=2 * piece).contains(&fetched),
        "the first seeder fetched {fetched} bytes from the second, not one piece: {repaired}"
    );
    assert_eq!(u(&repaired["hash_failures"]), 0);
    assert_eq!(u(&leecher.now()["hash_failures"]), 0);
    assert_same_file(&src, &dir1.join("m.bin"));
    assert_same_file(&src, &out.join("m.bin"));
}

// ------------------------------------------------ 6. graceful shutdown

/// Stops a seeder and then a half-done leecher with `sig`. Each exits with
/// `code` and tells the tracker `stopped` before it exits (its counter and
/// the swarm's gauges change at once). The leecher's restart trusts the
/// resume file it saved (no recheck) with exactly what it had verified, and
/// so does the seeder's; then the download completes.
fn graceful_stop(sig: i32, code: i32) {
    let mut env = StaEnv::new(STA);
    let trk = TrackerSpec::new(&env, "5");
    let _tracker = trk.start(&env, 1);
    let size: u64 = 8 << 20;
    let src = env.path("seed/g.bin");
    random_file(&src, size, 600 + sig as u64).unwrap();
    let t = env.create(&src, &trk.announce(), "64KiB").unwrap();
    let t = t.to_str().unwrap();
    let seed_dir = env.path("seed");
    let seeder_spec = NodeSpec::new(&mut env, "seeder");
    let seeder_args = [
        t,
        "-o",
        seed_dir.to_str().unwrap(),
        "--role",
        "seeder",
        "--max-upload-rate",
        "2MiB",
        "-v",
    ];
    let mut seeder = seeder_spec.start(&env, 1, "node", &seeder_args);
    seeder.wait("seeding", |t| t["state"] == "seeding");
    let out = env.path("leech");
    let spec = NodeSpec::new(&mut env, "leecher");
    let args = [t, "-o", out.to_str().unwrap(), "-v"];
    let mut leecher = spec.start(&env, 1, "node", &args);
    leecher.wait("a quarter", |t| t["progress"].as_f64().unwrap() >= 0.25);
    wait_until("the tracker to list both", T, || {
        let s = trk.stats();
        (u(&s["seeders"]), u(&s["leechers"])) == (1, 1)
    })
    .unwrap();
    let stopped = |s: &Value| u(&s["announces"]["http"]["stopped"]);

    seeder.proc.signal(sig).unwrap();
    assert_eq!(seeder.proc.wait_exit(T).unwrap().code(), Some(code));
    let s = trk.stats();
    assert_eq!(stopped(&s), 1, "the seeder did not announce stopped: {s}");
    assert_eq!((u(&s["seeders"]), u(&s["leechers"])), (0, 1), "{s}");
    assert_eq!(
        seeder
            .proc
            .seen
            .last()
            .map(|l| l.contains(r#""event":"stopped""#)),
        Some(true)
    );

    // With the seeder gone and nothing in flight, stop the leecher.
    leecher.drain();
    let mut last_verified = None;
    leecher.wait("the leecher to settle", |t| {
        let v = u(&t["verified_bytes"]);
        let settled = u(&t["peers_connected"]) == 0 && last_verified == Some(v);
        last_verified = Some(v);
        settled
    });
    leecher.proc.signal(sig).unwrap();
    assert_eq!(leecher.proc.wait_exit(T).unwrap().code(), Some(code));
    let s = trk.stats();
    assert_eq!(stopped(&s), 2, "the leecher did not announce stopped: {s}");
    assert_eq!((u(&s["seeders"]), u(&s["leechers"])), (0, 0), "{s}");
    let at_stop = leecher.last_line();
    let verified = u(&at_stop["verified_bytes"]);
    assert!(0 < verified && verified < size, "{at_stop}");

    // Both restart from their resume files without hashing anything.
    let skipped = "resume file matches the files on disk; skipping the check";
    let mut leecher = spec.start(&env, 2, "node", &args);
    let first = leecher.wait("the start-up check", |t| t["state"] != "checking");
    assert_eq!(u(&first["verified_at_start"]), verified, "{first}");
    let log = std::fs::read_to_string(&leecher.proc.stderr_path).unwrap();
    assert!(log.contains(skipped), "the leecher rechecked: {log}");
    let seeder = seeder_spec.start(&env, 2, "node", &seeder_args);
    leecher.complete();
    let log = std::fs::read_to_string(&seeder.proc.stderr_path).unwrap();
    assert!(log.contains(skipped), "the seeder rechecked: {log}");
    assert_same_file(&src, &out.join("g.bin"));
}

#[test]
fn sigterm_announces_stopped_saves_resume_state_and_exits_0() {
    graceful_stop(libc::SIGTERM, 0);
}

#[test]
fn sigint_announces_stopped_saves_resume_state_and_exits_130() {
    graceful_stop(libc::SIGINT, 130);
}
