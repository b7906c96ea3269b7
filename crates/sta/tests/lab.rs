//! `sta lab`: hosts in network namespaces with shaped links (root). A full
//! run with 1 seeder and 4 leechers, and runs stopped by SIGTERM while the
//! network is being built and while nodes are trading: each time, every
//! `sta-<pid>-*` namespace and every node of the run is gone afterwards.
//! Without root (or ip, tc) the tests skip, except under CI where they fail.

use std::process::Command;
use std::time::{Duration, Instant};

use sta_testkit::proc::Proc;
use sta_testkit::tools::{require_root, require_tool};
use sta_testkit::wait_until;

const STA: &str = env!("CARGO_BIN_EXE_sta");
const T: Duration = Duration::from_secs(60);

fn lab_possible() -> bool {
    require_root("sta lab makes network namespaces") && require_tool("ip") && require_tool("tc")
}

fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab's namespaces now (names starting with `prefix`).
fn lab_namespaces(prefix: &str) -> Vec<String> {
    namespaces()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(String::from)
        .collect()
}

/// PIDs of the processes inside namespace `ns`.
fn pids_in(ns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Starts a lab that would run for a while (32 MiB through a 20 Mbit/s
/// seeder: at least 13 s), waits until `ready` holds for its namespace
/// prefix, sends SIGTERM, and checks it cleaned up.
fn sigterm_lab_when(what: &str, ready: impl Fn(&str) -> bool) {
    let logs = tempfile::tempdir().unwrap();
    let args = ["lab", "--leechers", "2", "--size", "32MiB", "--json"];
    let mut lab = Proc::spawn(
        &format!("lab-{}", what.replace(' ', "-")),
        STA,
        &args,
        logs.path(),
    )
    .unwrap();
    let prefix = format!("sta-{}-", lab.pid());
    wait_until(what, T, || ready(&prefix)).unwrap_or_else(|e| panic!("{e}\n{}", lab.report()));
    // Every process of the run's hosts (tracker, seeder, leechers).
    let pids: Vec<i32> = lab_namespaces(&prefix)
        .iter()
        .flat_map(|n| pids_in(n))
        .collect();
    lab.signal(libc::SIGTERM).unwrap();
    let st = lab.wait_exit(T).unwrap();
    assert_eq!(st.code(), Some(130), "SIGTERM {what}: {}", lab.report());
    let left = lab_namespaces(&prefix);
    assert!(
        left.is_empty(),
        "SIGTERM {what}: namespaces left behind: {left:?}"
    );
    let running: Vec<i32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(
        running.is_empty(),
        "SIGTERM {what}: nodes still running: {running:?}"
    );
}

#[test]
fn sigterm_while_the_lab_is_built_or_running_leaves_no_namespace() {
    if !lab_possible() {
        return;
    }
    // As soon as the first namespace exists: the network is being built.
    sigterm_lab_when("the first namespace", |prefix| {
        namespaces().contains(prefix)
    });
    // Once the last leecher (host 3) runs: nodes are trading.
    sigterm_lab_when("the last leecher to run", |prefix| {
        !pids_in(&format!("{prefix}h3")).is_empty()
    });
}

#[test]
fn lab_shapes_links_and_cleans_up() {
    if !lab_possible() {
        return;
    }
    let started = Instant::now();
    let out = Command::new(STA)
        // Three upload slots: every node gets the lab's choker setting.
        .args([
            "lab",
            "--leechers",
            "4",
            "--size",
            "4MiB",
            "--upload-slots",
            "3",
            "--json",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = sta_testkit::sta::json_event(&text, "summary").expect("a summary line");
    assert_eq!(summary["verified"], 4);
    let ratio = summary["ratio"].as_f64().unwrap();
    assert!(
        ratio >= 0.9,
        "nothing beats the fluid bound by much: {ratio}"
    );
    let list = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    for ns in summary["namespaces"].as_array().unwrap() {
        assert!(
            !list.contains(ns.as_str().unwrap()),
            "namespace {ns} left behind"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn upload_slots_apply_to_sta_nodes_only() {
    let out = Command::new(STA)
        .args(["lab", "--upload-slots", "8", "--node-cmd", "true {role}"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no effect with --node-cmd"), "{err}");
}
