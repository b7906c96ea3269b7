//! Pieces onto files: a torrent is one stream of bytes cut into pieces and
//! laid over its files in order. This module maps stream offsets to file
//! segments and does positional reads and writes (`pread`/`pwrite`), so
//! memory never grows with file size.
//!
//! Every path is confined to the download folder: the torrent's components
//! were already checked by `sta-proto` (no `..`, separators or NUL), and here
//! no existing component below the folder may be a symbolic link. BEP 47
//! padding files read as zeros and are never created. Files are created on
//! first write and sized sparsely to their final length; zero-length files
//! are created when the download completes.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sta_proto::metainfo::Info;

/// Open file handles kept at once; beyond this the least recently used closes.
const MAX_OPEN_FILES: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot use download folder {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("{0} is a symbolic link inside the download folder; refusing to write through it")]
    Symlink(PathBuf),
}

#[derive(Debug)]
struct StorageFile {
    path: PathBuf,
    offset: u64,
    length: u64,
    padding: bool,
}

/// One contiguous run of a read or write inside one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub file: usize,
    pub file_offset: u64,
    pub len: u64,
}

struct Handle {
    file: Arc<File>,
    writable: bool,
    last_used: u64,
}

pub struct Storage {
    root: PathBuf,
    files: Vec<StorageFile>,
    piece_length: u64,
    total_length: u64,
    handles: Mutex<(HashMap<usize, Handle>, u64)>,
    /// Files written since the last `sync`. Kept apart from the handles: a
    /// handle closed to stay under `MAX_OPEN_FILES` may still have unsynced
    /// data, and `sync` must flush it before the resume file vouches for it.
    dirty: Mutex<BTreeSet<usize>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Storage({}, {} files)",
            self.root.display(),
            self.files.len()
        )
    }
}

impl Storage {
    /// Lays `info`'s files out below `root` (created if missing).
    pub fn new(info: &Info, root: &Path) -> Result<Self, StorageError> {
        let root_err = |source| StorageError::Root {
            path: root.to_owned(),
            source,
        };
        std::fs::create_dir_all(root).map_err(root_err)?;
        let root = root.canonicalize().map_err(root_err)?;
        let files = info
            .files
            .iter()
            .map(|f| {
                let mut path = root.clone();
                path.extend(&f.path);
                StorageFile {
                    path,
                    offset: f.offset,
                    length: f.length,
                    padding: f.padding,
                }
            })
            .collect();
        Ok(Storage {
            root,
            files,
            piece_length: u64::from(info.piece_length),
            total_length: info.total_length,
            handles: Mutex::new((HashMap::new(), 0)),
            dirty: Mutex::new(BTreeSet::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn file_path(&self, file: usize) -> &Path {
        &self.files[file].path
    }

    /// The file segments covering `len` bytes at stream offset `offset`.
    pub fn segments(&self, offset: u64, len: u64) -> Vec<Segment> {
        let end = (offset + len).min(self.total_length);
        // Files are sorted by offset: find the first one that ends after `offset`.
        let first = self
            .files
            .partition_point(|f| f.offset + f.length <= offset);
        let mut out = Vec::new();
        for (i, f) in self.files.iter().enumerate().skip(first) {
            if f.offset >= end {
                break;
            }
            let start = offset.max(f.offset);
            let stop = end.min(f.offset + f.length);
            if stop > start {
                out.push(Segment {
                    file: i,
                    file_offset: start - f.offset,
                    len: stop - start,
                });
            }
        }
        out
    }

    /// Refuses to go through a symbolic link anywhere below the root.
    fn check_no_symlinks(&self, path: &Path) -> io::Result<()> {
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| io::Error::other("path outside the download folder"))?;
        let mut p = self.root.clone();
        for c in rel.components() {
            p.push(c);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(io::Error::other(StorageError::Symlink(p)));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn handle(&self, index: usize, write: bool) -> io::Result<Arc<File>> {
        let mut guard = self.handles.lock().expect("storage handles");
        let (map, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        if let Some(h) = map.get_mut(&index)
            && (h.writable || !write)
        {
            h.last_used = now;
            return Ok(h.file.clone());
        }
        let f = &self.files[index];
        self.check_no_symlinks(&f.path)?;
        let file = if write {
            if let Some(dir) = f.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&f.path)?;
            // Sparse preallocation: the file has its final size from the start.
            if file.metadata()?.len() != f.length {
                file.set_len(f.length)?;
            }
            file
        } else {
            File::open(&f.path)?
        };
        if map.len() >= MAX_OPEN_FILES
            && let Some(oldest) = map.iter().min_by_key(|(_, h)| h.last_used).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        let file = Arc::new(file);
        map.insert(
            index,
            Handle {
                file: file.clone(),
                writable: write,
                last_used: now,
            },
        );
        Ok(file)
    }

    /// Reads `buf.len()` bytes at stream offset `offset`. Padding reads as
    /// zeros; a missing or short file is an error.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut at = 0usize;
        for s in self.segments(offset, buf.len() as u64) {
            let chunk = &mut buf[at..at + s.len as usize];
            if self.files[s.file].padding {
                chunk.fill(0);
            } else {
                self.handle(s.file, false)?
                    .read_exact_at(chunk, s.file_offset)?;
            }
            at += s.len as usize;
        }
        if at != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the torrent",
            ));
        }
        Ok(())
    }

    /// Writes `data` at stream offset `offset`, creating files as needed.
    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut at = 0usize;
        for s in self.segments(offset, data.len() as u64) {
            let chunk = &data[at..at + s.len as usize];
            if !self.files[s.file].padding {
                self.handle(s.file, true)?
                    .write_all_at(chunk, s.file_offset)?;
                self.dirty.lock().expect("storage dirty set").insert(s.file);
            }
            at += s.len as usize;
        }
        Ok(())
    }

