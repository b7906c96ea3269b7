//! `sta lab`: the VirtualBox lab of the original project, on one machine. A
//! tracker, a seeder and N leechers each run in their own network namespace
//! with shaped links (rates in bits per second, tc style), and each leecher's
//! completion time is reported next to the fluid-model lower bound
//! T_min = max(F/u_s, F/d_min, N·F/(u_s + Σu_i)) (Kumar & Ross, 2006).
//! The kernel here has no netem, so links are shaped in rate only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use sta_proto::units::{parse_bit_rate, parse_size};

use super::lab_net::{LabNet, Link, host_ip};
use super::swarm::{generate, sha256};
use super::swarm_procs::{Child, Line, forward, spawn_child, wait_ready};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of leechers.
    #[arg(short = 'n', long, default_value_t = 4)]
    pub leechers: usize,
    /// Size of the generated file.
    #[arg(long, default_value = "32MiB")]
    pub size: String,
    /// Piece length, or auto.
    #[arg(long, default_value = "auto")]
    pub piece_length: String,
    /// Seeder upload rate (bits per second, e.g. 20mbit).
    #[arg(long, default_value = "20mbit")]
    pub seeder_up: String,
    /// Seeder download rate.
    #[arg(long, default_value = "100mbit")]
    pub seeder_down: String,
    /// Leecher upload rate.
    #[arg(long, default_value = "10mbit")]
    pub leecher_up: String,
    /// Leecher download rate.
    #[arg(long, default_value = "50mbit")]
    pub leecher_down: String,
    /// Link latency (needs netem, which this kernel lacks: refused with a message).
    #[arg(long)]
    pub delay: Option<String>,
    /// Packet loss (needs netem, which this kernel lacks: refused with a message).
    #[arg(long)]
    pub loss: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Keep the work folder.
    #[arg(long)]
    pub keep: bool,
    /// Print the summary as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Only remove namespaces left behind by earlier runs, then exit.
    #[arg(long)]
    pub cleanup: bool,
    /// Run another BitTorrent client in place of the sta nodes (benchmarks):
    /// a command with {role} (seed or leech), {torrent}, {dir} and {ip}; it
    /// must print JSON lines `{"event":"ready"}` and, once it has every
    /// piece, `{"event":"complete"}` (bench/ltnode.py does).
    #[arg(long, value_name = "COMMAND")]
    pub node_cmd: Option<String>,
    /// Regular upload slots of every sta node's choker (default: the node's
    /// own default, 4), to see how the choker shapes a swarm.
    #[arg(long, value_name = "N")]
    pub upload_slots: Option<usize>,
}

