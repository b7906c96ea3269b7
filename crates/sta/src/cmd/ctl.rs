//! `sta ctl COMMAND`: run one prompt command against a running node through
//! its control API, and print the same table the prompt would.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use sta_node::control::Reply;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Control API address [default: the one the node wrote to its state folder, else 127.0.0.1:6880].
    #[arg(long, env = "STA_API", value_name = "ADDR")]
    pub addr: Option<String>,
    /// State folder of the node (where it wrote api.addr).
    #[arg(long, env = "STA_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// API token (needed when the node is on another host).
    #[arg(long, env = "STA_API_TOKEN")]
    pub token: Option<String>,
    /// Torrent the command acts on when it names none (default 1). Each ctl
    /// call stands alone, so this replaces the prompt's `select`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub torrent: Option<u64>,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// The command, as typed at the prompt: status, peers, pieces, speed, pause, resume, quit, ...
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The node's API address: flag, else its state folder, else the default.
pub fn api_addr(addr: Option<String>, state_dir: Option<PathBuf>) -> String {
    if let Some(a) = addr {
        return a;
    }
    let dir = sta_node::config::NodeConfig {
        state_dir,
        ..Default::default()
    }
    .resolved_state_dir();
    std::fs::read_to_string(dir.join("api.addr"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| crate::runner::DEFAULT_API.to_string())
}

pub async fn send(addr: &str, token: Option<&str>, line: &str) -> anyhow::Result<Reply> {
    send_to(addr, token, line, None).await
}

/// Sends one command line; `torrent` is what it acts on when it names none.
pub async fn send_to(
    addr: &str,
    token: Option<&str>,
    line: &str,
    torrent: Option<usize>,
) -> anyhow::Result<Reply> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = if addr.starts_with("http://") {
        format!("{addr}/api/command")
    } else {
        format!("http://{addr}/api/command")
    };
    let mut req = client
        .post(&url)
        .header("content-type", "application/json")
        .body(serde_json::json!({"line": line, "selected": torrent}).to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("no node answers at {addr} (is it running? see --addr)"))?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{msg}");
    }
    serde_json::from_slice(&body).context("the node sent a reply this sta does not understand")
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let addr = api_addr(a.addr.clone(), a.state_dir.clone());
    let line = a.command.join(" ");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let torrent = a.torrent.map(|n| n as usize);
    let reply = rt.block_on(send_to(&addr, a.token.as_deref(), &line, torrent))?;
    if a.json {
        crate::output::json_line(&serde_json::to_value(&reply)?);
    } else {
        print!(
            "{}",
            crate::tables::format_reply(&reply, crate::prompt::terminal_width())
        );
    }
    Ok(ExitCode::SUCCESS)
}
