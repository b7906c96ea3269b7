//! Making a torrent from files on disk: walk the content in a fixed order,
//! read it with large sequential reads and hash pieces on every core.
//!
//! Rules for what goes in (documented in the README):
//! - files are ordered by their path, compared byte by byte, so the same
//!   folder always gives the same torrent;
//! - hidden entries (names starting with `.`) are left out unless
//!   `include_hidden` is set;
//! - symbolic links are never followed and never included (a link could point
//!   outside the folder, or make a loop); each one skipped is reported.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use sha1::{Digest, Sha1};
use sta_proto::metainfo::build::{TorrentSpec, auto_piece_length, encode_torrent};
use sta_proto::metainfo::{self, MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, Metainfo};

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `None` picks one with [`auto_piece_length`].
    pub piece_length: Option<u32>,
    pub include_hidden: bool,
    pub trackers: Vec<Vec<String>>,
    pub private: bool,
    pub comment: Option<String>,
    pub web_seeds: Vec<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
    /// Hashing threads; 0 means one per core.
    pub threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no data to share (no files, or only empty ones)")]
    Empty(PathBuf),
    #[error("piece length {0} must be a power of two from 1 KiB to 128 MiB")]
    PieceLength(u64),
    #[error("file name {0:?} is not valid UTF-8; rename it to share it")]
    NotUtf8(PathBuf),
    #[error("{path} changed size while it was being hashed")]
    Changed { path: PathBuf },
    #[error("the new torrent failed its own checks: {0}")]
    Invalid(#[from] metainfo::MetainfoError),
}

/// One file of the content, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentFile {
    /// Components below the top folder (empty for a single-file torrent).
    pub rel: Vec<String>,
    pub path: PathBuf,
    pub length: u64,
}

#[derive(Debug, Clone)]
pub struct Content {
    pub name: String,
    pub single_file: bool,
    pub files: Vec<ContentFile>,
    /// Entries left out and why (symlinks, hidden files).
    pub skipped: Vec<(PathBuf, &'static str)>,
}

impl Content {
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn utf8_name(p: &Path) -> Result<String, CreateError> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| CreateError::NotUtf8(p.to_owned()))
}

/// Lists what a torrent of `path` holds, applying the rules above.
pub fn scan(path: &Path, include_hidden: bool) -> Result<Content, CreateError> {
    let path = std::path::absolute(path).map_err(io_err(path))?;
    let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
    let name = utf8_name(&path)?;
    if meta.file_type().is_symlink() {
        // The top-level argument itself is the user's explicit choice: follow it.
        let target = std::fs::metadata(&path).map_err(io_err(&path))?;
        if target.is_file() {
            let files = vec![ContentFile {
                rel: vec![],
                path: path.clone(),
                length: target.len(),
            }];
            return Ok(Content {
                name,
                single_file: true,
                files,
                skipped: vec![],
            });
        }
    } else if meta.is_file() {
        let files = vec![ContentFile {
            rel: vec![],
            path: path.clone(),
            length: meta.len(),
        }];
        return Ok(Content {
            name,
            single_file: true,
            files,
            skipped: vec![],
        });
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    walk(
        &path,
        &mut Vec::new(),
        include_hidden,
        &mut files,
        &mut skipped,
    )?;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Content {
        name,
        single_file: false,
        files,
        skipped,
    })
}

fn walk(
    dir: &Path,
    rel: &mut Vec<String>,
    include_hidden: bool,
    files: &mut Vec<ContentFile>,
    skipped: &mut Vec<(PathBuf, &'static str)>,
) -> Result<(), CreateError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = utf8_name(&p)?;
        if name.starts_with('.') && !include_hidden {
            skipped.push((p, "hidden"));
            continue;
        }
        let ft = e.file_type().map_err(io_err(&p))?;
        if ft.is_symlink() {
            skipped.push((p, "symbolic link"));
        } else if ft.is_dir() {
            rel.push(name);
            walk(&p, rel, include_hidden, files, skipped)?;
            rel.pop();
        } else if ft.is_file() {
            let length = e.metadata().map_err(io_err(&p))?.len();
            let mut r = rel.clone();
            r.push(name);
            files.push(ContentFile {
                rel: r,
                path: p,
                length,
            });
        } else {
            skipped.push((p, "not a regular file"));
        }
    }
    Ok(())
}