fn netem_available() -> bool {
    std::fs::read_to_string("/proc/modules").is_ok_and(|m| m.contains("sch_netem"))
        || std::path::Path::new("/sys/module/sch_netem").exists()
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.cleanup {
        let stale = LabNet::stale();
        LabNet::remove(&stale);
        println!(
            "removed {} namespace(s){}",
            stale.len(),
            if stale.is_empty() {
                String::new()
            } else {
                format!(": {}", stale.join(" "))
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    if (a.delay.is_some() || a.loss.is_some()) && !netem_available() {
        bail!(
            "--delay and --loss need the netem queueing discipline, which this kernel does not have; the lab shapes rates only"
        );
    }
    if a.delay.is_some() || a.loss.is_some() {
        bail!("--delay and --loss are not supported yet");
    }
    if a.upload_slots.is_some() && a.node_cmd.is_some() {
        bail!("--upload-slots sets sta nodes' choker; it has no effect with --node-cmd");
    }
    if a.leechers == 0 || a.leechers > 60 {
        bail!("--leechers must be between 1 and 60");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

struct Rates {
    seeder_up: u64,
    seeder_down: u64,
    leecher_up: u64,
    leecher_down: u64,
}

/// The fluid-model lower bound in seconds for `n` leechers and `bytes` of content.
fn t_min(bytes: u64, n: usize, r: &Rates) -> f64 {
    let f = bytes as f64 * 8.0;
    let d_min = r.leecher_down as f64;
    let total_up = r.seeder_up as f64 + n as f64 * r.leecher_up as f64;
    (f / r.seeder_up as f64)
        .max(f / d_min)
        .max(n as f64 * f / total_up)
}

/// Set by the first SIGINT or SIGTERM. Handlers are installed before the
/// first namespace is made: from then on neither signal ends the process
/// before the namespaces are removed (tokio's handler replaces the default
/// action for good, so a second Ctrl-C during clean-up is harmless too).
fn watch_signals() -> anyhow::Result<tokio_util::sync::CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        s.cancel();
    });
    Ok(stop)
}

async fn run_async(a: Args) -> anyhow::Result<ExitCode> {
    let stop = watch_signals()?;
    let rates = Rates {
        seeder_up: parse_bit_rate(&a.seeder_up)?,
        seeder_down: parse_bit_rate(&a.seeder_down)?,
        leecher_up: parse_bit_rate(&a.leecher_up)?,
        leecher_down: parse_bit_rate(&a.leecher_down)?,
    };
    let work = tempfile::Builder::new()
        .prefix("sta-lab-")
        .tempdir()?
        .keep();
    let exe = std::env::current_exe()?;
    let mut links = vec![
        Link {
            up: 1_000_000_000,
            down: 1_000_000_000,
        },
        Link {
            up: rates.seeder_up,
            down: rates.seeder_down,
        },
    ];
    links.extend((0..a.leechers).map(|_| Link {
        up: rates.leecher_up,
        down: rates.leecher_down,
    }));
    // Off the async threads, so the signal task keeps running; a signal
    // during the build is acted on once it returns (a half-built network
    // removes itself on error).
    let net = match tokio::task::spawn_blocking(move || LabNet::build(&links)).await? {
        Ok(net) => net,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            // Ctrl-C on a terminal reaches the `ip` commands too: one that
            // died of it is an interruption, not a failure.
            if stop.is_cancelled() {
                eprintln!("interrupted while building the lab; namespaces removed");
                return Ok(ExitCode::from(130));
            }
            return Err(e);
        }
    };
    let mut children: Vec<Child> = Vec::new();
    let outcome = if stop.is_cancelled() {
        Err(Interrupted.into())
    } else {
        tokio::select! {
            r = lab(&a, &rates, &net, &work, &exe, &mut children) => r,
            _ = stop.cancelled() => Err(Interrupted.into()),
        }
    };
    for c in children.iter_mut().rev() {
        c.terminate();
    }
    for c in children.iter_mut() {
        c.wait_or_kill(Duration::from_secs(10)).await;
    }
    drop(net);
    let left = LabNet::stale()
        .into_iter()
        .filter(|n| n.starts_with(&format!("sta-{}-", std::process::id())))
        .count();
    if left > 0 {
        eprintln!("warning: {left} namespace(s) could not be removed; run `sta lab --cleanup`");
    }
    match outcome {
        Ok(true) => {
            if a.keep {
                eprintln!("work folder kept: {}", work.display());
            } else {
                let _ = std::fs::remove_dir_all(&work);
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            eprintln!(
                "some copies did not verify; work folder kept: {}",
                work.display()
            );
            Ok(ExitCode::from(1))
        }
        Err(e) if e.is::<Interrupted>() => {
            eprintln!(
                "interrupted; every node stopped, namespaces removed; work folder kept: {}",
                work.display()
            );
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            eprintln!(
                "lab failed; namespaces removed; work folder kept: {}",
                work.display()
            );
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

fn in_host(net: &LabNet, host: usize, exe: &Path, args: &[String]) -> Vec<String> {
    let mut v = vec!["netns".into(), "exec".into(), net.hosts[host].clone()];
    v.push(exe.display().to_string());
    v.extend(args.iter().cloned());
    v
}

/// A `--node-cmd` template filled in for one node, split into words.
fn fill_template(template: &str, role: &str, torrent: &Path, dir: &Path, ip: &str) -> Vec<String> {
    template
        .split_whitespace()
        .map(|w| {
            w.replace("{role}", role)
                .replace("{torrent}", &torrent.display().to_string())
                .replace("{dir}", &dir.display().to_string())
                .replace("{ip}", ip)
        })
        .collect()
}

async fn lab(
    a: &Args,
    rates: &Rates,
    net: &LabNet,
    work: &Path,
    exe: &Path,
    children: &mut Vec<Child>,
) -> anyhow::Result<bool> {
    let ipcmd = PathBuf::from("ip");
    let seed_dir = work.join("seeder");
    std::fs::create_dir_all(&seed_dir)?;
    let size = parse_size(&a.size)?;
    let source = seed_dir.join("lab-sample.bin");
    generate(&source, size)?;

    let tracker_ip = host_ip(0);
    let targs: Vec<String> = [
        "tracker",
        "--http",
        &format!("{tracker_ip}:6969"),
        "--udp",
        "off",
        "--json",
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([work.join("tracker").display().to_string()])
    .collect();
    let (c, mut trx) = spawn_child(&ipcmd, "tracker", &in_host(net, 0, exe, &targs), work)?;
    children.push(c);
    wait_ready(&mut trx, "tracker").await?;
    let announce = format!("http://{tracker_ip}:6969/announce");

    let pl = if a.piece_length.eq_ignore_ascii_case("auto") {
        None
    } else {
        Some(u32::try_from(parse_size(&a.piece_length)?)?)
    };
    let opts = sta_node::create::CreateOptions {
        piece_length: pl,
        trackers: vec![vec![announce.clone()]],
        ..Default::default()
    };
    let created = sta_node::create::create(&source, &opts, &|_| {})?;
    let torrent = work.join("lab.torrent");
    std::fs::write(&torrent, &created.bytes)?;

    let node = |name: &str, dir: &Path, host: usize, role: &str| -> Vec<String> {
        if let Some(t) = &a.node_cmd {
            let _ = std::fs::create_dir_all(dir);
            let short = if role == "seeder" { "seed" } else { "leech" };
            let words = fill_template(t, short, &torrent, dir, &host_ip(host));
            let mut v = vec!["netns".into(), "exec".into(), net.hosts[host].clone()];
            v.extend(words);
            return v;
        }
        let mut args: Vec<String> = vec![
            "node".into(),
            torrent.display().to_string(),
            "-o".into(),
            dir.display().to_string(),
            "--role".into(),
            role.into(),
            "--bind".into(),
            host_ip(host),
            "-p".into(),
            "6881".into(),
            "--json".into(),
            "--no-api".into(),
            "--state-dir".into(),
            work.join("state").join(name).display().to_string(),
        ];
        if let Some(n) = a.upload_slots {
            args.extend(["--upload-slots".into(), n.to_string()]);
        }
        in_host(net, host, exe, &args)
    };
    let (c, mut srx) = spawn_child(
        &ipcmd,
        "seeder",
        &node("seeder", &seed_dir, 1, "seeder"),
        work,
    )?;
    children.push(c);
    wait_ready(&mut srx, "seeder").await?;
    // The seeder is ready once its check is done and it seeds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = tokio::select! { v = srx.recv() => v, _ = tokio::time::sleep_until(deadline) => bail!("seeder did not start seeding") };
        match v {
            Some(v) if v["event"] == "status" && v["torrents"][0]["state"] == "seeding" => break,
            // Another client (--node-cmd) says `complete` once its data checked.
            Some(v) if a.node_cmd.is_some() && v["event"] == "complete" => break,
            Some(v) if v["event"] == "exited" => bail!("seeder failed: {}", v["detail"]),
            Some(_) => {}
            None => bail!("seeder stopped"),
        }
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Line>(1024);
    forward(srx, 0, tx.clone());
    let started = Instant::now();
    for i in 0..a.leechers {
        let name = format!("leecher{}", i + 1);
        let dir = work.join(&name);
        let (c, mut lrx) = spawn_child(&ipcmd, &name, &node(&name, &dir, 2 + i, "leecher"), work)?;
        children.push(c);
        wait_ready(&mut lrx, &name)
            .await
            .with_context(|| format!("{name} did not start"))?;
        forward(lrx, i + 1, tx.clone());
    }
    drop(tx);
    let mut done: Vec<Option<f64>> = vec![None; a.leechers];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.timeout);
    while done.iter().any(Option::is_none) {
        let line = tokio::select! { l = rx.recv() => l, _ = tokio::time::sleep_until(deadline) => bail!("not every leecher finished within {} s", a.timeout) };
        let Some(Line { node, value }) = line else {
            bail!("every node stopped before the lab finished")
        };
        if value["event"] == "exited" {
            bail!("node {node} exited early: {}", value["detail"]);
        }
        if node > 0 && value["event"] == "complete" && done[node - 1].is_none() {
            done[node - 1] = Some(started.elapsed().as_secs_f64());
            if !a.json {
                println!(
                    "leecher{node} complete after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let bound = t_min(size, a.leechers, rates);
    let want = sha256(&source)?;
    let mut verified = 0;
    println!(
        "\n{:<10} {:<11} {:>10} {:>10} {:>9} {:>9}  copy",
        "node", "address", "up", "down", "time", "×T_min"
    );
    let mbit = |b: u64| format!("{:.0} Mbit/s", b as f64 / 1e6);
    println!(
        "{:<10} {:<11} {:>10} {:>10} {:>9} {:>9}  source",
        "seeder",
        host_ip(1),
        mbit(rates.seeder_up),
        mbit(rates.seeder_down),
        "-",
        "-"
    );
    let mut rows = Vec::new();
    for (i, t) in done.iter().enumerate() {
        let t = t.unwrap_or(f64::NAN);
        let ok = sha256(
            &work
                .join(format!("leecher{}", i + 1))
                .join("lab-sample.bin"),
        )
        .is_ok_and(|h| h == want);
        verified += usize::from(ok);
        println!(
            "{:<10} {:<11} {:>10} {:>10} {:>8.1}s {:>9.2}  {}",
            format!("leecher{}", i + 1),
            host_ip(2 + i),
            mbit(rates.leecher_up),
            mbit(rates.leecher_down),
            t,
            t / bound,
            if ok { "SHA-256 ok" } else { "SHA-256 MISMATCH" }
        );
        rows.push(json!({"name": format!("leecher{}", i + 1), "time": t, "ratio": t / bound, "verified": ok}));
    }
    let last = done.iter().flatten().cloned().fold(0.0, f64::max);
    println!(
        "T_min = {bound:.1} s (fluid model); last leecher {last:.1} s = {:.2} × T_min",
        last / bound
    );
    println!("verified {verified}/{} copies, SHA-256 {want}", a.leechers);
    if a.json {
        crate::output::json_line(&json!({
            "event": "summary", "size": size, "leechers": a.leechers, "t_min": bound, "last": last,
            "ratio": last / bound, "verified": verified, "sha256": want, "nodes": rows,
            "namespaces": net.all_names(),
        }));
    }
    Ok(verified == a.leechers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fluid_bound() {
        let r = Rates {
            seeder_up: 20_000_000,
            seeder_down: 100_000_000,
            leecher_up: 10_000_000,
            leecher_down: 50_000_000,
        };
        // 32 Mbit file, 4 leechers: N·F/(u_s+Σu) = 128/60 = 2.13 s dominates F/u_s = 1.6 s.
        let t = t_min(4 << 20, 4, &r);
        assert!((t - 4.0 * 33.554432 / 60.0).abs() < 1e-6, "{t}");
        // One leecher: the seeder's upload is the limit.
        assert!((t_min(4 << 20, 1, &r) - 33.554432 / 20.0).abs() < 1e-6);
    }

    #[test]
    fn node_command_template() {
        let w = fill_template(
            "python3 ltnode.py {role} {torrent} {dir} {ip}",
            "leech",
            Path::new("/w/lab.torrent"),
            Path::new("/w/leecher1"),
            "10.0.0.3",
        );
        assert_eq!(
            w,
            [
                "python3",
                "ltnode.py",
                "leech",
                "/w/lab.torrent",
                "/w/leecher1",
                "10.0.0.3"
            ]
        );
    }
}
