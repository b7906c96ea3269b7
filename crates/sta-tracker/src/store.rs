//! What survives a restart: published torrents (their exact bytes) and the
//! `completed` counters, in one SQLite file (`tracker.sqlite3` in the data
//! folder), or in memory when there is no data folder. Calls block: the
//! async side runs them on the blocking pool.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use sta_proto::InfoHash;

use crate::catalog::CatalogEntry;

pub const FILE_NAME: &str = "tracker.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot create the data folder {path}: {error}")]
    Dir { path: String, error: std::io::Error },
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS torrents (
    info_hash BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL,
    piece_length INTEGER NOT NULL,
    private INTEGER NOT NULL,
    added INTEGER NOT NULL,
    bytes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS completed (
    info_hash BLOB PRIMARY KEY,
    count INTEGER NOT NULL
);
";

impl Store {
    /// Opens (creating if needed) the database in `dir`, or in memory.
    pub fn open(dir: Option<&Path>) -> Result<Store, StoreError> {
        let conn = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|error| StoreError::Dir {
                    path: d.display().to_string(),
                    error,
                })?;
                let c = Connection::open(d.join(FILE_NAME))?;
                // WAL: readers never wait for the counter flush, and a crash
                // loses at most the last flush.
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "NORMAL")?;
                c
            }
            None => Connection::open_in_memory()?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every published torrent, without its bytes.
    pub fn catalog(&self) -> Result<Vec<CatalogEntry>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT info_hash, name, size, files, piece_length, private, added FROM torrents",
        )?;
        let rows = st.query_map([], |r| {
            let h: Vec<u8> = r.get(0)?;
            Ok((
                h,
                CatalogEntry {
                    info_hash: InfoHash::default(),
                    name: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    files: r.get::<_, i64>(3)? as u32,
                    piece_length: r.get::<_, i64>(4)? as u32,
                    private: r.get(5)?,
                    added: r.get(6)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (h, mut e) = row?;
            if let Some(h) = InfoHash::from_slice(&h) {
                e.info_hash = h;
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Bytes of every stored .torrent file together.
    pub fn total_bytes(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COALESCE(SUM(length(bytes)), 0) FROM torrents",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Stores a torrent; false when it was there already (kept unchanged).
    pub fn insert(&self, e: &CatalogEntry, bytes: &[u8]) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO torrents
             (info_hash, name, size, files, piece_length, private, added, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                &e.info_hash.0[..],
                e.name,
                e.size as i64,
                i64::from(e.files),
                i64::from(e.piece_length),
                e.private,
                e.added,
                bytes
            ],
        )?;
        Ok(n == 1)
    }

    pub fn bytes(&self, h: &InfoHash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT bytes FROM torrents WHERE info_hash = ?1",
                [&h.0[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The largest `limit` completed counters.
    pub fn completed(&self, limit: usize) -> Result<Vec<(InfoHash, u32)>, StoreError> {
        let c = self.conn();
        let mut st =
            c.prepare("SELECT info_hash, count FROM completed ORDER BY count DESC LIMIT ?1")?;
        let rows = st.query_map([limit as i64], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (h, n) = row?;
            if let Some(h) = InfoHash::from_slice(&h) {
                out.push((h, n.clamp(0, i64::from(u32::MAX)) as u32));
            }
        }
        Ok(out)
    }

    /// Adds counts gained since the last flush, in one transaction.
    pub fn add_completed(&self, deltas: &[(InfoHash, u32)]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut c = self.conn();
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare(
                "INSERT INTO completed (info_hash, count) VALUES (?1, ?2)
                 ON CONFLICT(info_hash) DO UPDATE SET count = count + excluded.count",
            )?;
            for (h, n) in deltas {
                st.execute(params![&h.0[..], i64::from(*n)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> CatalogEntry {
        CatalogEntry {
            info_hash: InfoHash([n; 20]),
            name: format!("t{n}"),
            size: 1000,
            files: 1,
            piece_length: 16384,
            private: false,
            added: 1_700_000_000,
        }
    }

    #[test]
    fn survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(Some(dir.path())).unwrap();
            assert!(s.insert(&entry(1), b"d4:infode").unwrap());
            assert!(!s.insert(&entry(1), b"other").unwrap());
            s.add_completed(&[(InfoHash([1; 20]), 2)]).unwrap();
            s.add_completed(&[(InfoHash([1; 20]), 3), (InfoHash([2; 20]), 1)])
                .unwrap();
        }
        let s = Store::open(Some(dir.path())).unwrap();
        assert_eq!(s.catalog().unwrap(), vec![entry(1)]);
        assert_eq!(
            s.bytes(&InfoHash([1; 20])).unwrap().as_deref(),
            Some(&b"d4:infode"[..])
        );
        assert_eq!(s.bytes(&InfoHash([9; 20])).unwrap(), None);
        assert_eq!(
            s.completed(10).unwrap(),
            vec![(InfoHash([1; 20]), 5), (InfoHash([2; 20]), 1)]
        );
        assert_eq!(s.completed(1).unwrap().len(), 1);
    }
}
