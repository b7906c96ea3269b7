//! sta nodes with independent clients from Debian, both directions, all
//! finding each other through `sta tracker`: every copy's SHA-256 must equal
//! the source. Quirks (reference-peers.md): Transmission 3.00 never dials a
//! 127.x peer it learns from a tracker, so an sta node dials it; libtorrent
//! needs several connections per IP allowed; every node gets its own 127.0.0.x.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sta_testkit::files::{random_file, sha256_file};
use sta_testkit::reference::{Aria2, LtPeer, Transmission};
use sta_testkit::sta::{StaEnv, wait_complete, wait_status};
use sta_testkit::tools::{require_libtorrent, require_tool};

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(90);

fn ltpeer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ltpeer.py")
}

fn same(a: &Path, b: &Path) {
    assert_eq!(
        sha256_file(a).unwrap(),
        sha256_file(b).unwrap_or_else(|e| panic!("{}: {e}", b.display())),
        "{}",
        b.display()
    );
}

/// A tracker that asks for announces every 2 s, so late joiners are found quickly.
fn setup(env: &StaEnv) -> (sta_testkit::Proc, String) {
    let (t, announce, _) = env.tracker(&["--interval", "2"]).unwrap();
    (t, announce)
}

#[test]
fn sta_downloads_from_a_libtorrent_seeder() {
    if !require_libtorrent() {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_tr, announce) = setup(&env);
    let src = env.path("seed/lt.bin");
    random_file(&src, 5 * 1024 * 1024 + 77, 31).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    let ip = env.next_ip();
    let mut lt = LtPeer::start(
        &ltpeer(),
        true,
        &t,
        &env.path("seed"),
        &ip,
        &env.logs(),
        "lt-seeder",
    )
    .unwrap();
    lt.wait_complete(T).unwrap();
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "sta-leecher",
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
    same(&src, &out.join("lt.bin"));
}

#[test]
fn sta_downloads_from_a_transmission_seeder() {
    if !(require_tool("transmission-daemon") && require_tool("transmission-remote")) {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_tr, announce) = setup(&env);
    let src = env.path("seed/tr.bin");
    random_file(&src, 3 * 1024 * 1024 + 5, 32).unwrap();
    let t = env.create(&src, &announce, "64KiB").unwrap();
    let ip = env.next_ip();
    let tr = Transmission::start(
        &env.path("tr-config"),
        &env.path("seed"),
        &ip,
        &env.logs(),
        "tr-seeder",
    )
    .unwrap();
    tr.add(&t).unwrap();
    tr.wait_complete(T).unwrap();
    let out = env.path("leech");
    let (mut leecher, _) = env
        .node(
            "sta-leecher",
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
    same(&src, &out.join("tr.bin"));
}

#[test]
fn aria2_and_libtorrent_download_from_an_sta_seeder() {
    if !(require_tool("aria2c") && require_libtorrent()) {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_tr, announce) = setup(&env);
    let src = env.path("seed/s.bin");
    random_file(&src, 4 * 1024 * 1024 + 3, 33).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let (mut seeder, _) = env
        .node(
            "sta-seeder",
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
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let ip = env.next_ip();
    let mut aria = Aria2::start(
        false,
        false,
        &t,
        &env.path("aria"),
        &ip,
        &env.logs(),
        "aria2-leecher",
    )
    .unwrap();
    let ip = env.next_ip();
    let mut lt = LtPeer::start(
        &ltpeer(),
        false,
        &t,
        &env.path("lt"),
        &ip,
        &env.logs(),
        "lt-leecher",
    )
    .unwrap();
    let st = aria.proc.wait_exit(T).unwrap();
    assert!(st.success(), "aria2c failed\n{}", aria.proc.report());
    lt.wait_complete(T).unwrap();
    same(&src, &env.path("aria/s.bin"));
    same(&src, &env.path("lt/s.bin"));
}

#[test]
fn mixed_swarm_of_sta_libtorrent_and_transmission_all_finish() {
    if !(require_libtorrent()
        && require_tool("transmission-daemon")
        && require_tool("transmission-remote"))
    {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_tr, announce) = setup(&env);
    let src = env.path("seed/m.bin");
    random_file(&src, 3 * 1024 * 1024, 34).unwrap();
    let t = env.create(&src, &announce, "32KiB").unwrap();
    let (mut seeder, _) = env
        .node(
            "sta-seeder",
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
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let ip = env.next_ip();
    let tr = Transmission::start(
        &env.path("tr-config"),
        &env.path("tr"),
        &ip,
        &env.logs(),
        "tr-leecher",
    )
    .unwrap();
    tr.add(&t).unwrap();
    let ip = env.next_ip();
    let mut lt = LtPeer::start(
        &ltpeer(),
        false,
        &t,
        &env.path("lt"),
        &ip,
        &env.logs(),
        "lt-leecher",
    )
    .unwrap();
    let out = env.path("sta");
    let (mut sta, _) = env
        .node(
            "sta-leecher",
            "node",
            &[t.to_str().unwrap(), "-o", out.to_str().unwrap()],
        )
        .unwrap();
    wait_complete(&mut sta, T).unwrap();
    lt.wait_complete(T).unwrap();
    tr.wait_complete(T).unwrap();
    same(&src, &out.join("m.bin"));
    same(&src, &env.path("lt/m.bin"));
    same(&src, &env.path("tr/m.bin"));
}

#[test]
fn multi_file_torrent_from_sta_to_libtorrent_and_sta() {
    if !require_libtorrent() {
        return;
    }
    let mut env = StaEnv::new(STA);
    let (_tr, announce) = setup(&env);
    let root = env.path("seed/set");
    random_file(&root.join("x/y/one.bin"), 300_001, 35).unwrap();
    random_file(&root.join("two.bin"), 1_234_567, 36).unwrap();
    std::fs::write(root.join("x/empty"), b"").unwrap();
    let t = env.create(&root, &announce, "32KiB").unwrap();
    let (mut seeder, _) = env
        .node(
            "sta-seeder",
            "seed",
            &[
                t.to_str().unwrap(),
                "-o",
                env.path("seed").to_str().unwrap(),
            ],
        )
        .unwrap();
    wait_status(&mut seeder, "seeding", T, |t| t["state"] == "seeding").unwrap();
    let ip = env.next_ip();
    let mut lt = LtPeer::start(
        &ltpeer(),
        false,
        &t,
        &env.path("lt"),
        &ip,
        &env.logs(),
        "lt-leecher",
    )
    .unwrap();
    let out = env.path("sta");
    let (mut sta, _) = env
        .node(
            "sta-leecher",
            "get",
            &[
                t.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--exit-on-complete",
            ],
        )
        .unwrap();
    wait_complete(&mut sta, T).unwrap();
    lt.wait_complete(T).unwrap();
    for f in ["x/y/one.bin", "two.bin", "x/empty"] {
        same(&root.join(f), &out.join("set").join(f));
        same(&root.join(f), &env.path("lt/set").join(f));
    }
}
