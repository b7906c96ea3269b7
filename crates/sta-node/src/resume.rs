//! Resume files: which pieces are verified, and the size and modification
//! time of every file when that was recorded. On restart, if every file still
//! matches, the pieces are trusted without hashing; otherwise the torrent is
//! rechecked. Written to a temporary file, fsynced and renamed, so a crash
//! leaves either the old file or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sta_proto::InfoHash;

use crate::bitfield::Bitfield;

const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeData {
    pub version: u32,
    pub info_hash: String,
    pub num_pieces: u32,
    /// The verified-pieces bitfield, hex.
    pub have: String,
    /// Per file: (size, mtime in ns since the epoch), or null when missing.
    pub stamps: Vec<Option<(u64, i64)>>,
    pub uploaded: u64,
    pub downloaded: u64,
}

impl ResumeData {
    pub fn new(
        info_hash: InfoHash,
        have: &Bitfield,
        stamps: &[Option<(u64, i128)>],
        uploaded: u64,
        downloaded: u64,
    ) -> Self {
        ResumeData {
            version: VERSION,
            info_hash: info_hash.to_hex(),
            num_pieces: have.len(),
            have: data_encoding::HEXLOWER.encode(&have.to_wire()),
            stamps: stamps
                .iter()
                .map(|s| s.map(|(len, ns)| (len, ns as i64)))
                .collect(),
            uploaded,
            downloaded,
        }
    }

    /// The bitfield, if this record is for `info_hash` and the files still
    /// carry the recorded sizes and times.
    pub fn trusted_have(
        &self,
        info_hash: InfoHash,
        num_pieces: u32,
        stamps: &[Option<(u64, i128)>],
    ) -> Option<Bitfield> {
        if self.version != VERSION
            || self.info_hash != info_hash.to_hex()
            || self.num_pieces != num_pieces
        {
            return None;
        }
        let now: Vec<Option<(u64, i64)>> = stamps
            .iter()
            .map(|s| s.map(|(len, ns)| (len, ns as i64)))
            .collect();
        if now != self.stamps {
            return None;
        }
        let bytes = data_encoding::HEXLOWER.decode(self.have.as_bytes()).ok()?;
        Bitfield::from_wire(&bytes, num_pieces).ok()
    }
}

pub fn path(state_dir: &Path, info_hash: InfoHash) -> PathBuf {
    state_dir.join(format!("{}.resume", info_hash.to_hex()))
}

pub fn load(path: &Path) -> Option<ResumeData> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable resume file");
            None
        }
    }
}

pub fn save(path: &Path, data: &ResumeData) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("resume.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(data).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_only_when_files_match() {
        let dir = tempfile::tempdir().unwrap();
        let h = InfoHash([1; 20]);
        let mut have = Bitfield::new(10);
        have.set(3);
        let stamps = vec![Some((100u64, 5i128)), None];
        let p = path(dir.path(), h);
        save(&p, &ResumeData::new(h, &have, &stamps, 7, 8)).unwrap();
        let d = load(&p).unwrap();
        assert_eq!(d.trusted_have(h, 10, &stamps), Some(have));
        assert_eq!(
            d.trusted_have(h, 10, &[Some((100, 6)), None]),
            None,
            "mtime changed"
        );
        assert_eq!(
            d.trusted_have(h, 10, &[Some((101, 5)), None]),
            None,
            "size changed"
        );
        assert_eq!(d.trusted_have(InfoHash([2; 20]), 10, &stamps), None);
        std::fs::write(&p, b"{garbage").unwrap();
        assert!(load(&p).is_none());
    }
}
