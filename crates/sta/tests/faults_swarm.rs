//! Faults in the swarm, end to end with real `sta` processes on loopback: a
//! seeder killed mid-download (with and without every piece in the swarm),
//! and the tracker killed and restarted. Each test waits for events (status
//! lines, the control API, tracker counters) with deadlines, and ends by
//! comparing the SHA-256 of every copy with the source.

#[path = "support/faults_kit.rs"]
mod kit;
use kit::*;

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
        // Before its check a node's map is empty: two empty maps hold nothing.
        !held.0.is_empty()
            && held.0.len() == held.1.len()
            && count(&union(&held.0, &held.1)) == held.0.len()
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
    // They trade what they have until both hold the same pieces. Then no
    // piece can complete any more: once neither is connected to the dead
    // seeder and neither has a piece whose blocks all arrived but whose hash
    // is still being checked, only a peer holding a piece could finish it,
    // and the other leecher holds no piece this one lacks.
    let mut swarm = Vec::new();
    wait_until("the leechers to trade what they have", T, || {
        let (x, y) = (&leechers[0].1, &leechers[1].1);
        let (a, b) = (x.pieces(), y.pieces());
        let settled = a == b
            && !a.is_empty()
            && [x, y].iter().all(|n| {
                !n.connected_to(&seeder_spec.ip) && n.nothing_left_to_verify()
            })
            // Read again: nothing completed while the checks above ran.
            && x.pieces() == a
            && y.pieces() == a;
        if settled {
            swarm = a;
        }
        settled
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
