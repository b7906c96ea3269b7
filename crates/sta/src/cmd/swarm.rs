//! `sta swarm`: a whole swarm on this machine in one command. A tracker, one
//! seeder and N leechers run as separate `sta` processes on loopback, each
//! on its own 127.0.0.x; a live view shows their progress; at the end a
//! table says where each leecher's data came from, and every copy's SHA-256
//! is checked against the source.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use sta_proto::units::{format_bytes, format_limit, parse_size};

use super::swarm_procs::{Child, Line, forward, spawn_child, wait_ready};
use super::swarm_view::{Row, View};
use super::swarm_work::WorkDir;

use super::node::{Limit, rate};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of leechers.
    #[arg(short = 'n', long, default_value_t = 4)]
    pub leechers: usize,
    /// Size of the generated file (e.g. 64MiB, 1GiB).
    #[arg(long, default_value = "256MiB", conflicts_with = "file")]
    pub size: String,
    /// Share this file instead of a generated one.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Piece length, or auto.
    #[arg(long, default_value = "auto")]
    pub piece_length: String,
    /// Upload limit of every node, per second (e.g. 2MiB).
    #[arg(long, alias = "upload-limit", value_name = "RATE", value_parser = rate)]
    pub max_upload_rate: Option<Limit>,
    /// Download limit of every node, per second.
    #[arg(long, value_name = "RATE", value_parser = rate)]
    pub max_download_rate: Option<Limit>,
    /// Upload limit of the seeder alone, per second.
    #[arg(long, value_name = "RATE", value_parser = rate)]
    pub seeder_upload_rate: Option<Limit>,
    /// Work folder [default: a new temporary folder].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Keep the work folder (it is always kept on failure).
    #[arg(long)]
    pub keep: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Print the summary as one JSON line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: Args) -> anyhow::Result<ExitCode> {
    if a.leechers == 0 || a.leechers > 200 {
        bail!("--leechers must be between 1 and 200");
    }
    let work = match &a.work_dir {
        Some(d) => WorkDir::given(d, a.leechers)?,
        None => WorkDir::temporary(a.leechers)?,
    };
    let work_path = work.path.clone();
    let mut swarm = Swarm {
        work: work_path.clone(),
        children: Vec::new(),
        exe: std::env::current_exe()?,
    };
    let outcome = tokio::select! {
        r = swarm.run(&a) => r,
        _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
    };
    swarm.stop_all().await;
    match outcome {
        Ok(true) => {
            if a.keep {
                eprintln!("work folder kept: {}", work_path.display());
            } else {
                work.remove();
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            eprintln!(
                "some copies did not verify; work folder kept: {}",
                work_path.display()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) if e.is::<Interrupted>() => {
            eprintln!(
                "interrupted; every node stopped; work folder kept: {}",
                work_path.display()
            );
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            eprintln!("swarm failed; work folder kept: {}", work_path.display());
            Err(e)
        }
    }
}

#[derive(Debug)]
struct Interrupted;
impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}
impl std::error::Error for Interrupted {}

struct Swarm {
    work: PathBuf,
    children: Vec<Child>,
    exe: PathBuf,
}

impl Swarm {
    fn node_args(
        &self,
        name: &str,
        torrent: &Path,
        dir: &Path,
        ip: &str,
        role: &str,
    ) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "node".into(),
            torrent.display().to_string(),
            "-o".into(),
            dir.display().to_string(),
        ];
        v.extend([
            "--role".into(),
            role.into(),
            "--bind".into(),
            ip.into(),
            "-p".into(),
            "0".into(),
            "--json".into(),
        ]);
        v.extend([
            "--status-interval".into(),
            "0.5".into(),
            "--state-dir".into(),
            self.work.join("state").join(name).display().to_string(),
        ]);
        v
    }

    async fn run(&mut self, a: &Args) -> anyhow::Result<bool> {
        // The content.
        let seed_dir = self.work.join("seeder");
        std::fs::create_dir_all(&seed_dir)?;
        let source = match &a.file {
            Some(f) => {
                let f = std::path::absolute(f)?;
                let name = f.file_name().context("--file needs a file name")?;
                let dst = seed_dir.join(name);
                // A hard link costs nothing; fall back to a copy across file systems.
                if std::fs::hard_link(&f, &dst).is_err() {
                    std::fs::copy(&f, &dst)
                        .with_context(|| format!("cannot copy {}", f.display()))?;
                }
                dst
            }
            None => {
                let size = parse_size(&a.size)?;
                let p = seed_dir.join("swarm-sample.bin");
                generate(&p, size)?;
                p
            }
        };
        let size = std::fs::metadata(&source)?.len();
        if size == 0 {
            bail!("the file to share is empty");
        }

        // The tracker.
        let tracker_args: Vec<String> = [
            "tracker",
            "--http",
            "127.0.0.1:0",
            "--udp",
            "off",
            "--json",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.work.join("tracker").display().to_string()])
        .collect();
        let (tracker, mut tracker_rx) =
            spawn_child(&self.exe, "tracker", &tracker_args, &self.work)?;
        self.children.push(tracker);
        let ready = wait_ready(&mut tracker_rx, "tracker").await?;
        let http = ready["http"]
            .as_str()
            .context("tracker ready line has no http address")?;
        let announce = format!("http://{http}/announce");

        // The torrent.
        let pl = if a.piece_length.eq_ignore_ascii_case("auto") {
            None
        } else {
            Some(u32::try_from(parse_size(&a.piece_length)?)?)
        };
        let opts = sta_node::create::CreateOptions {
            piece_length: pl,
            trackers: vec![vec![announce.clone()]],
            created_by: Some(format!("sta/{}", env!("CARGO_PKG_VERSION"))),
            ..Default::default()
        };
        let created = sta_node::create::create(&source, &opts, &|_| {})?;
        let torrent = self.work.join("swarm.torrent");
        std::fs::write(&torrent, &created.bytes)?;
        let m = &created.metainfo;

        println!(
            "sta swarm: tracker {announce}, 1 seeder + {} leechers",
            a.leechers
        );
        println!(
            "  file {} ({}), {} pieces of {}, limits: upload {}, download {}, seeder upload {}",
            source.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            format_bytes(size),
            m.info.num_pieces(),
            format_bytes(u64::from(m.info.piece_length)),
            format_limit(a.max_upload_rate.and_then(|l| l.0)),
            format_limit(a.max_download_rate.and_then(|l| l.0)),
            format_limit(
                a.seeder_upload_rate
                    .and_then(|l| l.0)
                    .or(a.max_upload_rate.and_then(|l| l.0))
            ),
        );
        println!("  work folder {}", self.work.display());

        // Nodes.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Line>(1024);
        let seeder_ip = "127.0.0.2".to_string();
        let mut seed_args = self.node_args("seeder", &torrent, &seed_dir, &seeder_ip, "seeder");
        if let Some(r) = a
            .seeder_upload_rate
            .and_then(|l| l.0)
            .or(a.max_upload_rate.and_then(|l| l.0))
        {
            seed_args.extend(["--max-upload-rate".into(), r.to_string()]);
        }
        let mut rows = vec![Row::new("seeder", &seeder_ip)];
        let (child, mut srx) = spawn_child(&self.exe, "seeder", &seed_args, &self.work)?;
        self.children.push(child);
        wait_ready(&mut srx, "seeder").await?;
        forward(srx, 0, tx.clone());
        let started = Instant::now();
        for i in 0..a.leechers {
            let name = format!("leecher{}", i + 1);
            let ip = format!("127.0.0.{}", 10 + i);
            let dir = self.work.join(&name);
            let mut args = self.node_args(&name, &torrent, &dir, &ip, "leecher");
            if let Some(r) = a.max_upload_rate.and_then(|l| l.0) {
                args.extend(["--max-upload-rate".into(), r.to_string()]);
            }
            if let Some(r) = a.max_download_rate.and_then(|l| l.0) {
                args.extend(["--max-download-rate".into(), r.to_string()]);
            }
            let (child, mut lrx) = spawn_child(&self.exe, &name, &args, &self.work)?;
            self.children.push(child);
            wait_ready(&mut lrx, &name).await?;
            forward(lrx, i + 1, tx.clone());
            rows.push(Row::new(&name, &ip));
        }
        drop(tx);

        // Watch until every leecher has every piece.
        let mut view = View::new(rows, std::io::stdout().is_terminal() && !a.json);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(a.timeout);
        let mut last_print = Instant::now();
        while !view.all_leechers_done() {
            let line = tokio::select! {
                l = rx.recv() => l,
                _ = tokio::time::sleep_until(deadline) => bail!("not every leecher finished within {} s", a.timeout),
            };
            let Some(Line { node, value }) = line else {
                bail!("every node stopped before the swarm finished")
            };
            if value["event"] == "exited" {
                bail!(
                    "{} exited early: {}",
                    view.name(node),
                    value["detail"].as_str().unwrap_or("")
                );
            }
            view.update(node, &value, started);
            if view.is_tty() {
                view.draw();
            } else if last_print.elapsed() >= Duration::from_secs(2) {
                last_print = Instant::now();
                view.print_lines();
            }
        }
        view.finish();

        // Verify every copy.
        let want = sha256(&source)?;
        let name = source.file_name().context("source name")?.to_owned();
        let mut verified = 0;
        for i in 0..a.leechers {
            let copy = self.work.join(format!("leecher{}", i + 1)).join(&name);
            let ok = sha256(&copy).map(|h| h == want).unwrap_or(false);
            view.set_verified(i + 1, ok);
            verified += usize::from(ok);
        }
        println!();
        view.print_table(size, &seeder_ip);
        println!("verified {verified}/{} copies, SHA-256 {want}", a.leechers);
        if a.json {
            crate::output::json_line(&json!({
                "event": "summary",
                "size": size,
                "leechers": a.leechers,
                "verified": verified,
                "sha256": want,
                "nodes": view.json(&seeder_ip),
                "elapsed": started.elapsed().as_secs_f64(),
            }));
        }
        Ok(verified == a.leechers)
    }

    /// SIGTERM to every child, then SIGKILL to any still alive after 10 s.
    async fn stop_all(&mut self) {
        for c in self.children.iter_mut().rev() {
            c.terminate();
        }
        for c in self.children.iter_mut() {
            c.wait_or_kill(Duration::from_secs(10)).await;
        }
    }
}

/// Writes `size` pseudo-random bytes quickly (the content only has to be unique).
pub(super) fn generate(path: &Path, size: u64) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    use std::io::Write;
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

pub(super) fn sha256(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
