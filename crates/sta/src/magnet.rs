//! Turning what the user typed into a torrent: a `.torrent` path, or a magnet
//! link resolved through the catalog of an sta tracker named in its `tr`
//! (metadata from peers, BEP 9, comes later).

use std::time::Duration;

use anyhow::{Context, bail};
use sta_proto::magnet::Magnet;
use sta_proto::metainfo::{self, Metainfo};

pub fn load_source(s: &str) -> anyhow::Result<Metainfo> {
    if s.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    {
        let m = Magnet::parse(s)?;
        resolve(&m)
    } else {
        crate::cmd::node::load_torrent(std::path::Path::new(s))
    }
}

/// `http://host:port` of a tracker URL (HTTP or UDP: sta serves both on one port by default).
pub fn catalog_base(tracker: &str) -> Option<String> {
    let rest = tracker
        .strip_prefix("http://")
        .or_else(|| tracker.strip_prefix("udp://"))?;
    let hostport = rest.split('/').next()?;
    (!hostport.is_empty()).then(|| format!("http://{hostport}"))
}

/// Fetches the torrent from the first tracker catalog that has it and checks
/// that its info-hash is the magnet's.
pub fn resolve(m: &Magnet) -> anyhow::Result<Metainfo> {
    if m.trackers.is_empty() {
        bail!(
            "magnet link has no tracker (tr=): sta can only resolve magnets through an sta tracker's catalog for now"
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let mut errors = Vec::new();
    for t in &m.trackers {
        let Some(base) = catalog_base(t) else {
            errors.push(format!("{t}: not an http:// or udp:// tracker"));
            continue;
        };
        let url = format!("{base}/torrents/{}.torrent", m.info_hash.to_hex());
        match fetch(&client, &url) {
            Ok(bytes) => {
                let meta = metainfo::parse(&bytes)
                    .with_context(|| format!("{url} did not return a usable torrent"))?;
                if meta.info_hash != m.info_hash {
                    bail!(
                        "{url} returned a torrent with info-hash {}, not the magnet's {}",
                        meta.info_hash,
                        m.info_hash
                    );
                }
                return Ok(meta);
            }
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    bail!(
        "could not fetch the torrent for this magnet from its trackers' catalogs:\n  {}",
        errors.join("\n  ")
    )
}

fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let resp = client.get(url).send().await?;
        if !resp.status().is_success() {
            bail!("HTTP {}", resp.status());
        }
        Ok(resp.bytes().await?.to_vec())
    })
}
