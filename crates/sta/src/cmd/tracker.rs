//! `sta tracker`: run the tracker (HTTP and UDP announce, scrape, stats
//! pages, metrics, catalog) until Ctrl-C or SIGTERM. Settings come from
//! flags, then `STA_*` variables, then the `[tracker]` section of
//! `--config FILE`, then the defaults of `TrackerConfig`.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use sta_tracker::{Bind, Tracker, TrackerConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::output::{json_line, json_mode};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HTTP address (announce, scrape, stats pages, catalog), or `off`
    /// [default: 0.0.0.0:6969]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR|off", env = "STA_TRACKER_HTTP")]
    pub http: Option<Bind>,
    /// UDP address (BEP 15), or `off` [default: 0.0.0.0:6969]. `[::]:PORT`
    /// serves IPv6 and IPv4.
    #[arg(long, value_name = "ADDR|off", env = "STA_TRACKER_UDP")]
    pub udp: Option<Bind>,
    /// sta.toml whose [tracker] section sets anything not given as a flag.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds between announces told to clients [default: 300]; peers
    /// expire after twice this.
    #[arg(long, value_name = "SECS", env = "STA_TRACKER_INTERVAL")]
    pub interval: Option<u32>,
    /// Private mode: track only the hex info-hashes in FILE (one a line)
    /// and published torrents. Since publishing a torrent makes it tracked,
    /// this needs --publish-token (only its holders add torrents) or
    /// --no-publish; without either the tracker refuses to start.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,
    /// Folder of the catalog and completed counters
    /// [default: $XDG_STATE_HOME/sta/tracker or ~/.local/state/sta/tracker].
    #[arg(long, value_name = "DIR", env = "STA_TRACKER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Refuse `sta publish` (POST /torrents).
    #[arg(long)]
    pub no_publish: bool,
    /// Require this token to publish (sta publish --token).
    #[arg(long, value_name = "TOKEN", env = "STA_PUBLISH_TOKEN")]
    pub publish_token: Option<String>,
    /// Use the address a client claims in its announce (`ip`) instead of
    /// the one it connects from (for trackers behind a proxy or NAT).
    #[arg(long)]
    pub trust_announce_ip: bool,
    /// JSON lines on stdout (also when stdout is not a terminal).
    #[arg(long)]
    pub json: bool,
}

fn default_data_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("sta").join("tracker"))
}

fn config(a: &Args) -> anyhow::Result<TrackerConfig> {
    let mut c = match &a.config {
        // The whole file is checked, so a typo in [node] is caught here too.
        Some(path) => crate::config::load(path)?.tracker,
        None => TrackerConfig::default(),
    };
    if let Some(b) = a.http {
        c.http = b;
    }
    if let Some(b) = a.udp {
        c.udp = b;
    }
    if let Some(i) = a.interval {
        c.interval_secs = i;
    }
    if let Some(p) = &a.allowlist {
        c.allowlist = Some(p.clone());
    }
    if let Some(d) = &a.data_dir {
        c.data_dir = Some(d.clone());
    }
    if c.data_dir.is_none() {
        c.data_dir = default_data_dir();
    }
    if a.no_publish {
        c.publish = false;
    }
    if let Some(t) = &a.publish_token {
        c.publish_token = Some(t.clone());
    }
    if a.trust_announce_ip {
        c.trust_announce_ip = true;
    }
    Ok(c)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let c = config(&a)?;
    let json = json_mode(a.json);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (http_flag, udp_flag) = (c.http, c.udp);
        let bound = Tracker::bind(c).await.map_err(|e| {
            let hint = if e.is_addr_in_use() {
                format!(
                    "\nanother program (another tracker?) has that port: choose another with --http ADDR / --udp ADDR (port 0 picks a free one), or `off` (asked for HTTP {http_flag}, UDP {udp_flag})"
                )
            } else {
                String::new()
            };
            anyhow::anyhow!("{e}{hint}")
        })?;
        let (http, udp) = (bound.http_addr(), bound.udp_addr());
        if json {
            json_line(&json!({
                "event": "ready",
                "http": http.map(|a| a.to_string()),
                "udp": udp.map(|a| a.to_string()),
            }));
        } else {
            let mut parts = Vec::new();
            if let Some(h) = http {
                parts.push(format!("http://{h}/announce (stats http://{h}/, catalog http://{h}/torrents)"));
            }
            if let Some(u) = udp {
                parts.push(format!("udp://{u}"));
            }
            println!("sta tracker listening on {}; Ctrl-C stops it", parts.join(" and "));
        }
        tracing::info!(?http, ?udp, "tracker ready");
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stopping the tracker");
            stop.cancel();
        });
        bound.run(cancel).await?;
        if json {
            json_line(&json!({ "event": "stopped" }));
        }
        Ok(ExitCode::SUCCESS)
    })
}
