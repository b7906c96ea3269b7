//! Faults on one node, end to end with real `sta` processes on loopback: a
//! leecher killed again and again, a full disk, files changed behind a
//! seeder's back, and graceful stops on SIGTERM and Ctrl-C. Each test waits
//! for events with deadlines, and ends by comparing the SHA-256 of every copy
//! with the source.

#[path = "support/faults_kit.rs"]
mod kit;
use kit::*;

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
                // The same rule as for missing tools: CI=true or CI=1 fails.
                sta_testkit::tools::require_capability(
                    false,
                    &format!("mounting a tmpfs (root): {why}"),
                );
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
