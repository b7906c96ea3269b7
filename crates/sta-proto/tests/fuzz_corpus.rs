//! Replays the fuzz seed corpus (`fuzz/corpus/<target>/`) and every finding
//! kept in `fuzz/regressions/<target>/` through the very checks the fuzz
//! targets run, so CI guards them without a nightly toolchain or libFuzzer.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        // libFuzzer's temporary files and editors' dotfiles are not inputs.
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// Replays every input of `kind`; returns how many there were.
fn replay(kind: &str, min_files: usize) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut failed = Vec::new();
    let mut total = 0;
    for (target, check) in checks::TARGETS {
        let inputs = files(&root.join(target));
        assert!(
            inputs.len() >= min_files,
            "{kind}/{target} holds {} files, expected at least {min_files}",
            inputs.len()
        );
        for path in inputs {
            let data = std::fs::read(&path).expect("readable corpus file");
            total += 1;
            // One bad file must not hide the others: collect, then report all.
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} inputs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    total
}

#[test]
fn seed_corpus_passes_every_check() {
    assert!(replay("corpus", 3) > 0);
}

#[test]
fn fuzz_findings_stay_fixed() {
    // Targets without findings may have no folder, but a missing or emptied
    // regressions tree (a bad path, a lost checkout) must not pass as
    // "nothing regressed" while the seed corpus is there.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    assert!(
        root.join("corpus").is_dir(),
        "no seed corpus under {}",
        root.display()
    );
    let n = replay("regressions", 0);
    assert!(n > 0, "fuzz/regressions holds no finding to replay");
}

#[test]
fn real_torrent_seeds_are_accepted() {
    // The seeds made by mktorrent, transmission-create and python3-libtorrent
    // must parse, or the metainfo target would start from refusals only.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/metainfo");
    let mut hybrids = 0;
    for tool in ["mktorrent_", "transmission_", "libtorrent_"] {
        let made: Vec<_> = files(&dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(tool))
            })
            .collect();
        assert!(!made.is_empty(), "no seed made by {tool}");
        for path in made {
            let m = sta_proto::metainfo::parse(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            hybrids += usize::from(m.info.hybrid && m.info.files.iter().any(|f| f.padding));
        }
    }
    assert!(hybrids > 0, "no hybrid seed with BEP 47 padding files");
}

/// Finding of the metainfo target (regressions/metainfo/magnet_tracker_in_two_tiers): a
/// tracker in two tiers came out twice in the torrent's magnet link.
#[test]
fn magnet_of_a_torrent_lists_each_tracker_once() {
    let t = b"d8:announce8:http://a13:announce-listll8:http://ael8:http://a8:http://bee\
4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    let m = sta_proto::metainfo::parse(t).unwrap();
    assert_eq!(m.magnet().trackers, ["http://a", "http://b"]);
}

/// Finding of the bencode target (regressions/bencode/bt_bencode_string_length_overflow):
/// bt_bencode 0.8.2 alone panics on a string length near `usize::MAX`; the
/// pre-scan in `bencode::decode` must keep refusing it first.
#[test]
fn string_length_near_usize_max_never_reaches_bt_bencode() {
    use sta_proto::bencode::{BencodeError, Value, decode};
    let input = b"l18446744073709551611:ae";
    assert!(matches!(
        decode::<Value>(input),
        Err(BencodeError::Truncated(_))
    ));
    assert!(sta_proto::metainfo::parse(input).is_err());
}

/// Found by the metainfo target's round-trip check while reviewing it
/// (regressions/metainfo/empty_web_seed_in_list): `url-list` as a list kept
/// empty URLs that the lone-string form drops.
#[test]
fn empty_web_seed_urls_are_dropped_in_either_form() {
    for t in [
        &b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae8:url-listl0:8:http://wee"[..],
        b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae8:url-list0:e",
    ] {
        let m = sta_proto::metainfo::parse(t).unwrap();
        assert!(m.web_seeds.iter().all(|w| !w.is_empty()), "{:?}", m.web_seeds);
    }
}
