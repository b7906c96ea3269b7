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

/// What transmission-show 3.00 prints of a torrent, read back.
#[derive(Debug)]
struct Shown {
    name: String,
    hash: String,
    piece_count: u64,
    total: String,
    private: bool,
    tiers: Vec<Vec<String>>,
    /// (path, size as printed)
    files: Vec<(String, String)>,
}

fn transmission_show(torrent: &Path) -> Shown {
    let out = run(Command::new("transmission-show").arg(torrent));
    let field = |key: &str| {
        out.lines()
            .filter(|l| l.starts_with("  "))
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} line in transmission-show output:\n{out}"))
            .trim()
            .to_owned()
    };
    let section = |name: &str| -> Vec<String> {
        out.lines()
            .skip_while(|l| *l != name)
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .map(|l| l.trim().to_owned())
            .collect()
    };
    let mut tiers: Vec<Vec<String>> = Vec::new();
    for l in section("TRACKERS") {
        if l.starts_with("Tier #") {
            tiers.push(Vec::new());
        } else if !l.is_empty() {
            tiers.last_mut().expect("a tier before its URLs").push(l);
        }
    }
    let files = section("FILES")
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (path, size) = l.rsplit_once(" (").expect("PATH (SIZE)");
            (path.to_owned(), size.trim_end_matches(')').to_owned())
        })
        .collect();
    Shown {
        name: field("Name:"),
        hash: field("Hash:"),
        piece_count: field("Piece Count:").parse().unwrap(),
        total: field("Total Size:"),
        private: field("Privacy:") == "Private torrent",
        tiers,
        files,
    }
}

/// True when transmission's rounded size (SI units, "70.00 kB") can be
/// `bytes`: within half a unit of its last printed digit.
fn shows_size(printed: &str, bytes: u64) -> bool {
    let (num, unit) = printed.split_once(' ').expect("NUMBER UNIT");
    let scale = match unit {
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => panic!("unknown unit in {printed:?}"),
    };
    let decimals = num.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let value: f64 = num.parse().expect("a number");
    (bytes as f64 / scale - value).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-9
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
    for (src, pl, private) in [
        (&folder, "16KiB", false),
        (&single, "auto", false),
        (&single, "64KiB", true),
    ] {
        let out = dir.path().join(format!(
            "{}-{pl}.torrent",
            src.file_name().unwrap().to_str().unwrap()
        ));
        let mut create = Command::new(STA);
        create.args([
            "create",
            "--json",
            "--piece-length",
            pl,
            "-t",
            "http://127.0.0.1:6969/announce",
            "-t",
            "udp://127.0.0.1:6969",
        ]);
        if private {
            create.arg("--private");
        }
        let created: Value =
            serde_json::from_str(&run(create.arg("-o").arg(&out).arg(src))).unwrap();
        let ours = sta_info(&out);
        // transmission-show reads the same torrent: hash, name, pieces,
        // privacy, tiers, and every file with its size (it prints sizes
        // rounded, so each must be within its rounding of the exact one).
        let shown = transmission_show(&out);
        assert_eq!(shown.hash, created["info_hash"].as_str().unwrap());
        assert_eq!(shown.name, ours["name"].as_str().unwrap());
        assert_eq!(shown.piece_count, ours["pieces"].as_u64().unwrap());
        assert_eq!(shown.private, private);
        assert_eq!(
            shown.tiers,
            [["http://127.0.0.1:6969/announce"], ["udp://127.0.0.1:6969"]]
        );
        let total = ours["total_length"].as_u64().unwrap();
        assert!(
            shows_size(&shown.total, total),
            "total {total} shown as {}",
            shown.total
        );
        let files: Vec<(String, u64)> = ours["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_owned(),
                    f["length"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shown
                .files
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>(),
            files.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            "file list and order"
        );
        for ((path, printed), (_, len)) in shown.files.iter().zip(&files) {
            assert!(
                shows_size(printed, *len),
                "{path}: {len} shown as {printed}"
            );
        }
        let lt = lt_info(&out);
        assert_eq!(lt["info_hash"], created["info_hash"]);
        assert_eq!(lt["name"], ours["name"]);
        assert_eq!(lt["total_length"], ours["total_length"]);
        assert_eq!(lt["files"], ours["files"]);
        assert_eq!(lt["num_pieces"], ours["pieces"]);
    }
}

#[test]
fn transmission_sizes_are_read_within_their_rounding() {
    assert!(shows_size("70.00 kB", 70_001));
    assert!(shows_size("0.00 kB", 3));
    assert!(shows_size("1.00 MB", 1_000_003));
    assert!(!shows_size("70.00 kB", 70_100));
    assert!(!shows_size("1.00 MB", 1_010_000));
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
