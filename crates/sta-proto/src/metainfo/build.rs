//! Building `.torrent` bytes from hashed content (hashing itself is I/O and
//! lives in `sta-node`). Output is canonical bencode: keys sorted, so other
//! clients compute the same info-hash we do.

use std::collections::BTreeMap;

use bt_bencode::{ByteString, Value};

/// What goes into a new torrent.
#[derive(Debug, Clone, Default)]
pub struct TorrentSpec {
    pub name: String,
    pub piece_length: u32,
    pub pieces: Vec<[u8; 20]>,
    /// `None` for a single-file torrent of `single_length` bytes; otherwise
    /// each file's path below the top folder and its length.
    pub files: Option<Vec<(Vec<String>, u64)>>,
    pub single_length: u64,
    pub private: bool,
    /// Tiers of tracker URLs; the first URL becomes `announce`.
    pub trackers: Vec<Vec<String>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    pub web_seeds: Vec<String>,
}

/// Picks a power-of-two piece length for `total` bytes aiming at 1000–2000
/// pieces, between 16 KiB and 16 MiB.
pub fn auto_piece_length(total: u64) -> u32 {
    let want = total.div_ceil(2000).max(1).next_power_of_two();
    want.clamp(16 << 10, 16 << 20) as u32
}

fn s(v: &str) -> Value {
    Value::ByteStr(ByteString::from(v.as_bytes().to_vec()))
}

fn key(k: &str) -> ByteString {
    ByteString::from(k.as_bytes().to_vec())
}

/// The bencoded `info` dictionary.
pub fn encode_info(spec: &TorrentSpec) -> Vec<u8> {
    let mut info = BTreeMap::new();
    info.insert(key("name"), s(&spec.name));
    info.insert(key("piece length"), Value::from(spec.piece_length));
    info.insert(
        key("pieces"),
        Value::ByteStr(ByteString::from(spec.pieces.concat())),
    );
    if spec.private {
        info.insert(key("private"), Value::from(1u8));
    }
    match &spec.files {
        None => {
            info.insert(key("length"), Value::from(spec.single_length));
        }
        Some(files) => {
            let list = files
                .iter()
                .map(|(path, len)| {
                    let mut f = BTreeMap::new();
                    f.insert(key("length"), Value::from(*len));
                    f.insert(
                        key("path"),
                        Value::List(path.iter().map(|c| s(c)).collect()),
                    );
                    Value::Dict(f)
                })
                .collect();
            info.insert(key("files"), Value::List(list));
        }
    }
    crate::bencode::encode(&Value::Dict(info))
}

/// The whole `.torrent` file.
pub fn encode_torrent(spec: &TorrentSpec) -> Vec<u8> {
    let mut top = BTreeMap::new();
    if let Some(first) = spec.trackers.iter().flatten().next() {
        top.insert(key("announce"), s(first));
    }
    if spec.trackers.iter().flatten().count() > 1 {
        let tiers = spec
            .trackers
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| Value::List(t.iter().map(|u| s(u)).collect()))
            .collect();
        top.insert(key("announce-list"), Value::List(tiers));
    }
    if let Some(c) = &spec.comment {
        top.insert(key("comment"), s(c));
    }
    if let Some(c) = &spec.created_by {
        top.insert(key("created by"), s(c));
    }
    if let Some(d) = spec.creation_date {
        top.insert(key("creation date"), Value::from(d));
    }
    match spec.web_seeds.as_slice() {
        [] => {}
        [one] => {
            top.insert(key("url-list"), s(one));
        }
        many => {
            top.insert(
                key("url-list"),
                Value::List(many.iter().map(|u| s(u)).collect()),
            );
        }
    }
    // Splice the info bytes in as a raw value: identical to what encode_info hashes.
    let info = encode_info(spec);
    let mut out = Vec::with_capacity(info.len() + 256);
    out.push(b'd');
    let mut inserted = false;
    for (k, v) in &top {
        if !inserted && k.as_slice() > &b"info"[..] {
            push_key(&mut out, b"info");
            out.extend_from_slice(&info);
            inserted = true;
        }
        push_key(&mut out, k.as_slice());
        out.extend_from_slice(&crate::bencode::encode(v));
    }
    if !inserted {
        push_key(&mut out, b"info");
        out.extend_from_slice(&info);
    }
    out.push(b'e');
    out
}