/// Hashes the content as one stream of pieces. One thread reads large
/// sequential runs of whole pieces; `threads` workers hash them. `progress`
/// is called with the number of bytes hashed so far.
pub fn hash_pieces(
    files: &[ContentFile],
    piece_length: u32,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<[u8; 20]>, CreateError> {
    let total: u64 = files.iter().map(|f| f.length).sum();
    let pl = piece_length as usize;
    let num_pieces = total.div_ceil(piece_length as u64) as usize;
    // Read about 8 MiB at a time, in whole pieces.
    let per_batch = (8usize << 20).div_ceil(pl).max(1);
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        threads
    };
    let results: Mutex<Vec<[u8; 20]>> = Mutex::new(vec![[0; 20]; num_pieces]);
    let done = std::sync::atomic::AtomicU64::new(0);
    let (tx, rx) = sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| -> Result<(), CreateError> {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let job = rx.lock().expect("hash queue").recv();
                    let Ok((first, buf)) = job else { break };
                    let hashes: Vec<[u8; 20]> =
                        buf.chunks(pl).map(|c| Sha1::digest(c).into()).collect();
                    let mut r = results.lock().expect("hash results");
                    for (i, h) in hashes.into_iter().enumerate() {
                        r[first + i] = h;
                    }
                    drop(r);
                    let n = done.fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed)
                        + buf.len() as u64;
                    progress(n);
                }
            });
        }
        // The reader: this thread. Dropping tx at the end stops the workers.
        let mut reader = StreamReader::new(files);
        let mut piece = 0usize;
        while piece < num_pieces {
            let n = per_batch.min(num_pieces - piece);
            let len = ((n * pl) as u64).min(total - piece as u64 * pl as u64) as usize;
            let mut buf = vec![0u8; len];
            reader.read_exact(&mut buf)?;
            if tx.send((piece, buf)).is_err() {
                break;
            }
            piece += n;
        }
        drop(tx);
        Ok(())
    })?;
    Ok(results.into_inner().expect("hash results"))
}

/// Reads the files one after the other as a single stream.
struct StreamReader<'a> {
    files: &'a [ContentFile],
    index: usize,
    current: Option<(File, u64)>,
}

