//! The torrent catalog: torrents published to this tracker, so that a magnet
//! link whose `tr` names it can be resolved to the exact `.torrent` bytes.
//! An index of every entry stays in memory for listing and search; the bytes
//! stay in the [`Store`] and are read on demand.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
    #[error("{0}")]
    Store(#[from] StoreError),
}

pub struct Catalog {
    entries: RwLock<HashMap<InfoHash, Arc<CatalogEntry>>>,
    store: Arc<Store>,
    max_entries: usize,
    max_bytes: usize,
}

impl Catalog {
    /// Loads the index of what the store holds.
    pub fn load(
        store: Arc<Store>,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Catalog, StoreError> {
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
        })
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
        if let Some(e) = self.get(&m.info_hash) {
            return Ok((e, false));
        }
        if self.len() >= self.max_entries {
            return Err(PublishError::Full(self.max_entries));
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
