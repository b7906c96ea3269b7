//! Turning what a user typed into a torrent: a `.torrent` path, or a magnet
//! link resolved through the catalog of an sta tracker named in its `tr`
//! (`GET /torrents/<info-hash>.torrent`). Metadata from peers (BEP 9) comes
//! later.

use std::path::Path;
use std::time::Duration;

use sta_proto::magnet::{Magnet, MagnetError};
use sta_proto::metainfo::{self, MAX_TORRENT_FILE, Metainfo, MetainfoError};

use crate::http_body::read_capped;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path} is not a usable torrent: {error}")]
    Torrent { path: String, error: MetainfoError },
    #[error(transparent)]
    Magnet(#[from] MagnetError),
    #[error(
        "magnet link has no tracker (tr=); sta resolves magnets through an sta tracker's catalog"
    )]
    NoTracker,
    #[error("could not fetch the torrent for this magnet from its trackers' catalogs:\n  {0}")]
    Unresolved(String),
}

/// Loads a `.torrent` file or resolves a magnet link.
pub async fn load(s: &str) -> Result<Metainfo, SourceError> {
    if s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    {
        resolve(&Magnet::parse(s)?).await
    } else {
        load_file(Path::new(s))
    }
}

pub fn load_file(path: &Path) -> Result<Metainfo, SourceError> {
    let shown = path.display().to_string();
    let bytes = read_torrent_bytes(path).map_err(|error| SourceError::Read {
        path: shown.clone(),
        error,
    })?;
    metainfo::parse(&bytes).map_err(|error| SourceError::Torrent { path: shown, error })
}

/// Reads a `.torrent` file, refusing anything over the metainfo size cap
/// without loading it: the size is checked first and the read is bounded, so
/// `/dev/zero`, a file still growing or a mistyped multi-GiB data file is
/// never buffered whole.
pub fn read_torrent_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let too_large = |what: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{what} the {MAX_TORRENT_FILE} byte limit for a .torrent file; is it really a torrent?"
            ),
        )
    };
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > MAX_TORRENT_FILE as u64 {
        return Err(too_large(format!("it is {len} bytes, over")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(MAX_TORRENT_FILE as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_TORRENT_FILE {
        return Err(too_large("it holds more than".into()));
    }
    Ok(bytes)
}

/// `http://host:port` of a tracker URL. sta serves HTTP and UDP on the same
/// port by default, so a `udp://` tracker's catalog is tried there too.
pub fn catalog_base(tracker: &str) -> Option<String> {
    let rest = tracker
        .strip_prefix("http://")
        .or_else(|| tracker.strip_prefix("udp://"))?;
    let hostport = rest.split('/').next()?;
    (!hostport.is_empty()).then(|| format!("http://{hostport}"))
}

/// Fetches the torrent from the first catalog that has it and checks that its
/// info-hash is the magnet's.
pub async fn resolve(m: &Magnet) -> Result<Metainfo, SourceError> {
    if m.trackers.is_empty() {
        return Err(SourceError::NoTracker);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("HTTP client without TLS builds");
    let mut errors = Vec::new();
    for t in &m.trackers {
        let Some(base) = catalog_base(t) else {
            errors.push(format!("{t}: not an http:// or udp:// tracker"));
            continue;
        };
        let url = format!("{base}/torrents/{}.torrent", m.info_hash.to_hex());
        let bytes = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => match read_capped(r, MAX_TORRENT_FILE).await {
                Ok(b) => b,
                Err(e) => {
                    errors.push(format!("{url}: {e}"));
                    continue;
                }
            },
            Ok(r) => {
                errors.push(format!("{url}: HTTP {}", r.status()));
                continue;
            }
            Err(e) => {
                errors.push(format!("{url}: {e}"));
                continue;
            }
        };
        match metainfo::parse(&bytes) {
            Ok(meta) if meta.info_hash == m.info_hash => return Ok(meta),
            Ok(meta) => errors.push(format!(
                "{url}: returned info-hash {}, not the magnet's {}",
                meta.info_hash, m.info_hash
            )),
            Err(e) => errors.push(format!("{url}: not a usable torrent: {e}")),
        }
    }
    Err(SourceError::Unresolved(errors.join("\n  ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_base_of_trackers() {
        assert_eq!(
            catalog_base("http://1.2.3.4:6969/announce").as_deref(),
            Some("http://1.2.3.4:6969")
        );
        assert_eq!(
            catalog_base("udp://t.example:6969").as_deref(),
            Some("http://t.example:6969")
        );
        assert_eq!(catalog_base("wss://x"), None);
    }

    fn sample_torrent() -> Vec<u8> {
        use sta_proto::metainfo::build::{TorrentSpec, encode_torrent};
        encode_torrent(&TorrentSpec {
            name: "x".into(),
            piece_length: 16384,
            pieces: vec![[3; 20]],
            single_length: 100,
            ..Default::default()
        })
    }

    fn magnet_for(hash: sta_proto::InfoHash, base: &str) -> Magnet {
        Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{}&tr={base}/announce",
            hash.to_hex()
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn a_magnet_resolves_through_a_catalog_only_to_its_own_info_hash() {
        use crate::http_body::test_server::serve;
        let bytes = sample_torrent();
        let real = metainfo::parse(&bytes).unwrap().info_hash;
        // This catalog answers every path with the same torrent.
        let (base, _) = serve(bytes, false).await;
        let meta = resolve(&magnet_for(real, &base)).await.unwrap();
        assert_eq!(meta.info_hash, real);

        let other = sta_proto::InfoHash([0xab; 20]);
        let e = resolve(&magnet_for(other, &base)).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("returned info-hash") && msg.contains(&other.to_hex()),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn an_oversized_catalog_answer_is_refused() {
        use crate::http_body::test_server::serve;
        let (base, _) = serve(vec![b'd'; MAX_TORRENT_FILE + 1], true).await;
        let e = resolve(&magnet_for(sta_proto::InfoHash([1; 20]), &base))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn oversized_and_endless_torrent_files_are_refused_without_reading_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.torrent");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_TORRENT_FILE as u64 + 1).unwrap(); // sparse
        for p in [big.as_path(), Path::new("/dev/zero")] {
            let e = read_torrent_bytes(p).unwrap_err();
            assert!(e.to_string().contains("byte limit"), "{p:?}: {e}");
        }
    }
}