fn push_key(out: &mut Vec<u8>, k: &[u8]) {
    out.extend_from_slice(k.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(k);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::{MetainfoError, parse};
    use proptest::prelude::*;
    use sha1::{Digest, Sha1};

    fn spec_single(len: u64, pl: u32) -> TorrentSpec {
        TorrentSpec {
            name: "a.bin".into(),
            piece_length: pl,
            pieces: vec![[7; 20]; len.div_ceil(u64::from(pl)) as usize],
            single_length: len,
            trackers: vec![
                vec!["http://t1/announce".into()],
                vec!["udp://t2:6969".into(), "http://t3/a".into()],
            ],
            comment: Some("hello".into()),
            created_by: Some("sta test".into()),
            creation_date: Some(1_700_000_000),
            web_seeds: vec!["http://ws/".into()],
            private: true,
            files: None,
        }
    }

    #[test]
    fn single_file_round_trip() {
        let spec = spec_single(100_000, 16384);
        let bytes = encode_torrent(&spec);
        let m = parse(&bytes).unwrap();
        assert_eq!(
            m.info_hash.0,
            <[u8; 20]>::from(Sha1::digest(encode_info(&spec)))
        );
        assert_eq!(m.info.total_length, 100_000);
        assert_eq!(m.info.num_pieces(), 7);
        assert_eq!(m.info.piece_len(6), 100_000 - 6 * 16384);
        assert!(m.info.private);
        assert_eq!(m.trackers, spec.trackers);
        assert_eq!(m.comment.as_deref(), Some("hello"));
        assert_eq!(m.web_seeds, vec!["http://ws/".to_string()]);
        assert!(!m.info.multi_file);
        assert_eq!(m.info.files[0].path, vec!["a.bin".to_string()]);
    }

    #[test]
    fn auto_piece_length_aims_at_1000_to_2000_pieces() {
        for total in [1u64 << 26, 1 << 28, 1 << 30, 5 << 30, 1 << 34] {
            let pl = auto_piece_length(total);
            let n = total.div_ceil(u64::from(pl));
            assert!((1000..=2000).contains(&n), "{total}: {pl} gives {n}");
        }
        assert_eq!(auto_piece_length(10), 16 << 10);
        assert_eq!(auto_piece_length(1 << 50), 16 << 20);
    }

    #[test]
    fn unknown_keys_and_unsorted_order_keep_the_original_hash() {
        // info keys out of order plus an unknown key: we must hash these bytes as they are.
        let info = b"d4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa6:lengthi5e7:x-extrai1ee";
        let mut file = b"d4:info".to_vec();
        file.extend_from_slice(info);
        file.push(b'e');
        let m = parse(&file).unwrap();
        assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(info)));
        assert_eq!(m.info_bytes, info.to_vec());
    }

    #[test]
    fn multi_file_with_zero_length_and_nesting() {
        let files = vec![
            (vec!["dir".into(), "sub".into(), "a".into()], 40_000),
            (vec!["empty".into()], 0),
            (vec!["z".into()], 1),
        ];
        let spec = TorrentSpec {
            name: "top".into(),
            piece_length: 16384,
            pieces: vec![[0; 20]; 3],
            files: Some(files),
            ..Default::default()
        };
        let m = parse(&encode_torrent(&spec)).unwrap();
        assert!(m.info.multi_file);
        assert_eq!(m.info.total_length, 40_001);
        let paths: Vec<_> = m
            .info
            .files
            .iter()
            .map(|f| (f.display_path(), f.offset))
            .collect();
        assert_eq!(
            paths,
            [
                ("top/dir/sub/a".into(), 0),
                ("top/empty".into(), 40_000),
                ("top/z".to_string(), 40_000)
            ]
        );
        assert!(m.trackers.is_empty());
    }

    #[test]
    fn duplicate_and_file_folder_clash() {
        for files in [
            vec![(vec!["a".to_string()], 1u64), (vec!["a".to_string()], 1)],
            vec![
                (vec!["a".to_string()], 1),
                (vec!["a".to_string(), "b".to_string()], 1),
            ],
            vec![
                (vec!["a".to_string(), "b".to_string()], 1),
                (vec!["a".to_string()], 1),
            ],
        ] {
            let spec = TorrentSpec {
                name: "t".into(),
                piece_length: 16384,
                pieces: vec![[0; 20]],
                files: Some(files),
                ..Default::default()
            };
            assert!(matches!(
                parse(&encode_torrent(&spec)),
                Err(MetainfoError::DuplicatePath(_))
            ));
        }
    }

    proptest! {
        #[test]
        fn create_then_parse_gives_back_files_and_hashes(
            lens in proptest::collection::vec(0u64..70_000, 1..6),
            pl_shift in 14u32..17,
        ) {
            let pl = 1u32 << pl_shift;
            let total: u64 = lens.iter().sum();
            prop_assume!(total > 0);
            let n = total.div_ceil(u64::from(pl)) as usize;
            let pieces: Vec<[u8; 20]> = (0..n).map(|i| [i as u8; 20]).collect();
            let files: Vec<(Vec<String>, u64)> = lens.iter().enumerate().map(|(i, l)| (vec![format!("d{}", i % 2), format!("f{i}")], *l)).collect();
            let spec = TorrentSpec { name: "p".into(), piece_length: pl, pieces: pieces.clone(), files: Some(files.clone()), ..Default::default() };
            let m = parse(&encode_torrent(&spec)).unwrap();
            prop_assert_eq!(&m.info.pieces, &pieces);
            prop_assert_eq!(m.info.total_length, total);
            let back: Vec<(Vec<String>, u64)> = m.info.files.iter().map(|f| (f.path[1..].to_vec(), f.length)).collect();
            prop_assert_eq!(back, files);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
