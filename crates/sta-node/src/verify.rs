//! Checking data on disk against the torrent's piece hashes, on every core:
//! the seeder's start-up check and the recheck of a download without a valid
//! resume file. Missing or short files simply fail their pieces.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use sha1::{Digest, Sha1};

use crate::bitfield::Bitfield;
use crate::storage::Storage;
use crate::types::Geometry;

/// Hashes every piece; returns the ones that match. `progress` counts bytes
/// checked; setting `stop` ends the check early (pieces not reached fail).
pub fn verify_all(
    storage: &Storage,
    hashes: &[[u8; 20]],
    geo: Geometry,
    threads: usize,
    progress: &AtomicU64,
    stop: &AtomicBool,
) -> Bitfield {
    let result = Mutex::new(Bitfield::new(geo.num_pieces));
    let next = AtomicU32::new(0);
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        threads
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; geo.piece_length as usize];
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= geo.num_pieces {
                        break;
                    }
                    let len = geo.piece_len(i) as usize;
                    let ok = storage
                        .read(storage.piece_offset(i), &mut buf[..len])
                        .is_ok()
                        && <[u8; 20]>::from(Sha1::digest(&buf[..len])) == hashes[i as usize];
                    if ok {
                        result.lock().expect("verify result").set(i);
                    }
                    progress.fetch_add(len as u64, Ordering::Relaxed);
                }
            });
        }
    });
    result.into_inner().expect("verify result")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sta_proto::metainfo::build::{TorrentSpec, encode_torrent};

    #[test]
    fn finds_good_bad_and_missing_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let pieces: Vec<[u8; 20]> = data.chunks(16384).map(|c| Sha1::digest(c).into()).collect();
        let spec = TorrentSpec {
            name: "t".into(),
            piece_length: 16384,
            pieces: pieces.clone(),
            files: Some(vec![(vec!["a".into()], 50_000), (vec!["b".into()], 50_000)]),
            ..Default::default()
        };
        let info = sta_proto::metainfo::parse(&encode_torrent(&spec))
            .unwrap()
            .info;
        let st = Storage::new(&info, dir.path()).unwrap();
        let geo = Geometry::new(16384, 100_000);
        // Only file a exists, with one byte changed in piece 1.
        let mut a = data[..50_000].to_vec();
        a[20_000] ^= 1;
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/a"), &a).unwrap();
        let progress = AtomicU64::new(0);
        let have = verify_all(&st, &pieces, geo, 2, &progress, &AtomicBool::new(false));
        // Piece 0 good, piece 1 corrupt, piece 3 spans into missing file b, pieces 2: inside a only? 32768..49152 yes.
        assert_eq!(have.iter_ones().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(progress.load(Ordering::Relaxed), 100_000);
    }
}
