//! `sta publish FILE.torrent --tracker URL`: upload a torrent to an sta
//! tracker's catalog, so that magnet links naming the tracker resolve to it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::output::json_line;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .torrent file to publish.
    #[arg(value_name = "FILE.torrent")]
    pub file: PathBuf,
    /// The tracker: its announce URL (http://HOST:PORT/announce, udp://HOST:PORT)
    /// or its base URL (http://HOST:PORT).
    #[arg(short = 't', long, value_name = "URL")]
    pub tracker: String,
    /// Token the tracker requires (its --publish-token).
    #[arg(long, value_name = "TOKEN", env = "STA_PUBLISH_TOKEN")]
    pub token: Option<String>,
    /// Print the tracker's answer as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `http://HOST:PORT[/prefix]` of a tracker URL: a `udp://` tracker's
/// catalog is on the same port over HTTP (sta serves both there by default).
pub fn catalog_base(url: &str) -> anyhow::Result<String> {
    sta_node::source::catalog_base(url).ok_or_else(|| anyhow::anyhow!("{url}: not an http:// or udp:// tracker URL with a host (sta catalogs live on the tracker's HTTP port)"))
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let bytes = super::info::read_torrent_file(&a.file)?;
    // The tracker checks too; checking here gives the message without a round trip.
    sta_proto::metainfo::parse(&bytes)
        .with_context(|| format!("{} is not a usable torrent", a.file.display()))?;
    let base = catalog_base(&a.tracker)?;
    let url = format!("{base}/torrents");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut req = client
            .post(&url)
            .header("content-type", "application/x-bittorrent")
            .body(bytes);
        if let Some(t) = &a.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the tracker at {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::Ok((status, body))
    })?;
    let v: Value = serde_json::from_slice(&body).unwrap_or_else(
        |_| serde_json::json!({ "error": String::from_utf8_lossy(&body).trim().to_string() }),
    );
    if !status.is_success() {
        let msg = v["error"].as_str().unwrap_or("no reason given");
        bail!("the tracker refused the torrent (HTTP {status}): {msg}");
    }
    if a.json {
        json_line(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let hex = v["info_hash"].as_str().unwrap_or_default();
    let verb = if v["new"] == true {
        "published"
    } else {
        "already published"
    };
    println!("{verb}  {}", v["name"].as_str().unwrap_or_default());
    println!("info-hash  {hex}");
    println!("torrent    {base}/torrents/{hex}.torrent");
    println!("magnet     {}", v["magnet"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}
