//! The torrent catalog: torrents published to this tracker, so that a magnet
//! link whose `tr` names it can be resolved to the exact `.torrent` bytes.
//! An index of every entry stays in memory for listing and search; the bytes
//! stay in the [`Store`] and are read on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use sta_proto::InfoHash;
use sta_proto::magnet::Magnet;

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogEntry {
    pub info_hash: InfoHash,
    pub name: String,
    /// Bytes of content (padding files excluded).
    pub size: u64,
    pub files: u32,
    pub piece_length: u32,
    pub private: bool,
    /// Unix seconds when it was published.
    pub added: i64,
}

impl CatalogEntry {
    /// A magnet link whose only tracker is `announce`.
    pub fn magnet(&self, announce: &str) -> String {
        Magnet {
            info_hash: self.info_hash,
            display_name: Some(self.name.clone()),
            trackers: vec![announce.to_owned()],
            peers: Vec::new(),
        }
        .to_uri()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publishing is turned off on this tracker (--no-publish)")]
    Disabled,
    #[error("publishing needs a token: send `Authorization: Bearer TOKEN` (sta publish --token)")]
    BadToken,
    #[error("torrent file of {0} bytes is larger than the {1} bytes this tracker accepts")]
    TooLarge(usize, usize),
    #[error("not a usable torrent: {0}")]
    Invalid(String),
    #[error("the catalog is full ({0} torrents)")]
    Full(usize),
    #[error(
        "the catalog is full: it stores {stored} bytes of torrents, and {size} more would pass its \
         {max} byte limit (max_catalog_bytes)"
    )]
    BytesFull { stored: u64, size: usize, max: u64 },
    #[error(
        "{0} publishes are already in progress, the most this tracker takes at once; try again in a moment"
    )]
    Busy(usize),
    #[error("{0}")]
    Store(#[from] StoreError),
}

pub struct Catalog {
    entries: RwLock<HashMap<InfoHash, Arc<CatalogEntry>>>,
    store: Arc<Store>,
    max_entries: usize,
    max_bytes: usize,
    max_total_bytes: u64,
    /// Bytes of .torrent files stored. Its lock also makes each publish's
    /// check-then-insert one step, so concurrent publishes cannot pass a cap
    /// together.
    stored: Mutex<u64>,
}

impl Catalog {
    /// Loads the index of what the store holds.
    pub fn load(
        store: Arc<Store>,
        max_entries: usize,
        max_bytes: usize,
        max_total_bytes: u64,
    ) -> Result<Catalog, StoreError> {
        let stored = store.total_bytes()?;
        let entries = store
            .catalog()?
            .into_iter()
            .map(|e| (e.info_hash, Arc::new(e)))
            .collect();
        Ok(Catalog {
            entries: RwLock::new(entries),
            store,
            max_entries,
            max_bytes,
            max_total_bytes,
            stored: Mutex::new(stored),
        })
    }

    /// Bytes of .torrent files stored.
    pub fn stored_bytes(&self) -> u64 {
        *self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<InfoHash, Arc<CatalogEntry>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn contains(&self, h: &InfoHash) -> bool {
        self.read().contains_key(h)
    }

    pub fn get(&self, h: &InfoHash) -> Option<Arc<CatalogEntry>> {
        self.read().get(h).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries whose name contains every word of `query` (any case), or
    /// whose info-hash starts with it; newest first, at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Arc<CatalogEntry>> {
        let q = query.trim().to_lowercase();
        let words: Vec<&str> = q.split_whitespace().collect();
        let mut hits: Vec<Arc<CatalogEntry>> = self
            .read()
            .values()
            .filter(|e| {
                let name = e.name.to_lowercase();
                words.iter().all(|w| name.contains(w))
                    || (!q.is_empty() && e.info_hash.to_hex().starts_with(&q))
            })
            .cloned()
            .collect();
        hits.sort_by(|a, b| b.added.cmp(&a.added).then_with(|| a.name.cmp(&b.name)));
        hits.truncate(limit);
        hits
    }

    /// Validates and stores a torrent. Returns its entry and whether it is
    /// new (publishing the same torrent twice is not an error).
    pub fn publish(
        &self,
        bytes: &[u8],
        now_unix: i64,
    ) -> Result<(Arc<CatalogEntry>, bool), PublishError> {
        if bytes.len() > self.max_bytes {
            return Err(PublishError::TooLarge(bytes.len(), self.max_bytes));
        }
        let m =
            sta_proto::metainfo::parse(bytes).map_err(|e| PublishError::Invalid(e.to_string()))?;
        let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = self.get(&m.info_hash) {
            return Ok((e, false));
        }
        if self.len() >= self.max_entries {
            return Err(PublishError::Full(self.max_entries));
        }
        if *stored + bytes.len() as u64 > self.max_total_bytes {
            return Err(PublishError::BytesFull {
                stored: *stored,
                size: bytes.len(),
                max: self.max_total_bytes,
            });
        }
        let entry = CatalogEntry {
            info_hash: m.info_hash,
            name: m.info.name.clone(),
            size: m.info.data_length(),
            files: m.info.data_files().count() as u32,
            piece_length: m.info.piece_length,
            private: m.info.private,
            added: now_unix,
        };
        let new = self.store.insert(&entry, bytes)?;
        if new {
            *stored += bytes.len() as u64;
        }
        let entry = Arc::new(entry);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.info_hash, entry.clone());
        Ok((entry, new))
    }

    /// The exact bytes that were published.
    pub fn bytes(&self, h: &InfoHash) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.contains(h) {
            return Ok(None);
        }
        self.store.bytes(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid single-file torrent; `n` makes each one different.
    fn torrent(n: u8, comment_len: usize) -> Vec<u8> {
        let c = "c".repeat(comment_len);
        format!(
            "d7:comment{}:{c}4:infod6:lengthi1e4:name1:{}12:piece lengthi16384e\
             6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
            c.len(),
            char::from(b'a' + n)
        )
        .into_bytes()
    }

    #[test]
    fn total_bytes_cap_holds_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (torrent(0, 400), torrent(1, 400));
        let max = (a.len() + b.len() - 1) as u64;
        {
            let store = Arc::new(Store::open(Some(dir.path())).unwrap());
            let c = Catalog::load(store, 100, 1 << 20, max).unwrap();
            assert!(c.publish(&a, 1).unwrap().1);
            // The same torrent again adds nothing, so it is never refused.
            assert!(!c.publish(&a, 2).unwrap().1);
            assert_eq!(c.stored_bytes(), a.len() as u64);
            match c.publish(&b, 3) {
                Err(PublishError::BytesFull {
                    stored,
                    size,
                    max: m,
                }) => {
                    assert_eq!((stored, size, m), (a.len() as u64, b.len(), max));
                }
                other => panic!("{other:?}"),
            }
            // A smaller one still fits.
            assert!(c.publish(&torrent(2, 0), 4).unwrap().1);
        }
        let store = Arc::new(Store::open(Some(dir.path())).unwrap());
        let c = Catalog::load(store, 100, 1 << 20, max).unwrap();
        assert_eq!(c.stored_bytes(), (a.len() + torrent(2, 0).len()) as u64);
        assert!(matches!(
            c.publish(&b, 5),
            Err(PublishError::BytesFull { .. })
        ));
    }
}
