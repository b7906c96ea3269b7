//! `metainfo`: [`parse`](sta_proto::metainfo::parse) on arbitrary bytes; an
//! accepted torrent must hold together (pieces cover the total, files tile
//! it, paths are safe, the hash is of the borrowed `info` bytes) and must
//! survive being written again by `metainfo::build`.

use sha1::{Digest, Sha1};
use sta_proto::bencode::{self, MAX_DEPTH};
use sta_proto::magnet::Magnet;
use sta_proto::metainfo::build::{TorrentSpec, encode_torrent};
use sta_proto::metainfo::{MAX_PIECE_LENGTH, MAX_TOTAL_LENGTH, MIN_PIECE_LENGTH, Metainfo, parse};

pub fn check(data: &[u8]) {
    let Ok(m) = parse(data) else { return };
    invariants(&m);
    assert_eq!(
        m.info_hash.0,
        <[u8; 20]>::from(Sha1::digest(&m.info_bytes)),
        "info-hash is not the SHA-1 of info_bytes"
    );
    bencode::check(&m.info_bytes, MAX_DEPTH).expect("info_bytes is one bencoded value");

    // The magnet link we print for it reads back the same.
    let magnet = m.magnet();
    let back = Magnet::parse(&magnet.to_uri()).expect("our own magnet link parses");
    assert_eq!(back, magnet, "magnet round trip");

    // Written again (padding files cannot be expressed by the builder, whose
    // `attr`-less copies would then clash as duplicates), it reads the same.
    if m.info.files.iter().any(|f| f.padding) {
        return;
    }
    let again = parse(&encode_torrent(&spec(&m))).expect("re-encoded torrent parses");
    let mut want = m.info.clone();
    want.hybrid = false; // `meta version` is not written back
    assert_eq!(again.info, want, "info round trip");
    assert_eq!(again.trackers, m.trackers, "tracker tiers round trip");
    assert_eq!(again.web_seeds, m.web_seeds, "web seeds round trip");
    assert_eq!(
        (&again.comment, &again.created_by, again.creation_date),
        (&m.comment, &m.created_by, m.creation_date),
        "optional fields round trip"
    );
}

fn invariants(m: &Metainfo) {
    let i = &m.info;
    let pl = u64::from(i.piece_length);
    assert!(pl.is_power_of_two() && (MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&pl));
    assert!(i.total_length > 0 && i.total_length <= MAX_TOTAL_LENGTH);
    assert_eq!(
        i.pieces.len() as u64,
        i.total_length.div_ceil(pl),
        "piece count"
    );
    let last = i.num_pieces() - 1;
    assert!(
        (1..=i.piece_length).contains(&i.piece_len(last)),
        "last piece length"
    );
    assert_eq!(i.piece_len(i.num_pieces()), 0, "piece past the end");

    // Files tile the torrent's data in order, from 0 to total_length.
    let mut offset = 0u64;
    for f in &i.files {
        assert_eq!(f.offset, offset, "file offsets are contiguous");
        offset += f.length;
        assert_eq!(f.path.first(), Some(&i.name), "path starts with the name");
        assert!(i.multi_file || f.path.len() == 1);
        for c in &f.path {
            let safe = !c.is_empty()
                && c != "."
                && c != ".."
                && !c.contains(['/', '\\', '\0'])
                && c.len() <= 255;
            assert!(safe, "unsafe path component {c:?}");
        }
    }
    assert_eq!(offset, i.total_length, "files sum to the total");
    assert_eq!(
        i.data_length(),
        i.data_files().map(|f| f.length).sum::<u64>()
    );

    let mut seen = std::collections::HashSet::new();
    for f in i.data_files() {
        assert!(seen.insert(&f.path), "duplicate path {:?}", f.path);
    }
}

/// What `sta create` would need to write this torrent again.
fn spec(m: &Metainfo) -> TorrentSpec {
    let i = &m.info;
    TorrentSpec {
        name: i.name.clone(),
        piece_length: i.piece_length,
        pieces: i.pieces.clone(),
        files: i.multi_file.then(|| {
            i.files
                .iter()
                .map(|f| (f.path[1..].to_vec(), f.length))
                .collect()
        }),
        single_length: i.total_length,
        private: i.private,
        trackers: m.trackers.clone(),
        comment: m.comment.clone(),
        created_by: m.created_by.clone(),
        creation_date: m.creation_date,
        web_seeds: m.web_seeds.clone(),
    }
}
