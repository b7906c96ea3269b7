//! sta-bench: load generators and measurement helpers run by `bench/`
//! scripts (never by CI). Each subcommand prints a human summary on stderr
//! and one JSON line of results on stdout.
//!
//! - `hashes N`: the info-hashes the tracker loads use, hex, one a line
//!   (a whitelist for trackers that need one, such as Debian's opentracker).
//! - `tracker-udp` / `tracker-http`: announce load against a tracker.

mod hist;
mod swarm;
mod tracker_http;
mod tracker_udp;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sta-bench",
    about = "Load generators for sta's benchmarks (see bench/)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The simulated population and how hard to push.
#[derive(clap::Args, Debug, Clone)]
pub struct Load {
    /// Tracker address (IP:PORT).
    #[arg(long)]
    pub target: SocketAddr,
    /// Distinct torrents (the first N of `sta-bench hashes`).
    #[arg(long, default_value_t = 10_000)]
    pub torrents: u32,
    /// Simulated peers; peer p announces torrent p mod torrents.
    #[arg(long, default_value_t = 100_000)]
    pub peers: u32,
    /// Seconds of measured load (after the fill).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Peers asked for per announce.
    #[arg(long, default_value_t = 30)]
    pub numwant: u32,
    /// First announce every peer once (event=started), so the tracker holds
    /// all of them, then print `FILLED` on stderr and wait this many seconds
    /// (for the caller to read the tracker's memory) before the load.
    #[arg(long)]
    pub fill_pause: Option<u64>,
    /// Seed of the request mix.
    #[arg(long, default_value_t = 20261125)]
    pub seed: u64,
}

impl Load {
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Print N info-hashes (hex, one a line).
    Hashes { n: u32 },
    /// UDP (BEP 15) announces: connect, then announces with a realistic event mix.
    TrackerUdp(Load),
    /// HTTP announces, one TCP connection each (as clients do).
    TrackerHttp(Load),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match cli.cmd {
        Cmd::Hashes { n } => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for i in 0..n {
                let _ = writeln!(out, "{}", swarm::info_hash(i).to_hex());
            }
            Ok(())
        }
        Cmd::TrackerUdp(l) => rt.block_on(tracker_udp::run(l)),
        Cmd::TrackerHttp(l) => rt.block_on(tracker_http::run(l)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sta-bench: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
