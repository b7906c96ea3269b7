//! Driving real `sta` processes in a test: a work folder, a tracker, nodes on
//! their own 127.0.0.x addresses, and reading their JSON status lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::proc::Proc;

/// A test's work folder and the `sta` binary under test.
pub struct StaEnv {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    next_ip: u8,
}

impl StaEnv {
    pub fn new(bin: &str) -> Self {
        StaEnv {
            bin: PathBuf::from(bin),
            dir: tempfile::tempdir().expect("tempdir"),
            next_ip: 10,
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// A fresh loopback address for the next node (real clients key peers by IP).
    pub fn next_ip(&mut self) -> String {
        self.next_ip += 1;
        format!("127.0.0.{}", self.next_ip)
    }

    /// Starts `sta tracker` on loopback ports chosen by the kernel; returns it
    /// with its HTTP announce URL and UDP announce URL.
    pub fn tracker(&self, extra: &[&str]) -> anyhow::Result<(Proc, String, String)> {
        let data = self.path("tracker-data");
        let mut args: Vec<String> = [
            "tracker",
            "--http",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--json",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(data.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut p = Proc::spawn("tracker", &self.bin, &args, &self.logs())?;
        let ready = p.wait_ready(Duration::from_secs(20))?;
        let http = ready["http"]
            .as_str()
            .context("ready line has no http address")?
            .to_owned();
        let udp = ready["udp"].as_str().unwrap_or_default().to_owned();
        Ok((p, format!("http://{http}/announce"), format!("udp://{udp}")))
    }

    /// Runs `sta create` and returns the torrent path.
    pub fn create(&self, src: &Path, tracker: &str, piece_length: &str) -> anyhow::Result<PathBuf> {
        let out = self.path(&format!(
            "{}.torrent",
            src.file_name().and_then(|n| n.to_str()).unwrap_or("t")
        ));
        let st = std::process::Command::new(&self.bin)
            .args([
                "create",
                "-q",
                "--no-date",
                "--piece-length",
                piece_length,
                "-t",
                tracker,
                "-o",
            ])
            .arg(&out)
            .arg(src)
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(st.success(), "sta create failed");
        Ok(out)
    }

    /// Starts a node command (`node`, `seed`, `get`) with JSON output, port 0,
    /// its own address and state folder, and waits for its ready line.
    pub fn node(&mut self, name: &str, cmd: &str, args: &[&str]) -> anyhow::Result<(Proc, Value)> {
        let ip = self.next_ip();
        let state = self.path(&format!("state-{name}"));
        let mut all: Vec<String> = vec![
            cmd.into(),
            "--json".into(),
            "-p".into(),
            "0".into(),
            "--bind".into(),
            ip,
        ];
        all.push("--state-dir".into());
        all.push(state.display().to_string());
        all.extend(args.iter().map(|s| s.to_string()));
        let mut p = Proc::spawn(name, &self.bin, &all, &self.logs())?;
        let ready = p.wait_ready(Duration::from_secs(30))?;
        Ok((p, ready))
    }
}

impl StaEnv {
    /// Starts `sta node TORRENT -o DIR --role seeder EXTRA...` and waits until
    /// it seeds (its data checked). Returns the process and its ready line.
    pub fn seeder(
        &mut self,
        name: &str,
        torrent: &Path,
        dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<(Proc, Value)> {
        let (t, d) = (torrent.display().to_string(), dir.display().to_string());
        let mut args = vec![t.as_str(), "-o", d.as_str(), "--role", "seeder"];
        args.extend_from_slice(extra);
        let (mut p, ready) = self.node(name, "node", &args)?;
        wait_status(&mut p, "seeding", Duration::from_secs(60), |t| {
            t["state"] == "seeding"
        })?;
        Ok((p, ready))
    }
}

/// The first torrent of a node's status line.
pub fn torrent(status: &Value) -> &Value {
    &status["torrents"][0]
}

/// Waits for a node's `complete` event (or returns it if it was already read).
pub fn wait_complete(p: &mut Proc, timeout: Duration) -> anyhow::Result<Value> {
    let seen = p
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "complete");
    match seen {
        Some(v) => Ok(v),
        None => p.wait_json("complete event", timeout, |v| v["event"] == "complete"),
    }
}

/// Reads status lines until `pred` holds on the first torrent.
pub fn wait_status(
    p: &mut Proc,
    what: &str,
    timeout: Duration,
    mut pred: impl FnMut(&Value) -> bool,
) -> anyhow::Result<Value> {
    p.wait_json(what, timeout, |v| {
        v["event"] == "status" && pred(torrent(v))
    })
}

pub fn ready_peer_addr(ready: &Value) -> SocketAddr {
    ready["peer"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("ready line has a peer address")
}

/// The newest status line: everything already printed is skipped, so the
/// answer is at most one status interval old.
pub fn latest_status(p: &mut Proc, timeout: Duration) -> anyhow::Result<Value> {
    let newest = p
        .drain()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .rfind(|v| v["event"] == "status");
    match newest {
        Some(v) => Ok(v),
        None => p.wait_json("status line", timeout, |v| v["event"] == "status"),
    }
}

/// Runs `sta ctl --addr API ARGS...`: whether it succeeded, and its stdout
/// followed by its stderr.
pub fn ctl(bin: &str, api: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(bin)
        .args(["ctl", "--addr", api])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sta ctl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The first JSON line of `text` whose `event` is `event` (the `summary` of
/// `sta swarm --json` or `sta lab --json`, say).
pub fn json_event(text: &str, event: &str) -> Option<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == event)
}
