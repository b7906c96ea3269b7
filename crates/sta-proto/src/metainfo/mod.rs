//! `.torrent` files: parsing with every check a hostile file needs, and
//! building (see [`build`]).
//!
//! The info-hash is the SHA-1 of the exact bytes of the `info` value as they
//! stand in the file, borrowed by `bt_bencode` without re-encoding, so unknown
//! keys and non-canonical key order keep the hash every other client computes.
//!
//! Hybrid v1+v2 torrents (BEP 52, as python3-libtorrent makes by default) are
//! read through their v1 fields; their BEP 47 padding files are kept in the
//! file list, marked [`FileEntry::padding`], so the piece layout stays right,
//! and are never created on disk. v2-only torrents are refused.

pub mod build;
mod parse;

pub use parse::parse;

use crate::InfoHash;
use crate::bencode::BencodeError;

/// A `.torrent` larger than this is refused before it is parsed.
pub const MAX_TORRENT_FILE: usize = 64 << 20;
/// Largest piece length accepted (power of two).
pub const MAX_PIECE_LENGTH: u64 = 128 << 20;
/// Smallest piece length accepted (power of two).
pub const MIN_PIECE_LENGTH: u64 = 1 << 10;
/// Most components in one file path, the torrent's name included. Far beyond
/// real torrents' folder depth; it bounds the work per path.
pub const MAX_PATH_COMPONENTS: usize = 128;
/// Longest file path in bytes, the torrent's name and `/` separators included
/// (Linux's `PATH_MAX`): a longer one could not be created on disk anyway.
pub const MAX_PATH_BYTES: usize = 4096;
/// Largest total size accepted: far beyond any real torrent, far below overflow.
pub const MAX_TOTAL_LENGTH: u64 = 1 << 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub info: Info,
    /// Trackers by tier (BEP 12): `announce-list` when present, else `[[announce]]`.
    pub trackers: Vec<Vec<String>>,
    pub creation_date: Option<i64>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    /// BEP 19 `url-list`.
    pub web_seeds: Vec<String>,
    /// The raw bencoded `info` dictionary, as hashed (what BEP 9 serves).
    pub info_bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Suggested name of the file (single-file) or top folder (multi-file).
    pub name: String,
    pub piece_length: u32,
    pub pieces: Vec<[u8; 20]>,
    /// In torrent order; each `path` starts with `name`.
    pub files: Vec<FileEntry>,
    pub private: bool,
    pub total_length: u64,
    pub multi_file: bool,
    /// Has v2 fields too (`meta version` 2); only the v1 view is used.
    pub hybrid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components relative to the download folder, starting with the
    /// torrent's name. Each component is checked: no `..`, `.`, separators,
    /// NUL bytes or empty parts.
    pub path: Vec<String>,
    pub length: u64,
    /// Byte offset of the file in the torrent's concatenated data.
    pub offset: u64,
    /// A BEP 47 padding file: zeros inside a piece, never written to disk.
    pub padding: bool,
}

impl FileEntry {
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

impl Info {
    pub fn num_pieces(&self) -> u32 {
        self.pieces.len() as u32
    }
    /// Length of piece `index` (the last one may be short).
    pub fn piece_len(&self, index: u32) -> u32 {
        let start = u64::from(index) * u64::from(self.piece_length);
        let end = (start + u64::from(self.piece_length)).min(self.total_length);
        end.saturating_sub(start) as u32
    }
    /// Bytes of real content: the total without BEP 47 padding.
    pub fn data_length(&self) -> u64 {
        self.data_files().map(|f| f.length).sum()
    }
    /// Files that hold data (padding files excluded).
    pub fn data_files(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(|f| !f.padding)
    }
}

impl Metainfo {
    /// Magnet link for this torrent (BEP 9 form).
    pub fn magnet(&self) -> crate::magnet::Magnet {
        crate::magnet::Magnet {
            info_hash: self.info_hash,
            display_name: Some(self.info.name.clone()),
            // Each URL once: a tracker listed in two tiers would otherwise
            // appear twice in the link, which `Magnet::parse` reads back deduplicated.
            trackers: self.tracker_urls(),
            peers: Vec::new(),
        }
    }
    /// Every tracker URL once, tier order kept.
    pub fn tracker_urls(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.trackers.iter().flatten() {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// Why a torrent was refused. Each variant names the problem for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    #[error("not a valid torrent file: {0}")]
    Bencode(#[from] BencodeError),
    #[error("torrent file is {0} bytes, over the {MAX_TORRENT_FILE} byte limit")]
    TooLarge(usize),
    #[error("torrent is missing the `{0}` field")]
    Missing(&'static str),
    #[error("torrent field `{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("this is a BitTorrent v2-only torrent; sta reads v1 and hybrid torrents only")]
    V2Only,
    #[error("torrent has both `length` and `files`: cannot tell single-file from multi-file")]
    Ambiguous,
    #[error("`pieces` is {0} bytes, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    #[error("`pieces` holds {got} hashes but {expected} pieces are needed for the total size")]
    PieceCount { expected: u64, got: usize },
    #[error("piece length {0} is not a power of two between 1 KiB and 128 MiB")]
    BadPieceLength(i128),
    #[error("`{field}` is {value}: lengths must be between 0 and 2^50")]
    BadLength { field: &'static str, value: i128 },
    #[error("torrent holds no data (total size 0)")]
    Empty,
    #[error("multi-file torrent lists no files")]
    NoFiles,
    #[error("unsafe file path {path:?}: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("a file path has {components} components, over the {MAX_PATH_COMPONENTS} limit")]
    PathTooDeep { components: usize },
    #[error("a file path is {bytes} bytes long, over the {MAX_PATH_BYTES} byte limit")]
    PathTooLong { bytes: usize },
    #[error("file path {0:?} appears twice (or as both a file and a folder)")]
    DuplicatePath(String),
}