impl<'a> StreamReader<'a> {
    fn new(files: &'a [ContentFile]) -> Self {
        StreamReader {
            files,
            index: 0,
            current: None,
        }
    }

    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), CreateError> {
        while !buf.is_empty() {
            let Some(f) = self.files.get(self.index) else {
                let last = self
                    .files
                    .last()
                    .map(|f| f.path.clone())
                    .unwrap_or_default();
                return Err(CreateError::Changed { path: last });
            };
            if self.current.is_none() {
                let file = File::open(&f.path).map_err(io_err(&f.path))?;
                self.current = Some((file, f.length));
            }
            let (file, left) = self.current.as_mut().expect("opened above");
            if *left == 0 {
                self.current = None;
                self.index += 1;
                continue;
            }
            let want = (*left).min(buf.len() as u64) as usize;
            let n = file.read(&mut buf[..want]).map_err(io_err(&f.path))?;
            if n == 0 {
                return Err(CreateError::Changed {
                    path: f.path.clone(),
                });
            }
            *left -= n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

pub struct Created {
    pub bytes: Vec<u8>,
    pub metainfo: Metainfo,
    pub content: Content,
    /// Set when the piece length was chosen automatically.
    pub auto_piece_length: bool,
}

/// Makes a torrent of `path`.
pub fn create(
    path: &Path,
    opts: &CreateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Created, CreateError> {
    let content = scan(path, opts.include_hidden)?;
    create_from(content, opts, progress)
}

/// Makes a torrent of already scanned content (lets callers show the plan first).
pub fn create_from(
    content: Content,
    opts: &CreateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Created, CreateError> {
    let total = content.total_length();
    if total == 0 {
        let root = content
            .files
            .first()
            .map(|f| f.path.clone())
            .unwrap_or_else(|| PathBuf::from(&content.name));
        return Err(CreateError::Empty(root));
    }
    let piece_length = match opts.piece_length {
        Some(pl) => {
            let pl64 = u64::from(pl);
            if !pl64.is_power_of_two() || !(MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&pl64) {
                return Err(CreateError::PieceLength(pl64));
            }
            pl
        }
        None => auto_piece_length(total),
    };
    let pieces = hash_pieces(&content.files, piece_length, opts.threads, progress)?;
    let spec = TorrentSpec {
        name: content.name.clone(),
        piece_length,
        pieces,
        files: (!content.single_file).then(|| {
            content
                .files
                .iter()
                .map(|f| (f.rel.clone(), f.length))
                .collect()
        }),
        single_length: total,
        private: opts.private,
        trackers: opts.trackers.clone(),
        comment: opts.comment.clone(),
        created_by: opts.created_by.clone(),
        creation_date: opts.creation_date,
        web_seeds: opts.web_seeds.clone(),
    };
    let bytes = encode_torrent(&spec);
    let metainfo = metainfo::parse(&bytes)?;
    Ok(Created {
        bytes,
        metainfo,
        content,
        auto_piece_length: opts.piece_length.is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, data: &[u8]) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn single_file_hashes_match_a_direct_sha1() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = dir.path().join("data.bin");
        write(&f, &data);
        let c = create(
            &f,
            &CreateOptions {
                piece_length: Some(16384),
                threads: 3,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
        let want: Vec<[u8; 20]> = data.chunks(16384).map(|c| Sha1::digest(c).into()).collect();
        assert_eq!(c.metainfo.info.pieces, want);
        assert_eq!(c.metainfo.info.name, "data.bin");
        assert!(!c.metainfo.info.multi_file);
    }

    #[test]
    fn folder_order_hidden_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        write(&root.join("b/z.txt"), b"zz");
        write(&root.join("a.txt"), &[1u8; 40_000]);
        write(&root.join("b/empty"), b"");
        write(&root.join(".hidden"), b"secret");
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let c = create(
            &root,
            &CreateOptions {
                piece_length: Some(16384),
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
        let paths: Vec<String> = c
            .metainfo
            .info
            .files
            .iter()
            .map(|f| f.display_path())
            .collect();
        assert_eq!(paths, ["top/a.txt", "top/b/empty", "top/b/z.txt"]);
        assert_eq!(c.content.skipped.len(), 2);
        // The stream hashes across file boundaries.
        let mut all = vec![1u8; 40_000];
        all.extend_from_slice(b"zz");
        let want: Vec<[u8; 20]> = all.chunks(16384).map(|c| Sha1::digest(c).into()).collect();
        assert_eq!(c.metainfo.info.pieces, want);
        let with_hidden = scan(&root, true).unwrap();
        assert_eq!(with_hidden.files.len(), 4);
    }

    #[test]
    fn empty_content_and_bad_piece_length_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("e/x"), b"");
        assert!(matches!(
            create(&dir.path().join("e"), &CreateOptions::default(), &|_| {}),
            Err(CreateError::Empty(_))
        ));
        write(&dir.path().join("f"), b"x");
        let bad = CreateOptions {
            piece_length: Some(3000),
            ..Default::default()
        };
        assert!(matches!(
            create(&dir.path().join("f"), &bad, &|_| {}),
            Err(CreateError::PieceLength(3000))
        ));
    }
}
