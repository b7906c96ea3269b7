//! Shared by the fault tests (`faults_swarm.rs`, `faults_node.rs`): nodes
//! that can be stopped and started again as the same peer, a tracker that can
//! be restarted on its port, and readers for piece maps and resume files.
//! Each test binary uses part of it.
#![allow(dead_code)]

pub use std::net::SocketAddr;
pub use std::path::{Path, PathBuf};
pub use std::process::Command;
pub use std::time::{Duration, Instant};

pub use serde_json::Value;
pub use sta_testkit::files::{random_file, sha256_file};
pub use sta_testkit::http::{addr_of, get};
pub use sta_testkit::proc::{Proc, wait_until};
pub use sta_testkit::reference::free_port;
pub use sta_testkit::sta::{StaEnv, ready_peer_addr, torrent, wait_complete, wait_status};

pub const STA: &str = env!("CARGO_BIN_EXE_sta");
pub const T: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------- helpers

/// A node that can be stopped and started again as the same peer: same
/// address, same state folder (resume files), same content folder.
pub struct NodeSpec {
    pub name: String,
    pub ip: String,
    pub state: PathBuf,
}

impl NodeSpec {
    pub fn new(env: &mut StaEnv, name: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            ip: env.next_ip(),
            state: env.path(&format!("state-{name}")),
        }
    }

    /// Starts `sta CMD --json -p 0 --bind IP --state-dir S --api 127.0.0.1:0 ARGS`
    /// and waits for its ready line. `run` tells restarts apart in the logs.
    pub fn start(&self, env: &StaEnv, run: u32, cmd: &str, args: &[&str]) -> Node {
        let mut all: Vec<String> = vec![cmd.into(), "--json".into(), "-p".into(), "0".into()];
        all.extend(["--bind".into(), self.ip.clone()]);
        all.extend(["--state-dir".into(), self.state.display().to_string()]);
        all.extend(["--api".into(), "127.0.0.1:0".into()]);
        all.extend(args.iter().map(|s| s.to_string()));
        let name = format!("{}-{run}", self.name);
        let mut proc = Proc::spawn(&name, STA, &all, &env.logs()).unwrap();
        let ready = proc
            .wait_ready(T)
            .unwrap_or_else(|e| panic!("{name} not ready: {e}"));
        let api = ready["api"].as_str().unwrap().parse().unwrap();
        Node {
            peer: ready_peer_addr(&ready),
            api,
            proc,
        }
    }
}

pub struct Node {
    pub proc: Proc,
    pub peer: SocketAddr,
    pub api: SocketAddr,
}

impl Node {
    /// The first torrent's snapshot as the node sees it now (control API).
    pub fn now(&self) -> Value {
        let r = get(self.api, "/api/status");
        r.json()["torrents"][0].clone()
    }

    /// The piece map now: one character per piece, `#` verified.
    pub fn pieces(&self) -> Vec<bool> {
        let r = get(self.api, "/api/pieces?torrent=1");
        r.json()["states"]
            .as_str()
            .unwrap()
            .bytes()
            .map(|c| c == b'#')
            .collect()
    }

    /// The piece map now as the node prints it: `#` verified, `+` being
    /// downloaded, `.` missing.
    pub fn states(&self) -> String {
        let r = get(self.api, "/api/pieces?torrent=1");
        r.json()["states"].as_str().unwrap().to_owned()
    }

    /// Whether no piece can complete without a peer sending more: every
    /// piece in flight still lacks blocks (none is waiting for its hash check).
    pub fn nothing_left_to_verify(&self) -> bool {
        self.states()
            .bytes()
            .enumerate()
            .filter(|(_, c)| *c == b'+')
            .all(|(i, _)| {
                let d = get(self.api, &format!("/api/pieces?torrent=1&piece={i}")).json();
                u(&d["detail"]["blocks_received"]) < u(&d["detail"]["blocks_total"])
            })
    }