    pub fn piece_offset(&self, index: u32) -> u64 {
        u64::from(index) * self.piece_length
    }

    /// Creates zero-length files (they hold no piece, so no write makes them).
    pub fn create_empty_files(&self) -> io::Result<()> {
        for (i, f) in self.files.iter().enumerate() {
            if f.length == 0 && !f.padding && !f.path.exists() {
                self.handle(i, true)?;
            }
        }
        Ok(())
    }

    /// Flushes to disk every file written since the last sync, reopening
    /// those whose handle was closed meanwhile (fsync flushes the file, not
    /// the descriptor). A file that fails stays dirty for the next try.
    pub fn sync(&self) -> io::Result<()> {
        let dirty = std::mem::take(&mut *self.dirty.lock().expect("storage dirty set"));
        let mut pending = dirty.iter();
        while let Some(&i) = pending.next() {
            if let Err(e) = self.handle(i, true).and_then(|f| f.sync_data()) {
                let mut set = self.dirty.lock().expect("storage dirty set");
                set.insert(i);
                set.extend(pending);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Drops every open handle, e.g. before a recheck after files changed.
    pub fn close_all(&self) {
        self.handles.lock().expect("storage handles").0.clear();
    }

    /// Size and modification time (ns since the epoch) of each data file, or
    /// `None` for missing ones: what the resume file compares on restart.
    pub fn file_stamps(&self) -> Vec<Option<(u64, i128)>> {
        self.files
            .iter()
            .map(|f| {
                if f.padding {
                    return Some((f.length, 0));
                }
                let m = std::fs::metadata(&f.path).ok()?;
                let mtime = m.modified().ok()?;
                let ns = match mtime.duration_since(std::time::UNIX_EPOCH) {
                    Ok(d) => d.as_nanos() as i128,
                    Err(e) => -(e.duration().as_nanos() as i128),
                };
                Some((m.len(), ns))
            })
            .collect()
    }

    /// Data files (not padding) that overlap piece `index`, for messages
    /// that name the files a bad piece touches.
    pub fn files_of_piece(&self, index: u32, piece_len: u32) -> Vec<usize> {
        self.segments(self.piece_offset(index), u64::from(piece_len))
            .into_iter()
            .filter(|s| !self.files[s.file].padding)
            .map(|s| s.file)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sta_proto::metainfo::build::{TorrentSpec, encode_torrent};

    fn info(files: &[(&str, u64)], pl: u32) -> Info {
        let total: u64 = files.iter().map(|f| f.1).sum();
        let spec = TorrentSpec {
            name: "t".into(),
            piece_length: pl,
            pieces: vec![[0; 20]; total.div_ceil(u64::from(pl)) as usize],
            files: Some(
                files
                    .iter()
                    .map(|(p, l)| (p.split('/').map(String::from).collect(), *l))
                    .collect(),
            ),
            ..Default::default()
        };
        sta_proto::metainfo::parse(&encode_torrent(&spec))
            .unwrap()
            .info
    }

    #[test]
    fn segments_span_files_and_skip_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(
            &info(&[("a", 10), ("e", 0), ("b/c", 20), ("d", 5)], 16384),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            s.segments(5, 20),
            vec![
                Segment {
                    file: 0,
                    file_offset: 5,
                    len: 5
                },
                Segment {
                    file: 2,
                    file_offset: 0,
                    len: 15
                }
            ]
        );
        assert_eq!(
            s.segments(30, 100),
            vec![Segment {
                file: 3,
                file_offset: 0,
                len: 5
            }]
        );
    }

    #[test]
    fn write_then_read_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(
            &info(&[("a", 10), ("b/c", 20), ("z", 0)], 16384),
            dir.path(),
        )
        .unwrap();
        let data: Vec<u8> = (0..30).collect();
        s.write(0, &data).unwrap();
        let mut back = vec![0; 30];
        s.read(0, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(
            std::fs::read(dir.path().join("t/b/c")).unwrap(),
            (10..30).collect::<Vec<u8>>()
        );
        assert!(!dir.path().join("t/z").exists());
        s.create_empty_files().unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("t/z")).unwrap().len(), 0);
        s.sync().unwrap();
    }

    #[test]
    fn files_are_sparse_at_full_size_and_missing_files_fail_reads() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(&info(&[("a", 100_000)], 16384), dir.path()).unwrap();
        let mut buf = vec![0; 10];
        assert!(s.read(0, &mut buf).is_err());
        s.write(50_000, b"xyz").unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("t/a")).unwrap().len(),
            100_000
        );
        assert!(s.file_stamps()[0].is_some());
    }

    #[test]
    fn refuses_to_write_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("t/b")).unwrap();
        let s = Storage::new(&info(&[("b/c", 10)], 16384), dir.path()).unwrap();
        let err = s.write(0, b"0123456789").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn sync_covers_files_whose_handle_was_closed() {
        let dir = tempfile::tempdir().unwrap();
        let n = MAX_OPEN_FILES + 10;
        let names: Vec<String> = (0..n).map(|i| format!("f{i:03}")).collect();
        let files: Vec<(&str, u64)> = names.iter().map(|s| (s.as_str(), 4)).collect();
        let s = Storage::new(&info(&files, 16384), dir.path()).unwrap();
        s.write(0, &vec![1u8; 4 * n]).unwrap();
        assert!(s.handles.lock().unwrap().0.len() <= MAX_OPEN_FILES);
        assert_eq!(
            s.dirty.lock().unwrap().len(),
            n,
            "files closed to stay under the handle cap are still owed a sync"
        );
        s.sync().unwrap();
        assert!(s.dirty.lock().unwrap().is_empty());
    }
}
