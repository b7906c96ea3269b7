//! Metainfo interop with real tools from Debian: torrents made by mktorrent,
//! transmission-create and libtorrent parse in sta with the info-hash they
//! report; torrents made by `sta create` load in transmission-show and
//! libtorrent with the same info-hash, name, size and files.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sta_testkit::files::random_file;
use sta_testkit::tools::{require_libtorrent, require_tool};

const STA: &str = env!("CARGO_BIN_EXE_sta");

fn lt_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_torrent.py")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn sta_info(torrent: &Path) -> Value {
    serde_json::from_str(&run(Command::new(STA)
        .args(["info", "--json"])
        .arg(torrent)))
    .expect("json")
}

fn transmission_hash(torrent: &Path) -> String {
    let out = run(Command::new("transmission-show").arg(torrent));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Hash: "))
        .unwrap_or_else(|| panic!("no Hash: line in transmission-show output:\n{out}"))
        .trim()
        .to_owned()
}

fn lt_info(torrent: &Path) -> Value {
    serde_json::from_str(&run(Command::new("/usr/bin/python3")
        .arg(lt_script())
        .arg("info")
        .arg(torrent)))
    .expect("json")
}

/// A folder with nesting, a zero-length file and a total that is not a
/// multiple of the piece length; plus a single file.
fn content(dir: &Path) -> (PathBuf, PathBuf) {
    let folder = dir.join("folder");
    random_file(&folder.join("a/b/deep.bin"), 70_001, 1).unwrap();
    random_file(&folder.join("a/top.bin"), 16_384, 2).unwrap();
    random_file(&folder.join("z.bin"), 3, 3).unwrap();
    std::fs::write(folder.join("a/empty"), b"").unwrap();
    let single = dir.join("single.bin");
    random_file(&single, 1_000_003, 4).unwrap();
    (folder, single)
}

#[test]
fn torrents_from_other_tools_parse_with_the_same_info_hash() {
    if !(require_tool("mktorrent")
        && require_tool("transmission-create")
        && require_tool("transmission-show")
        && require_libtorrent())
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (folder, single) = content(dir.path());
    for src in [&folder, &single] {
        let stem = src.file_name().unwrap().to_str().unwrap();
        // mktorrent
        let mk = dir.path().join(format!("{stem}.mk.torrent"));
        run(Command::new("mktorrent")
            .args(["-l", "15", "-a", "http://127.0.0.1:6969/announce", "-o"])
            .arg(&mk)
            .arg(src));
        assert_eq!(
            sta_info(&mk)["info_hash"],
            transmission_hash(&mk),
            "mktorrent {stem}"
        );
        // transmission-create
        let tc = dir.path().join(format!("{stem}.tc.torrent"));
        run(Command::new("transmission-create")
            .args(["-s", "16", "-t", "http://127.0.0.1:6969/announce", "-o"])
            .arg(&tc)
            .arg(src));
        assert_eq!(
            sta_info(&tc)["info_hash"],
            transmission_hash(&tc),
            "transmission-create {stem}"
        );
        // libtorrent, v1-only and the default hybrid v1+v2 with padding files.
        for kind in ["v1", "hybrid"] {
            let lt = dir.path().join(format!("{stem}.{kind}.lt.torrent"));
            run(Command::new("/usr/bin/python3")
                .arg(lt_script())
                .arg("create")
                .arg(src)
                .arg(&lt)
                .arg(kind));
            let ours = sta_info(&lt);
            let theirs = lt_info(&lt);
            assert_eq!(
                ours["info_hash"], theirs["info_hash"],
                "libtorrent {kind} {stem}"
            );
            assert_eq!(
                ours["total_length"], theirs["total_length"],
                "libtorrent {kind} {stem}"
            );
            assert_eq!(
                ours["files"], theirs["files"],
                "libtorrent {kind} {stem}: padding files must not be listed"
            );
            if kind == "v1" {
                assert_eq!(ours["info_hash"], transmission_hash(&lt));
            } else {
                assert_eq!(ours["hybrid"], true);
            }
        }
    }
}

#[test]
fn torrents_from_sta_load_in_transmission_and_libtorrent() {
    if !(require_tool("transmission-show") && require_libtorrent()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (folder, single) = content(dir.path());
    for (src, pl) in [(&folder, "16KiB"), (&single, "auto"), (&single, "64KiB")] {
        let out = dir.path().join(format!(
            "{}-{pl}.torrent",
            src.file_name().unwrap().to_str().unwrap()
        ));
        let created: Value = serde_json::from_str(&run(Command::new(STA)
            .args([
                "create",
                "--json",
                "--piece-length",
                pl,
                "-t",
                "http://127.0.0.1:6969/announce",
                "-t",
                "udp://127.0.0.1:6969",
                "-o",
            ])
            .arg(&out)
            .arg(src)))
        .unwrap();
        assert_eq!(created["info_hash"], transmission_hash(&out));
        let lt = lt_info(&out);
        let ours = sta_info(&out);
        assert_eq!(lt["info_hash"], created["info_hash"]);
        assert_eq!(lt["name"], ours["name"]);
        assert_eq!(lt["total_length"], ours["total_length"]);
        assert_eq!(lt["files"], ours["files"]);
        assert_eq!(lt["num_pieces"], ours["pieces"]);
    }
}

#[test]
fn hostile_torrent_is_refused_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sta-proto/tests/data/hostile/bad_path_dotdot.torrent");
    let out = Command::new(STA)
        .args(["info"])
        .arg(&bad)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsafe file path") && err.contains(".."),
        "{err}"
    );
}
