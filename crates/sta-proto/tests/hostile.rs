//! The hostile-torrent corpus (tests/data/hostile, made by gen.py): every file
//! is refused, with the error kind its name announces, and nothing panics.

use sta_proto::bencode::BencodeError;
use sta_proto::metainfo::{MetainfoError as E, parse};

fn expected(name: &str, e: &E) -> bool {
    match name {
        "bencode_too_deep" => matches!(e, E::Bencode(BencodeError::TooDeep)),
        "bencode_trailing_garbage" => matches!(e, E::Bencode(BencodeError::Trailing(_))),
        // The declared length runs past the end: refused by the pre-scan
        // before any allocation of that size.
        "bencode_huge_string_length" => matches!(e, E::Bencode(BencodeError::Truncated(_))),
        "bencode_invalid" => matches!(e, E::Bencode(BencodeError::Invalid(_, _))),
        "bencode_truncated" => matches!(e, E::Bencode(BencodeError::Truncated(_))),
        "missing_info" => matches!(e, E::Missing("info")),
        "missing_name" => matches!(e, E::Missing("name")),
        "wrong_type_info" => matches!(e, E::WrongType("info")),
        "pieces_not_multiple_of_20" => matches!(e, E::PiecesNotMultipleOf20(39)),
        "piece_count_mismatch" => matches!(
            e,
            E::PieceCount {
                expected: 2,
                got: 3
            }
        ),
        n if n.starts_with("bad_length_") => matches!(e, E::BadLength { .. }),
        "empty_total_zero" => matches!(e, E::Empty),
        n if n.starts_with("bad_piece_length_") => matches!(e, E::BadPieceLength(_)),
        n if n.starts_with("bad_path_") => matches!(e, E::BadPath { .. }),
        n if n.starts_with("duplicate_path") => matches!(e, E::DuplicatePath(_)),
        "path_too_deep" => matches!(e, E::PathTooDeep { components: 50_001 }),
        "path_too_long" => matches!(e, E::PathTooLong { bytes: 5_123 }),
        "no_files" => matches!(e, E::NoFiles),
        "ambiguous_length_and_files" => matches!(e, E::Ambiguous),
        "v2_only" => matches!(e, E::V2Only),
        other => panic!("no expectation for corpus file {other}"),
    }
}

#[test]
fn every_hostile_torrent_is_refused_with_its_error_kind() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "torrent") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        match parse(&bytes) {
            Ok(m) => panic!("{name} was accepted: {m:?}"),
            Err(e) => {
                assert!(expected(&name, &e), "{name}: got {e:?} ({e})");
                // The message names the problem in words.
                assert!(e.to_string().len() > 10);
            }
        }
        n += 1;
    }
    assert!(n >= 31, "corpus has only {n} files");
}
