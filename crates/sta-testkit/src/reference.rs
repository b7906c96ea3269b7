//! Independent BitTorrent clients from Debian, driven as test peers:
//! python3-libtorrent (through `tests/support/ltpeer.py`), aria2c and
//! transmission-daemon. Each starts on its own loopback address with the
//! settings reference-peers.md lists, reports completion, and stops by PID.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::proc::Proc;

/// A free TCP port on `ip` (bound, read, released: fine for tests).
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A libtorrent peer.
pub struct LtPeer {
    pub proc: Proc,
    pub port: u16,
}

impl LtPeer {
    pub fn start(
        script: &Path,
        seed: bool,
        torrent: &Path,
        dir: &Path,
        ip: &str,
        logs: &Path,
        name: &str,
    ) -> anyhow::Result<LtPeer> {
        std::fs::create_dir_all(dir)?;
        let mode = if seed { "seed" } else { "leech" };
        let args = [
            script.display().to_string(),
            mode.into(),
            torrent.display().to_string(),
            dir.display().to_string(),
            ip.into(),
        ];
        let mut proc = Proc::spawn(name, "/usr/bin/python3", &args, logs)?;
        let ready = proc.wait_ready(Duration::from_secs(30))?;
        let port = ready["port"]
            .as_u64()
            .context("no port in ltpeer ready line")? as u16;
        Ok(LtPeer { proc, port })
    }

    pub fn wait_complete(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.proc
            .wait_json("libtorrent complete", timeout, |v| v["event"] == "complete")
            .map(|_| ())
    }

    /// Seeds from the data in `dir`; returns once libtorrent has verified it.
    pub fn seed(
        script: &Path,
        torrent: &Path,
        dir: &Path,
        ip: &str,
        logs: &Path,
        name: &str,
    ) -> anyhow::Result<LtPeer> {
        let mut p = Self::start(script, true, torrent, dir, ip, logs, name)?;
        p.wait_complete(Duration::from_secs(60))?;
        Ok(p)
    }

    /// Forces a re-announce (libtorrent otherwise honours the tracker's min
    /// interval): the way to make it dial a Transmission leecher it has just
    /// learned about.
    pub fn reannounce(&self) {
        let _ = self.proc.signal(libc::SIGUSR1);
    }
}

/// aria2c as leecher (exits 0 once every piece is verified) or seeder.
pub struct Aria2 {
    pub proc: Proc,
    pub port: u16,
    pub log: PathBuf,
}

impl Aria2 {
    /// `udp_tracker`: aria2c 1.36 talks to `udp://` trackers only through its
    /// DHT socket, so DHT is turned on, with a routing table of its own and no
    /// entry point: it knows no node and contacts none, and the tracker stays
    /// the only peer source.
    pub fn start(
        seed: bool,
        udp_tracker: bool,
        torrent: &Path,
        dir: &Path,
        ip: &str,
        logs: &Path,
        name: &str,
    ) -> anyhow::Result<Aria2> {
        std::fs::create_dir_all(dir)?;
        let port = free_port(ip);
        let mut args: Vec<String> = [
            "--no-conf=true",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--file-allocation=none",
            "--summary-interval=0",
            "--console-log-level=warn",
            "--auto-save-interval=0",
            "--disable-ipv6=true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if udp_tracker {
            args.push("--enable-dht=true".into());
            args.push(format!("--dht-listen-port={}", free_port(ip)));
            args.push(format!("--dht-file-path={}", dir.join("dht.dat").display()));
        } else {
            args.push("--enable-dht=false".into());
        }
        let log = logs.join(format!("{name}.log"));
        args.push(format!("--log={}", log.display()));
        args.push("--log-level=info".into());
        args.push(format!("--interface={ip}"));
        args.push(format!("--listen-port={port}"));
        args.push(format!("--dir={}", dir.display()));
        if seed {
            args.extend(["--check-integrity=true".into(), "--seed-ratio=0.0".into()]);
        } else {
            args.push("--seed-time=0".into());
        }
        args.push(torrent.display().to_string());
        let proc = Proc::spawn(name, "aria2c", &args, logs)?;
        Ok(Aria2 { proc, port, log })
    }

    /// Waits for a leecher to exit 0 (every piece verified); the log tail on failure.
    pub fn wait_done(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let tail = || {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        match self.proc.wait_exit(timeout) {
            Ok(st) if st.success() => Ok(()),
            Ok(st) => bail!("aria2c exited with {st}\n{}", tail()),
            Err(e) => bail!("{e}\n--- aria2c log (tail) ---\n{}", tail()),
        }
    }
}

/// transmission-daemon, controlled with transmission-remote.
pub struct Transmission {
    pub proc: Proc,
    pub rpc: u16,
    pub port: u16,
    pub dir: PathBuf,
}

impl Transmission {
    pub fn start(
        config: &Path,
        dir: &Path,
        ip: &str,
        logs: &Path,
        name: &str,
    ) -> anyhow::Result<Transmission> {
        std::fs::create_dir_all(config)?;
        std::fs::create_dir_all(dir)?;
        let rpc = free_port("127.0.0.1");
        let port = free_port(ip);
        let settings = serde_json::json!({
            "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "blocklist-enabled": false,
            "bind-address-ipv4": ip, "bind-address-ipv6": "::1",
            "peer-port": port, "peer-port-random-on-start": false,
            "rpc-enabled": true, "rpc-bind-address": "127.0.0.1", "rpc-port": rpc,
            "rpc-authentication-required": false, "rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false,
            "download-dir": dir, "incomplete-dir-enabled": false, "start-added-torrents": true,
            "speed-limit-down-enabled": false, "speed-limit-up-enabled": false, "alt-speed-enabled": false,
            "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
            "download-queue-enabled": false, "seed-queue-enabled": false, "queue-stalled-enabled": false,
            "message-level": 2,
        });
        std::fs::write(
            config.join("settings.json"),
            serde_json::to_vec_pretty(&settings)?,
        )?;
        let args: Vec<String> = vec![
            "-f".into(),
            "-g".into(),
            config.display().to_string(),
            "-e".into(),
            logs.join(format!("{name}-daemon.log"))
                .display()
                .to_string(),
        ];
        let proc = Proc::spawn(name, "transmission-daemon", &args, logs)?;
        let t = Transmission {
            proc,
            rpc,
            port,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while t.remote(&["-si"]).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "transmission-daemon RPC did not come up\n{}",
                    t.proc.report()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(t)
    }

    pub fn remote(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("transmission-remote")
            .arg(format!("127.0.0.1:{}", self.rpc))
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "transmission-remote {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn add(&self, torrent: &Path) -> anyhow::Result<()> {
        let out = self.remote(&[
            "-a",
            &torrent.display().to_string(),
            "-w",
            &self.dir.display().to_string(),
        ])?;
        if !out.contains("success") {
            bail!("transmission did not add the torrent: {out}");
        }
        Ok(())
    }

    /// Percent done of the first torrent, from `transmission-remote -t 1 -i`.
    pub fn percent_done(&self) -> anyhow::Result<f64> {
        let info = self.remote(&["-t", "1", "-i"])?;
        let line = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("Percent Done:"))
            .context("no Percent Done line")?;
        Ok(line
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .unwrap_or(0.0))
    }

    pub fn wait_complete(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.percent_done().unwrap_or(0.0) >= 100.0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "transmission did not complete within {timeout:?}: {}",
                    self.remote(&["-t", "1", "-i"]).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
