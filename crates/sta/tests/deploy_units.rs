//! The systemd units in `deploy/`: every folder the service writes is one
//! systemd creates for it (so `ProtectSystem=strict` never meets a missing
//! or read-only folder), and `systemd-analyze verify` accepts them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sta_testkit::tools::require_tool;

const STA: &str = env!("CARGO_BIN_EXE_sta");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `Key=value` settings of a unit, values of repeated keys in order.
fn settings(unit: &str) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            m.entry(k.trim().into()).or_default().push(v.trim().into());
        }
    }
    m
}

/// Folders the service's command line and environment make it write to.
fn written_folders(s: &HashMap<String, Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for exec in &s["ExecStart"] {
        let words: Vec<&str> = exec.split_whitespace().collect();
        for w in words.windows(2) {
            if matches!(
                w[0],
                "-o" | "--dir" | "--data-dir" | "--state-dir" | "--log-file"
            ) {
                out.push(w[1].to_string());
            }
        }
    }
    for env in s.get("Environment").into_iter().flatten() {
        for kv in env.split_whitespace() {
            if let Some(v) = kv.strip_prefix("STA_STATE_DIR=") {
                out.push(v.to_string());
            }
        }
    }
    out
}

#[test]
fn every_folder_a_unit_writes_is_created_for_it_by_systemd() {
    for name in ["sta-tracker.service", "sta-node@.service"] {
        let text = std::fs::read_to_string(deploy().join(name)).unwrap();
        let s = settings(&text);
        assert_eq!(s["ProtectSystem"], ["strict"], "{name}");
        let created: Vec<String> = s
            .get("StateDirectory")
            .into_iter()
            .flatten()
            .flat_map(|v| v.split_whitespace().map(|d| format!("/var/lib/{d}")))
            .collect();
        let written = written_folders(&s);
        assert!(!written.is_empty(), "{name}: no folder found in ExecStart");
        for dir in &written {
            assert!(
                created.iter().any(|c| Path::new(dir).starts_with(c)),
                "{name}: writes {dir}, which no StateDirectory= creates ({created:?})"
            );
        }
        // A ReadWritePaths= folder must exist before start or the unit fails:
        // only state folders (and their parents, which systemd makes with
        // them) are sure to, unless the entry is marked optional with `-`.
        for p in s.get("ReadWritePaths").into_iter().flatten() {
            for path in p.split_whitespace() {
                let sure = path.starts_with('-')
                    || created
                        .iter()
                        .any(|c| Path::new(path).starts_with(c) || Path::new(c).starts_with(path));
                assert!(
                    sure,
                    "{name}: ReadWritePaths={path} may not exist when the unit starts"
                );
            }
        }
    }
}

#[test]
fn systemd_accepts_the_units() {
    if !require_tool("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, as_name) in [
        ("sta-tracker.service", "sta-tracker.service"),
        ("sta-node@.service", "sta-node@dataset.service"),
    ] {
        // The unit as installed, with the binary under test in place of
        // /usr/local/bin/sta (verify checks that it is executable).
        let text = std::fs::read_to_string(deploy().join(name))
            .unwrap()
            .replace("/usr/local/bin/sta", STA);
        let path = dir.path().join(as_name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Warnings about the machine (no systemd running, no user `sta`) are
        // not about the unit; anything naming the unit file is.
        let about_unit: Vec<&str> = err.lines().filter(|l| l.contains(as_name)).collect();
        assert!(
            out.status.success() && about_unit.is_empty(),
            "{name}: {err}"
        );
    }
}