    /// Whether the node is connected to a peer at `ip`.
    pub fn connected_to(&self, ip: &str) -> bool {
        self.now()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["addr"].as_str().unwrap().starts_with(&format!("{ip}:")))
    }

    /// Skips the status lines already printed: what is read next is newer
    /// than this call.
    pub fn drain(&mut self) {
        while self.proc.next_line(Instant::now()).is_some() {}
    }

    pub fn wait(&mut self, what: &str, pred: impl FnMut(&Value) -> bool) -> Value {
        let v = wait_status(&mut self.proc, what, T, pred).unwrap_or_else(|e| panic!("{e}"));
        torrent(&v).clone()
    }

    /// The first torrent of the last status (or `stopped`) line read so far.
    pub fn last_line(&self) -> Value {
        let v = self
            .proc
            .seen
            .iter()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["torrents"].is_array())
            .expect("a status line");
        torrent(&v).clone()
    }

    pub fn complete(&mut self) -> Value {
        wait_complete(&mut self.proc, T).unwrap_or_else(|e| panic!("{e}"))
    }
}

pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned number: {v}"))
}

/// Bytes this snapshot says came from `ip` during the run.
pub fn from_ip(t: &Value, ip: &str) -> u64 {
    t["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ip"] == ip)
        .map_or(0, |s| u(&s["downloaded"]))
}

pub fn count(pieces: &[bool]) -> usize {
    pieces.iter().filter(|p| **p).count()
}

pub fn union(a: &[bool], b: &[bool]) -> Vec<bool> {
    a.iter().zip(b).map(|(x, y)| *x || *y).collect()
}

pub fn assert_same_file(src: &Path, copy: &Path) {
    assert_eq!(
        sha256_file(src).unwrap(),
        sha256_file(copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display())),
        "{} differs from the source",
        copy.display()
    );
}

pub fn assert_same_tree(src: &Path, copy: &Path) {
    if src.is_dir() {
        for e in std::fs::read_dir(src).unwrap() {
            let n = e.unwrap().file_name();
            assert_same_tree(&src.join(&n), &copy.join(&n));
        }
    } else {
        assert_same_file(src, copy);
    }
}

/// A tracker on a fixed loopback port (HTTP and UDP), so it can be killed and
/// started again at the same address with the same data folder.
pub struct TrackerSpec {
    pub port: u16,
    pub data: PathBuf,
    pub interval: &'static str,
}

impl TrackerSpec {
    pub fn new(env: &StaEnv, interval: &'static str) -> TrackerSpec {
        TrackerSpec {
            port: free_port("127.0.0.1"),
            data: env.path("tracker-data"),
            interval,
        }
    }

    pub fn announce(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    pub fn http(&self) -> SocketAddr {
        addr_of(&self.announce())
    }

    pub fn start(&self, env: &StaEnv, run: u32) -> Proc {
        let at = format!("127.0.0.1:{}", self.port);
        let data = self.data.display().to_string();
        let args = [
            "tracker",
            "--http",
            &at,
            "--udp",
            &at,
            "--json",
            "--data-dir",
            &data,
            "--interval",
            self.interval,
        ];
        let mut p = Proc::spawn(&format!("tracker-{run}"), STA, &args, &env.logs()).unwrap();
        p.wait_ready(T).unwrap();
        p
    }

    pub fn stats(&self) -> Value {
        get(self.http(), "/stats.json").json()
    }
}

pub fn info_hash(t: &Path) -> String {
    let out = Command::new(STA)
        .args(["info", "--json"])
        .arg(t)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["info_hash"].as_str().unwrap().to_owned()
}

/// Pieces a resume file records as verified.
pub fn resume_pieces(state: &Path, info_hash: &str, num_pieces: usize) -> Vec<bool> {
    let path = state.join(format!("{info_hash}.resume"));
    let v: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    let hex = v["have"].as_str().unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    (0..num_pieces)
        .map(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect()
}

/// Reads `len` bytes at `offset`, or fewer at the end of the file.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    buf
}
