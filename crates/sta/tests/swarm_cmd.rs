//! `sta swarm`, the README's main command: a tracker, a seeder and
//! leechers on loopback, every copy verified, nothing left running, and a
//! work folder of which only what the swarm made is removed.

use std::process::Command;

const STA: &str = env!("CARGO_BIN_EXE_sta");

#[test]
fn swarm_runs_a_whole_swarm_and_verifies_every_copy() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let out = Command::new(STA)
        .args([
            "swarm",
            "--leechers",
            "3",
            "--size",
            "8MiB",
            "--piece-length",
            "64KiB",
            "--json",
            "--max-upload-rate",
            "2MiB",
            "--work-dir",
        ])
        .arg(&work)
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
    assert_eq!(summary["verified"], 3);
    assert!(text.contains("verified 3/3 copies, SHA-256"));
    let from_peers: u64 = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|n| n["from_peers"].as_u64().unwrap())
        .sum();
    assert!(
        from_peers > 0,
        "leechers received data from each other: {summary}"
    );
    assert!(!work.exists(), "work folder removed on success");
    // Nothing keeps running: no process mentions the work folder.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains(work.to_str().unwrap()));
}

/// `--work-dir` may name a folder that holds other things: on success only
/// what the swarm made there is removed.
#[test]
fn swarm_removes_only_what_it_made_in_the_work_dir() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("photos")).unwrap();
    std::fs::write(work.join("photos/cat.jpg"), b"not a cat").unwrap();
    std::fs::write(work.join("notes.txt"), b"mine").unwrap();
    let out = Command::new(STA)
        .args([
            "swarm",
            "--leechers",
            "1",
            "--size",
            "1MiB",
            "--piece-length",
            "64KiB",
            "--json",
        ])
        .arg("--work-dir")
        .arg(&work)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut left: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["notes.txt", "photos"]);
    assert_eq!(
        std::fs::read(work.join("photos/cat.jpg")).unwrap(),
        b"not a cat"
    );
    assert_eq!(std::fs::read(work.join("notes.txt")).unwrap(), b"mine");
}
