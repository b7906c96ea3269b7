//! `sta create` and `sta info` as a user runs them: the flags reach the
//! torrent, the overwrite and hidden-file rules hold, and odd or hostile
//! input (absurd dates, huge files, devices) gives a message, never a panic
//! or an unbounded read.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sta_testkit::files::random_file;
use sta_testkit::proc::Proc;

const STA: &str = env!("CARGO_BIN_EXE_sta");

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sta ARGS` in `dir` and waits for it, at most 60 s.
fn sta(dir: &Path, args: &[&str]) -> Out {
    let logs = dir.join("logs");
    let n = std::fs::read_dir(&logs).map_or(0, |d| d.count());
    let name = format!("sta-{n}");
    let mut cmd = std::process::Command::new(STA);
    cmd.args(args).current_dir(dir);
    let mut p = Proc::spawn_with(&name, &mut cmd, &logs).expect("spawn sta");
    let st = p
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("sta {args:?}: {e}"));
    Out {
        code: st.code(),
        stdout: p.seen.join("\n"),
        stderr: std::fs::read_to_string(&p.stderr_path).unwrap_or_default(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = sta(dir, args);
    assert_eq!(o.code, Some(0), "sta {args:?} failed: {}", o.stderr);
    o.stdout
}

fn info_json(dir: &Path, torrent: &str) -> Value {
    serde_json::from_str(&ok(dir, &["info", "--json", torrent])).expect("one JSON object")
}

/// A minimal single-file torrent with the given top-level `creation date`.
fn torrent_with_date(date: &str) -> Vec<u8> {
    format!(
        "d13:creation datei{date}e4:infod6:lengthi1e4:name1:x\
         12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"
    )
    .into_bytes()
}

#[test]
fn info_shows_an_impossible_creation_date_as_its_number() {
    let dir = tempfile::tempdir().unwrap();
    // Year 9999 is the last the date formatter covers; these lie past it,
    // at the end of i64 and before 1970.
    for date in ["253402300800", "9223372036854775807", "-1", "-86400000000"] {
        std::fs::write(dir.path().join("t.torrent"), torrent_with_date(date)).unwrap();
        let text = ok(dir.path(), &["info", "t.torrent"]);
        let line = text
            .lines()
            .find(|l| l.starts_with("created "))
            .unwrap_or_else(|| panic!("no created line:\n{text}"));
        assert!(
            line.contains(date) && line.contains("not a date"),
            "{date}: {line}"
        );
        assert!(text.contains("magnet "), "output stopped early:\n{text}");
        // Scripts get the raw number, as stored.
        let v = info_json(dir.path(), "t.torrent");
        assert_eq!(v["creation_date"].to_string(), date);
    }
    // A real date still reads as one.
    std::fs::write(
        dir.path().join("t.torrent"),
        torrent_with_date("1700000000"),
    )
    .unwrap();
    let text = ok(dir.path(), &["info", "t.torrent"]);
    assert!(text.contains("created     2023-11-14T22:13:20Z"), "{text}");
}

#[test]
fn info_and_publish_refuse_an_oversized_file_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: 1 TiB on paper, no blocks on disk. Reading it whole would take
    // all memory; the size check must come first.
    let big = dir.path().join("big.torrent");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    for args in [
        &["info", "big.torrent"][..],
        &[
            "publish",
            "big.torrent",
            "-t",
            "http://127.0.0.1:9/announce",
        ],
    ] {
        let o = sta(dir.path(), args);
        assert_eq!(o.code, Some(1), "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("1099511627776 bytes") && o.stderr.contains("limit for a .torrent"),
            "{args:?}: {}",
            o.stderr
        );
    }
    // A device has no size to check: the bounded read stops it.
    let o = sta(dir.path(), &["info", "/dev/zero"]);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("/dev/zero: it holds more than")
            && o.stderr.contains("limit for a .torrent"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
}

#[test]
fn info_reads_a_magnet_link_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let hex = "0123456789abcdef0123456789abcdef01234567";
    let magnet = format!(
        "magnet:?xt=urn:btih:{hex}&dn=some%20name&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce\
         &tr=udp%3A%2F%2F127.0.0.1%3A6969&x.pe=127.0.0.5%3A6881"
    );
    let text = ok(dir.path(), &["info", &magnet]);
    for want in [
        format!("info-hash  {hex}"),
        "name       some name".into(),
        "tracker    http://127.0.0.1:6969/announce".into(),
        "tracker    udp://127.0.0.1:6969".into(),
        "peer       127.0.0.5:6881".into(),
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "no line {want:?} in:\n{text}"
        );
    }
    let v: Value = serde_json::from_str(&ok(dir.path(), &["info", "--json", &magnet])).unwrap();
    assert_eq!(v["info_hash"], hex);
    assert_eq!(v["name"], "some name");
    assert_eq!(
        v["trackers"],
        serde_json::json!(["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"])
    );
    assert_eq!(v["peers"], serde_json::json!(["127.0.0.5:6881"]));
    // Its own link reads back to the same torrent.
    let again: Value = serde_json::from_str(&ok(
        dir.path(),
        &["info", "--json", v["magnet"].as_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(again, v);
    // A broken one is refused, naming the problem.
    let o = sta(dir.path(), &["info", "magnet:?xt=urn:btih:xyz"]);
    assert_eq!(o.code, Some(1), "{}", o.stdout);
    assert!(
        o.stderr.to_lowercase().contains("info-hash") || o.stderr.contains("btih"),
        "{}",
        o.stderr
    );
}

#[test]
fn create_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    random_file(&dir.path().join("a.bin"), 50_000, 1).unwrap();
    std::fs::write(dir.path().join("a.bin.torrent"), b"keep me").unwrap();
    let o = sta(dir.path(), &["create", "a.bin"]);
    assert_eq!(o.code, Some(1), "{}", o.stdout);
    assert!(
        o.stderr
            .contains("a.bin.torrent already exists; pass --force to overwrite it"),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read(dir.path().join("a.bin.torrent")).unwrap(),
        b"keep me"
    );
    ok(dir.path(), &["create", "--force", "a.bin"]);
    assert_eq!(info_json(dir.path(), "a.bin.torrent")["name"], "a.bin");
}

#[test]
fn create_stores_private_comment_and_web_seeds_and_says_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    random_file(&dir.path().join("a.bin"), 50_000, 2).unwrap();
    let text = ok(
        dir.path(),
        &[
            "create",
            "a.bin",
            "--private",
            "--comment",
            "a test comment",
            "--web-seed",
            "http://127.0.0.1:9/a.bin",
            "--web-seed",
            "http://127.0.0.2:9/a.bin",
            "-t",
            "http://127.0.0.1:6969/announce",
            "-o",
            "out.torrent",
        ],
    );
    let v = info_json(dir.path(), "out.torrent");
    assert_eq!(v["private"], true);
    assert_eq!(v["comment"], "a test comment");
    assert_eq!(
        v["web_seeds"],
        serde_json::json!(["http://127.0.0.1:9/a.bin", "http://127.0.0.2:9/a.bin"])
    );
    let hex = v["info_hash"].as_str().unwrap();
    // The human output names the info-hash and the magnet link.
    assert!(
        text.lines().any(|l| l == format!("info-hash  {hex}")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("magnet     {}", v["magnet"].as_str().unwrap())),
        "{text}"
    );
    assert!(
        v["magnet"]
            .as_str()
            .unwrap()
            .contains(&format!("xt=urn:btih:{hex}"))
    );
    // Without the flags: not private, no comment, no web seeds.
    ok(dir.path(), &["create", "a.bin", "-o", "plain.torrent"]);
    let p = info_json(dir.path(), "plain.torrent");
    assert_eq!(p["private"], false);
    assert_eq!(p["comment"], Value::Null);
    assert_eq!(p["web_seeds"], serde_json::json!([]));
}

#[test]
fn create_leaves_hidden_files_out_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("folder");
    random_file(&f.join("seen.bin"), 1_000, 3).unwrap();
    random_file(&f.join(".hidden.bin"), 1_000, 4).unwrap();
    random_file(&f.join(".git/config"), 1_000, 5).unwrap();
    random_file(&f.join("sub/also.bin"), 1_000, 6).unwrap();
    let o = sta(dir.path(), &["create", "folder", "-o", "plain.torrent"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    // Each skipped entry is named on stderr.
    for skipped in [".hidden.bin", ".git"] {
        assert!(
            o.stderr
                .lines()
                .any(|l| l.starts_with("skipped ") && l.contains(skipped) && l.contains("hidden")),
            "{skipped} not reported: {}",
            o.stderr
        );
    }
    let files = |t: &str| -> Vec<String> {
        info_json(dir.path(), t)["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        files("plain.torrent"),
        ["folder/seen.bin", "folder/sub/also.bin"]
    );
    ok(
        dir.path(),
        &["create", "folder", "--include-hidden", "-o", "all.torrent"],
    );
    assert_eq!(
        files("all.torrent"),
        [
            "folder/.git/config",
            "folder/.hidden.bin",
            "folder/seen.bin",
            "folder/sub/also.bin"
        ]
    );
}
